"""Mean-field CRF refinement of class probabilities, in torch (CPU or GPU).

A fully connected CRF (Kraehenbuehl & Koltun, 2011) restricted to a local
window, as in ConvCRF (Teichmann & Cipolla, 2018): each pixel exchanges
messages with the pixels within ``radius``, weighted by a Gaussian kernel on
position and a bilateral kernel on position and intensity; Potts
compatibility. Written here because the dense-CRF C++ binding is unmaintained
and no maintained library offers a torch CRF for 2D and 3D images.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CRFProgress:
    """One mean-field iteration done."""

    iteration: int
    iterations: int


@dataclass(frozen=True)
class CRFResult:
    labels: np.ndarray
    probabilities: np.ndarray
    seconds: float


def _check(probabilities, image, channel_axis):
    probabilities = np.asarray(probabilities)
    if probabilities.ndim not in (3, 4):
        raise ValueError(
            "probabilities must be (classes, rows, cols) or (classes, planes, rows, cols), "
            f"got shape {probabilities.shape}"
        )
    if not np.issubdtype(probabilities.dtype, np.floating):
        raise TypeError(f"probabilities must be floats, got dtype {probabilities.dtype}")
    if probabilities.shape[0] < 2:
        raise ValueError(f"probabilities needs at least 2 classes, got {probabilities.shape[0]}")
    image = np.asarray(image, dtype=np.float32)
    image = np.moveaxis(image, channel_axis, 0) if channel_axis is not None else image[np.newaxis]
    if image.shape[1:] != probabilities.shape[1:]:
        raise ValueError(
            f"image must cover the probabilities' pixels {probabilities.shape[1:]}, got "
            f"{image.shape[1:]} (channels moved first)"
        )
    return probabilities, image


def _normalise(image: np.ndarray) -> np.ndarray:
    """Each channel to about [0, 1] between its 1st and 99th percentiles."""
    flat = image.reshape(len(image), -1)
    low, high = np.percentile(flat, [1, 99], axis=1)
    scale = np.where(high > low, high - low, 1.0)
    shape = (-1,) + (1,) * (image.ndim - 1)
    return (image - low.reshape(shape)) / scale.reshape(shape)


# Kernel weights are kept between iterations when they take at most this much memory.
CACHE_BYTES = 1 << 30


def iter_crf(
    probabilities,
    image,
    *,
    iterations: int = 5,
    radius: int = 5,
    theta_alpha: float = 3.0,
    theta_beta: float = 0.1,
    theta_gamma: float = 1.0,
    w_bilateral: float = 4.0,
    w_gaussian: float = 2.0,
    channel_axis: int | None = None,
    device: str = "auto",
) -> Generator[CRFProgress, None, CRFResult]:
    """Generator form of :func:`crf_refine`: yields one :class:`CRFProgress` per iteration."""
    import torch

    from .._device import resolve_device

    probabilities, image = _check(probabilities, image, channel_axis)
    for name, value in (("iterations", iterations), ("radius", radius)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (
        ("theta_alpha", theta_alpha),
        ("theta_beta", theta_beta),
        ("theta_gamma", theta_gamma),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    start = time.perf_counter()
    dev = resolve_device(device)
    with torch.no_grad():
        eps = 1e-6
        logp = torch.from_numpy(np.log(np.clip(probabilities, eps, 1.0)).astype(np.float32))
        logp = logp.to(dev)
        features = torch.from_numpy(_normalise(image).astype(np.float32)).to(dev)
        spatial = probabilities.shape[1:]
        offsets = _offsets(len(spatial), radius)
        kernel = _Kernel(
            features, offsets, radius, theta_alpha, theta_beta, theta_gamma, w_bilateral, w_gaussian
        )
        weights = list(kernel) if len(offsets) * q_bytes(probabilities) <= CACHE_BYTES else kernel
        q = torch.softmax(logp, dim=0)
        for it in range(iterations):
            message = _message(q, offsets, weights, radius, spatial)
            q = torch.softmax(logp + message, dim=0)
            yield CRFProgress(it + 1, iterations)
        out = q.cpu().numpy()
    labels = out.argmax(axis=0).astype(np.int32)
    return CRFResult(labels=labels, probabilities=out, seconds=time.perf_counter() - start)


def _offsets(ndim: int, radius: int) -> list[tuple[int, ...]]:
    """Half of the window's offsets (the other half are their negatives)."""
    window = range(-radius, radius + 1)
    offsets = [
        d for d in itertools.product(window, repeat=ndim) if sum(x * x for x in d) <= radius**2
    ]
    return [d for d in offsets if d > (0,) * ndim]


def _shifted(tensor, offset, radius: int, spatial):
    """``tensor`` (C, *padded) read at ``position + offset`` for every unpadded position."""
    index = (
        slice(None),
        *tuple(slice(radius + d, radius + d + n) for d, n in zip(offset, spatial, strict=True)),
    )
    return tensor[index]


def q_bytes(probabilities: np.ndarray) -> int:
    """Bytes of one float32 map of the probabilities' pixels."""
    return 4 * int(np.prod(probabilities.shape[1:]))


class _Kernel:
    """Iterating gives the kernel weight between each pixel and its neighbour at each
    offset (0 where the neighbour is outside the array; zero-padded by ``radius``),
    computed afresh each time."""

    def __init__(
        self,
        features,
        offsets,
        radius,
        theta_alpha,
        theta_beta,
        theta_gamma,
        w_bilateral,
        w_gaussian,
    ):
        self.features, self.offsets, self.radius = features, offsets, radius
        self.thetas = (theta_alpha, theta_beta, theta_gamma)
        self.w = (w_bilateral, w_gaussian)

    def __iter__(self):
        import torch
        import torch.nn.functional as F

        features, radius = self.features, self.radius
        spatial = features.shape[1:]
        theta_alpha, theta_beta, theta_gamma = self.thetas
        w_bilateral, w_gaussian = self.w
        pad = (radius, radius) * len(spatial)
        padded = F.pad(features, pad)
        inside = F.pad(torch.ones((1, *spatial), device=features.device), pad)
        for d in self.offsets:
            dist2 = float(sum(x * x for x in d))
            diff = ((_shifted(padded, d, radius, spatial) - features) ** 2).sum(dim=0)
            bilateral = torch.exp(-dist2 / (2 * theta_alpha**2) - diff / (2 * theta_beta**2))
            gaussian = float(np.exp(-dist2 / (2 * theta_gamma**2)))
            valid = _shifted(inside, d, radius, spatial)[0]
            # Padded, so that _message reads it from both ends of the pair without copying.
            yield F.pad(((w_bilateral * bilateral + w_gaussian * gaussian) * valid)[None], pad)


def _message(q, offsets, weights, radius, spatial):
    """Sum over neighbours j of k(i, j) * q_j, both directions of every offset."""
    import torch
    import torch.nn.functional as F

    pad = (radius, radius) * len(spatial)
    padded = F.pad(q, pad)
    message = torch.zeros_like(q)
    here = (0,) * len(spatial)
    for d, w in zip(offsets, weights, strict=True):
        message += _shifted(w, here, radius, spatial) * _shifted(padded, d, radius, spatial)
        # The pixel at -d sees this pixel with the same weight, read from its side.
        back = tuple(-x for x in d)
        message += _shifted(w, back, radius, spatial) * _shifted(padded, back, radius, spatial)
    return message


def crf_refine(probabilities, image, **kwargs) -> np.ndarray:
    """Refine class probabilities with a mean-field CRF; returns labels (argmax).

    Parameters
    ----------
    probabilities : (C, M, N[, P]) array of float
        Per-class probabilities (class first), e.g. Segment's probability output.
    image : (M, N[, P]) or multichannel array
        The image the probabilities describe; intensities are scaled to about
        [0, 1] per channel (1st to 99th percentile) before the bilateral kernel.
    iterations : int, optional
        Mean-field iterations (default 5).
    radius : int, optional
        Window radius in pixels: messages reach this far (default 5).
    theta_alpha, theta_beta : float, optional
        Bilateral kernel widths: in pixels, and in normalised intensity.
    theta_gamma : float, optional
        Gaussian (smoothness) kernel width in pixels.
    w_bilateral, w_gaussian : float, optional
        Kernel weights (Potts compatibility).
    channel_axis : int, optional
        Axis of ``image`` holding channels, if any.
    device : str, optional
        "auto", "cpu", "cuda", "cuda:N" or "mps".

    Returns
    -------
    ndarray of int32
        The most probable class of each pixel after refinement.
    """
    from .._generators import drain

    return drain(iter_crf(probabilities, image, **kwargs)).labels
