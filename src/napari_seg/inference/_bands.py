"""Accumulating blended tile probabilities band by band and writing finished rows."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from ..arrays.layout import ImageLayout
from .tiling import TileGrid

#: Voxels whose labels are computed at once when a band is written (bounds the
#: temporaries: the total weight, the max's values and indices and a mask, 17 bytes
#: per voxel, 68 MB here).
WRITE_VOXELS = 1 << 22


class BandAccumulator:
    """Sums weighted tile probabilities over one band of tiles (a slab in 3D).

    The band covers one tile's extent along the grid's band axis and the full
    extent of the other axes: ``tile_h`` rows by the plane's width in 2D; in 3D
    one patch along the longest axis by the other two axes. When the next band
    starts, the part before it is final: its argmax (and, when asked for,
    normalised probabilities) is written to the outputs and the band shifts on.
    The buffers hold the band axis first; tiles and outputs are permuted to and
    from that order.

    The last class is not stored. Tile probabilities are a softmax, which sums to
    one, so the last class's weighted sum is the total blending weight minus the
    other classes' sums; the total weight depends only on the grid and the window,
    and is summed for the rows being written, when they are written. Memory is
    therefore ``num_classes - 1`` (one for a one-class model) ``x tile x`` the
    other axes, whatever the extent along the band axis or the stack length: half
    of a plain accumulator for a two-class model.
    """

    def __init__(
        self,
        grid: TileGrid,
        layout: ImageLayout,
        num_classes: int,
        device: torch.device,
        labels_out,
        probabilities_out=None,
        *,
        window: torch.Tensor,
    ) -> None:
        b = grid.band_axis
        others = [a for a in range(len(grid.shape)) if a != b]
        #: Axis order of the buffers: the band axis, then the others.
        self.order = [b, *others]
        band = (grid.tile_shape[b], *(grid.shape[a] for a in others))
        self.grid, self.layout = grid, layout
        self.labels_out, self.probabilities_out = labels_out, probabilities_out
        self.num_classes = num_classes
        #: Whether the last class is left out of ``acc`` (see the class notes).
        self.implicit = num_classes > 1
        stored = num_classes - 1 if self.implicit else num_classes
        self.acc = torch.zeros((stored, *band), dtype=torch.float32, device=device)
        #: The blending window, in the buffers' axis order.
        self.window = window.permute(*self.order) if self.order != sorted(self.order) else window
        self.label_dtype = np.dtype(labels_out.dtype)
        self.plane: tuple[int, ...] | None = None
        self.row = 0

    def add(self, plane: tuple[int, ...], row: int, origin: tuple[int, ...], probs) -> None:
        """Add one tile's ``(C, th, tw)`` (``(C, td, th, tw)``) probabilities, weighted
        by the window; ``origin`` is the tile's start on every axis, ``row`` its band."""
        if plane != self.plane:
            self.finish()
            self.plane, self.row = plane, 0
        while self.row < row:
            self._advance(plane)
        probs = probs[: self.acc.shape[0]]
        if self.order != sorted(self.order):
            probs = probs.permute(0, *(1 + a for a in self.order))
        index = (
            slice(None),
            slice(None),
            *(
                slice(origin[a], origin[a] + n)
                for a, n in zip(self.order[1:], probs.shape[2:], strict=True)
            ),
        )
        self.acc[index].addcmul_(probs, self.window)

    def finish(self) -> None:
        """Write the rest of the current plane (its last band)."""
        if self.plane is None:
            return
        y0 = self.grid.rows[self.row]
        self._write(self.plane, y0, self.grid.shape[self.grid.band_axis] - y0)
        self.acc.zero_()
        self.plane = None

    def total_weight(self, first: int, stop: int) -> torch.Tensor:
        """The summed blending weight of rows ``[first, stop)`` along the band axis,
        over the whole extent of the other axes (buffer order): the sum of the
        window over every tile of the grid that covers them, in the grid's order."""
        b = self.grid.band_axis
        tile = self.window.shape
        total = torch.zeros(
            (stop - first, *self.acc.shape[2:]), dtype=torch.float32, device=self.acc.device
        )
        corners = list(itertools.product(*(self.grid.starts[a] for a in self.order[1:])))
        for start in self.grid.starts[b]:
            lo, hi = max(first, start), min(stop, start + tile[0])
            if lo >= hi:
                continue
            piece = self.window[lo - start : hi - start]
            for corner in corners:
                spans = (slice(c, c + n) for c, n in zip(corner, tile[1:], strict=True))
                where = (slice(lo - first, hi - first), *spans)
                total[where] += piece
        return total

    def _advance(self, plane: tuple[int, ...]) -> None:
        rows = self.grid.rows
        y0, y1 = rows[self.row], rows[self.row + 1]
        done = y1 - y0
        self._write(plane, y0, done)
        keep = self.acc.shape[1] - done
        # Shift the band by ``done`` rows in place, in pieces no longer than ``done``
        # rows (a piece never overlaps its source) and about WRITE_VOXELS each: a
        # clone of the kept rows would cost 0.8 GB for a 96 x 1024 x 1024 slab.
        per_row = max(1, math.prod(self.acc.shape[2:]))
        step = max(1, min(done, WRITE_VOXELS // per_row))
        for start in range(0, keep, step):
            stop = min(keep, start + step)
            self.acc[:, start:stop] = self.acc[:, done + start : done + stop]
        self.acc[:, keep:] = 0
        self.row += 1

    def _write(self, plane: tuple[int, ...], y0: int, n: int) -> None:
        # In pieces of about WRITE_VOXELS: a slab of 96 x 1024 x 1024 would otherwise
        # make 1.8 GB of temporaries (the total weight, the max's float32 values and
        # int64 indices).
        per_row = max(1, math.prod(self.acc.shape[2:]))
        step = max(1, WRITE_VOXELS // per_row)
        for start in range(0, n, step):
            self._write_rows(plane, y0, start, min(n, start + step))

    def _write_rows(self, plane: tuple[int, ...], y0: int, start: int, stop: int) -> None:
        b = self.grid.band_axis
        spatial = [slice(None)] * (self.acc.ndim - 1)
        spatial[b] = slice(y0 + start, y0 + stop)
        region = self.layout.output_index(plane, *spatial)
        band = self.acc[:, start:stop]
        wanted = self.probabilities_out is not None
        # max(0) is ~10x faster than argmax(0) over the leading axis on the CPU; both
        # give the first of tied classes, and the last class wins only when above.
        values, best = band.max(0)
        probs = None
        if self.implicit or wanted:
            total = self.total_weight(y0 + start, y0 + stop)
            parts = band
            if self.implicit:
                last = total.clone() if wanted else total
                for stored in band:
                    last.sub_(stored)
                best.masked_fill_(last > values, self.num_classes - 1)
                parts = torch.cat((band, last[None])) if wanted else band
            if wanted:
                probs = (parts / total).to(torch.float16).cpu().numpy()
        if self.label_dtype == np.uint8:
            labels = best.to(torch.uint8).cpu().numpy()
        else:
            labels = best.cpu().numpy().astype(self.label_dtype)
        self.labels_out[region] = np.moveaxis(labels, 0, b)
        if probs is not None:
            every_class = (slice(None), *region)
            self.probabilities_out[every_class] = np.moveaxis(probs, 1, 1 + b)


class CroppedOutput:
    """The whole image's output, seen by one block's band accumulator.

    The accumulator writes in the block grid's coordinates (``origin`` is where the
    grid starts in the image, ``grid_shape`` its extent); only the part inside
    ``box`` reaches ``out``, at the image's coordinates. ``leading`` axes (the class
    axis of probabilities) come before the output's own.
    """

    def __init__(self, out, layout: ImageLayout, origin, grid_shape, box, leading: int = 0):
        self.out, self.dtype = out, out.dtype
        channel = layout.channel_axis
        self.positions = [
            leading + a - (1 if channel is not None and channel < a else 0)
            for a in layout.spatial_axes
        ]
        self.origin, self.grid_shape, self.box = tuple(origin), tuple(grid_shape), tuple(box)

    def __setitem__(self, where: tuple, value: np.ndarray) -> None:
        index = list(where)
        dims = [i for i, part in enumerate(index) if isinstance(part, slice)]
        pick = [slice(None)] * np.ndim(value)
        for pos, o, n, (lo, hi) in zip(
            self.positions, self.origin, self.grid_shape, self.box, strict=True
        ):
            start, stop, _ = index[pos].indices(n)
            first, last = max(start + o, lo), min(stop + o, hi)
            if first >= last:
                return
            index[pos] = slice(first, last)
            pick[dims.index(pos)] = slice(first - start - o, last - start - o)
        self.out[tuple(index)] = value[tuple(pick)]
