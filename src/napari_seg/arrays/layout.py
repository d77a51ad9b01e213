"""Which axes of an input array are channels, spatial and stacked (numpy only).

This module is the one home of the layout rule: inference, training, the
widgets and the command line all ask it which axes a network sees (2 for a 2D
network, 3 for a 3D one) and which axes are iterated over (a stack segmented
slice by slice, a time series); which axis holds the channels is
:mod:`.channels`' rule. The spacing of the spatial axes travels with the layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

from .._types import RegionArray
from .._validate import check_spacing
from .axes import normalise_axes, output_axes
from .channels import channel_axis_of

#: Inputs smaller than this along a spatial axis cannot be segmented meaningfully (a
#: volume may be thinner along one axis: :func:`too_small`).
MIN_SPATIAL_SIZE = 8
#: The former name of :data:`MIN_SPATIAL_SIZE` (2D planes).
MIN_PLANE_SIZE = MIN_SPATIAL_SIZE


@dataclass(frozen=True)
class ImageLayout:
    """How an array of ``shape`` maps onto the network's inputs.

    Attributes
    ----------
    shape : tuple of int
        Shape of the input array.
    channel_axis : int or None
        Axis holding the channels, or None for a single-channel image.
    channels : int
        Channels passed to the model (an RGBA image gives 3 to an RGB model).
    spatial_axes : tuple of int
        The axes the network sees, in order (``(Y, X)`` or ``(Z, Y, X)``).
    slice_axes : tuple of int
        Axes iterated over (stack, time...), kept in the output.
    spacing : tuple of float, optional
        Physical size of a pixel along each spatial axis, when known.
    """

    shape: tuple[int, ...]
    channel_axis: int | None
    channels: int
    spatial_axes: tuple[int, ...]
    slice_axes: tuple[int, ...]
    spacing: tuple[float, ...] | None = None

    @property
    def spatial_dims(self) -> int:
        """2 or 3: the dimensionality of the network's inputs."""
        return len(self.spatial_axes)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Size of each input of the network (one plane, or one volume)."""
        return tuple(self.shape[a] for a in self.spatial_axes)

    @property
    def plane_shape(self) -> tuple[int, ...]:
        """The spatial shape (the name predates 3D layouts)."""
        return self.spatial_shape

    @property
    def n_planes(self) -> int:
        """Number of network inputs (planes or volumes) along the slice axes."""
        return int(np.prod([self.shape[a] for a in self.slice_axes], dtype=np.int64))

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the labels: the input's shape without the channel axis."""
        return tuple(n for a, n in enumerate(self.shape) if a != self.channel_axis)

    @property
    def output_slice_axes(self) -> tuple[int, ...]:
        """``slice_axes`` as axes of the labels (which have no channel axis)."""
        return output_axes(self.slice_axes, self.channel_axis)

    def planes(self) -> Iterator[tuple[int, ...]]:
        """Index along ``slice_axes`` of every plane (or volume), in C order.

        Returns
        -------
        iterator of tuple of int
        """
        return product(*(range(self.shape[a]) for a in self.slice_axes))

    def plane_at(self, number: int) -> tuple[int, ...]:
        """The ``number``-th entry of :meth:`planes`.

        Parameters
        ----------
        number : int
            Position in C order, ``0 <= number < n_planes``.

        Returns
        -------
        tuple of int
        """
        sizes = [self.shape[a] for a in self.slice_axes]
        return tuple(int(i) for i in np.unravel_index(number, sizes)) if sizes else ()

    def input_index(self, plane: tuple[int, ...], *region: slice) -> tuple:
        """Index into the input selecting channels x ``region`` of ``plane``.

        Parameters
        ----------
        plane : tuple of int
            Position along ``slice_axes``.
        *region : slice
            One slice per spatial axis, in the order of ``spatial_axes``.

        Returns
        -------
        tuple
            Ints, slices; the channel axis keeps the model's channels only.
        """
        index: list = [slice(None)] * len(self.shape)
        for axis, i in zip(self.slice_axes, plane, strict=True):
            index[axis] = i
        for axis, part in zip(self.spatial_axes, region, strict=True):
            index[axis] = part
        if self.channel_axis is not None:
            index[self.channel_axis] = slice(0, self.channels)
        return tuple(index)

    def output_index(self, plane: tuple[int, ...], *region: slice) -> tuple:
        """Index into the labels array for the same region as :meth:`input_index`.

        Parameters
        ----------
        plane : tuple of int
        *region : slice

        Returns
        -------
        tuple
        """
        index = self.input_index(plane, *region)
        if self.channel_axis is None:
            return index
        return index[: self.channel_axis] + index[self.channel_axis + 1 :]

    def read(self, image: RegionArray, plane: tuple[int, ...], *region: slice) -> np.ndarray:
        """Read one region as a float32 ``(C, *spatial)`` array.

        Only the region is read: numpy, dask and zarr arrays all support this
        lazily. The result is always a new array (callers normalise it in place;
        a float32 input must not be changed through a view).

        Parameters
        ----------
        image : array-like
            The input (numpy, dask, zarr) of ``shape``.
        plane : tuple of int
        *region : slice
            One slice per spatial axis.

        Returns
        -------
        numpy.ndarray
        """
        return np.array(self.read_raw(image, plane, *region), dtype=np.float32)

    def read_raw(self, image: RegionArray, plane: tuple[int, ...], *region: slice) -> np.ndarray:
        """Read one region as ``(C, *spatial)`` in the image's own dtype.

        Like :meth:`read` without the conversion to float32; the result may be
        a view of a numpy ``image``, so it is for reading only (for example by
        :meth:`IntensityStats.apply` with ``out``).

        Parameters
        ----------
        image : array-like
        plane : tuple of int
        *region : slice

        Returns
        -------
        numpy.ndarray
        """
        block = np.asarray(image[self.input_index(plane, *region)])
        kept = sorted(a for a in (self.channel_axis, *self.spatial_axes) if a is not None)
        order = [kept.index(a) for a in self.spatial_axes]
        if self.channel_axis is None:
            return np.transpose(block, order)[np.newaxis]
        return np.transpose(block, [kept.index(self.channel_axis), *order])


def resolve_layout(
    shape: Sequence[int],
    *,
    in_channels: int,
    channel_axis: int | None = None,
    axis: int | Sequence[int] | None = None,
    spatial_dims: int = 2,
    spacing: Sequence[float] | None = None,
) -> ImageLayout:
    """Work out channel, spatial and slice axes for an input of ``shape``.

    Parameters
    ----------
    shape : sequence of int
        The input's shape.
    in_channels : int
        Channels the model expects.
    channel_axis : int, optional
        Axis of the channels; found by :func:`channel_axis_of` when not given.
    axis : int or sequence of int, optional
        Axis (or axes) to iterate over, e.g. Z of a ZYX stack for a 2D model.
        Required when the image has more non-channel axes than the network.
    spatial_dims : {2, 3}
        Dimensionality of the network's inputs.
    spacing : sequence of float, optional
        Physical pixel size along each spatial axis.

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
    >>> resolve_layout((10, 64, 64), in_channels=1, spatial_dims=3).spatial_axes
    (0, 1, 2)
    """
    shape = _checked_shape(shape, spatial_dims)
    if channel_axis is None and _one_channel_last(shape, in_channels, axis, spatial_dims):
        channel_axis = len(shape) - 1
    caxis = channel_axis_of(shape, in_channels=in_channels, given=channel_axis)
    others = [a for a in range(len(shape)) if a != caxis]
    slice_axes = _slice_axes(shape, axis, caxis, others, in_channels, spatial_dims)
    spatial = tuple(a for a in others if a not in slice_axes)
    if len(spatial) != spatial_dims:
        advice = (
            "; the model is 3D: give it a volume, or segment the plane with a 2D model"
            if spatial_dims == 3 and len(spatial) < 3 and axis is None
            else ""
        )
        raise ValueError(
            f"image of shape {shape} with channel_axis={caxis} and axis={axis} leaves "
            f"{len(spatial)} spatial axes; exactly {spatial_dims} are needed{advice}"
        )
    layout = ImageLayout(
        shape, caxis, in_channels, spatial, slice_axes, _spacing(spacing, spatial_dims)
    )
    _check_size(layout)
    return layout


def _check_size(layout: ImageLayout) -> None:
    if too_small(layout.spatial_shape):
        sizes = "x".join(map(str, layout.spatial_shape))
        what = "planes" if layout.spatial_dims == 2 else "volumes"
        raise ValueError(
            f"image {what} of {sizes} pixels are too small: {size_rule(layout.spatial_dims)} "
            f"(shape {layout.shape})"
        )


def too_small(sizes: Sequence[int]) -> bool:
    """Whether a plane or volume of ``sizes`` (pixels per spatial axis) is too small to
    segment: a plane needs :data:`MIN_SPATIAL_SIZE` pixels along both axes; a volume
    along two of its three, and any depth along the third (a stack of a few slices,
    which the tiler pads as MONAI and nnU-Net do).

    Parameters
    ----------
    sizes : sequence of int

    Returns
    -------
    bool

    Examples
    --------
    >>> too_small((5, 64, 64)), too_small((64, 5, 64)), too_small((5, 5, 64))
    (False, False, True)
    >>> too_small((4, 64))
    True
    """
    largest = sorted(int(n) for n in sizes)[-2:]
    return min(sizes) < 1 or min(largest) < MIN_SPATIAL_SIZE


def size_rule(spatial_dims: int) -> str:
    """:func:`too_small`'s rule in words, for messages.

    Parameters
    ----------
    spatial_dims : {2, 3}

    Returns
    -------
    str
    """
    if spatial_dims == 2:
        return f"at least {MIN_SPATIAL_SIZE} per axis are needed"
    return f"at least {MIN_SPATIAL_SIZE} along two of the three axes are needed"


def _checked_shape(shape: Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    if len(shape) < spatial_dims:
        raise ValueError(f"image must have at least {spatial_dims} dimensions, got shape {shape}")
    if 0 in shape:
        raise ValueError(f"image is empty: shape {shape}")
    return shape


def _axis_text(axes: int | tuple[int, ...]) -> str:
    """An axis choice as both front ends spell it: ``--axis 0,1 / axis=(0, 1)``."""
    flag = axes if isinstance(axes, int) else ",".join(map(str, axes))
    return f"--axis {flag} / axis={axes}"


def _one_channel_last(
    shape: tuple[int, ...],
    in_channels: int,
    axis: int | Sequence[int] | None,
    spatial_dims: int,
) -> bool:
    """Whether a last axis of one entry is the channel axis of a one-channel model's
    image: ``(H, W, 1)`` or ``(Z, Y, X, 1)``, as Keras, OpenCV and a TIFF saved from
    them store a grey image. Such an axis is never spatial (a plane one pixel wide
    is too small to segment), and taking it for a stack axis would leave the
    wrong two axes to the network."""
    if in_channels != 1 or len(shape) <= spatial_dims or shape[-1] != 1:
        return False
    last = len(shape) - 1
    return axis is None or last not in normalise_axes(axis, len(shape), "axis")


def _slice_axes(
    shape: tuple[int, ...],
    axis: int | Sequence[int] | None,
    caxis: int | None,
    others: list[int],
    in_channels: int,
    spatial_dims: int,
) -> tuple[int, ...]:
    if axis is not None:
        slice_axes = tuple(sorted(normalise_axes(axis, len(shape), "axis")))
        if caxis in slice_axes:
            raise ValueError(f"axis {axis} is the channel axis ({caxis}); choose another axis")
        return slice_axes
    if spatial_dims == 2 and len(others) == 3 and in_channels == 1 and 1 < shape[-1] <= 4:
        raise ValueError(
            f"the model expects 1 input channel but the image (shape {shape}) looks like "
            f"it has {shape[-1]} channels on its last axis; use a {shape[-1]}-channel model, "
            "read one channel (--channel N on the command line, image[..., N] in Python), "
            "or segment it slice by slice along an axis (--axis N, axis=N)"
        )
    if len(others) > spatial_dims:
        leading = tuple(others[: len(others) - spatial_dims])  # a TZYX stack: T and Z
        if all(shape[a] == 1 for a in leading):  # (1, H, W): a stack of one, as a 2D
            return leading  # NIfTI reads, or PyTorch's channel-first plane; no choice
        example = leading[0] if len(leading) == 1 else leading
        what = "slice by slice" if spatial_dims == 2 else "volume by volume (a time series)"
        raise ValueError(
            f"image of shape {shape} has {len(others)} non-channel axes but the model is "
            f"{spatial_dims}D: choose the axis to go through {what} (--axis on the command "
            f"line, axis= in Python), e.g. {_axis_text(example)}"
        )
    return ()


def _spacing(spacing: Sequence[float] | None, spatial_dims: int) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    values = tuple(float(s) for s in spacing)
    check_spacing("spacing", values, (spatial_dims,))
    return values
