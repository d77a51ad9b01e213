"""Where and how a job runs: device, precision, memory format, CPU threads.

One :class:`Runtime` is resolved per job (prediction, training) and passed down,
so each rule is decided here once: what "auto" precision means, when the
channels-last memory format is used, how many CPU threads torch uses, and what
counts as running out of memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .._device import describe_device, resolve_device
from . import PRECISIONS

PURPOSES = ("inference", "training")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX).

    Returns
    -------
    bool
    """
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool((check and check()) or (amx and amx()))
    except RuntimeError:  # pragma: no cover - exotic builds
        return False


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether the CUDA ``device`` computes bf16 natively: compute capability 8.0
    (Ampere) or later, or a ROCm GPU. Older cards (T4, V100) emulate bf16, slower
    than their fp16 tensor cores.

    Parameters
    ----------
    device : torch.device
        A CUDA device (with or without an index; without, the current one).

    Returns
    -------
    bool
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_properties(device).major >= 8


def _cuda_bf16_works(device: torch.device) -> bool:
    """Whether bf16 runs at all on ``device``, natively or emulated."""
    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported())


def resolve_precision(precision: str, device: torch.device, *, purpose: str = "inference") -> str:
    """Turn ``"auto"`` into a concrete precision and check explicit ones.

    "auto" is bf16 on a CUDA device that computes it natively, fp16 on older
    ones (:func:`cuda_has_native_bf16`). On a CPU with native bf16
    it is bf16 for inference (3.4x faster per tile, 99.99% of labels unchanged,
    docs/performance.md) but fp32 for training (bf16 autocast trains no faster
    there, measured); fp32 elsewhere.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}
    device : torch.device
    purpose : {"inference", "training"}

    Returns
    -------
    str
        "fp32", "bf16" or "fp16".

    Raises
    ------
    ValueError
        For an unknown precision or purpose, fp16 on the CPU, or bf16 where the
        device has no support for it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if cuda_has_native_bf16(device) else "fp16"
        if device.type == "cpu" and purpose == "inference" and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is not supported on the CPU; use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not _cuda_bf16_works(device):
        raise ValueError(f"{device} does not support bf16; use fp16 or fp32")
    return precision


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the device ran out of memory (CUDA or MPS).

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    bool
    """
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@dataclass(frozen=True)
class Runtime:
    """The resolved settings one job runs with.

    Attributes
    ----------
    device : torch.device
    description : str
        The device's name and memory, for messages.
    precision : {"fp32", "bf16", "fp16"}
    channels_last : bool
        Whether 4D inputs and models use the channels-last memory format.
    threads : int or None
        torch CPU threads during the job (None: leave torch's setting).
    purpose : {"inference", "training"}
    """

    device: torch.device
    description: str
    precision: str
    channels_last: bool
    threads: int | None
    purpose: str

    @classmethod
    def resolve(
        cls,
        device: str | torch.device = "auto",
        precision: str = "auto",
        *,
        purpose: str = "inference",
        channels_last: bool | None = None,
        threads: int | None = None,
    ) -> Runtime:
        """Resolve every setting once.

        Parameters
        ----------
        device : str or torch.device
            ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        precision : {"auto", "fp32", "bf16", "fp16"}
            See :func:`resolve_precision`.
        purpose : {"inference", "training"}
        channels_last : bool, optional
            None: always for inference (faster with bf16 on the CPU and on CUDA), on
            CUDA only for training.
        threads : int, optional
            torch CPU threads during the job (CPU runs only).

        Returns
        -------
        Runtime

        Raises
        ------
        DeviceError
            If the device does not exist here.
        ValueError
            For a precision the device does not support.
        """
        dev = resolve_device(device)
        resolved = resolve_precision(precision, dev, purpose=purpose)
        if channels_last is None:
            channels_last = purpose == "inference" or dev.type == "cuda"
        threads = threads if dev.type == "cpu" else None
        return cls(
            device=dev,
            description=describe_device(dev, threads),
            precision=resolved,
            channels_last=bool(channels_last),
            threads=threads,
            purpose=purpose,
        )

    def autocast(self) -> torch.autocast:
        """An autocast context for the precision (disabled for fp32).

        Returns
        -------
        torch.autocast
        """
        return torch.autocast(
            device_type=self.device.type,
            dtype=_DTYPES[self.precision],
            enabled=self.precision != "fp32",
        )

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the job's memory format (channels-last applies to 4D tensors).

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        torch.Tensor
        """
        if self.channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    @contextlib.contextmanager
    def cpu_threads(self) -> Iterator[None]:
        """Use ``threads`` torch threads inside the block, then restore the previous count.

        Returns
        -------
        context manager
        """
        if self.threads is None:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)
