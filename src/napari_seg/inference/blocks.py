"""Segmenting a large image block by block, exactly as in one piece.

A block is a box of the spatial axes (and a range of planes of a stack). It runs
the tiles of the *whole image's* grid that overlap it, reading past its edges
as far as those tiles reach (the halo is the tiles' own extent), and writes only
its box. Every pixel of the box is then the blend of the same tiles, added in the
same order, from the same normalisation statistics and batch size, as in a
single-process run: the labels are bit-identical, wherever the block boundaries
fall (tested for planes, stacks and volumes). Blocks are made of whole output
chunks, so workers never write the same chunk.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING

import numpy as np

from .._types import RegionArray
from ..arrays.layout import ImageLayout
from ..arrays.normalize import IntensityStats, compute_stats
from ..limits import MAX_BLOCK
from ._resample import ResampledImage, run_resampled
from .config import PredictConfig
from .events import PredictEvent, PredictResult, SettingsAdjusted

if TYPE_CHECKING:
    from ..models.wrapper import SegmentationModel

#: Output chunk side along each spatial axis: planes, volumes.
CHUNK_2D, CHUNK_3D = 512, 128
#: Default block side, in chunks: 8192 pixels for planes, 512 voxels for volumes. The
#: tiles that straddle a block boundary run in both blocks: with tiles of side t, an
#: interior block of side B runs about (B + t) / B times its share of tiles per axis
#: (1.06 for B = 8192, t = 512: 1.13x in 2D; 1.125 and 1.27x for B = 4096; for
#: B = 512, t = 128: 1.25 per axis, 1.95x in 3D), so blocks are large; memory per
#: block is its labels (64 MB for 8192^2) plus one band of tiles across it (about
#: 50 MB for 3 classes). Images smaller than two blocks per worker want --block.
BLOCK_CHUNKS_2D, BLOCK_CHUNKS_3D = 16, 4


@dataclass(frozen=True)
class Block:
    """One unit of work: a box of the spatial axes of some planes.

    Attributes
    ----------
    number : int
        Position in :func:`plan_blocks`' list (names its record).
    planes : tuple of int
        Plane numbers ``[start, stop)`` (see ``ImageLayout.plane_at``).
    box : tuple of (int, int)
        ``[start, stop)`` along each spatial axis, in ``spatial_axes`` order.
    """

    number: int
    planes: tuple[int, int]
    box: tuple[tuple[int, int], ...]

    @property
    def pixels(self) -> int:
        """Output pixels (voxels) of the block."""
        return (self.planes[1] - self.planes[0]) * math.prod(b - a for a, b in self.box)


def output_chunks(layout: ImageLayout, block: int | None = None) -> tuple[int, ...]:
    """Chunk shape of the labels array for blocks of side ``block``.

    Parameters
    ----------
    layout : ImageLayout
    block : int, optional
        Requested block side (pixels along each spatial axis).

    Returns
    -------
    tuple of int
        One per output axis: 1 along the stack axes; along spatial axes
        ``CHUNK_2D`` (planes) or ``CHUNK_3D`` (volumes), or the block side when it
        is smaller, clipped to the image.
    """
    base = CHUNK_2D if layout.spatial_dims == 2 else CHUNK_3D
    side = min(base, block) if block else base
    sizes = dict(zip(layout.spatial_axes, layout.spatial_shape, strict=True))
    chunks = [
        min(side, sizes[a]) if a in sizes else 1
        for a in range(len(layout.shape))
        if a != layout.channel_axis
    ]
    return tuple(chunks)


#: The smallest block side, in pixels.
MIN_BLOCK = 16


def check_block(block: int | None) -> None:
    """Check a block side (None: the default).

    Parameters
    ----------
    block : int or None

    Raises
    ------
    ValueError
        For a side below ``MIN_BLOCK`` or above ``limits.MAX_BLOCK``.
    """
    if block is None:
        return
    if isinstance(block, bool) or not isinstance(block, int) or not MIN_BLOCK <= block <= MAX_BLOCK:
        raise ValueError(
            f"block must be a whole number of pixels from {MIN_BLOCK} to {MAX_BLOCK}, got {block!r}"
        )


def plan_blocks(layout: ImageLayout, block: int | None = None) -> list[Block]:
    """Cut the image into blocks of whole chunks.

    Parameters
    ----------
    layout : ImageLayout
    block : int, optional
        Block side in pixels along each spatial axis, rounded up to whole
        chunks (default: 16 chunks of 512 for planes, 4 of 128 for volumes). A
        stack gives one block per plane and box.

    Returns
    -------
    list of Block

    Raises
    ------
    ValueError
        For a block side out of bounds (:func:`check_block`).
    """
    check_block(block)
    chunks = output_chunks(layout, block)
    chunk = max(chunks[i] for i in _spatial_positions(layout))
    per = BLOCK_CHUNKS_2D if layout.spatial_dims == 2 else BLOCK_CHUNKS_3D
    side = -(-block // chunk) * chunk if block else per * chunk
    ranges = [
        [(start, min(start + side, n)) for start in range(0, n, side)] for n in layout.spatial_shape
    ]
    boxes = list(product(*ranges))
    return [
        Block(number, (p, p + 1), tuple(box))
        for number, (p, box) in enumerate(product(range(layout.n_planes), boxes))
    ]


def small_block_warning(blocks: list[Block], tile: int) -> str | None:
    """Why blocks smaller than the tile waste work (None when they are not).

    A block predicts every tile that touches its box, whole, so a tile is predicted
    again in each block it crosses: blocks of 64 with tiles of 128 predict the
    volume about 8 times over.

    Parameters
    ----------
    blocks : list of Block
        :func:`plan_blocks`' blocks.
    tile : int
        The job's tile side (pixels of the model's grid).

    Returns
    -------
    str or None
    """
    if not blocks:
        return None
    axes = range(len(blocks[0].box))
    sides = [max(b.box[i][1] - b.box[i][0] for b in blocks) for i in axes]
    cut = [len({b.box[i] for b in blocks}) > 1 for i in axes]
    if not any(c and side < tile for c, side in zip(cut, sides, strict=True)):
        return None
    return (
        f"blocks of {max(sides)} pixels are smaller than the tile ({tile}): each tile is "
        f"predicted again in every block it crosses; a block side of at least {tile} "
        "(or the default) avoids the repeats"
    )


def _spatial_positions(layout: ImageLayout) -> list[int]:
    channel = layout.channel_axis
    return [a - (1 if channel is not None and channel < a else 0) for a in layout.spatial_axes]


def iter_predict_block(
    model: SegmentationModel,
    image: RegionArray,
    block: Block,
    config: PredictConfig,
    *,
    out: RegionArray,
    stats: IntensityStats,
    probabilities_out: RegionArray | None = None,
) -> Generator[PredictEvent, None, PredictResult]:
    """Segment one block of ``image`` into ``out`` (the whole image's labels).

    Parameters
    ----------
    model : SegmentationModel
    image : array-like
        The whole image (read by region).
    block : Block
    config : PredictConfig
        The whole job's settings; ``tile``, ``overlap`` and ``batch_size`` must be
        explicit (:func:`fixed_settings`) so every block uses the same grid.
    out : array-like
        The whole image's labels (a zarr array: only the block's chunks are written).
    stats : IntensityStats
        The whole image's normalisation statistics (``compute_stats``).
    probabilities_out : array-like, optional
        ``(num_classes, *labels.shape)`` float array.

    Yields
    ------
    PredictStarted, PredictProgress, SettingsAdjusted, PredictWarning

    Returns
    -------
    PredictResult
        Its ``labels`` is ``out``.

    Raises
    ------
    ValueError
        When the settings are not fixed.
    MemoryError
        When the device runs out of memory: a block never changes its tile or
        batch, which would change its values (the task fails and is retried).
    """
    from .predictor import _Predictor

    missing = [f for f in ("tile", "overlap", "batch_size") if getattr(config, f) is None]
    if missing:
        raise ValueError(f"a block needs fixed {', '.join(missing)} (see fixed_settings)")
    labels = _BlockBuffer(out, layout_of(model, tuple(image.shape), config), block)
    probs = (
        None if probabilities_out is None else _BlockBuffer(probabilities_out, labels.layout,
                                                             block, leading=1)
    )  # fmt: skip
    predictor = _Predictor(
        model, image, config, labels, probs,
        box=block.box, planes=range(*block.planes), stats=stats,
    )  # fmt: skip
    sizes = predictor.resampled_sizes()
    if sizes is None:
        run = predictor.run()
    else:  # at the model's spacing: the tiles over the box's source, resampled back
        run = run_resampled(
            _Predictor, model, image, config, predictor.layout, sizes, labels, probs, stats,
            box=block.box, planes=range(*block.planes),
        )  # fmt: skip
    try:
        while True:
            event = next(run)
            if isinstance(event, SettingsAdjusted):  # another tile or batch: other values
                raise MemoryError(
                    f"block {block.number} ran out of memory on {predictor.device} with the "
                    f"job's tile and batch; give a smaller --batch or --tile for the whole job"
                )
            yield event
    except StopIteration as stop:
        result = stop.value
    finally:
        run.close()
    labels.flush()
    if probs is not None:
        probs.flush()
    return result


def fixed_settings(
    model: SegmentationModel, image: RegionArray, config: PredictConfig
) -> tuple[PredictConfig, IntensityStats]:
    """The settings and statistics a single-process run would choose, made explicit.

    Parameters
    ----------
    model : SegmentationModel
    image : array-like
    config : PredictConfig

    Returns
    -------
    config : PredictConfig
        With ``tile``, ``overlap`` and ``batch_size`` filled in for its device.
    stats : IntensityStats
        The whole image's normalisation statistics.
    """
    from .predictor import _Predictor

    p = _Predictor.settings(model, image, config)
    layout, sizes = p.layout, p.resampled_sizes()
    if sizes is not None:  # the tiles run on the image at the model's spacing
        resampled = ResampledImage(image, layout, sizes)
        p = _Predictor.settings(model, resampled, config.with_(spacing=None, spacing_unit=None))
    fixed = config.with_(tile=p.tile, overlap=p.overlap, batch_size=p.batch)
    return fixed, compute_stats(image, layout, model.spec.normalization)


def layout_of(
    model: SegmentationModel, shape: tuple[int, ...], config: PredictConfig
) -> ImageLayout:
    """The :class:`ImageLayout` of an image of ``shape`` for ``model`` and ``config``.

    Parameters
    ----------
    model : SegmentationModel
    shape : tuple of int
    config : PredictConfig

    Returns
    -------
    ImageLayout
    """
    from ..arrays.layout import resolve_layout

    spec = model.spec
    return resolve_layout(
        shape, in_channels=spec.in_channels, channel_axis=config.channel_axis,
        axis=config.axis, spatial_dims=spec.spatial_dims,
    )  # fmt: skip


class _BlockBuffer:
    """The block's part of an output, gathered in memory and written in one piece.

    One write per block covers its chunks whole, so a chunk is never read back
    (a chunk cut short by a killed run is replaced, not decoded) and every chunk
    is encoded once. It looks like the whole output to the predictor.
    """

    def __init__(self, out, layout: ImageLayout, block: Block, leading: int = 0) -> None:
        if block.planes[1] - block.planes[0] != 1:
            raise ValueError("a block spans one plane (or volume)")
        self.out, self.layout, self.dtype = out, layout, out.dtype
        self.shape = tuple(out.shape)
        plane = layout.plane_at(block.planes[0])
        index = layout.output_index(plane, *(slice(a, b) for a, b in block.box))
        self.region = (slice(None),) * leading + tuple(
            slice(i, i + 1) if isinstance(i, int) else i for i in index
        )
        self.origin = [0 if r.start is None else r.start for r in self.region]
        sizes = [n if r.start is None else r.stop - r.start for r, n in zip(
            self.region, self.shape, strict=True)]  # fmt: skip
        self.buffer = np.zeros(sizes, dtype=out.dtype)

    def __setitem__(self, index: tuple, value: np.ndarray) -> None:
        local = []
        for i, o in zip(index, self.origin, strict=True):
            if isinstance(i, slice):
                local.append(slice((i.start or 0) - o, None if i.stop is None else i.stop - o))
            else:
                local.append(i - o)
        self.buffer[tuple(local)] = value

    def flush(self) -> None:
        """Write the block to the output."""
        self.out[self.region] = self.buffer


__all__ = [
    "Block",
    "fixed_settings",
    "iter_predict_block",
    "layout_of",
    "output_chunks",
    "plan_blocks",
]
