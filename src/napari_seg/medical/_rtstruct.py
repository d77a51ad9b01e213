"""DICOM RT structure sets (RTSTRUCT): the contours radiotherapy planning draws, read as
one ``(z, y, x)`` label map on the grid of the image series they were drawn on.

Each ROI is a set of closed planar contours in patient coordinates (LPS, mm), each on
one of the series' slices. A contour is filled where the voxel centres lie inside it
(scikit-image's ``draw.polygon``); contours of one ROI on one slice are combined by
exclusive or, so that a contour inside another is a hole, as the RTSTRUCT readers of
3D Slicer and plastimatch treat them. ROIs become ids 1, 2, 3... in the order the
structure set lists them, a later one taking the voxels it shares with an earlier one
(as a DICOM SEG's higher segment does); points and open contours (markers, lines)
have no area and are left out. The series is found by its ``SeriesInstanceUID``
(:mod:`._referenced`), or, for a structure set that names only its frame of
reference, as the first series found in that frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..limits import MAX_CLASSES, MAX_NAME_LENGTH, one_line
from ._dicom_files import RTSTRUCT_SOP_CLASS, header_of_class
from ._geometry import FLIP_RAS_LPS, VolumeGeometry
from ._referenced import referenced_grid

#: A contour whose points lie further than this (in slices) from one slice plane is
#: not drawn on the series' slices.
SLICE_TOLERANCE = 0.1


def is_rtstruct(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM RT structure set file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return _header(path) is not None


def _header(path: str | os.PathLike) -> Any:
    """The dataset of an RTSTRUCT file (it holds no pixels); None for any other file."""
    return header_of_class(path, (RTSTRUCT_SOP_CLASS,))


def rtstruct_segments(path: str | os.PathLike) -> dict[int, tuple[str, tuple[float, ...]]]:
    """The ROIs of an RTSTRUCT file as the label map's segments: ``{id: (name, colour)}``,
    ids 1, 2, 3... in the order the structure set lists them, the colour its
    ``ROIDisplayColor`` (RGBA in 0-1) or ``()``; empty for any other file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
    """
    ds = _header(path)
    if ds is None:
        return {}
    colours = {}
    for item in getattr(ds, "ROIContourSequence", []):
        try:
            rgb = [float(v) / 255 for v in item.ROIDisplayColor]
            colours[int(item.ReferencedROINumber)] = (*rgb[:3], 1.0) if len(rgb) == 3 else ()
        except (AttributeError, TypeError, ValueError):
            continue
    segments = {}
    for k, roi in enumerate(list(getattr(ds, "StructureSetROISequence", []))[:MAX_CLASSES]):
        number = int(getattr(roi, "ROINumber", -1) or -1)
        name = str(getattr(roi, "ROIName", "") or f"ROI {number}")[:MAX_NAME_LENGTH]
        segments[k + 1] = (name, colours.get(number, ()))
    return segments


def rtstruct_series_uids(ds: Any) -> tuple[str, ...]:
    """The ``SeriesInstanceUID`` of each image series an RTSTRUCT dataset's contours
    were drawn on (its referenced frame of reference's study and series).

    Parameters
    ----------
    ds : pydicom.Dataset

    Returns
    -------
    tuple of str
    """
    found = []
    for frame in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
        for study in getattr(frame, "RTReferencedStudySequence", []):
            for series in getattr(study, "RTReferencedSeriesSequence", []):
                if uid := str(getattr(series, "SeriesInstanceUID", "") or ""):
                    found.append(uid)
    return tuple(found)


def read_rtstruct(
    path: str | os.PathLike, known: Mapping[str, VolumeGeometry] | None = None
) -> tuple[np.ndarray, VolumeGeometry, dict[int, tuple[str, tuple[float, ...]]]]:
    """An RTSTRUCT file as a ``(z, y, x)`` label map on the grid of its image series,
    with that series' geometry (``series_file`` set) and the ROIs as segments
    (:func:`rtstruct_segments`).

    Parameters
    ----------
    path : str or os.PathLike
    known : mapping, optional
        ``{SeriesInstanceUID: geometry}`` of series read already (a study opened with
        it); without it the series is looked for beside the file.

    Returns
    -------
    labels : ndarray
    geometry : VolumeGeometry
    segments : dict

    Raises
    ------
    ValueError
        For a file that is no RTSTRUCT, one whose series is not found, or a contour
        that does not lie on the series' slices.
    """
    name = Path(path).name
    ds = _header(path)
    if ds is None or "ROIContourSequence" not in ds:
        raise ValueError(f"{name} is no readable DICOM RT structure set (no contours)")
    if uids := rtstruct_series_uids(ds):
        grid = referenced_grid(path, uids, known)
    else:  # only its frame of reference named: the first series found in it
        references = getattr(ds, "ReferencedFrameOfReferenceSequence", [])
        frames = [str(f.FrameOfReferenceUID) for f in references
                  if getattr(f, "FrameOfReferenceUID", None)]  # fmt: skip
        grid = referenced_grid(path, frames, tag="FrameOfReferenceUID")
    if grid is None:
        raise ValueError(
            f"{name}: the image series its contours were drawn on is not in its folder or "
            "the folders beside it; an RT structure set is read on that series' grid: "
            "put it beside the series"
        )
    rois = list(getattr(ds, "StructureSetROISequence", []))[:MAX_CLASSES]
    numbers = [int(getattr(roi, "ROINumber", -1) or -1) for roi in rois]
    contours = {int(getattr(i, "ReferencedROINumber", -2)): i for i in ds.ROIContourSequence}
    dtype = np.uint8 if len(numbers) < 256 else np.uint16
    labels = np.zeros(grid.source_shape, dtype)  # the series' (column, row, slice) order
    to_index = np.linalg.inv(grid.affine) @ FLIP_RAS_LPS  # patient LPS -> (i, j, k)
    for k, number in enumerate(numbers):
        try:
            mask = _roi_mask(contours.get(number), to_index, grid.source_shape)
        except ValueError as exc:
            raise ValueError(f"{name}: ROI {number}: {one_line(exc, 200)}") from None
        labels[mask] = k + 1
    return grid.to_array(labels), grid, rtstruct_segments(path)


def _roi_mask(item: Any, to_index: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The voxels inside one ROI's closed planar contours, in file order."""
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    for contour in getattr(item, "ContourSequence", []) if item is not None else []:
        if str(getattr(contour, "ContourGeometricType", "")).upper() != "CLOSED_PLANAR":
            continue  # a point or an open line: no area
        points = np.asarray([float(v) for v in contour.ContourData], dtype=float)
        if points.size % 3 or not np.isfinite(points).all():
            raise ValueError("a contour's data is not (x, y, z) points in millimetres")
        points = points.reshape(-1, 3)
        index = (to_index @ np.c_[points, np.ones(len(points))].T)[:3].T
        plane = np.rint(index[:, 2])
        if np.abs(index[:, 2] - plane).max() > SLICE_TOLERANCE or np.ptp(plane) > 0:
            raise ValueError("a contour does not lie on one of the series' slices")
        k = int(plane[0])
        if not 0 <= k < shape[2] or len(points) < 3:
            continue  # beyond the series' slices, or no area
        rows, cols = polygon(index[:, 0], index[:, 1], shape[:2])
        mask[rows, cols, k] ^= True  # a contour inside another is a hole
    return mask
