"""Choosing and describing the compute device (CUDA, Apple MPS, CPU)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")
# torch writes the one CPU and the one Apple GPU as "cpu:0" and "mps:0" too
# (``str(tensor.device)`` after ``.to("cpu:0")``): the same devices.
_ONE_DEVICE_RE = re.compile(r"^(cpu|mps)(?::(\d+))?$")
DEVICE_CHOICES = '"auto", "cpu", "cuda", "cuda:N" or "mps"'


class DeviceError(ValueError):
    """A requested device does not exist on this machine."""


@dataclass(frozen=True)
class DeviceInfo:
    """A device that exists here, for dropdowns and logs."""

    id: str
    description: str


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a ``torch.device`` that exists here.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` (CUDA if present, then MPS, then CPU), ``"cpu"``, ``"cuda"``
        (the current CUDA device), ``"cuda:N"`` or ``"mps"`` (``"cpu:0"`` and
        ``"mps:0"``, as torch also writes them, are the same devices).

    Returns
    -------
    torch.device

    Raises
    ------
    TypeError
        If ``device`` is not a string (or a torch.device).
    DeviceError
        If the name is not understood or the device is not available; the
        message says what is available.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as {DEVICE_CHOICES}, got {device!r}")
    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    single = _ONE_DEVICE_RE.match(name)
    if single is not None:
        kind, index = single.groups()
        if index is not None and int(index) != 0:
            raise DeviceError(f"there is one {kind} device, {kind} (or {kind}:0); got {device!r}")
        if kind == "mps" and not _mps_available():
            raise DeviceError(f"MPS (Apple GPU) is not available here; available: {_available()}")
        return torch.device(kind)
    match = _CUDA_RE.match(name)
    if match is None:
        raise DeviceError(f"unknown device {device!r}; expected {DEVICE_CHOICES}")
    return _cuda_device(None if match.group(1) is None else int(match.group(1)))


def _cuda_device(index: int | None) -> torch.device:
    import torch

    if not torch.cuda.is_available():
        why = (
            "this PyTorch build has no CUDA support"
            if torch.version.cuda is None
            else ("no CUDA GPU is visible (driver missing, or CUDA_VISIBLE_DEVICES hides it)")
        )
        raise DeviceError(f"CUDA was requested but {why}; available: {_available()}")
    index = torch.cuda.current_device() if index is None else index
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"CUDA device {index} does not exist; this machine has {count} "
            f"(cuda:0 to cuda:{count - 1})"
        )
    return torch.device("cuda", index)


def describe_device(device: str | torch.device, threads: int | None = None) -> str:
    """A human-readable description: name and total/free memory.

    Parameters
    ----------
    device : str or torch.device
        A resolved device, or a name for :func:`resolve_device`.
    threads : int, optional
        The torch CPU threads a job will use there (default: torch's current count).

    Returns
    -------
    str

    Examples
    --------
    >>> describe_device("cpu")  # doctest: +SKIP
    'CPU: AMD EPYC, 2 threads, 23.5 GiB RAM (21.0 GiB free)'
    """
    import torch

    if not isinstance(device, torch.device):
        device = resolve_device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        return f"{device}: {props.name}, {_gib(total)} GiB ({_gib(free)} GiB free)"
    if device.type == "mps":
        return "mps: Apple GPU (unified memory)"
    total, free = _host_memory()
    memory = f", {_gib(total)} GiB RAM ({_gib(free)} GiB free)" if total else ""
    threads = threads or torch.get_num_threads()
    return f"cpu: {_cpu_name()}, {threads} thread{'s' * (threads != 1)}{memory}"


def list_devices() -> list[DeviceInfo]:
    """Every device usable here, best first, with descriptions ("auto" not included).

    Returns
    -------
    list of DeviceInfo
    """
    import torch

    ids = (
        [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    if _mps_available():
        ids.append("mps")
    ids.append("cpu")
    return [DeviceInfo(i, describe_device(i)) for i in ids]


def release_memory(device: str | torch.device, *, collect: bool = False) -> None:
    """Return the memory cached by torch on an accelerator to the driver.

    Parameters
    ----------
    device : str or torch.device
        The device whose cache is emptied (nothing happens for the CPU).
    collect : bool
        Run Python's garbage collector first, for tensors that only reference
        cycles still hold (the frames of an out-of-memory error's traceback).
        A full collection holds the interpreter for a noticeable time in a
        process with many objects (about 0.3 s with MONAI imported, longer in
        napari, where it freezes the window), so only where it frees something.
    """
    import torch

    kind = getattr(device, "type", str(device))
    if kind == "cpu":
        return
    if collect:
        import gc

        gc.collect()
    if kind.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif kind == "mps" and _mps_available():
        torch.mps.empty_cache()


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _available() -> str:
    return ", ".join(d.id for d in list_devices())


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f}"


def _host_memory() -> tuple[int, int]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return vm.total, vm.available
    except ImportError:
        try:
            pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            avail = os.sysconf("SC_AVPHYS_PAGES")
            return pages * size, avail * size
        except (ValueError, OSError, AttributeError):
            return 0, 0


def _cpu_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"
