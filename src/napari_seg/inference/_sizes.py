"""Tile and batch sizes suited to a device when the config leaves them to "auto"."""

from __future__ import annotations

import torch

from .config import MIN_TILE, PredictConfig

#: Side of a 3D patch on a CPU, and on a GPU with less / more than 8 GiB free: the
#: patch sizes MONAI's and nnU-Net's 3D examples use (96^3 to 160^3).
TILE_3D_CPU, TILE_3D_GPU, TILE_3D_LARGE_GPU = 96, 128, 160


def default_tile(
    config: PredictConfig,
    device: torch.device,
    multiple: int,
    plane,
    base: int | None = None,
) -> int:
    """The configured tile, or one suited to the device, rounded to ``multiple``.

    ``base`` is the network's own preference (a pixel classifier's features
    need a wide context, so it prefers larger tiles), used on a CPU and as the
    least on a GPU; without one, 512 in 2D. ``plane`` is the spatial shape: a
    3D one without a preference gets a cubic patch of :data:`TILE_3D_CPU`
    (GPU) sides.
    """
    if config.tile is not None:
        return config.tile
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 0
    if len(plane) == 3:
        tile = TILE_3D_CPU
        if device.type == "cuda":
            tile = TILE_3D_LARGE_GPU if free >= 8 * 2**30 else TILE_3D_GPU
        tile = tile if base is None else max(tile, base)
    else:
        tile = 512 if base is None else base
        if device.type == "cuda":
            tile = max(tile, 1024 if free >= 8 * 2**30 else 512)
    tile = min(tile, max(plane))
    return max(MIN_TILE, -(-tile // multiple) * multiple)


def default_batch(config: PredictConfig, device: torch.device, tile: int, dims: int = 2) -> int:
    """The configured batch size, or one suited to the device and tile (``dims``-D)."""
    if config.batch_size is not None:
        return config.batch_size
    if device.type == "cpu":
        return 1
    if dims == 3:
        voxels = 2 * TILE_3D_LARGE_GPU**3 if device.type == "cuda" else TILE_3D_GPU**3
        return max(1, voxels // tile**3)
    pixels = 8 * 512 * 512 if device.type == "cuda" else 2 * 512 * 512
    return max(1, pixels // (tile * tile))
