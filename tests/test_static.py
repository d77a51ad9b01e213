"""Static rules of the code base: no import circle, short functions, typed and documented
public functions in the Qt-free core (mypy itself runs in scripts/test)."""

from __future__ import annotations

import ast
import pathlib
import sys

import grimp
from numpydoc.docscrape import NumpyDocString

import napari_seg

PACKAGE = pathlib.Path(napari_seg.__file__).parent
#: The longest function the core may have, in lines of code (its docstring aside:
#: numpydoc sections are encouraged, not counted).
MAX_FUNCTION_LINES = 60


def _core_files() -> list[pathlib.Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_widgets" not in p.parts)


def _functions(tree: ast.AST):
    """(function node, class name or None) for every function and method, nested too."""
    stack = [(tree, None)]
    while stack:
        node, owner = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield child, owner
                stack.append((child, owner))
            elif isinstance(child, ast.ClassDef):
                stack.append((child, child.name))
            else:
                stack.append((child, owner))


def _exported(path: pathlib.Path) -> set[str]:
    """Names in the ``__all__`` of the package that holds ``path``."""
    init = path.parent / "__init__.py"
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return {ast.literal_eval(e) for e in node.value.elts}
    return set()


def _public_api():
    """(path, function, owner) of every public function and method of the core.

    Public: not starting with "_", in a public module, or exported by its package's
    ``__all__`` (the private ``metrics/_*.py`` modules behind ``napari_seg.metrics``).
    """
    for path in _core_files():
        rel = path.relative_to(PACKAGE)
        exported = _exported(path)
        private_module = any(part.startswith("_") for part in rel.parts if part != "__init__.py")
        tree = ast.parse(path.read_text())
        top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        for func, owner in _functions(tree):
            name = owner or func.name
            if func.name.startswith("_") or (owner and owner.startswith("_")):
                continue
            if name not in top:
                continue  # a function nested in another
            if private_module and name not in exported:
                continue
            yield path, func, owner


def _label(path, func, owner) -> str:
    where = f"{owner}." if owner else ""
    return f"{path.relative_to(PACKAGE)}:{func.lineno} {where}{func.name}"


def test_no_import_circle_anywhere_function_level_imports_included():
    graph = grimp.build_graph("napari_seg", include_external_packages=False)
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert circles == []


def _code_lines(func: ast.FunctionDef) -> int:
    """Lines of the function, signature included, docstring excluded."""
    lines = func.end_lineno - func.lineno + 1
    first = func.body[0]
    is_constant = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if is_constant and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def test_no_core_function_is_longer_than_a_screen():
    long = [
        f"{_label(path, func, owner)}: {_code_lines(func)} lines"
        for path in _core_files()
        for func, owner in _functions(ast.parse(path.read_text()))
        if _code_lines(func) > MAX_FUNCTION_LINES
    ]
    assert long == []


def _untyped(func: ast.FunctionDef) -> list[str]:
    args = func.args
    named = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    missing = [a.arg for a in named if a.annotation is None and a.arg not in ("self", "cls")]
    for star in (args.vararg, args.kwarg):
        if star is not None and star.annotation is None:
            missing.append(star.arg)
    if func.returns is None and func.name != "__init__":
        missing.append("return")
    return missing


def test_every_public_function_of_the_core_is_typed():
    untyped = [
        f"{_label(path, func, owner)}: {', '.join(missing)}"
        for path, func, owner in _public_api()
        if (missing := _untyped(func))
    ]
    assert untyped == []


def _raises(func: ast.FunctionDef) -> bool:
    """Whether the body raises a named exception itself (nested functions aside)."""
    stack = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Raise) and node.exc is not None:
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def _docstring_problems(func: ast.FunctionDef, owner: str | None) -> list[str]:
    text = ast.get_docstring(func) or ""
    if not text:
        return ["no docstring"]
    doc = NumpyDocString(text)
    problems = []
    args = func.args
    params = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
    params += [f"*{a.arg}" for a in (args.vararg,) if a] + [
        f"**{a.arg}" for a in (args.kwarg,) if a
    ]
    params = [p for p in params if p not in ("self", "cls")]
    documented = set()
    for entry in doc["Parameters"]:
        documented.update(n.strip() for n in entry.name.split(","))
    missing = [p for p in params if p not in documented and p.lstrip("*") not in documented]
    if missing:
        problems.append(f"Parameters lacks {missing}")
    decorators = {getattr(d, "id", getattr(d, "attr", "")) for d in func.decorator_list}
    returns = func.returns is not None and ast.unparse(func.returns) not in ("None", "NoReturn")
    documents_return = "property" not in decorators and func.name != "__init__"
    if returns and documents_return and not doc["Returns"] and not doc["Yields"]:
        problems.append("no Returns section")
    if _raises(func) and not doc["Raises"]:
        problems.append("no Raises section")
    return problems


def test_every_public_function_of_the_core_has_numpydoc_sections():
    bad = [
        f"{_label(path, func, owner)}: {'; '.join(problems)}"
        for path, func, owner in _public_api()
        if (problems := _docstring_problems(func, owner))
    ]
    assert bad == []
