"""Reading tensors from files without running code from them."""

from __future__ import annotations

from pathlib import Path

import torch

from ..limits import MAX_ZIP_ENTRIES

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


_NOT_OURS = "not a napari-seg model file"
_UNREAD = "It was refused unread: {why}. Save models with napari-seg (safetensors format)."


def foreign_model_file(path: Path, kind: str) -> str:
    """Why a file that is not a napari-seg model file is refused, naming what it holds
    by its first bytes (``kind``, from :func:`sniff_format`), its suffix and, for a
    zip, its member names (nothing in it is unpickled or run).

    Parameters
    ----------
    path : Path
    kind : str
        :func:`sniff_format`'s answer, not ``"safetensors"``.

    Returns
    -------
    str
        A sentence that begins with the file's path.
    """
    what = kind  # "pickle" or "unknown" by the first bytes
    if kind == "zip":
        what = _zip_kind(path)
    elif kind == "unknown" and path.suffix.lower() == ".onnx":
        what = "onnx"
    if what == "pickle":
        why = "unpickling a file can run arbitrary code"
        return f"{path} is a pickle-based PyTorch file, {_NOT_OURS}. {_UNREAD.format(why=why)}"
    if what == "torchscript":
        why = "loading a TorchScript model runs the code it holds"
        return f"{path} is a TorchScript model, {_NOT_OURS}. {_UNREAD.format(why=why)}"
    named = {"bioimageio": "a bioimage.io model package", "onnx": "an ONNX model",
             "zip": "a zip archive"}  # fmt: skip
    if what in named:
        return (
            f"{path} is {named[what]}, {_NOT_OURS}: napari-seg opens only its own "
            "(safetensors with a napari-seg model card, made by 'napari-seg create', "
            "'napari-seg train' or the Model dock)"
        )
    return f"{path} is {_NOT_OURS} (not safetensors)"


def _zip_kind(path: Path) -> str:
    """What a zip holds by its member names: ``"bioimageio"`` (an ``rdf.yaml`` or
    ``bioimageio.yaml``), ``"torchscript"`` (``torch.jit.save``: a ``code/`` folder or
    ``constants.pkl``), ``"pickle"`` (``torch.save``: ``data.pkl``) or ``"zip"``."""
    import zipfile

    entries = _zip_entries(path)
    if entries is None:
        return "pickle"  # what a broken torch.save archive is taken for: refused unread
    if entries > MAX_ZIP_ENTRIES:  # its directory alone could fill the memory: unread
        return "zip"
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name.rstrip("/") for name in archive.namelist()]
    except (zipfile.BadZipFile, OSError, ValueError):
        return "pickle"
    leaves = {name.rsplit("/", 1)[-1] for name in names}
    if leaves & {"rdf.yaml", "bioimageio.yaml"}:
        return "bioimageio"
    if "constants.pkl" in leaves or any("/code/" in f"/{name}/" for name in names):
        return "torchscript"
    return "pickle" if "data.pkl" in leaves else "zip"


def _zip_entries(path: Path) -> int | None:
    """How many entries a zip's end record states (read from the file's last 64 KiB,
    before ``zipfile`` reads the directory); None without one. A ZIP64 archive's
    count (0xFFFF in the end record) reads as more than any bound."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - (1 << 16) - 22))
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    count = int.from_bytes(tail[at + 10 : at + 12], "little")
    return 1 << 32 if count == 0xFFFF else count


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
