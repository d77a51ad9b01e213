"""Validation on the held-out regions: loss and IoU from a confusion matrix."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..arrays.runtime import Runtime
from ..metrics import ConfusionMatrix, semantic_scores
from ..models.wrapper import SegmentationModel, mask_untrained
from .data import IGNORE_INDEX, TrainingData


@dataclass(frozen=True)
class Validation:
    """Mean loss and IoU over the held-out regions (NaN when there are none)."""

    loss: float
    iou: float
    class_iou: dict[int, float]


@torch.no_grad()
def validate(
    model: SegmentationModel,
    data: TrainingData,
    loss_fn: torch.nn.Module,
    runtime: Runtime,
    batch_size: int,
) -> Validation:
    """Predict every held-out region and score it against its annotations.

    The IoU is :func:`napari_seg.metrics.semantic_scores`' mean IoU over the
    classes present in the annotations or the prediction of those regions;
    unannotated pixels are left out.

    Parameters
    ----------
    model : SegmentationModel
    data : TrainingData
    loss_fn : torch.nn.Module
        The run's loss.
    runtime : Runtime
        Device, precision and memory format of the run.
    batch_size : int

    Returns
    -------
    Validation
        NaN loss and IoU when nothing is held out.
    """
    if not data.regions:
        return Validation(float("nan"), float("nan"), {})
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
    matrix = counts.cpu().numpy().reshape(k, k)
    scores = semantic_scores(ConfusionMatrix(matrix, tuple(range(k))), background=None)
    total = sum(weights)
    loss = sum(v * w for v, w in zip(losses, weights, strict=True)) / total if total else math.nan
    class_iou = {
        c: float(v) for c, v in zip(scores.labels, scores.iou, strict=True) if not np.isnan(v)
    }
    return Validation(float(loss), float(scores.mean_iou), class_iou)
