"""Model files: safetensors weights plus a JSON model card, in one file.

Layout: a standard ``.safetensors`` file. Model weights are stored under
``model.<state-dict key>``; other tensors (e.g. optimizer state written by
training) under other prefixes. The header metadata holds one key,
``napari_seg``, whose value is the model card as JSON:

``format``, ``format_version``, ``spec`` (:class:`ModelSpec` as a dict, with
class names, colours and normalisation), ``provenance`` (how the weights were
made: initialisation, training run...), ``versions`` (package versions),
``created`` (UTC, ISO 8601) and ``tensors_sha256`` (a digest of every tensor,
so flipped bytes are detected).

Loading never unpickles anything: a pickle or ``torch.save`` file is refused
before it is parsed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write
from .._paths import user_path
from ..limits import MAX_HEADER_BYTES, MAX_TENSOR_NDIM, MAX_TENSORS, MIB, brief, one_line
from ._files import SAFETENSORS_SUFFIX, foreign_model_file, sniff_format
from .spec import ModelSpec
from .wrapper import SegmentationModel

FORMAT = "napari-seg-model"
FORMAT_VERSION = 1
METADATA_KEY = "napari_seg"
MODEL_PREFIX = "model."


class ModelFileError(ValueError):
    """A model file is missing, not a napari-seg model, corrupt or inconsistent."""


def package_versions() -> dict[str, str]:
    """Versions of the packages that define what a model file means.

    Returns
    -------
    dict of str to str
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "napari-seg",
        "torch",
        "torchvision",
        "segmentation-models-pytorch",
        "monai",
        "safetensors",
    ):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of every tensor, in key order.

    Parameters
    ----------
    tensors : mapping of str to torch.Tensor

    Returns
    -------
    str
        The hexadecimal digest.
    """
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


#: Suffixes of the files ``torch.load`` reads (pickles): a model file is
#: safetensors, and named so, never one of these.
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")

#: Suffixes of other model formats, which a model file named so would claim to be.
OTHER_FORMATS = {
    ".onnx": "ONNX",
    ".torchscript": "TorchScript",
    ".zip": "a zip archive (a bioimage.io package)",
    ".h5": "HDF5 (Keras)",
    ".hdf5": "HDF5 (Keras)",
    ".keras": "Keras",
    ".pb": "TensorFlow",
    ".tflite": "TensorFlow Lite",
}


def model_file_path(path: str | os.PathLike) -> Path:
    """The model file a name means: a bare name (``"nuclei"``) gets the
    ``.safetensors`` suffix that napari's reader and the file dialogs look for, as
    ``numpy.save`` adds ``.npy`` and the docks' "save as" fields add it; any other
    name is kept as given (a leading ``~`` as the home folder, :func:`user_path`).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    pathlib.Path
    """
    path = user_path(path)
    if path.suffix or not path.name or path.is_dir():  # a folder is named as such later
        return path
    return path.with_name(path.name + SAFETENSORS_SUFFIX)


def check_model_target(
    path: str | os.PathLike, *, overwrite: bool = False, inputs: Iterable = ()
) -> Path:
    """Check that a model file may be written to ``path``, before any work is done:
    :func:`napari_seg._atomic.check_target`, and a name that does not end as the
    files ``torch.load`` reads (``model.pt``) or another format's (``model.onnx``),
    since a model file is safetensors.

    Parameters
    ----------
    path : path-like
    overwrite : bool
        Whether an existing file may be replaced.
    inputs : iterable of path-like
        Files the job reads, never replaced.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        For a pickle's or another format's suffix (naming the file to write
        instead), or ``path`` among ``inputs``.
    OutputExistsError, IsADirectoryError, FileNotFoundError
        As :func:`napari_seg._atomic.check_target`.
    """
    from .._atomic import check_target

    path = model_file_path(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES or suffix in OTHER_FORMATS:
        what = (
            "which torch.load does not read"
            if suffix in PICKLE_SUFFIXES
            else f"not {OTHER_FORMATS[suffix]}"
        )
        raise ValueError(
            f"{path.name}: a model file is written as safetensors, {what}; "
            f"name it {path.stem}{SAFETENSORS_SUFFIX}"
        )
    return check_target(path, overwrite=overwrite, inputs=inputs)


def save_model(
    model: SegmentationModel,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    provenance: Mapping[str, Any] | None = None,
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically (the old file survives a crash).

    Parameters
    ----------
    model : SegmentationModel
    path : path-like
        Destination; ``.safetensors`` is the conventional suffix (added to a bare
        name: :func:`model_file_path`), and the suffixes of pickles (``.pt``,
        ``.pth``...) and of other model formats (``.onnx``, ``.zip``...) are refused.
    overwrite : bool
        Replace ``path`` if it exists; without it an existing file is an error.
    provenance : mapping, optional
        JSON-serialisable facts about how the weights were made.
    extra_tensors : mapping of str to Tensor, optional
        Additional tensors (keys must not start with ``"model."``).

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        For an ensemble (:func:`napari_seg.models.ensemble`): save its models; for
        a pickle's suffix (:func:`check_model_target`).
    """
    from safetensors.torch import save

    from ._ensemble import MeanOfModels
    from .wrapper import check_model

    check_model(model, "save_model(model, path)", other=path)
    if isinstance(model.net, MeanOfModels):
        raise ValueError(
            "an ensemble is not saved as one model file: save each of its models, and "
            "predict with all of them (napari-seg predict --model A --model B)"
        )
    path = check_model_target(path, overwrite=overwrite)
    tensors = {
        MODEL_PREFIX + k: v.detach().cpu().contiguous().clone()
        for k, v in model.state_dict().items()
    }
    for key, value in (extra_tensors or {}).items():
        if key.startswith(MODEL_PREFIX):
            raise ValueError(f"extra tensor names must not start with {MODEL_PREFIX!r}: {key}")
        tensors[key] = value.detach().cpu().contiguous().clone()
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": model.spec.to_dict(),
        "provenance": dict(provenance or {}),
        "versions": package_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tensors_sha256": tensors_digest(tensors),
    }
    data = save(tensors, metadata={METADATA_KEY: json.dumps(card, sort_keys=True)})
    with atomic_write(path, overwrite=overwrite) as handle:
        handle.write(data)
    return path


@dataclass(frozen=True)
class _Header:
    """A model file's tensor table and model card, read without touching the tensors."""

    path: Path
    card: dict[str, Any]
    table: dict[str, tuple[str, tuple[int, ...]]]  # name -> (dtype, shape)


def _read_header(path: Path) -> _Header:
    """Check the file's kind and header against its size; parse the card (bounded)."""
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file")
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    kind = sniff_format(path)
    if kind != "safetensors":
        raise ModelFileError(foreign_model_file(path, kind))
    size = path.stat().st_size
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise ModelFileError(
                f"{path} is corrupt or truncated ({size} bytes): its header declares "
                f"{length} bytes (at most {MAX_HEADER_BYTES} and the file's size are allowed)"
            )
        raw = handle.read(length)
    header = _json(raw, path, "header")
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} is corrupt: its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    table = _tensor_table(header, size - 8 - length, path)
    if not isinstance(metadata, dict) or METADATA_KEY not in metadata:
        raise ModelFileError(
            f"{path} is a safetensors file without a napari-seg model card "
            "(was it written by another program?)"
        )
    card = _json(metadata[METADATA_KEY], path, "model card")
    _check_card(card, path)
    return _Header(path, card, table)


def _json(raw, path: Path, what: str):
    if not isinstance(raw, (str, bytes)):
        raise ModelFileError(f"{path}: its {what} is not JSON text")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is corrupt: its {what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: its {what} nests too deeply to be a model card") from None


def _tensor_table(header: dict, data_size: int, path: Path) -> dict[str, tuple[str, tuple]]:
    """``name -> (dtype, shape)``, every entry checked against the data's size."""
    if len(header) > MAX_TENSORS:
        raise ModelFileError(f"{path} lists {len(header)} tensors (at most {MAX_TENSORS})")
    table = {}
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            itemsize = _ITEMSIZE[dtype]
            ok = (
                isinstance(shape, list)
                and len(shape) <= MAX_TENSOR_NDIM
                and all(_is_count(n) for n in shape)
                and _is_count(begin)
                and _is_count(end)
                and begin <= end <= data_size
                and end - begin == math.prod(shape) * itemsize
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ModelFileError(
                f"{path} is corrupt or truncated: tensor {brief(name)} is described as "
                f"{brief(entry)}, which does not fit the file's {data_size} data bytes"
            )
        table[name] = (dtype, tuple(shape))
    return table


def _check_card(card: Any, path: Path) -> None:
    if not isinstance(card, dict):
        raise ModelFileError(
            f"{path}: the model card is a JSON {type(card).__name__}, not an object"
        )
    if card.get("format") != FORMAT:
        raise ModelFileError(
            f"{path}: model card format is {brief(card.get('format'))}, not {FORMAT!r}"
        )
    version = card.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(
            f"{path}: model card format_version must be an integer, got {brief(version)}"
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer napari-seg (format version "
            f"{version}); upgrade napari-seg to read it"
        )
    if not isinstance(card.get("spec"), dict):
        raise ModelFileError(f"{path}: the model card has no spec object")
    for key in ("provenance", "versions"):
        if not isinstance(card.get(key, {}), dict):
            raise ModelFileError(f"{path}: the model card's {key} is not an object")


def _spec(header: _Header) -> ModelSpec:
    try:
        return ModelSpec.from_dict(header.card["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{header.path}: invalid model spec in the model card: {one_line(exc, 500)}"
        ) from None


def _check_weights_fit(header: _Header, expected: Mapping[str, torch.Tensor], spec) -> None:
    """The file's model tensors are exactly the network's, by name, shape and dtype;
    other tensors (optimizer state) are at most a few times the network's size."""
    state = {
        k[len(MODEL_PREFIX) :]: v for k, v in header.table.items() if k.startswith(MODEL_PREFIX)
    }
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        k
        for k in set(expected) & set(state)
        if tuple(expected[k].shape) != state[k][1] or _DTYPE_NAME[expected[k].dtype] != state[k][0]
    )
    if missing or unexpected or wrong:
        raise ModelFileError(
            f"{header.path}: weights do not match the {spec.architecture!r} model in its card: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}"
        )
    model_bytes = sum(_nbytes(*v) for k, v in header.table.items() if k.startswith(MODEL_PREFIX))
    extra_bytes = sum(
        _nbytes(*v) for k, v in header.table.items() if not k.startswith(MODEL_PREFIX)
    )
    if extra_bytes > EXTRA_TENSORS_FACTOR * model_bytes + MIB:
        raise ModelFileError(
            f"{header.path} holds {extra_bytes} bytes of tensors beside the model's "
            f"{model_bytes}; a training checkpoint holds at most {EXTRA_TENSORS_FACTOR}x"
        )


def _read_tensors(header: _Header) -> dict[str, torch.Tensor]:
    """Every tensor, read one at a time from the memory-mapped file; checksum and finiteness
    of the model's weights checked."""
    from safetensors import SafetensorError, safe_open

    tensors = {}
    try:
        with safe_open(str(header.path), framework="pt", device="cpu") as handle:
            for name in sorted(header.table):
                tensors[name] = handle.get_tensor(name)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{header.path} is corrupt or truncated ({header.path.stat().st_size} bytes): {exc}"
        ) from None
    if tensors_digest(tensors) != header.card.get("tensors_sha256"):
        raise ModelFileError(f"{header.path} is corrupt: the tensors do not match their checksum")
    for name, tensor in tensors.items():
        if not name.startswith(MODEL_PREFIX) or not tensor.is_floating_point():
            continue
        if not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(
                f"{header.path}: weight {name[len(MODEL_PREFIX) :]} holds NaN or infinite "
                "values; the model would predict nonsense (was training unstable?)"
            )
    return tensors


def read_model_card(path: str | os.PathLike) -> dict[str, Any]:
    """Return the model card of a model file, validated like :func:`load_model`.

    The header, the card and its spec are checked, the weights' names and shapes
    are compared with the architecture the card names (built on torch's meta
    device, which allocates nothing), and the tensors' checksum and finiteness
    are verified reading one tensor at a time.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict
        The card: ``format``, ``format_version``, ``spec``, ``provenance``,
        ``versions``, ``created``, ``tensors_sha256``.

    Raises
    ------
    ModelFileError
        As :func:`load_model`.
    """
    from .registry import create_model

    header = _read_header(user_path(path))
    spec = _spec(header)
    with torch.device("meta"):
        expected = create_model(spec).state_dict()
    _check_weights_fit(header, expected, spec)
    _read_tensors(header)
    return header.card


def read_model_spec(path: str | os.PathLike) -> ModelSpec:
    """The spec of a model file, from its header alone (no tensor is read).

    For settings decided before a model is loaded (a fine-tuning run's channels,
    dimensionality, stack axes): the header and the card are checked as by
    :func:`load_model`, which verifies the weights when the model is loaded.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelFileError
        For a file that is not a napari-seg model file, or a corrupt header or spec.
    """
    return _spec(_read_header(user_path(path)))


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> SegmentationModel:
    """Load a model file written by :func:`save_model`.

    Nothing is allocated from the file before it has been checked: the header's
    declared length against the file's size, the card and its spec against
    :mod:`napari_seg.limits`, the tensors' names, shapes and dtypes against the
    network the spec describes. Tensors are then read one at a time from the
    memory-mapped file, and their checksum and finiteness verified.

    Parameters
    ----------
    path : path-like
    device : str or torch.device
        Where to put the model (see :func:`napari_seg.resolve_device`).

    Returns
    -------
    SegmentationModel
        In eval mode, with ``model.card`` holding the model card.

    Raises
    ------
    ModelFileError
        If the file is missing, a folder, pickle-based, truncated, corrupt, holds
        non-finite weights, or its weights do not match its spec.
    DeviceError
        If ``device`` is not understood or not available here (``"auto"`` is always
        available).
    """
    from .._device import resolve_device
    from .registry import create_model

    target = resolve_device(device)  # an unknown or absent device fails before the file is read
    header = _read_header(user_path(path))
    spec = _spec(header)
    model = create_model(spec)
    _check_weights_fit(header, model.state_dict(), spec)
    tensors = _read_tensors(header)
    state = {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    model.load_state_dict(state, strict=True)
    check = getattr(model.net, "check_loaded", None)  # networks whose tensors index others
    if check is not None:
        try:
            check()
        except ValueError as exc:
            raise ModelFileError(f"{path}: {exc}") from None
    model.card = header.card
    model.extra_tensors = {k: v for k, v in tensors.items() if not k.startswith(MODEL_PREFIX)}
    return model.eval().to(target)


#: Bytes per element of the safetensors dtypes napari-seg writes or may meet.
_ITEMSIZE = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
}
_DTYPE_NAME = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
#: Non-model tensors (optimizer moments, RNG state) may take this many times the weights.
EXTRA_TENSORS_FACTOR = 4


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    return math.prod(shape) * _ITEMSIZE[dtype]
