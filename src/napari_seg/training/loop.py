"""The training loop: a generator of typed events, cancellable at every yield."""

from __future__ import annotations

import copy
import logging
import math
import os
import threading
from collections.abc import Generator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._device import release_memory
from .._generators import drain
from .._paths import user_path
from .._types import ArrayLike
from ..arrays.runtime import Runtime
from ..models.registry import get_architecture
from ._model import base_model, fit_classes, run_dims
from ._pixel_run import PixelRun
from ._runtime import Clock, guard_batchnorm
from ._setup import (
    channels_from_labels,
    confirmed_classes,
    input_spec,
    kept_settings,
    run_data,
    volumes_of,
)
from ._shared import as_pairs, pair_names
from .augment import Augmentation, augment
from .checkpoint import RunState, restore
from .config import TrainingConfig
from .data import TrainingData
from .events import (
    EpochEnd,
    ModelSaved,
    PreviewReady,
    StepProgress,
    TrainEvent,
    TrainResult,
    TrainStarted,
    TrainWarning,
)
from .files import best_from_file, check_outputs, companion_paths, resumed_config
from .history import history_entry
from .ignored import ignoring
from .instances import as_classes, refuse_instances, refuse_unused_ids
from .losses import SegmentationLoss, resolve_loss
from .schedule import lr_factor
from .validation import validate
from .volume import VolumeData

if TYPE_CHECKING:
    from ..models.wrapper import SegmentationModel

logger = logging.getLogger(__name__)

#: Weight of deep-supervision outputs in the loss (each; the main output has 1).
AUX_WEIGHT = 0.4
#: Seconds of training between two previews (at least).
PREVIEW_S = 5.0
#: Previews take at most about this share of the training time.
PREVIEW_SHARE = 0.2


def iter_train(
    pairs: Any,
    config: TrainingConfig | None = None,
    *,
    model: SegmentationModel | None = None,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    stop: threading.Event | None = None,
    preview: ArrayLike | None = None,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Generator[TrainEvent, None, TrainResult]:
    """Train (or fine-tune) a segmentation model, yielding progress events.

    Parameters
    ----------
    pairs : (image, labels) or sequence of them
        numpy, dask or zarr arrays (or torch tensors); labels are integer ids with
        the image's shape minus its channel axis (see ``config.label0`` for what 0
        means). Two arrays in a list, ``[image, labels]``, are one pair too.
    config : TrainingConfig, optional
        Settings; keyword ``options`` override its fields.
    model : SegmentationModel, optional
        Model to fine-tune (a copy is trained; the object is never changed).
        Otherwise ``config.from_model`` or a new ``config.architecture``.
    out : path-like, optional
        Model file for the best model (written when validation improves).
        The last state goes to ``<stem>-last.safetensors`` after every epoch
        and the config with the reached metrics to ``<stem>.training.json``
        at the end. Without ``out`` nothing is written.
    resume : path-like, optional
        A checkpoint written by a previous run (``out`` or its ``-last`` file):
        the run continues where it stopped, with the same data and config.
    stop : threading.Event, optional
        When set, training ends after the current step and the result is
        returned as for a finished run. Closing the generator instead cancels
        the run without a result (files written so far stay valid).
    preview : array-like, optional
        An image of the model's dimensionality (a plane, or a volume for a 3D model),
        channels last where it has a channel axis, predicted every few seconds of
        training and at the end (``PreviewReady``).
    names : sequence of str, optional
        Names of the pairs, used in messages.
    overwrite : bool
        Let the run replace existing files at ``out`` (and its ``-last`` and
        ``.training.json`` companions). Without it existing files are an error
        before training starts, unless the run resumes from one of them.
    **options
        Fields of :class:`TrainingConfig` that override ``config``'s.

    Yields
    ------
    TrainStarted, TrainWarning, StepProgress, EpochEnd, ModelSaved, PreviewReady

    Returns
    -------
    TrainResult
        As the generator's return value.

    Raises
    ------
    ValueError, TypeError
        For data that cannot train the model, naming the pair and the problem;
        OSError for an output folder that is missing or not writable.

    Examples
    --------
    >>> from napari_seg.sample_data import cells_2d
    >>> from napari_seg.training import train
    >>> image, labels = cells_2d((128, 128))
    >>> result = train((image, labels), epochs=1, steps_per_epoch=2, minutes=None,
    ...                options={"base_width": 8}, device="cpu")  # doctest: +SKIP
    """
    out, resume = (None if p is None else user_path(p) for p in (out, resume))
    if config is None and resume is not None:
        config = resumed_config(resume)
    config = TrainingConfig.given(config, **options)  # a dict of settings too
    if config.epochs is None:  # the run's record states the time budget it ran under
        config = config.with_(minutes=config.time_budget)
    _check_handles(model, stop)
    pairs = as_pairs(pairs)
    names = pair_names(names, len(pairs))
    out = check_outputs(out, overwrite=overwrite, resume=resume)
    runtime = Runtime.resolve(
        config.device,
        config.precision,
        purpose="training",
        channels_last=config.channels_last,
        threads=config.threads,
    )
    trainer = _Trainer(config, runtime, out)
    try:
        with runtime.cpu_threads():
            yield from trainer.prepare(pairs, model, resume, names)
            if trainer.pixel:
                result = yield from trainer.fit_pixel(stop or threading.Event())
            else:
                result = yield from trainer.loop(stop or threading.Event(), preview)
        return result
    finally:
        trainer.close()


def _check_handles(model: Any, stop: Any) -> None:
    """Refuse a ``model`` that is not one (a file's path: ``from_model``) and a ``stop``
    that is not an event, before anything is read."""
    from ..models.wrapper import check_model

    if model is not None:
        check_model(model, "train(pairs, model=model)", path_hint="give it as from_model=path")
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise TypeError(f"stop must be a threading.Event, got {type(stop).__name__}")


def train(pairs: Any, config: TrainingConfig | None = None, **kwargs: Any) -> TrainResult:
    """Run :func:`iter_train` to the end and return its :class:`TrainResult`.

    Parameters
    ----------
    pairs : (image, labels) or sequence of them
    config : TrainingConfig, optional
    **kwargs
        The other arguments of :func:`iter_train`.

    Returns
    -------
    TrainResult
    """
    return drain(iter_train(pairs, config, **kwargs))


class _Trainer(PixelRun):
    """The engine of one run; methods are the loop's pieces (generators where they yield)."""

    def __init__(self, config: TrainingConfig, runtime: Runtime, out: Path | None):
        self.config, self.runtime, self.out = config, runtime, out
        self.device, self.precision = runtime.device, runtime.precision
        self.channels_last = runtime.channels_last
        # Set by prepare(); the loop methods run only after it.
        self.model: SegmentationModel
        self.optimizer: torch.optim.Optimizer | None = None
        self.scaler: torch.amp.GradScaler
        self.state: RunState
        self.data: TrainingData | VolumeData
        self.dims = 2
        self.rng: np.random.Generator
        self.hooks: list[torch.utils.hooks.RemovableHandle] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.source: dict[str, Any] = {}
        self.pixel = False  # a pixel classifier: fitted, not trained (see fit_pixel)
        self.next_preview_s = PREVIEW_S  # training time of the next preview

    # -- setup -------------------------------------------------------------------------
    def prepare(self, pairs, model, resume, names):
        cfg = self.config
        base, self.source = base_model(self.config, model, resume, self.device)
        cfg = self.config = channels_from_labels(cfg, base, pairs)
        in_channels, normalization = input_spec(cfg, base, pairs[0][0])
        self.dims = run_dims(cfg, base)
        pairs, names, data_cfg = self._data_pairs(pairs, names)
        pairs = as_classes(ignoring(pairs, cfg.ignore_labels), cfg.instances, names)
        self.confirmed = confirmed_classes(cfg, base)
        self.data, planned = run_data(
            data_cfg, pairs, base, dims=self.dims, in_channels=in_channels,
            normalization=normalization, names=names, confirmed=self.confirmed,
            device=self.device,
        )  # fmt: skip
        self.config = cfg = cfg.with_(patch_3d=planned.patch_3d, batch_size=planned.batch_size)
        self._refuse_instances(pairs, base)
        self.model, source = fit_classes(
            base, self.config, self.data.max_label + 1, in_channels, normalization, self.device
        )
        self.source = source or self.source
        self.pixel = get_architecture(self.model.spec.architecture).fitted == "forest"
        if self.pixel and resume is not None:
            raise ValueError(
                "a pixel classifier is fitted in seconds and has no training state to resume: "
                "train it again"
            )
        if not self.pixel:
            self._fit_inner_classifier()
            self._setup_optimizer()
        self.state = RunState()
        if resume is not None and base is not None:  # base: the resumed model
            self.state = restore(base, self._optimizer(), self.scaler)
        self.rng = np.random.default_rng(cfg.seed)
        if self.state.numpy_rng is not None:
            self.rng.bit_generator.state = self.state.numpy_rng
        if self.state.best_epoch is not None and self.out is not None and self.out.is_file():
            self.best_state = best_from_file(self.out, self.state.best_epoch)
        self.loss = self._loss()
        self.aug = Augmentation.from_config(cfg)
        if self.dims == 3 and self.model.spec.spacing is not None:
            self.aug = replace(self.aug, spacing=self.model.spec.spacing)
        if not get_architecture(self.model.spec.architecture).intensity_augmentation:
            self.aug = replace(self.aug, intensity=False, noise=False)
        for message in [*self.data.warnings, *kept_settings(cfg, base)]:
            yield TrainWarning(message)
        yield TrainStarted(
            device=str(self.device),
            device_description=self.runtime.description,
            precision=self.precision,
            channels_last=self.channels_last,
            num_classes=self.model.spec.num_classes,
            class_names=self.model.spec.class_names,
            class_colors=self.model.spec.class_colors,
            annotated_pixels=self.data.annotated_pixels,
            validation_regions=len(self.data.regions),
            steps_per_epoch=cfg.steps_per_epoch,
            start_epoch=self.state.epoch,
            validation_metric=self.data.validation_metric,
        )

    def _data_pairs(self, pairs, names) -> tuple[list, Any, TrainingConfig]:
        """The pairs the run's data reads, their names, and the config the data is built
        with: a 3D run on a series of volumes (stack axes) reads each volume as a pair."""
        cfg = self.config
        if self.dims == 3 and cfg.axis is not None:
            pairs, names, caxis = volumes_of(pairs, names, cfg.axis, cfg.channel_axis)
            return pairs, names, cfg.with_(axis=None, channel_axis=caxis)
        return pairs, names, cfg

    def _loss(self) -> SegmentationLoss:
        """The run's loss, ``auto`` resolved from the data and the classes."""
        classes = self.model.spec.num_classes
        name = resolve_loss(
            self.config.loss,
            sparse=self.data.sparse,
            num_classes=classes,
            boundaries=self.config.instances == "boundaries",
        )
        return SegmentationLoss(name, num_classes=classes, class_counts=self.data.class_counts).to(
            self.device
        )

    def _refuse_instances(self, pairs, base) -> None:
        """Refuse to train one class per object of instance labels given as class ids,
        or hundreds of classes for a few ids (a 0/255 mask), unless the config or the
        model to fine-tune says that many classes."""
        if self.config.instances is not None:
            return
        needed = self.data.max_label + 1
        names = [source.name for source in self.data.sources]  # the data's names for them
        refuse_instances(pairs, names, needed=needed, confirmed=self.confirmed)
        present = np.flatnonzero(self.data.class_counts).tolist()
        refuse_unused_ids(present, needed=needed, confirmed=self.confirmed)

    def _setup_optimizer(self) -> None:
        cfg, model = self.config, self.model
        if self.channels_last and self.dims == 2:  # channels-last is a 4D format
            model.to(memory_format=torch.channels_last)
        self.hooks = guard_batchnorm(model)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            raise RuntimeError("the trainer is closed")
        return self.optimizer

    # -- the loop ------------------------------------------------------------------------
    def loop(self, stop: threading.Event, preview):
        cfg, st = self.config, self.state
        preview = None if preview is None else self._checked_preview(preview)
        clock = Clock(st.elapsed_s)
        stopped = "budget"
        while not self._budget_done(clock):
            self.model.train()
            while st.step_in_epoch < cfg.steps_per_epoch:
                loss, lr = self._step(clock)
                st.step_in_epoch += 1
                st.steps += 1
                st.epoch_loss_sum += loss
                st.losses.append(loss)
                event = StepProgress(
                    st.epoch + 1,
                    st.step_in_epoch,
                    cfg.steps_per_epoch,
                    loss,
                    lr,
                    clock.elapsed(),
                    self._fraction(clock),
                )
                yield from clock.outside(event)
                if preview is not None and clock.elapsed() >= self.next_preview_s:
                    yield from self._show_preview(clock, preview)
                if stop.is_set() or self._budget_done(clock, within_epoch=True):
                    break
            if stop.is_set():
                stopped = "stopped"
                break
            yield from self._end_epoch(clock, preview)
            if cfg.patience is not None and st.epochs_since_best >= cfg.patience:
                stopped = "early stopping"
                break
        if preview is not None:  # the state the run ends in
            yield from self._show_preview(clock, preview, final=True)
        st.elapsed_s = clock.elapsed()
        return (yield from self._finish(stopped, clock))

    def _step(self, clock) -> tuple[float, float]:
        cfg, optimizer = self.config, self._optimizer()
        lr = cfg.learning_rate * lr_factor(cfg.schedule, self._fraction(clock), warmup=cfg.warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images, targets = self.data.sample(self.rng, cfg.batch_size, cfg.sample_annotated)
        images, targets = augment(images, targets, self.rng, self.aug)
        x = self.runtime.memory_format(torch.from_numpy(images).to(self.device))
        y = torch.from_numpy(targets).to(self.device)
        with self.runtime.autocast():
            logits, aux = self.model.forward_with_aux(x)
        w = cfg.filled_weight
        loss = self.loss(logits, y, w)
        if aux:
            loss = loss + AUX_WEIGHT * sum(self.loss(a, y, w) for a in aux) / len(aux)
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the training loss became {value} at step {self.state.steps + 1}; lower the "
                "learning rate or use fp32"
            )
        return value, lr

    def _fraction(self, clock) -> float:
        cfg, st = self.config, self.state
        parts = []
        if cfg.epochs is not None:
            parts.append(st.steps / (cfg.epochs * cfg.steps_per_epoch))
        if cfg.time_budget is not None:
            parts.append(clock.elapsed() / (60.0 * cfg.time_budget))
        return min(1.0, max(parts))

    def _budget_done(self, clock, *, within_epoch: bool = False) -> bool:
        if within_epoch:  # only the time budget ends an epoch early
            return self.config.time_budget is not None and self._fraction(clock) >= 1.0
        return self._fraction(clock) >= 1.0

    def _end_epoch(self, clock, preview):
        cfg, st = self.config, self.state
        val = validate(self.model, self.data, self.loss, self.runtime, cfg.batch_size)
        st.epoch += 1
        train_loss = st.epoch_loss_sum / max(1, st.step_in_epoch)
        improved = self._track_best(val.score)
        lr = self._optimizer().param_groups[0]["lr"]
        st.history.append(history_entry(st, train_loss, val, lr, clock.elapsed()))
        st.step_in_epoch, st.epoch_loss_sum = 0, 0.0
        event = EpochEnd(
            st.epoch,
            train_loss,
            val.loss,
            val.score,
            val.class_scores,
            lr,
            clock.elapsed(),
            improved,
            val.metric,
        )
        yield from clock.outside(event)
        yield from self._save(clock, improved)

    def _preview_config(self, image: np.ndarray):
        """The preview's prediction settings: channels come last, where the model has
        them (one axis more than its dims)."""
        from ..inference import PredictConfig

        channel = image.ndim - 1 if image.ndim > self.model.spec.spatial_dims else None
        return PredictConfig(
            device=str(self.device), precision=self.precision, channel_axis=channel
        )

    def _checked_preview(self, image) -> np.ndarray:
        """The preview image as an array, refused before the first step when the model
        cannot predict it (it once failed at the first preview, some seconds in)."""
        from ..inference.blocks import layout_of

        image = np.asarray(image)
        try:
            layout_of(self.model, image.shape, self._preview_config(image))
        except ValueError as exc:
            raise ValueError(f"preview (shape {image.shape}): {exc}") from None
        return image

    def _show_preview(self, clock: Clock, image, *, final: bool = False):
        """Predict the preview image and yield it; the next one comes ``PREVIEW_S``
        later, or later still when a preview takes more than ``PREVIEW_SHARE`` of the time."""
        from ..inference import predict

        start = clock.elapsed()
        try:
            labels = predict(self.model, image, self._preview_config(image)).labels
        finally:
            self.model.train()
        took = clock.elapsed() - start
        self.next_preview_s = clock.elapsed() + max(PREVIEW_S, took / PREVIEW_SHARE)
        epoch = self.state.epoch if final else self.state.epoch + 1  # finished / under way
        yield from clock.outside(PreviewReady(max(1, epoch), labels))

    def _finish(self, stopped: str, clock):
        st = self.state
        if self.out is not None and stopped == "stopped":
            st.numpy_rng = self.rng.bit_generator.state
            last, _ = companion_paths(self.out)
            self._checkpoint(last)
            metric = self.data.validation_metric
            yield from clock.outside(ModelSaved(last, "last", st.epoch, float("nan"), metric))
        self._remove_hooks()  # the returned model must not carry the BatchNorm guard
        best = self.model
        if self.best_state is not None:
            best = copy.deepcopy(self.model)
            best.load_state_dict(self.best_state)
        best = best.to(memory_format=torch.contiguous_format).eval()
        best.card = {"provenance": {"training": self._summary(stopped)}}
        summary_path = self._write_summary(stopped)
        last_path = companion_paths(self.out)[0] if self.out is not None else None
        return TrainResult(
            model=best,
            config=self.config,
            best_path=self.out if self.out is not None and self.out.is_file() else None,
            last_path=last_path if last_path is not None and last_path.is_file() else None,
            summary_path=summary_path,
            stopped=stopped,
            epochs=st.epoch,
            steps=st.steps,
            seconds=clock.elapsed(),
            history=list(st.history),
            metrics=self._metrics(),
            losses=list(st.losses),
        )

    def close(self) -> None:
        """Undo process-wide changes and free device memory (also on cancel or error)."""
        self._remove_hooks()
        self.optimizer = None
        self.best_state = None
        release_memory(self.device)

    def _remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []
