"""What an image file says besides its pixels, in one form for every format: its axis
letters, its pixel size and placement (a TIFF's header, an OME-Zarr image's metadata),
read once per file by the commands and the scale-out runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ._io import TIFF_SUFFIXES
from ._ome_zarr import read_ome_zarr_axis_letters, read_ome_zarr_layout, read_ome_zarr_transform

if TYPE_CHECKING:
    from ._calibration import Calibration, TiffHeader


def read_source_transform(
    path: str | os.PathLike,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[str | None, ...]] | None:
    """The scale, translation and units along each array axis that the image file at
    ``path`` declares: an OME-Zarr image's (:func:`read_ome_zarr_transform`) or a
    calibrated TIFF's (ImageJ or OME-TIFF: ``_calibration.read_calibration``, no
    translation); None for other files.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    tuple or None
    """
    return source_transform(path, tiff_header(path))


def source_transform(path: str | os.PathLike, header: TiffHeader | None):
    """:func:`read_source_transform`, for a caller that has read the file's
    :func:`file_header` already (None: neither a TIFF nor an OME-Zarr image).

    Parameters
    ----------
    path : str or path-like
    header : TiffHeader or None

    Returns
    -------
    tuple or None
    """
    if header is None or Path(path).suffix.lower() not in TIFF_SUFFIXES:
        return read_ome_zarr_transform(path)  # with its translation, which TIFF lacks
    return None if header.calibration is None else header.calibration.transform


def file_axes(path: str | os.PathLike, header: TiffHeader | None, ndim: int) -> str | None:
    """The letters a file names its ``ndim`` axes by: a TIFF's (``header``, from
    :func:`tiff_header`), else an OME-Zarr image's axes as letters; None when it names
    none, or not ``ndim`` of them (an array read one channel of, say).

    Parameters
    ----------
    path : str or path-like
    header : TiffHeader or None
    ndim : int
        The axes of the array the letters are for.

    Returns
    -------
    str or None
    """
    letters = header.axes if header is not None else read_ome_zarr_axis_letters(path)
    return letters if letters and len(letters) == ndim else None


def source_spacing(path: str | os.PathLike, axes) -> tuple[tuple[float, ...], str | None] | None:
    """The voxel size along ``axes`` that the image file at ``path`` declares
    (:func:`read_source_transform`) and its length unit (None when the file names
    none), or None (no size declared, or a scale of 1 along every one of them: see
    ``arrays.spacing.spacing_from_scale``).

    Parameters
    ----------
    path : str or path-like
    axes : sequence of int

    Returns
    -------
    tuple or None
        ``(spacing, unit)``.
    """
    return transform_spacing(read_source_transform(path), axes)


def transform_spacing(transform, axes) -> tuple[tuple[float, ...], str | None] | None:
    """:func:`source_spacing` from a ``(scale, translation, units)`` transform already
    read (:func:`source_transform`; None: the file declares none).

    Parameters
    ----------
    transform : tuple or None
    axes : sequence of int

    Returns
    -------
    tuple or None
        ``(spacing, unit)``.
    """
    from .arrays.spacing import spacing_and_unit

    if transform is None:
        return None
    scale, _translation, units = transform
    spacing, unit = spacing_and_unit(scale, axes, units)
    return None if spacing is None else (spacing, unit)


def tiff_header(path: str | os.PathLike) -> TiffHeader | None:
    """The axes and pixel size of the TIFF at ``path`` (``_calibration.read_header``,
    one read of its header: ``.axes``, ``.channel_axis``, ``.calibration``), or None
    for a file that is not a TIFF.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    TiffHeader or None
    """
    from ._calibration import read_header

    if Path(path).suffix.lower() not in TIFF_SUFFIXES:
        return None
    return read_header(path)


def file_header(path: str | os.PathLike) -> TiffHeader | None:
    """The axes and pixel size an image file names, in one form for every format: a
    TIFF's header (:func:`tiff_header`), or an OME-Zarr image's axes as TIFF letters
    (``"CZYX"``) and its scale as a calibration when its spatial axes have a length
    unit; None for other files. What the labels of such a file keep, and where its
    channel and slice axes are read from.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    TiffHeader or None
    """
    from ._calibration import Calibration, TiffHeader

    if (header := tiff_header(path)) is not None:
        return header
    letters, transform = read_ome_zarr_layout(path) or (None, None)
    if letters is None:
        return None
    calibration = None
    if transform is not None:
        scale, _translation, units = transform
        spatial = {u for a, u in zip(letters, units, strict=True) if a in "ZYX"}
        unit = spatial.pop() if len(spatial) == 1 else None
        if unit is not None:
            sizes = zip(letters, scale, strict=True)
            calibration = Calibration(
                letters, tuple(float(v) if a in "ZYX" else 1.0 for a, v in sizes), unit
            )
    return TiffHeader(None if "Q" in letters else letters, calibration)


def tiff_calibration(path: str | os.PathLike) -> Calibration | None:
    """The pixel size of the TIFF at ``path`` (:func:`tiff_header`); None for other
    files or an uncalibrated TIFF."""
    header = tiff_header(path)
    return None if header is None else header.calibration


def file_channel_axis(path: str | os.PathLike) -> int | None:
    """The channel axis the image file at ``path`` names (:func:`file_header`): a
    TIFF's or an OME-Zarr image's one ``C`` axis, or None."""
    header = file_header(path)
    return None if header is None else header.channel_axis
