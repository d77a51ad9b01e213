"""Semantic scores from a confusion matrix: IoU, Dice, precision, recall, accuracy.

Zero-division policy: a score whose denominator is zero is NaN (a class absent
from both arrays has no IoU or Dice; a class never predicted has no precision;
a class absent from the ground truth has no recall), and means leave NaN out.
A class present in only one of the two arrays scores 0, not NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._confusion import ConfusionMatrix


@dataclass(frozen=True)
class SemanticScores:
    """Per-class and mean scores; arrays have a leading slice axis for stacks.

    Attributes
    ----------
    labels : tuple of int
        The scored class ids (ignored ids left out), in the matrix's order.
    iou, dice, precision, recall : ndarray of float, shape (..., k)
        Per-class scores (Dice equals F1), NaN where undefined.
    support : ndarray of int64, shape (..., k)
        Ground-truth pixels of each class.
    predicted : ndarray of int64, shape (..., k)
        Predicted pixels of each class.
    mean_iou, mean_iou_foreground : float or ndarray
        Mean IoU over classes with and without the background class.
    mean_dice, mean_dice_foreground, mean_precision, mean_recall : float or ndarray
        Means over classes (NaN left out).
    frequency_weighted_iou : float or ndarray
        Sum over classes of (ground-truth frequency x IoU).
    pixel_accuracy : float or ndarray
        Correct pixels / scored pixels.
    background : int or None
        The class id treated as background in the ``*_foreground`` means.
    """

    labels: tuple[int, ...]
    iou: np.ndarray
    dice: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    support: np.ndarray
    predicted: np.ndarray
    mean_iou: float | np.ndarray
    mean_iou_foreground: float | np.ndarray
    mean_dice: float | np.ndarray
    mean_dice_foreground: float | np.ndarray
    mean_precision: float | np.ndarray
    mean_recall: float | np.ndarray
    frequency_weighted_iou: float | np.ndarray
    pixel_accuracy: float | np.ndarray
    background: int | None = 0


def semantic_scores(cm: ConfusionMatrix, *, background: int | None = 0) -> SemanticScores:
    """Per-class IoU, Dice/F1, precision and recall, their means, FW-IoU and accuracy.

    Parameters
    ----------
    cm : ConfusionMatrix
        From :func:`confusion_matrix` or :func:`slice_confusion_matrices`
        (then every score has a leading slice axis).
    background : int or None, optional
        Class id left out of the ``*_foreground`` means (default 0); None
        makes them equal to the plain means.

    Returns
    -------
    SemanticScores

    Raises
    ------
    TypeError
        If ``cm`` is not a ConfusionMatrix.

    Notes
    -----
    With TP, FP and FN the per-class true positives, false positives and
    false negatives: IoU = TP / (TP + FP + FN) (Jaccard), Dice = F1 =
    2 TP / (2 TP + FP + FN), precision = TP / (TP + FP), recall = TP / (TP + FN),
    frequency-weighted IoU = sum_c (N_c / N) IoU_c over the scored pixels
    (Long, Shelhamer and Darrell, "Fully convolutional networks for semantic
    segmentation", CVPR 2015, section 5). Denominators of zero give NaN; means
    skip NaN.
    """
    if not isinstance(cm, ConfusionMatrix):
        raise TypeError(f"cm must be a ConfusionMatrix, got {type(cm).__name__}")
    counts = cm.counts.astype(np.float64)
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    support = counts.sum(axis=-1)  # rows: ground truth
    predicted = counts.sum(axis=-2)
    fp, fn = predicted - tp, support - tp
    keep = cm.scored
    tp, fp, fn, support, predicted = (a[..., keep] for a in (tp, fp, fn, support, predicted))
    labels = tuple(lab for lab, k in zip(cm.labels, keep, strict=True) if k)
    iou = _divide(tp, tp + fp + fn)
    dice = _divide(2 * tp, 2 * tp + fp + fn)
    precision, recall = _divide(tp, tp + fp), _divide(tp, tp + fn)
    total = support.sum(axis=-1)
    foreground = np.array([lab != background for lab in labels], dtype=bool)
    return SemanticScores(
        labels=labels,
        iou=iou,
        dice=dice,
        precision=precision,
        recall=recall,
        support=support.astype(np.int64),
        predicted=predicted.astype(np.int64),
        mean_iou=nanmean_quiet(iou),
        mean_iou_foreground=nanmean_quiet(iou[..., foreground]),
        mean_dice=nanmean_quiet(dice),
        mean_dice_foreground=nanmean_quiet(dice[..., foreground]),
        mean_precision=nanmean_quiet(precision),
        mean_recall=nanmean_quiet(recall),
        frequency_weighted_iou=_divide(np.nansum(support * np.nan_to_num(iou), axis=-1), total),
        pixel_accuracy=_divide(tp.sum(axis=-1), total),
        background=background,
    )


def _divide(num, den):
    """num / den with NaN where den == 0 (no warning)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out if out.ndim else float(out)


def nanmean_quiet(values):
    """Mean over the last axis leaving NaN out; NaN when nothing is left, without
    ``np.nanmean``'s warning (a class absent from every image is expected)."""
    values = np.asarray(values, dtype=np.float64)
    finite = ~np.isnan(values)
    return _divide(np.where(finite, values, 0.0).sum(axis=-1), finite.sum(axis=-1))
