"""Reading tensors from files without running code from them."""

from __future__ import annotations

from pathlib import Path

import torch

SAFETENSORS_SUFFIX = ".safetensors"


def sniff_format(path: Path) -> str:
    """Return "safetensors", "zip" (torch.save), "pickle" or "unknown" from the first bytes.

    A safetensors file starts with its header's length (8 bytes, little-endian), then
    the header's ``{`` (which opens no pickle: pickle has no ``{`` opcode); it is
    recognised first, since its length may itself begin with a pickle's protocol bytes
    (``0x80``, then 2 to 5: a header of 1,152 bytes is ``80 04 00 ...``). Whether the
    length fits the file is the reader's check.
    """
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[8:9] == b"{":
        return "safetensors"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    return "unknown"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors, or from a torch file with ``weights_only``.

    ``torch.load(weights_only=True)`` uses PyTorch's restricted unpickler, which
    only rebuilds tensors and plain containers and refuses any other object, so
    no code from the file runs.
    """
    if sniff_format(path) == "safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"cannot read weights from {path}: not a safetensors file, and not a plain "
            f"PyTorch state dict ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state
