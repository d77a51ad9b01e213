"""Validating label arrays and walking them block by block (numpy, lazy-friendly)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .._types import RegionArray
from ..arrays.ids import as_ids
from ..arrays.views import as_array
from ..limits import MAX_CLASSES

#: Elements per block: large enough for numpy to run at full speed, small enough
#: that the int64 temporaries of ``bincount`` stay at a few MB.
BLOCK_SIZE = 1 << 20


def as_label_array(array, name: str):
    """Check that ``array`` can hold label ids; return it (lazy arrays stay lazy, a
    torch tensor becomes a NumPy array).

    Raises
    ------
    TypeError
        If ``array`` is not array-like, or holds other values than ids (a boolean
        mask is read as ids 0 and 1, floats of whole numbers as ids:
        :func:`napari_seg.arrays.ids.as_ids`).
    ValueError
        If ``array`` is empty or 0-dimensional.
    """
    array = as_array(array, name)  # a torch or MONAI tensor, a nested list
    dtype = np.dtype(array.dtype)
    # floats of whole numbers are ids (a mask too), but floats one-hot (MONAI's) are not
    hint = _one_hot_hint(array, name) if dtype.kind == "f" else ""
    array = array if hint else as_ids(array)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integer label ids, got {dtype}"
            + (hint or " values that are not all whole numbers (probabilities: give their argmax)")
        )
    if len(array.shape) == 0:
        raise ValueError(f"{name} must have at least one axis, got a 0-dimensional array")
    if int(np.prod(array.shape)) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(array.shape)})")
    return array


#: Pixels along each spatial axis :func:`one_hot_axis` looks at (a corner of the
#: array: 256 pixels of a plane, 4096 voxels of a volume, per class).
ONE_HOT_SAMPLE = 16


def one_hot_axis(array) -> int | None:
    """The axis along which ``array`` is one-hot encoded, as MONAI's metrics take a
    segmentation (``(C, H, W[, D])``, or ``(B, C, ...)`` with the classes second), or
    None. Only a corner is read (:data:`ONE_HOT_SAMPLE` pixels per axis after the
    classes', the first item of a batch): it must hold 0s and 1s only, with exactly
    one 1 across the axis at every pixel, which a label map's corner (background, 0 on
    every plane) does not.

    Parameters
    ----------
    array : array-like
        With at least 3 axes; lazy arrays are read in the corner only.

    Returns
    -------
    int or None
    """
    shape = tuple(array.shape)
    for axis in (0, 1)[: max(0, len(shape) - 2)]:
        if not 2 <= shape[axis] <= MAX_CLASSES:
            continue
        corner = tuple(
            slice(None) if a == axis else slice(0, 1 if a < axis else ONE_HOT_SAMPLE)
            for a in range(len(shape))
        )
        sample = np.asarray(array[corner])
        if sample.size and np.isin(sample, (0, 1)).all() and (sample.sum(axis=axis) == 1).all():
            return axis
    return None


def _one_hot_hint(array, name: str) -> str:
    """ ": it looks one-hot ..." for a one-hot array (:func:`one_hot_axis`), else ""."""
    axis = None if len(array.shape) < 3 else one_hot_axis(array)
    if axis is None:
        return ""
    return (
        f": it looks one-hot along axis {axis}, as MONAI's metrics take it; napari-seg "
        f"scores label ids: give {name}.argmax({axis})"
    )


def one_hot_notes(pred, gt) -> tuple[str, ...]:
    """A warning for each of two integer label arrays that looks one-hot encoded
    (:func:`one_hot_axis`): scored as ids, its classes would be scored as an axis of
    the image. A warning, not an error: a label stack may, rarely, look so in its
    corner.

    Parameters
    ----------
    pred, gt : array-like of int

    Returns
    -------
    tuple of str
    """
    return tuple(
        f"{name} of shape {tuple(array.shape)} is scored as label ids{hint}"
        for name, array in (("pred", pred), ("gt", gt))
        if (hint := _one_hot_hint(array, name))
    )


def check_pair(pred, gt):
    """Validate a (prediction, ground truth) pair of label arrays of one shape."""
    pred = as_label_array(pred, "pred")
    gt = as_label_array(gt, "gt")
    if tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(
            f"pred and gt must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(gt.shape)}{_channel_last_hint(pred, gt)}"
        )
    return pred, gt


def _channel_last_hint(pred, gt) -> str:
    """What to give when one of a pair is the other with a last axis of one, ``(H, W,
    1)``: a mask stored channel-last, as Keras and OpenCV hold it (a file of it reads
    as its plane: ``_io.read_labels``)."""
    for name, array, other in (("pred", pred, gt), ("gt", gt, pred)):
        if tuple(array.shape) == (*tuple(other.shape), 1):
            return f"; {name}'s last axis of 1 is a channel axis: give {name}[..., 0]"
    return ""


def block_slices(shape: tuple[int, ...], size: int | None = None) -> Iterator[tuple]:
    """Index tuples cutting an array of ``shape`` into blocks of at most ``size`` elements.

    Blocks are contiguous runs along the first axis whose trailing extent fits,
    so a C-ordered numpy block is a view and a chunked array is read by region.
    """
    size = BLOCK_SIZE if size is None else size
    shape = tuple(int(s) for s in shape)
    trailing = 1
    split = len(shape) - 1
    while split > 0 and trailing * shape[split] <= size:
        trailing *= shape[split]
        split -= 1
    # shape[split + 1:] fits in one block; take ``step`` indices of axis ``split`` at once.
    step = max(1, size // max(trailing, 1))
    for lead in np.ndindex(*shape[:split]):
        for start in range(0, shape[split], step):
            yield (*lead, slice(start, min(start + step, shape[split])))


def read_block(array, index: tuple) -> np.ndarray:
    """``array[index]`` as a numpy array, checked for negative ids."""
    block = np.asarray(array[index])
    if block.dtype.kind == "i" and block.size and block.min() < 0:
        raise ValueError("label ids must be >= 0, found a negative id")
    return block


#: Elements :func:`id_regions` examines at most (a larger array: its middle plane).
MAX_EXAMINED = 1 << 24
#: Labels with fewer distinct ids than this are never taken for instance labels.
MIN_INSTANCE_IDS = 16
#: Instance labels have about one connected region per id; class labels have many
#: regions each. Up to this many regions per id counts as "one each".
REGIONS_PER_ID = 1.2


def object_count(labels: RegionArray, *, background: int = 0) -> int:
    """The number of objects, if ``labels`` look like instance labels; else 0.

    Instance labels (one id per object) have many ids (at least
    :data:`MIN_INSTANCE_IDS`), each about one connected region
    (:func:`id_regions`); class labels have few ids, or several regions per id. A
    stack whose ids recur from plane to plane in separate regions (a time series'
    track ids, as the Cell Tracking Challenge's ground truth) is judged by its
    middle plane along the first axis too: a series of 2D instance labels.

    Parameters
    ----------
    labels : array_like of int
        2D or larger label ids (large arrays: see :func:`id_regions`).
    background : int, optional

    Returns
    -------
    int
        The distinct ids other than ``background`` examined (in the middle plane
        when the plane decided), when they look like instance labels; else 0.
    """

    def objects(array) -> int:
        ids, regions = id_regions(array, background=background, min_ids=MIN_INSTANCE_IDS)
        return 0 if ids < MIN_INSTANCE_IDS or regions > REGIONS_PER_ID * ids else ids

    found = objects(labels)
    if not found and len(labels.shape) > 2:
        found = objects(labels[middle_plane(labels.shape, 0)])
    return found


def middle_plane(shape: tuple[int, ...], axis: int) -> tuple:
    """The index of the middle plane along ``axis`` of an array of ``shape``."""
    return (*(slice(None),) * axis, shape[axis] // 2)


def id_regions(labels: RegionArray, *, background: int = 0, min_ids: int = 0) -> tuple[int, int]:
    """The ids a label array uses and the connected regions of one id they form.

    Instance labels have about one region per id; class labels have few ids, each
    in many regions. Regions connect through faces, edges and corners.

    Parameters
    ----------
    labels : array_like of int
        2D or larger (numpy, dask or zarr). Arrays of more than
        :data:`MAX_EXAMINED` elements are judged by their middle plane, and a
        larger plane by a window of that many elements at its centre.
    background : int, optional
        The id that is no region.
    min_ids : int, optional
        With fewer ids than this, the regions are not counted (0).

    Returns
    -------
    ids, regions : int
        Both 0 for labels that are not integers or have fewer than two axes.
    """
    from skimage.measure import label

    shape = tuple(labels.shape)
    if len(shape) < 2 or np.dtype(labels.dtype).kind not in "iu":
        return 0, 0
    index: list[int | slice] = [slice(None)] * len(shape)
    if math.prod(shape) > MAX_EXAMINED:
        index[:-2] = [n // 2 for n in shape[:-2]]
        side = math.isqrt(MAX_EXAMINED)
        starts = [max(0, (n - side) // 2) for n in shape[-2:]]
        index[-2:] = [slice(start, start + side) for start in starts]
    block = np.asarray(labels[tuple(index)])
    ids = int(np.count_nonzero(np.unique(block) != background))
    if ids < min_ids:
        return ids, 0
    return ids, int(label(block, background=background, connectivity=block.ndim).max())
