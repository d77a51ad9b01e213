"""Accumulating blended tile probabilities band by band and writing finished rows."""

from __future__ import annotations

import numpy as np
import torch

from ..arrays.layout import ImageLayout
from .tiling import TileGrid


class BandAccumulator:
    """Sums weighted tile probabilities over one band of tile rows (a slab in 3D).

    The band covers the rows of the current tile row, ``tile_h`` rows by the
    full plane width (in 3D: ``tile_d`` slices by the full ``H x W``). When the
    next tile row starts, the rows above it are final: their argmax (and, when
    asked for, normalised probabilities) is written to the outputs and the band
    shifts down. Memory is therefore ``num_classes x tile_h x W`` (``x tile_d x
    H x W``) whatever the image height (volume depth) or stack length.
    """

    def __init__(
        self,
        grid: TileGrid,
        layout: ImageLayout,
        num_classes: int,
        device: torch.device,
        labels_out,
        probabilities_out=None,
    ) -> None:
        band = (grid.tile_shape[0], *grid.shape[1:])
        self.grid, self.layout = grid, layout
        self.labels_out, self.probabilities_out = labels_out, probabilities_out
        self.acc = torch.zeros((num_classes, *band), dtype=torch.float32, device=device)
        self.weights = (
            torch.zeros((1, *band), dtype=torch.float32, device=device)
            if probabilities_out is not None
            else None
        )
        self.label_dtype = np.dtype(labels_out.dtype)
        self.plane: tuple[int, ...] | None = None
        self.row = 0

    def add(self, plane: tuple[int, ...], row: int, origin: tuple[int, ...], probs, window) -> None:
        """Add one tile's ``(C, th, tw)`` (``(C, td, th, tw)``) probabilities, weighted
        by ``window``; ``origin`` is the tile's start on the axes after the first."""
        if plane != self.plane:
            self.finish()
            self.plane, self.row = plane, 0
        while self.row < row:
            self._advance(plane)
        index = (
            slice(None),
            slice(None),
            *(slice(o, o + n) for o, n in zip(origin, probs.shape[2:], strict=True)),
        )
        self.acc[index].addcmul_(probs, window)
        if self.weights is not None:
            self.weights[index] += window

    def finish(self) -> None:
        """Write the rest of the current plane (its last band)."""
        if self.plane is None:
            return
        y0 = self.grid.rows[self.row]
        self._write(self.plane, y0, self.grid.shape[0] - y0)
        self.acc.zero_()
        if self.weights is not None:
            self.weights.zero_()
        self.plane = None

    def _advance(self, plane: tuple[int, ...]) -> None:
        rows = self.grid.rows
        y0, y1 = rows[self.row], rows[self.row + 1]
        done = y1 - y0
        self._write(plane, y0, done)
        keep = self.acc.shape[1] - done
        for buf in (self.acc, self.weights):
            if buf is None:
                continue
            buf[:, :keep] = buf[:, done:].clone()
            buf[:, keep:] = 0
        self.row += 1

    def _write(self, plane: tuple[int, ...], y0: int, n: int) -> None:
        rest = (slice(None),) * (self.acc.ndim - 2)
        region = self.layout.output_index(plane, slice(y0, y0 + n), *rest)
        band = self.acc[:, :n]
        # max(0).indices is ~10x faster than argmax(0) over the leading axis on the CPU.
        best = band.max(0).indices
        if self.label_dtype == np.uint8:
            labels = best.to(torch.uint8).cpu().numpy()
        else:
            labels = best.cpu().numpy().astype(self.label_dtype)
        self.labels_out[region] = labels
        if self.probabilities_out is not None and self.weights is not None:
            probs = (band / self.weights[:, :n]).to(torch.float16).cpu().numpy()
            every_class = (slice(None), *region)
            self.probabilities_out[every_class] = probs
