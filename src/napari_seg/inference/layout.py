"""Which axes of an input array are channels, image planes and slices (numpy only)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

#: Planes smaller than this along either axis cannot be segmented meaningfully.
MIN_PLANE_SIZE = 8


@dataclass(frozen=True)
class ImageLayout:
    """How an array of ``shape`` maps onto 2D model inputs.

    Attributes
    ----------
    shape : tuple of int
        Shape of the input array.
    channel_axis : int or None
        Axis holding the channels, or None for a single-channel image.
    channels : int
        Channels passed to the model (an RGBA image gives 3 to an RGB model).
    spatial_axes : tuple of int
        The two axes of each 2D plane ``(Y, X)``.
    slice_axes : tuple of int
        Axes iterated over (stack, time...), kept in the output.
    """

    shape: tuple[int, ...]
    channel_axis: int | None
    channels: int
    spatial_axes: tuple[int, int]
    slice_axes: tuple[int, ...]

    @property
    def plane_shape(self) -> tuple[int, int]:
        return (self.shape[self.spatial_axes[0]], self.shape[self.spatial_axes[1]])

    @property
    def n_planes(self) -> int:
        return int(np.prod([self.shape[a] for a in self.slice_axes], dtype=np.int64))

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the labels: the input's shape without the channel axis."""
        return tuple(n for a, n in enumerate(self.shape) if a != self.channel_axis)

    def planes(self) -> Iterator[tuple[int, ...]]:
        """Index along ``slice_axes`` of every plane, in C order."""
        return product(*(range(self.shape[a]) for a in self.slice_axes))

    def plane_at(self, number: int) -> tuple[int, ...]:
        """The ``number``-th entry of :meth:`planes`."""
        sizes = [self.shape[a] for a in self.slice_axes]
        return tuple(int(i) for i in np.unravel_index(number, sizes)) if sizes else ()

    def input_index(self, plane: tuple[int, ...], ys: slice, xs: slice) -> tuple:
        """Index into the input array selecting channels x ``ys`` x ``xs`` of ``plane``."""
        index: list = [slice(None)] * len(self.shape)
        for axis, i in zip(self.slice_axes, plane, strict=True):
            index[axis] = i
        index[self.spatial_axes[0]] = ys
        index[self.spatial_axes[1]] = xs
        if self.channel_axis is not None:
            index[self.channel_axis] = slice(0, self.channels)
        return tuple(index)

    def output_index(self, plane: tuple[int, ...], ys: slice, xs: slice) -> tuple:
        """Index into the labels array for the same region."""
        index = self.input_index(plane, ys, xs)
        if self.channel_axis is None:
            return index
        return index[: self.channel_axis] + index[self.channel_axis + 1 :]

    def read(self, image, plane: tuple[int, ...], ys: slice, xs: slice) -> np.ndarray:
        """Read one region as a float32 ``(C, h, w)`` array.

        Only the region is read: numpy, dask and zarr arrays all support this
        lazily. The result is always a new array (callers normalise it in place;
        a float32 input must not be changed through a view).
        """
        block = np.asarray(image[self.input_index(plane, ys, xs)])
        if self.channel_axis is None:
            block = block[np.newaxis]
        else:
            # The remaining axes keep their order: move channels first.
            remaining = sorted([self.channel_axis, *self.spatial_axes])
            block = np.moveaxis(block, remaining.index(self.channel_axis), 0)
            if self.spatial_axes[0] > self.spatial_axes[1]:
                block = block.swapaxes(1, 2)
        return np.array(block, dtype=np.float32)


def resolve_layout(
    shape: Sequence[int],
    *,
    in_channels: int,
    channel_axis: int | None = None,
    axis: int | Sequence[int] | None = None,
) -> ImageLayout:
    """Work out channel, plane and slice axes for an input of ``shape``.

    Parameters
    ----------
    shape : sequence of int
        The input's shape.
    in_channels : int
        Channels the model expects.
    channel_axis : int, optional
        Axis of the channels. When not given: none for single-channel models;
        otherwise the last axis if its size is ``in_channels`` (or 4 for an
        RGBA image into a 3-channel model), else the first such axis.
    axis : int or sequence of int, optional
        Axis (or axes) to segment slice by slice along, e.g. Z of a ZYX
        stack. Required when the image has more than two non-channel axes.

    Returns
    -------
    ImageLayout

    Raises
    ------
    ValueError
        For empty or too small images, a channel count that does not match,
        or a stack without a chosen ``axis``.

    Examples
    --------
    >>> resolve_layout((512, 512, 3), in_channels=3).channel_axis
    2
    >>> resolve_layout((10, 64, 64), in_channels=1, axis=0).slice_axes
    (0,)
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(f"image must have at least 2 dimensions, got shape {shape}")
    if 0 in shape:
        raise ValueError(f"image is empty: shape {shape}")
    caxis = _channel_axis(shape, in_channels, channel_axis)
    others = [a for a in range(ndim) if a != caxis]
    if axis is None:
        slice_axes: tuple[int, ...] = ()
        if len(others) == 3 and in_channels == 1 and 1 < shape[-1] <= 4:
            raise ValueError(
                f"the model expects 1 input channel but the image (shape {shape}) looks like "
                f"it has {shape[-1]} channels on its last axis; use a {shape[-1]}-channel model, "
                "or pass axis=... to segment it slice by slice"
            )
        if len(others) > 2:
            raise ValueError(
                f"image of shape {shape} has {len(others)} non-channel axes but the model is 2D: "
                f"choose the axis to segment slice by slice along (axis=...), e.g. axis={others[0]}"
            )
    else:
        slice_axes = tuple(sorted(_normalise_axes(axis, ndim, "axis")))
        if caxis in slice_axes:
            raise ValueError(f"axis {axis} is the channel axis ({caxis}); choose another axis")
    spatial = [a for a in others if a not in slice_axes]
    if len(spatial) != 2:
        raise ValueError(
            f"image of shape {shape} with channel_axis={caxis} and axis={axis} leaves "
            f"{len(spatial)} plane axes; exactly 2 are needed"
        )
    layout = ImageLayout(shape, caxis, in_channels, (spatial[0], spatial[1]), slice_axes)
    if min(layout.plane_shape) < MIN_PLANE_SIZE:
        raise ValueError(
            f"image planes of {layout.plane_shape[0]}x{layout.plane_shape[1]} pixels are too "
            f"small: at least {MIN_PLANE_SIZE}x{MIN_PLANE_SIZE} are needed (shape {shape})"
        )
    return layout


def _channel_axis(shape: tuple[int, ...], in_channels: int, given: int | None) -> int | None:
    ndim = len(shape)
    if given is not None:
        (caxis,) = _normalise_axes(given, ndim, "channel_axis")
        n = shape[caxis]
        if n != in_channels and not (n == 4 and in_channels == 3):
            raise ValueError(
                f"the model expects {in_channels} channel(s) but channel axis {caxis} of the "
                f"image (shape {shape}) has {n}"
            )
        return caxis
    if in_channels == 1:
        return None
    if shape[-1] == in_channels or (in_channels == 3 and shape[-1] == 4):
        return ndim - 1
    candidates = [a for a, n in enumerate(shape) if n == in_channels]
    if not candidates:
        raise ValueError(
            f"the model expects {in_channels} channels but no axis of the image "
            f"(shape {shape}) has that size; check the model or pass channel_axis"
        )
    return candidates[0]


def _normalise_axes(axis, ndim: int, name: str) -> list[int]:
    axes = [axis] if np.isscalar(axis) else list(axis)
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
