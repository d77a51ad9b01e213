"""Input checks shared by the refine operations (errors name the argument)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..limits import brief


def check_labels(labels, name: str = "labels", *, stacked: bool = False) -> np.ndarray:
    """``labels`` as an integer numpy array with 2 or 3 dimensions (not copied); with
    ``stacked`` (refined block by block along an axis) also 4."""
    array = np.asarray(labels)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer labels, got dtype {array.dtype}")
    if array.ndim == 4 and not stacked:
        raise ValueError(
            f"{name} must be 2D or 3D (one image or one volume), got shape {array.shape}: "
            "refine 4D labels slice by slice (a refine job's per_slice and axis): volume "
            "by volume along one axis (--axis 0) or plane by plane along two (--axis 0,1)"
        )
    if array.ndim not in ((2, 3, 4) if stacked else (2, 3)):
        raise ValueError(
            f"{name} must be 2D or 3D (one image or one volume), got shape {array.shape}"
        )
    return array


def check_same_shape(array, labels: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != labels.shape:
        raise ValueError(f"{name} must have the labels' shape {labels.shape}, got {array.shape}")
    return array


def check_count(value, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (bounds from :mod:`napari_seg.limits`)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {brief(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return int(value)


def check_connectivity(connectivity, ndim: int) -> int:
    connectivity = check_count(connectivity, "connectivity", minimum=1)
    if connectivity > ndim:
        raise ValueError(
            f"connectivity must be between 1 and the number of dimensions ({ndim}), "
            f"got {connectivity}"
        )
    return connectivity


def class_ids(
    labels: np.ndarray, classes: int | Iterable[int] | None, background: int
) -> list[int]:
    """The classes to work on: ``classes`` as ints, or every id present but ``background``."""
    if classes is None:
        return [int(c) for c in np.unique(labels) if c != background]
    wanted: Iterable[object] = (classes,) if isinstance(classes, (int, np.integer)) else classes
    ids = []
    for c in wanted:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise TypeError(f"classes must be integers, got {c!r}")
        ids.append(int(c))
    if background in ids:
        raise ValueError(f"classes must not include the background label {background}")
    return ids


def check_fits(value: int, labels: np.ndarray, name: str) -> None:
    """Raise when ``value`` cannot be stored in the labels' dtype."""
    info = np.iinfo(labels.dtype)
    if not info.min <= value <= info.max:
        raise ValueError(f"{name}={value} does not fit in labels of dtype {labels.dtype}")
