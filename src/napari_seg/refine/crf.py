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
from typing import Any

import numpy as np

from .._types import ArrayLike
from ..limits import MAX_CRF_ITERATIONS, MAX_CRF_RADIUS, brief
from ._checks import class_last_hint


@dataclass(frozen=True)
class CRFProgress:
    """One mean-field iteration of one tile done."""

    iteration: int
    iterations: int
    tile: int = 1
    tiles: int = 1

    @property
    def fraction(self) -> float:
        """Fraction of the whole job done."""
        return ((self.tile - 1) * self.iterations + self.iteration) / (self.tiles * self.iterations)


@dataclass(frozen=True)
class CRFResult:
    labels: np.ndarray
    probabilities: np.ndarray
    seconds: float


def _check(
    probabilities: ArrayLike, image: ArrayLike, channel_axis: int | None
) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probabilities)
    if probs.ndim not in (3, 4):
        raise ValueError(
            "probabilities must be (classes, rows, cols) or (classes, planes, rows, cols), "
            f"got shape {probs.shape}"
        )
    if not np.issubdtype(probs.dtype, np.floating):
        raise TypeError(f"probabilities must be floats, got dtype {probs.dtype}")
    if probs.shape[0] < 2:
        raise ValueError(f"probabilities needs at least 2 classes, got {probs.shape[0]}")
    img = np.asarray(image, dtype=np.float32)
    img = np.moveaxis(img, channel_axis, 0) if channel_axis is not None else img[np.newaxis]
    if img.shape[1:] != probs.shape[1:]:
        hint = class_last_hint(probs.shape, img.shape[1:]) or " (channels moved first)"
        raise ValueError(
            f"image must cover the probabilities' pixels {probs.shape[1:]}, got "
            f"{img.shape[1:]}{hint}"
        )
    return probs, img


def _normalise(image: np.ndarray) -> np.ndarray:
    """Each channel to about [0, 1] between its 1st and 99th percentiles."""
    flat = image.reshape(len(image), -1)
    low, high = np.percentile(flat, [1, 99], axis=1)
    scale = np.where(high > low, high - low, 1.0)
    shape = (-1,) + (1,) * (image.ndim - 1)
    return (image - low.reshape(shape)) / scale.reshape(shape)


# Kernel weights are kept between iterations when they take at most this much
# memory; larger images are cut into tiles whose weights fit.
CACHE_BYTES = 1 << 30
# On the CPU, 2D images are refined in tiles of at most this many pixels: faster
# than one piece for large images (bench/refine.py: 2048x2048 in 1.44 s in 9 tiles
# against 3.05 s in one piece). Not in 3D, where the margin costs more (a
# 32x256x256 stack, radius 2: 2.9 s in 1-Mvoxel tiles against 0.9 s in one piece).
CPU_TILE_PIXELS_2D = 1 << 20


def iter_crf(
    probabilities: ArrayLike,
    image: ArrayLike,
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
    tile_pixels: int | None = None,
) -> Generator[CRFProgress, None, CRFResult]:
    """Generator form of :func:`crf_refine`: yields a :class:`CRFProgress` per iteration
    (per tile, for images cut into tiles).

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
    tile_pixels : int, optional
        Largest block, in pixels, refined at once. Larger images are cut into
        tiles, each read with a margin of ``iterations * radius`` pixels so the
        result is the same as in one piece. Default: the largest block whose
        kernel weights take at most ``CACHE_BYTES`` (1 GiB), so that they are
        computed once rather than at every iteration; on the CPU, in 2D, at most
        ``CPU_TILE_PIXELS_2D`` (1 Mpixel), which is faster.

    Yields
    ------
    CRFProgress

    Returns
    -------
    CRFResult
        As the generator's return value: labels (argmax), probabilities, seconds.

    Raises
    ------
    ValueError
        For inputs of mismatched shapes or parameters out of range (named).
    """
    import torch

    from .._device import resolve_device

    probs, img = _check(probabilities, image, channel_axis)
    _check_params(iterations, radius, (theta_alpha, theta_beta, theta_gamma), tile_pixels)
    start = time.perf_counter()
    dev = resolve_device(device)
    spatial = probs.shape[1:]
    offsets = _offsets(len(spatial), radius)
    # Scaled over the whole image, so that every tile sees the same intensities.
    features = _normalise(img).astype(np.float32)
    # A pixel's result depends on the pixels within iterations * radius of it: with
    # that margin around each tile, tiles give exactly the whole image's result.
    if tile_pixels is None:
        tile_pixels = CACHE_BYTES // (4 * len(offsets))
        if dev.type == "cpu" and len(spatial) == 2:
            tile_pixels = min(tile_pixels, CPU_TILE_PIXELS_2D)
    tiles = list(_tiles(spatial, iterations * radius, tile_pixels))
    out = np.empty(probs.shape, np.float32)
    kernel_params = (theta_alpha, theta_beta, theta_gamma, w_bilateral, w_gaussian)
    with torch.no_grad():
        for number, (outer, inner, local) in enumerate(tiles, start=1):
            # Class or channel axis first, then the tile's pixels.
            block, dst, src = ((slice(None), *where) for where in (outer, inner, local))
            run = _mean_field(
                probs[block],
                features[block],
                offsets,
                radius,
                kernel_params,
                iterations,
                dev,
            )
            for it in range(1, iterations + 1):
                q = next(run)
                yield CRFProgress(it, iterations, number, len(tiles))
            out[dst] = q[src].cpu().numpy()
    labels = out.argmax(axis=0).astype(np.int32)
    return CRFResult(labels=labels, probabilities=out, seconds=time.perf_counter() - start)


def _check_params(
    iterations: int, radius: int, thetas: tuple[float, float, float], tile_pixels: int | None
) -> None:
    for name, value, most in (
        ("iterations", iterations, MAX_CRF_ITERATIONS),
        ("radius", radius, MAX_CRF_RADIUS),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {brief(value)}")
        if value > most:
            raise ValueError(f"{name} must be at most {most}, got {value}")
    for name, theta in zip(("theta_alpha", "theta_beta", "theta_gamma"), thetas, strict=True):
        if not theta > 0:
            raise ValueError(f"{name} must be positive, got {theta}")
    if tile_pixels is not None and not tile_pixels >= 1:
        raise ValueError(f"tile_pixels must be a positive number, got {tile_pixels!r}")


def _mean_field(probabilities, features, offsets, radius, kernel_params, iterations, dev):
    """Yields the probabilities (a tensor on ``dev``) after each iteration on one block."""
    import torch

    spatial = probabilities.shape[1:]
    eps = 1e-6
    logp = torch.from_numpy(np.log(np.clip(probabilities, eps, 1.0)).astype(np.float32)).to(dev)
    kernel = _Kernel(torch.from_numpy(features).to(dev), offsets, radius, *kernel_params)
    fits = len(offsets) * 4 * int(np.prod(spatial)) <= CACHE_BYTES
    weights = list(kernel) if fits else kernel
    q = torch.softmax(logp, dim=0)
    for _ in range(iterations):
        q = torch.softmax(logp + _message(q, offsets, weights, radius, spatial), dim=0)
        yield q


def _tiles(spatial, margin: int, max_pixels: int):
    """Cut ``spatial`` into tiles of at most about ``max_pixels`` with their ``margin``.

    Yields ``(outer, inner, local)`` slice tuples: the block read (the tile and its
    margin, clipped to the array), the tile in the array, and the tile within the
    block. One tile when the whole array fits.
    """
    ndim = len(spatial)
    if int(np.prod(spatial)) <= max_pixels:
        whole = tuple(slice(0, n) for n in spatial)
        yield whole, whole, whole
        return
    core = list(spatial)
    free = list(range(ndim))
    budget = float(max_pixels)
    while free:  # axes shorter than a tile's side are taken whole
        side = budget ** (1 / len(free))
        short = [a for a in free if spatial[a] <= side]
        if not short:
            break
        for a in short:
            budget /= spatial[a]
            free.remove(a)
    for a in free:
        largest = min(spatial[a], max(int(side) - 2 * margin, 16))
        core[a] = -(-spatial[a] // -(-spatial[a] // largest))  # as even as the count allows
    starts = [range(0, n, c) for n, c in zip(spatial, core, strict=True)]
    for corner in itertools.product(*starts):
        outer, inner, local = [], [], []
        for s0, c, n in zip(corner, core, spatial, strict=True):
            s1 = min(s0 + c, n)
            o0, o1 = max(0, s0 - margin), min(n, s1 + margin)
            outer.append(slice(o0, o1))
            inner.append(slice(s0, s1))
            local.append(slice(s0 - o0, s1 - o0))
        yield tuple(outer), tuple(inner), tuple(local)


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
        # In place (addcmul_): no temporary of the block's size per offset.
        message.addcmul_(_shifted(w, here, radius, spatial), _shifted(padded, d, radius, spatial))
        # The pixel at -d sees this pixel with the same weight, read from its side.
        back = tuple(-x for x in d)
        message.addcmul_(
            _shifted(w, back, radius, spatial), _shifted(padded, back, radius, spatial)
        )
    return message


def crf_refine(probabilities: ArrayLike, image: ArrayLike, **kwargs: Any) -> np.ndarray:
    """Refine class probabilities with a mean-field CRF; returns labels (argmax).

    Parameters
    ----------
    probabilities : (C, M, N[, P]) array of float
        Per-class probabilities (class first), e.g. Segment's probability output.
    image : (M, N[, P]) or multichannel array
        The image the probabilities describe.
    **kwargs
        The options of :func:`iter_crf` (iterations, radius, kernel widths and
        weights, channel_axis, device, tile_pixels).

    Returns
    -------
    ndarray of int32
        The most probable class of each pixel after refinement.
    """
    from .._generators import drain

    return drain(iter_crf(probabilities, image, **kwargs)).labels
