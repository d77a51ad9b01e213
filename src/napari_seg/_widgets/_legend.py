"""The class legend: names and colours of the classes, one click sets the brush label."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import Container, Label, PushButton
from napari.layers import Labels

from .._layers import background_of, class_names_of, labels_layer_kwargs
from ._current import CurrentModel

if TYPE_CHECKING:
    import napari


def classes_of_layer(layer) -> tuple[tuple[str, ...], tuple[tuple[float, ...], ...]]:
    """Class names (read as Evaluate reads them) and their colours, when the ids are
    0..n-1; else nothing."""
    if layer is None:
        return (), ()
    named = class_names_of(layer)
    if sorted(named) != list(range(len(named))):
        return (), ()
    names = tuple(named[i] for i in range(len(named)))
    colors = tuple(tuple(float(c) for c in layer.colormap.map(i)) for i in range(len(named)))
    return names, colors


class ClassLegend(Container):
    """Class names and colours of the current model (or of the target layer).

    Clicking a class sets ``selected_label`` of the active Labels layer (or of
    ``target()`` when the active layer is not a Labels layer), the label napari's
    brush and fill paint. "Colour the layer" gives the target layer the
    legend's colormap and class features, so predictions, ground truth and
    training labels share one colour per class.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    current : CurrentModel
    target : callable
        Returns the Labels layer chosen in the hosting widget (or None).
    """

    def __init__(self, viewer: napari.viewer.Viewer, current: CurrentModel, target) -> None:
        super().__init__(labels=False, layout="vertical")
        self._viewer = viewer
        self.current = current
        self._target = target
        self.names: tuple[str, ...] = ()
        self.colors: tuple[tuple[float, ...], ...] = ()
        self._title = Label(value="classes")
        self._rows = Container(labels=False, layout="vertical")
        self._rows.margins = (0, 0, 0, 0)
        self._colour = PushButton(text="Colour the layer with these classes")
        self.extend([self._title, self._rows, self._colour])
        self._colour.clicked.connect(self.colour_layer)
        self.current.connect(self.refresh)
        self.native.destroyed.connect(self._on_destroyed)
        self.refresh()

    def refresh(self, *_args) -> None:
        """Rebuild the rows from the current model, else from the target layer."""
        model = self.current.model
        if model is not None:
            names, colors = model.spec.class_names, model.spec.class_colors
            source = "model"
        else:
            names, colors = classes_of_layer(self._target())
            source = "layer"
        self.names, self.colors = tuple(names), tuple(colors)
        self._rows.clear()
        for i, (name, color) in enumerate(zip(self.names, self.colors, strict=True)):
            button = PushButton(text=f"{i}: {name}")
            button.native.setStyleSheet(_swatch_style(color))
            button.clicked.connect(lambda *_, i=i: self.pick(i))
            self._rows.append(button)
        self._title.value = (
            f"classes ({source}) - click one to paint it" if self.names else "classes: none known"
        )
        self._colour.enabled = bool(self.names)

    def paint_layer(self):
        """The Labels layer a pick applies to."""
        active = self._viewer.layers.selection.active
        if isinstance(active, Labels):
            return active
        return self._target()

    def pick(self, class_id: int) -> None:
        """Make ``class_id`` the label napari's brush paints."""
        layer = self.paint_layer()
        if layer is not None:
            layer.selected_label = int(class_id)

    def colour_layer(self) -> None:
        """Give the target layer this legend's colours and class names."""
        layer = self._target()
        if layer is None or not self.names:
            return
        model = self.current.model
        background = model.spec.background if model is not None else background_of(layer)
        kwargs = labels_layer_kwargs(layer.name, self.names, self.colors, background)
        layer.colormap = kwargs["colormap"]
        layer.features = kwargs["features"]
        layer.metadata = {**layer.metadata, **kwargs["metadata"]}

    def _on_destroyed(self, *_args) -> None:
        self.current.disconnect(self.refresh)


def _swatch_style(color) -> str:
    """A button style showing ``color``; transparent classes get an outline instead."""
    r, g, b = (round(255 * float(c)) for c in color[:3])
    alpha = float(color[3]) if len(color) > 3 else 1.0
    if alpha < 0.3:  # e.g. background: keep the theme's colours, show the swatch as a frame
        return "text-align: left; padding: 2px 6px; border: 1px dashed gray;"
    text = "black" if (0.299 * r + 0.587 * g + 0.114 * b) > 140 else "white"
    return (
        f"background-color: rgba({r}, {g}, {b}, {alpha:.2f}); color: {text}; "
        "text-align: left; padding: 2px 6px;"
    )
