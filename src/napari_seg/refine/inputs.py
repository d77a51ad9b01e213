"""A refine job's inputs beside its labels (an image, class probabilities, a region,
reference labels): which axis of an image holds channels, and which pixels each
input covers (they must be the labels')."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..arrays.channels import labels_channel_axis
from .operations import INPUTS, get_operation


def check_inputs(
    labels: np.ndarray,
    ops: Sequence[str],
    *,
    channel_axis: int | None,
    **given: Any,
) -> dict[str, Any]:
    """The inputs a refine job's steps need, each checked to cover the labels' pixels.

    Parameters
    ----------
    labels : ndarray
    ops : sequence of str
        The job's steps' operations, which say which inputs they need.
    channel_axis : int or None
        The image's channel axis.
    **given
        The inputs by name (``image``, ``probabilities``, ``region``, ``reference``);
        None for one not given.

    Returns
    -------
    dict
        The inputs given as arrays, and ``channel_axis``.

    Raises
    ------
    ValueError
        Naming a step's missing input, or an input that does not cover the labels.
    """
    inputs: dict[str, Any] = {"channel_axis": channel_axis}
    for name in INPUTS:
        wanting = [op for op in ops if name in get_operation(op).needs]
        if wanting and given.get(name) is None:
            raise ValueError(f"{', '.join(wanting)} needs {_ARTICLE[name]}{name}")
    for name, value in given.items():
        if value is None:
            continue
        value = np.asarray(value)
        if input_pixels(name, value.shape, channel_axis) != labels.shape:
            planes = ", ".join(map(str, labels.shape))
            per_class = f" with a plane per class, (classes, {planes})" * (name == "probabilities")
            raise ValueError(
                f"{name} must cover the labels' pixels {labels.shape}{per_class}, got shape "
                f"{value.shape}"
            )
        inputs[name] = value
    return inputs


_ARTICLE = {"image": "an ", "probabilities": "", "region": "a ", "reference": "a "}


def image_channel_axis(
    shape: Sequence[int], labels_shape: Sequence[int], channel_axis: int | None = None
) -> int | None:
    """The channel axis of an image of ``shape`` refining labels of ``labels_shape``:
    the one given, else the axis the labels lack (a CYX image for YX labels,
    :func:`~napari_seg.arrays.channels.labels_channel_axis`), else None.

    Parameters
    ----------
    shape, labels_shape : sequence of int
    channel_axis : int, optional

    Returns
    -------
    int or None
    """
    return channel_axis if channel_axis is not None else labels_channel_axis(shape, labels_shape)


def input_pixels(name: str, shape: tuple[int, ...], channel_axis: int | None) -> tuple[int, ...]:
    """The pixel grid an input of ``shape`` covers (it must equal the labels' shape).

    Parameters
    ----------
    name : {"image", "probabilities", "region", "reference"}
    shape : tuple of int
    channel_axis : int or None
        Of an image.

    Returns
    -------
    tuple of int
        Probabilities are class first; an image may have a channel axis.
    """
    if name == "probabilities":
        return tuple(shape[1:])
    if name == "image" and channel_axis is not None:
        return tuple(np.delete(np.array(shape), channel_axis))
    return tuple(shape)
