"""npe2 reader and writer of medical volumes (no napari import: plain layer tuples).

napari opens a NIfTI, NRRD or MetaImage file or a DICOM series folder as an Image
layer (a Labels layer for a label map: a file named ``*_labels``, ``*_seg`` or
``*_mask``, a 3D Slicer segmentation ``*.seg.nrrd`` or label map ``*-label.nrrd``, one in a
``labelsTr`` or ``labelsTs`` folder as the Medical Segmentation Decathlon and nnU-Net
lay out datasets, or a NIfTI whose header's intent is "label", as napari-seg writes
them; holding integers, or floats that are all whole numbers) indexed
``(z, y, x)`` in LPS, as :mod:`napari_seg.medical` states, with the voxel size
as ``scale``, the LPS position of the first voxel as ``translate``, the file's
length unit as the layer's ``units`` (napari 0.6 and later) and the
geometry in the layer's metadata (``GEOMETRY_KEY``). File > Save Layers writes
a Labels layer as NIfTI, NRRD or MetaImage (by the name chosen) with that
geometry's affine and length unit (or, for a
layer that did not come from a medical file, one from its scale, translate,
rotation, shear, affine and units: millimetres unless napari's ``units`` say
otherwise).

Labels are also written as a TIFF that keeps the layer's pixel size (napari's own
TIFF writer stores the array alone, its ids as uint32): an ImageJ hyperstack
calibrated in the layer's length unit, which Fiji and ``napari-seg`` commands read,
ids in uint8 or uint16 when they fit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from ._layers import GEOMETRY_KEY

if TYPE_CHECKING:
    from ._calibration import Calibration

LayerData = tuple[Any, dict[str, Any], str]
#: Name endings of label maps (and 3D Slicer's: ``medical.SLICER_LABEL_TAILS``).
LABEL_NAME_ENDINGS = ("_labels", "_label", "_seg", "_mask")
#: Folders of label maps in the Medical Segmentation Decathlon's and nnU-Net's layout.
LABEL_FOLDERS = ("labelstr", "labelsts")


#: napari reads the files a user selects together one call each: the series of a
#: DICOM file is read once for all of its files opened within this many seconds of
#: its read (each other call returns napari's "nothing to add").
SERIES_OPENED_S = 5.0
_opened: dict[tuple[str, str], float] = {}


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """The reader of ``path`` when it is a NIfTI, NRRD or MetaImage file, a DICOM file (its
    series), or a folder with DICOM series in it or in its subfolders
    (:func:`~napari_seg.medical.holds_dicom`), else None.

    Parameters
    ----------
    path : str or list of str

    Returns
    -------
    callable or None
    """
    from .medical import holds_dicom, is_dicom_file, is_volume_file

    if isinstance(path, list):  # a stack of one series' files: that series
        if len(path) != 1 and not all(is_dicom_file(p) for p in path):
            return None
        path = path[0]
    return read_layers if is_volume_file(path) or holds_dicom(path) else None


def read_layers(path: str | list[str]) -> list[LayerData]:
    """The layer of a NIfTI file or DICOM folder (one per channel for a 4D NIfTI; one
    per series for a folder of several, or a study whose series are in subfolders:
    named by their SeriesDescription, each on its own grid in the same patient
    frame; a series that does not form a volume is left out with a warning naming
    why).

    Parameters
    ----------
    path : str or list of str

    Returns
    -------
    list of (data, kwargs, layer_type)
    """
    import warnings

    from ._io import output_stem
    from .medical import (
        is_dicom_file,
        is_dicom_seg,
        read_dicom_series,
        read_seg_on_series,
        read_volume,
    )

    path = path[0] if isinstance(path, list) else path
    name = output_stem(path)
    if is_dicom_seg(path):  # a label map, its segments named
        return _volume_layers(path, name, *read_seg_on_series(path))
    if is_dicom_file(path):
        return _file_series_layers(path)
    if not Path(path).is_dir():
        return _volume_layers(path, name, *read_volume(path))
    series, skipped, segmentations = read_dicom_series(path)
    layers = []
    for _uid, description, array, geometry in series:
        title = name if len(series) == 1 else f"{name} {description}"
        layers += _volume_layers(path, title, array, geometry)
    grids = {uid: geometry for uid, _, _, geometry in series}
    for seg in segmentations:  # exported with the study: on its series, named
        try:
            found = read_seg_on_series(seg, grids)
            layers += _volume_layers(str(seg), f"{name} {seg.stem}", *found)
        except ValueError as exc:
            skipped.append(f"{seg.name}: {exc}")
    for reason in skipped:
        warnings.warn(f"napari-seg left out {reason}", UserWarning, stacklevel=2)
    return layers


def _file_series_layers(path: str) -> list[LayerData]:
    """The layer of the series a DICOM file belongs to, named by its folder and
    description; napari's "nothing to add" when that series was read for another of
    its files a moment ago (the files of one selection)."""
    import time

    from .medical import dicom_file_series, read_volume

    uid, description = dicom_file_series(path)
    key = (str(Path(path).resolve().parent), uid)
    if time.monotonic() - _opened.get(key, -SERIES_OPENED_S) < SERIES_OPENED_S:
        return [(None,)]  # type: ignore[list-item]
    layers = _volume_layers(path, f"{Path(path).parent.name} {description}", *read_volume(path))
    _opened[key] = time.monotonic()
    return layers


def _volume_layers(path: str, name: str, array, geometry, segments=None) -> list[LayerData]:
    """One volume's layers (a Labels layer for a label map; a 4D volume's channels a
    layer each, its time points one layer: ``medical.volume_channel_axis``); a
    segmentation read with its ``segments`` (a DICOM SEG) is a label map named by them."""
    from ._io import whole_numbers_as_ids
    from .medical import volume_channel_axis

    kwargs: dict[str, Any] = {
        "name": name,
        "scale": geometry.spacing,
        "translate": geometry.origin,
        "metadata": {GEOMETRY_KEY: geometry.to_metadata()},
    }
    if _napari_has_layer_units():  # the scale bar and cursor read mm (or the file's unit)
        kwargs["units"] = (geometry.unit,) * 3
        kwargs["axis_labels"] = ("z", "y", "x")  # the slider reads z (LPS: axial slices)
    time = array.ndim == 4 and volume_channel_axis(4, count=array.shape[0]) is None
    if time:  # time points (a cine MRI's frames): one layer, a slider over them
        step = geometry.time_step  # seconds, when the header times the frames
        kwargs["scale"] = (step or 1.0, *kwargs["scale"])
        kwargs["translate"] = (0.0, *kwargs["translate"])
        if "units" in kwargs:  # napari 0.6 and later: the slider named "t" too, which
            # the docks read as time (surfaces measured frame by frame, objects apart)
            kwargs["units"] = ("second" if step else "pixel", *kwargs["units"])
            kwargs["axis_labels"] = ("t", *kwargs["axis_labels"])
    if (array.ndim == 3 or time) and (segments is not None or _is_label_map(path, name)):
        ids = array if np.issubdtype(array.dtype, np.integer) else whole_numbers_as_ids(array)
        if ids is not None:  # floats of whole numbers too, as FSL writes segmentations
            if segments is None:
                classes = _dataset_classes(path, name) or _segment_classes(path)
            else:
                classes = _segment_classes(path, segments)
            metadata = {**kwargs["metadata"], **classes.pop("metadata", {})}
            return [(ids, {**kwargs, **classes, "metadata": metadata}, "labels")]
    if array.ndim == 4 and not time:
        kwargs["channel_axis"] = 0
        kwargs["name"] = [f"{name} [{i}]" for i in range(array.shape[0])]
    return [(array, kwargs, "image")]


def _dataset_classes(path: str, name: str) -> dict[str, Any]:
    """The class names and colours of a Decathlon or nnU-Net dataset's label map (its
    ``dataset.json``), as napari-seg's own layers carry them, with nnU-Net's "ignore"
    label recorded as left out; nothing otherwise."""
    from ._dataset_json import dataset_class_names, dataset_ignore_label
    from ._layers import labels_layer_kwargs
    from .models.spec import default_class_colors

    try:
        names = dataset_class_names(Path(path).parent)
    except ValueError:  # a broken dataset.json: the label map still opens
        return {}
    if names is None:
        return {}
    background = 0 if names[0].lower() == "background" else None
    colors = default_class_colors(len(names), background)
    ignore = dataset_ignore_label(names)
    found = labels_layer_kwargs(name, names, colors, background, () if ignore is None else [ignore])
    return {key: found[key] for key in ("colormap", "features", "metadata")}


def _segment_classes(path: str, segments=None) -> dict[str, Any]:
    """The class names and colours of a 3D Slicer segmentation (``.seg.nrrd``) or a
    DICOM SEG (its ``segments`` when read already): its segments' names and colours by
    label value, 0 the transparent background; nothing for other files."""
    from ._layers import labels_layer_kwargs
    from .medical import label_segments, segment_class_names
    from .models.spec import default_class_colors

    if segments is None:
        segments = label_segments(path)  # the header read once, for names and colours
    names = segment_class_names(segments)
    if names is None:
        return {}
    palette = default_class_colors(len(names), 0)
    stated = {i: color for i, (_, color) in segments.items() if color}
    colors = [stated.get(i, palette[i]) for i in range(len(names))]
    found = labels_layer_kwargs(Path(path).name, names, colors, 0)
    return {key: found[key] for key in ("colormap", "features", "metadata")}


def _is_label_map(path: str, name: str) -> bool:
    """Whether the volume at ``path`` is a label map by its name, its folder or (NIfTI)
    its header's intent."""
    from .medical import SLICER_LABEL_TAILS, is_nifti, nifti_is_label_map

    if name.lower().endswith((*LABEL_NAME_ENDINGS, *SLICER_LABEL_TAILS)):
        return True
    if Path(path).parent.name.lower() in LABEL_FOLDERS:
        return True
    return is_nifti(path) and nifti_is_label_map(path)


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


def _napari_has_layer_units() -> bool:
    """Whether the installed napari takes a layer's ``units`` (0.6 and later), read
    from its version: this module must not import napari."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(part) for part in version("napari").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (0, 6)


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
    from ._io import write_labels

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


def write_nifti_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as NIfTI (npe2 single-layer writer): :func:`write_volume_labels`
    with ``.nii.gz`` added to a name without ``.nii`` or ``.nii.gz``."""
    return write_volume_labels(path, data, meta, ".nii.gz")


def write_nrrd_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as NRRD (npe2 single-layer writer): :func:`write_volume_labels`
    with ``.nrrd`` added to a name without it."""
    return write_volume_labels(path, data, meta, ".nrrd")


def write_metaimage_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as MetaImage (npe2 single-layer writer): :func:`write_volume_labels`
    with ``.mha`` added to a name without it."""
    return write_volume_labels(path, data, meta, ".mha")


def write_volume_labels(path: str, data: Any, meta: dict[str, Any], suffix: str) -> list[str]:
    """Write a 3D Labels layer as a medical volume with the geometry it was read with
    (NIfTI, NRRD or MetaImage: ``medical.write_volume``); a 4D one (time points of a
    volume read from a file) as that file's 4D volume.

    Parameters
    ----------
    path : str
        The name chosen; ``suffix`` is added unless it ends in one of its format's.
    data : array_like
        The layer's data, ``(z, y, x)`` or ``(t, z, y, x)``.
    meta : dict
        The layer's attributes (``metadata``, ``scale``, ``translate``).
    suffix : str
        ``.nii.gz``, ``.nrrd`` or ``.mha``.

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    ValueError
        For a layer that is not 3D (or 4D with a recorded geometry) or does not fit
        its recorded geometry.
    """
    from .medical import VOLUME_OUTPUT_SUFFIXES, VolumeGeometry, write_volume

    if not VOLUME_OUTPUT_SUFFIXES[suffix](path):
        path = f"{path}{suffix}"
    array = np.asarray(data)
    recorded = (meta.get("metadata") or {}).get(GEOMETRY_KEY)
    if array.ndim != 3 and not (array.ndim == 4 and recorded is not None):
        raise ValueError(
            f"medical labels must be a 3D layer (z, y, x), or the time points (t, z, y, x) "
            f"of a volume read from a file, got shape {array.shape}"
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
    write_volume(path, array, geometry, overwrite=True, segments=layer_segments(meta))
    return [os.fspath(path)]


def write_dicom_seg_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a 3D Labels layer segmented from a DICOM series as a DICOM SEG of that
    series (npe2 single-layer writer; ``.dcm`` added to a name without it): its classes
    (:func:`layer_segments`; ids 1 to the largest as "segment N" for a layer naming
    none) as segments, each frame referencing its slice (``medical.write_dicom_seg``).

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
    ValueError
        For a layer not segmented from a DICOM series, or not on its grid.
    """
    from .medical import VolumeGeometry, write_dicom_seg

    if not path.lower().endswith(".dcm"):
        path = f"{path}.dcm"
    recorded = (meta.get("metadata") or {}).get(GEOMETRY_KEY)
    geometry = None if recorded is None else VolumeGeometry.from_metadata(recorded)
    if geometry is None or geometry.series_file is None:
        raise ValueError(
            "a DICOM SEG references the DICOM series its labels were segmented from; this "
            "layer records none (save it as NIfTI instead)"
        )
    array = np.asarray(data)
    segments = layer_segments(meta)  # none named: "segment N" (medical.write_dicom_seg)
    # File > Save Layers replaces a file the user chose in napari's own dialog.
    write_dicom_seg(path, array, geometry.series_file, segments, overwrite=True)
    return [os.fspath(path)]


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
