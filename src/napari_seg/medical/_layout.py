"""How napari-seg reads a medical volume's axes: a 4D volume's first axis as channels
or time points (:func:`volume_channel_axis`, the one rule), its axes as letters, and
how a model reads it when the user says nothing (:func:`layout_defaults`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: A 4D volume of more volumes than this holds time points, not channels (a cardiac
#: cine MRI's 20 to 30 frames, a dynamic or functional series' hundreds), unless a
#: model takes that many channels: multi-modal MRI has 2 to 5, a multi-echo series
#: a few echoes.
MAX_VOLUME_CHANNELS = 8


def volume_channel_axis(
    ndim: int,
    *,
    stack: int | Sequence[int] | None = None,
    labels_ndim: int | None = None,
    count: int | None = None,
    in_channels: int | None = None,
) -> int | None:
    """The channel axis of a medical volume of ``ndim`` axes as napari-seg reads it:
    the first of a 4D one (``c, z, y, x``: a 4D NIfTI, or a case's channel files),
    none of a 3D one. A 4D volume's first axis holds time points instead when the
    stack axes name it, when its labels have it too (labels have no channels: a
    cine MRI's frames, each segmented), or when it holds more than
    :data:`MAX_VOLUME_CHANNELS` volumes (``count``) and the model takes another
    number of channels (``in_channels``).

    Parameters
    ----------
    ndim : int
    stack : int or sequence of int, optional
        The axes the user segments (or trains) slice by slice along (``axis``).
    labels_ndim : int, optional
        The number of axes of the volume's labels, when training.
    count : int, optional
        The size of a 4D volume's first axis.
    in_channels : int, optional
        The channels of the model that reads it.

    Returns
    -------
    int or None
    """
    if ndim != 4 or labels_ndim == ndim:
        return None
    if count is not None and count > MAX_VOLUME_CHANNELS and in_channels != count:
        return None
    stack = (stack,) if isinstance(stack, int) else tuple(stack or ())
    return None if 0 in {a % ndim for a in stack} else 0


def volume_axes(
    ndim: int,
    *,
    stack: int | Sequence[int] | None = None,
    labels_ndim: int | None = None,
    count: int | None = None,
    in_channels: int | None = None,
) -> str | None:
    """The axes of a medical volume as napari-seg reads it, as letters: ``ZYX``; a 4D
    one's ``CZYX``, or ``TZYX`` when its first axis holds time points
    (:func:`volume_channel_axis`, which takes the other arguments); None for other
    arrays.

    Parameters
    ----------
    ndim : int
    stack : int or sequence of int, optional
    labels_ndim : int, optional
    count : int, optional
        The size of a 4D volume's first axis.
    in_channels : int, optional
        The channels of the model that reads it.

    Returns
    -------
    str or None
    """
    if ndim == 3:
        return "ZYX"
    if ndim != 4:
        return None
    found = volume_channel_axis(
        ndim, stack=stack, labels_ndim=labels_ndim, count=count, in_channels=in_channels
    )
    return "CZYX" if found == 0 else "TZYX"


def layout_defaults(
    shape: tuple[int, ...],
    spatial_dims: int,
    spacing: tuple[float, ...],
    stack: int | Sequence[int] | None = None,
    in_channels: int | None = None,
    named_channels: bool = False,
) -> dict[str, Any]:
    """How a model reads a medical volume when the user says nothing: a 4D volume's
    first axis holds channels (time points when ``stack`` names it, or when it holds
    more volumes than a volume has channels and the model takes another number: see
    :func:`volume_channel_axis`), a 2D model segments axial slices (the first
    spatial axis) one by one, and the voxel size is the image's spacing.

    Parameters
    ----------
    shape : tuple of int
        ``(z, y, x)`` or ``(c, z, y, x)``.
    spatial_dims : int
        The model's dimensionality.
    spacing : tuple of float
        The volume's ``(z, y, x)`` voxel size.
    stack : int or sequence of int, optional
        The stack axes the user gave (``axis``).
    in_channels : int, optional
        The model's channels.
    named_channels : bool
        Whether the first axis is channels whatever their number (a case of channel
        files its ``dataset.json`` names).

    Returns
    -------
    dict
        ``channel_axis``, ``axis`` and ``spacing`` settings of a ``PredictConfig``.
    """
    from ..arrays.named import named_slice_axes

    count = None if named_channels else shape[0]
    axes = volume_axes(len(shape), stack=stack, count=count, in_channels=in_channels)
    slices = named_slice_axes(axes, spatial_dims)
    return {
        "channel_axis": 0 if axes == "CZYX" else None,
        "axis": slices[0] if slices and len(slices) == 1 else slices,
        "spacing": tuple(spacing[-spatial_dims:]),
    }
