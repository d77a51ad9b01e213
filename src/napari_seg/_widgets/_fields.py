"""Compound fields: a number that may be "auto", and a file to write (never over an
existing file unless the user ticks "replace")."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, Container, FileEdit, SpinBox

from .._layers import ignored_of
from .._paths import user_path


class AutoInt(Container):
    """An integer field with an explicit "auto" choice; ``value`` is None when auto.

    Setting ``value`` to a number unticks "auto" (so ``field.value = 256`` reads
    as in a plain SpinBox); setting it to None ticks it.
    """

    def __init__(
        self,
        label: str,
        *,
        min: int,
        max: int,
        step: int = 1,
        start: int,
        tooltip: str = "",
    ) -> None:
        self._auto = CheckBox(text="auto", value=True)
        self._number = SpinBox(min=min, max=max, step=step, value=start, enabled=False)
        super().__init__(layout="horizontal", labels=False, label=label)
        self.margins = (0, 0, 0, 0)
        self.extend([self._auto, self._number])
        self.tooltip = tooltip
        self._auto.changed.connect(self._on_auto)

    def _on_auto(self, auto: bool) -> None:
        self._number.enabled = not auto

    @property
    def value(self) -> int | None:
        return None if self._auto.value else int(self._number.value)

    @value.setter
    def value(self, value: int | None) -> None:
        if value is None:
            self._auto.value = True
            return
        self._number.value = int(value)
        self._auto.value = False

    def show_chosen(self, value: int) -> None:
        """Show ``value`` as what "auto" chose (clipped to the field's range), without
        unticking it; unticking then starts from it.

        Parameters
        ----------
        value : int
        """
        if self._auto.value:
            self._number.value = max(self._number.min, min(self._number.max, int(value)))


def is_empty_file_field(value: object) -> bool:
    """Whether a magicgui file field's ``value`` means nothing was chosen: the field
    as a dock opens, or cleared, gives ``Path(".")`` (an empty string typed).

    Parameters
    ----------
    value : path-like or str

    Returns
    -------
    bool
    """
    return str(value) in ("", ".")


class SaveTarget(Container):
    """A file to write and whether an existing file there may be replaced.

    ``path`` is None while the field is empty; with a ``suffix``, a name typed
    without it gets it (``model`` and ``model.pt`` are written as
    ``model.safetensors`` and ``model.pt.safetensors``), as a file dialog does.
    """

    def __init__(
        self, label: str, *, filter: str, tooltip: str = "", suffix: str | None = None
    ) -> None:
        self._suffix = suffix
        self._file = FileEdit(mode="w", filter=filter)
        self._replace = CheckBox(text="replace an existing file", value=False)
        super().__init__(layout="vertical", labels=False, label=label)
        self.margins = (0, 0, 0, 0)
        self.extend([self._file, self._replace])
        self._file.tooltip = tooltip

    @property
    def path(self) -> Path | None:
        if is_empty_file_field(self._file.value):
            return None
        path = user_path(self._file.value)
        if self._suffix is not None and path.suffix.lower() != self._suffix:
            path = path.with_name(path.name + self._suffix)
        return path

    @property
    def value(self) -> Path:
        return user_path(self._file.value)

    @value.setter
    def value(self, value) -> None:
        self._file.value = value

    @property
    def overwrite(self) -> bool:
        return bool(self._replace.value)

    @overwrite.setter
    def overwrite(self, value: bool) -> None:
        self._replace.value = bool(value)


def model_file_problem(value) -> str | None:
    """What keeps the field's ``value`` from being a model file to load, or None.

    Parameters
    ----------
    value : path-like
        A file field's value (magicgui gives an empty field as the working folder).

    Returns
    -------
    str or None
    """
    if is_empty_file_field(value):
        return "no model file chosen; pick one with Select file"
    path = user_path(value)
    if path.is_dir():
        return f"{str(path)!r} is a folder; choose a model file (.safetensors) in it"
    if not path.is_file():
        return f"no file at {str(path)!r}"
    return None


def parse_ids(text: str) -> tuple[int, ...]:
    """The label ids of an "ignore ids" field: ``"0, 255"`` -> ``(0, 255)``, ``"-1"``
    -> ``(-1,)`` (the job's config says which ids it takes).

    Raises
    ------
    ValueError
        Naming the entry that is no whole number.
    """
    ids = []
    for part in text.replace(",", " ").split():
        if re.fullmatch(r"-?[0-9]+", part) is None:
            raise ValueError(f"ignore ids must be whole numbers, got {part!r}")
        ids.append(int(part))
    return tuple(ids)


class LayerDefault:
    """Keeps a ``field`` on what its chosen layer declares (``declared(layer)``, None
    for nothing), back to the field's first value for a layer that declares nothing,
    as long as the user has not set the field to a value of their own.

    Parameters
    ----------
    field : magicgui widget
        A value widget (``LineEdit``, ``ComboBox``...).
    declared : callable
        ``declared(layer)``: the value the layer (or None) asks for, or None.
    """

    def __init__(self, field, declared: Callable[[Any], Any]) -> None:
        self.field = field
        self._declared = declared
        self._default = self._filled = field.value

    def follow(self, layer) -> None:
        """Show what ``layer`` declares, unless the field holds the user's own value.

        Parameters
        ----------
        layer : napari layer or None
        """
        if self.field.value not in (self._default, self._filled):  # the user's own
            return
        value = self._declared(layer)
        self._filled = self._default if value is None else value
        self.field.value = self._filled


def declared_ignore_ids(layer) -> str | None:
    """The "ignore ids" a Labels layer records (``_layers.IGNORE_KEY``: a dataset's
    "ignore" label) as the field shows them; None when it records none."""
    ids = ignored_of(layer)
    return ", ".join(str(i) for i in ids) if ids else None
