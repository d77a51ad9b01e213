"""Tile grids and blending windows (numpy only).

A plane of size ``H x W`` is cut into tiles of at most ``tile`` pixels per
side that overlap by ``overlap`` pixels. Tiles on the last row and column are
shifted back so that they end at the image border: every tile has the same
shape, which lets tiles be batched, and no tile reaches outside the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one ``H x W`` plane.

    Attributes
    ----------
    shape : tuple of int
        Plane shape ``(H, W)``.
    tile_shape : tuple of int
        Shape of every tile, ``(min(tile, H), min(tile, W))``.
    overlap : tuple of int
        Overlap actually requested per axis (clipped to the tile shape).
    rows, cols : tuple of int
        Tile start offsets along each axis.
    """

    shape: tuple[int, int]
    tile_shape: tuple[int, int]
    overlap: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @classmethod
    def build(cls, shape: tuple[int, ...], tile: int | tuple[int, int], overlap: int) -> TileGrid:
        """Grid for a plane of ``shape`` with square (or given) tiles and ``overlap``.

        Parameters
        ----------
        shape : tuple of int
            ``(H, W)``.
        tile : int or tuple of int
            Tile side, or ``(th, tw)``; clipped to the plane.
        overlap : int
            Requested overlap, clipped below the tile.

        Returns
        -------
        TileGrid
        """
        h, w = (int(s) for s in shape)
        th, tw = (tile, tile) if isinstance(tile, (int, np.integer)) else tile
        th, tw = min(int(th), h), min(int(tw), w)
        oy, ox = min(overlap, th - 1), min(overlap, tw - 1)
        return cls(
            shape=(h, w),
            tile_shape=(th, tw),
            overlap=(oy, ox),
            rows=tuple(tile_starts(h, th, oy)),
            cols=tuple(tile_starts(w, tw, ox)),
        )

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        """``(row_index, y0, x0)`` for every tile, row-major."""
        for r, y0 in enumerate(self.rows):
            for x0 in self.cols:
                yield r, y0, x0


def blending_window(
    tile_shape: tuple[int, int], *, mode: str = "gaussian", overlap: int | tuple[int, int] = 0
) -> np.ndarray:
    """Per-pixel weights for blending overlapping tile predictions.

    Parameters
    ----------
    tile_shape : tuple of int
        ``(th, tw)``.
    mode : {"gaussian", "cosine", "constant"}
        ``gaussian``: a Gaussian of sigma ``tile / 8`` per axis, as in nnU-Net.
        ``cosine``: 1 in the centre with a raised-cosine ramp over the
        ``overlap`` pixels at each edge, so that two neighbours' ramps sum
        to one across their overlap. ``constant``: plain averaging.
    overlap : int or tuple of int
        Ramp width for ``cosine``.

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
    oy, ox = (overlap, overlap) if isinstance(overlap, (int, np.integer)) else overlap
    profiles = [_profile(n, mode, int(o)) for n, o in zip(tile_shape, (oy, ox), strict=True)]
    window = np.outer(profiles[0], profiles[1]).astype(np.float32)
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
