"""A per-slice refine job's planes: the labels cut along the slice axes
(:func:`split_planes`), each plane's inputs (:func:`plane_inputs_at`), and the
refined planes put back in place (:func:`assemble_planes`), object ids numbered
apart across planes."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..arrays.axes import normalise_axes


def split_planes(labels: np.ndarray, per_slice: bool, axis) -> list[tuple]:
    """The index of each plane a job refines apart along ``axis`` (one index of the
    whole labels unless ``per_slice``)."""
    if not per_slice or labels.ndim == 2:
        if per_slice:  # a 2D image is its own slice, but an axis it lacks is a mistake
            normalise_axes(axis, labels.ndim, "axis")
        return [(slice(None),) * labels.ndim]
    axes = slice_axes(labels.ndim, axis)
    return [
        tuple(at[axes.index(a)] if a in axes else slice(None) for a in range(labels.ndim))
        for at in itertools.product(*(range(labels.shape[a]) for a in axes))
    ]


def slice_axes(ndim: int, axis: int | Sequence[int]) -> list[int]:
    """A per-slice job's slice axes in labels of ``ndim`` axes, checked: each slice
    (what the other axes span) must be 2D or 3D.

    Parameters
    ----------
    ndim : int
    axis : int or sequence of int
        A :class:`~napari_seg.refine.RefineConfig`'s ``axis``.

    Returns
    -------
    list of int
        Non-negative, sorted.

    Raises
    ------
    ValueError
        For an axis out of range or twice, or slices of another dimensionality.
    """
    axes = sorted(normalise_axes(axis, ndim, "axis"))
    if ndim - len(axes) not in (2, 3):
        raise ValueError(
            f"refining {ndim}D labels slice by slice along axes {tuple(axes)} leaves "
            f"{ndim - len(axes)}D slices; each slice must be 2D or 3D"
        )
    return axes


def plane_inputs_at(inputs: dict[str, Any], index: tuple, ndim: int, channel_axis):
    """The job's inputs at the plane ``index`` of the labels (probabilities with every
    class, an image with its channels), ``channel_axis`` renumbered for the plane."""
    if all(i == slice(None) for i in index):
        return inputs
    out = dict(inputs)
    every_class = (slice(None), *index)
    for name, value in inputs.items():
        if name == "channel_axis" or value is None:
            continue
        if name == "probabilities":
            out[name] = value[every_class]
        elif name == "image" and channel_axis is not None:
            c = channel_axis % value.ndim
            full = list(index)
            full.insert(c, slice(None))
            out[name] = value[tuple(full)]
        else:
            out[name] = value[index]
    if channel_axis is not None:
        c = channel_axis % (ndim + 1)
        fixed = [a for a, i in enumerate(index) if not isinstance(i, slice)]
        out["channel_axis"] = c - sum(1 for a in fixed if a < c)
    return out


def assemble_planes(parts, planes, labels: np.ndarray, axis, instances: bool) -> np.ndarray:
    """The refined ``parts`` of ``planes`` (along ``axis``) as one array of the labels'
    shape, object ids (``instances``) numbered apart across the planes."""
    if len(planes) == 1 and all(isinstance(i, slice) for i in planes[0]):
        return parts[0]
    if instances:
        # Instance ids restart on each slice; offset them so they are unique in the stack.
        offset = 0
        for k, part in enumerate(parts):
            nonzero = part > 0
            parts[k] = np.where(nonzero, part + offset, 0).astype(np.int32)
            offset += int(part.max(initial=0))
    axes = slice_axes(labels.ndim, axis)
    stacked = np.stack(parts).reshape(*(labels.shape[a] for a in axes), *parts[0].shape)
    return np.moveaxis(stacked, list(range(len(axes))), axes)
