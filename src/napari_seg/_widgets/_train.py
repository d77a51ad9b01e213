"""The "Train" dock widget: fine-tune or train a model on Image/Labels layer pairs."""

from __future__ import annotations

import math
import os
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
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    Select,
    SpinBox,
    create_widget,
)
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from .._layers import class_names_of, labels_layer_kwargs
from ..models import get_architecture, list_architectures
from ..models.current import CurrentModel
from ..training.config import LABEL0_CHOICES, LOSSES, TrainingConfig
from ..training.events import (
    EpochEnd,
    ModelSaved,
    PreviewReady,
    StepProgress,
    TrainResult,
    TrainStarted,
    TrainWarning,
)
from ._curves import TrainingCurves
from ._shared import current_model_for, fill_device_choices, forward_events

if TYPE_CHECKING:
    import napari

MODEL_SOURCES = (("current model", "current"), ("model file", "file"), ("new model", "new"))
LABEL0_TEXT = {"unlabelled": "unlabelled (scribbles)", "background": "background (dense masks)"}
AUGMENTATIONS = ("flips", "rotations", "intensity", "noise", "elastic")
#: Cores kept free for the GUI while training on the CPU (when there are enough).
GUI_CORES = 1


@dataclass(frozen=True)
class _Job:
    """What the worker needs, copied out of the layers on the main thread."""

    pairs: list
    names: list[str]
    config: TrainingConfig
    model: object
    out: Path | None
    preview: np.ndarray | None
    preview_name: str
    preview_place: tuple[tuple[float, ...], tuple[float, ...]]


def _train_job(job: _Job, stop: threading.Event, cancel: threading.Event):
    """Worker body: forward the training events; return the result, None when cancelled."""
    from ..training import iter_train

    events = iter_train(
        job.pairs,
        job.config,
        model=job.model,
        out=job.out,
        stop=stop,
        preview=job.preview,
        names=job.names,
    )
    return (yield from forward_events(events, cancel))


class TrainWidget(Container):
    """Train on (Image, Labels) layer pairs in a worker, with live curves.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    current : CurrentModel, optional
        The model holder shared with the Model and Segment widgets; the best
        model of a finished or stopped run becomes its model.
    """

    def __init__(self, viewer: napari.viewer.Viewer, current: CurrentModel | None = None):
        super().__init__(labels=True)
        self._viewer = viewer
        self.current = current if current is not None else current_model_for(viewer)
        self._worker = None
        self._stop_event = threading.Event()
        self._cancel_event = threading.Event()
        self._job: _Job | None = None
        self._pair_names: list[tuple[str, str]] = []
        self._classes: tuple[tuple, tuple] = ((), ())
        self._build()
        self._connect()
        self._on_source_changed()
        self._on_arch_changed()
        fill_device_choices(self._device)

    def _build(self) -> None:
        self._image = create_widget(annotation="napari.layers.Image", label="image")
        self._labels = create_widget(annotation="napari.layers.Labels", label="labels")
        self._add_pair = PushButton(text="Add pair")
        self._pairs = Select(label="pairs", choices=[])
        self._pairs.tooltip = "pairs to train on; none: the image and labels chosen above"
        self._remove_pair = PushButton(text="Remove selected pairs")
        self._source = ComboBox(label="model", choices=MODEL_SOURCES, value="current")
        self._model_file = FileEdit(label="model file", mode="r", filter="*.safetensors")
        archs = [(a.title, a.name) for a in list_architectures()]
        self._arch = ComboBox(label="architecture", choices=archs, value="unet")
        self._encoder = ComboBox(label="encoder", choices=["classic"])
        self._grow = CheckBox(text="allow new classes (wider output head)", value=False)
        label0 = [(LABEL0_TEXT[c], c) for c in LABEL0_CHOICES]
        self._label0 = ComboBox(label="label 0 is", choices=label0, value="unlabelled")
        self._loss = ComboBox(label="loss", choices=list(LOSSES), value="ce+dice")
        self._budget_unit = ComboBox(label="budget in", choices=["minutes", "epochs"])
        self._budget = FloatSpinBox(label="budget", min=0.01, max=10000, step=0.5, value=2.0)
        self._lr = FloatSpinBox(label="learning rate", min=1e-5, max=1.0, step=1e-4, value=1e-3)
        self._batch = SpinBox(label="batch", min=1, max=256, value=4)
        self._patch = SpinBox(label="patch", min=32, max=2048, step=16, value=128)
        self._augment = {
            name: CheckBox(text=f"augment: {name}", value=name != "elastic")
            for name in AUGMENTATIONS
        }
        self._device = ComboBox(label="device", choices=[("auto", "auto")], value="auto")
        self._preview = CheckBox(text="preview the current slice after each epoch", value=False)
        self._out = FileEdit(label="save best to", mode="w", filter="*.safetensors")
        self._out.tooltip = "optional: best model file (+ -last checkpoint and .training.json)"
        self._start = PushButton(text="Start")
        self._pause = PushButton(text="Pause", enabled=False)
        self._stop = PushButton(text="Stop", enabled=False)
        self._progress = ProgressBar(label="progress", min=0, max=1000, value=0)
        self._status = Label(label="status", value="idle")
        self.curves = TrainingCurves()
        self.extend(
            [
                self._image,
                self._labels,
                self._add_pair,
                self._pairs,
                self._remove_pair,
                self._source,
                self._model_file,
                self._arch,
                self._encoder,
                self._grow,
                self._label0,
                self._loss,
                self._budget_unit,
                self._budget,
                self._lr,
                self._batch,
                self._patch,
                *self._augment.values(),
                self._device,
                self._preview,
                self._out,
                self._start,
                self._pause,
                self._stop,
                self._progress,
                self._status,
            ]
        )
        self.native.layout().addWidget(self.curves.canvas)

    def _connect(self) -> None:
        self._add_pair.clicked.connect(self.add_pair)
        self._remove_pair.clicked.connect(self.remove_selected_pairs)
        self._source.changed.connect(self._on_source_changed)
        self._arch.changed.connect(self._on_arch_changed)
        self._budget_unit.changed.connect(self._on_budget_unit_changed)
        self._start.clicked.connect(self.start)
        self._pause.clicked.connect(self.toggle_pause)
        self._stop.clicked.connect(self.stop)
        self.native.destroyed.connect(self._on_destroyed)

    # -- pairs -----------------------------------------------------------------------
    def add_pair(self) -> None:
        """Add the chosen (image, labels) layers to the pairs list."""
        image, labels = self._image.value, self._labels.value
        if image is None or labels is None:
            show_error("Choose an Image layer and a Labels layer to pair")
            return
        pair = (image.name, labels.name)
        if pair not in self._pair_names:
            self._pair_names.append(pair)
        self._pairs.choices = [_pair_text(p) for p in self._pair_names]

    def remove_selected_pairs(self) -> None:
        selected = set(self._pairs.value)
        self._pair_names = [p for p in self._pair_names if _pair_text(p) not in selected]
        self._pairs.choices = [_pair_text(p) for p in self._pair_names]

    def _layer_pairs(self) -> list[tuple]:
        layers = self._viewer.layers
        names = self._pair_names or [
            (layer.name, other.name)
            for layer, other in [(self._image.value, self._labels.value)]
            if layer is not None and other is not None
        ]
        if not names:
            raise ValueError("choose an Image layer and a Labels layer (or add pairs)")
        missing = [n for pair in names for n in pair if n not in layers]
        if missing:
            raise ValueError(f"layer(s) no longer in the viewer: {', '.join(missing)}")
        return [(layers[i], layers[lab]) for i, lab in names]

    # -- mapping fields to a config ------------------------------------------------
    def config(self, *, axis: int | None = None, channel_axis: int | None = None):
        """The :class:`TrainingConfig` the fields describe (validated)."""
        budget = self._budget.value
        by_epochs = self._budget_unit.value == "epochs"
        encoder = self._encoder.value if self._encoder.enabled else None
        return TrainingConfig(
            architecture=self._arch.value,
            encoder=encoder,
            grow_classes=self._grow.value,
            label0=self._label0.value,
            loss=self._loss.value,
            epochs=max(1, round(budget)) if by_epochs else None,
            minutes=None if by_epochs else float(budget),
            learning_rate=float(self._lr.value),
            batch_size=int(self._batch.value),
            patch_size=int(self._patch.value),
            device=self._device.value,
            threads=_gui_threads(),
            axis=axis,
            channel_axis=channel_axis,
            **{name: box.value for name, box in self._augment.items()},
        ).validate()

    def _model_for_job(self):
        source = self._source.value
        if source == "current":
            if self.current.model is None:
                raise ValueError("no current model: create or load one in Model, or pick 'new'")
            return self.current.model, None
        if source == "file":
            path = Path(self._model_file.value)
            if not path.is_file():
                raise ValueError(f"choose a model file (no file at {str(path)!r})")
            return None, str(path)
        return None, None

    # -- actions ---------------------------------------------------------------------
    def start(self) -> None:
        """Start training in a worker (the window stays responsive)."""
        if self._worker is not None:
            show_warning("Training is already running; stop it first")
            return
        try:
            job = self._make_job()
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot train: {exc}")
            return
        self._job = job
        self._stop_event, self._cancel_event = threading.Event(), threading.Event()
        self.curves.reset(job.config.steps_per_epoch)
        self._set_busy(True)
        self._status.value = "starting..."
        self._worker = create_worker(
            _train_job,
            job,
            self._stop_event,
            self._cancel_event,
            _connect={
                "yielded": self._on_event,
                "returned": self._on_returned,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )

    def _make_job(self) -> _Job:
        pairs = self._layer_pairs()
        image_layer = pairs[0][0]
        axis, channel_axis = self._axes(image_layer)
        config = self.config(axis=axis, channel_axis=channel_axis)
        model, from_model = self._model_for_job()
        if from_model is not None:
            config = config.with_(from_model=from_model)
        if self._source.value == "new":
            names = new_model_class_names([labels for _, labels in pairs], config.label0)
            config = config.with_(class_names=names)
        for image, labels in pairs:
            if tuple(image.scale[-2:]) != tuple(labels.scale[-2:]):
                show_warning(f"{image.name} and {labels.name} have different scales")
        out = Path(self._out.value) if str(self._out.value) not in ("", ".") else None
        preview = self._preview_plane(image_layer) if self._preview.value else None
        return _Job(
            pairs=[(_data(i), _data(lab)) for i, lab in pairs],
            names=[f"{i.name} / {lab.name}" for i, lab in pairs],
            config=config,
            model=model,
            out=out,
            preview=preview,
            preview_name=f"{image_layer.name} preview",
            preview_place=(tuple(image_layer.scale[-2:]), tuple(image_layer.translate[-2:])),
        )

    def _axes(self, layer) -> tuple[int | None, int | None]:
        """Stack axis (the first one the viewer steps through) and channel axis (RGB)."""
        data = _data(layer)
        channel_axis = data.ndim - 1 if layer.rgb else None
        spatial = data.ndim - (1 if layer.rgb else 0)
        if spatial <= 2:
            return None, channel_axis
        offset = self._viewer.dims.ndim - layer.ndim
        displayed = {d - offset for d in self._viewer.dims.displayed}
        stepped = [a for a in range(spatial) if a not in displayed]
        return (stepped[0] if stepped else 0), channel_axis

    def _preview_plane(self, layer) -> np.ndarray:
        data = _data(layer)
        if data.ndim - (1 if layer.rgb else 0) <= 2:
            return np.asarray(data)
        step = [int(np.round(v)) for v in layer.world_to_data(self._viewer.dims.point)]
        index = tuple(step[: data.ndim - 2 - (1 if layer.rgb else 0)])
        return np.asarray(data[index])

    def toggle_pause(self) -> None:
        """Pause the run after the current step, or resume it."""
        if self._worker is None:
            return
        self._worker.toggle_pause()
        paused = self._pause.text == "Pause"
        self._pause.text = "Resume" if paused else "Pause"
        self._status.value = "paused (the budget clock is stopped)" if paused else "resuming..."

    def stop(self) -> None:
        """End training after the current step; the best model so far becomes current."""
        if self._worker is None:
            return
        self._stop_event.set()
        if self._pause.text == "Resume":
            self._worker.resume()
        self._status.value = "stopping after this step..."

    def cancel(self) -> None:
        """Abort without changing the current model (files written so far stay)."""
        if self._worker is None:
            return
        self._cancel_event.set()
        self._stop_event.set()
        if self._pause.text == "Resume":
            self._worker.resume()

    # -- callbacks (main thread) ----------------------------------------------------
    def _on_event(self, event) -> None:
        if isinstance(event, StepProgress):
            self._progress.value = int(1000 * event.fraction)
            self.curves.add_loss(event.loss)
            eta = "" if event.eta_s is None else f", about {event.eta_s:.0f} s left"
            head = self._status.value.split("\n")[0]
            self._status.value = (
                f"{head}\nepoch {event.epoch} step {event.step}/{event.steps_per_epoch}, "
                f"loss {event.loss:.3f}{eta}"
            )
        elif isinstance(event, EpochEnd):
            self.curves.add_epoch(
                {
                    "epoch": event.epoch,
                    "steps": len(self.curves.losses),
                    "train_loss": event.train_loss,
                    "val_iou": None if math.isnan(event.val_iou) else event.val_iou,
                }
            )
        elif isinstance(event, TrainStarted):
            self._classes = (event.class_names, event.class_colors)
            self._status.value = (
                f"training on {event.device_description} ({event.precision})\n"
                f"{event.num_classes} classes, {event.annotated_pixels} annotated pixels, "
                f"{event.validation_regions} held-out regions"
            )
        elif isinstance(event, PreviewReady):
            self._show_preview(event)
        elif isinstance(event, ModelSaved):
            show_info(f"napari-seg Train: saved {event.kind} model to {event.path}")
        elif isinstance(event, TrainWarning):
            show_warning(f"napari-seg Train: {event.message}")

    def _show_preview(self, event: PreviewReady) -> None:
        job = self._job
        if job is None:
            return
        layers = self._viewer.layers
        if job.preview_name in layers:
            layers[job.preview_name].data = event.labels
            return
        names, colors = self._classes
        kwargs = labels_layer_kwargs(job.preview_name, names, colors)
        scale, translate = job.preview_place
        self._viewer.add_labels(event.labels, scale=scale, translate=translate, **kwargs)

    def _on_returned(self, result: TrainResult | None) -> None:
        if result is None:
            self._status.value = "cancelled; the current model is unchanged"
            return
        path = result.best_path
        self.current.set(result.model, path=path, dirty=path is None)
        best = result.metrics.get("best_val_iou")
        best_text = "no validation" if best is None else f"best validation IoU {best:.3f}"
        self._status.value = (
            f"{result.stopped}: {result.epochs} epochs, {result.steps} steps in "
            f"{result.seconds:.0f} s; {best_text}\nthe best model is now the current model"
        )
        where = f" (saved to {path})" if path else " (save it from the Model widget)"
        show_info(f"napari-seg Train: training ended ({result.stopped}){where}")

    def _on_error(self, exc: BaseException) -> None:
        show_error(f"napari-seg Train: {exc}")
        self._status.value = f"failed: {exc}"

    def _on_finished(self) -> None:
        self._worker = None
        self._job = None
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self._start.enabled = not busy
        self._pause.enabled = busy
        self._stop.enabled = busy
        self._pause.text = "Pause"
        if busy:
            self._progress.value = 0

    def _on_source_changed(self, *_args) -> None:
        source = self._source.value
        self._model_file.visible = source == "file"
        self._arch.visible = self._encoder.visible = source == "new"
        self._grow.visible = source != "new"

    def _on_arch_changed(self, *_args) -> None:
        arch = get_architecture(self._arch.value)
        self._encoder.choices = list(arch.encoders) or ["(none)"]
        self._encoder.value = arch.default_encoder or "(none)"
        self._encoder.enabled = bool(arch.encoders)

    def _on_budget_unit_changed(self, *_args) -> None:
        epochs = self._budget_unit.value == "epochs"
        self._budget.step = 1.0 if epochs else 0.5
        self._budget.value = 20.0 if epochs else 2.0

    def _on_destroyed(self, *_args) -> None:
        self.cancel()


def new_model_class_names(label_layers, label0: str) -> tuple[str, ...]:
    """A new model's class names from the labels layers' features (ids from 0).

    Ids the features skip are called "class N"; with ``label0="unlabelled"`` id 0
    is "unlabelled" (never trained). Empty when the layers name no id above 0.
    """
    names = class_names_of(*label_layers)
    if not names or max(names) < 1:
        return ()
    listed = [names.get(i, f"class {i}") for i in range(max(names) + 1)]
    if label0 == "unlabelled":
        listed[0] = "unlabelled"
    return tuple(listed)


def _data(layer):
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def _pair_text(pair: tuple[str, str]) -> str:
    return f"{pair[0]}  +  {pair[1]}"


def _gui_threads() -> int:
    """torch threads while the GUI runs: leave a core free where there are cores to spare."""
    cores = os.cpu_count() or 1
    return cores - GUI_CORES if cores >= 4 else cores


def train_widget(viewer: napari.viewer.Viewer) -> TrainWidget:
    """npe2 widget factory: the Train widget, sharing the viewer's current model."""
    return TrainWidget(viewer, current_model_for(viewer))
