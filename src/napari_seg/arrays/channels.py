"""Which axis of an image holds its channels: for a model that reads a given number
(:func:`channel_axis_of`, the one rule), for a new model from the image and its
labels (:func:`labels_channel_axis`, :func:`detect_in_channels`). numpy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..limits import MAX_UNSTATED_CHANNELS
from .axes import normalise_axes


def channel_axis_of(
    shape: Sequence[int],
    *,
    in_channels: int,
    given: int | None = None,
    rgb: bool = False,
    spatial: Sequence[int] = (),
) -> int | None:
    """The channel axis of an image of ``shape`` for a model reading ``in_channels``.

    The rule: a ``given`` axis must have ``in_channels`` entries (4 for an RGBA
    image into a 3-channel model); an RGB(A) image has them on its last axis;
    a single-channel model has none; otherwise the last axis if its size fits,
    else the first axis that fits. Axes in ``spatial`` (those shown in napari's
    canvas) are never channels.

    Parameters
    ----------
    shape : sequence of int
    in_channels : int
        Channels the model reads.
    given : int, optional
        The axis the user chose.
    rgb : bool
        Whether the image is RGB(A) (napari's ``rgb`` layers).
    spatial : sequence of int
        Axes that cannot hold channels.

    Returns
    -------
    int or None
        None for a single-channel model.

    Raises
    ------
    ValueError
        If no axis fits, or the given one has another size.
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    if given is not None:
        (axis,) = normalise_axes(given, ndim, "channel_axis")
        n = shape[axis]
        if n != in_channels and not (n == 4 and in_channels == 3):
            advice = (
                "; read one of them (--channel N on the command line, or index it in "
                "Python), or, if they are time points, go through them (--axis "
                f"{axis} / axis={axis})"
                if in_channels == 1
                else ""
            )
            raise ValueError(
                f"the model expects {in_channels} channel(s) but channel axis {axis} of the "
                f"image (shape {shape}) has {n}{advice}"
            )
        return axis
    if rgb:
        colours = shape[-1]
        if colours != in_channels and not (colours == 4 and in_channels == 3):
            raise ValueError(
                f"the image is RGB{'A' if colours == 4 else ''} ({colours} colour channels) "
                f"and the model reads {in_channels}: use a model of 3 channels, or split the "
                "colours into layers (napari: right-click the layer > Split RGB) and segment one"
            )
        return channel_axis_of(shape, in_channels=in_channels, given=ndim - 1)
    if in_channels == 1:
        return None
    fits = [
        a
        for a, n in enumerate(shape)
        if a not in spatial and (n == in_channels or (a == ndim - 1 and n == 4 == in_channels + 1))
    ]
    if not fits:
        where = "slider axis" if spatial else "axis"
        advice = (
            "the model reads its channels from one layer: merge channel layers into one "
            "(select them, then right-click > Merge to Stack) or pick a layer that has them"
            if spatial
            else "check the model, or give the channel axis (--channel-axis on the command "
            "line, channel_axis in Python)"
        )
        raise ValueError(
            f"the model expects {in_channels} channels but no {where} of the image "
            f"(shape {shape}) has that size; {advice}"
        )
    return ndim - 1 if ndim - 1 in fits else fits[0]


def labels_channel_axis(
    shape: Sequence[int], labels_shape: Sequence[int], *, exclude: Sequence[int] = ()
) -> int | None:
    """The axis of an image of ``shape`` that its labels lack: a new model's channels.

    Labels have no channel axis, so an image with one axis more than its labels,
    which leaves exactly the labels' shape when removed (a CYX image painted with YX
    labels; a ``(1, H, W)`` tensor with ``(H, W)`` labels: one channel), has its
    channels there. None when the shapes do not say so: the same
    number of axes, several axes that could be the one, only axes in ``exclude``
    (those shown in napari's canvas, a stack axis chosen), or an axis longer than
    ``limits.MAX_UNSTATED_CHANNELS`` (a stack's depth more likely than channels).

    Parameters
    ----------
    shape, labels_shape : sequence of int
    exclude : sequence of int
        Axes that cannot hold channels.

    Returns
    -------
    int or None

    Examples
    --------
    >>> labels_channel_axis((2, 64, 48), (64, 48)), labels_channel_axis((64, 48), (64, 48))
    (0, None)
    """
    shape, labels_shape = tuple(int(n) for n in shape), tuple(int(n) for n in labels_shape)
    if len(shape) != len(labels_shape) + 1:
        return None
    fits = [
        a
        for a in range(len(shape))
        if a not in exclude and 1 <= shape[a] <= MAX_UNSTATED_CHANNELS
        and shape[:a] + shape[a + 1 :] == labels_shape
    ]  # fmt: skip
    return fits[0] if len(fits) == 1 else None


def detect_in_channels(
    shape: Sequence[int],
    *,
    channel_axis: int | None,
    axis: int | Sequence[int] | None,
    spatial_dims: int = 2,
) -> int:
    """Channels of an image of ``shape`` for a new model.

    RGB(A) on the last axis counts as 3, a given ``channel_axis`` as its size,
    anything else as 1.

    Parameters
    ----------
    shape : sequence of int
    channel_axis : int or None
    axis : int, sequence of int or None
        The stack axis (or axes), if the image is a stack of planes.
    spatial_dims : {2, 3}

    Returns
    -------
    int
    """
    shape = tuple(int(n) for n in shape)
    if channel_axis is not None:
        return shape[channel_axis]
    stacked = 0 if axis is None else 1 if isinstance(axis, (int, np.integer)) else len(axis)
    non_stack = len(shape) - stacked
    if non_stack == spatial_dims + 1 and shape[-1] in (3, 4):
        return 3
    return 1
