"""The "Train" dock widget: fine-tune or train a model on Image/Labels layer pairs.

Composed of small parts: the layer pairs (``_train_pairs``), the model to start
from (``_train_source``), the settings and augmentations (``_train_settings``),
the live curves (``_curves``), the worker bodies (``_train_jobs``) and the job
runner (``_runner``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, PushButton
from napari.utils.notifications import show_error, show_info, show_warning

from .._layers import labels_layer_kwargs
from ..models.registry import get_architecture
from ..training._model import run_dims
from ..training.config import TrainingConfig
from ..training.events import (
    EpochEnd,
    FitProgress,
    ModelSaved,
    PreviewReady,
    StepProgress,
    TrainResult,
    TrainStarted,
    TrainWarning,
)
from ..training.validation import score_text
from ._current import CurrentModel
from ._curves import TrainingCurves
from ._dock import Dock
from ._fields import SaveTarget
from ._layers import (
    add_labels,
    file_spacing_note,
    full_resolution,
    history_depth,
    layer_spacing,
)
from ._live import LivePanel
from ._place import placed_apart, window_grids
from ._runner import JobRunner
from ._shared import (
    current_model_for,
    device_choices,
    fill_device_choices,
    job_threads,
    warm_labels,
    warm_training,
)
from ._train_classes import StrokeClasses
from ._train_jobs import TrainInputs, takeover_job, train_job
from ._train_pairs import PairsPanel, new_model_class_names
from ._train_preview import preview_view, sample_axes
from ._train_settings import AugmentPanel, SettingsPanel
from ._train_source import ModelSourcePanel

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)


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
        self._inputs: TrainInputs | None = None
        self._classes: tuple[tuple, tuple] = ((), ())
        self._head = ""
        self._saved = ""
        self.pairs = PairsPanel(viewer)
        self.source = ModelSourcePanel(self.current, viewer)
        self.settings = SettingsPanel()
        self.augment = AugmentPanel()
        self._device = ComboBox(label="device", choices=device_choices, value="auto")
        self._preview = CheckBox(text="preview the view every few seconds", value=False)
        self._out = SaveTarget(
            "save best to",
            filter="*.safetensors",
            suffix=".safetensors",
            tooltip="optional: best model file (+ -last checkpoint and .training.json)",
        )
        self._start = PushButton(text="Start")
        self._deep = PushButton(text="Train deep model from the strokes")
        self._deep.tooltip = (
            "a CNN trained on the strokes and the pixel classifier's confident predictions; "
            "it replaces the live prediction if it agrees better with held-out strokes"
        )
        self.runner = JobRunner(
            "Train",
            busy=[self._start, self._deep],
            pause=True,
            stop=True,
            status_lines=4,
            notify_error=lambda message: show_error(message),
            notify_warning=lambda message: show_warning(message),
        )
        self.curves = TrainingCurves(present=self.runner.present)
        self.classes = StrokeClasses(lambda: self.pairs.labels.value, self.settings.left_out)
        self.live = LivePanel(
            viewer,
            lambda: self.pairs.image.value,
            lambda: self.pairs.labels.value,
            self.classes,
            self.live_config,
        )
        self.body.extend(
            [
                *self.pairs.widgets,
                *self.classes.widgets,
                *self.live.widgets,
                self._deep,
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
        self._deep.clicked.connect(self.train_deep)
        self.settings.labels_are.changed.connect(self._on_labels_are_changed)
        # on Enter or leaving the field, as the legend's names; the live update refits
        self.settings.ignore.native.editingFinished.connect(self.classes.refresh)
        self.settings.ignore.native.editingFinished.connect(self.live.schedule)
        self.native.destroyed.connect(self._on_destroyed)
        self._watched = None
        self._history = (0, 0)  # the strokes layer's undo and redo depths
        self.pairs.labels.changed.connect(self._watch_labels)
        self.pairs.image.changed.connect(self.live.schedule)  # refit for the new image
        self._watch_labels()
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

    def _watch_labels(self, *_args) -> None:
        """Keep the class legend and the live update on the chosen strokes layer."""
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._legend_painted)
            self._watched.events.features.disconnect(self.classes.refresh)
            self._watched.events.set_data.disconnect(self._legend_undone)
        layer = self._watched = self.pairs.labels.value
        self.settings.follow(layer)  # its ignore ids before the legend leaves them out
        if layer is not None:
            layer.events.paint.connect(self._legend_painted)
            layer.events.features.connect(self.classes.refresh)
            layer.events.set_data.connect(self._legend_undone)
        self._legend_painted()
        self.live.watch()

    def _legend_painted(self, *_args) -> None:
        self._history = history_depth(self._watched)
        self.classes.refresh()

    def _legend_undone(self, *_args) -> None:
        """napari's undo and redo emit only ``set_data`` (as scrolling does): the legend
        is rebuilt when the layer's undo history moved (an undone stroke may have been
        its class's last), not at every scroll."""
        if history_depth(self._watched) != self._history:
            self._legend_painted()

    def live_config(self, image_layer) -> TrainingConfig:
        """The live pixel classifier's config: this dock's device and the image's axes."""
        axis, channel_axis = self.pairs.axes(image_layer, None, labels=self.pairs.labels.value)
        return TrainingConfig(
            architecture="pixel-classifier",
            label0="unlabelled",
            ignore_labels=self.settings.left_out(),
            device=self._device.value,
            threads=job_threads("live"),
            axis=axis,
            channel_axis=channel_axis,
        ).validate()

    # -- mapping fields to a config ------------------------------------------------
    def config(
        self,
        *,
        axis: int | tuple[int, ...] | None = None,
        channel_axis: int | None = None,
        label0: str | None = None,
    ):
        """The :class:`TrainingConfig` the fields describe (validated); ``label0``
        overrides the field's choice (``"unlabelled"``: strokes, never instances)."""
        s = self.settings
        label0 = label0 or s.label0.value
        instances = None if label0 == "unlabelled" else s.instances
        return TrainingConfig(
            grow_classes=self.source.grow.value,
            num_classes=self.source.num_classes,
            label0=label0,
            ignore_labels=s.ignore_labels,
            instances=instances,
            loss=s.loss.value,
            learning_rate=float(s.lr.value),
            batch_size=int(s.batch.value),
            patch_size=int(s.patch.value),
            device=self._device.value,
            threads=job_threads("train"),
            axis=axis,
            channel_axis=channel_axis,
            dims=self._dims(),
            filled_weight=float(s.filled.value) if s.dims.value == 3 else 0.0,
            **s.budget_fields(),
            **self.augment.values(),
            **self.source.new_model_fields(dims=self._dims()),
        ).validate()

    def _on_labels_are_changed(self, *_args) -> None:
        # the legend names stroke classes; an instance label's ids are objects
        self.classes.set_shown(self.settings.instances is None)

    def _dims(self) -> int | None:
        """The dims field, or None when fine-tuning (the model's own then)."""
        return None if not self.source.is_new else int(self.settings.dims.value)

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
        self._launch(train_job, inputs, self._on_returned)

    def train_deep(self) -> None:
        """Train a CNN from the strokes (``training.takeover``) in a worker."""
        if self.runner.running:
            show_warning("Training is already running; stop it first")
            return
        current = self.current.model
        no_cnn = current is None or get_architecture(current.spec.architecture).fitted != "gradient"
        if self.source.source.value == "current" and no_cnn:
            # nothing to fine-tune, or a pixel classifier: a new auto-context U-Net
            self.source.source.value = "new"
            self.source.arch.value = "scribble-unet"
        try:
            inputs = self._make_job(label0="unlabelled")  # strokes: 0 is unpainted
            if len(inputs.pairs) != 1 or np.ndim(inputs.pairs[0][1]) != 2:
                raise ValueError("Train deep model takes one 2D image and its strokes")
            inputs = replace(inputs, out=None)
        except (ValueError, TypeError, OSError) as exc:
            show_error(f"Cannot train: {exc}")
            return
        self._launch(takeover_job, inputs, self._on_takeover)

    def _launch(self, job, inputs: TrainInputs, on_result) -> None:
        """Run ``job`` on ``inputs`` in the dock's worker, with the curves reset."""
        self._inputs = inputs
        self.curves.reset(inputs.config.steps_per_epoch)
        self.runner.start(
            job,
            inputs,
            on_event=self._on_event,
            on_result=on_result,
            on_finished=self._on_finished,
        )

    def _on_takeover(self, returned) -> None:
        if returned is None:
            self.runner.set_status("cancelled; the current model is unchanged")
            return
        result, labels = returned
        winner = result.deep if result.replaced else result.pixel
        self.current.set(winner, path=None, dirty=True)
        self.live.show_labels(labels, winner.spec.num_classes)
        scores = (
            f"held-out stroke agreement: deep {result.deep_score:.3f}, "
            f"pixel classifier {result.pixel_score:.3f}"
        )
        verdict = (
            "the deep model replaces the live prediction"
            if result.replaced
            else "the pixel classifier stays (the deep model did not agree better)"
        )
        self.runner.set_progress(1.0)
        self.runner.set_status(f"{scores}\n{verdict}; it is now the current model")

    def _make_job(self, label0: str | None = None) -> TrainInputs:
        pairs = self.pairs.layer_pairs()
        image_layer = pairs[0][0]
        model, from_model = self.source.model_for_job()
        in_channels = None if model is None else model.spec.in_channels
        config = self.config(label0=label0)
        if from_model is not None:
            config = config.with_(from_model=from_model)
        volumes = run_dims(config, model) == 3
        # a 3D model's volumes: other sliders (time) go volume by volume
        axis, channel_axis = self.pairs.axes(
            image_layer, in_channels, 3 if volumes else 2, labels=pairs[0][1]
        )
        config = config.with_(axis=axis, channel_axis=channel_axis)
        if self.source.is_new:
            names: tuple[str, ...] = ()  # instance labels: the conversion's classes
            background: int | None = 0
            if config.instances is None:
                names = new_model_class_names(
                    [labels for _, labels in pairs], config.label0, config.ignore_labels
                )
                background = self.classes.background_id()
            config = config.with_(class_names=names, background=background)
            axes = sample_axes(full_resolution(image_layer).ndim, config)  # the plane on screen
            size, unit, source = layer_spacing(image_layer, axes)
            if source is not None and size is not None:
                show_info(file_spacing_note(image_layer.name, source, size, unit, "training"))
            if size is not None:
                config = config.with_(spacing=size, spacing_unit=unit)
            if config.label0 == "unlabelled":  # the strokes' colours, background transparent
                colors = self.classes.colors(
                    max(2, len(names), max(self.classes.ids(), default=1) + 1)
                )
                config = config.with_(class_colors=colors)
        grids = [
            None if (grid := window_grids(labels, image)) is None
            else (*grid, (labels.name, image.name))
            for image, labels in pairs
        ]  # fmt: skip
        for (image, labels), grid in zip(pairs, grids, strict=True):
            spatial = [a for a in range(image.ndim) if a != channel_axis]
            note = None if grid else placed_apart(image, labels, "paired", spatial)
            if note:
                show_warning(note)
        out = self._out.path  # checked by the run itself, so its error arrives as a notification
        preview = preview_view(self._viewer, image_layer, config) if self._preview.value else None
        return TrainInputs(
            pairs=[(full_resolution(i), full_resolution(lab)) for i, lab in pairs],
            names=[f"{i.name} / {lab.name}" for i, lab in pairs],
            grids=grids,
            config=config,
            model=model,
            out=out,
            overwrite=self._out.overwrite,
            preview=preview,
            preview_name=f"{image_layer.name} preview",
        )

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
        if isinstance(event, FitProgress):  # a 3D pixel classifier reading its blocks
            text = f"{self._head}\nreading block {event.blocks_done}/{event.blocks_total}"
            self.runner.report(event.fraction, text)
        elif isinstance(event, StepProgress):
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
                    f"val_{event.val_metric}": (
                        None if math.isnan(event.val_score) else event.val_score
                    ),
                }
            )
        elif isinstance(event, TrainStarted):
            self._classes = (event.class_names, event.class_colors)
            self._head = (
                f"training on {event.device_description} ({event.precision}); "
                f"{event.num_classes} classes, {event.annotated_pixels} annotated pixels, "
                f"{event.validation_regions} held-out "
                + ("regions" if event.validation_metric == "iou" else "stroke blocks")
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
        if inputs is None or inputs.preview is None:
            return
        layers = self._viewer.layers
        labels = inputs.preview.shown(event.labels)
        if inputs.preview_name in layers:
            layers[inputs.preview_name].data = labels
            return
        names, colors = self._classes
        kwargs = labels_layer_kwargs(inputs.preview_name, names, colors)
        add_labels(
            self._viewer, labels, window=self.native, **inputs.preview.place.kwargs(), **kwargs
        )

    def _on_returned(self, result: TrainResult | None) -> None:
        if result is None:
            self.runner.set_status("cancelled; the current model is unchanged")
            return
        path = result.best_path
        self.current.set(result.model, path=path, dirty=path is None)
        metrics = result.metrics
        best_text = "best " + score_text(metrics["metric"], metrics["best_score"])
        self.runner.set_progress(1.0)
        self.runner.set_status(
            f"{result.describe()}; {best_text}\nthe best model is now the current model"
        )
        where = f" (saved to {path})" if path else " (save it from the Model widget)"
        logger.info("training ended (%s)%s", result.stopped, where)

    def _on_finished(self) -> None:
        self._inputs = None

    def _on_destroyed(self, *_args) -> None:
        self.live.close()
        self.runner.close()
        self.curves.close()


def train_widget(viewer: napari.viewer.Viewer) -> TrainWidget:
    """The Train widget, sharing the viewer's current model."""
    return TrainWidget(viewer, current_model_for(viewer))
