"""npe2 reader of medical volumes (no napari import: plain layer tuples).

napari opens a NIfTI, NRRD or MetaImage file or a DICOM series folder as an Image
layer (a Labels layer for a label map: a file named ``*_labels``, ``*_seg`` or
``*_mask``, a 3D Slicer segmentation ``*.seg.nrrd`` or label map ``*-label.nrrd``, one in a
``labelsTr`` or ``labelsTs`` folder as the Medical Segmentation Decathlon and nnU-Net
lay out datasets, or a NIfTI whose header's intent is "label", as napari-seg writes
them; holding integers, or floats that are all whole numbers) indexed
``(z, y, x)`` in LPS, as :mod:`napari_seg.medical` states, with the voxel size
as ``scale``, the LPS position of the first voxel as ``translate``, the file's
length unit as the layer's ``units`` (napari 0.6 and later) and the
geometry in the layer's metadata (``GEOMETRY_KEY``). The writers, which save a
Labels layer back with that geometry, are :mod:`napari_seg._napari_write`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._layers import DICOM_KIND_KEY, GEOMETRY_KEY, ROI_TYPES_KEY

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
    why). What the readers log as warnings (a gantry-tilted CT read as a stack) is
    warned too, which napari shows as a notification.

    Parameters
    ----------
    path : str or list of str

    Returns
    -------
    list of (data, kwargs, layer_type)
    """
    import warnings

    with _logged_warnings() as logged:
        layers = _read_layers(path[0] if isinstance(path, list) else path)
    for message in logged:
        warnings.warn(message, UserWarning, stacklevel=2)
    return layers


@contextlib.contextmanager
def _logged_warnings() -> Iterator[list[str]]:
    """The messages napari-seg's loggers log as warnings (or worse) within the block,
    in this thread (not a worker's, which may log meanwhile)."""
    said: list[str] = []
    here = threading.get_ident()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == here:
                said.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("napari_seg")
    logger.addHandler(handler)
    try:
        yield said
    finally:
        logger.removeHandler(handler)


def _read_layers(path: str) -> list[LayerData]:
    import warnings

    from ._io import output_stem
    from .medical import (
        is_dicom_file,
        is_segmentation,
        read_dicom_series,
        read_segmentation,
        read_volume,
    )

    name = output_stem(path)
    if is_segmentation(path):  # a SEG or RTSTRUCT: a label map, its segments named
        return _volume_layers(path, name, *read_segmentation(path))
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
            found = read_segmentation(seg, grids)
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
    from ._io import check_pixels
    from .arrays.ids import as_ids
    from .medical import display_range, is_rtstruct, rtstruct_roi_types, volume_channel_axis

    check_pixels(path, array)
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
        ids = as_ids(array)
        if np.issubdtype(ids.dtype, np.integer):  # floats of whole numbers too (FSL's)
            if segments is None:
                classes = _dataset_classes(path, name) or _segment_classes(path)
            else:
                classes = _segment_classes(path, segments)
            metadata = {**kwargs["metadata"], **classes.pop("metadata", {})}
            if segments is not None and is_rtstruct(path):  # saved back as one
                metadata[DICOM_KIND_KEY] = "rtstruct"
                metadata[ROI_TYPES_KEY] = rtstruct_roi_types(path)  # PTV, ORGAN...
            return [(ids, {**kwargs, **classes, "metadata": metadata}, "labels")]
    if array.ndim == 4 and not time:
        kwargs["channel_axis"] = 0
        kwargs["name"] = [f"{name} [{i}]" for i in range(array.shape[0])]
    elif (window := display_range(path, geometry)) is not None:  # a CT's soft tissue
        kwargs["contrast_limits"] = window
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


def _napari_has_layer_units() -> bool:
    """Whether the installed napari takes a layer's ``units`` (0.6 and later), read
    from its version: this module must not import napari."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(part) for part in version("napari").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (0, 6)
