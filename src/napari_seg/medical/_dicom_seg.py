"""DICOM SEG segmentations (highdicom): read as one ``(z, y, x)`` label map of their
segment numbers, on the grid their frames span, with the segments' names and colours.

A SEG stores each segment's frames apart (a binary or fractional mask per segment and
slice) and usually only the slices a segment touches, so its grid is a window of its
source series' grid: :func:`~napari_seg.medical.place_on_grid` places it on the image's
grid where the two are paired. Segments that overlap are merged: the higher segment
number wins (highdicom's rule); in a fractional segmentation each voxel is the segment
of the largest fraction, where that reaches half.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._extras import import_for_reading
from ..limits import GIB, MAX_CLASSES, MAX_NAME_LENGTH, MAX_VOLUME_BYTES, one_line
from ._dicom_files import SEG_SOP_CLASSES, _dicom_header_kind, _read_header, _sop_name
from ._geometry import FLIP_RAS_LPS, VolumeGeometry

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
    is read) and its segments.

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
    hd = _highdicom()
    name = Path(path).name
    try:
        seg = hd.seg.segread(path, lazy_frame_retrieval=True)
    except Exception as exc:  # pydicom and highdicom raise many kinds on a bad file
        raise ValueError(f"{name} is no readable DICOM SEG file: {one_line(exc, 300)}") from None
    segments = _segments(seg)
    fractional = str(getattr(seg, "SegmentationType", "")).upper() == "FRACTIONAL"
    frames = int(getattr(seg, "NumberOfFrames", 1) or 1)
    claimed = frames * int(seg.Rows) * int(seg.Columns) * (4 if fractional else 1)
    if claimed > MAX_VOLUME_BYTES:
        raise ValueError(
            f"{name}: {frames} frames of {seg.Rows}x{seg.Columns} would take "
            f"{claimed / GIB:.0f} GiB, more than the {MAX_VOLUME_BYTES // GIB} GiB napari-seg "
            "reads at once"
        )
    try:  # highdicom combines binary segments only
        volume = seg.get_volume(combine_segments=not fractional, skip_overlap_checks=True)
    except (ValueError, RuntimeError, AttributeError) as exc:
        raise ValueError(
            f"{name}: its frames do not form one regularly spaced volume ({one_line(exc, 300)}); "
            "napari-seg reads DICOM SEG files of 3D images"
        ) from None
    array = np.asarray(volume.array)
    if fractional:  # (slice, row, column, segment) fractions: the largest, where >= half
        numbers = np.asarray(volume.get_channel_values("ReferencedSegmentNumber"), dtype=np.uint16)
        best = array.argmax(axis=-1)
        array = np.where(array.max(axis=-1) >= 0.5, numbers[best], 0)
        array = array.astype(np.uint8 if numbers.max(initial=0) < 256 else np.uint16)
    data = array.transpose(2, 1, 0)  # (column, row, slice): a DICOM series' file order
    affine = FLIP_RAS_LPS @ np.asarray(volume.affine, dtype=float) @ _FILE_ORDER
    geometry = VolumeGeometry.from_affine(affine, data.shape, source="dicom")
    return geometry.to_array(data), geometry, segments


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
    if not is_dicom_seg(path):
        return {}
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # a broken file: its reader says why
        return {}
    return _segments(ds)


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
    """Whether ``path`` is a DICOM SEG file (by its SOP class).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    path = Path(path)
    if not path.is_file() or (kind := _dicom_header_kind(path)) is None:
        return False
    try:
        ds, _ended = _read_header(path, kind)
    except Exception:  # not DICOM after all
        return False
    return _sop_name(ds) in SEG_SOP_CLASSES
