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
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write
from ._files import sniff_format
from .spec import ModelSpec
from .wrapper import SegmentationModel

FORMAT = "napari-seg-model"
FORMAT_VERSION = 1
METADATA_KEY = "napari_seg"
MODEL_PREFIX = "model."


class ModelFileError(ValueError):
    """A model file is missing, not a napari-seg model, corrupt or inconsistent."""


def package_versions() -> dict[str, str]:
    """Versions of the packages that define what a model file means."""
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
    """SHA-256 over names, dtypes, shapes and bytes of every tensor, in key order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(
    model: SegmentationModel,
    path: str | os.PathLike,
    *,
    provenance: Mapping[str, Any] | None = None,
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically (the old file survives a crash).

    Parameters
    ----------
    model : SegmentationModel
    path : path-like
        Destination; ``.safetensors`` is the conventional suffix.
    provenance : mapping, optional
        JSON-serialisable facts about how the weights were made.
    extra_tensors : mapping of str to Tensor, optional
        Additional tensors (keys must not start with ``"model."``).

    Returns
    -------
    pathlib.Path
        The written path.
    """
    from safetensors.torch import save

    path = Path(path)
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
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "tensors_sha256": tensors_digest(tensors),
    }
    data = save(tensors, metadata={METADATA_KEY: json.dumps(card, sort_keys=True)})
    with atomic_write(path) as handle:
        handle.write(data)
    return path


def _open_checked(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read card and tensors, raising ModelFileError for anything wrong."""
    from safetensors.torch import load

    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    kind = sniff_format(path)
    if kind in ("zip", "pickle"):
        raise ModelFileError(
            f"{path} is a pickle-based PyTorch file, not a napari-seg model file. It was "
            "refused unread: unpickling a file can run arbitrary code. Save models with "
            "napari-seg (safetensors format)."
        )
    if kind != "safetensors":
        raise ModelFileError(f"{path} is not a napari-seg model file (not safetensors)")
    raw = path.read_bytes()
    try:
        tensors = load(raw)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ModelFileError(f"{path} is corrupt or truncated ({len(raw)} bytes): {exc}") from exc
    header_len = int.from_bytes(raw[:8], "little")
    try:
        metadata = json.loads(raw[8 : 8 + header_len]).get("__metadata__") or {}
        card = json.loads(metadata[METADATA_KEY])
    except (KeyError, ValueError) as exc:
        raise ModelFileError(
            f"{path} is a safetensors file without a napari-seg model card "
            "(was it written by another program?)"
        ) from exc
    if card.get("format") != FORMAT:
        raise ModelFileError(f"{path}: model card format is {card.get('format')!r}, not {FORMAT!r}")
    if card.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer napari-seg (format version "
            f"{card['format_version']}); upgrade napari-seg to read it"
        )
    if tensors_digest(tensors) != card.get("tensors_sha256"):
        raise ModelFileError(f"{path} is corrupt: the tensors do not match their checksum")
    return card, tensors


def read_model_card(path: str | os.PathLike) -> dict[str, Any]:
    """Return the model card of a model file (validated like :func:`load_model`)."""
    card, _ = _open_checked(Path(path))
    return card


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> SegmentationModel:
    """Load a model file written by :func:`save_model`.

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
        If the file is missing, pickle-based, truncated, corrupt, or its weights
        do not match its spec.
    """
    from .registry import create_model

    path = Path(path)
    card, tensors = _open_checked(path)
    try:
        spec = ModelSpec.from_dict(card["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid model spec in the model card: {exc}") from exc
    model = create_model(spec)
    state = {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ModelFileError(
            f"{path}: weights do not match the {spec.architecture!r} model in its card: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}"
        )
    model.load_state_dict(state, strict=True)
    model.card = card
    model.extra_tensors = {k: v for k, v in tensors.items() if not k.startswith(MODEL_PREFIX)}
    return model.eval().to(device)
