"""Held-out validation regions of 2D training data: whole blocks, or whole strokes.

With dense labels, patch-sized blocks of annotated pixels are held out at random
as long as every class keeps pixels in training. With sparse labels (scribbles),
whole strokes are held out (:func:`~napari_seg.training.strokes.choose_held_out`)
and the validation regions are the blocks they touch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._types import RegionArray
from ..arrays.layout import ImageLayout
from ..arrays.normalize import IntensityStats
from .strokes import Stroke, choose_held_out, stroke_mask

#: At most this many regions are held out for validation.
MAX_VALIDATION_REGIONS = 64


@dataclass
class Source:
    """One (image, labels) pair with its layout, statistics and held-out blocks."""

    name: str
    image: RegionArray
    labels: RegionArray
    layout: ImageLayout
    stats: IntensityStats
    grid: tuple[int, int]
    held_out: np.ndarray  # (n_planes, rows, cols) bool
    block_counts: list[np.ndarray] = field(default_factory=list)  # per plane: (blocks, k)


@dataclass(frozen=True)
class Region:
    """A held-out validation region: source, plane number, and rows/columns."""

    source: int
    plane: int
    ys: slice
    xs: slice


@dataclass
class HeldOut:
    """The regions held out, the held-out stroke pixels by (pair, plane) (sparse
    labels only) and what to tell the user."""

    regions: list[Region]
    pixels: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def block_counts(lab: np.ndarray, annotated: np.ndarray, block: int, grid) -> np.ndarray:
    """Annotated pixels per (block, class): shape ``(rows * cols, max id + 1)``."""
    k = max(int(lab.max()) + 1, 1) if lab.size else 1  # a plane of ignored pixels: -99
    rows = np.arange(lab.shape[0]) // block
    cols = np.arange(lab.shape[1]) // block
    ids = rows[:, None] * grid[1] + cols[None, :]
    flat = (ids * k + lab)[annotated]
    counts = np.bincount(flat, minlength=grid[0] * grid[1] * k)
    return counts.reshape(grid[0] * grid[1], k)


def _region(source: int, plane: int, src: Source, row: int, col: int, patch: int) -> Region:
    """The block at ``(row, col)`` of the patch-sized grid of a plane of ``src``."""
    h, w = src.layout.plane_shape
    ys = slice(row * patch, min(h, (row + 1) * patch))
    return Region(source, plane, ys, slice(col * patch, min(w, (col + 1) * patch)))


def hold_out_blocks(
    sources: list[Source], patch: int, rng: np.random.Generator, fraction: float, totals: np.ndarray
) -> HeldOut:
    """Choose annotated blocks to hold out, keeping every class in training.

    Marks them in each source's ``held_out`` grid; ``totals`` are the annotated
    pixels per class over all sources.
    """
    blocks = [
        (s, p, b)
        for s, src in enumerate(sources)
        for p, counts in enumerate(src.block_counts)
        for b in np.flatnonzero(counts.sum(axis=1))
    ]
    if fraction <= 0:
        return HeldOut([])
    if len(blocks) < 2:
        return HeldOut(
            [],
            warnings=[
                "the annotations fit in one region, so none could be held out for validation; "
                "validation IoU is not reported (annotate more places to get it)"
            ],
        )
    wanted = min(MAX_VALIDATION_REGIONS, max(1, round(fraction * len(blocks))), len(blocks) - 1)
    remaining = totals.copy()
    regions: list[Region] = []
    for i in rng.permutation(len(blocks)):
        if len(regions) == wanted:
            break
        s, p, b = blocks[i]
        src = sources[s]
        counts = src.block_counts[p][b]
        left = remaining[: counts.size] - counts
        if np.any((left == 0) & (counts > 0)):
            continue  # holding this block out would remove a class from training
        remaining[: counts.size] = left
        row, col = divmod(int(b), src.grid[1])
        src.held_out[p, row, col] = True
        regions.append(_region(s, p, src, row, col, patch))
    if regions:
        return HeldOut(regions)
    return HeldOut(
        [],
        warnings=[
            "every annotated region holds a class found nowhere else, so none was held "
            "out for validation; validation IoU is not reported"
        ],
    )


def hold_out_strokes(
    strokes: list[Stroke],
    sources: list[Source],
    patch: int,
    rng: np.random.Generator,
    fraction: float,
) -> HeldOut:
    """Hold whole strokes out; the validation regions are the blocks they touch."""
    held, warnings = choose_held_out(strokes, fraction, rng)
    by_plane: dict[tuple[int, int], list[Stroke]] = {}
    for stroke in held:
        by_plane.setdefault((stroke.source, stroke.plane), []).append(stroke)
    pixels: dict[tuple[int, int], np.ndarray] = {}
    blocks: set[tuple[int, int, int, int]] = set()
    for (s, number), plane_strokes in by_plane.items():
        mask = stroke_mask(plane_strokes, sources[s].layout.plane_shape)
        pixels[s, number] = mask
        rows, cols = np.nonzero(mask)
        cells = zip(rows // patch, cols // patch, strict=True)
        blocks.update((s, number, int(r), int(c)) for r, c in cells)
    chosen = sorted(blocks)
    if len(chosen) > MAX_VALIDATION_REGIONS:
        keep = rng.choice(len(chosen), MAX_VALIDATION_REGIONS, replace=False)
        chosen = [chosen[int(i)] for i in sorted(keep)]
    if not held and fraction > 0:
        warnings.append(
            "no stroke could be held out for validation (each class needs two strokes); "
            "the held-out stroke agreement is not reported"
        )
    regions = [_region(s, n, sources[s], int(r), int(c), patch) for s, n, r, c in chosen]
    return HeldOut(regions, pixels, warnings)
