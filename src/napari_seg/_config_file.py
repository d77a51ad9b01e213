"""Reading and writing job configs as JSON or YAML (by suffix), atomically.

Files are read in bounded memory: at most ``MAX_CONFIG_BYTES``, YAML without
anchors or aliases (so a "billion laughs" file cannot expand), no YAML tags
that build Python objects (``safe_load`` rules), and nesting deep enough to
exhaust the parser's stack is an error naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .limits import MAX_CONFIG_BYTES, brief

YAML_SUFFIXES = (".yaml", ".yml")


def reject_unknown(data, known, what: str) -> None:
    """Raise a ValueError naming the keys of ``data`` not in ``known`` (and the known ones)."""
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(
            f"unknown {what} setting(s) {brief(sorted(map(str, unknown)))}; known: {sorted(known)}"
        )


def _safe_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses anchors and aliases."""

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    "YAML anchors and aliases (&name, *name) are not accepted in napari-seg files",
                    event.start_mark,
                )
            return super().compose_node(parent, index)

    return NoAliasLoader


def parse_text(text: str, *, yaml_format: bool, source: str = "config") -> Any:
    """The parsed content of JSON or YAML ``text`` (``source`` names it in errors).

    Raises
    ------
    ValueError
        If the text cannot be parsed, uses YAML aliases, or nests too deeply.
    """
    import yaml

    kind = "YAML" if yaml_format else "JSON"
    try:
        if yaml_format:
            return yaml.load(text, Loader=_safe_loader())
        return json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{source} is not valid {kind}: {exc}") from None
    except RecursionError:
        raise ValueError(f"{source} nests too deeply to be a napari-seg {kind} file") from None


def read_mapping(path: str | Path) -> Any:
    """The parsed content of a ``.json`` or ``.yaml``/``.yml`` file.

    Raises
    ------
    ValueError
        If the file is larger than ``MAX_CONFIG_BYTES`` or cannot be parsed.
    OSError
        If it cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a JSON or YAML file")
    with open(path, "rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(
            f"{path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; it is not a napari-seg config"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file (not UTF-8)") from None
    return parse_text(text, yaml_format=path.suffix.lower() in YAML_SUFFIXES, source=str(path))


def write_mapping(path: str | Path, data: Any, *, overwrite: bool = False) -> Path:
    """Write ``data`` atomically as JSON, or YAML when the suffix says so.

    An existing file is replaced only with ``overwrite=True``.
    """
    from ._atomic import atomic_write

    path = Path(path)
    if path.suffix.lower() in YAML_SUFFIXES:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2)
    with atomic_write(path, overwrite=overwrite) as handle:
        handle.write(text.encode())
    return path
