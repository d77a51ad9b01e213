"""Train dock, the class legend of the strokes: names, brush class, background id.

The names live in the strokes layer's features (``index`` and ``class``
columns, as Evaluate and new models read them), the colours in its colormap;
the background id is the dock's choice and goes into the training config. A
prediction made from these strokes (live or by a trained model) uses the same
ids, names and colours, with the background transparent.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, Container, LineEdit, PushButton
from napari.utils.notifications import show_warning

from .._layers import class_names_of, labels_layer_kwargs
from ..arrays.ids import painted_ids
from ._layers import full_resolution
from ._legend import _swatch_style

#: At most this many class rows are shown (ids above are still trained).
MAX_ROWS = 32
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


class StrokeClasses:
    """One row per class id of the strokes layer, and the background choice.

    Parameters
    ----------
    labels : callable
        Returns the strokes (Labels) layer chosen in the dock, or None.
    ignored : callable, optional
        Returns the ids left out of training (shown in no row).
    """

    def __init__(self, labels, ignored=tuple) -> None:
        self._labels = labels
        self._ignored = ignored
        self.rows = Container(labels=False, layout="vertical", label="classes")
        self.rows.margins = (0, 0, 0, 0)
        self._add = PushButton(text="New class")
        self._add.tooltip = "paint a new class id with the brush"
        self._ids: tuple[int, ...] = ()
        self._shown: tuple = ((), {})  # the ids and names the rows show
        # choices from a function: napari's reset_choices (on every layer change) reads it
        self.background = ComboBox(
            label="background id", choices=self._background_choices, value="none"
        )
        self.background.tooltip = (
            "the painted class that is background: shown transparent in predictions and "
            "left out of 'mean without background'"
        )
        self.widgets = [self.rows, self._add, self.background]
        self._add.clicked.connect(self.new_class)

    def _background_choices(self, _widget=None) -> list[str]:
        return ["none", *(str(i) for i in self._ids)]

    # -- reading -----------------------------------------------------------------
    def ids(self) -> tuple[int, ...]:
        """Class ids of the layer: painted ones and named ones (0 excluded: unpainted;
        the ids the dock leaves out too: they are no class)."""
        layer = self._labels()
        if layer is None:
            return ()
        painted = painted_ids(full_resolution(layer))
        named = class_names_of(layer)
        ids = {int(i) for i in painted if i > 0} | {i for i in named if i > 0}
        return tuple(sorted(ids - set(self._ignored())))[:MAX_ROWS]

    def names(self) -> dict[int, str]:
        """Class names by id (unnamed ids: "class N")."""
        layer = self._labels()
        named = class_names_of(layer) if layer is not None else {}
        return {i: named.get(i, f"class {i}") for i in self.ids()}

    def background_id(self) -> int | None:
        """The chosen background id, or None."""
        value = self.background.value
        return None if value in (None, "none") else int(value)

    def colors(self, num_classes: int) -> tuple[tuple[float, ...], ...]:
        """RGBA colours of ids 0..num_classes-1: the layer's, the background and
        id 0 (unpainted) transparent."""
        layer = self._labels()
        background = self.background_id()
        out = []
        for i in range(num_classes):
            if i in (0, background) or layer is None:
                out.append(TRANSPARENT)
            else:
                out.append(tuple(float(c) for c in layer.colormap.map(i)))
        return tuple(out)

    def prediction_kwargs(self, name: str, num_classes: int) -> dict[str, Any]:
        """``add_labels`` keyword arguments for a prediction from these strokes."""
        names = self.names()
        listed = ["unlabelled", *(names.get(i, f"class {i}") for i in range(1, num_classes))]
        colors = self.colors(num_classes)
        return labels_layer_kwargs(name, listed, colors, self.background_id())

    # -- actions -----------------------------------------------------------------
    def set_shown(self, shown: bool) -> None:
        """Show the legend, or hide it for instance labels (their ids are objects,
        not classes)."""
        for widget in self.widgets:
            widget.visible = shown

    def refresh(self, *_args) -> None:
        """Rebuild the rows when the layer's class ids or names changed."""
        ids, names = self.ids(), self.names()
        if (ids, names) == self._shown:
            return
        self._ids, self._shown = ids, (ids, names)
        self.rows.clear()
        layer = self._labels()
        for i in ids:
            color = layer.colormap.map(i) if layer is not None else TRANSPARENT
            button = PushButton(text=f"{i}")
            button.native.setStyleSheet(_swatch_style(color))
            button.native.setMaximumWidth(48)
            button.tooltip = f"paint class {i}"
            button.clicked.connect(lambda *_, i=i: self.pick(i))
            name = LineEdit(value=names[i])
            # on Enter or leaving the field (each keystroke would rebuild the rows)
            name.native.editingFinished.connect(lambda i=i, name=name: self.rename(i, name.value))
            row = Container(layout="horizontal", labels=False)
            row.margins = (0, 0, 0, 0)
            row.extend([button, name])
            self.rows.append(row)
        current = self.background.value
        self.background.reset_choices()
        self.background.value = current if current in self.background.choices else "none"

    def pick(self, class_id: int) -> None:
        """Make ``class_id`` the label the brush paints on the strokes layer."""
        layer = self._labels()
        if layer is not None:
            layer.selected_label = int(class_id)
            layer.mode = "paint"

    def new_class(self) -> None:
        """Select the next unused id for painting (a warning without a Labels layer)."""
        if self._labels() is None:
            show_warning("Choose a Labels layer to paint the new class in (or add one)")
            return
        ids = self.ids()
        self.pick((max(ids) if ids else 0) + 1)

    def rename(self, class_id: int, name: str) -> None:
        """Store the name of ``class_id`` in the layer's features."""
        layer = self._labels()
        if layer is None:
            return
        names = self.names()
        names[class_id] = str(name).strip() or f"class {class_id}"
        top = max(names)
        listed = ["unlabelled", *(names.get(i, f"class {i}") for i in range(1, top + 1))]
        layer.features = {"index": list(range(top + 1)), "class": listed}
