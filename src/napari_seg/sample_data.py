"""Synthetic sample images with ground-truth labels (generated, free to ship).

The images imitate fluorescence microscopy of cells: dim textured cytoplasm,
bright textured nuclei, blur and shot noise. Three classes: background,
cytoplasm, nucleus. Everything is generated from a seed, so the data are
reproducible and carry no third-party licence (BSD-3 like the package).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._layers import labels_layer_kwargs

CLASS_NAMES = ("background", "cytoplasm", "nucleus")
CLASS_COLORS = ((0.0, 0.0, 0.0, 0.0), (0.12, 0.47, 0.71, 1.0), (1.0, 0.5, 0.05, 1.0))
_LEVELS = (0.06, 0.3, 0.75)


def cells_2d(
    shape: tuple[int, int] = (512, 512), *, n_cells: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A 2D image of cells and its semantic labels.

    Parameters
    ----------
    shape : tuple of int
        Image shape (rows, columns); at least 32 x 32.
    n_cells : int, optional
        Number of cells; by default about one per 3,000 pixels.
    seed : int
        Random seed.

    Returns
    -------
    image : ndarray of uint16, shape ``shape``
    labels : ndarray of uint8, shape ``shape``
        0 background, 1 cytoplasm, 2 nucleus.
    """
    return _cells(tuple(shape), n_cells=n_cells, seed=seed)


def cells_3d(
    shape: tuple[int, int, int] = (24, 256, 256), *, n_cells: int | None = None, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A 3D stack of cells (ellipsoids) and its semantic labels.

    Parameters
    ----------
    shape : tuple of int
        Stack shape (planes, rows, columns); rows and columns at least 32.
    n_cells : int, optional
        Number of cells; by default about one per 3,000 pixels of a plane.
    seed : int
        Random seed.

    Returns
    -------
    image : ndarray of uint16, shape ``shape``
    labels : ndarray of uint8, shape ``shape``
        0 background, 1 cytoplasm, 2 nucleus.
    """
    return _cells(tuple(shape), n_cells=n_cells, seed=seed)


def _cells(shape: tuple[int, ...], *, n_cells: int | None, seed: int):
    from scipy import ndimage as ndi

    if len(shape) not in (2, 3) or min(shape[-2:]) < 32:
        raise ValueError(f"shape must be 2D or 3D with rows and columns >= 32, got {shape}")
    rng = np.random.default_rng(seed)
    plane = shape[-2] * shape[-1]
    if n_cells is None:
        n_cells = max(1, plane // 3000)
    labels = np.zeros(shape, dtype=np.uint8)
    grid = np.indices(shape, dtype=np.float32) if len(shape) == 3 else None
    for _ in range(n_cells):
        radius = rng.uniform(12, 24)
        center = [rng.uniform(0, s) for s in shape]
        radii = [radius * rng.uniform(0.75, 1.25) for _ in shape]
        if len(shape) == 3:
            radii[0] = min(radii[0], shape[0] / 3)
        angle = rng.uniform(0, np.pi)
        nucleus_shift = [rng.uniform(-0.2, 0.2) * r for r in radii]
        cell = _ellipse_mask(shape, center, radii, angle, grid)
        nucleus = _ellipse_mask(
            shape,
            [c + d for c, d in zip(center, nucleus_shift, strict=True)],
            [r * 0.5 for r in radii],
            angle,
            grid,
        )
        labels[cell] = 1
        labels[nucleus & cell] = 2
    levels = np.asarray(_LEVELS, dtype=np.float32)
    texture = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 2.0)
    texture /= texture.std() + 1e-6
    image = levels[labels] * (1.0 + 0.15 * texture * (labels > 0))
    image = ndi.gaussian_filter(image, 1.2)
    photons = 400.0
    image = rng.poisson(np.clip(image, 0, None) * photons).astype(np.float32) / photons
    image += rng.normal(0.0, 0.01, shape).astype(np.float32)
    image = np.clip(image * 4000 + 100, 0, 65535).astype(np.uint16)
    return image, labels


def _ellipse_mask(shape, center, radii, angle, grid):
    """Boolean mask of an ellipse (2D) or ellipsoid rotated in the YX plane (3D)."""
    if grid is None:
        from skimage.draw import ellipse

        mask = np.zeros(shape, dtype=bool)
        rr, cc = ellipse(center[0], center[1], radii[0], radii[1], shape=shape, rotation=angle)
        mask[rr, cc] = True
        return mask
    z, y, x = (grid[i] - center[i] for i in range(3))
    cos, sin = np.cos(angle), np.sin(angle)
    yr, xr = cos * y - sin * x, sin * y + cos * x
    return (z / radii[0]) ** 2 + (yr / radii[1]) ** 2 + (xr / radii[2]) ** 2 <= 1.0


def label_layer_kwargs(name: str) -> dict[str, Any]:
    """``add_labels`` keyword arguments naming and colouring the sample's classes.

    Parameters
    ----------
    name : str
        The layer's name.

    Returns
    -------
    dict
    """
    return labels_layer_kwargs(name, CLASS_NAMES, CLASS_COLORS, background=0)


def cells_2d_layers() -> list[tuple[Any, dict[str, Any], str]]:
    """npe2 sample data: the 2D image and its ground truth as napari layer data.

    Returns
    -------
    list of (data, keyword arguments, layer type)
    """
    image, labels = cells_2d()
    return [
        (image, {"name": "cells2d", "colormap": "gray"}, "image"),
        (labels, label_layer_kwargs("cells2d ground truth"), "labels"),
    ]


def cells_3d_layers() -> list[tuple[Any, dict[str, Any], str]]:
    """npe2 sample data: the 3D stack and its ground truth as napari layer data.

    Returns
    -------
    list of (data, keyword arguments, layer type)
    """
    image, labels = cells_3d()
    return [
        (image, {"name": "cells3d", "colormap": "gray"}, "image"),
        (labels, label_layer_kwargs("cells3d ground truth"), "labels"),
    ]
