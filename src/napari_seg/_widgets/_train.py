"""The "Train" dock widget: fine-tune or train a model on Image/Labels layer pairs.

Composed of small parts: the layer pairs (``_train_pairs``), the model to start
from (``_train_source``), the settings and augmentations (``_train_settings``),
the live curves (``_curves``) and the job runner (``_runner``).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, PushButton
from napari.utils.notifications import show_error, show_warning

from .._layers import class_names_of, labels_layer_kwargs
from ..arrays.layout import channel_axis_of, stack_axis
from ..training.config import TrainingConfig
from ..training.events import (
    EpochEnd,
    ModelSaved,
    PreviewReady,
    StepProgress,
    TrainResult,
    TrainStarted,
    TrainWarning,
)
from ._current import CurrentModel
from ._curves import TrainingCurves
from ._dock import Dock
from ._fields import SaveTarget
from ._layers import full_resolution, viewer_position
from ._runner import JobRunner
from ._shared import (
    current_model_for,
    device_choices,
    fill_device_choices,
    forward_events,
    warm_labels,
    warm_training,
)
from ._train_pairs import PairsPanel
from ._train_settings import AugmentPanel, SettingsPanel
from ._train_source import ModelSourcePanel

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

#: Cores kept free for the GUI while training on the CPU (when there are enough).
GUI_CORES = 1


@dataclass(frozen=True)
class _TrainInputs:
    """What the worker needs, copied out of the layers on the main thread."""

    pairs: list
    names: list[str]
    config: TrainingConfig
    model: object
    out: Path | None
    overwrite: bool
    preview: np.ndarray | None
    preview_name: str
    preview_place: tuple[tuple[float, ...], tuple[float, ...]]


def _train_job(inputs: _TrainInputs, *, stop, cancel):
    """Worker body: forward the training events; return the result, None when cancelled."""
    from ..training import iter_train

    events = iter_train(
        inputs.pairs,
        inputs.config,
        model=inputs.model,
        out=inputs.out,
        overwrite=inputs.overwrite,
        stop=stop,
        preview=inputs.preview,
        names=inputs.names,
    )
    return (yield from forward_events(events, cancel))


class TrainWidget(Dock):
    """Train on (Image, Labels) layer pairs in a worker, with live curves.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    current : CurrentModel, optional
        The model holder shared with the Model and Segment widgets; the best
        model of a finished or stopped run becomes its model.
    """

    def __init__(self, viewer: napari.viewer.Viewer, current: CurrentModel | None = None):
        super().__init__(viewer)
        self.current = current if current is not None else current_model_for(viewer)
        self._inputs: _TrainInputs | None = None
        self._classes: tuple[tuple, tuple] = ((), ())
        self._head = ""
        self._saved = ""
        self.pairs = PairsPanel(viewer)
        self.source = ModelSourcePanel(self.current)
        self.settings = SettingsPanel()
        self.augment = AugmentPanel()
        self._device = ComboBox(label="device", choices=device_choices, value="auto")
        self._preview = CheckBox(text="preview the current slice each epoch", value=False)
        self._out = SaveTarget(
            "save best to",
            filter="*.safetensors",
            tooltip="optional: best model file (+ -last checkpoint and .training.json)",
        )
        self._start = PushButton(text="Start")
        self.runner = JobRunner(
            "Train",
            busy=[self._start],
            pause=True,
            stop=True,
            status_lines=4,
            notify_error=lambda message: show_error(message),
            notify_warning=lambda message: show_warning(message),
        )
        self.curves = TrainingCurves(present=self.runner.present)
        self.body.extend(
            [
                *self.pairs.widgets,
                *self.source.widgets,
                *self.settings.widgets,
                self.augment,
                self._device,
                self._preview,
                self._out,
                *self.runner.widgets,
            ]
        )
        self.add_native(self.curves.widget)
        self._start.clicked.connect(self.start)
        self.native.destroyed.connect(self._on_destroyed)
        fill_device_choices(self._device)
        warm_training()
        warm_labels()  # for the preview's Labels layer
        # The parts' fields, under the names tests and the demo use.
        self._image, self._labels, self._pairs = (
            self.pairs.image,
            self.pairs.labels,
            self.pairs.pairs,
        )
        self._source = self.source.source
        self._label0, self._budget_unit = self.settings.label0, self.settings.budget_unit
        self._budget, self._batch = self.settings.budget, self.settings.batch
        self._patch = self.settings.patch

    _worker = property(lambda self: self.runner.worker)
    _status = property(lambda self: self.runner.status)
    _pause = property(lambda self: self.runner.pause_button)
    _stop = property(lambda self: self.runner.stop_button)

    def add_pair(self) -> None:
        """Add the chosen (image, labels) layers to the pairs list."""
        self.pairs.add_pair()

    def remove_selected_pairs(self) -> None:
        self.pairs.remove_selected_pairs()

    # -- mapping fields to a config ------------------------------------------------
    def config(self, *, axis: int | None = None, channel_axis: int | None = None):
        """The :class:`TrainingConfig` the fields describe (validated)."""
        s = self.settings
        return TrainingConfig(
            architecture=self.source.arch.value,
            encoder=self.source.encoder_value,
            grow_classes=self.source.grow.value,
            label0=s.label0.value,
            loss=s.loss.value,
            learning_rate=float(s.lr.value),
            batch_size=int(s.batch.value),
            patch_size=int(s.patch.value),
            device=self._device.value,
            threads=_gui_threads(),
            axis=axis,
            channel_axis=channel_axis,
            **s.budget_fields(),
            **self.augment.values(),
        ).validate()

    # -- actions ---------------------------------------------------------------------
    def start(self) -> None:
        """Start training in a worker (the window stays responsive)."""
        if self.runner.running:
            show_warning("Training is already running; stop it first")
            return
        try:
            inputs = self._make_job()
        except (ValueError, TypeError, OSError) as exc:
            show_error(f"Cannot train: {exc}")
            return
        self._inputs = inputs
        self.curves.reset(inputs.config.steps_per_epoch)
        self.runner.start(
            _train_job,
            inputs,
            on_event=self._on_event,
            on_result=self._on_returned,
            on_finished=self._on_finished,
        )

    def _make_job(self) -> _TrainInputs:
        pairs = self.pairs.layer_pairs()
        image_layer = pairs[0][0]
        model, from_model = self.source.model_for_job()
        in_channels = None if model is None else model.spec.in_channels
        axis, channel_axis = self._axes(image_layer, in_channels)
        config = self.config(axis=axis, channel_axis=channel_axis)
        if from_model is not None:
            config = config.with_(from_model=from_model)
        if self.source.is_new:
            names = new_model_class_names([labels for _, labels in pairs], config.label0)
            config = config.with_(class_names=names)
        for image, labels in pairs:
            if tuple(image.scale[-2:]) != tuple(labels.scale[-2:]):
                show_warning(f"{image.name} and {labels.name} have different scales")
        out = self._out.path  # checked by the run itself, so its error arrives as a notification
        preview = self._preview_plane(image_layer) if self._preview.value else None
        return _TrainInputs(
            pairs=[(full_resolution(i), full_resolution(lab)) for i, lab in pairs],
            names=[f"{i.name} / {lab.name}" for i, lab in pairs],
            config=config,
            model=model,
            out=out,
            overwrite=self._out.overwrite,
            preview=preview,
            preview_name=f"{image_layer.name} preview",
            preview_place=(tuple(image_layer.scale[-2:]), tuple(image_layer.translate[-2:])),
        )

    def _axes(self, layer, in_channels: int | None) -> tuple[int | None, int | None]:
        """Stack axis (the first one the viewer steps through) and channel axis, by the
        layout rule (:mod:`napari_seg.arrays.layout`); a new model reads 3 channels from
        an RGB layer, else 1."""
        shape = full_resolution(layer).shape
        if in_channels is None:
            in_channels = 3 if layer.rgb else 1
        displayed, _ = viewer_position(self._viewer, layer)
        channel_axis = channel_axis_of(
            shape, in_channels=in_channels, rgb=bool(layer.rgb), spatial=displayed
        )
        if len(shape) - (channel_axis is not None) <= 2:
            return None, channel_axis
        return stack_axis(len(shape), displayed=displayed, channel_axis=channel_axis), channel_axis

    def _preview_plane(self, layer) -> np.ndarray:
        data = full_resolution(layer)
        if data.ndim - (1 if layer.rgb else 0) <= 2:
            return np.asarray(data)
        _, step = viewer_position(self._viewer, layer)
        index = tuple(step[: data.ndim - 2 - (1 if layer.rgb else 0)])
        return np.asarray(data[index])

    def toggle_pause(self) -> None:
        """Pause the run after the current step, or resume it."""
        self.runner.toggle_pause()

    def stop(self) -> None:
        """End training after the current step; the best model so far becomes current."""
        self.runner.stop()

    def cancel(self) -> None:
        """Abort without changing the current model (files written so far stay)."""
        self.runner.cancel()

    # -- callbacks (main thread) ----------------------------------------------------
    def _on_event(self, event) -> None:
        if isinstance(event, StepProgress):
            self.curves.add_loss(event.loss)
            eta = "" if event.eta_s is None else f", about {event.eta_s:.0f} s left"
            text = (
                f"{self._head}\nepoch {event.epoch} step {event.step}/{event.steps_per_epoch}, "
                f"loss {event.loss:.3f}{eta}"
            )
            self.runner.report(event.fraction, text)
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
            self._head = (
                f"training on {event.device_description} ({event.precision}); "
                f"{event.num_classes} classes, {event.annotated_pixels} annotated pixels, "
                f"{event.validation_regions} held-out regions"
            )
            self.runner.set_status(self._head)
        elif isinstance(event, PreviewReady):
            self.runner.present("preview", lambda: self._show_preview(event))
        elif isinstance(event, ModelSaved):
            self._saved = f"saved the {event.kind} model (epoch {event.epoch}) to {event.path.name}"
            self.runner.report(text=f"{self._head}\n{self._saved}")
        elif isinstance(event, TrainWarning):
            show_warning(f"napari-seg Train: {event.message}")

    def _show_preview(self, event: PreviewReady) -> None:
        inputs = self._inputs
        if inputs is None:
            return
        layers = self._viewer.layers
        if inputs.preview_name in layers:
            layers[inputs.preview_name].data = event.labels
            return
        names, colors = self._classes
        kwargs = labels_layer_kwargs(inputs.preview_name, names, colors)
        scale, translate = inputs.preview_place
        self._viewer.add_labels(event.labels, scale=scale, translate=translate, **kwargs)

    def _on_returned(self, result: TrainResult | None) -> None:
        if result is None:
            self.runner.set_status("cancelled; the current model is unchanged")
            return
        path = result.best_path
        self.current.set(result.model, path=path, dirty=path is None)
        best = result.metrics.get("best_val_iou")
        best_text = "no validation" if best is None else f"best validation IoU {best:.3f}"
        self.runner.set_progress(1.0)
        self.runner.set_status(
            f"{result.stopped}: {result.epochs} epochs, {result.steps} steps in "
            f"{result.seconds:.0f} s; {best_text}\nthe best model is now the current model"
        )
        where = f" (saved to {path})" if path else " (save it from the Model widget)"
        logger.info("training ended (%s)%s", result.stopped, where)

    def _on_finished(self) -> None:
        self._inputs = None

    def _on_destroyed(self, *_args) -> None:
        self.runner.close()
        self.curves.close()


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


def _gui_threads() -> int:
    """torch threads while the GUI runs: leave a core free where there are cores to spare."""
    cores = os.cpu_count() or 1
    return cores - GUI_CORES if cores >= 4 else cores


def train_widget(viewer: napari.viewer.Viewer) -> TrainWidget:
    """The Train widget, sharing the viewer's current model."""
    return TrainWidget(viewer, current_model_for(viewer))
