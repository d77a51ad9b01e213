"""The "Refine" dock widget: clean up a Labels layer, one undoable step per apply."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton, create_widget
from napari.layers import Labels, Shapes
from napari.utils.notifications import show_error, show_info, show_warning

from .._layers import background_of
from ..refine.inputs import image_channel_axis, input_pixels
from ..refine.operations import OPERATIONS, get_operation
from ..refine.pipeline import RefineConfig, RefineProgress, RefineResult, RefineStep
from ..refine.scope import RefineScope, plan_refine_scope
from ._current import CurrentModel
from ._dock import Dock
from ._history import changed_positions, writable, write_undoable
from ._layers import add_labels, full_resolution, viewer_position
from ._legend import ClassLegend
from ._params import param_widget, read_params
from ._place import Place, window_grids
from ._runner import JobRunner, RunnerFields
from ._shared import current_model_for, forward_events, same_layer

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

SCOPE_CHOICES = (
    ("current slice", "slice"),
    ("each slice (2D)", "each"),
    ("whole stack (3D)", "volume"),
)
OUTPUT_CHOICES = (("replace (Ctrl+Z undoes)", "replace"), ("new layer", "new"))


@dataclass(frozen=True)
class _Placement:
    """What the main thread needs to place a finished run's result."""

    layer_name: str
    scope: RefineScope
    preview: bool
    output: str
    makes_instances: bool
    shape: tuple[int, ...]


def _refine_job(sources: dict[str, Any], index: tuple, config, channel_axis, *, cancel):
    """Worker body: read the indexed blocks, then forward the refine job's events."""
    from ..refine import iter_refine

    blocks = {}
    for name, array in sources.items():
        lead = (slice(None),) if name == "probabilities" else ()
        blocks[name] = np.array(array[(*lead, *index)])
    labels = blocks.pop("labels")
    events = iter_refine(labels, config, channel_axis=channel_axis, **blocks)
    result = yield from forward_events(events, cancel)
    if result is None:
        return None
    # Where the job changed the labels, found here rather than on the main thread.
    return _Done(result, changed_positions(result.labels, labels))


@dataclass(frozen=True)
class _Done:
    """A finished job: its result and where it changed the labels it read (only those
    pixels are written, so edits made to the layer meanwhile are kept elsewhere)."""

    result: RefineResult
    changed: tuple[np.ndarray, ...]


class RefineWidget(RunnerFields, Dock):
    """Refine a Labels layer: morphology, instances, class edits and CRF, in a worker.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    current : CurrentModel, optional
        The viewer's shared model (its card gives the class legend).
    """

    def __init__(self, viewer: napari.viewer.Viewer, current: CurrentModel | None = None):
        super().__init__(viewer)
        self.current = current if current is not None else current_model_for(viewer)
        self._run_info: _Placement | None = None
        self._inputs: list = []
        self.last_changed: int | None = None
        self._labels = create_widget(annotation="napari.layers.Labels", label="labels")
        self.legend = ClassLegend(viewer, self.current, lambda: self._labels.value)
        self._op = ComboBox(
            label="operation", choices=[(op.title, op.name) for op in OPERATIONS.values()]
        )
        self._params = Container(labels=True)
        self._image = create_widget(
            annotation="napari.layers.Image", label="image", options={"nullable": True}
        )
        self._probabilities = create_widget(
            annotation="napari.layers.Image", label="probabilities", options={"nullable": True}
        )
        self._region = create_widget(
            annotation="napari.layers.Layer",
            label="region (shapes/labels)",
            options={"nullable": True},
        )
        self._reference = create_widget(
            annotation="napari.layers.Labels", label="reference", options={"nullable": True}
        )
        self._scope = ComboBox(label="apply to", choices=SCOPE_CHOICES, value="slice")
        self._output = ComboBox(label="result", choices=OUTPUT_CHOICES, value="replace")
        self._preview = PushButton(text="Preview slice")
        self._apply = PushButton(text="Apply")
        self.runner = JobRunner(
            "Refine",
            busy=[self._preview, self._apply],
            notify_error=lambda message: show_error(message),
            notify_warning=lambda message: show_warning(message),
        )
        self.body.extend(
            [
                self.legend,
                self._labels,
                self._op,
                self._params,
                self._image,
                self._probabilities,
                self._region,
                self._reference,
                self._scope,
                self._output,
                *self.runner.widgets,
            ]
        )
        self._connect()
        self._on_op_changed()

    def _connect(self) -> None:
        self._op.changed.connect(self._on_op_changed)
        self._labels.changed.connect(self.legend.refresh)
        self._labels.changed.connect(self._default_background)
        self.current.connect(self._default_background)
        self._preview.clicked.connect(self.preview)
        self._apply.clicked.connect(self.apply)
        self.native.destroyed.connect(self._on_destroyed)

    # -- mapping fields to a config --------------------------------------------------
    def step(self) -> RefineStep:
        """The operation and parameters the fields describe (validated)."""
        op = get_operation(self._op.value)
        return RefineStep(op.name, read_params(op, self._params)).validate()

    def config(self, scope: RefineScope) -> RefineConfig:
        return RefineConfig(
            steps=(self.step(),), per_slice=scope.per_slice, axis=scope.axis
        ).validate()

    def _scope_of(self, layer, scope: str) -> RefineScope:
        displayed, step = viewer_position(self._viewer, layer)
        shape = full_resolution(layer).shape
        return plan_refine_scope(shape, displayed=displayed, step=step, scope=scope)

    # -- actions -----------------------------------------------------------------------
    def preview(self) -> None:
        """Run the operation on the slice on screen (on the stack for an operation on
        volumes) and show it as a preview layer."""
        self._start(preview=True)

    def apply(self) -> None:
        """Run the operation on the chosen scope; the result replaces the labels as one
        undoable step (or goes to a new layer)."""
        self._start(preview=False)

    def cancel(self) -> None:
        """Stop the running job at its next step; no layer is changed."""
        self.runner.cancel()

    def _start(self, *, preview: bool) -> None:
        if self.runner.running:
            show_warning("Refine is already running; cancel it first")
            return
        layer = self._labels.value
        if layer is None:
            show_error("Cannot refine: choose a Labels layer")
            return
        try:
            whole = get_operation(self._op.value).volume_only
            scope = self._scope_of(layer, "slice" if preview and not whole else self._scope.value)
            config = self.config(scope)
            sources, channel_axis, chosen = self._sources(layer, config)
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot refine {layer.name}: {exc}")
            return
        output = "new" if config.makes_instances else self._output.value
        if output == "replace" and not preview and not _in_place(layer):
            output = "new"
        self._run_info = _Placement(
            layer.name, scope, preview, output, config.makes_instances, full_resolution(layer).shape
        )
        self._inputs = [layer, *chosen]
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        self.runner.start(
            _refine_job,
            sources,
            scope.index,
            config,
            channel_axis,
            on_event=self._on_event,
            on_result=self._on_returned,
            on_error=self._on_error,
            on_finished=self._on_finished,
            status=f"{config.steps[0].op}...",
        )

    def _sources(self, layer, config: RefineConfig) -> tuple[dict[str, Any], int | None, list]:
        """Array handles the job reads (main thread), shapes checked against the labels;
        the channel axis of the image; the input layers chosen."""
        op = get_operation(config.steps[0].op)
        wanted = set(op.needs) | set(op.optional)
        shape = full_resolution(layer).shape
        sources: dict[str, Any] = {"labels": full_resolution(layer)}
        channel_axis = None
        chosen_layers = []
        fields = {
            "image": self._image,
            "probabilities": self._probabilities,
            "region": self._region,
            "reference": self._reference,
        }
        for name in ("image", "probabilities", "region", "reference"):
            chosen = fields[name].value if name in wanted else None
            if chosen is None:
                if name in op.needs:
                    raise ValueError(f"{op.name} needs {name}: choose a layer")
                continue
            chosen_layers.append(chosen)
            array = _region_mask(chosen, shape) if name == "region" else _under(chosen, layer)
            if name == "image":  # RGB colours, else the axis the labels lack (CYX)
                rgb = getattr(chosen, "rgb", False)
                channel_axis = -1 if rgb else image_channel_axis(array.shape, shape)
            spatial = input_pixels(name, array.shape, channel_axis)
            if spatial != tuple(shape):
                raise ValueError(
                    f"the {name} layer {chosen.name!r} covers {spatial}, the labels "
                    f"{tuple(shape)}; they must match pixel for pixel"
                )
            sources[name] = array
        return sources, channel_axis, chosen_layers

    # -- callbacks (main thread) --------------------------------------------------------
    def _default_background(self, *_args) -> None:
        """The "background" parameter defaults to the labels layer's background id
        (recorded by Segment and the live update), else the current model's, else 0."""
        model = self.current.model
        fallback = model.spec.background if model is not None else 0
        background = background_of(self._labels.value, default=fallback)
        for widget in self._params:
            if widget.name == "background" and background is not None:
                widget.value = background

    def _on_op_changed(self, *_args) -> None:
        op = get_operation(self._op.value)
        self._params.clear()
        for param in op.params:
            self._params.append(param_widget(param))
        self._default_background()
        wanted = set(op.needs) | set(op.optional)
        self._image.visible = "image" in wanted
        self._probabilities.visible = "probabilities" in wanted
        self._region.visible = "region" in wanted
        self._reference.visible = "reference" in wanted
        self._output.enabled = not op.makes_instances
        self._op.tooltip = op.description
        # An operation on whole volumes runs on the stack (its preview too).
        if op.volume_only:
            self._scope.value = "volume"
        self._scope.enabled = not op.volume_only
        self._preview.text = "Preview stack" if op.volume_only else "Preview slice"

    def _on_event(self, event) -> None:
        if isinstance(event, RefineProgress):
            fraction = event.done / event.total if event.total else 1.0
            self.runner.report(fraction, f"{event.op}: {event.done:.1f}/{event.total}")

    def _on_layer_removed(self, event) -> None:
        if self.runner.running and any(same_layer(event.value, x) for x in self._inputs):
            message = f"the layer {event.value.name!r} was removed; nothing written"
            self.runner.cancel(message)
            self._run_info = None
            show_info(f"napari-seg Refine: {message}")

    def _on_returned(self, done: _Done | None) -> None:
        run, self._run_info = self._run_info, None
        if done is None or run is None:
            self.runner.set_status(self.runner.cancel_reason or "cancelled; no layer was changed")
            return
        layers = self._viewer.layers
        if run.layer_name not in layers or layers[run.layer_name].data.shape != run.shape:
            show_error(f"Refine: the layer {run.layer_name!r} changed or is gone; nothing written")
            self.runner.set_status("layer gone; nothing written")
            return
        layer = layers[run.layer_name]
        result = done.result
        if not run.preview and not any(isinstance(i, int) for i in run.scope.index):
            for message in result.warnings:  # the whole layer lacks a class it was given
                show_warning(f"napari-seg Refine: {message}")
        if run.preview or run.output == "new":
            name = self._place_layer(layer, run, result.labels)
            self.runner.set_status(f"{result.changed} pixels differ; shown in {name!r}")
            return
        try:
            self.last_changed = write_undoable(
                layer, run.scope.index, result.labels, changed=done.changed
            )
        except ValueError as exc:
            show_error(f"Refine: {exc}")
            self.runner.set_status(f"failed: {exc}")
            return
        self._remove_preview(layer.name)
        self.runner.set_progress(1.0)
        self.runner.set_status(
            f"{self.last_changed} pixels changed in {result.seconds:.1f} s (Ctrl+Z undoes)"
        )
        logger.info("refined %s: %d pixels changed", layer.name, self.last_changed)

    def _place_layer(self, layer, run: _Placement, labels: np.ndarray) -> str:
        """Show a result beside ``layer``: a preview, instances, or a refined copy."""
        if run.preview:
            name = f"{layer.name} [preview]"
        elif run.makes_instances:
            name = f"{layer.name} instances"
        else:
            name = f"{layer.name} refined"
        fixed = [a for a, i in enumerate(run.scope.index) if isinstance(i, int)]
        data = np.expand_dims(labels, axis=fixed) if fixed else labels
        origin = [run.scope.index[a] if a in fixed else 0 for a in range(layer.ndim)]
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        kwargs = (
            {} if run.makes_instances else {"colormap": layer.colormap, "features": layer.features}
        )
        add_labels(
            self._viewer,
            data,
            window=self.native,
            name=name,
            opacity=0.8,
            **Place.of(layer).shifted(origin).kwargs(),
            **kwargs,
        )
        self._viewer.layers.selection.active = layer
        return name

    def _remove_preview(self, name: str) -> None:
        preview = f"{name} [preview]"
        if preview in self._viewer.layers:
            self._viewer.layers.remove(preview)

    def _on_error(self, _exc: BaseException) -> None:
        self._run_info = None

    def _on_finished(self) -> None:
        self._viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self._inputs = []

    def _on_destroyed(self, *_args) -> None:
        self.current.disconnect(self._default_background)
        self.runner.close()


def _under(layer, labels):
    """``layer``'s full-resolution data, or when it and ``labels`` are medical volumes
    and the labels cover a window of its grid (a 3D Slicer segmentation cropped to its
    segments), its voxels under the labels (a slice, not a copy:
    :func:`~napari_seg.medical.crop_to_grid`)."""
    from ..medical import crop_to_grid

    array = full_resolution(layer)
    grids = window_grids(labels, layer)
    if grids is None:
        return array
    return crop_to_grid(array, grids[1], grids[0], (layer.name, labels.name))


def _in_place(layer) -> bool:
    """Whether the result may replace the layer's labels in place; if not, says why
    (the result then goes to a new layer)."""
    if getattr(layer, "multiscale", False):  # writing level 0 leaves the others stale
        why = "is multiscale (a pyramid), which cannot change in place (its levels would differ)"
    elif not writable(layer.data):
        why = (
            "holds a read-only or lazy array (e.g. read from a file with dask) that "
            "cannot change in place"
        )
    else:
        return True
    show_info(f"napari-seg Refine: {layer.name} {why}: the result is a new layer")
    return False


def _region_mask(layer, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask of ``shape`` from a Shapes layer (its shapes filled) or a Labels layer."""
    if isinstance(layer, Shapes):
        if len(layer.data) == 0:
            raise ValueError(f"the Shapes layer {layer.name!r} has no shapes")
        if layer.ndim != len(shape):
            raise ValueError(
                f"the Shapes layer {layer.name!r} has {layer.ndim} axes, labels {len(shape)}"
            )
        return np.asarray(layer.to_masks(mask_shape=shape)).any(axis=0)
    if isinstance(layer, Labels):
        return np.asarray(full_resolution(layer)) != 0
    kind = type(layer).__name__
    raise ValueError(f"the region must be a Shapes or Labels layer, got {kind} {layer.name!r}")


def refine_widget(viewer: napari.viewer.Viewer) -> RefineWidget:
    """The Refine widget, sharing the viewer's current model."""
    return RefineWidget(viewer, current_model_for(viewer))
