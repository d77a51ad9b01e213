"""Semantic labels to instances and back (2D or 3D)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .._types import ArrayLike
from ..limits import MAX_MIN_DISTANCE, MAX_RADIUS
from ._checks import (
    check_connectivity,
    check_count,
    check_labels,
    check_same_shape,
    class_ids,
    class_last_hint,
)


def connected_components(
    labels: ArrayLike,
    *,
    classes: Iterable[int] | None = None,
    connectivity: int = 1,
    background: int = 0,
) -> np.ndarray:
    """Number every connected component of every class as its own instance.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
        Semantic labels.
    classes : iterable of int, optional
        Classes to split into objects; default every class present except
        ``background``. Other pixels get instance 0.
    connectivity : int, optional
        1 joins face neighbours only, ``ndim`` also edge and corner neighbours.
    background : int, optional

    Returns
    -------
    ndarray of int32
        Instance ids 1..n, class after class (in the order of ``classes``),
        each class's objects in scan order.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[1, 0, 1], [0, 0, 0], [2, 2, 0]])
    >>> connected_components(labels)
    array([[1, 0, 2],
           [0, 0, 0],
           [3, 3, 0]], dtype=int32)
    """
    from skimage.measure import label

    labels = check_labels(labels)
    connectivity = check_connectivity(connectivity, labels.ndim)
    out = np.zeros(labels.shape, dtype=np.int32)
    offset = 0
    for c in class_ids(labels, classes, background):
        mask = labels == c
        components, count = label(mask, connectivity=connectivity, return_num=True)
        out[mask] = components[mask] + offset
        offset += count
    return out


def objects_from_boundaries(
    labels: ArrayLike,
    *,
    objects: int = 1,
    boundaries: int = 2,
    distance: int = 1,
    connectivity: int = 1,
) -> np.ndarray:
    """Instances from a prediction of objects and their boundaries.

    A model trained on instance labels with ``instances="boundaries"`` predicts
    each object's interior (``objects``) inside a rim of ``boundaries``, which keeps
    touching objects apart. The interiors' connected components are the objects;
    each then takes back the boundary pixels within ``distance`` of it
    (scikit-image's ``expand_labels``, which never lets two objects overlap).

    Parameters
    ----------
    labels : (M, N[, P]) array of int
        Semantic labels with an object class and a boundary class.
    objects, boundaries : int, optional
        The two classes' ids (1 and 2, as ``instances="boundaries"`` trains them).
    distance : int, optional
        How far, in pixels, an object grows into the boundary class (the rim
        trained is one pixel wide; 0 keeps the interiors only).
    connectivity : int, optional
        Connectivity of the interiors.

    Returns
    -------
    ndarray of int32
        Instance ids 1..n in scan order; 0 elsewhere.

    Raises
    ------
    ValueError
        For a distance or connectivity out of range.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[0, 2, 2, 2, 2, 0], [2, 1, 1, 2, 1, 2], [0, 2, 2, 2, 2, 0]])
    >>> objects_from_boundaries(labels)
    array([[0, 1, 1, 0, 2, 0],
           [1, 1, 1, 1, 2, 2],
           [0, 1, 1, 0, 2, 0]], dtype=int32)
    """
    from skimage.measure import label
    from skimage.segmentation import expand_labels

    labels = check_labels(labels)
    connectivity = check_connectivity(connectivity, labels.ndim)
    distance = check_count(distance, "distance", minimum=0, maximum=MAX_RADIUS)
    out = label(labels == objects, connectivity=connectivity).astype(np.int32)
    if distance:
        rim = labels == boundaries
        out[rim] = expand_labels(out, distance=distance)[rim]
    return out


def watershed_split(
    labels: ArrayLike,
    *,
    probabilities: ArrayLike | None = None,
    classes: Iterable[int] | None = None,
    min_distance: int = 5,
    seed_threshold: float = 0.9,
    connectivity: int = 1,
    background: int = 0,
) -> np.ndarray:
    """Split touching objects with a seeded watershed; returns instance labels.

    Without ``probabilities``, seeds are the local maxima of each class's
    Euclidean distance transform at least ``min_distance`` apart and the
    watershed floods the inverted distance. With ``probabilities`` (one map per
    class, class first), seeds are the connected regions where the class's
    probability is at least ``seed_threshold`` and the watershed floods the
    inverted probability. Either way the flood stays inside the class's pixels
    and every connected component of the class gets at least one seed.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
        Semantic labels.
    probabilities : (C, M, N[, P]) array of float, optional
        Per-class probabilities (e.g. Segment's probability output).
    classes : iterable of int, optional
        Classes to split; default every class present except ``background``.
    min_distance : int, optional
        Minimum distance between distance-transform seeds, in pixels.
    seed_threshold : float, optional
        Probability a seed region must reach.
    connectivity : int, optional
        Connectivity of the objects and of the seed regions.
    background : int, optional

    Returns
    -------
    ndarray of int32
        Instance ids 1..n, class after class.

    Raises
    ------
    ValueError
        For a seed threshold outside (0, 1], probabilities of the wrong shape, or
        parameters out of range.
    """
    from scipy.ndimage import distance_transform_edt
    from skimage.measure import label

    labels = check_labels(labels)
    min_distance = check_count(min_distance, "min_distance", minimum=1, maximum=MAX_MIN_DISTANCE)
    connectivity = check_connectivity(connectivity, labels.ndim)
    if not 0.0 < float(seed_threshold) <= 1.0:
        raise ValueError(f"seed_threshold must be in (0, 1], got {seed_threshold}")
    if probabilities is not None:
        probabilities = np.asarray(probabilities)
        if probabilities.shape[1:] != labels.shape:
            raise ValueError(
                "probabilities must have shape (classes, *labels.shape) = "
                f"(C, {', '.join(map(str, labels.shape))}), got {probabilities.shape}"
                + class_last_hint(probabilities.shape, labels.shape)
            )
    out = np.zeros(labels.shape, dtype=np.int32)
    offset = 0
    for c in class_ids(labels, classes, background):
        mask = labels == c
        components = label(mask, connectivity=connectivity)
        if probabilities is not None:
            if c >= len(probabilities):
                raise ValueError(f"probabilities has {len(probabilities)} classes, not class {c}")
            prob = probabilities[c].astype(np.float32)
            seeds = label(mask & (prob >= seed_threshold), connectivity=connectivity)
            elevation = -prob
        else:
            distance = distance_transform_edt(mask)
            seeds = _distance_seeds(distance, components, min_distance)
            elevation = -distance
        seeds = _seed_every_component(seeds, components, -elevation)
        split = _watershed(elevation, seeds, mask, connectivity)
        out[mask] = split[mask] + offset
        offset += int(split.max())
    return out


def _distance_seeds(distance, components, min_distance: int) -> np.ndarray:
    from skimage.feature import peak_local_max

    peaks = peak_local_max(
        distance, min_distance=min_distance, labels=components, exclude_border=False
    )
    seeds = np.zeros(distance.shape, dtype=np.int32)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return seeds


def _seed_every_component(seeds, components, height) -> np.ndarray:
    """Add a seed at the highest point of every component that has none."""
    seeded = np.unique(components[seeds > 0])
    missing = np.setdiff1d(np.unique(components), np.append(seeded, 0))
    if len(missing) == 0:
        return seeds
    seeds = seeds.copy()
    next_id = int(seeds.max()) + 1
    from scipy import ndimage as ndi

    positions = ndi.maximum_position(height, components, missing)
    for position in positions:
        seeds[position] = next_id
        next_id += 1
    return seeds


def _watershed(elevation, seeds, mask, connectivity: int) -> np.ndarray:
    from skimage.segmentation import relabel_sequential, watershed

    split = watershed(elevation, seeds, mask=mask, connectivity=connectivity)
    return relabel_sequential(split)[0]


def instances_to_semantic(
    instances: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    foreground: int = 1,
    background: int = 0,
) -> np.ndarray:
    """Semantic labels from instance labels.

    Parameters
    ----------
    instances : (M, N[, P]) array of int
        Instance labels (0: no object).
    reference : array of int, optional
        Semantic labels of the same shape: each instance takes the most common
        non-background class of ``reference`` under it (``background`` when it
        covers none; ties go to the smaller class). Without it every instance
        becomes ``foreground``.
    foreground, background : int, optional

    Returns
    -------
    ndarray
        Semantic labels, dtype of ``reference`` (or the instances' dtype).
    """
    instances = check_labels(instances, "instances")
    inside = instances != 0
    if reference is None:
        out = np.full(instances.shape, background, dtype=instances.dtype)
        out[inside] = foreground
        return out
    reference = check_same_shape(check_labels(reference, "reference"), instances, "reference")
    out = np.full(instances.shape, background, dtype=reference.dtype)
    ids, inverse = np.unique(instances[inside], return_inverse=True)
    classes = reference[inside]
    counted = classes != background
    values, class_index = np.unique(classes[counted], return_inverse=True)
    if len(values) == 0:
        return out
    votes = np.zeros((len(ids), len(values)), dtype=np.int64)
    np.add.at(votes, (inverse[counted], class_index), 1)
    winner = np.where(votes.max(axis=1) > 0, values[votes.argmax(axis=1)], background)
    out[inside] = winner[inverse]
    return out
