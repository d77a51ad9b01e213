"""Tile grids and blending windows (numpy only).

A plane of size ``H x W`` (a volume ``D x H x W``) is cut into tiles of at most
``tile`` pixels per side that overlap by ``overlap`` pixels. Tiles on the last row and column are
shifted back so that they end at the image border: every tile has the same
shape, which lets tiles be batched, and no tile reaches outside the image.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product

import numpy as np

BLENDING_MODES = ("gaussian", "cosine", "constant")

# The smallest weight a window gives to any pixel. Windows are normalised by
# their sum, so any positive floor keeps every pixel defined; this one is far
# above float32 resolution and far below the weight of a tile's centre.
WEIGHT_FLOOR = 1e-3


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)`` along one axis.

    Parameters
    ----------
    length : int
        Axis length (>= 1).
    tile : int
        Tile length (>= 1). When ``length <= tile`` there is one tile of
        length ``length``.
    overlap : int
        Minimum overlap between neighbouring tiles, ``0 <= overlap < tile``.

    Returns
    -------
    list of int
        Increasing starts; the last one is ``length - min(tile, length)``.

    Raises
    ------
    ValueError
        For a length or tile below 1, or an overlap outside ``[0, tile)``.

    Examples
    --------
    >>> tile_starts(1000, 512, 128)
    [0, 384, 488]
    >>> tile_starts(100, 512, 128)
    [0]
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def band_axis_for(shape: tuple[int, ...]) -> int:
    """The axis a plane or volume is predicted and written along, band by band.

    Planes go row by row. Volumes go along their longest axis, so that a band spans
    the two shorter ones (a 128 x 1024 x 1024 volume: slabs of 96 x 128 x 1024
    voxels for 96-voxel patches, not 96 x 1024 x 1024).

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` or ``(D, H, W)``.

    Returns
    -------
    int
    """
    return int(np.argmax(shape)) if len(shape) == 3 else 0


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one plane (``H x W``) or volume (``D x H x W``).

    Attributes
    ----------
    shape : tuple of int
        Plane or volume shape.
    tile_shape : tuple of int
        Shape of every tile: the tile side per axis, clipped to the shape.
    overlap : tuple of int
        Overlap actually requested per axis (clipped below the tile shape).
    starts : tuple of tuple of int
        Tile start offsets along each axis.
    band_axis : int
        The axis along which tiles are visited band by band (outermost loop):
        the results are final, and written, one band after another.
    """

    shape: tuple[int, ...]
    tile_shape: tuple[int, ...]
    overlap: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]
    band_axis: int = 0

    @property
    def rows(self) -> tuple[int, ...]:
        """Starts along the band axis: the bands (slabs in 3D) written one after another."""
        return self.starts[self.band_axis]

    @property
    def cols(self) -> tuple[int, ...]:
        """Starts along the last axis."""
        return self.starts[-1]

    @classmethod
    def build(
        cls,
        shape: tuple[int, ...],
        tile: int | tuple[int, ...],
        overlap: int,
        band_axis: int = 0,
    ) -> TileGrid:
        """Grid for a plane or volume of ``shape`` with cubic (or given) tiles and ``overlap``.

        Parameters
        ----------
        shape : tuple of int
            ``(H, W)`` or ``(D, H, W)``.
        tile : int or tuple of int
            Tile side, or one per axis; clipped to the shape.
        overlap : int
            Requested overlap, clipped below the tile.
        band_axis : int
            The axis visited band by band (see :attr:`band_axis`).

        Returns
        -------
        TileGrid
        """
        sizes = tuple(int(s) for s in shape)
        tiles = (tile,) * len(sizes) if isinstance(tile, (int, np.integer)) else tuple(tile)
        tile_shape = tuple(min(int(t), n) for t, n in zip(tiles, sizes, strict=True))
        overlaps = tuple(min(int(overlap), t - 1) for t in tile_shape)
        return cls(
            shape=sizes,
            tile_shape=tile_shape,
            overlap=overlaps,
            starts=tuple(
                tuple(tile_starts(n, t, o))
                for n, t, o in zip(sizes, tile_shape, overlaps, strict=True)
            ),
            band_axis=int(band_axis),
        )

    def __len__(self) -> int:
        return math.prod(len(s) for s in self.starts)

    def restrict(self, box: tuple[tuple[int, int], ...]) -> tuple[TileGrid, tuple[int, ...]]:
        """The tiles of this grid that overlap ``box``, on the box their union covers.

        A pixel inside ``box`` is covered by the same tiles, met in the same order,
        as in the whole grid, so blending them gives bit-identical values: this is
        how a block of a large image is segmented exactly as the whole image is.

        Parameters
        ----------
        box : tuple of (start, stop)
            One half-open range per axis, inside :attr:`shape`.

        Returns
        -------
        grid : TileGrid
            The kept tiles, their starts relative to ``origin``; same tile shape,
            overlap and band axis.
        origin : tuple of int
            Where the new grid's first pixel lies in this grid.

        Raises
        ------
        ValueError
            For a box that is empty or leaves the grid.
        """
        starts, origin, shape = [], [], []
        for first, size, tile, (lo, hi) in zip(
            self.starts, self.shape, self.tile_shape, box, strict=True
        ):
            if not 0 <= lo < hi <= size:
                raise ValueError(f"box {box} is empty or leaves the grid of shape {self.shape}")
            kept = [s for s in first if s < hi and s + tile > lo]
            origin.append(kept[0])
            starts.append(tuple(s - kept[0] for s in kept))
            shape.append(kept[-1] + tile - kept[0])
        grid = TileGrid(tuple(shape), self.tile_shape, self.overlap, tuple(starts), self.band_axis)
        return grid, tuple(origin)

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        """``(band_index, *origin)`` for every tile, band by band along :attr:`band_axis`
        and in C order within a band: ``(r, y0, x0)`` in 2D, ``(r, z0, y0, x0)`` in 3D."""
        b = self.band_axis
        others = self.starts[:b] + self.starts[b + 1 :]
        for r, first in enumerate(self.starts[b]):
            for rest in product(*others):
                yield (r, *rest[:b], first, *rest[b:])


def blending_window(
    tile_shape: tuple[int, ...], *, mode: str = "gaussian", overlap: int | tuple[int, ...] = 0
) -> np.ndarray:
    """Per-pixel (per-voxel) weights for blending overlapping tile predictions.

    Parameters
    ----------
    tile_shape : tuple of int
        ``(th, tw)`` or ``(td, th, tw)``.
    mode : {"gaussian", "cosine", "constant"}
        ``gaussian``: a Gaussian of sigma ``tile / 8`` per axis, as in nnU-Net.
        ``cosine``: 1 in the centre with a raised-cosine ramp over the
        ``overlap`` pixels at each edge, so that two neighbours' ramps sum
        to one across their overlap. ``constant``: plain averaging.
    overlap : int or tuple of int
        Ramp width for ``cosine`` (one per axis, or the same for all).

    Returns
    -------
    numpy.ndarray
        float32 array of ``tile_shape``, maximum 1, every value >= ``WEIGHT_FLOOR``.

    Raises
    ------
    ValueError
        For an unknown mode.
    """
    if mode not in BLENDING_MODES:
        raise ValueError(f"blending must be one of {BLENDING_MODES}, got {mode!r}")
    dims = len(tile_shape)
    overlaps = (overlap,) * dims if isinstance(overlap, (int, np.integer)) else tuple(overlap)
    window = np.ones((), dtype=np.float64)
    for n, o in zip(tile_shape, overlaps, strict=True):
        window = np.multiply.outer(window, _profile(n, mode, int(o)))
    window = window.astype(np.float32)
    window /= window.max()
    np.maximum(window, WEIGHT_FLOOR, out=window)
    return window


def _profile(n: int, mode: str, overlap: int) -> np.ndarray:
    if mode == "constant" or n == 1:
        return np.ones(n)
    if mode == "gaussian":
        centre = (n - 1) / 2
        sigma = n / 8
        return np.exp(-0.5 * ((np.arange(n) - centre) / sigma) ** 2)
    profile = np.ones(n)
    ramp = min(overlap, n // 2)
    if ramp > 0:
        # sin^2 rising over the ramp; a neighbour's cos^2 falls over the same pixels.
        t = (np.arange(ramp) + 0.5) / ramp
        profile[:ramp] = np.sin(t * np.pi / 2) ** 2
        profile[n - ramp :] = profile[:ramp][::-1]
    return profile
