"""Predicting at the model's spacing: resample the image, predict, bring the result back.

The image is resampled linearly to the model's voxel size along the axes the
model sees; the class probabilities are resampled linearly back to the image's
grid and the labels are their argmax there (smoother than nearest-neighbour
labels, and the same ids). The resampled copy is held in memory whole, so this
path reads the image whole (the tiled prediction itself still runs slab by slab).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..arrays.layout import ImageLayout
from .config import PredictConfig
from .events import PredictEvent, PredictResult

#: Spacings closer than this (relative) are taken as equal: no resampling.
SPACING_TOLERANCE = 1e-3


def resampled_sizes(
    sizes: Sequence[int], spacing: Sequence[float], target: Sequence[float]
) -> tuple[int, ...] | None:
    """The sizes of the spatial axes at the ``target`` spacing, or None when the two
    spacings agree (within :data:`SPACING_TOLERANCE`).

    Parameters
    ----------
    sizes : sequence of int
    spacing, target : sequence of float

    Returns
    -------
    tuple of int or None
    """
    if len(spacing) != len(target) or len(sizes) != len(target):
        raise ValueError(
            f"the image spacing {tuple(spacing)} and the model's {tuple(target)} must have "
            f"one value per axis the model sees ({len(sizes)})"
        )
    ratios = [s / t for s, t in zip(spacing, target, strict=True)]
    if all(abs(r - 1) <= SPACING_TOLERANCE for r in ratios):
        return None
    return tuple(max(1, round(n * r)) for n, r in zip(sizes, ratios, strict=True))


def resize(array: np.ndarray, axes: Sequence[int], sizes: Sequence[int]) -> np.ndarray:
    """``array`` (float32) linearly resampled to ``sizes`` along ``axes`` (2 or 3 axes).

    Voxel centres are aligned as in ``torch.nn.functional.interpolate`` with
    ``align_corners=False`` (the grids share their outer edges).

    Parameters
    ----------
    array : ndarray
    axes : sequence of int
    sizes : sequence of int

    Returns
    -------
    ndarray
    """
    moved = np.moveaxis(np.asarray(array, dtype=np.float32), list(axes), list(range(-len(axes), 0)))
    lead = moved.shape[: -len(axes)]
    flat = torch.from_numpy(np.ascontiguousarray(moved).reshape(1, -1, *moved.shape[-len(axes) :]))
    mode = "bilinear" if len(axes) == 2 else "trilinear"
    out = torch.nn.functional.interpolate(flat, size=tuple(sizes), mode=mode, align_corners=False)
    back = out.numpy().reshape(*lead, *sizes)
    return np.moveaxis(back, list(range(-len(axes), 0)), list(axes))


def run_resampled(
    predictor_class: Any,
    model: Any,
    image: Any,
    config: PredictConfig,
    layout: ImageLayout,
    sizes: tuple[int, ...],
    out: Any,
    probabilities_out: Any,
) -> Generator[PredictEvent, None, PredictResult]:
    """Predict ``image`` resampled to ``sizes`` and return the result on its own grid.

    Parameters
    ----------
    predictor_class : type
        The predictor that runs the tiled prediction.
    model, image, config
        As for ``iter_predict``; ``config.spacing`` is ignored from here on.
    layout : ImageLayout
        The layout of ``image``.
    sizes : tuple of int
        The resampled sizes of ``layout.spatial_axes``.
    out : array-like
        The labels array to fill (of the image's grid).
    probabilities_out : array-like or None
        The probabilities array to fill, when asked for.

    Yields
    ------
    PredictEvent

    Returns
    -------
    PredictResult
    """
    resampled = resize(np.asarray(image), layout.spatial_axes, sizes)
    inner = config.with_(spacing=None, probabilities=True)
    result = yield from predictor_class(model, resampled, inner, None, None).run()
    drop = layout.channel_axis
    out_axes = [1 + a - (drop is not None and a > drop) for a in layout.spatial_axes]
    original = [layout.shape[a] for a in layout.spatial_axes]
    probs = resize(result.probabilities, out_axes, original)
    out[...] = probs.argmax(axis=0)
    if probabilities_out is not None:
        probabilities_out[...] = probs
    return replace(result, labels=out, probabilities=probabilities_out)
