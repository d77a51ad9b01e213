"""Label ids: stored in the smallest type that holds them (one rule for every file),
and those a layer holds (sparse or not)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def compact_ids(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint8 or uint16 when their ids fit (0 to 65535), else unchanged.

    Fiji opens uint8 and uint16 stacks as hyperstacks (not int32, which tifffile then
    writes as a plain TIFF), and the file is two to four times smaller; labels with a
    negative id or one over 65535 keep their type (uint32 or int32 objects).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer or boolean ids; other arrays come back unchanged.

    Returns
    -------
    numpy.ndarray
        ``labels`` itself when already compact (never copied needlessly).
    """
    if labels.dtype == np.bool_:
        return labels.astype(np.uint8)
    if labels.dtype.kind not in "iu" or labels.dtype in (np.uint8, np.uint16):
        return labels
    if labels.size == 0:
        return labels.astype(np.uint8)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > np.iinfo(np.uint16).max:
        return labels
    return labels.astype(np.uint8 if high <= np.iinfo(np.uint8).max else np.uint16)


def painted_ids(labels: ArrayLike) -> np.ndarray:
    """The ids other than 0 that ``labels`` holds, sorted.

    ``np.unique`` of the painted voxels alone: strokes cover a small part of a
    volume, and sorting all of it is what costs (64 x 1024 x 1024 uint8 with two
    strokes: 1.1 s for ``np.unique`` of the whole, 32 ms this way; measured).

    Parameters
    ----------
    labels : array-like of int

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> painted_ids(np.array([[0, 3], [1, 3]]))
    array([1, 3])
    """
    labels = np.asarray(labels)
    return np.unique(labels[labels != 0])


def present_ids(labels: np.ndarray) -> set[int]:
    """The ids ``labels`` holds (counted with ``np.bincount`` where they are small and
    non-negative, the common case, rather than sorted).

    Parameters
    ----------
    labels : array-like of int

    Returns
    -------
    set of int

    Examples
    --------
    >>> sorted(present_ids(np.array([[0, 3], [-1, 3]])))
    [-1, 0, 3]
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return set()
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= 1 << 20:
        return {int(i) for i in np.unique(labels)}
    # bincount casts its input to int64: a few million pixels at a time, not 8x the array
    rows = labels.reshape(labels.shape[0], -1) if labels.ndim > 1 else labels[:, None]
    step = max(1, COUNT_BLOCK // max(1, rows.shape[1]))
    seen = np.zeros(high + 1, bool)
    for start in range(0, rows.shape[0], step):
        seen |= np.bincount(rows[start : start + step].ravel(), minlength=high + 1) > 0
    return {int(i) for i in np.flatnonzero(seen)}


#: Pixels :func:`present_ids` counts in one ``np.bincount`` call (its int64 copy of
#: them: 128 MiB).
COUNT_BLOCK = 1 << 24
