"""The "Segment" dock widget: tiled prediction of an Image layer into a Labels layer."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from .._layers import labels_layer_kwargs
from ..inference.config import PRECISIONS, PredictConfig
from ..inference.events import (
    PredictProgress,
    PredictResult,
    PredictStarted,
    PredictWarning,
    SettingsAdjusted,
)
from ..inference.scope import ScopePlan, plan_scope
from ..models.current import CurrentModel
from ._history import write_undoable
from ._model import _load_job
from ._shared import current_model_for, fill_device_choices, forward_events

if TYPE_CHECKING:
    import napari

SCOPE_CHOICES = (
    ("current slice", "slice"),
    ("whole stack", "stack"),
    ("visible region", "visible"),
)


@dataclass(frozen=True)
class _Run:
    """What the main thread needs to place a finished run's result."""

    image_name: str
    plan: ScopePlan
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    labels_name: str
    probabilities_name: str
    class_names: tuple[str, ...]
    class_colors: tuple[tuple[float, ...], ...]


def _predict_job(model, image, config: PredictConfig, cancel: threading.Event):
    """Worker body: forward the predictor's events; stop at the next batch on ``cancel``."""
    from ..inference import iter_predict

    return (yield from forward_events(iter_predict(model, image, config), cancel))


class SegmentWidget(Container):
    """Segment an Image layer with the current model, tile by tile, in a worker.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    current : CurrentModel, optional
        The model holder shared with the Model widget of ``viewer``.
    """

    def __init__(self, viewer: napari.viewer.Viewer, current: CurrentModel | None = None):
        super().__init__(labels=True)
        self._viewer = viewer
        self.current = current if current is not None else current_model_for(viewer)
        self._worker = None
        self._loader = None
        self._cancel_event = threading.Event()
        self._run_info: _Run | None = None
        self._image = create_widget(annotation="napari.layers.Image", label="image")
        self._model_info = Label(label="model")
        self._model_path = FileEdit(label="model file", mode="r", filter="*.safetensors")
        self._load = PushButton(text="Load model file")
        self._device = ComboBox(label="device", choices=[("auto", "auto")], value="auto")
        self._tile = SpinBox(label="tile (0: auto)", min=0, max=8192, step=32, value=0)
        self._overlap = SpinBox(label="overlap (-1: auto)", min=-1, max=4096, step=16, value=-1)
        self._batch = SpinBox(label="batch (0: auto)", min=0, max=256, value=0)
        self._tile.tooltip = "tile side in pixels; auto: 512 on CPU, up to 1024 on a large GPU"
        self._overlap.tooltip = "overlap between tiles in pixels; auto: a quarter of the tile"
        self._batch.tooltip = "tiles per forward pass; auto: 1 on CPU, more on a GPU"
        self._precision = ComboBox(label="precision", choices=list(PRECISIONS), value="auto")
        self._scope = ComboBox(label="scope", choices=SCOPE_CHOICES, value="stack")
        self._probabilities = CheckBox(text="also output probabilities", value=False)
        self._update = CheckBox(text="update the previous output layer", value=True)
        self._run = PushButton(text="Segment")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self._status = Label(label="status", value="idle")
        self.extend(
            [
                self._image,
                self._model_info,
                self._model_path,
                self._load,
                self._device,
                self._tile,
                self._overlap,
                self._batch,
                self._precision,
                self._scope,
                self._probabilities,
                self._update,
                self._run,
                self._cancel,
                self._progress,
                self._status,
            ]
        )
        self._connect()
        self._on_model_changed(self.current)
        fill_device_choices(self._device)

    def _connect(self) -> None:
        self._run.clicked.connect(self.run)
        self._cancel.clicked.connect(self.cancel)
        self._load.clicked.connect(self.load_model)
        self.current.connect(self._on_model_changed)
        self.native.destroyed.connect(self._on_destroyed)

    # -- mapping fields to a config ------------------------------------------------
    def config(self, plan: ScopePlan | None = None) -> PredictConfig:
        """The :class:`PredictConfig` the fields describe (validated)."""
        return PredictConfig(
            device=self._device.value,
            tile=self._tile.value or None,
            overlap=None if self._overlap.value < 0 else self._overlap.value,
            batch_size=self._batch.value or None,
            precision=self._precision.value,
            probabilities=self._probabilities.value,
            channel_axis=None if plan is None else plan.channel_axis,
            axis=None if plan is None else plan.axis,
        ).validate()

    def _plan(self, layer, model) -> ScopePlan:
        """Describe the viewer's state for :func:`plan_scope` (main thread)."""
        data = layer.data[0] if layer.multiscale else layer.data
        dims = self._viewer.dims
        offset = dims.ndim - layer.ndim
        displayed = [d - offset for d in dims.displayed if d >= offset]
        step = [int(np.round(v)) for v in layer.world_to_data(dims.point)]
        visible = None
        if self._scope.value == "visible":
            corners = np.asarray(layer.corner_pixels)
            visible = [(int(lo), int(hi) + 1) for lo, hi in corners.T]
        return plan_scope(
            data.shape,
            in_channels=model.spec.in_channels,
            rgb=bool(layer.rgb),
            displayed=displayed,
            step=step,
            scope=self._scope.value,
            visible=visible,
        )

    # -- actions ---------------------------------------------------------------------
    def run(self) -> None:
        """Segment the chosen image with the current model in a worker."""
        model, layer = self.current.model, self._image.value
        if self._worker is not None:
            show_warning("Segment is already running; cancel it first")
            return
        if model is None:
            show_error("Cannot segment: no model yet (create or load one)")
            return
        if layer is None:
            show_error("Cannot segment: choose an Image layer")
            return
        try:
            plan = self._plan(layer, model)
            config = self.config(plan)
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot segment {layer.name}: {exc}")
            return
        data = layer.data[0] if layer.multiscale else layer.data
        self._run_info = self._describe_run(layer, plan, model)
        self._cancel_event = threading.Event()
        self._set_busy(True)
        self._status.value = "starting..."
        self._worker = create_worker(
            _predict_job,
            model,
            data[plan.data_index],
            config,
            self._cancel_event,
            _connect={
                "yielded": self._on_event,
                "returned": self._on_returned,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )

    def cancel(self) -> None:
        """Stop the running job at its next batch; no layer is changed."""
        if self._worker is not None:
            self._cancel_event.set()
            self._status.value = "cancelling..."

    def load_model(self) -> None:
        """Load the "model file" into the current model (shared with Model), in a worker."""
        path = Path(self._model_path.value)
        if not path.is_file():
            show_error(f"Cannot load model: no file at {str(path)!r}")
            return
        self._load.enabled = False
        self._loader = create_worker(
            _load_job,
            path,
            "cpu" if self._device.value == "auto" else self._device.value,
            _connect={
                "returned": self._on_model_loaded,
                "errored": self._on_error,
                "finished": self._on_load_finished,
            },
        )

    # -- helpers -----------------------------------------------------------------
    def _describe_run(self, layer, plan: ScopePlan, model) -> _Run:
        spec = model.spec
        keep = list(range(layer.ndim))
        if not layer.rgb and plan.channel_axis is not None:
            # A channel axis among the layer's axes has no place in the labels' scale/translate.
            kept = [i for i, a in enumerate(plan.data_index) if not isinstance(a, int)]
            keep.remove(kept[plan.channel_axis])
        if self.current.path is not None:
            tag = self.current.path.stem
        else:
            tag = "-".join(p for p in (spec.architecture, spec.encoder) if p)
        return _Run(
            image_name=layer.name,
            plan=plan,
            scale=tuple(float(layer.scale[a]) for a in keep),
            translate=tuple(float(layer.translate[a]) for a in keep),
            labels_name=f"{layer.name} labels [{tag}]",
            probabilities_name=f"{layer.name} probabilities [{tag}]",
            class_names=spec.class_names,
            class_colors=spec.class_colors,
        )

    def _set_busy(self, busy: bool) -> None:
        self._run.enabled = not busy
        self._cancel.enabled = busy
        if busy:
            self._progress.value = 0

    # -- callbacks (main thread) ----------------------------------------------------
    def _on_event(self, event) -> None:
        if isinstance(event, PredictStarted):
            self._progress.max = event.tiles_total
            self._status.value = (
                f"running on {event.device_description}\n"
                f"{event.precision}, tile {event.tile}, overlap {event.overlap}, "
                f"batch {event.batch_size}"
            )
        elif isinstance(event, PredictProgress):
            self._progress.max = event.tiles_total
            self._progress.value = event.tiles_done
            eta = "" if event.eta_s is None else f", about {event.eta_s:.0f} s left"
            head = self._status.value.split("\n")[0]
            self._status.value = f"{head}\n{event.tiles_done}/{event.tiles_total} tiles{eta}"
        elif isinstance(event, SettingsAdjusted):
            show_warning(f"napari-seg Segment: {event.reason}")
        elif isinstance(event, PredictWarning):
            show_warning(f"napari-seg Segment: {event.message}")

    def _on_returned(self, result: PredictResult | None) -> None:
        run, self._run_info = self._run_info, None
        if result is None or run is None:
            self._status.value = "cancelled; no layer was changed"
            return
        layer = self._write_labels(run, result)
        if result.probabilities is not None:
            self._write_probabilities(run, result)
        self._status.value = (
            f"done in {result.seconds:.1f} s on {result.device} ({result.precision})"
        )
        show_info(f"Segmented {run.image_name} into {layer.name}")

    def _write_labels(self, run: _Run, result: PredictResult):
        layers = self._viewer.layers
        existing = layers[run.labels_name] if run.labels_name in layers else None  # noqa: SIM401
        if (
            self._update.value
            and existing is not None
            and existing.data.shape == run.plan.labels_shape
            and existing.data.dtype == result.labels.dtype
        ):
            # One undoable step: Ctrl+Z brings back the previous output (and any painting).
            write_undoable(existing, run.plan.labels_index, result.labels)
            return existing
        whole = all(i == slice(None) for i in run.plan.labels_index)
        if whole:
            data = result.labels
        else:
            data = np.zeros(run.plan.labels_shape, dtype=result.labels.dtype)
            data[run.plan.labels_index] = result.labels
        kwargs = labels_layer_kwargs(run.labels_name, run.class_names, run.class_colors)
        return self._viewer.add_labels(data, scale=run.scale, translate=run.translate, **kwargs)

    def _write_probabilities(self, run: _Run, result: PredictResult) -> None:
        origin = np.asarray(run.plan.origin, dtype=float)
        translate = (0.0, *(np.asarray(run.translate) + origin * np.asarray(run.scale)))
        scale = (1.0, *run.scale)
        # Axes fixed by the scope (e.g. the current slice) become length-1 axes again,
        # so the region lines up with the image at its place in the stack.
        fixed = [1 + i for i, idx in enumerate(run.plan.labels_index) if isinstance(idx, int)]
        probs = np.expand_dims(result.probabilities, axis=fixed) if fixed else result.probabilities
        if run.probabilities_name in self._viewer.layers:
            self._viewer.layers.remove(run.probabilities_name)
        self._viewer.add_image(
            probs,
            name=run.probabilities_name,
            scale=scale,
            translate=translate,
            contrast_limits=(0.0, 1.0),
            colormap="magma",
        )

    def _on_error(self, exc: BaseException) -> None:
        self._run_info = None
        show_error(f"napari-seg Segment: {exc}")
        self._status.value = f"failed: {exc}"

    def _on_finished(self) -> None:
        self._worker = None
        self._set_busy(False)

    def _on_model_loaded(self, result) -> None:
        model, stats, path = result
        self.current.set(model, path=path, dirty=False, stats=stats)
        show_info(f"Model loaded from {path}")

    def _on_load_finished(self) -> None:
        self._loader = None
        self._load.enabled = True

    def _on_model_changed(self, current: CurrentModel) -> None:
        model = current.model
        if model is None:
            self._model_info.value = "none: create one in Model or load a file"
            return
        s = model.spec
        where = current.path.name if current.path else "unsaved"
        self._model_info.value = (
            f"{s.architecture} ({s.encoder or 'no encoder'}), {s.in_channels} ch -> "
            f"{s.num_classes} classes [{where}]"
        )

    def _on_destroyed(self, *_args) -> None:
        self.current.disconnect(self._on_model_changed)
        self._cancel_event.set()


def segment_widget(viewer: napari.viewer.Viewer) -> SegmentWidget:
    """npe2 widget factory: the Segment widget, sharing the viewer's current model."""
    return SegmentWidget(viewer, current_model_for(viewer))
