"""Instance scores: objects matched at IoU thresholds, from sparse overlap counts.

Definitions followed (with the same names as StarDist's ``matching``):

- A predicted and a true object match when their IoU is at least the
  threshold; each object matches at most once, and among the possible
  matchings the one with the most matches (then the highest total IoU) is
  taken (Schmidt et al., "Cell detection with star-convex polygons", MICCAI
  2018; Weigert et al., WACV 2020). For thresholds above 0.5 the matching is
  unique (two objects cannot both overlap more than half of a third one).
- precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN).
- accuracy = TP / (TP + FP + FN), the "average precision" of the 2018 Data
  Science Bowl (Caicedo et al., Nature Methods 16, 2019) used by Cellpose and
  StarDist papers.
- mean matched IoU = sum of the matched pairs' IoU / TP.
- panoptic quality = sum of the matched IoU / (TP + FP/2 + FN/2) (Kirillov et
  al., "Panoptic segmentation", CVPR 2019), here reported at every threshold.
- SEG, the Cell Tracking Challenge's segmentation measure (Maška et al., Nature
  Methods 20, 2023; Ulman et al., Nature Methods 14, 2017): each true object's IoU
  with the predicted object that covers more than half of it (0 when none does),
  averaged over the true objects; one figure, no threshold. Pooled over images or
  frames, as the challenge does, it is the average over all their true objects.

As for the semantic scores, a ratio whose denominator is zero is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._types import RegionArray
from ._arrays import check_pair
from ._pairs import pair_counts
from ._semantic import _divide

DEFAULT_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@dataclass(frozen=True)
class Overlaps:
    """Sparse overlaps of two instance label images (background left out).

    Attributes
    ----------
    true_ids, pred_ids : ndarray of int64
        Object ids present in the ground truth and in the prediction.
    true_area, pred_area : ndarray of int64
        Pixels of each object, in the order of the ids.
    pairs_true, pairs_pred : ndarray of int64
        The ids of every overlapping (true, predicted) pair.
    intersection : ndarray of int64
        Pixels shared by each pair.
    iou : ndarray of float64
        Intersection over union of each pair.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_area: np.ndarray
    pred_area: np.ndarray
    pairs_true: np.ndarray
    pairs_pred: np.ndarray
    intersection: np.ndarray
    iou: np.ndarray


@dataclass(frozen=True)
class InstanceScores:
    """Matching scores at each IoU threshold (arrays have one entry per threshold).

    ``matches[i]`` holds the (true ids, predicted ids, IoU) of the pairs
    matched at ``thresholds[i]``.
    """

    thresholds: tuple[float, ...]
    n_true: int
    n_pred: int
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    accuracy: np.ndarray
    mean_matched_iou: np.ndarray
    panoptic_quality: np.ndarray
    matches: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    seg_sum: float

    @property
    def seg(self) -> float:
        """The Cell Tracking Challenge's SEG: ``seg_sum`` (each true object's IoU with
        the predicted object covering more than half of it) over the true objects;
        NaN without true objects."""
        return self.seg_sum / self.n_true if self.n_true else float("nan")

    @property
    def mean_accuracy(self) -> float:
        """Accuracy averaged over the thresholds (NaN left out)."""
        finite = self.accuracy[~np.isnan(self.accuracy)]
        return float(finite.mean()) if finite.size else float("nan")


def instance_overlaps(pred: RegionArray, gt: RegionArray, *, background: int = 0) -> Overlaps:
    """Overlap counts of every pair of touching objects, without a dense matrix.

    Memory grows with the number of pixels in a block and with the number of
    overlapping pairs, not with (number of objects)^2, so 20,000 objects are fine.

    Parameters
    ----------
    pred, gt : array_like of int
        Instance label images of the same shape; ``background`` is no object.
    background : int, optional
        The id of background pixels (default 0).

    Returns
    -------
    Overlaps
        The objects of each image and the pixels each overlapping pair shares.
    """
    pred, gt = check_pair(pred, gt)
    g, p, c = pair_counts(pred, gt)
    true_ids, true_inv = np.unique(g, return_inverse=True)
    pred_ids, pred_inv = np.unique(p, return_inverse=True)
    true_area = np.bincount(true_inv.ravel(), weights=c).astype(np.int64)
    pred_area = np.bincount(pred_inv.ravel(), weights=c).astype(np.int64)
    both = (g != background) & (p != background)
    inter = c[both]
    union = true_area[true_inv[both]] + pred_area[pred_inv[both]] - inter
    keep_t, keep_p = true_ids != background, pred_ids != background
    return Overlaps(
        true_ids=true_ids[keep_t],
        pred_ids=pred_ids[keep_p],
        true_area=true_area[keep_t],
        pred_area=pred_area[keep_p],
        pairs_true=g[both],
        pairs_pred=p[both],
        intersection=inter,
        iou=inter / union,
    )


def match_instances(
    pred: RegionArray,
    gt: RegionArray,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    background: int = 0,
) -> InstanceScores:
    """Match predicted to true objects at IoU thresholds and score the matching.

    Parameters
    ----------
    pred, gt : array_like of int
        Instance label images of the same shape (each object one id).
    thresholds : sequence of float, optional
        IoU thresholds in (0, 1]; default 0.5, 0.55, ..., 0.95.
    background : int, optional
        The id of background pixels (default 0).

    Returns
    -------
    InstanceScores

    Raises
    ------
    TypeError, ValueError
        For arrays that are not label images (see :func:`confusion_matrix`) or
        thresholds outside (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.array([[1, 1, 0, 2, 2, 2]])
    >>> pred = np.array([[3, 3, 0, 0, 0, 4]])
    >>> s = match_instances(pred, gt, thresholds=(0.5,))
    >>> int(s.tp[0]), int(s.fp[0]), int(s.fn[0])
    (1, 1, 1)
    """
    thresholds = _check_thresholds(thresholds)
    ov = instance_overlaps(pred, gt, background=background)
    n_true, n_pred = len(ov.true_ids), len(ov.pred_ids)
    matches = tuple(_match(ov.pairs_true, ov.pairs_pred, ov.iou, t) for t in thresholds)
    # SEG: a predicted object covering more than half of a true one (at most one can)
    true_area = ov.true_area[np.searchsorted(ov.true_ids, ov.pairs_true)]
    seg_sum = float(ov.iou[2 * ov.intersection > true_area].sum())
    return _scores(thresholds, n_true, n_pred, matches, seg_sum)


def pool_instance_scores(scores: Sequence[InstanceScores]) -> InstanceScores:
    """The matching scores of several images taken together: their true and
    predicted objects and their matches summed, then scored (as StarDist's
    ``matching_dataset`` does), so an image with many objects weighs more.

    Parameters
    ----------
    scores : sequence of InstanceScores
        One per image, all at the same thresholds.

    Returns
    -------
    InstanceScores
        ``matches`` concatenates the images' matches (ids are each image's own).

    Raises
    ------
    ValueError
        For no scores, or scores at different thresholds.
    """
    if not scores:
        raise ValueError("nothing to pool: no instance scores given")
    thresholds = scores[0].thresholds
    if any(s.thresholds != thresholds for s in scores):
        raise ValueError("instance scores at different IoU thresholds cannot be pooled")
    matches = tuple(
        tuple(np.concatenate([s.matches[i][j] for s in scores]) for j in range(3))
        for i in range(len(thresholds))
    )
    n_true = sum(s.n_true for s in scores)
    n_pred = sum(s.n_pred for s in scores)
    seg_sum = float(sum(s.seg_sum for s in scores))
    return _scores(thresholds, n_true, n_pred, matches, seg_sum)


def _scores(thresholds, n_true: int, n_pred: int, matches, seg_sum: float) -> InstanceScores:
    """The scores of ``matches``, one (true ids, predicted ids, IoU) per threshold."""
    tp = np.array([len(m[0]) for m in matches], dtype=np.int64)
    iou_sum = np.array([m[2].sum() for m in matches], dtype=np.float64)
    fp, fn = n_pred - tp, n_true - tp
    return InstanceScores(
        thresholds=thresholds,
        n_true=n_true,
        n_pred=n_pred,
        tp=tp,
        fp=fp,
        fn=fn,
        precision=_divide(tp, tp + fp),
        recall=_divide(tp, tp + fn),
        f1=_divide(2 * tp, 2 * tp + fp + fn),
        accuracy=_divide(tp, tp + fp + fn),
        mean_matched_iou=_divide(iou_sum, tp),
        panoptic_quality=_divide(iou_sum, tp + fp / 2 + fn / 2),
        matches=matches,
        seg_sum=seg_sum,
    )


def _check_thresholds(thresholds) -> tuple[float, ...]:
    values = tuple(float(t) for t in np.atleast_1d(np.asarray(thresholds, dtype=np.float64)))
    if not values:
        raise ValueError("thresholds must hold at least one IoU threshold")
    bad = [t for t in values if not 0.0 < t <= 1.0]
    if bad:
        raise ValueError(f"thresholds must be in (0, 1], got {bad}")
    if repeated := sorted({t for t in values if values.count(t) > 1}):
        raise ValueError(f"thresholds must differ; {repeated} given more than once")
    return values


def _match(true, pred, iou, threshold: float):
    """The largest matching (then highest total IoU) among pairs with IoU >= threshold."""
    ok = iou >= threshold
    true, pred, iou = true[ok], pred[ok], iou[ok]
    single = (_degree(true) == 1) & (_degree(pred) == 1)
    if single.all():
        return true, pred, iou
    # Only objects with several candidates need an assignment; for thresholds
    # above 0.5 that happens at exact ties alone, so the dense problem is tiny.
    from scipy.optimize import linear_sum_assignment

    rest = ~single
    rows, ri = np.unique(true[rest], return_inverse=True)
    cols, ci = np.unique(pred[rest], return_inverse=True)
    scores = np.zeros((len(rows), len(cols)))
    scores[ri.ravel(), ci.ravel()] = iou[rest]
    # One per match dominates: the IoU term sums to less than 0.5 over any matching.
    weight = np.where(scores > 0, 1.0 + scores / (2 * min(scores.shape)), 0.0)
    r, c = linear_sum_assignment(weight, maximize=True)
    r, c = r[weight[r, c] > 0], c[weight[r, c] > 0]
    return (
        np.concatenate((true[single], rows[r])),
        np.concatenate((pred[single], cols[c])),
        np.concatenate((iou[single], scores[r, c])),
    )


def _degree(ids: np.ndarray) -> np.ndarray:
    """For each entry, how many entries share its id."""
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return counts[inverse.ravel()]
