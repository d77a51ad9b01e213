"""Train dock, part 1: the (Image, Labels) layer pairs to train on, their axes and classes."""

from __future__ import annotations

from magicgui.widgets import Container, PushButton, Select, create_widget
from napari.utils.notifications import show_error

from .._layers import class_names_of
from ..arrays.channels import channel_axis_of, labels_channel_axis
from ..arrays.screen import stack_axes
from ..training.config import named_classes
from ._layers import full_resolution, viewer_position


def pair_text(pair: tuple[str, str]) -> str:
    return f"{pair[0]}  +  {pair[1]}"


class PairsPanel:
    """Pick an image and its labels, or add several pairs to a list.

    Pairs are kept by layer name and looked up when a run starts, so a layer
    renamed or removed meanwhile is reported then. ``widgets`` are placed in the
    dock's body (one column of labels for the whole dock).
    """

    def __init__(self, viewer) -> None:
        self._viewer = viewer
        self.image = create_widget(annotation="napari.layers.Image", label="image")
        self.labels = create_widget(annotation="napari.layers.Labels", label="labels")
        self._add = PushButton(text="Add pair")
        self._remove = PushButton(text="Remove selected")
        buttons = Container(layout="horizontal", labels=False, label="")
        buttons.margins = (0, 0, 0, 0)
        buttons.extend([self._add, self._remove])
        self.names: list[tuple[str, str]] = []
        # the list's choices as a function of the pairs: napari resets a dock's
        # choices whenever a layer is added, which a set list would empty
        self.pairs = Select(label="pairs", choices=self._pair_choices)
        self.pairs.tooltip = "pairs to train on; none: the image and labels chosen above"
        self.pairs.native.setMaximumHeight(72)
        self.widgets = [self.image, self.labels, buttons, self.pairs]
        self._add.clicked.connect(self.add_pair)
        self._remove.clicked.connect(self.remove_selected_pairs)

    def add_pair(self) -> None:
        """Add the chosen (image, labels) layers to the pairs list."""
        image, labels = self.image.value, self.labels.value
        if image is None or labels is None:
            show_error("Choose an Image layer and a Labels layer to pair")
            return
        pair = (image.name, labels.name)
        if pair not in self.names:
            self.names.append(pair)
        self.pairs.reset_choices()

    def remove_selected_pairs(self) -> None:
        selected = set(self.pairs.value)
        self.names = [p for p in self.names if pair_text(p) not in selected]
        self.pairs.reset_choices()

    def _pair_choices(self, *_args) -> list[str]:
        return [pair_text(p) for p in self.names]

    def layer_pairs(self) -> list[tuple]:
        """The (image layer, labels layer) pairs of the next run.

        Raises
        ------
        ValueError
            If nothing is chosen or a listed layer is gone.
        """
        layers = self._viewer.layers
        names = self.names or [
            (layer.name, other.name)
            for layer, other in [(self.image.value, self.labels.value)]
            if layer is not None and other is not None
        ]
        if not names:
            raise ValueError("choose an Image layer and a Labels layer (or add pairs)")
        missing = [n for pair in names for n in pair if n not in layers]
        if missing:
            raise ValueError(f"layer(s) no longer in the viewer: {', '.join(missing)}")
        return [(layers[i], layers[lab]) for i, lab in names]

    def axes(
        self, layer, in_channels: int | None, spatial_dims: int = 2, labels=None
    ) -> tuple[int | tuple[int, ...] | None, int | None]:
        """Stack axes (every axis the viewer steps through: a TZYX layer trains on the
        planes of all its frames; with ``spatial_dims=3`` on the volumes of all its
        frames) and channel axis, by the layout rule
        (:mod:`napari_seg.arrays.layout`); a new model reads 3 channels from an RGB
        layer, the slider axis its ``labels`` layer lacks (a CYX layer painted with YX
        labels), else 1."""
        shape = full_resolution(layer).shape
        displayed, _ = viewer_position(self._viewer, layer)
        given = None
        if in_channels is None and not layer.rgb and labels is not None:
            lacking = full_resolution(labels).shape
            given = labels_channel_axis(shape, lacking, exclude=displayed)
        if in_channels is None:
            in_channels = 3 if layer.rgb else 1 if given is None else shape[given]
        channel_axis = channel_axis_of(
            shape, in_channels=in_channels, given=given, rgb=bool(layer.rgb), spatial=displayed
        )
        if len(shape) - (channel_axis is not None) <= 2:
            return None, channel_axis
        axis = stack_axes(
            len(shape), displayed=displayed, channel_axis=channel_axis, spatial_dims=spatial_dims
        )
        return axis, channel_axis


def new_model_class_names(label_layers, label0: str, ignore=()) -> tuple[str, ...]:
    """A new model's class names from the labels layers' features
    (:func:`~napari_seg.training.config.named_classes`)."""
    return named_classes(class_names_of(*label_layers), label0, ignore)
