"""Label ids: stored in the smallest type that holds them (one rule for every file),
and those a layer holds (sparse or not)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..limits import MAX_LABELS_CONVERT_BYTES


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


def whole_numbers_as_ids(array: np.ndarray) -> np.ndarray | None:
    """A float array of whole numbers within int32 as the smallest integer type holding
    its values; None for other floats (NaN, 0.5, 1e40) and other dtypes (integers are
    ids already, :func:`as_ids` views a boolean mask; complex numbers are not ids).

    Parameters
    ----------
    array : numpy.ndarray

    Returns
    -------
    numpy.ndarray or None
    """
    if not np.issubdtype(array.dtype, np.floating) or array.ndim == 0:
        return None
    if array.size == 0:
        return array.astype(np.uint8)
    low, high = float(np.min(array)), float(np.max(array))  # NaN propagates: not whole
    if not (math.isfinite(low) and math.isfinite(high)) or low < -(2**31) or high >= 2**31:
        return None
    step = max(1, (1 << 22) // max(1, array[0].size))  # blocks of ~4 M values: no full copy
    blocks = (array[i : i + step] for i in range(0, len(array), step))
    if any(not np.array_equal(block, np.floor(block)) for block in blocks):
        return None
    return array.astype(np.min_scalar_type(int(high)) if low >= 0 else np.int32)


def as_ids(array: Any) -> Any:
    """``array`` as label ids, as napari-seg's file readers read a label file: integers
    as they are; a boolean mask as uint8 0 and 1 (a view of a numpy array; lazily for
    dask and zarr); floats of whole numbers (MONAI's ``LoadImage`` gives label maps as
    float32) as the smallest integer type holding them, read whole up to
    :data:`~napari_seg.limits.MAX_LABELS_CONVERT_BYTES`. Anything else comes back as
    it is, for the caller to refuse with its own advice (probabilities, one-hot maps).

    Parameters
    ----------
    array : array-like
        With ``shape`` and ``dtype`` (:func:`napari_seg.arrays.views.as_array`).

    Returns
    -------
    array-like

    Examples
    --------
    >>> as_ids(np.array([[0.0, 2.0]])).dtype
    dtype('uint8')
    >>> as_ids(np.array([[0.5, 2.0]])).dtype
    dtype('float64')
    """
    dtype = np.dtype(array.dtype)
    if dtype == np.bool_:
        if isinstance(array, np.ndarray):
            return array.view(np.uint8)
        return array.astype(np.uint8) if hasattr(array, "astype") else _MaskIds(array)
    if not np.issubdtype(dtype, np.floating):
        return array
    if not isinstance(array, np.ndarray):
        if math.prod(array.shape) * dtype.itemsize > MAX_LABELS_CONVERT_BYTES:
            return array
        array = np.asarray(array)
    ids = whole_numbers_as_ids(array)
    return array if ids is None else ids


class _MaskIds:
    """A lazy boolean array without ``astype`` (zarr) read as uint8 ids, region by
    region."""

    dtype = np.dtype(np.uint8)

    def __init__(self, mask: Any) -> None:
        self._mask = mask
        self.shape = tuple(mask.shape)
        self.ndim = len(self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self._mask[index]).view(np.uint8)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        ids = np.asarray(self._mask).view(np.uint8)
        return ids if dtype is None else ids.astype(dtype)
