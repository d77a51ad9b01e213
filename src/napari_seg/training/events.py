"""Typed events yielded by :func:`napari_seg.training.iter_train`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainStarted:
    """The run's resolved settings, yielded once before the first step."""

    device: str
    device_description: str
    precision: str
    channels_last: bool
    num_classes: int
    class_names: tuple[str, ...]
    class_colors: tuple[tuple[float, ...], ...]
    annotated_pixels: int
    validation_regions: int
    steps_per_epoch: int
    start_epoch: int
    #: ``"iou"`` (dense labels) or ``"agreement"`` (held-out strokes of sparse labels).
    validation_metric: str = "iou"


@dataclass(frozen=True)
class TrainWarning:
    """Something the user should know that does not stop the run."""

    message: str


@dataclass(frozen=True)
class FitProgress:
    """Yielded while a 3D pixel classifier reads its volumes, after each block.

    Attributes
    ----------
    blocks_done, blocks_total : int
        Blocks of the volumes read so far, and in all (blocks without painted
        voxels are skipped quickly).
    elapsed_s : float
    """

    blocks_done: int
    blocks_total: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        """Share of the blocks read."""
        return self.blocks_done / max(1, self.blocks_total)


@dataclass(frozen=True)
class StepProgress:
    """Yielded after every optimizer step.

    Attributes
    ----------
    fraction : float
        Fraction of the budget (epochs or minutes, whichever ends first) used.
    """

    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    learning_rate: float
    elapsed_s: float
    fraction: float

    @property
    def eta_s(self) -> float | None:
        """Estimated seconds left in the budget (early stopping may end sooner)."""
        if self.fraction <= 0:
            return None
        return max(0.0, self.elapsed_s * (1.0 - self.fraction) / self.fraction)


@dataclass(frozen=True)
class EpochEnd:
    """Yielded after each epoch's validation.

    ``val_score`` is what ``val_metric`` names: the mean IoU over the scored
    classes of the held-out blocks (``"iou"``, dense labels) or the held-out
    stroke agreement (``"agreement"``, sparse labels; see
    :mod:`napari_seg.training.validation`); NaN when nothing could be held out.
    ``val_class_scores`` maps class ids to their score.
    """

    epoch: int
    train_loss: float
    val_loss: float
    val_score: float
    val_class_scores: dict[int, float]
    learning_rate: float
    elapsed_s: float
    improved: bool
    val_metric: str = "iou"

    @property
    def val_iou(self) -> float:
        """The validation IoU; NaN when the score is not an IoU (sparse labels)."""
        return self.val_score if self.val_metric == "iou" else float("nan")


@dataclass(frozen=True)
class ModelSaved:
    """A model file was written (atomically), with its validation score (NaN if none)."""

    path: Path
    kind: str  # "best" or "last"
    epoch: int
    score: float
    metric: str = "iou"


@dataclass(frozen=True)
class PreviewReady:
    """Labels predicted for the preview image, every few seconds of training and at
    the end (``epoch``: the epoch under way, from 1)."""

    epoch: int
    labels: np.ndarray


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run returns.

    Attributes
    ----------
    model : SegmentationModel
        The best model (best validation IoU; the last one without validation),
        in eval mode.
    stopped : str
        Why training ended: ``"budget"``, ``"early stopping"`` or ``"stopped"``.
    history : list of dict
        One entry per epoch (epoch, train_loss, val_loss, ``val_iou`` or
        ``val_agreement``, lr, elapsed_s).
    metrics : dict
        ``validation_metric``, the best epoch, its score (``best_val_iou`` or
        ``best_val_agreement``, mean and per class) and the last values.
    """

    model: Any
    config: Any
    best_path: Path | None
    last_path: Path | None
    summary_path: Path | None
    stopped: str
    epochs: int
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)

    def describe(self) -> str:
        """What the run did, in words: "budget: 3 epoch(s), 75 steps in 41.0 s", or
        "fitted in 2.1 s" for a pixel classifier.

        Returns
        -------
        str
        """
        if self.stopped == "fitted":
            return f"fitted in {self.seconds:.1f} s"
        return f"{self.stopped}: {self.epochs} epoch(s), {self.steps} steps in {self.seconds:.1f} s"


TrainEvent = (
    TrainStarted | TrainWarning | FitProgress | StepProgress | EpochEnd | ModelSaved | PreviewReady
)
