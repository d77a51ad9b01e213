"""Which part of a layer's array a Segment run covers (no napari import).

The widget describes the viewer's state (displayed axes, current step,
visible box) with plain numbers; this module turns it into indices for the
image array, the labels array and the predictor's axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..arrays.channels import channel_axis_of
from ..arrays.screen import view_axes, volume_depth

SCOPES = ("slice", "stack", "visible")


@dataclass(frozen=True)
class ScopePlan:
    """Indices and axes for one Segment run.

    Attributes
    ----------
    data_index : tuple
        Index into the image array (integers fix slice axes, slices crop).
    labels_index : tuple
        The same region in the labels array (the channel axis removed).
    labels_shape : tuple of int
        Shape of the full labels array for the image.
    channel_axis : int or None
        Channel axis of the indexed image.
    axis : tuple of int or None
        Axes of the indexed image to segment slice by slice along.
    origin : tuple of int
        Start of the region along each labels axis.
    spatial : tuple of int
        The layer axes the model sees (2, or 3 for a 3D model), for their scale.
    """

    data_index: tuple
    labels_index: tuple
    labels_shape: tuple[int, ...]
    channel_axis: int | None
    axis: tuple[int, ...] | None
    origin: tuple[int, ...]
    spatial: tuple[int, ...] = ()


def plan_scope(
    shape: Sequence[int],
    *,
    in_channels: int,
    rgb: bool,
    displayed: Sequence[int],
    step: Sequence[int],
    scope: str = "stack",
    visible: Sequence[tuple[int, int]] | None = None,
    spatial_dims: int = 2,
) -> ScopePlan:
    """Plan a run over ``scope`` of an image layer's array of ``shape``.

    Parameters
    ----------
    shape : sequence of int
        Shape of the layer's data (with the RGB axis last when ``rgb``).
    in_channels : int
        Channels the model expects. For non-RGB layers with more than one, the
        channel axis is a non-displayed axis of that size (the layout rule,
        :func:`napari_seg.arrays.channel_axis_of`).
    rgb : bool
        Whether the layer is RGB(A) (channels on the last data axis).
    displayed : sequence of int
        Layer axes shown in the canvas; the last two are the plane axes, and with
        three (napari's 3D view) the first is the depth shown.
    step : sequence of int
        Current index along every layer axis.
    scope : {"slice", "stack", "visible"}
        The current slice, every slice, or the visible part of the current slice.
        For a 3D model: the current volume (other slider axes, e.g. time, fixed),
        every volume, or the current volume cropped to the visible rows and columns.
        In napari's 3D view (three displayed axes) what is on screen is a volume:
        a 2D model's "slice" and "visible" then take every plane along the depth
        axis shown (other slider axes fixed), slice by slice.
    visible : sequence of (int, int), optional
        ``[start, stop)`` per layer axis of the visible region (for ``"visible"``).
    spatial_dims : {2, 3}
        The model's dimensionality. A 3D model sees the displayed plane and a depth
        (:func:`napari_seg.arrays.screen.volume_depth`: the displayed three axes in
        napari's 3D view, the third of a ZYX layer in a transposed view).

    Returns
    -------
    ScopePlan

    Raises
    ------
    ValueError
        For an unknown scope, fewer than two displayed axes, a channel count no
        axis has, or a visible region that is not known yet.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    shape = tuple(int(n) for n in shape)
    layer_ndim = len(shape) - 1 if rgb else len(shape)
    # napari's 3D view shows a volume: its depth axis is part of what is on screen.
    plane, shown_depth = view_axes(displayed)
    if len(plane) != 2:
        raise ValueError(f"two displayed axes are needed to segment planes, got {displayed}")
    others = [a for a in range(layer_ndim) if a not in plane]
    # The layout rule (arrays.layout): channels on the RGB axis, else on a slider axis.
    shown = [*plane] if shown_depth is None else [shown_depth, *plane]
    channel_axis = channel_axis_of(shape, in_channels=in_channels, rgb=rgb, spatial=shown)
    spatial = list(plane)
    if spatial_dims == 3:
        axes = [a for a in range(layer_ndim) if a != channel_axis]
        depth = volume_depth(axes, plane, shown_depth)
        if depth is None:
            raise ValueError(f"a 3D model needs a volume; this layer has shape {shape}")
        spatial = sorted([depth, *plane])
    slice_axes = [a for a in others if a != channel_axis and a not in spatial]
    index: list = [slice(None)] * len(shape)
    if scope != "stack":
        for a in slice_axes:
            if a != shown_depth:  # a 2D model in the 3D view: every plane on screen
                index[a] = int(step[a])
    if scope == "visible":
        if visible is None:
            raise ValueError("the visible region is unknown; draw the canvas first")
        for a in plane:
            lo, hi = (max(0, min(shape[a], int(v))) for v in visible[a])
            index[a] = slice(lo, hi)
    return _plan(shape, index, channel_axis, spatial)


def _plan(
    shape: tuple[int, ...], index: list, channel_axis: int | None, plane: list[int]
) -> ScopePlan:
    kept = [a for a, i in enumerate(index) if not isinstance(i, int)]
    labels_axes = [a for a in range(len(shape)) if a != channel_axis]
    slice_axes = [kept.index(a) for a in kept if a != channel_axis and a not in plane]
    return ScopePlan(
        data_index=tuple(index),
        labels_index=tuple(index[a] for a in labels_axes),
        labels_shape=tuple(shape[a] for a in labels_axes),
        channel_axis=None if channel_axis is None else kept.index(channel_axis),
        axis=tuple(slice_axes) or None,
        origin=tuple(
            index[a] if isinstance(index[a], int) else (index[a].start or 0) for a in labels_axes
        ),
        spatial=tuple(plane),
    )
