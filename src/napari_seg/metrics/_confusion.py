"""Confusion matrices of label arrays, counted sparsely in blocks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._types import RegionArray
from .._validate import as_id
from ..arrays.axes import normalise_axes
from ..limits import MAX_CONFUSION_CLASSES
from ._arrays import check_pair
from ._pairs import pair_counts

#: Classes of one confusion matrix (the bound's home is :mod:`napari_seg.limits`).
MAX_CLASSES = MAX_CONFUSION_CLASSES


@dataclass(frozen=True)
class ConfusionMatrix:
    """Pixel counts of (ground-truth class, predicted class) pairs.

    Attributes
    ----------
    counts : ndarray of int64, shape (k, k) or (n, k, k)
        ``counts[..., i, j]`` is the number of pixels of true class ``labels[i]``
        predicted as ``labels[j]`` (rows: ground truth, as in scikit-learn). A
        leading axis holds one matrix per slice.
    labels : tuple of int
        The class id of each row and column.
    ignore_labels : tuple of int
        Ground-truth ids whose pixels were left out. If the prediction uses
        one of them, it still has a column (those pixels count as misses of
        the true class), but it is not scored as a class.
    ignored : int or ndarray of int64
        Number of pixels left out (per slice for a stack of matrices).
    """

    counts: np.ndarray
    labels: tuple[int, ...]
    ignore_labels: tuple[int, ...] = ()
    ignored: int | np.ndarray = 0

    @property
    def scored(self) -> np.ndarray:
        """Boolean mask over ``labels``: True for the classes that are scored."""
        return np.array([lab not in self.ignore_labels for lab in self.labels], dtype=bool)


def confusion_matrix(
    pred: RegionArray,
    gt: RegionArray,
    *,
    labels: Sequence[int] | None = None,
    ignore_labels: Iterable[int] = (),
    mapping: Mapping[int, int] | None = None,
) -> ConfusionMatrix:
    """Confusion matrix of a predicted and a ground-truth label array.

    Counts every (ground truth, prediction) pair with ``bincount`` on a combined
    index, one block of about a million pixels at a time, so memory stays flat
    for arrays of any size; numpy, dask and zarr arrays are read by block.

    Parameters
    ----------
    pred, gt : array_like of int
        Label arrays of the same shape (any number of dimensions, any integer
        dtype, ids >= 0).
    labels : sequence of int, optional
        Class ids to report, in order (e.g. ``range(num_classes)``); classes
        absent from both arrays get empty rows. By default, every id present in
        either array (after ``mapping`` and ``ignore_labels``).
    ignore_labels : iterable of int, optional
        Ground-truth ids whose pixels are left out, e.g. ``(0,)`` for the
        unlabelled pixels of sparse annotations.
    mapping : mapping of int to int, optional
        Renames ids in both arrays before counting (several ids may map to one
        class); ids not in it keep their value. Applied before ``ignore_labels``.

    Returns
    -------
    ConfusionMatrix

    Raises
    ------
    TypeError
        If an array is not an integer array (floats and booleans included).
    ValueError
        If the shapes differ, an array is empty, an id is negative, an id
        present is missing from ``labels``, or there are more than 4096 classes.

    Examples
    --------
    >>> import numpy as np
    >>> cm = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
    >>> cm.counts.tolist()
    [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    """
    pred, gt = check_pair(pred, gt)
    return _assemble([pair_counts(pred, gt)], labels, ignore_labels, mapping, stack=False)


def slice_confusion_matrices(
    pred: RegionArray,
    gt: RegionArray,
    *,
    axis: int = 0,
    labels: Sequence[int] | None = None,
    ignore_labels: Iterable[int] = (),
    mapping: Mapping[int, int] | None = None,
) -> ConfusionMatrix:
    """One confusion matrix per slice along ``axis``, sharing one class list.

    Parameters
    ----------
    pred, gt : array_like of int
        Label arrays of the same shape, at least 2D (numpy, dask or zarr).
    axis : int
        The axis of the stack or time series.
    labels : sequence of int, optional
        Classes to list, in order (default: every id present, ignored ones aside).
    ignore_labels : iterable of int
        Ground-truth ids left out.
    mapping : mapping of int to int, optional
        Ids renamed before counting (predicted and true alike).

    Returns
    -------
    ConfusionMatrix
        ``counts`` has shape ``(n, k, k)`` with ``n`` the length of ``axis``.

    Raises
    ------
    ValueError
        For arrays of different shapes, fewer than 2 dimensions or a bad axis.
    """
    pred, gt = check_pair(pred, gt)
    ndim = len(gt.shape)
    if ndim < 2:
        raise ValueError(f"per-slice scores need at least 2 dimensions, got {ndim}")
    (axis,) = normalise_axes(axis, ndim, "axis")
    lead = (slice(None),) * axis
    parts = [pair_counts(pred, gt, (*lead, i)) for i in range(gt.shape[axis])]
    return _assemble(parts, labels, ignore_labels, mapping, stack=True)


def _assemble(parts, labels, ignore_labels, mapping, *, stack: bool) -> ConfusionMatrix:
    """Turn per-slice pair counts into (stacked) dense matrices over the class list."""
    ignore = tuple(sorted({as_id("ignore_labels", i) for i in ignore_labels}))
    parts = [_rename(t, mapping) for t in parts]
    dropped = [np.isin(g, ignore) for g, _, _ in parts]
    ignored = np.array(
        [int(c[d].sum()) for (_, _, c), d in zip(parts, dropped, strict=True)], dtype=np.int64
    )
    parts = [(g[~d], p[~d], c[~d]) for (g, p, c), d in zip(parts, dropped, strict=True)]
    present = np.unique(np.concatenate([np.concatenate((g, p)) for g, p, _ in parts]))
    if labels is None:
        classes = present
    else:
        classes = np.asarray([as_id("labels", i) for i in labels], dtype=np.int64)
        if len(np.unique(classes)) != len(classes):
            raise ValueError(f"labels must not repeat ids, got {classes.tolist()}")
        unknown = np.setdiff1d(present, classes)
        if unknown.size:
            raise ValueError(
                f"the arrays contain ids {unknown[:10].tolist()} that are not in labels "
                f"{classes.tolist()[:20]}; add them, map them with mapping=, or ignore them"
            )
    k = len(classes)
    if k > MAX_CLASSES:
        raise ValueError(
            f"{k} distinct ids is too many classes for a confusion matrix (at most "
            f"{MAX_CLASSES}); for instance label images use the instance scores"
        )
    order = np.argsort(classes)
    counts = np.zeros((len(parts), k, k), dtype=np.int64)
    for n, (g, p, c) in enumerate(parts):
        rows = order[np.searchsorted(classes, g, sorter=order)]
        cols = order[np.searchsorted(classes, p, sorter=order)]
        np.add.at(counts[n], (rows, cols), c)
    if not stack:
        return ConfusionMatrix(counts[0], tuple(int(i) for i in classes), ignore, int(ignored[0]))
    return ConfusionMatrix(counts, tuple(int(i) for i in classes), ignore, ignored)


def _rename(triplet, mapping):
    if not mapping:
        return triplet
    source = np.asarray([as_id("mapping keys", i) for i in mapping], dtype=np.int64)
    target = np.asarray([as_id("mapping values", v) for v in mapping.values()], dtype=np.int64)
    g, p, c = triplet

    sorter = np.argsort(source)

    def apply(ids):
        hit = np.isin(ids, source)
        out = ids.copy()
        out[hit] = target[sorter[np.searchsorted(source, ids[hit], sorter=sorter)]]
        return out

    return apply(g), apply(p), c


def widen(cm: ConfusionMatrix, labels: Sequence[int]) -> ConfusionMatrix:
    """``cm`` over ``labels`` (a superset of ``cm.labels``, sorted): the added classes
    get empty rows and columns.

    Parameters
    ----------
    cm : ConfusionMatrix
    labels : sequence of int

    Returns
    -------
    ConfusionMatrix
    """
    labels = tuple(int(i) for i in labels)
    if labels == cm.labels:
        return cm
    where = [labels.index(lab) for lab in cm.labels]
    counts = np.zeros((*cm.counts.shape[:-2], len(labels), len(labels)), dtype=np.int64)
    rows, cols = np.ix_(where, where)
    counts[..., rows, cols] = cm.counts
    return ConfusionMatrix(counts, labels, cm.ignore_labels, cm.ignored)


def pool_matrices(matrices: Sequence[ConfusionMatrix]) -> ConfusionMatrix:
    """The confusion matrix of several images taken together (the sum over the union
    of their classes; stacks of per-slice matrices are summed over slices first).

    Parameters
    ----------
    matrices : sequence of ConfusionMatrix
        With the same ``ignore_labels``.

    Returns
    -------
    ConfusionMatrix

    Raises
    ------
    ValueError
        For no matrices, or matrices that left out different ids.
    """
    if not matrices:
        raise ValueError("nothing to pool: no confusion matrices given")
    ignore = matrices[0].ignore_labels
    if any(m.ignore_labels != ignore for m in matrices):
        raise ValueError("confusion matrices that ignore different ids cannot be pooled")
    labels = sorted({lab for m in matrices for lab in m.labels})
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for m in matrices:  # a stack of per-slice matrices counts as its sum
        wide = widen(m, labels).counts
        counts += wide.sum(axis=tuple(range(wide.ndim - 2)))
    ignored = int(sum(np.sum(m.ignored) for m in matrices))
    return ConfusionMatrix(counts, tuple(labels), ignore, ignored)
