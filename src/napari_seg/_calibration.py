"""A TIFF's physical pixel size (ImageJ or OME-TIFF), read and written.

Microscopes and Fiji store the voxel size of a stack in one of two ways:

- an ImageJ hyperstack: X/YResolution tags (pixels per unit), the unit and the
  ``spacing`` between slices in the ImageJ description;
- an OME-TIFF: ``PhysicalSizeX/Y/Z`` (and their units, micrometres by default) in
  the OME-XML of the first image.

Only these two are read as a calibration. The resolution tags of any other TIFF
are a print resolution (72 dpi from an image editor), not a voxel size, and are
ignored: such a file reads as uncalibrated, as it does in napari.

Labels are written back as an ImageJ hyperstack with the source's calibration, so
Fiji, tifffile and napari-seg read the same voxel size from both files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ._units import LENGTH_UNITS

#: The unit names ImageJ and OME-XML use, by NGFF name (ImageJ writes the micro sign
#: escaped as ``\\u00B5``).
_SYMBOLS: dict[str, str] = {
    "nm": "nanometer", "um": "micrometer", "µm": "micrometer", "μm": "micrometer",
    "\\u00b5m": "micrometer", "micron": "micrometer", "microns": "micrometer",
    "mm": "millimeter", "cm": "centimeter", "m": "meter", "pm": "picometer",
    "å": "angstrom", "a": "angstrom", "in": "inch", "inch": "inch", "km": "kilometer",
}  # fmt: skip

#: ImageJ's names for the units napari-seg writes (others are written in micrometres).
_IMAGEJ_UNITS = {
    "nanometer": "nm", "micrometer": "micron", "millimeter": "mm", "centimeter": "cm",
    "meter": "m", "inch": "inch",
}  # fmt: skip

#: ImageJ hyperstacks hold these axes in this order, and these sample types.
_IMAGEJ_ORDER = "TZCYXS"
_IMAGEJ_DTYPES = ("uint8", "uint16", "float32")

#: Significant digits kept of a size read from a rational tag (1 / (10/3) is 0.3).
_DIGITS = 9


@dataclass(frozen=True)
class Calibration:
    """The physical size of a TIFF's pixels along each of its array's axes.

    Attributes
    ----------
    axes : str
        One tifffile axis letter per array axis (``"ZYX"``, ``"TZCYX"``, ``"YXS"``...).
    scale : tuple of float
        The size along each array axis, in ``unit`` along X, Y and Z; 1 along others.
    unit : str
        The NGFF name of the length unit (``"micrometer"``).
    """

    axes: str
    scale: tuple[float, ...]
    unit: str

    @property
    def units(self) -> tuple[str | None, ...]:
        """Each array axis's unit: ``unit`` along X, Y and Z, None along others."""
        return tuple(self.unit if a in "ZYX" else None for a in self.axes)

    @property
    def transform(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[str | None, ...]]:
        """Scale, translation (none: zeros) and units along each array axis, as
        ``_ome_zarr.read_ome_zarr_transform`` gives an OME-Zarr image's."""
        return self.scale, (0.0,) * len(self.scale), self.units

    def without(self, axis: int | None) -> Calibration:
        """The calibration of an array made by removing ``axis`` (e.g. the channels a
        model consumes): itself when ``axis`` is None."""
        if axis is None:
            return self
        axis %= len(self.axes)
        keep = [k for k in range(len(self.axes)) if k != axis]
        return Calibration(
            "".join(self.axes[k] for k in keep), tuple(self.scale[k] for k in keep), self.unit
        )


def length_unit(name: object) -> str | None:
    """The NGFF name of the length unit that ImageJ or OME-XML calls ``name``, or None
    (no unit, ``"pixel"``, or a unit that is not a length).

    Parameters
    ----------
    name : object

    Returns
    -------
    str or None
    """
    if not isinstance(name, str):
        return None
    text = name.strip()
    if text in LENGTH_UNITS:
        return text
    return _SYMBOLS.get(text.lower())


@dataclass(frozen=True)
class TiffHeader:
    """What napari-seg reads from a TIFF's header besides its pixels, in one pass.

    Attributes
    ----------
    axes : str or None
        tifffile's axis letters for the array napari-seg reads (``"ZCYX"`` for a Fiji
        hyperstack, ``"YXS"`` for RGB), or None when tifffile cannot name them all.
    calibration : Calibration or None
        As :func:`read_calibration`.
    shape : tuple of int or None
        The shape of that array, or None when the header could not be read.
    """

    axes: str | None
    calibration: Calibration | None
    shape: tuple[int, ...] | None = None

    @property
    def channel_axis(self) -> int | None:
        """The one ``C`` axis (a Fiji hyperstack's, an OME-TIFF's), or None. RGB
        samples (``S``) are left to the rule for a last axis of 3 or 4."""
        axes = self.axes or ""
        return axes.index("C") if axes.count("C") == 1 else None

    def without(self, axis: int | None) -> TiffHeader:
        """The header of an array made by removing ``axis`` (the channels a model
        consumes: its labels): itself when ``axis`` is None.

        Parameters
        ----------
        axis : int or None

        Returns
        -------
        TiffHeader
        """
        if axis is None:
            return self
        axes, shape = self.axes, self.shape
        if axes is not None:
            axis %= len(axes)
            axes = axes[:axis] + axes[axis + 1 :]
        if shape is not None:
            shape = shape[: axis % len(shape)] + shape[axis % len(shape) + 1 :]
        calibration = None if self.calibration is None else self.calibration.without(axis)
        return TiffHeader(axes, calibration, shape)


def read_header(path: str | os.PathLike) -> TiffHeader:
    """The axes and the calibration of the TIFF at ``path``, from one read of its
    header; neither (None, None) when it cannot be opened or its axes do not match
    the image napari-seg reads (the pixels are read, and refused, elsewhere).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    TiffHeader
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                return TiffHeader(None, None)
            series = tif.series[0]
            axes = str(series.axes)
            if len(axes) != len(series.shape):
                return TiffHeader(None, None)
            calibration = _calibration_of(tif, axes)
    except Exception:  # the pixels are read elsewhere; broken metadata is no information
        return TiffHeader(None, None)
    return TiffHeader(None if "Q" in axes else axes, calibration, tuple(series.shape))


def read_calibration(path: str | os.PathLike) -> Calibration | None:
    """The calibration an ImageJ or OME-TIFF file declares for its first image, or
    None (another TIFF, no unit, a spatial axis without a size, sizes that are not
    finite and positive, or axes that do not match the image napari-seg reads).

    ImageJ's slice spacing is 1 when the file gives none (ImageJ's own default); an
    OME-TIFF stack without ``PhysicalSizeZ`` has no calibration.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    Calibration or None
    """
    return read_header(path).calibration


def _calibration_of(tif, axes: str) -> Calibration | None:
    if tif.is_ome:
        sizes = _ome_sizes(tif.ome_metadata)
    elif tif.is_imagej:
        sizes = _imagej_sizes(tif.imagej_metadata or {}, tif.pages.first)
        if axes.count("I") == 1 and "Z" not in axes:  # a plain stack: ImageJ's slices
            axes = axes.replace("I", "Z")
    else:
        return None
    if sizes is None:
        return None
    found, unit = sizes
    if any(a in "ZYX" and a not in found for a in axes):  # e.g. an OME stack without Z size
        return None
    scale = tuple(found[a] if a in "ZYX" else 1.0 for a in axes)
    if not all(math.isfinite(s) and s > 0 for s in scale):
        return None
    return Calibration(axes, scale, unit)


def _rounded(value: float) -> float:
    return float(f"{value:.{_DIGITS}g}")


def _imagej_sizes(meta: dict, page) -> tuple[dict[str, float], str] | None:
    unit = length_unit(meta.get("unit"))
    if unit is None:  # ImageJ's uncalibrated images have no unit (or "pixel")
        return None
    try:
        x_res, y_res = page.get_resolution()
        sizes = {"X": _rounded(1 / x_res), "Y": _rounded(1 / y_res)}
        sizes["Z"] = float(meta.get("spacing", 1.0))  # ImageJ's pixel depth, 1 by default
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return sizes, unit


def _ome_sizes(xml: str | None) -> tuple[dict[str, float], str] | None:
    import tifffile

    try:
        ome = tifffile.xml2dict(xml or "").get("OME", {})
    except Exception:  # tifffile raises what its XML parser raises: the file is uncalibrated
        return None
    image = ome.get("Image") if isinstance(ome, dict) else None
    image = image[0] if isinstance(image, list) and image else image
    pixels = image.get("Pixels") if isinstance(image, dict) else None
    if not isinstance(pixels, dict):
        return None
    metres: dict[str, float] = {}
    for axis in "XYZ":
        size = pixels.get(f"PhysicalSize{axis}")
        unit = length_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if isinstance(size, (int, float)) and not isinstance(size, bool) and unit is not None:
            metres[axis] = float(size) * LENGTH_UNITS[unit]
    if "X" not in metres or "Y" not in metres:
        return None
    unit = length_unit(pixels.get("PhysicalSizeXUnit", "µm")) or "micrometer"
    return {a: _rounded(m / LENGTH_UNITS[unit]) for a, m in metres.items()}, unit


def imagej_options(
    calibration: Calibration | None, shape, dtype, *, axes: str | None = None
) -> dict | None:
    """``tifffile.imwrite`` keywords that store ``calibration`` with an array of
    ``shape`` and ``dtype`` as an ImageJ hyperstack, or None when ImageJ cannot hold
    them (no calibration, another number of axes than the array's, axes out of
    ImageJ's order, a sample type ImageJ does not have).

    Without a calibration, ``axes`` (the source's axis letters, e.g. ``"TYX"`` of an
    uncalibrated Fiji time-lapse) are stored alone, so that the labels' frames stay
    frames; a plain ``"YX"`` image needs no hyperstack.

    Parameters
    ----------
    calibration : Calibration or None
    shape : tuple of int
    dtype : numpy dtype
    axes : str, optional
        Used only without a calibration.

    Returns
    -------
    dict or None
        ``imagej`` and ``metadata`` (``axes``; with a calibration also ``unit`` and
        ``spacing``, and ``resolution``).
    """
    if calibration is None:
        named = imagej_axes(axes, shape, dtype)
        if named is None or named == "YX":
            return None
        return {"imagej": True, "metadata": {"axes": named}}
    named = imagej_axes(calibration.axes, shape, dtype)
    if named is None:
        return None
    size = dict(zip(named, calibration.scale, strict=True))
    unit = calibration.unit
    if unit not in _IMAGEJ_UNITS:  # ImageJ has no name for it: write micrometres
        factor = LENGTH_UNITS[unit] / LENGTH_UNITS["micrometer"]
        size = {a: s * factor for a, s in size.items()}
        unit = "micrometer"
    metadata = {"axes": named, "unit": _IMAGEJ_UNITS[unit], "spacing": size.get("Z", 1.0)}
    return {
        "imagej": True,
        "resolution": (1 / size["X"], 1 / size["Y"]),
        "metadata": metadata,
    }


def imagej_axes(axes: str | None, shape, dtype) -> str | None:
    """``axes`` in capitals when an ImageJ hyperstack can hold an array of ``shape``
    and ``dtype`` under them (one letter per axis, ending in ``YX``, in ImageJ's
    ``TZCYXS`` order, a sample type ImageJ has), else None.

    Parameters
    ----------
    axes : str or None
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    str or None
    """
    if not axes or len(axes) != len(shape):
        return None
    axes = axes.upper()
    if not axes.endswith("YX") or str(np.dtype(dtype)) not in _IMAGEJ_DTYPES:
        return None
    order = [_IMAGEJ_ORDER.find(a) for a in axes]
    if -1 in order or order != sorted(set(order)):
        return None
    return axes
