"""Device-dependent choices: precision, tile and batch defaults, out-of-memory detection."""

from __future__ import annotations

import torch

from .config import MIN_TILE, PredictConfig

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool((check and check()) or (amx and amx()))
    except RuntimeError:  # pragma: no cover - exotic builds
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``"auto"`` into a concrete precision and check explicit ones.

    Raises
    ------
    ValueError
        For fp16 on the CPU or bf16 where the device has no support for it.
    """
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if device.type == "cpu" and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is not supported on the CPU; use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"{device} does not support bf16; use fp16 or fp32")
    return precision


def autocast(device: torch.device, precision: str):
    """An autocast context for ``precision`` (disabled for fp32)."""
    return torch.autocast(
        device_type=device.type,
        dtype=_DTYPES[precision],
        enabled=precision != "fp32",
    )


def default_tile(config: PredictConfig, device: torch.device, multiple: int, plane) -> int:
    """The configured tile, or one suited to the device, rounded to ``multiple``."""
    if config.tile is not None:
        return config.tile
    tile = 512
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        tile = 1024 if free >= 8 * 2**30 else 512
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


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the device ran out of memory (CUDA or MPS)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
