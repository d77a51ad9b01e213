"""A run's records: the best model so far, checkpoints after an epoch, the summary.

The bookkeeping that gradient descent (:class:`~napari_seg.training.loop._Trainer`)
and a pixel classifier's fit (:class:`~napari_seg.training._pixel_run.PixelRun`)
share; mixed into the trainer, whose attributes it reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .checkpoint import RunState, save_checkpoint
from .config import TrainingConfig
from .data import TrainingData
from .events import ModelSaved
from .files import companion_paths
from .history import metric_key, run_metrics, run_summary, write_summary
from .losses import SegmentationLoss
from .volume import VolumeData

if TYPE_CHECKING:
    from ..models.wrapper import SegmentationModel

#: An improvement of the validation score smaller than this does not reset patience.
MIN_DELTA = 1e-4


class RunRecords:
    """The best model, checkpoints and summary of a run (the trainer's attributes)."""

    config: TrainingConfig
    out: Path | None
    model: SegmentationModel
    data: TrainingData | VolumeData
    state: RunState
    loss: SegmentationLoss
    source: dict[str, Any]
    rng: np.random.Generator
    scaler: torch.amp.GradScaler
    best_state: dict[str, torch.Tensor] | None
    _optimizer: Callable[[], torch.optim.Optimizer]

    def _track_best(self, score: float) -> bool:
        st = self.state
        if math.isnan(score):
            improved = True  # without validation, the last model is the best one
        else:
            improved = st.best_score is None or score > st.best_score + MIN_DELTA
        if improved:
            st.best_score = None if math.isnan(score) else score
            st.best_epoch, st.epochs_since_best = st.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            st.epochs_since_best += 1
        return improved

    def _save(self, clock, improved: bool):
        if self.out is None:
            return
        st = self.state
        st.elapsed_s = clock.elapsed()
        st.numpy_rng = self.rng.bit_generator.state
        last, _ = companion_paths(self.out)
        metric = self.data.validation_metric
        score = st.history[-1][metric_key(metric)] if st.history else None
        score = float("nan") if score is None else score
        kinds = (("best", self.out),) if improved else ()
        for kind, path in (*kinds, ("last", last)):
            self._checkpoint(path)
            yield from clock.outside(ModelSaved(path, kind, st.epoch, score, metric))

    def _checkpoint(self, path: Path) -> None:
        save_checkpoint(
            path,
            self.model,
            optimizer=self._optimizer(),
            scaler=self.scaler,
            state=self.state,
            training=self._summary("checkpoint"),
        )

    def _metrics(self) -> dict:
        return run_metrics(self.state, self.data.validation_metric)

    def _summary(self, status: str) -> dict:
        """The run for a card or the summary file (:func:`history.run_summary`)."""
        return run_summary(status, self.config, self.loss.name, self._metrics(), self.source,
                           self.data)  # fmt: skip

    def _write_summary(self, stopped: str) -> Path | None:
        if self.out is None:
            return None
        return write_summary(self.out, self._summary(stopped), self.state.history)
