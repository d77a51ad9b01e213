"""Validation on the held-out regions: loss and a score from a confusion matrix.

Dense labels are scored with the mean IoU of the held-out blocks. Sparse labels
(strokes) are scored with the held-out stroke agreement: for each class, the
share of its held-out stroke pixels predicted as that class, averaged over the
classes (balanced accuracy). It says how well the model generalises to strokes
it was not shown; it is not the IoU of the image, which would need a full
ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..arrays.runtime import Runtime
from ..metrics import ConfusionMatrix, semantic_scores
from ..models.wrapper import SegmentationModel, mask_untrained
from ._shared import IGNORE_INDEX
from .data import TrainingData
from .volume import VolumeData

#: What each validation metric is called where users read it.
METRIC_NAMES = {"iou": "validation IoU", "agreement": "held-out stroke agreement"}


@dataclass(frozen=True)
class Validation:
    """Mean loss and score over the held-out regions (NaN when there are none).

    Attributes
    ----------
    metric : {"iou", "agreement"}
        What ``score`` and ``class_scores`` are (see the module docstring).
    """

    loss: float
    score: float
    class_scores: dict[int, float]
    metric: str = "iou"


@torch.no_grad()
def validate(
    model: SegmentationModel,
    data: TrainingData | VolumeData,
    loss_fn: torch.nn.Module,
    runtime: Runtime,
    batch_size: int,
) -> Validation:
    """Predict every held-out region and score it against its annotations.

    With dense labels the score is :func:`napari_seg.metrics.semantic_scores`'
    mean IoU over the classes present in the annotations or the prediction of
    those regions; with sparse labels it is the held-out stroke agreement (see
    the module docstring). Unannotated pixels are left out.

    Parameters
    ----------
    model : SegmentationModel
    data : TrainingData or VolumeData
    loss_fn : torch.nn.Module
        The run's loss.
    runtime : Runtime
        Device, precision and memory format of the run.
    batch_size : int

    Returns
    -------
    Validation
        NaN loss and score when nothing is held out.
    """
    metric = data.validation_metric
    if not data.regions:
        return Validation(float("nan"), float("nan"), {}, metric)
    was_training = model.training
    model.eval()
    k = model.spec.num_classes
    device = runtime.device
    counts = torch.zeros(k * k, dtype=torch.int64, device=device)
    losses, weights = [], []
    try:
        for batch in data.validation_batches(batch_size):
            x = torch.from_numpy(np.stack([image for image, _ in batch])).to(device)
            x = runtime.memory_format(x)
            y = torch.from_numpy(np.stack([target for _, target in batch])).to(device)
            with runtime.autocast():
                logits = model(x)
            valid = y != IGNORE_INDEX
            losses.append(float(loss_fn(logits, y)))
            weights.append(int(valid.sum()))
            pred = mask_untrained(logits, model.spec).argmax(dim=1)
            counts += torch.bincount(y[valid] * k + pred[valid], minlength=k * k)
    finally:
        model.train(was_training)
    return validation_from_matrix(counts.cpu().numpy().reshape(k, k), losses, weights, metric)


def validation_from_matrix(
    matrix: np.ndarray, losses: list, weights: list, metric: str
) -> Validation:
    """The loss (the mean of ``losses`` weighted by their scored pixels) and the
    score of a confusion ``matrix`` (rows: the annotations' classes).

    Parameters
    ----------
    matrix : (k, k) ndarray of int
    losses, weights : list of float
    metric : {"iou", "agreement"}

    Returns
    -------
    Validation
    """
    k, total = len(matrix), sum(weights)
    loss = sum(v * w for v, w in zip(losses, weights, strict=True)) / total if total else math.nan
    if metric == "agreement":
        score, per_class = stroke_agreement(matrix)
        return Validation(float(loss), score, per_class, metric)
    scores = semantic_scores(ConfusionMatrix(matrix, tuple(range(k))), background=None)
    class_iou = {
        c: float(v) for c, v in zip(scores.labels, scores.iou, strict=True) if not np.isnan(v)
    }
    return Validation(float(loss), float(scores.mean_iou), class_iou, metric)


def stroke_agreement(matrix: np.ndarray) -> tuple[float, dict[int, float]]:
    """Held-out stroke agreement from a confusion matrix of held-out stroke pixels
    (rows: the strokes' classes, columns: predicted): the share of each class's
    pixels predicted as it, and their mean over the classes held out.

    Parameters
    ----------
    matrix : (k, k) ndarray of int

    Returns
    -------
    score : float
        NaN when no pixel is held out.
    per_class : dict of int to float
    """
    shown = matrix.sum(axis=1)
    per_class = {c: float(matrix[c, c] / shown[c]) for c in range(len(shown)) if shown[c] > 0}
    score = float(np.mean(list(per_class.values()))) if per_class else math.nan
    return score, per_class


def score_text(metric: str, value: float | None) -> str:
    """A validation score as users read it: "held-out stroke agreement 0.912".

    Parameters
    ----------
    metric : {"iou", "agreement"}
    value : float or None
        None or NaN when there was nothing to validate on.

    Returns
    -------
    str
    """
    name = METRIC_NAMES[metric]
    if value is None or math.isnan(value):
        return f"no {name}"
    return f"{name} {value:.3f}"
