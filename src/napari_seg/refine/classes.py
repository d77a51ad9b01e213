"""Editing classes of semantic labels: relabel, merge, set inside a region."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .._types import ArrayLike
from .._validate import as_id
from ._checks import check_same_shape, class_ids, labels_with_room


def relabel(labels: ArrayLike, mapping: Mapping[int, int]) -> np.ndarray:
    """Replace label values: ``mapping[old] = new``; values not in it are kept.

    Uses :func:`skimage.util.map_array`. Swaps work (``{1: 2, 2: 1}``): every
    value is looked up in the input, never in partial results.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    mapping : mapping of int to int

    Returns
    -------
    ndarray
        New labels, same shape and dtype (a boolean mask, or float labels of whole
        numbers, give the integer type :func:`~napari_seg.arrays.ids.as_ids` reads
        them as, widened where a new id needs it: 1 relabelled to 300 gives uint16).

    Raises
    ------
    TypeError
        If ``mapping`` is not a mapping.
    ValueError
        If a new value does not fit the labels' dtype.

    Examples
    --------
    >>> import numpy as np
    >>> relabel(np.array([[0, 1, 2]]), {1: 2, 2: 1})
    array([[0, 2, 1]])
    """
    from skimage.util import map_array

    if not isinstance(mapping, Mapping):
        raise TypeError(f"mapping must be a dict of old -> new labels, got {type(mapping)}")
    old = np.array([as_id("mapping keys", k, negative=True) for k in mapping], np.int64)
    new = np.array([as_id("mapping values", v, negative=True) for v in mapping.values()], np.int64)
    labels = labels_with_room(labels, new, "mapping value")
    if len(old) == 0:
        return labels.copy()
    present = np.unique(labels)
    keep = np.setdiff1d(present, old)
    inputs = np.concatenate([old, keep]).astype(labels.dtype)
    outputs = np.concatenate([new, keep]).astype(labels.dtype)
    return map_array(labels, inputs, outputs)


def merge_classes(labels: ArrayLike, sources: Iterable[int], target: int) -> np.ndarray:
    """Give every pixel of the ``sources`` classes the label ``target``.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    sources : iterable of int
    target : int

    Returns
    -------
    ndarray
        New labels, same shape and dtype (a boolean mask, or float labels of whole
        numbers, give the integer type :func:`~napari_seg.arrays.ids.as_ids` reads
        them as, widened where a new id needs it: 1 relabelled to 300 gives uint16).
    """
    target = as_id("target", target, negative=True)
    labels = labels_with_room(labels, [target], "target")  # a float map converted once
    return relabel(labels, dict.fromkeys(class_ids(labels, sources, background=-1), target))


def set_class_in_region(
    labels: ArrayLike,
    region: ArrayLike,
    value: int,
    *,
    only: Iterable[int] | None = None,
) -> np.ndarray:
    """Set the label ``value`` on the pixels of ``region``.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    region : array of bool, same shape
        Where to write (e.g. a shape drawn in napari, as a mask).
    value : int
        The class to write.
    only : iterable of int, optional
        Only overwrite pixels currently of these classes (e.g. ``(0,)`` to
        fill background only); default all.

    Returns
    -------
    ndarray
        New labels, same shape and dtype (a boolean mask, or float labels of whole
        numbers, give the integer type :func:`~napari_seg.arrays.ids.as_ids` reads
        them as, widened where a new id needs it: 1 relabelled to 300 gives uint16).
    """
    labels = labels_with_room(labels, [as_id("value", value, negative=True)], "value")
    region = check_same_shape(region, labels, "region").astype(bool)
    where = region
    if only is not None:
        where = region & np.isin(labels, class_ids(labels, only, background=-1))
    out = labels.copy()
    out[where] = value
    return out
