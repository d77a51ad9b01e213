"""Tile and batch sizes suited to a device when the config leaves them to "auto"."""

from __future__ import annotations

import torch

from .config import MIN_TILE, PredictConfig


def default_tile(
    config: PredictConfig, device: torch.device, multiple: int, plane, base: int = 512
) -> int:
    """The configured tile, or one suited to the device, rounded to ``multiple``.

    ``base`` is the network's own preference on a CPU (a pixel classifier's
    features need a wide context, so it prefers larger tiles).
    """
    if config.tile is not None:
        return config.tile
    tile = base
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        tile = max(base, 1024 if free >= 8 * 2**30 else 512)
    tile = min(tile, max(plane))
    return max(MIN_TILE, -(-tile // multiple) * multiple)


def default_batch(config: PredictConfig, device: torch.device, tile: int) -> int:
    """The configured batch size, or one suited to the device and tile."""
    if config.batch_size is not None:
        return config.batch_size
    if device.type == "cpu":
        return 1
    pixels = 8 * 512 * 512 if device.type == "cuda" else 2 * 512 * 512
    return max(1, pixels // (tile * tile))
