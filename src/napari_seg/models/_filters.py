"""The pixel classifier's filter features, in torch (:class:`FilterBank`).

The features are those ilastik and scikit-image's ``multiscale_basic_features``
offer, computed with separable Gaussian convolutions so that they run on any
device and inside the tiled predictor: for each input channel the raw intensity
and, at every scale sigma, the Gaussian-smoothed intensity, the gradient
magnitude, the Laplacian of Gaussian, a difference of Gaussians (sigma and
1.6 sigma), and the eigenvalues of the structure tensor and of the Hessian
(scale-normalised by sigma or sigma squared). Scales of 4 and more are computed
on an image downsampled by a power of two (so that the effective sigma stays
between 2 and 4) and interpolated back: the result differs from the
full-resolution filters by a fraction of their noise, at a fraction of the cost.

In 3D the scales are physical: sigma is in units of the finest voxel side of the
model's spacing, so a stack of 4 mm slices of 1 mm pixels is smoothed a quarter
as many voxels along z, its z derivatives are per millimetre, and it is pooled
along z only once a scale spans several slices (ilastik's features, computed in
voxels, treat such a stack as if its slices were 1 mm apart). Unknown spacing:
isotropic voxels. 2D filters stay in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Ratio of the outer to the inner scale of the difference of Gaussians.
DOG_RATIO = 1.6
#: Gaussian kernels are cut at this many sigmas (as scipy.ndimage does).
TRUNCATE = 4.0


def sigmas_for(max_sigma: int) -> tuple[float, ...]:
    """The filter scales 1, 2, 4, ... up to ``max_sigma``.

    Parameters
    ----------
    max_sigma : int

    Returns
    -------
    tuple of float
    """
    return tuple(float(2**k) for k in range(int(math.log2(max_sigma)) + 1))


def features_per_channel(n_sigmas: int, dims: int) -> int:
    """Number of features of one input channel.

    Parameters
    ----------
    n_sigmas : int
    dims : {2, 3}

    Returns
    -------
    int
        The raw intensity plus, per scale, smoothed intensity, gradient
        magnitude, LoG, DoG and ``dims`` eigenvalues each of the structure
        tensor and the Hessian.
    """
    return 1 + n_sigmas * (4 + 2 * dims)


def _gaussian_1d(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, int(TRUNCATE * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(x: torch.Tensor, sigma: float | Sequence[float], dims: int) -> torch.Tensor:
    """Separable Gaussian smoothing of the last ``dims`` axes (mirror boundaries).

    Each axis is a weighted sum of shifted views: for the short kernels used
    here (sigma of 1 to 4 pixels) that is about ten times faster on a CPU than
    a depthwise convolution, and the same numbers.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, *spatial)``.
    sigma : float or sequence of float
        In pixels; one per spatial axis, or one for all.
    dims : {2, 3}

    Returns
    -------
    torch.Tensor
        Same shape as ``x``.
    """
    sigmas = [float(sigma)] * dims if isinstance(sigma, (int, float)) else list(sigma)
    for axis in range(dims):
        weights = _gaussian_1d(sigmas[axis], torch.device("cpu")).tolist()
        radius = (len(weights) - 1) // 2
        dim = 2 + axis
        size = x.shape[dim]
        pad = [0] * (2 * dims)
        pad[2 * (dims - 1 - axis)] = pad[2 * (dims - 1 - axis) + 1] = radius
        mode = "reflect" if size > radius else "replicate"
        padded = F.pad(x, pad, mode=mode)
        out = padded.narrow(dim, 0, size) * weights[0]
        for k in range(1, len(weights)):
            out.add_(padded.narrow(dim, k, size), alpha=weights[k])
        x = out
    return x


def _diff(x: torch.Tensor, axis: int, dims: int) -> torch.Tensor:
    """Central difference along spatial ``axis`` (edges replicated)."""
    pad = [0] * (2 * dims)
    pad[2 * (dims - 1 - axis)] = pad[2 * (dims - 1 - axis) + 1] = 1
    padded = F.pad(x, pad, mode="replicate")
    dim = 2 + axis
    n = x.shape[dim]
    return (padded.narrow(dim, 2, n) - padded.narrow(dim, 0, n)) / 2


def _symmetric_eigenvalues(entries: dict[tuple[int, int], torch.Tensor], dims: int) -> list:
    """Eigenvalues (largest first) of the symmetric matrix given by its upper entries."""
    if dims == 2:
        a, b, c = entries[0, 0], entries[0, 1], entries[1, 1]
        mean = (a + c) / 2
        radius = torch.sqrt(((a - c) / 2) ** 2 + b * b)
        return [mean + radius, mean - radius]
    # Closed form for symmetric 3x3 matrices (trigonometric solution of the
    # characteristic cubic): no per-voxel decomposition.
    a, b, c = entries[0, 0], entries[1, 1], entries[2, 2]
    d, e, f = entries[0, 1], entries[0, 2], entries[1, 2]
    q = (a + b + c) / 3
    off = d * d + e * e + f * f
    p = torch.sqrt((((a - q) ** 2 + (b - q) ** 2 + (c - q) ** 2 + 2 * off) / 6).clamp(min=1e-20))
    ba, bb, bc = (a - q) / p, (b - q) / p, (c - q) / p
    bd, be, bf = d / p, e / p, f / p
    det = ba * (bb * bc - bf * bf) - bd * (bd * bc - bf * be) + be * (bd * bf - bb * be)
    phi = torch.acos((det / 2).clamp(-1.0, 1.0)) / 3
    largest = q + 2 * p * torch.cos(phi)
    smallest = q + 2 * p * torch.cos(phi + 2 * math.pi / 3)
    return [largest, 3 * q - largest - smallest, smallest]


class FilterBank(nn.Module):
    """Multiscale filter features of every channel (see the module docstring).

    Features can be computed for a region of the input only (:meth:`region`),
    with the input around it as context: the values are those of the whole
    input's features there, at the memory of the region's features.

    Parameters
    ----------
    in_channels : int
    dims : {2, 3}
    sigmas : tuple of float
        The scales, in units of the finest voxel side.
    spacing : tuple of float, optional
        The voxel size along each axis (3D only; see the module docstring). None:
        isotropic voxels.
    """

    def __init__(
        self,
        in_channels: int,
        dims: int,
        sigmas: tuple[float, ...],
        spacing: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.dims = int(dims)
        self.sigmas = tuple(float(s) for s in sigmas)
        self.out_channels = in_channels * features_per_channel(len(self.sigmas), self.dims)
        #: Each axis's voxel side in units of the finest one (all 1: isotropic).
        self.steps = _steps(spacing if self.dims == 3 else None, self.dims)

    @property
    def margin(self) -> int:
        """Pixels of context a feature depends on (the widest kernel's radius, along
        the finest axes; the coarser ones need fewer: :attr:`margins`)."""
        return max(self.margins)

    @property
    def margins(self) -> tuple[int, ...]:
        """:attr:`margin` along each axis: fewer voxels along an axis of thicker ones."""
        return tuple(
            math.ceil(TRUNCATE * DOG_RATIO * max(self.sigmas) / step) + 2 for step in self.steps
        )

    def forward(self, x: torch.Tensor, inner: Region | None = None) -> torch.Tensor:
        """Features of ``x``, or of its region ``inner`` only.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, C, *spatial)``, normalised intensities.
        inner : tuple of slice, optional
            A region of the spatial axes (default: all of them).

        Returns
        -------
        torch.Tensor
            ``(N, out_channels, *region)``.
        """
        return self.region(x, inner, self.coarse(x))

    def coarse(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        """The features of the scales computed on a downsampled ``x`` (None for the
        scales computed at full resolution), for :meth:`region`.

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        list of torch.Tensor or None
            One entry per scale.
        """
        out: list[torch.Tensor | None] = []
        for sigma in self.sigmas:
            factors = _factors(sigma, self.steps, tuple(x.shape[2:]))
            if all(f == 1 for f in factors):
                out.append(None)
                continue
            # The pooled grid's voxel sides, in units of the finest of them.
            sides = [step * f for step, f in zip(self.steps, factors, strict=True)]
            unit = min(sides)
            small = _pool(x, factors, self.dims)
            out.append(_scale_features(small, sigma / unit, [d / unit for d in sides]))
        return out

    def region(
        self, x: torch.Tensor, inner: Region | None, coarse: list[torch.Tensor | None]
    ) -> torch.Tensor:
        """Features of the region ``inner`` of ``x``, given ``x``'s :meth:`coarse` ones.

        Full-resolution scales are computed on the region and the context their
        kernels reach (so several regions of one input cost little more than the
        whole); downsampled ones are interpolated for the region alone.

        Parameters
        ----------
        x : torch.Tensor
        inner : tuple of slice or None
        coarse : list
            ``self.coarse(x)``.

        Returns
        -------
        torch.Tensor
        """
        size = tuple(x.shape[2:])
        box = _bounds(inner, size)
        whole = all(a == 0 and b == n for (a, b), n in zip(box, size, strict=True))
        # Each scale is written into the result as soon as it is computed, so that one
        # scale's features with their context are held at a time (a concatenation
        # held them all, and then the result besides: about twice the memory).
        out = x.new_empty((x.shape[0], self.out_channels, *(b - a for a, b in box)))
        channels = x.shape[1]
        out[:, :channels] = x if whole else x[_index(box)]
        for sigma, small in zip(self.sigmas, coarse, strict=True):
            if small is not None:
                feats = _upsample(small, size, None if whole else box)
            else:
                reach = [_reach(sigma / step) for step in self.steps]
                around = [
                    (max(0, a - r), min(n, b + r))
                    for (a, b), n, r in zip(box, size, reach, strict=True)
                ]
                feats = _scale_features(x[_index(around)], sigma, self.steps)
                crop = [(a - c, b - c) for (a, b), (c, _) in zip(box, around, strict=True)]
                feats = feats[_index(crop)]
            out[:, channels : channels + feats.shape[1]] = feats
            channels += feats.shape[1]
            del feats
        return out


#: A region of the spatial axes: one slice per axis.
Region = tuple[slice, ...]


def _index(box: list[tuple[int, int]]) -> tuple:
    """The index of the spatial ``box`` ((start, stop) per axis) of an ``(N, C, ...)`` tensor."""
    return (slice(None), slice(None), *(slice(a, b) for a, b in box))


def _bounds(inner: Region | None, size: tuple[int, ...]) -> list[tuple[int, int]]:
    """``inner``'s (start, stop) per axis (the whole axis where None)."""
    if inner is None:
        return [(0, n) for n in size]
    return [tuple(s.indices(n)[:2]) for s, n in zip(inner, size, strict=True)]  # type: ignore[misc]


def _steps(spacing: tuple[float, ...] | None, dims: int) -> tuple[float, ...]:
    """Each axis's voxel side in units of the finest (all 1 when unknown)."""
    if spacing is None:
        return (1.0,) * dims
    finest = min(float(v) for v in spacing)
    return tuple(float(v) / finest for v in spacing)


def _factors(sigma: float, steps: tuple[float, ...], size: tuple[int, ...]) -> list[int]:
    """Downsampling of the input for scale ``sigma``, per axis: a power of two keeping
    the axis's sigma in voxels (``sigma / step``) between 2 and 4 (1 for up to 3),
    the same along isotropic axes (the smallest of theirs), and 2 voxels per axis."""
    out = [2 ** max(0, int(math.log2(max(sigma / step, 1.0))) - 1) for step in steps]
    # An axis too short for its factor lowers it for the axes of the same step: one
    # grid for isotropic axes, as a single factor had it.
    for axis, step in enumerate(steps):
        same = [a for a, s in enumerate(steps) if s == step]
        while out[axis] > 1 and min(size[a] for a in same) < 2 * out[axis]:
            out[axis] //= 2
    return out


def _reach(sigma: float) -> int:
    """Pixels of input that one full-resolution feature of scale ``sigma`` depends
    on along each axis: the structure tensor smooths products of derivatives of the
    smoothed image (two kernels and a difference); the DoG's wider kernel."""
    radius = max(1, int(TRUNCATE * sigma + 0.5))
    wide = max(1, int(TRUNCATE * DOG_RATIO * sigma + 0.5))
    return max(2 * radius + 1, radius + 2, wide)


def _upsample(small: torch.Tensor, size: tuple[int, ...], box: list | None) -> torch.Tensor:
    """``small`` linearly interpolated to ``size`` (as ``F.interpolate`` with
    ``align_corners=False``), for the region ``box`` only when given."""
    dims = len(size)
    if box is None:
        mode = "bilinear" if dims == 2 else "trilinear"
        return F.interpolate(small, size=size, mode=mode, align_corners=False)
    out = small
    for axis, ((a, b), n) in enumerate(zip(box, size, strict=True)):
        m = small.shape[2 + axis]
        position = (torch.arange(a, b, dtype=torch.float64) + 0.5) * (m / n) - 0.5
        position = position.clamp_(min=0)
        low = position.floor().long().clamp_(max=m - 1)
        high = (low + 1).clamp_(max=m - 1)
        shape = [1] * (2 + dims)
        shape[2 + axis] = b - a
        weight = (position - low).to(small.dtype).view(shape).to(small.device)
        low, high = low.to(small.device), high.to(small.device)
        dim = 2 + axis
        out = out.index_select(dim, low) * (1 - weight) + out.index_select(dim, high) * weight
    return out


def _pool(x: torch.Tensor, factors: list[int], dims: int) -> torch.Tensor:
    pool = F.avg_pool2d if dims == 2 else F.avg_pool3d
    return pool(x, tuple(factors), ceil_mode=True, count_include_pad=False)


def _scale_features(x: torch.Tensor, s: float, steps: Sequence[float]) -> torch.Tensor:
    """The features of one scale, ``s`` in units of the finest voxel side of ``x``
    (``steps``: each axis's side in those units); channels grouped by feature."""
    dims = len(steps)
    channels = x.shape[1]
    # Features are written into the result as they come and intermediates dropped
    # once used (channels: g, magnitude, laplacian, dog, structure, curvature).
    out = x.new_empty((x.shape[0], (4 + 2 * dims) * channels, *x.shape[2:]))

    def put(k: int, value: torch.Tensor) -> None:
        out[:, k * channels : (k + 1) * channels] = value

    def diff(t: torch.Tensor, axis: int) -> torch.Tensor:
        d = _diff(t, axis, dims)
        return d if steps[axis] == 1 else d / steps[axis]

    g = gaussian_blur(x, [s / step for step in steps], dims)
    put(0, g)
    grads = [diff(g, a) for a in range(dims)]
    put(1, s * torch.sqrt(torch.stack([d * d for d in grads]).sum(dim=0) + 1e-12))
    hessian = {(i, j): diff(grads[i], j) for i in range(dims) for j in range(i, dims)}
    put(2, s * s * torch.stack([hessian[i, i] for i in range(dims)]).sum(dim=0))
    put(3, g - gaussian_blur(x, [DOG_RATIO * s / step for step in steps], dims))
    del g
    products = torch.cat([grads[i] * grads[j] for i, j in hessian], dim=1)
    del grads
    smoothed = gaussian_blur(products, [s / step for step in steps], dims) * (s * s)
    del products
    tensor = {key: smoothed[:, k * channels : (k + 1) * channels] for k, key in enumerate(hessian)}
    for k, value in enumerate(_symmetric_eigenvalues(tensor, dims), start=4):
        put(k, value)
    del smoothed, tensor
    for k, value in enumerate(_symmetric_eigenvalues(hessian, dims), start=4 + dims):
        put(k, s * s * value)
    return out
