"""Random augmentations of training patches (numpy and scipy), driven by one generator.

Geometric transforms (flips, 90-degree rotations, elastic deformation; for 3D
patches also rotations only in planes of equal spacing and a small zoom) move
image and targets together; intensity transforms (scale, shift, gamma,
Gaussian noise) change the normalised image only. Every draw comes from the
run's ``numpy.random.Generator``, so a seeded run (and its resumption) sees
the same patches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._shared import IGNORE_INDEX

if TYPE_CHECKING:
    from .config import TrainingConfig


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations are on, and their ranges."""

    flips: bool = True
    rotations: bool = True
    intensity: bool = True
    noise: bool = True
    elastic: bool = False
    scale_range: tuple[float, float] = (0.8, 1.25)
    shift_range: tuple[float, float] = (-0.1, 0.1)
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_max: float = 0.05
    elastic_alpha: float = 0.06  # displacement, as a fraction of the patch side
    elastic_sigma: float = 0.08  # smoothness, as a fraction of the patch side
    scaling: bool = True  # 3D patches only: a random zoom of some patches
    zoom_range: tuple[float, float] = (0.85, 1.15)
    zoom_probability: float = 0.2
    spacing: tuple[float, ...] | None = None  # 3D: rotations only in planes of equal spacing

    @classmethod
    def from_config(cls, config: TrainingConfig) -> Augmentation:
        """The augmentations a training config switches on.

        Parameters
        ----------
        config : TrainingConfig

        Returns
        -------
        Augmentation
        """
        return cls(
            flips=config.flips,
            rotations=config.rotations,
            intensity=config.intensity,
            noise=config.noise,
            elastic=config.elastic,
            scaling=config.scaling,
            spacing=config.spacing if config.spacing and len(config.spacing) == 3 else None,
        )


def augment(
    images: np.ndarray, targets: np.ndarray, rng: np.random.Generator, aug: Augmentation
) -> tuple[np.ndarray, np.ndarray]:
    """Augment a batch in place where possible and return it.

    Parameters
    ----------
    images : ndarray, shape (B, C, H, W) or (B, C, D, H, W), float32
        Normalised patches.
    targets : ndarray, shape (B, H, W) or (B, D, H, W), int64
    rng : numpy.random.Generator
    aug : Augmentation

    Returns
    -------
    images, targets : ndarray
        Contiguous arrays of the same shapes.
    """
    out_images, out_targets = [], []
    geometry = _geometry if targets.ndim == 3 else _geometry_3d
    for image, target in zip(images, targets, strict=True):
        image, target = geometry(image, target, rng, aug)
        image = _intensity(image, rng, aug)
        out_images.append(image)
        out_targets.append(target)
    return np.ascontiguousarray(np.stack(out_images)), np.ascontiguousarray(np.stack(out_targets))


def _geometry(image, target, rng, aug: Augmentation):
    if aug.flips:
        if rng.random() < 0.5:
            image, target = image[:, ::-1], target[::-1]
        if rng.random() < 0.5:
            image, target = image[:, :, ::-1], target[:, ::-1]
    if aug.rotations and image.shape[1] == image.shape[2]:
        k = int(rng.integers(4))
        image, target = np.rot90(image, k, axes=(1, 2)), np.rot90(target, k)
    if aug.elastic:
        image, target = _elastic(image, target, rng, aug)
    return image, target


def _geometry_3d(image, target, rng, aug: Augmentation):
    """Flips along every axis; 90-degree rotations in a plane of two axes with the
    same spacing and patch side; a small zoom; elastic deformation when asked."""
    if aug.flips:
        for axis in range(3):
            if rng.random() < 0.5:
                image, target = np.flip(image, axis + 1), np.flip(target, axis)
    planes = _isotropic_planes(target.shape, aug.spacing)
    if aug.rotations and planes:
        a, b = planes[int(rng.integers(len(planes)))]
        k = int(rng.integers(4))
        image, target = np.rot90(image, k, axes=(a + 1, b + 1)), np.rot90(target, k, axes=(a, b))
    if aug.scaling and rng.random() < aug.zoom_probability:
        image, target = _zoom(image, target, float(rng.uniform(*aug.zoom_range)))
    if aug.elastic:
        image, target = _elastic(image, target, rng, aug)
    return image, target


def _isotropic_planes(shape, spacing) -> list[tuple[int, int]]:
    """Pairs of axes with equal patch sides and spacings within 10% of each other."""
    spacing = spacing or (1.0,) * len(shape)
    return [
        (a, b)
        for a in range(len(shape))
        for b in range(a + 1, len(shape))
        if shape[a] == shape[b]
        and abs(spacing[a] - spacing[b]) <= 0.1 * max(spacing[a], spacing[b])
    ]


def _zoom(image, target, factor: float):
    """Zoom about the patch centre by ``factor`` (> 1 magnifies); the shape is kept,
    voxels brought in from outside are mirrored (image) or ignored (targets)."""
    from scipy import ndimage as ndi

    centre = (np.asarray(target.shape, float) - 1) / 2
    matrix = np.full(target.ndim, 1.0 / factor)
    offset = centre - matrix * centre
    warped = np.stack(
        [ndi.affine_transform(ch, matrix, offset, order=1, mode="mirror") for ch in image]
    ).astype(np.float32)
    labels = ndi.affine_transform(
        target, matrix, offset, order=0, mode="constant", cval=IGNORE_INDEX
    )
    return warped, labels.astype(np.int64)


def _elastic(image, target, rng, aug: Augmentation):
    """Smooth random displacement (Simard et al. 2003); targets use nearest neighbours."""
    from scipy import ndimage as ndi

    side = max(target.shape)
    sigma, alpha = aug.elastic_sigma * side, aug.elastic_alpha * side
    fields = []
    for _ in range(target.ndim):
        d = ndi.gaussian_filter(rng.standard_normal(target.shape).astype(np.float32), sigma)
        d *= alpha / (np.abs(d).max() + 1e-8)
        fields.append(d)
    grid = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in target.shape), indexing="ij")
    coords = np.stack([g + f for g, f in zip(grid, fields, strict=True)])
    warped = np.stack(
        [ndi.map_coordinates(ch, coords, order=1, mode="mirror") for ch in image]
    ).astype(np.float32)
    labels = ndi.map_coordinates(target, coords, order=0, mode="constant", cval=IGNORE_INDEX)
    return warped, labels.astype(np.int64)


def _intensity(image, rng, aug: Augmentation):
    image = np.array(image, dtype=np.float32)  # a copy: views of the patch may be shared
    if aug.intensity:
        if rng.random() < 0.5:
            gamma = rng.uniform(*aug.gamma_range)
            positive = image > 0
            image[positive] = image[positive] ** gamma
        image *= rng.uniform(*aug.scale_range)
        image += rng.uniform(*aug.shift_range)
    if aug.noise:
        sigma = rng.uniform(0.0, aug.noise_max)
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    return image
