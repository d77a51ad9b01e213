"""What an evaluation warns of: the two arrays using different ids for one class
(:func:`id_mismatch`), a background id neither uses (:func:`absent_background`), a
ground truth left out whole (:func:`all_ignored`), and class labels given for instance
scores (:func:`classes_not_objects`)."""

from __future__ import annotations

import numpy as np

from ..limits import MAX_UNSTATED_CLASSES, brief
from ._arrays import id_regions, middle_plane
from ._confusion import ConfusionMatrix

#: Instance mode: an array with at least this many connected regions per id (and at
#: least :data:`MIN_CLASS_REGIONS` regions) is class labels, not objects.
REGIONS_PER_CLASS = 3
MIN_CLASS_REGIONS = 10
#: A stack whose planes each hold at least this many ids, about one region each, while
#: the ids recur along the stack, is a series of 2D instance labels (e.g. track ids).
MIN_PLANE_IDS = 3
#: Ids a message lists (``limits.brief`` cuts a list there); more are counted.
SHOWN_IDS = 8


def classes_not_objects(
    array, what: str, background: int = 0, *, axis: int | None = None
) -> str | None:
    """A warning when ``array``, given for instance scores, holds class labels: few ids,
    each in many separate regions (a semantic prediction scored as objects); else None.

    An array whose ids recur in separate regions only across its planes (each plane
    alone holds about one region per id, as a time series' track ids do) gets a
    warning that says so and points at plane-by-plane scores instead.

    Parameters
    ----------
    array : array_like of int
    what : str
        What the array is, for the message ("prediction", "ground truth").
    background : int, optional
    axis : int, optional
        The axis the objects are scored plane by plane along (``slice_axis``): the
        middle plane along it is judged.

    Returns
    -------
    str or None
    """

    def judged(block) -> tuple[int, int, bool]:
        ids, regions = id_regions(block, background=background)
        return ids, regions, regions >= max(MIN_CLASS_REGIONS, REGIONS_PER_CLASS * ids)

    ndim = len(array.shape)
    block = array[middle_plane(array.shape, axis)] if axis is not None and ndim > 2 else array
    ids, regions, classes = judged(block)
    if not classes:
        return None
    if axis is None and ndim > 2:
        plane_ids, _, plane_classes = judged(array[middle_plane(array.shape, 0)])
        if plane_ids >= MIN_PLANE_IDS and not plane_classes:
            return (
                f"the {what}'s {ids} id(s) recur in {regions} separate regions along axis "
                "0, while each plane alone holds about one region per id, as a time "
                "series' track ids do: to match the objects plane by plane, score each "
                "plane (--per-slice 0, or 'score each slice of a stack' in the dock; "
                "the planes pooled sum their matches)"
            )
    return (
        f"the {what} has {ids} id(s) in {regions} separate regions: it looks like class "
        "labels, where instance scores need one id per object. Number its objects "
        "first with Refine: connected components of its object classes "
        "(--op connected_components --classes 1), or objects from boundaries for a "
        "model trained on instances with boundaries"
    )


#: Warn when more than this share of the pixels of either array carries an id
#: the other array never uses.
ID_MISMATCH_SHARE = 0.25


def id_pixels(matrix: ConfusionMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of each of ``matrix.labels`` in the ground truth and in the prediction
    (a stack of per-slice matrices summed)."""
    counts = matrix.counts.sum(axis=tuple(range(matrix.counts.ndim - 2)))
    return counts.sum(axis=1), counts.sum(axis=0)


#: A predicted id the ground truth never uses that covers a true id never predicted at
#: this IoU or more is the same class under another id (a mask saved as 0/255).
RENAMED_IOU = 0.5


def _renamed_class(matrix: ConfusionMatrix) -> str | None:
    """A warning when a class has one id in the prediction and another in the ground
    truth (each id absent from the other array, the two regions nearly the same)."""
    counts = matrix.counts.sum(axis=tuple(range(matrix.counts.ndim - 2)))
    truth, pred = counts.sum(axis=1), counts.sum(axis=0)
    gt_only = np.flatnonzero((truth > 0) & (pred == 0))
    pred_only = np.flatnonzero((pred > 0) & (truth == 0))
    if not gt_only.size or not pred_only.size:
        return None
    shared = counts[np.ix_(gt_only, pred_only)]
    iou = shared / (truth[gt_only][:, None] + pred[pred_only][None, :] - shared)
    i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
    if iou[i, j] < RENAMED_IOU:
        return None
    a, b = matrix.labels[pred_only[j]], matrix.labels[gt_only[i]]
    return (
        f"predicted id {a} covers the ground truth's id {b} (IoU {iou[i, j]:.2f}), and "
        "neither array uses the other's id: the same class under two ids (e.g. a mask "
        f"saved as 0/255)? Relabel one of them (Refine > relabel {a} -> {b}) before "
        "reading these scores"
    )


def id_mismatch(matrix: ConfusionMatrix) -> str | None:
    """A warning when the two arrays use mostly different ids (e.g. a prediction in
    ids 1/2 scored against a ground truth in 0/1), or one class under two ids (a
    prediction in 0/1 against a mask saved as 0/255), else None.

    Parameters
    ----------
    matrix : ConfusionMatrix

    Returns
    -------
    str or None
    """
    truth, pred = id_pixels(matrix)
    total = truth.sum()
    if total == 0:
        return None
    labels = np.asarray(matrix.labels)
    only_pred = pred[truth == 0].sum() / total
    only_truth = truth[pred == 0].sum() / total
    if max(only_pred, only_truth) <= ID_MISMATCH_SHARE:
        return _renamed_class(matrix)
    ids_pred = _ids(labels[pred > 0].tolist())
    ids_truth = _ids(labels[truth > 0].tolist())
    return (
        f"the prediction's ids {ids_pred} and the ground truth's {ids_truth} barely "
        f"overlap ({100 * only_pred:.0f}% of the pixels carry a predicted id the ground "
        f"truth never uses, {100 * only_truth:.0f}% a true id never predicted): are the "
        "ids shifted (e.g. strokes painted 1/2 scored against masks in 0/1)? Relabel "
        "one of them (Refine > relabel) before reading these scores"
    )


def all_ignored(matrix: ConfusionMatrix) -> str | None:
    """A warning when every ground-truth pixel carries an ignored id: nothing was
    scored (``--ignore 0 1 2`` on labels of ids 0 to 2), else None.

    Parameters
    ----------
    matrix : ConfusionMatrix

    Returns
    -------
    str or None
    """
    truth, _ = id_pixels(matrix)
    if truth.sum() or not np.sum(matrix.ignored):
        return None
    return (
        f"every ground-truth pixel carries an id left out (ignore labels "
        f"{_ids(list(matrix.ignore_labels))}): nothing was scored"
    )


def absent_background(matrix: ConfusionMatrix, background: int | None) -> str | None:
    """A warning when the background id is in neither array while they hold several
    ids: the means "without background" then leave out no class (background 7 given
    where the background is 0). One id only (a crop inside an object) is no sign.

    Parameters
    ----------
    matrix : ConfusionMatrix
    background : int or None

    Returns
    -------
    str or None
    """
    if background is None or background in matrix.ignore_labels:  # 0 as "not annotated"
        return None
    truth, pred = id_pixels(matrix)
    present = np.asarray(matrix.labels)[(truth > 0) | (pred > 0)].tolist()
    if background in present or len(present) < 2:
        return None
    return (
        f"the background id {background} is in neither array (ids {_ids(present)}): the "
        "means without background leave out no class. Give the id the background has "
        "(often 0), or none"
    )


def _ids(ids: list[int]) -> str:
    """A list of ids for a message: the first few and how many there are; thousands
    are more classes than a model is made with unasked (an image given as labels)."""
    if len(ids) <= SHOWN_IDS:
        return brief(ids)
    image = ": an image rather than labels?" if len(ids) > MAX_UNSTATED_CLASSES else ""
    return f"{brief(ids)} ({len(ids):,} ids{image})"
