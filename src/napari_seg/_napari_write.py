"""npe2 writers of Labels layers, and of Image layers as medical volumes (no napari
import: the layer's data and attributes).

File > Save Layers writes a Labels layer as NIfTI, NRRD or MetaImage (by the name
chosen; an Image layer too, its values as they are: a DICOM series saved as NIfTI)
with the geometry napari-seg's reader recorded in its metadata (its affine and length
unit; for a layer that did not come from a medical file, one from its scale,
translate, rotation, shear, affine and units: millimetres unless napari's ``units``
say otherwise), as a DICOM SEG of the series it was segmented from, or as a TIFF that
keeps the layer's pixel size (napari's own TIFF writer stores the array alone, its
ids as uint32): an ImageJ hyperstack calibrated in the layer's length unit, which
Fiji and ``napari-seg`` commands read, ids in uint8 or uint16 when they fit. Napari's
placement of a layer as matrices (:func:`turn_matrix`) lives here too.
"""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from ._layers import DICOM_KIND_KEY, GEOMETRY_KEY, ROI_TYPES_KEY

if TYPE_CHECKING:
    from ._calibration import Calibration


class LayerNotSaved(OSError):
    """A layer a napari-seg writer cannot save as asked, and why.

    An OSError, not the ValueError the writers' checks raise: napari, asked to save
    without a writer chosen (a name typed with its extension, ``layer.save(path)``),
    takes a ValueError from the writer for "no writer for this file" and says "No data
    written! A plugin could not be found..." instead of the reason.
    """


def _napari_writer(write):
    """An npe2 writer whose refusals reach the user (:class:`LayerNotSaved`)."""

    @functools.wraps(write)
    def wrapper(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
        try:
            return write(path, data, meta)
        except ValueError as exc:
            name = meta.get("name") or "the layer"
            raise LayerNotSaved(f"cannot save {name} as {os.path.basename(path)}: {exc}") from None

    return wrapper


def shear_matrix(shear: Any, ndim: int) -> np.ndarray:
    """napari's ``shear`` as a matrix: a matrix as it is, or its upper-triangular
    coefficients row by row (as a layer's ``shear`` gives them).

    Parameters
    ----------
    shear : array_like
    ndim : int

    Returns
    -------
    ndarray, shape (ndim, ndim)
    """
    values = np.asarray(shear, dtype=float)
    if values.ndim == 2:
        return values
    matrix = np.eye(ndim)
    matrix[np.triu_indices(ndim, 1)] = values
    return matrix


def turn_matrix(rotate: Any, shear: Any, ndim: int) -> np.ndarray:
    """What napari applies to a layer's scaled pixel positions before its translate
    and affine: ``rotate @ shear`` (the one home of that order).

    Parameters
    ----------
    rotate : array_like or None
        A rotation matrix; None for the identity.
    shear : array_like or None
        As :func:`shear_matrix` takes it; None for the identity.
    ndim : int

    Returns
    -------
    ndarray, shape (ndim, ndim)
    """
    out = np.eye(ndim) if shear is None else shear_matrix(shear, ndim)
    return out if rotate is None else np.asarray(rotate, dtype=float) @ out


def layer_turn(meta: dict[str, Any], ndim: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """What napari applies to a layer after its ``scale``: ``affine @ rotate @ shear``,
    and where its first pixel lies (``affine`` applied to ``translate``).

    Parameters
    ----------
    meta : dict
        The layer's attributes (``translate``, ``rotate``, ``shear``, ``affine``; any
        missing is the identity).
    ndim : int

    Returns
    -------
    turn : ndarray, shape (ndim, ndim)
    origin : tuple of float
    """
    turn = turn_matrix(meta.get("rotate"), meta.get("shear"), ndim)
    affine = meta.get("affine", np.eye(ndim + 1))
    affine = np.asarray(getattr(affine, "affine_matrix", affine), dtype=float)
    translate = np.asarray(meta.get("translate", (0.0,) * ndim), dtype=float)
    origin = affine[:ndim, :ndim] @ translate + affine[:ndim, ndim]
    return affine[:ndim, :ndim] @ turn, tuple(float(v) for v in origin)


@_napari_writer
def write_tiff_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as a TIFF with its pixel size (npe2 single-layer writer).

    Parameters
    ----------
    path : str
        Ends in ``.tif`` or ``.tiff`` (``.tif`` is added otherwise).
    data : array_like
        The layer's data (2 to 4 axes are calibrated: ``YX``, ``ZYX`` or ``TYX``,
        ``TZYX``).
    meta : dict
        The layer's attributes (``scale``, and ``units`` from napari 0.6).

    Returns
    -------
    list of str
        The path written.
    """
    from ._io_write import write_labels

    if not path.lower().endswith((".tif", ".tiff")):
        path = f"{path}.tif"
    array = np.asarray(data)
    # File > Save Layers replaces a file the user chose in napari's own dialog.
    write_labels(path, array, calibration=layer_calibration(array.ndim, meta), overwrite=True)
    return [os.fspath(path)]


def layer_calibration(ndim: int, meta: dict[str, Any]) -> Calibration | None:
    """A layer's pixel size as a TIFF calibration, or None when it states none.

    The last two axes are Y and X; the one before is Z when its unit is a length,
    else T; a fourth is T. napari's default (a scale of 1 in ``"pixel"``), a layer
    without ``units`` (napari before 0.6: the scale's unit is unknown) and layers of
    more axes give None.

    Parameters
    ----------
    ndim : int
    meta : dict
        The layer's ``scale`` and ``units``.

    Returns
    -------
    Calibration or None
    """
    from ._calibration import Calibration
    from ._units import length_unit
    from .arrays.spacing import spacing_and_unit

    units = meta.get("units")
    if not 2 <= ndim <= 4 or units is None:
        return None
    scale = [float(s) for s in meta.get("scale", (1.0,) * ndim)]
    names = [str(u) for u in units]
    deep = ndim >= 3 and length_unit([names[ndim - 3]]) is not None
    spatial = list(range(ndim - (3 if deep else 2), ndim))
    if ndim - len(spatial) > 1:  # two axes that are not space
        return None
    spacing, unit = spacing_and_unit(scale, spatial, names)
    if spacing is None or unit is None:
        return None
    letters = "T" * (ndim - len(spatial)) + "ZYX"[3 - len(spatial) :]
    full = [1.0] * (ndim - len(spatial)) + list(spacing)
    return Calibration(letters, tuple(full), unit)


@_napari_writer
def write_nifti_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as NIfTI (npe2 single-layer writer): :func:`write_volume_layer`
    with ``.nii.gz`` added to a name without ``.nii`` or ``.nii.gz``."""
    return write_volume_layer(path, data, meta, ".nii.gz")


@_napari_writer
def write_nrrd_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as NRRD (npe2 single-layer writer): :func:`write_volume_layer`
    with ``.nrrd`` added to a name without it."""
    return write_volume_layer(path, data, meta, ".nrrd")


@_napari_writer
def write_metaimage_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as MetaImage (npe2 single-layer writer): :func:`write_volume_layer`
    with ``.mha`` added to a name without it."""
    return write_volume_layer(path, data, meta, ".mha")


@_napari_writer
def write_nifti_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an Image layer as NIfTI (npe2 single-layer writer): :func:`write_volume_layer`
    of an image, ``.nii.gz`` added to a name without ``.nii`` or ``.nii.gz``."""
    return write_volume_layer(path, data, meta, ".nii.gz", label=False)


@_napari_writer
def write_nrrd_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an Image layer as NRRD (npe2 single-layer writer): :func:`write_volume_layer`
    of an image, ``.nrrd`` added to a name without it."""
    return write_volume_layer(path, data, meta, ".nrrd", label=False)


@_napari_writer
def write_metaimage_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an Image layer as MetaImage (npe2 single-layer writer):
    :func:`write_volume_layer` of an image, ``.mha`` added to a name without it."""
    return write_volume_layer(path, data, meta, ".mha", label=False)


def write_volume_layer(
    path: str, data: Any, meta: dict[str, Any], suffix: str, *, label: bool = True
) -> list[str]:
    """Write a 3D Labels layer as a medical volume with the geometry it was read with
    (NIfTI, NRRD or MetaImage: ``medical.write_volume``); a 4D one (time points of a
    volume read from a file) as that file's 4D volume; a 2D one as a volume of one
    slice (:func:`one_slice`). With ``label=False``, an Image
    layer the same way, its values kept as they are (a DICOM series saved as NIfTI).

    Parameters
    ----------
    path : str
        The name chosen; ``suffix`` is added unless it ends in one of its format's.
    data : array_like
        The layer's data, ``(y, x)``, ``(z, y, x)`` or ``(t, z, y, x)``.
    meta : dict
        The layer's attributes (``metadata``, ``scale``, ``translate``).
    suffix : str
        ``.nii.gz``, ``.nrrd`` or ``.mha``.
    label : bool
        A label map (its ids compacted, its classes as segments), or an image.

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    ValueError
        For a layer that is not 2D or 3D (or 4D with a recorded geometry), an RGB
        layer, or one that does not fit its recorded geometry.
    """
    from .medical import VOLUME_OUTPUT_SUFFIXES, VolumeGeometry, write_volume

    if not VOLUME_OUTPUT_SUFFIXES[suffix](path):
        path = f"{path}{suffix}"
    array = np.asarray(data)
    recorded = (meta.get("metadata") or {}).get(GEOMETRY_KEY)
    if meta.get("rgb"):
        raise ValueError(
            f"an RGB layer is a colour picture (shape {array.shape}), not a volume: save it "
            "as PNG or TIFF"
        )
    if array.ndim == 2 and recorded is None:
        array, meta = one_slice(array, meta)
    if array.ndim != 3 and not (array.ndim == 4 and recorded is not None):
        raise ValueError(
            f"a medical volume is a 2D or 3D layer (y, x or z, y, x), or the time points "
            f"(t, z, y, x) of a volume read from a file, got shape {array.shape}"
        )
    if recorded is not None:
        geometry = VolumeGeometry.from_metadata(recorded)
    else:
        scale = tuple(float(s) for s in meta.get("scale", (1.0,) * 3))
        turn, origin = layer_turn(meta, 3)
        units = meta.get("units")  # napari >= 0.6: pint units ("micrometer", "pixel")
        units = None if units is None else tuple(str(u) for u in units)
        geometry = VolumeGeometry.from_placement(scale, origin, array.shape, units, turn)
        array = geometry.to_array(array.T)  # the file holds the layer's array as it is
    # File > Save Layers replaces a file the user chose in napari's own dialog.
    segments = layer_segments(meta) if label else None
    write_volume(path, array, geometry, overwrite=True, segments=segments, label=label)
    return [os.fspath(path)]


def one_slice(array: np.ndarray, meta: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """A 2D layer as the one slice of a volume, as a 2D NIfTI, NRRD or MetaImage holds
    it (``(x, y, 1)``): a first axis of length 1 and spacing 1 in the layer's unit,
    at 0, and the layer's rotate, shear and affine acting on the other two.

    Parameters
    ----------
    array : ndarray, shape (y, x)
    meta : dict
        The layer's attributes (``scale``, ``translate``, ``rotate``, ``shear``,
        ``affine``, ``units``; any missing is the identity).

    Returns
    -------
    array : ndarray, shape (1, y, x)
    meta : dict
        The same attributes for three axes.
    """

    def embed(matrix: np.ndarray) -> np.ndarray:
        out = np.eye(len(matrix) + 1)
        out[1:, 1:] = matrix
        return out

    placed = dict(meta)
    placed["scale"] = (1.0, *meta.get("scale", (1.0, 1.0)))
    placed["translate"] = (0.0, *meta.get("translate", (0.0, 0.0)))
    if meta.get("rotate") is not None:
        placed["rotate"] = embed(np.asarray(meta["rotate"], dtype=float))
    if meta.get("shear") is not None:
        placed["shear"] = embed(shear_matrix(meta["shear"], 2))
    if meta.get("affine") is not None:
        affine = meta["affine"]
        placed["affine"] = embed(np.asarray(getattr(affine, "affine_matrix", affine), float))
    if meta.get("units") is not None:
        units = tuple(str(u) for u in meta["units"])
        placed["units"] = (units[0], *units)
    return array[np.newaxis], placed


@_napari_writer
def write_dicom_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a 3D Labels layer segmented from a DICOM series as a DICOM SEG of that
    series, or as an RT structure set of it (:func:`is_rtstruct_name`: a layer read
    from one, or a file named so) (npe2 single-layer writer; ``.dcm`` added to a name
    without it): its classes (:func:`layer_segments`; ids 1 to the largest as
    "segment N" for a layer naming none) as segments or ROIs, each referencing the
    series' slices (``medical.write_dicom_seg``, ``medical.write_rtstruct``).

    Parameters
    ----------
    path : str
    data : array_like
        The layer's data, ``(z, y, x)`` on the series' grid.
    meta : dict
        The layer's attributes (``metadata`` with the series' geometry, ``features``,
        ``colormap``).

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    LayerNotSaved
        For a layer not segmented from a DICOM series, or not on its grid.
    """
    from .medical import VolumeGeometry, write_dicom_seg, write_rtstruct

    if not path.lower().endswith(".dcm"):
        path = f"{path}.dcm"
    metadata = meta.get("metadata") or {}
    recorded = metadata.get(GEOMETRY_KEY)
    geometry = None if recorded is None else VolumeGeometry.from_metadata(recorded)
    rtstruct = is_rtstruct_name(path, metadata)
    if geometry is None or geometry.series_file is None:
        kind = "An RT structure set" if rtstruct else "A DICOM SEG"
        raise ValueError(
            f"{kind} references the DICOM series its labels were segmented from; this "
            "layer records none (save it as NIfTI instead)"
        )
    array = np.asarray(data)
    segments = _painted_too(layer_segments(meta), array, meta, "ROI" if rtstruct else "segment")
    # File > Save Layers replaces a file the user chose in napari's own dialog.
    if rtstruct:
        write_rtstruct(path, array, geometry.series_file, segments, overwrite=True,
                       roi_types=_roi_types(metadata))  # fmt: skip
    else:
        write_dicom_seg(path, array, geometry.series_file, segments, overwrite=True)
    return [os.fspath(path)]


def _painted_too(
    segments: dict[int, tuple[str, tuple[float, ...]]], array: np.ndarray, meta: dict, word: str
) -> dict[int, tuple[str, tuple[float, ...]]]:
    """``segments`` (the classes a layer names) with the ids painted beyond them, and
    those between, as "segment N" or "ROI N" (``word``), so that a structure added in
    napari is saved too; the layer's background is none. Unchanged for a layer naming
    no classes (the writers number every id then) or painted beyond ``MAX_CLASSES``
    (which they refuse by name)."""
    from ._layers import background_of
    from .limits import MAX_CLASSES

    top = int(array.max(initial=0))
    if not segments or top > MAX_CLASSES:
        return segments
    background = background_of(SimpleNamespace(metadata=meta.get("metadata")))
    last = max(top, *segments)
    return {n: segments.get(n, (f"{word} {n}", ())) for n in range(1, last + 1) if n != background}


def _roi_types(metadata: dict[str, Any]) -> dict[int, str]:
    """The ROI types a layer read from an RT structure set records (``ROI_TYPES_KEY``),
    by label id; entries that are not an id and a text are left out."""
    recorded = metadata.get(ROI_TYPES_KEY)
    found: dict[int, str] = {}
    for key, value in recorded.items() if isinstance(recorded, dict) else ():
        try:
            found[int(key)] = str(value)
        except (TypeError, ValueError):
            continue
    return found


def is_rtstruct_name(path: str, metadata: dict[str, Any]) -> bool:
    """Whether File > Save Layers writes a ``.dcm`` file as an RT structure set (else a
    DICOM SEG): for a layer read from one, or a file whose name says so (it holds
    "rtstruct", or starts with "RS." or "RS_", as planning systems name them).

    Parameters
    ----------
    path : str
    metadata : dict
        The layer's metadata.

    Returns
    -------
    bool
    """
    name = os.path.basename(path)
    said = "rtstruct" in name.lower() or name.startswith(("RS.", "RS_"))
    return said or metadata.get(DICOM_KIND_KEY) == "rtstruct"


def layer_segments(meta: dict[str, Any]) -> dict[int, tuple[str, tuple[float, ...]]]:
    """The classes a Labels layer names (its features' "class" column) with the colours
    its colormap gives them, less its background, as a label map's segments
    (``medical.class_segments``); none for a layer that names no classes.

    Parameters
    ----------
    meta : dict
        The layer's attributes (``features``, ``colormap``, ``metadata``).

    Returns
    -------
    dict
        ``{label value: (name, (r, g, b, a) or ())}``.
    """
    from ._layers import background_of, class_names_of
    from .medical import class_segments

    layer = SimpleNamespace(features=meta.get("features"), metadata=meta.get("metadata"))
    names = class_names_of(layer)
    if not names:
        return {}
    colormap: Any = meta.get("colormap")
    colors: dict[int, Any] = {}
    if hasattr(colormap, "map"):  # napari's label colormaps: an RGBA row per id
        ids = sorted(names)
        colors = dict(zip(ids, np.asarray(colormap.map(np.asarray(ids))), strict=True))
    return class_segments(names, colors, background_of(layer))
