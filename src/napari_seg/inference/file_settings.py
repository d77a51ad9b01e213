"""A job's settings completed from what its image's file says, where the user gives
none: a medical volume's channels or time points, slice axes and voxel size
(:func:`with_volume_geometry`), a TIFF's or OME-Zarr's named channel and stack axes
and pixel size (:func:`with_file_layout`). ``predict`` and block-wise runs both
take them from here."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._types import RegionArray
from .blocks import layout_of
from .config import PredictConfig

if TYPE_CHECKING:
    from .._calibration import TiffHeader
    from ..medical import VolumeGeometry
    from ..models.wrapper import SegmentationModel


def with_volume_geometry(
    model: SegmentationModel,
    image: RegionArray,
    config: PredictConfig,
    geometry: VolumeGeometry | None,
    named_channels: bool = False,
) -> PredictConfig:
    """``config`` with a medical volume's defaults where it gives none: a 4D volume's
    channels first (time points to go through when ``axis`` names that axis, or when
    it holds more volumes than a volume has channels and not the model's count), a 2D
    model's axial slices, the header's voxel size in its unit
    (:func:`napari_seg.medical.layout_defaults`); unchanged for other images (None).

    Parameters
    ----------
    model : SegmentationModel
    image : array-like
    config : PredictConfig
    geometry : VolumeGeometry or None
        The volume's (``_io.read_with_geometry``).
    named_channels : bool
        Whether the volume is a case of channel files (``_dataset_json.channel_files``):
        channels whatever their number.

    Returns
    -------
    PredictConfig
    """
    from ..medical import layout_defaults

    if geometry is None:
        return config
    defaults = layout_defaults(
        tuple(image.shape),
        model.spec.spatial_dims,
        geometry.spacing,
        stack=config.axis,
        in_channels=model.spec.in_channels,
        named_channels=named_channels,
    )
    if config.spacing is None:  # the header's voxel size, in the header's unit
        defaults["spacing_unit"] = geometry.unit
    given = {k: getattr(config, k) for k in defaults if getattr(config, k) is not None}
    return config.with_(**{**defaults, **given})


def with_source_spacing(
    model: SegmentationModel,
    image: RegionArray,
    config: PredictConfig,
    transform: tuple | None,
) -> PredictConfig:
    """``config`` with the spacing its image's file declares, and its length unit,
    when it gives none.

    Parameters
    ----------
    model : SegmentationModel
    image : array-like
    config : PredictConfig
    transform : tuple or None
        The file's ``(scale, translation, units)`` along every axis of ``image`` (an
        OME-Zarr image's or a calibrated TIFF's: ``_headers.read_source_transform``, in
        one length unit), or None when it declares none.

    Returns
    -------
    PredictConfig
    """
    from ..arrays.spacing import spacing_and_unit

    if config.spacing is not None or transform is None:
        return config
    scale, _translation, units = transform
    axes = layout_of(model, tuple(image.shape), config).spatial_axes
    spacing, unit = spacing_and_unit(scale, axes, units)
    return config if spacing is None else config.with_(spacing=spacing, spacing_unit=unit)


def with_file_layout(
    model: SegmentationModel,
    image: RegionArray,
    config: PredictConfig,
    path: str | os.PathLike,
    header: TiffHeader | None,
    transform: tuple | None,
) -> PredictConfig:
    """``config`` with what the image's file names, where it gives none: the channel
    axis (:func:`with_file_channels`), the axes to go through slice by slice
    (:func:`with_file_stack_axes`) and the voxel size (:func:`with_source_spacing`).

    Parameters
    ----------
    model : SegmentationModel
    image : array-like
        As read from ``path`` (one of its channels, when one was picked).
    config : PredictConfig
    path : str or path-like
    header : TiffHeader or None
        The file's axes and pixel size (``_headers.file_header``), less a picked channel.
    transform : tuple or None
        As :func:`with_source_spacing` takes it.

    Returns
    -------
    PredictConfig
    """
    from .._headers import file_axes

    shape = tuple(image.shape)
    channels = None if header is None else header.channel_axis
    config = with_file_channels(
        model, config, channels, shape, None if header is None else header.axes
    )
    config = with_file_stack_axes(model, config, file_axes(path, header, len(shape)))
    return with_source_spacing(model, image, config, transform)


def with_file_channels(
    model: SegmentationModel,
    config: PredictConfig,
    axis: int | None,
    shape: tuple[int, ...] | None = None,
    axes: str | None = None,
) -> PredictConfig:
    """``config`` with the channel axis its image's file names, when it gives none and
    the model reads several channels: a TIFF's or OME-Zarr's ``C`` axis
    (``_headers.file_channel_axis``; the rule: ``arrays.named.named_channel_axis``).
    A file whose axis letters say it holds one channel is refused to a model of
    several (``arrays.named.refuse_named_channels``).

    Parameters
    ----------
    model : SegmentationModel
    config : PredictConfig
    axis : int or None
        The file's channel axis, or None when it names none.
    shape : tuple of int, optional
        The image's shape: a model of one channel on a file of several is refused
        with what to do (its ``C`` axis would otherwise be taken for a stack axis).
    axes : str, optional
        The file's axis letters (``_headers.file_header``).

    Returns
    -------
    PredictConfig

    Raises
    ------
    ValueError
        For a one-channel model on a file naming several channels, or a model of
        several on a file naming none.
    """
    from ..arrays.named import named_channel_axis, refuse_named_channels

    if shape is not None:
        refuse_named_channels(shape, axis, model.spec.in_channels, config.channel_axis, axes)

    found = named_channel_axis(config.channel_axis, model.spec.in_channels, [axis])
    return config if found == config.channel_axis else config.with_(channel_axis=found)


def with_file_stack_axes(
    model: SegmentationModel, config: PredictConfig, axes: str | None
) -> PredictConfig:
    """``config`` with the axes to segment slice by slice along that its image's file
    names, when it gives none: a TIFF's ``T`` and ``Z`` axes for a 2D model, its
    ``T`` axis for a 3D one (the rule: ``arrays.named.named_slice_axes``), less the
    channel axis the user gave (a z-stack that holds channels after all).

    Parameters
    ----------
    model : SegmentationModel
    config : PredictConfig
    axes : str or None
        The file's axis letters (``_headers.file_header``), or None.

    Returns
    -------
    PredictConfig
    """
    from ..arrays.named import named_slice_axes

    if config.axis is not None:
        return config
    found = named_slice_axes(axes, model.spec.spatial_dims, config.channel_axis)
    return config if found is None else config.with_(axis=found)


__all__ = [
    "with_file_channels",
    "with_file_layout",
    "with_file_stack_axes",
    "with_source_spacing",
    "with_volume_geometry",
]
