"""How a network pools anisotropic voxels (the nnU-Net rule), one home for every 3D entry."""

from __future__ import annotations

import math
from collections.abc import Sequence


def plan_strides(spacing: Sequence[float] | None, depth: int, dims: int) -> list[tuple[int, ...]]:
    """Per-level pooling strides: an axis is pooled only while its spacing is within 2x
    of the finest (nnU-Net's planning, Isensee et al. 2021).

    At each of ``depth`` levels, every axis whose current spacing is at most twice
    the finest current spacing is halved (stride 2, its spacing doubles); the
    others keep stride 1. A 0.5 x 0.5 x 5 mm CT (spacing ``(5, 0.5, 0.5)`` in
    ``(z, y, x)``) is pooled in-plane for three levels before z is pooled.

    Parameters
    ----------
    spacing : sequence of float or None
        The voxel size per spatial axis; None pools every axis at every level.
    depth : int
        Number of downsamplings.
    dims : int
        Spatial dimensionality (2 or 3).

    Returns
    -------
    list of tuple of int
        ``depth`` tuples of ``dims`` strides (1 or 2).

    Examples
    --------
    >>> plan_strides((5.0, 0.5, 0.5), 4, 3)
    [(1, 2, 2), (1, 2, 2), (1, 2, 2), (2, 2, 2)]
    """
    current = [1.0] * dims if spacing is None else [float(s) for s in spacing]
    plan = []
    for _ in range(depth):
        finest = min(current)
        strides = tuple(2 if s <= 2 * finest * (1 + 1e-6) else 1 for s in current)
        plan.append(strides)
        current = [s * k for s, k in zip(current, strides, strict=True)]
    return plan


def size_multiple(strides: Sequence[Sequence[int]]) -> int:
    """The size every input axis is padded to a multiple of: the largest total stride.

    Parameters
    ----------
    strides : sequence of sequence of int
        Per-level strides (:func:`plan_strides`).

    Returns
    -------
    int
    """
    if not strides:
        return 1
    return max(math.prod(axis) for axis in zip(*strides, strict=True))
