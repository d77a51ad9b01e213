"""Per-class morphology on semantic label arrays (2D or 3D).

Every function returns a new array of the input's dtype and shape (a boolean
mask gives a boolean mask, float labels of whole numbers float labels) and leaves
the input untouched. Classes are processed one binary mask at a time; pixels a
class loses become ``background`` and, unless ``over_classes=True``, a class only
grows into pixels that were ``background`` in the input, so growing one class never
erases another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .._types import ArrayLike
from ..limits import MAX_RADIUS
from ._checks import (
    check_connectivity,
    check_count,
    check_fits,
    check_labels,
    class_ids,
    keeps_dtype,
)

REPLACE_CHOICES = ("background", "nearest")


def footprint(radius: int, ndim: int) -> np.ndarray:
    """A disk (2D) or ball (3D) of ``radius`` pixels, as scikit-image builds it.

    Parameters
    ----------
    radius : int
        0 to :data:`napari_seg.limits.MAX_RADIUS`.
    ndim : {2, 3}

    Returns
    -------
    ndarray of bool
    """
    from skimage.morphology import ball, disk

    radius = check_count(radius, "radius", minimum=0, maximum=MAX_RADIUS)
    return (disk if ndim == 2 else ball)(radius).astype(bool)


def _apply_per_class(
    labels: np.ndarray,
    classes: Iterable[int] | None,
    background: int,
    transform: Callable[[np.ndarray], np.ndarray],
    *,
    over_classes: bool = False,
) -> np.ndarray:
    labels = check_labels(labels)
    check_fits(background, labels, "background")
    out = labels.copy()
    free = None if over_classes else labels == background  # where a class may grow
    for c in class_ids(labels, classes, background):
        mask = labels == c
        new = transform(mask)
        out[mask & ~new & (out == c)] = background
        grown = new & ~mask
        if free is not None:
            grown &= free
        out[grown] = c
    return out


def _replace(out: np.ndarray, removed: np.ndarray, background: int, replace_with: str):
    """Give ``removed`` pixels the background value, or the nearest kept pixel's label."""
    if replace_with not in REPLACE_CHOICES:
        raise ValueError(f"replace_with must be one of {REPLACE_CHOICES}, got {replace_with!r}")
    if not removed.any():
        return out
    if replace_with == "background" or removed.all():
        out[removed] = background
        return out
    from scipy import ndimage as ndi

    nearest = ndi.distance_transform_edt(removed, return_distances=False, return_indices=True)
    out[removed] = out[tuple(index[removed] for index in nearest)]
    return out


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of ``mask`` and their sizes (index 0: outside the mask)."""
    from scipy import ndimage as ndi

    structure = ndi.generate_binary_structure(mask.ndim, connectivity)
    components, _count = ndi.label(mask, structure=structure)
    return components, np.bincount(components.ravel())


@keeps_dtype
def remove_small_objects(
    labels: ArrayLike,
    min_size: int,
    *,
    classes: Iterable[int] | None = None,
    connectivity: int = 1,
    background: int = 0,
    replace_with: str = "background",
) -> np.ndarray:
    """Remove the connected components of each class smaller than ``min_size`` pixels.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
        Semantic labels.
    min_size : int
        Components with fewer pixels (voxels) than this are removed.
    classes : iterable of int, optional
        Classes to clean; default every class present except ``background``.
    connectivity : int, optional
        Neighbours reached in one step (1: faces, ``ndim``: faces, edges, corners).
    background : int, optional
        The label of unlabelled pixels.
    replace_with : {"background", "nearest"}, optional
        What a removed pixel becomes: ``background``, or the label of the nearest
        pixel that was not removed (a speck inside another class joins that class).

    Returns
    -------
    ndarray
        New labels, same shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((5, 5), dtype=np.uint8)
    >>> labels[0, 0] = 1
    >>> labels[2:5, 2:5] = 1
    >>> int(remove_small_objects(labels, 2).sum())
    9
    """
    labels = check_labels(labels)
    min_size = check_count(min_size, "min_size")
    connectivity = check_connectivity(connectivity, labels.ndim)
    check_fits(background, labels, "background")
    out = labels.copy()
    removed = np.zeros(labels.shape, dtype=bool)
    for c in class_ids(labels, classes, background):
        components, sizes = _components(labels == c, connectivity)
        small = sizes < min_size
        small[0] = False
        removed |= small[components]
    return _replace(out, removed, background, replace_with)


@keeps_dtype
def keep_largest(
    labels: ArrayLike,
    *,
    classes: Iterable[int] | None = None,
    connectivity: int = 1,
    background: int = 0,
    replace_with: str = "background",
) -> np.ndarray:
    """Keep only the largest connected component of each class.

    Ties keep the component found first in scan order.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    classes, connectivity, background, replace_with
        As in :func:`remove_small_objects`.

    Returns
    -------
    ndarray
        New labels, same shape and dtype.
    """
    labels = check_labels(labels)
    connectivity = check_connectivity(connectivity, labels.ndim)
    check_fits(background, labels, "background")
    out = labels.copy()
    removed = np.zeros(labels.shape, dtype=bool)
    for c in class_ids(labels, classes, background):
        components, sizes = _components(labels == c, connectivity)
        if len(sizes) <= 2:
            continue
        sizes[0] = 0
        removed |= (components != int(np.argmax(sizes))) & (components > 0)
    return _replace(out, removed, background, replace_with)


@keeps_dtype
def fill_holes(
    labels: ArrayLike,
    max_size: int,
    *,
    classes: Iterable[int] | None = None,
    connectivity: int = 1,
    background: int = 0,
    over_classes: bool = False,
) -> np.ndarray:
    """Fill the holes of each class that are smaller than ``max_size`` pixels.

    A hole of class ``c`` is a connected component of pixels that are not ``c``,
    does not touch the array's border and is enclosed by ``c``. Its
    ``background`` pixels become ``c``; pixels of other classes inside it (say
    a nucleus inside a cell) are kept unless ``over_classes`` is True.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    max_size : int
        Holes with fewer pixels than this are filled.
    classes, connectivity, background
        As in :func:`remove_small_objects`; ``connectivity`` applies to the holes.
    over_classes : bool, optional
        Fill the whole hole, other classes included.

    Returns
    -------
    ndarray
        New labels, same shape and dtype.
    """
    labels = check_labels(labels)
    max_size = check_count(max_size, "max_size")
    connectivity = check_connectivity(connectivity, labels.ndim)

    def fill(mask: np.ndarray) -> np.ndarray:
        holes, sizes = _components(~mask, connectivity)
        small = sizes < max_size
        small[0] = False
        border = np.unique(_faces(holes))
        small[border] = False
        return mask | small[holes]

    return _apply_per_class(labels, classes, background, fill, over_classes=over_classes)


def _faces(array: np.ndarray) -> np.ndarray:
    """The values on the array's border, flattened."""
    parts = []
    for axis in range(array.ndim):
        parts.append(np.take(array, 0, axis=axis).ravel())
        parts.append(np.take(array, -1, axis=axis).ravel())
    return np.concatenate(parts)


def _morph(labels, radius, name, classes, background, over_classes) -> np.ndarray:
    import skimage.morphology as skm

    labels = check_labels(labels)
    fn, selem = getattr(skm, name), footprint(radius, labels.ndim)
    return _apply_per_class(
        labels, classes, background, lambda m: fn(m, selem).astype(bool), over_classes=over_classes
    )


@keeps_dtype
def dilation(
    labels: ArrayLike,
    radius: int,
    *,
    classes: Iterable[int] | None = None,
    background: int = 0,
    over_classes: bool = False,
) -> np.ndarray:
    """Per-class binary dilation.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    radius : int
        Radius of the disk (2D) or ball (3D) footprint in pixels; 0 changes nothing.
    classes : iterable of int, optional
        Classes to process; default every class present except ``background``.
    background : int, optional
        The label of unlabelled pixels; pixels a class loses get it.
    over_classes : bool, optional
        Let the class grow over other classes too (default: into background only).

    Returns
    -------
    ndarray
        New labels, same shape and dtype. Pixels outside the array count as
        their nearest in-array pixel (scikit-image's ``mode="reflect"``), so
        objects touching the border are not eroded from it.
    """
    return _morph(labels, radius, "dilation", classes, background, over_classes)


@keeps_dtype
def closing(
    labels: ArrayLike,
    radius: int,
    *,
    classes: Iterable[int] | None = None,
    background: int = 0,
    over_classes: bool = False,
) -> np.ndarray:
    """Per-class binary closing (dilation then erosion): fills gaps and notches.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    radius : int
        Radius of the disk (2D) or ball (3D) footprint in pixels; 0 changes nothing.
    classes : iterable of int, optional
        Classes to process; default every class present except ``background``.
    background : int, optional
        The label of unlabelled pixels; pixels a class loses get it.
    over_classes : bool, optional
        Let the class grow over other classes too (default: into background only).

    Returns
    -------
    ndarray
        New labels, same shape and dtype. Pixels outside the array count as
        their nearest in-array pixel (scikit-image's ``mode="reflect"``), so
        objects touching the border are not eroded from it.
    """
    return _morph(labels, radius, "closing", classes, background, over_classes)


@keeps_dtype
def erosion(
    labels: ArrayLike, radius: int, *, classes: Iterable[int] | None = None, background: int = 0
) -> np.ndarray:
    """Per-class binary erosion.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    radius : int
        Radius of the disk (2D) or ball (3D) footprint in pixels; 0 changes nothing.
    classes : iterable of int, optional
        Classes to process; default every class present except ``background``.
    background : int, optional
        The label of unlabelled pixels; pixels a class loses get it.

    Returns
    -------
    ndarray
        New labels, same shape and dtype. Pixels outside the array count as
        their nearest in-array pixel (scikit-image's ``mode="reflect"``), so
        objects touching the border are not eroded from it.
    """
    return _morph(labels, radius, "erosion", classes, background, False)


@keeps_dtype
def opening(
    labels: ArrayLike, radius: int, *, classes: Iterable[int] | None = None, background: int = 0
) -> np.ndarray:
    """Per-class binary opening (erosion then dilation): removes spurs and specks.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    radius : int
        Radius of the disk (2D) or ball (3D) footprint in pixels; 0 changes nothing.
    classes : iterable of int, optional
        Classes to process; default every class present except ``background``.
    background : int, optional
        The label of unlabelled pixels; pixels a class loses get it.

    Returns
    -------
    ndarray
        New labels, same shape and dtype. Pixels outside the array count as
        their nearest in-array pixel (scikit-image's ``mode="reflect"``), so
        objects touching the border are not eroded from it.
    """
    return _morph(labels, radius, "opening", classes, background, False)


@keeps_dtype
def majority(labels: ArrayLike, radius: int) -> np.ndarray:
    """Mode filter: each pixel takes the most common label within ``radius``.

    Smooths jagged boundaries between all classes at once (background
    included) with scikit-image's rank majority filter over a disk (2D) or
    ball (3D); pixels outside the array are not counted; ties go to the
    smaller label.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
        Labels in 0..65535.
    radius : int
        Radius of the neighbourhood in pixels.

    Returns
    -------
    ndarray
        New labels, same shape and dtype.

    Raises
    ------
    ValueError
        For labels outside 0..65535 (the rank filter's range).
    """
    from skimage.filters.rank import majority as rank_majority

    labels = check_labels(labels)
    selem = footprint(radius, labels.ndim)
    if labels.size == 0 or radius == 0:
        return labels.copy()
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > np.iinfo(np.uint16).max:
        raise ValueError(
            f"majority needs labels between 0 and 65535, got values from {low} to {high}"
        )
    small = labels.astype(np.uint8 if high <= 255 else np.uint16)
    return rank_majority(small, selem).astype(labels.dtype)
