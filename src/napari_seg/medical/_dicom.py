"""DICOM series (pydicom): read as ``(z, y, x)`` LPS arrays (their files found by
``_dicom_files``)."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._paths import user_path
from ..limits import GIB, MAX_VOLUME_BYTES, one_line
from ._dicom_files import (
    _NOT_SLICES,
    RTSTRUCT_SOP_CLASS,
    SEG_SOP_CLASSES,
    _dicom_header_kind,
    _dicom_headers,
    _read_dataset,
    _read_header,
    few_files,
)
from ._geometry import FLIP_RAS_LPS, VolumeGeometry
from ._rescale import rescaled
from ._time import dicom_time_step

logger = logging.getLogger(__name__)


def read_dicom(
    path: str | os.PathLike, *, series: str | None = None
) -> tuple[np.ndarray, VolumeGeometry]:
    """A DICOM series as a ``(z, y, x)`` LPS array and its geometry: the series of a
    folder, or the series one file of a folder belongs to (as viewers open a series
    from one of its files; how to choose one of a folder's several series).

    Slices are ordered by their position along the slice normal (not by file
    name or instance number); values are rescaled (``RescaleSlope``,
    ``RescaleIntercept``) to float32 when the series asks for it.

    Parameters
    ----------
    path : str or os.PathLike
        A folder of single-frame DICOM files (other files, and localizer images,
        are skipped), or one image file of a series in such a folder.
    series : str, optional
        The SeriesInstanceUID to read when the folder holds several series.

    Returns
    -------
    array : ndarray
    geometry : VolumeGeometry

    Raises
    ------
    ValueError
        For a folder without a readable series, with several series and no
        ``series``, a file that is no image slice of a series, or slices that
        do not form one volume (different orientations or sizes, repeated or
        unevenly spaced positions).
    """
    path = user_path(path)
    items, folder = _series_items(path, series)
    return _read_series(items, folder)


def _series_items(path: Path, series: str | None) -> tuple[list, Path]:
    """The (path, header) items of the series :func:`read_dicom` reads, and its folder."""
    folder = path.parent if path.is_file() else path
    others: dict[str, list[Path]] = {}
    groups = _series_groups(folder, others=others)
    if path.is_file():
        series = _series_of_file(path, groups, others, series)
    if series is None and len(groups) > 1:
        raise ValueError(
            f"{folder} holds {len(groups)} DICOM series: {_listing(groups)}; give one "
            "file of the series to read instead of the folder (napari opens the folder as "
            "a layer per series; in Python, series= chooses one by its UID)"
        )
    if series is not None and series not in groups:
        raise ValueError(f"{folder} has no series {series!r}; it has {_listing(groups)}")
    return (groups[series] if series is not None else next(iter(groups.values()))), folder


class DicomSlice(NamedTuple):
    """One slice of a DICOM series: its file, its frame index in that file when the
    file is a multi-frame image holding several slices (else None), and its recorded
    position (``ImagePositionPatient``, LPS mm)."""

    path: Path
    frame: int | None
    position: tuple[float, ...]


def dicom_slices(path: str | os.PathLike) -> tuple[list[DicomSlice], VolumeGeometry]:
    """The slices of the DICOM series :func:`read_dicom` reads from ``path``, in the
    order of the volume's slices (the ``k`` of its file order): a file each, or frames
    of an enhanced multi-frame file, and its geometry, from their headers alone. What a
    SEG or an RT structure set of the series references its images by.

    Parameters
    ----------
    path : str or os.PathLike
        A series' folder, or one of its files.

    Returns
    -------
    slices : list of DicomSlice
    geometry : VolumeGeometry

    Raises
    ------
    ValueError
        As :func:`read_dicom` does, and for a series of several volumes (echoes, time
        points).
    """
    path = user_path(path)
    items, folder = _series_items(path, None)
    if len(_volumes_of(items)) > 1:
        raise ValueError(f"{folder}: the series is not one volume (several echoes or time points)")
    affine, order = _dicom_affine(items, folder)
    first = items[0][1]
    shape = (int(first.Columns), int(first.Rows), len(items))  # (column, row, slice)
    per_file = Counter(p for p, _ds in items)
    slices = [
        DicomSlice(
            path=items[k][0],
            frame=getattr(items[k][1], "frame_index", None) if per_file[items[k][0]] > 1 else None,
            position=tuple(float(v) for v in items[k][1].ImagePositionPatient),
        )
        for k in order
    ]
    return slices, VolumeGeometry.from_affine(affine, shape, source="dicom")


def slice_offsets(positions: np.ndarray, geometry: VolumeGeometry) -> np.ndarray:
    """How far each slice's recorded position (``ImagePositionPatient``, LPS mm, in the
    volume's slice order) lies from where ``geometry`` stacks it along the slice normal:
    ``(slices, 3)`` LPS mm, zero but for rounding unless the series is sheared (a CT
    gantry tilt), where they grow across the slice plane slice by slice. Coordinates
    drawn on the recorded slices (an RT structure set's contours) are mapped to voxels
    after subtracting them.

    Parameters
    ----------
    positions : ndarray
    geometry : VolumeGeometry

    Returns
    -------
    ndarray
    """
    to_patient = FLIP_RAS_LPS @ geometry.affine
    slices = np.arange(len(positions))
    stacked = to_patient[:3, 2] * slices[:, None] + to_patient[:3, 3]
    return np.asarray(positions, float) - stacked


def _slice_order(positions: np.ndarray, normal: np.ndarray) -> list[int]:
    """The slices' order in the volume: by position along the normal (ties: file order)."""
    return [int(i) for i in np.argsort(positions @ normal, kind="stable")]


def dicom_file_series(path: str | os.PathLike) -> tuple[str, str]:
    """The SeriesInstanceUID and the name (its description, else "series N", else its
    folder's name) of the series a DICOM file belongs to, from its header alone.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    uid : str
    name : str

    Raises
    ------
    ValueError
        For a file that is not DICOM or cannot be read as such.
    """
    path = user_path(path)
    if (kind := _dicom_header_kind(path)) is None:
        raise ValueError(f"{path} is not a DICOM file")
    try:
        ds, _ended = _read_header(path, kind)
    except (OSError, ValueError, EOFError, AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read {path} as DICOM: {one_line(exc, 200)}") from None
    return str(getattr(ds, "SeriesInstanceUID", "")), _description([(path, ds)])


def _series_of_file(path: Path, groups: dict, others: dict, series: str | None) -> str:
    """The SeriesInstanceUID of the image slice ``path`` (one of ``groups``' files).

    Raises
    ------
    ValueError
        For a file that is no image slice (why, from ``others``), or the UID of
        another series in ``series``.
    """
    found = [uid for uid, items in groups.items() if any(p == path for p, _ds in items)]
    if not found:
        what = next((kind for kind, paths in others.items() if path in paths), None)
        why = (
            _NOT_SLICES.get(what, f"a {what} image") if what
            else "not a DICOM file" if _dicom_header_kind(path) is None
            else "no slice position and pixel spacing"
        )  # fmt: skip
        raise ValueError(
            f"{path} is no image slice of a DICOM series ({why}); give a file of the "
            f"series to read, or its folder ({_listing(groups)})"
        )
    if series is not None and series != found[0]:
        raise ValueError(f"{path} belongs to series {found[0]}, not {series}")
    return found[0]


def _listing(groups: dict[str, list]) -> str:
    """A folder's series for a message: each one's description, file count, UID and
    one of its files (by SeriesNumber, as viewers list a study)."""
    return "; ".join(
        f"{_description(items)} ({len(items)} files, e.g. {items[0][0].name}; {uid})"
        for uid, items in sorted(groups.items(), key=_by_number)
    )


def _by_number(item: tuple[str, list]) -> tuple:
    """A series' sort key, as viewers list a study: SeriesNumber, then description."""
    uid, items = item
    return int(getattr(items[0][1], "SeriesNumber", 0) or 0), _description(items), uid


def read_dicom_series(folder: str | os.PathLike) -> tuple[list[tuple], list[str], list[Path]]:
    """Every series of a DICOM folder and of its subfolders (a study, or a CD export
    with a DICOMDIR, down to ``limits.DICOM_SEARCH_DEPTH`` levels), each read as
    :func:`read_dicom` reads one. A series split over several folders is one series.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    series : list of (uid, description, array, geometry)
        The series that form a volume, by SeriesNumber (then description).
    skipped : list of str
        Why each other series was not read (one line each).
    segmentations : list of Path
        The DICOM SEG and RT structure set files among them
        (:func:`~napari_seg.medical.read_segmentation` reads each), in file order.

    Raises
    ------
    ValueError
        For a folder without a readable series, whose series all fail (each
        one's reason), or whose series together would take more than
        ``limits.MAX_VOLUME_BYTES``.
    """
    folder = user_path(folder)
    others: dict[str, list[Path]] = {}
    groups = _series_groups(folder, below=True, others=others)
    total = sum(_claimed_bytes(items) for items in groups.values())
    if len(groups) > 1 and total > MAX_VOLUME_BYTES:
        raise ValueError(
            f"{folder} holds {len(groups)} DICOM series that would take {total / GIB:.0f} "
            f"GiB together, more than the {MAX_VOLUME_BYTES // GIB} GiB napari-seg reads at "
            "once; open the folder of one series"
        )
    read, failed = [], []
    kinds = (*SEG_SOP_CLASSES, RTSTRUCT_SOP_CLASS)
    segmentations = [p for kind in kinds for p in others.get(kind, [])]
    skipped = [  # contours exported with the study: named, not shown
        f"{few_files(others[name])}: {advice}"
        for name, advice in _NOT_SLICES.items()
        if name in others and name not in kinds
    ]

    for uid, items in sorted(groups.items(), key=_by_number):
        try:
            read.append((uid, _description(items), *_read_series(items, folder)))
        except ValueError as exc:
            failed.append((exc, f"series {_description(items)} ({uid}): {exc}"))
    if not read and len(failed) == 1:
        raise failed[0][0]
    if not read and failed:
        reasons = "; ".join(line for _exc, line in failed)
        raise ValueError(f"none of the {len(failed)} DICOM series in {folder} reads: {reasons}")
    return read, skipped + [line for _exc, line in failed], segmentations


def _series_groups(folder: Path, *, below: bool = False, others=None) -> dict[str, list]:
    groups: dict[str, list] = {}
    for path, ds in _dicom_headers(folder, below=below, others=others):
        groups.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((path, ds))
    return groups


def _description(items: list) -> str:
    """A series' SeriesDescription, else "series N" from its SeriesNumber, else the
    name of its first file's folder (a layer name: two unnamed series stay apart)."""
    path, first = items[0]
    if description := str(getattr(first, "SeriesDescription", "") or "").strip():
        return description
    number = str(getattr(first, "SeriesNumber", "") or "").strip()
    return f"series {number}" if number else path.parent.name


def _read_series(items: list, folder) -> tuple[np.ndarray, VolumeGeometry]:
    first = items[0][1]
    if (claimed := _claimed_bytes(items)) > MAX_VOLUME_BYTES:
        raise ValueError(
            f"{folder}: {len(items)} slices of {first.Rows}x{first.Columns} would take "
            f"{claimed / GIB:.0f} GiB, more than the {MAX_VOLUME_BYTES // GIB} GiB "
            "napari-seg reads at once"
        )
    volumes = _volumes_of(items)
    data, affine = None, None
    frames: dict[str, Any] = {}  # an enhanced multi-frame file's decoded frames
    for channel, group in enumerate(volumes):
        group_affine, order = _dicom_affine(group, folder)
        if affine is not None and not np.allclose(group_affine, affine, atol=1e-3):
            raise ValueError(f"{folder}: the volumes of the series lie on different grids")
        affine = group_affine
        volume = _stacked([group[index] for index in order], frames)
        if len(volumes) == 1:
            data = volume
        else:  # filled volume by volume: one volume's copy at a time, not all of them
            if data is None:
                data = np.empty((*volume.shape, len(volumes)), volume.dtype)
            elif (wider := np.result_type(data.dtype, volume.dtype)) != data.dtype:
                data = data.astype(wider)  # this volume's slices are rescaled, the first's not
            data[..., channel] = volume
    assert data is not None  # a series has a slice
    assert affine is not None
    geometry = VolumeGeometry.from_affine(affine, data.shape[:3], source="dicom")
    geometry = replace(
        geometry,
        series_file=os.path.abspath(items[0][0]),  # a SEG refers to it
        time_step=dicom_time_step(volumes),  # a cine's or a dynamic series' frame interval
    )
    return geometry.to_array(data), geometry


def _stacked(items: list[tuple[Path, Any]], frames: dict[str, Any]) -> np.ndarray:
    """The rescaled pixels of a volume's slices (``items``, in slice order) in one
    array, ``(column, row, slice)``: filled slice by slice (a list of the slices
    stacked at the end held the volume twice), widened if a slice's values need it.
    ``frames`` keeps an enhanced multi-frame file's decoded frames across volumes."""
    volume: np.ndarray | None = None
    for k, (path, header) in enumerate(items):
        plane = _slice_pixels(path, header, frames)
        if volume is None:
            volume = np.empty((len(items), *plane.shape), plane.dtype)
        elif (wider := np.result_type(volume.dtype, plane.dtype)) != volume.dtype:
            volume = volume.astype(wider)  # a slice rescaled, an earlier one not
        volume[k] = plane
    assert volume is not None  # a volume has a slice
    return volume.transpose(2, 1, 0)


#: Tags that tell apart the volumes of a series whose slices repeat their positions
#: (echoes, time points, diffusion weightings), tried in this order.
VOLUME_TAGS = (
    "EchoNumbers",
    "EchoTime",
    "TemporalPositionIdentifier",
    "TemporalPositionIndex",
    "DiffusionBValue",
    "TriggerTime",
    "AcquisitionNumber",
)


def _volumes_of(items: list) -> list[list]:
    """A series' slices split into volumes at the same positions (a multi-echo or
    dynamic MR series) by the first of ``VOLUME_TAGS`` that gives each volume every
    position once, in that tag's order; ``[items]`` when the positions do not
    repeat, or no tag splits them (:func:`_dicom_affine` then names the repeats)."""
    try:
        positions = [tuple(np.round([float(v) for v in ds.ImagePositionPatient], 3))
                     for _, ds in items]  # fmt: skip
    except (AttributeError, TypeError, ValueError):
        return [items]
    count = len(set(positions))
    if count == len(items) or len(items) % count:
        return [items]
    for tag in VOLUME_TAGS:
        values = [str(getattr(ds, tag, "") or "").strip() for _, ds in items]
        if not all(values):
            continue
        groups: dict[str, list[int]] = {}
        for i, value in enumerate(values):
            groups.setdefault(value, []).append(i)
        if len(groups) > 1 and all(
            len({positions[i] for i in members}) == len(members) == count
            for members in groups.values()
        ):
            return [[items[i] for i in groups[v]] for v in sorted(groups, key=_tag_order)]
    return [items]


def _tag_order(value: str) -> tuple:
    """Numbers in numeric order (echo 2 before echo 10), other values after, by text."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _claimed_bytes(items: list) -> int:
    """The float32 bytes a series' header claims (rescaled values are float32)."""
    first = items[0][1]
    return int(first.Rows) * int(first.Columns) * len(items) * 4


def _dicom_affine(items: list, folder) -> tuple[np.ndarray, list[int]]:
    """The RAS affine of a series (file order: column, row, slice) and the slice order."""
    try:
        first = items[0][1]
        cosines = np.array([float(v) for v in first.ImageOrientationPatient]).reshape(2, 3)
        rows, cols = int(first.Rows), int(first.Columns)
        dy, dx = (float(v) for v in first.PixelSpacing)
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in items])
        same = all(
            np.allclose([float(v) for v in ds.ImageOrientationPatient], cosines.ravel(), atol=1e-4)
            and (int(ds.Rows), int(ds.Columns)) == (rows, cols)
            for _, ds in items
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{folder}: a slice's geometry tags are broken ({exc})") from None
    if not same:
        raise ValueError(f"{folder}: the slices differ in orientation or size; not one volume")
    normal = np.cross(cosines[0], cosines[1])
    where = positions @ normal
    order = _slice_order(positions, normal)
    steps = np.diff(where[order])
    if len(items) > 1 and (np.any(steps < 1e-3) or np.ptp(steps) > 0.01 * np.median(steps)):
        raise ValueError(
            f"{folder}: the slices are not evenly spaced along the normal (steps "
            f"{np.round(np.unique(np.round(steps, 3)), 3).tolist()[:5]} mm): repeated or "
            "missing slices, or several volumes in one series"
        )
    dz = float(np.median(steps)) if len(items) > 1 else float(getattr(first, "SliceThickness", 1))
    _say_shear(positions[order], normal, min(dx, dy), folder)
    lps = np.eye(4)
    lps[:3, 0] = cosines[0] * dx  # along a row: the column index
    lps[:3, 1] = cosines[1] * dy  # down a column: the row index
    lps[:3, 2] = normal * dz
    lps[:3, 3] = positions[order[0]]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, order


#: The sheared series warned of already (a command reads a series' headers several
#: times: its image, the grid a segmentation is placed on, the one it is written on).
_SAID_SHEARED: set[str] = set()


def _say_shear(positions: np.ndarray, normal: np.ndarray, pixel: float, folder) -> None:
    """Log a warning, once per folder, when the slices' positions drift across their
    plane (a CT gantry tilt): the volume is a stack along the normal, as ITK reads it,
    so the last slice lies off its recorded position by that drift."""
    if len(positions) < 2 or str(folder) in _SAID_SHEARED:
        return
    run = positions[-1] - positions[0]
    drift = float(np.linalg.norm(run - (run @ normal) * normal))
    if drift > pixel / 2:
        _SAID_SHEARED.add(str(folder))
        tilt = float(np.degrees(np.arctan2(drift, abs(run @ normal))))
        logger.warning(
            "%s: the slices are sheared (a gantry tilt of %.1f degrees): they are read "
            "as a stack along the slice normal, as ITK reads them, so the last lies %.1f mm "
            "from its recorded position; correct the tilt first (dcm2niix does) where "
            "positions must match the scanner's",
            folder, tilt, drift,
        )  # fmt: skip


def _slice_pixels(path: Path, header, frames: dict) -> np.ndarray:
    """The rescaled pixels of a slice: a single-frame file's, or one frame of an
    enhanced multi-frame file (whose frames are decoded once, kept in ``frames``
    while its slices are read)."""
    # a file read without its preamble has none (its kind, found by _dicom_headers)
    kind = "bare" if header.preamble is None else "part10"
    index = getattr(header, "frame_index", None)
    if index is None:
        return _rescaled(_dicom_pixels(path, kind), header)
    if frames.get("path") != path:
        frames.clear()
        frames.update(path=path, pixels=_dicom_pixels(path, kind, frames=True))
    return _rescaled(frames["pixels"][index], header)


def _dicom_pixels(path: Path, kind: str, *, frames: bool = False) -> np.ndarray:
    """The stored pixels of ``path``: a greyscale slice, or with ``frames`` a
    multi-frame image's frames ``(n, rows, columns)`` (one frame too)."""
    try:
        ds = _read_dataset(path, kind)
        undecodable = _undecodable(path, ds)
        pixels = None if undecodable else ds.pixel_array
    except (OSError, ValueError, EOFError, AttributeError, KeyError, RuntimeError) as exc:
        raise ValueError(f"cannot read the pixels of {path}: {one_line(exc, 200)}") from None
    if pixels is None:
        raise ValueError(undecodable)
    if frames and pixels.ndim == 2 and int(ds.get("NumberOfFrames", 1) or 1) == 1:
        pixels = pixels[np.newaxis]
    if pixels.ndim != (3 if frames else 2):
        what = "greyscale multi-frame image" if frames else "single-frame greyscale slice"
        raise ValueError(f"{path} is not a {what} (shape {pixels.shape})")
    return pixels


def _rescaled(plane: np.ndarray, header) -> np.ndarray:
    """``plane`` with its header's ``RescaleSlope`` and ``RescaleIntercept`` applied
    (:func:`~napari_seg.medical._rescale.rescaled`)."""
    slope = float(getattr(header, "RescaleSlope", 1) or 1)
    intercept = float(getattr(header, "RescaleIntercept", 0) or 0)
    return rescaled(plane, slope, intercept)


def _undecodable(path: Path, ds) -> str | None:
    """Why no installed decoder reads the compression of ``ds``'s pixels (None when
    one does, or they are not compressed). Clinical exports are often JPEG Lossless,
    which pydicom reads through python-gdcm, part of the ``medical`` extra."""
    from pydicom.pixels import get_decoder

    meta = getattr(ds, "file_meta", None)
    syntax = None if meta is None else meta.get("TransferSyntaxUID")
    if syntax is None:
        return None
    name = syntax.name if syntax.name != str(syntax) else f"transfer syntax {syntax}"
    try:
        if not syntax.is_compressed:
            return None
        decoder = get_decoder(syntax)
    except (NotImplementedError, ValueError):
        return (
            f"{path}: the pixels are compressed as {name}, which no DICOM decoder that "
            "napari-seg uses reads; convert the series first (dcm2niix to NIfTI, or "
            "gdcmconv --raw)"
        )
    if decoder.is_available:
        return None
    needs = "; ".join(decoder.missing_dependencies)
    return (
        f"{path}: the pixels are compressed as {name}; decoding them needs one of: "
        f"{needs} (pip install 'napari-seg[medical]' installs python-gdcm)"
    )
