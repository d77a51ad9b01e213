"""Pretrained encoder weights: local cache, download when online, or a local file.

ImageNet weights come from where their libraries publish them (the Hugging Face
hub for segmentation-models-pytorch encoders, download.pytorch.org for
torchvision backbones) and are cached where those libraries cache them, so a
file already downloaded by smp or torchvision is reused. Before downloading,
the host is probed with a short TCP connection so that an offline machine
fails in about two seconds with a message saying what to do, instead of
retrying for half a minute.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import nn

from .._paths import user_path
from ._files import read_state_dict

if TYPE_CHECKING:
    from .wrapper import SegmentationModel

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0


class WeightsUnavailableError(RuntimeError):
    """Requested pretrained weights could not be found locally or downloaded."""


def load_encoder_weights(model: SegmentationModel, weights: str | os.PathLike[str]) -> None:
    """Load pretrained weights into ``model``'s encoder in place.

    Parameters
    ----------
    model : SegmentationModel
    weights : "imagenet" or path
        ``"imagenet"`` uses the cached file or downloads it; any other value is
        a path to a state dict (``.safetensors``, or ``.pth``/``.pt``/``.bin``
        read with ``torch.load(weights_only=True)``).

    Raises
    ------
    ValueError
        If the architecture has no pretrainable encoder, or the file does not
        match the encoder.
    WeightsUnavailableError
        If ImageNet weights are neither cached nor downloadable.
    """
    spec = model.spec
    encoder = getattr(model.net, "encoder", None)
    if encoder is None or spec.encoder is None:
        raise ValueError(
            f"{spec.network} has no pretrained encoder: build it without encoder weights "
            "(--encoder-weights none, encoder_weights=None in Python)"
        )
    if str(weights).lower() == "imagenet":
        state = _imagenet_state_dict(spec.architecture, spec.encoder)
        source = f"ImageNet ({spec.encoder})"
    else:
        path = user_path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"encoder weights file not found: {path}")
        state = read_state_dict(path)
        source = str(path)
    _load_into(encoder, state, source=source)
    logger.info("loaded encoder weights from %s", source)


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a first-layer kernel trained on RGB to ``in_channels`` inputs.

    One channel gets the sum over RGB (a gray image then gives the response an
    RGB image of equal channels would give); more channels cycle through R, G, B
    and are scaled by ``3 / in_channels`` to keep the activation scale.

    Parameters
    ----------
    weight : torch.Tensor
        ``(out, 3, kh, kw)``.
    in_channels : int

    Returns
    -------
    torch.Tensor
        ``(out, in_channels, kh, kw)``.
    """
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    index = torch.arange(in_channels) % weight.shape[1]
    return weight[:, index] * (weight.shape[1] / in_channels)


def _load_into(encoder: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    target = encoder.state_dict()
    # Drop classifier weights of full ImageNet models and common key prefixes.
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("encoder.", "backbone.", "module."):
            if key.startswith(prefix) and key[len(prefix) :] in target:
                key = key[len(prefix) :]
        if key.startswith(("fc.", "classifier.", "_fc.")) and key not in target:
            continue
        cleaned[key] = value
    missing = sorted(set(target) - set(cleaned))
    unexpected = sorted(set(cleaned) - set(target))
    if missing or unexpected:
        raise ValueError(
            f"encoder weights from {source} do not match the encoder: "
            f"{len(missing)} missing key(s) {missing[:5]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:5]}"
        )
    for key, value in cleaned.items():
        want = target[key].shape
        if value.shape != want:
            if value.ndim == 4 and value.shape[0] == want[0] and value.shape[2:] == want[2:]:
                cleaned[key] = adapt_first_conv(value, want[1])
            else:
                raise ValueError(
                    f"encoder weights from {source}: {key!r} has shape {tuple(value.shape)}, "
                    f"the encoder needs {tuple(want)}"
                )
    encoder.load_state_dict(cleaned, strict=True)


def _imagenet_state_dict(architecture: str, encoder: str) -> dict[str, torch.Tensor]:
    if architecture == "fcn":
        return _torchvision_imagenet(encoder)
    return _smp_imagenet(encoder)


def _smp_imagenet(encoder: str) -> dict[str, torch.Tensor]:
    from huggingface_hub import constants, hf_hub_download
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders[encoder]["pretrained_settings"].get("imagenet")
    if settings is None:
        raise WeightsUnavailableError(f"encoder {encoder!r} has no ImageNet weights")
    repo, revision = settings["repo_id"], settings["revision"]
    kwargs = {"repo_id": repo, "filename": "model.safetensors", "revision": revision}
    try:
        path = hf_hub_download(**kwargs, local_files_only=True)
    except Exception:  # not cached: download below
        _require_online(constants.ENDPOINT, what=f"ImageNet weights for {encoder!r}")
        try:
            path = hf_hub_download(**kwargs)
        except Exception as exc:
            raise WeightsUnavailableError(
                f"downloading ImageNet weights for {encoder!r} from {repo} failed: {exc}. "
                + _ADVICE
            ) from exc
    return read_state_dict(Path(path))


def _torchvision_imagenet(encoder: str) -> dict[str, torch.Tensor]:
    from torchvision.models import ResNet50_Weights, ResNet101_Weights

    url = {
        "resnet50": ResNet50_Weights.IMAGENET1K_V1.url,
        "resnet101": ResNet101_Weights.IMAGENET1K_V1.url,
    }[encoder]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if cached.is_file():
        return read_state_dict(cached)
    _require_online(url, what=f"ImageNet weights for {encoder!r}")
    try:  # downloads into the cache and returns the state dict read from it
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", check_hash=True, weights_only=True
        )
    except Exception as exc:
        raise WeightsUnavailableError(
            f"downloading ImageNet weights for {encoder!r} from {url} failed: {exc}. " + _ADVICE
        ) from exc


_ADVICE = (
    "Connect to the internet once to download them into the cache, or download the "
    "weights file elsewhere and pass its path as the encoder weights, or use random "
    "initialisation (encoder weights 'none')."
)


def _require_online(url: str, *, what: str) -> None:
    """Fail within CONNECT_TIMEOUT_S if the weights' host cannot be reached."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise WeightsUnavailableError(
            f"{what} are not in the local cache and HF_HUB_OFFLINE is set. " + _ADVICE
        )
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise WeightsUnavailableError(
            f"{what} are not in the local cache and {host} cannot be reached "
            f"(offline? {exc}). " + _ADVICE
        ) from exc
