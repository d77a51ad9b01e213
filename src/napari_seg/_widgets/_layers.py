"""Reading napari layers and the viewer's position (main thread only)."""

from __future__ import annotations

import numpy as np


def full_resolution(layer):
    """The layer's array at full resolution (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def viewer_position(viewer, layer) -> tuple[list[int], list[int]]:
    """The layer axes shown in the canvas and the current index along every layer axis.

    Indices are clamped to the layer's shape, so a viewer whose other layers are
    larger still gives a valid position in this one.
    """
    dims = viewer.dims
    offset = dims.ndim - layer.ndim
    displayed = [d - offset for d in dims.displayed if d >= offset]
    shape = full_resolution(layer).shape
    step = [int(np.round(v)) for v in layer.world_to_data(dims.point)]
    step = [min(max(s, 0), n - 1) for s, n in zip(step, shape, strict=False)]
    return displayed, step
