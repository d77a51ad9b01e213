"""DICOM SEG segmentations (highdicom): read as one ``(z, y, x)`` label map of their
segment numbers, on the grid their frames span, with the segments' names and colours;
labels computed from a DICOM series written as a SEG of that series.

A SEG stores each segment's frames apart (a binary or fractional mask per segment and
slice) and usually only the slices a segment touches, so its grid is a window of its
source series' grid: :func:`~napari_seg.medical.place_on_grid` places it on the image's
grid where the two are paired. Segments that overlap are merged: the higher segment
number wins (highdicom's rule); in a fractional segmentation each voxel is the segment
of the largest fraction, where that reaches half.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._extras import import_for_reading
from .._paths import user_path
from ..limits import GIB, MAX_CLASSES, MAX_NAME_LENGTH, MAX_VOLUME_BYTES, one_line
from ._dicom_files import PATIENT_STUDY_KEYWORDS, SEG_SOP_CLASSES, header_of_class
from ._geometry import FLIP_RAS_LPS, VolumeGeometry
from ._grids import place_on_grid
from ._referenced import referenced_grid

logger = logging.getLogger(__name__)

#: highdicom's (slice, row, column) indices as a file's (column, row, slice) ones.
_FILE_ORDER = np.array(
    [[0.0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
)  # fmt: skip


def _highdicom():
    return import_for_reading("highdicom", "reading DICOM SEG files", "highdicom", "medical")


def read_dicom_seg(
    path: str | os.PathLike,
) -> tuple[np.ndarray, VolumeGeometry, dict[int, tuple[str, tuple[float, ...]]]]:
    """A DICOM SEG file as a ``(z, y, x)`` label map of its segment numbers (0 where no
    segment is), its geometry (the grid its frames span, in LPS order as every volume
    is read) and its segments. The frames of a gantry-tilted series (stacked off their
    normal) are read as a stack along the normal, as their series is
    (:func:`~napari_seg.medical.read_dicom`), with a warning;
    :func:`read_seg_on_series` places them exactly, on the slices they reference.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    labels : ndarray
    geometry : VolumeGeometry
    segments : dict
        ``{segment number: (label, (r, g, b, a) or ())}``, as
        :func:`~napari_seg.medical.nrrd_segments` gives a 3D Slicer segmentation's.

    Raises
    ------
    ValueError
        For a file that is no DICOM SEG, one too large to read at once, or one whose
        frames do not form a regularly spaced volume.
    """
    path = user_path(path)
    seg, name = _open_seg(path)
    labels, geometry = _seg_volume(seg, name, sheared=True)
    return labels, geometry, _segments(seg)


#: How far (1 - the cosine of their angle) a SEG's frames may be stacked off their
#: normal and still be read as a volume: a CT gantry tilt (up to 60 degrees).
_SHEAR_TOLERANCE = 0.5


class _Sheared(ValueError):
    """A SEG's frames stack off their normal (a gantry-tilted series')."""


def _open_seg(path: str | os.PathLike) -> tuple[Any, str]:
    """A DICOM SEG file (highdicom, frames read as needed) and its file name, refused
    when unreadable or too large to read at once."""
    hd = _highdicom()
    name = Path(path).name
    try:
        seg = hd.seg.segread(path, lazy_frame_retrieval=True)
    except Exception as exc:  # pydicom and highdicom raise many kinds on a bad file
        raise ValueError(f"{name} is no readable DICOM SEG file: {one_line(exc, 300)}") from None
    frames = int(getattr(seg, "NumberOfFrames", 1) or 1)
    claimed = frames * int(seg.Rows) * int(seg.Columns) * (4 if _fractional(seg) else 1)
    if claimed > MAX_VOLUME_BYTES:
        raise ValueError(
            f"{name}: {frames} frames of {seg.Rows}x{seg.Columns} would take "
            f"{claimed / GIB:.0f} GiB, more than the {MAX_VOLUME_BYTES // GIB} GiB napari-seg "
            "reads at once"
        )
    return seg, name


def _fractional(seg: Any) -> bool:
    return str(getattr(seg, "SegmentationType", "")).upper() == "FRACTIONAL"


def _seg_volume(seg: Any, name: str, *, sheared: bool) -> tuple[np.ndarray, VolumeGeometry]:
    """The label map of ``seg``'s frames on the grid they span, and that grid. Frames
    of a gantry-tilted series (stacked off their normal) are read as a stack along the
    normal, as its series is (:func:`~napari_seg.medical.read_dicom`), with a warning,
    when ``sheared`` allows, else :class:`_Sheared` is raised."""
    fractional = _fractional(seg)
    options = {"combine_segments": not fractional, "skip_overlap_checks": True}
    try:  # highdicom combines binary segments only
        volume = seg.get_volume(**options)
    except (ValueError, RuntimeError, AttributeError) as exc:
        try:
            volume = seg.get_volume(**options, perpendicular_tol=_SHEAR_TOLERANCE)
        except (ValueError, RuntimeError, AttributeError):
            raise ValueError(
                f"{name}: its frames do not form one regularly spaced volume "
                f"({one_line(exc, 300)}); napari-seg reads DICOM SEG files of 3D images"
            ) from None
        if not sheared:
            raise _Sheared(name) from None
        logger.warning(
            "%s: the frames are sheared (a gantry tilt) and its series was not found: they "
            "are read as a stack along the slice normal, on a grid of their own",
            name,
        )
    numbers = volume.get_channel_values("ReferencedSegmentNumber") if fractional else ()
    data = _label_map(np.asarray(volume.array), numbers).transpose(2, 1, 0)  # file order
    affine = FLIP_RAS_LPS @ np.asarray(volume.affine, dtype=float) @ _FILE_ORDER
    geometry = VolumeGeometry.from_affine(affine, data.shape, source="dicom")
    return geometry.to_array(data), geometry


def _label_map(array: np.ndarray, numbers) -> np.ndarray:
    """Frames ``(slice, row, column)`` of segment numbers as they are, or fractions
    ``(slice, row, column, segment)`` of the segments ``numbers`` as the segment of the
    largest, where that reaches half."""
    if array.ndim == 3:
        return array
    numbers = np.asarray(numbers, dtype=np.uint16)
    labels = np.where(array.max(axis=-1) >= 0.5, numbers[array.argmax(axis=-1)], 0)
    return labels.astype(np.uint8 if numbers.max(initial=0) < 256 else np.uint16)


def _seg_by_slice(seg: Any, series: str) -> np.ndarray | None:
    """``seg``'s label map on the grid of the series of the file ``series``, each
    frame on the slice it references (its source image, and frame of a multi-frame
    one): how the frames of a gantry-tilted series are placed exactly. None when a
    frame references no slice of that series."""
    import pydicom

    from ._dicom import dicom_slices

    numbers = sorted(_segments(seg))
    options = {
        "segment_numbers": numbers or None,
        "combine_segments": not _fractional(seg),
        "skip_overlap_checks": True,
        "assert_missing_frames_are_empty": True,
    }
    try:
        slices, grid = dicom_slices(series)
        files = {p: pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p, *_ in slices}
        if all(where.frame is None for where in slices):
            array = seg.get_pixels_by_source_instance([files[p] for p, *_ in slices], **options)
        elif len(files) == 1:
            frames = [(where.frame or 0) + 1 for where in slices]  # numbered from 1
            array = seg.get_pixels_by_source_frame(next(iter(files.values())), frames, **options)
        else:
            return None
    except (ValueError, RuntimeError, KeyError, AttributeError, OSError):
        return None
    data = _label_map(np.asarray(array), numbers).transpose(2, 1, 0)
    return grid.to_array(data) if data.shape == grid.source_shape else None


def dicom_seg_segments(path: str | os.PathLike) -> dict[int, tuple[str, tuple[float, ...]]]:
    """The segments a DICOM SEG file describes, by segment number: their labels and
    colours (its recommended display colour, from CIELab); empty for any other file
    or a SEG file that cannot be read.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``{segment number: (label, (r, g, b, a) or ())}``.
    """
    path = user_path(path)
    ds = _seg_header(path)
    return {} if ds is None else _segments(ds)


def _segments(ds: Any) -> dict[int, tuple[str, tuple[float, ...]]]:
    """``ds``'s segment descriptions as ``{number: (label, colour)}``."""
    found: dict[int, tuple[str, tuple[float, ...]]] = {}
    for item in list(getattr(ds, "SegmentSequence", []))[:MAX_CLASSES]:
        try:
            number = int(item.SegmentNumber)
        except (AttributeError, TypeError, ValueError):
            continue
        if number < 1:
            continue
        label = str(getattr(item, "SegmentLabel", "") or f"segment {number}")
        found[number] = (label[:MAX_NAME_LENGTH], _color(item))
    return found


def _color(item: Any) -> tuple[float, ...]:
    """A segment's recommended display colour as RGBA in 0-1, or ``()``."""
    value = getattr(item, "RecommendedDisplayCIELabValue", None)
    if value is None or len(value) != 3:
        return ()
    try:
        rgb = _highdicom().color.CIELabColor.from_dicom_value(list(value)).to_rgb(clip=True)
    except (ValueError, TypeError):
        return ()
    return (*(c / 255.0 for c in rgb), 1.0)


def is_dicom_seg(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM SEG file (a DICOM file, by its SOP class).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    path = user_path(path)
    return _seg_header(path) is not None


def _seg_header(path: str | os.PathLike) -> Any:
    """The header of a DICOM SEG file; None for any other file."""
    return header_of_class(path, SEG_SOP_CLASSES)


def seg_series_uids(path: str | os.PathLike) -> tuple[str, ...]:
    """The ``SeriesInstanceUID`` of each image series a DICOM SEG references (its
    ``ReferencedSeriesSequence``: the series it was segmented from); empty for any
    other file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    tuple of str
    """
    path = user_path(path)
    ds = _seg_header(path)
    return () if ds is None else _series_uids(ds)


def _series_uids(ds: Any) -> tuple[str, ...]:
    referenced = list(getattr(ds, "ReferencedSeriesSequence", []))
    return tuple(str(uid) for item in referenced if (uid := getattr(item, "SeriesInstanceUID", "")))


def read_seg_on_series(
    path: str | os.PathLike, known: Mapping[str, VolumeGeometry] | None = None
) -> tuple[np.ndarray, VolumeGeometry, dict[int, tuple[str, tuple[float, ...]]]]:
    """A DICOM SEG read as :func:`read_dicom_seg` reads it, then placed on the grid of
    the series it was segmented from (padded with 0 beyond the slices it segments: a
    label map as large as its image, which can be painted or refined anywhere on it),
    its geometry recording one of that series' files (``series_file``) so that it is
    written back as a SEG of it. On its own grid when the series is not found or its
    frames are no window of the series' grid. The frames of a gantry-tilted series
    (stacked off their normal) are placed on the slices they reference.

    Parameters
    ----------
    path : str or os.PathLike
    known : mapping, optional
        ``{SeriesInstanceUID: geometry}`` of series read already (a study opened with
        the SEG); without it the series is looked for beside the SEG
        (:func:`~napari_seg.medical._referenced.find_series_file`) and its grid read
        from its headers.

    Returns
    -------
    labels : ndarray
    geometry : VolumeGeometry
    segments : dict

    Raises
    ------
    ValueError
        As :func:`read_dicom_seg`.
    """
    path = user_path(path)
    seg, name = _open_seg(path)
    segments = _segments(seg)
    grid = referenced_grid(path, _series_uids(seg), known)
    try:
        labels, geometry = _seg_volume(seg, name, sheared=grid is None)
    except _Sheared:  # a gantry-tilted series': frame by frame onto its slices
        placed = _seg_by_slice(seg, grid.series_file) if grid and grid.series_file else None
        if placed is not None and grid is not None:
            return placed, grid, segments
        labels, geometry = _seg_volume(seg, name, sheared=True)
    if grid is None:
        return labels, geometry, segments
    try:
        labels = place_on_grid(labels, geometry, grid, (Path(path).name, "its series"))
    except ValueError:  # not on a window of the series' grid
        return labels, geometry, segments
    return labels, grid, segments


#: The series number of the SEG series napari-seg writes (viewers list a study's
#: series by number; derived series conventionally take a high one).
SEG_SERIES_NUMBER = 9000


def write_dicom_seg(
    path: str | os.PathLike,
    labels: np.ndarray,
    source: str | os.PathLike,
    segments: dict[int, tuple[str, tuple[float, ...]]] | None = None,
    *,
    algorithm: str = "napari-seg",
    overwrite: bool = False,
) -> None:
    """Write ``labels`` (a ``(z, y, x)`` label map on the grid of the DICOM series at
    ``source``, as :func:`~napari_seg.medical.read_dicom` reads it) as a binary DICOM SEG
    of that series: a segment per entry of ``segments`` (numbered by label value, which
    must run 1, 2, 3...; 0 is no segment), frames only where a segment is, each
    referencing its source slice, as PACS and viewers (OHIF, 3D Slicer) load a SEG over
    its series. Written atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.dcm``.
    labels : ndarray
    source : str or os.PathLike
        The series' folder, or one of its files.
    segments : dict, optional
        ``{label value: (name, (r, g, b, a) or ())}``
        (:func:`~napari_seg.medical.class_segments`); without them (or empty), ids 1 to
        the largest are "segment 1", "segment 2"...
    algorithm : str
        The segmenting algorithm's name (the model's architecture), recorded in each
        segment.
    overwrite : bool

    Raises
    ------
    ValueError
        For labels not on the series' grid, segment numbers that do not run 1, 2, 3...,
        a source that is no series of one volume (or is frames of several multi-frame
        files), or a series highdicom cannot reference (its message).
    """
    from .. import __version__
    from .._atomic import atomic_write
    from ._dicom import dicom_slices

    path = user_path(path)
    source = user_path(source)

    hd = _highdicom()
    if not segments:
        segments = {i: (f"segment {i}", ()) for i in range(1, int(labels.max(initial=0)) + 1)}
    numbers = check_seg_numbers(segments)
    slices, grid = dicom_slices(source)
    if tuple(labels.shape) != grid.array_shape:
        raise ValueError(
            f"labels of shape {labels.shape} are not on the grid of {Path(source).name} "
            f"{grid.array_shape}"
        )
    pixels = np.ascontiguousarray(grid.to_file(labels).transpose(2, 1, 0))  # slice, row, col
    if pixels.max(initial=0) > numbers[-1]:
        raise ValueError(f"the labels hold ids above the last segment's, {numbers[-1]}")
    sources = _source_headers(slices)
    pixels = _in_frame_order(pixels, slices, sources, Path(source).name)
    described = [_description(hd, n, *segments[n], algorithm, __version__) for n in numbers]
    try:
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=pixels.astype(np.uint8 if numbers[-1] < 256 else np.uint16),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=described,
            series_instance_uid=hd.UID(),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="napari-seg",
            manufacturer_model_name=algorithm[:64],
            software_versions=str(__version__),
            device_serial_number="0",
            series_description=f"{algorithm} segmentation"[:64],
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"cannot write a DICOM SEG of {Path(source).name}: {one_line(exc, 300)}"
        ) from None
    with atomic_write(path, overwrite=overwrite) as handle:
        seg.save_as(handle, enforce_file_format=True)


def _source_headers(slices: list) -> list:
    """The headers of the images of a series' ``slices`` (a multi-frame image's once),
    with the patient and study attributes a SEG copies (empty on the copies read where
    the files state none) and a frame of reference (one for all where they state none)."""
    import pydicom

    files = dict.fromkeys(where.path for where in slices)
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    frame = pydicom.uid.generate_uid()
    for ds in sources:
        for keyword in PATIENT_STUDY_KEYWORDS:
            if keyword not in ds:
                setattr(ds, keyword, "")
        if "FrameOfReferenceUID" not in ds:
            ds.FrameOfReferenceUID = frame
    return sources


def _in_frame_order(pixels: np.ndarray, slices: list, sources: list, name: str) -> np.ndarray:
    """``pixels`` (slice, row, column) as highdicom takes them for ``sources``: as they
    are for a file per slice; for an enhanced multi-frame image, in its frames' order
    (the frames of the volume's slices, empty elsewhere)."""
    if all(where.frame is None for where in slices):
        return pixels
    if len(sources) > 1:
        raise ValueError(
            f"cannot write a DICOM SEG of {name}: its slices are spread over "
            f"{len(sources)} files, some of them multi-frame images, and a SEG of a "
            "multi-frame image references that one image"
        )
    framed = np.zeros((int(sources[0].NumberOfFrames), *pixels.shape[1:]), pixels.dtype)
    framed[[where.frame for where in slices]] = pixels
    return framed


def check_seg_numbers(segments: dict) -> list[int]:
    """The label values of ``segments`` (:func:`write_dicom_seg`'s), refused unless they
    run 1, 2, 3... as a DICOM SEG numbers its segments.

    Parameters
    ----------
    segments : dict

    Returns
    -------
    list of int

    Raises
    ------
    ValueError
        Naming the values.
    """
    numbers = sorted(segments)
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(
            f"a DICOM SEG numbers its segments 1, 2, 3...; the classes to write have label "
            f"values {numbers} (a model whose background is not class 0, or with one class)"
        )
    return numbers


def _description(hd, number: int, name: str, color: tuple, algorithm: str, version: str):
    """A segment's description: its label, a generic "tissue" property (napari-seg's
    classes carry no coded meaning), the algorithm and its colour."""
    from pydicom.sr.codedict import codes

    rgb = None
    if len(color) >= 3:
        rgb = hd.color.CIELabColor.from_rgb(*(round(float(c) * 255) for c in color[:3]))
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=" ".join(str(name).split())[:64] or f"segment {number}",
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm[:64],
            version=str(version)[:64],
            family=codes.cid7162.ArtificialIntelligence,
        ),
        display_color=rgb,
    )
