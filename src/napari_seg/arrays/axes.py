"""Axis choices: an ``axis`` option read as axes of an array, and an image's axes as
its labels' (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np


def normalise_axes(axis: int | Sequence[int], ndim: int, name: str) -> list[int]:
    """``axis`` (an int or a sequence of them) as non-negative axes of an ``ndim`` array.

    Parameters
    ----------
    axis : int or sequence of int
    ndim : int
    name : str
        The option's name, for messages.

    Returns
    -------
    list of int

    Raises
    ------
    TypeError, ValueError
        For non-integers, out-of-range or repeated axes (the message names ``name``).
    """
    axes: list[Any] = [axis] if np.isscalar(axis) else list(cast(Sequence[int], axis))
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{name} must be an integer or a sequence of integers, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{name} {a} is out of range for an image with {ndim} dimensions")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} lists an axis twice: {axis!r}")
    return out


def output_axes(axes: Sequence[int], channel_axis: int | None) -> tuple[int, ...]:
    """Axes of an image as axes of its labels, which lack the image's channel axis.

    Parameters
    ----------
    axes : sequence of int
        Axes of the image other than ``channel_axis``.
    channel_axis : int or None

    Returns
    -------
    tuple of int
    """
    return tuple(a - (channel_axis is not None and channel_axis < a) for a in axes)
