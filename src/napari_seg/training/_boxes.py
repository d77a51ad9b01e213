"""The boxes 3D training data works in: held-out slabs (:class:`Slab`), blocks that
tile a volume or cover a slab, and the box of what is annotated."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Slab:
    """A held-out slab: pair ``source``, ``start:stop`` along ``axis``."""

    source: int
    axis: int
    start: int
    stop: int

    def index(self, start: int | None = None, stop: int | None = None) -> tuple[slice, ...]:
        """The index of ``start:stop`` along the slab's axis and everything along the
        other two.

        Parameters
        ----------
        start, stop : int, optional
            Default: the slab's own.

        Returns
        -------
        tuple of slice
        """
        index = [slice(None)] * 3
        start = self.start if start is None else start
        index[self.axis] = slice(start, self.stop if stop is None else stop)
        return tuple(index)


def within(slab: Slab, region: Sequence[slice]) -> tuple[slice, ...] | None:
    """The index of the part of ``slab`` inside ``region``, in the region's
    coordinates (None when they do not meet)."""
    first = region[slab.axis].start
    lo = max(slab.start, first) - first
    hi = min(slab.stop, region[slab.axis].stop) - first
    return slab.index(lo, hi) if hi > lo else None


def cubes(shape: Sequence[int], size: int) -> Iterator[list[slice]]:
    """``size``-sided blocks covering a volume of ``shape`` (the last ones smaller)."""
    for z in range(0, shape[0], size):
        for y in range(0, shape[1], size):
            for x in range(0, shape[2], size):
                yield [slice(a, min(n, a + size)) for a, n in zip((z, y, x), shape, strict=True)]


def annotated_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of ``mask``'s true voxels (None when there are none)."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        where = np.flatnonzero(mask.any(axis=others))
        if not where.size:
            return None
        box.append(slice(int(where[0]), int(where[-1]) + 1))
    return tuple(box)


def blocks_over(slab: Slab, shape: Sequence[int], patch: Sequence[int]) -> Iterator[list[slice]]:
    """Patch-sized regions centred on the slab along its axis, tiling the other two."""
    axis = slab.axis
    middle = (slab.start + slab.stop) // 2
    start = int(np.clip(middle - patch[axis] // 2, 0, max(0, shape[axis] - patch[axis])))
    along = slice(start, min(shape[axis], start + patch[axis]))
    others = [a for a in range(3) if a != axis]
    starts = [tile_starts(shape[a], patch[a]) for a in others]
    for first in starts[0]:
        for second in starts[1]:
            region: list[slice] = [along, along, along]
            region[others[0]] = slice(first, min(shape[others[0]], first + patch[others[0]]))
            region[others[1]] = slice(second, min(shape[others[1]], second + patch[others[1]]))
            yield region


def tile_starts(n: int, p: int) -> list[int]:
    """Starts of patches of ``p`` covering ``n`` (the last one moved back to fit)."""
    if n <= p:
        return [0]
    starts = list(range(0, n - p, p))
    return [*starts, n - p]
