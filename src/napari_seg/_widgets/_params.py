"""magicgui fields for the parameters of a refine operation, and reading them back."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox

from ..refine.operations import Operation, Param


def param_widget(param: Param):
    """One field for ``param``, showing its default; its tooltip is the parameter's help."""
    label = param.name.replace("_", " ")
    if param.kind == "bool":
        widget = CheckBox(text=label, value=bool(param.default))
    elif param.choices:
        widget = ComboBox(label=label, choices=list(param.choices), value=param.default)
    elif param.kind == "int":
        low = int(param.minimum) if param.minimum is not None else -(2**31)
        default = param.default if param.default is not None else max(low, 1)
        high = int(param.maximum) if param.maximum is not None else 2**31 - 1
        widget = SpinBox(label=label, min=low, max=high, value=default)
    elif param.kind == "float":
        low = float(param.minimum) if param.minimum is not None else -1e9
        widget = FloatSpinBox(label=label, min=low, max=1e9, step=0.05, value=param.default)
    else:  # str, ints and mappings are typed as text, parsed like the command line
        widget = LineEdit(label=label, value=_text(param.default))
    widget.name = param.name
    widget.tooltip = param.help + ("" if param.required else " (empty: default)")
    return widget


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def read_params(operation: Operation, widgets) -> dict[str, Any]:
    """The parameters the fields hold (text fields parsed; empty means the default)."""
    params = {}
    for widget in widgets:
        param = operation.param_map.get(widget.name)
        if param is None:
            continue
        value = widget.value
        if isinstance(widget, LineEdit):
            if not value.strip():
                continue
            value = param.parse(value)
        params[param.name] = value
    return params
