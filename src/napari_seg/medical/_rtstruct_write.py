"""Writing a label map as a DICOM RT structure set (RTSTRUCT) of the series it lies on.

Radiotherapy planning systems import structures as RTSTRUCT contours, not as DICOM
SEG: each label id becomes an ROI (numbered by its id, so that ids 1, 2, 3... read
back as the same ids), each of its regions on a slice a closed planar contour in
patient coordinates (LPS, mm) referencing that slice's image. Contours are traced by
scikit-image's marching squares (``measure.find_contours`` at level 0.5 around the
region, padded by a pixel): the contour passes half-way between the voxel centres
inside and outside it, so filling it where the voxel centres lie inside
(:func:`~napari_seg.medical._rtstruct.polygon_mask`) gives back the same voxels, and a
hole is a contour inside another of the same ROI and slice, as RTSTRUCT readers
combine them.

pydicom writes the file (no maintained library writes RTSTRUCT without OpenCV:
rt-utils needs it); the modules are those of the RT Structure Set IOD (PS3.3 A.19).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._paths import user_path
from ..limits import MAX_CLASSES
from ._dicom import slice_offsets
from ._dicom_files import PATIENT_STUDY_KEYWORDS
from ._geometry import FLIP_RAS_LPS

#: The series number an RTSTRUCT written here gets (one of its own, after the images').
RTSTRUCT_SERIES_NUMBER = 9001
#: The SOP class an RTSTRUCT references its study by (Detached Study Management).
_STUDY_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"


def write_rtstruct(
    path: str | os.PathLike,
    labels: np.ndarray,
    source: str | os.PathLike,
    segments: dict[int, tuple[str, tuple[float, ...]]] | None = None,
    *,
    algorithm: str = "napari-seg",
    roi_types: Mapping[int, str] | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``labels`` (a ``(z, y, x)`` label map on the grid of the DICOM series at
    ``source``, as :func:`~napari_seg.medical.read_dicom` reads it) as a DICOM RT
    structure set of that series: an ROI per segment (numbered by its label value,
    named and coloured as ``segments`` says; one without voxels has no contours),
    or without ``segments`` per id from 1 to the largest ("ROI N"), each region of an
    id on a slice a closed planar contour referencing that slice's image. ROIs of ids
    1, 2, 3... read back as the same ids (:func:`~napari_seg.medical.read_rtstruct`
    numbers ROIs in their order). Written atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.dcm``.
    labels : ndarray
        Integer ids, 0 outside every ROI.
    source : str or os.PathLike
        The series' folder, or one of its files.
    segments : dict, optional
        ``{label value: (name, (r, g, b, a) or ())}``
        (:func:`~napari_seg.medical.class_segments`).
    algorithm : str
        The segmenting algorithm's name (the model's architecture), recorded as each
        ROI's generation algorithm and in the series description.
    roi_types : mapping, optional
        ``{label value: RTROIInterpretedType}`` (ORGAN, PTV, EXTERNAL...: what the
        structure is to a planning system, as :func:`rtstruct_roi_types` reads them from
        a structure set refined here); empty for the others, as DICOM allows.
    overwrite : bool

    Raises
    ------
    ValueError
        For labels that are not integer ids >= 0 on the series' grid, ids that no
        segment names, or a source that is no series of one volume.
    """
    import pydicom

    from .._atomic import atomic_write
    from ._dicom import dicom_slices

    path = user_path(path)
    source = user_path(source)

    slices, grid = dicom_slices(source)
    labels = np.asarray(labels)
    if tuple(labels.shape) != grid.array_shape:
        raise ValueError(
            f"labels of shape {labels.shape} are not on the grid of {Path(source).name} "
            f"{grid.array_shape}"
        )
    if labels.dtype.kind not in "iub" or (labels.size and labels.min() < 0):
        raise ValueError(f"an RT structure set's labels are integer ids >= 0, not {labels.dtype}")
    numbers = _roi_numbers(labels, segments)
    last = max(numbers, default=0)
    read = {p: pydicom.dcmread(p, stop_before_pixels=True) for p, *_ in slices}
    for keyword in ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID"):  # referenced
        if missing := [p.name for p, header in read.items() if keyword not in header]:
            raise ValueError(
                f"{Path(source).name}: {missing[0]} states no {keyword}, which an RT structure "
                "set references its images by"
            )
    images = [(read[where.path], where.frame) for where in slices]  # each slice's image
    ds = _dataset(list(read.values()), algorithm)
    to_patient = FLIP_RAS_LPS @ grid.affine  # (i, j, k) -> patient LPS, stacked
    positions = np.array([where.position for where in slices])
    offsets = slice_offsets(positions, grid)  # a tilted series' slices: recorded
    contours = _contours(grid.to_file(labels), to_patient, offsets, last)
    named = {n: (segments or {}).get(n, (f"ROI {n}", ())) for n in numbers}
    if "SpecificCharacterSet" not in ds and not all(name.isascii() for name, _ in named.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: without it a file holds ASCII only
    for number, (name, colour) in named.items():
        kind = _code_string((roi_types or {}).get(number, ""))
        _add_roi(ds, number, (name, colour, kind), algorithm, contours.get(number, []), images)
    with atomic_write(path, overwrite=overwrite) as handle:
        ds.save_as(handle, enforce_file_format=True)


def _roi_numbers(labels: np.ndarray, segments: dict | None) -> list[int]:
    """The ROI numbers of ``labels``: the segments' label values, else 1 to the
    largest id; a ValueError for ids no segment names, or more ROIs than a structure
    set written here holds (checked before a list of that many numbers is made)."""
    top = int(labels.max(initial=0))
    count = len(segments) if segments else top
    if count > MAX_CLASSES:
        raise ValueError(
            f"{count} ROIs: an RT structure set written here holds at most {MAX_CLASSES} "
            "(objects, one id each, are no structures: write NIfTI instead)"
        )
    if not segments:
        return list(range(1, top + 1))
    numbers = sorted(int(n) for n in segments if int(n) > 0)
    unnamed = np.setdiff1d(np.unique(labels), [0, *numbers])
    if len(unnamed):
        raise ValueError(
            f"the labels hold ids that no segment names ({', '.join(map(str, unnamed[:10]))}): "
            "each id of an RT structure set is an ROI"
        )
    return numbers


def _dataset(headers: list[Any], algorithm: str) -> Any:
    """The structure set's dataset without its ROIs: patient, study, series, equipment
    and structure set modules, referencing every slice of the series."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

    from .. import __version__

    first = headers[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTStructureSetStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    if "SpecificCharacterSet" in first:
        ds.SpecificCharacterSet = first.SpecificCharacterSet
    ds.SOPClassUID, ds.SOPInstanceUID = RTStructureSetStorage, meta.MediaStorageSOPInstanceUID
    for keyword in PATIENT_STUDY_KEYWORDS:
        setattr(ds, keyword, getattr(first, keyword, ""))
    now = datetime.datetime.now()
    ds.StudyInstanceUID = getattr(first, "StudyInstanceUID", "") or generate_uid()
    ds.Modality, ds.SeriesInstanceUID = "RTSTRUCT", generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = RTSTRUCT_SERIES_NUMBER, 1
    ds.SeriesDescription = f"{algorithm} structures"[:64]
    ds.OperatorsName = ""
    ds.Manufacturer, ds.ManufacturerModelName = "napari-seg", algorithm[:64]
    ds.SoftwareVersions = str(__version__)
    ds.StructureSetLabel = algorithm[:16]
    ds.StructureSetDate, ds.StructureSetTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.StructureSetDate, ds.StructureSetTime
    frame = Dataset()
    frame.FrameOfReferenceUID = getattr(first, "FrameOfReferenceUID", "") or generate_uid()
    study, series = Dataset(), Dataset()
    study.ReferencedSOPClassUID, study.ReferencedSOPInstanceUID = (
        _STUDY_SOP_CLASS, ds.StudyInstanceUID
    )  # fmt: skip
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = [_image_reference(h) for h in headers]
    study.RTReferencedSeriesSequence = [series]
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    ds.StructureSetROISequence, ds.ROIContourSequence = [], []
    ds.RTROIObservationsSequence = []
    return ds


def _image_reference(header: Any, frame: int | None = None) -> Any:
    """A reference to an image (SOP class and instance), and to one of its frames
    (index ``frame``) in a multi-frame image."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    if frame is not None:
        item.ReferencedFrameNumber = frame + 1  # numbered from 1
    return item


def _contours(
    pixels: np.ndarray, to_patient: np.ndarray, offsets: np.ndarray, last: int
) -> dict[int, list]:
    """``{id: [(slice, (n, 3) LPS points), ...]}``: the closed contours around each
    id's regions on each slice of ``pixels`` (the series' ``(column, row, slice)``
    order), each traced in the bounding box of its id on that slice, on the slice's
    recorded plane (``offsets``: :func:`~napari_seg.medical._dicom.slice_offsets`)."""
    from scipy import ndimage
    from skimage import measure

    found: dict[int, list] = {}
    for k in range(pixels.shape[2]):
        plane = pixels[:, :, k]
        if not plane.any():
            continue
        for index, box in enumerate(ndimage.find_objects(plane, max_label=last)):
            if box is None:
                continue
            mask = np.pad(plane[box] == index + 1, 1).astype(np.float32)
            offset = np.array([box[0].start - 1, box[1].start - 1], float)
            for line in measure.find_contours(mask, 0.5):
                ij = line[:-1] + offset  # closed: its last point repeats the first
                points = np.c_[ij, np.full(len(ij), k), np.ones(len(ij))] @ to_patient.T
                found.setdefault(index + 1, []).append((k, points[:, :3] + offsets[k]))
    return found


def _code_string(value: str) -> str:
    """``value`` as a DICOM code string: upper case letters, digits, space and
    underscore, at most 16 characters (other characters dropped)."""
    kept = "".join(c for c in str(value).upper() if c.isascii() and (c.isalnum() or c in " _"))
    return kept.strip()[:16]


def _add_roi(
    ds: Any,
    number: int,
    described: tuple[str, tuple[float, ...], str],
    algorithm: str,
    contours: list,
    images: list[tuple[Any, int | None]],
) -> None:
    """Add ROI ``number`` to the structure set: its name, colour and interpreted type
    (``described``), its contours (each referencing the image of its slice: ``images``,
    a header and frame per slice) and its observation."""
    from pydicom.dataset import Dataset

    name, colour, kind = described
    frame = ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    roi, drawn, seen = Dataset(), Dataset(), Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, frame
    roi.ROIName = str(name)[:64]  # LO: 64 characters
    roi.ROIGenerationAlgorithm, roi.ROIGenerationDescription = "AUTOMATIC", algorithm[:64]
    drawn.ReferencedROINumber = number
    if len(colour) >= 3:
        drawn.ROIDisplayColor = [round(255 * min(max(float(c), 0.0), 1.0)) for c in colour[:3]]
    drawn.ContourSequence = [_contour(images[k], points) for k, points in contours]
    seen.ObservationNumber, seen.ReferencedROINumber = number, number
    seen.RTROIInterpretedType, seen.ROIInterpreter = kind, ""
    ds.StructureSetROISequence.append(roi)
    ds.ROIContourSequence.append(drawn)
    ds.RTROIObservationsSequence.append(seen)


def _contour(image: tuple[Any, int | None], points: np.ndarray) -> Any:
    """A closed planar contour item of ``(n, 3)`` LPS points on a slice's ``image``
    (its header, and frame in a multi-frame image).

    Its numbers are written as one text value, stored raw: pydicom turns a value list
    into checked decimal strings one by one, and does so on writing unless the item
    states that it is already in the file's encoding (34 s against 2 s for 3,800
    contours: ``bench/rtstruct.py``)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.dataset import Dataset
    from pydicom.tag import Tag

    item = Dataset()
    item.ContourImageSequence = [_image_reference(*image)]
    item.ContourGeometricType = "CLOSED_PLANAR"
    item.NumberOfContourPoints = len(points)
    text = "\\".join(format(v, ".10g") for v in points.ravel().tolist())  # <= 16 characters
    raw = text.encode("ascii") + (b" " if len(text) % 2 else b"")  # even length, as DICOM's
    tag = Tag(0x30060050)  # ContourData
    item[tag] = RawDataElement(tag, "DS", len(raw), raw, 0, False, True)
    item.set_original_encoding(False, True, item._character_set)  # explicit VR little endian
    return item
