"""DICOM series folders (pydicom): read as ``(z, y, x)`` LPS arrays."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .._extras import extra_message
from .._ome_zarr import is_zarr_path
from ..limits import (
    DICOM_SEARCH_DEPTH,
    DICOM_SEARCH_FOLDERS,
    GIB,
    MAX_DICOM_FILES,
    MAX_NIFTI_CHANNELS,
    MAX_VOLUME_BYTES,
    one_line,
)
from ._geometry import VolumeGeometry


def is_dicom_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder whose files include DICOM files (checked by their
    first bytes: the Part 10 preamble, or a dataset written without it).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    path = Path(path)
    try:
        children = sorted(path.iterdir()) if path.is_dir() else []
    except OSError:  # a folder this user may not list ("System Volume Information")
        return False
    return any(child.is_file() and _dicom_header_kind(child) for child in children[:64])


def holds_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM folder or has one among its subfolders (a study,
    or a CD export with a DICOMDIR), down to ``limits.DICOM_SEARCH_DEPTH`` levels.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    path = Path(path)
    if not path.is_dir() or _is_zarr(path):  # napari asks about every folder it opens
        return False
    return any(is_dicom_folder(f) for f in _folders_below(path))


def _folders_below(root: Path) -> Iterator[Path]:
    """``root``, then its subfolders breadth first, in name order, down to
    ``DICOM_SEARCH_DEPTH`` levels and ``DICOM_SEARCH_FOLDERS`` folders; hidden
    folders, zarr stores and links are not entered."""
    level, seen = [root], 0
    for depth in range(DICOM_SEARCH_DEPTH + 1):
        below: list[Path] = []
        for folder in level:
            if seen >= DICOM_SEARCH_FOLDERS:
                return
            seen += 1
            yield folder
            if depth < DICOM_SEARCH_DEPTH:
                below += _subfolders(folder)
        level = below


def _subfolders(folder: Path) -> list[Path]:
    """``folder``'s subfolders to search, in name order (``scandir``: a folder of many
    files costs no call per file)."""
    try:
        with os.scandir(folder) as entries:
            names = sorted(
                e.name for e in entries
                if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            )  # fmt: skip
    except OSError:
        return []
    return [folder / name for name in names if not _is_zarr(folder / name)]


def _is_zarr(path: Path) -> bool:
    """A zarr store by its name or its metadata (``_ome_zarr.is_zarr_path``)."""
    return path.suffix == ".zarr" or is_zarr_path(path)


def _dicom_header_kind(path: Path) -> str | None:
    """The kind of DICOM file ``path`` is: "part10" (with the preamble), "bare" (a
    dataset written without it, ACR-NEMA style, as some older scanners and PACS
    export: it begins with a group 0008 element in little endian), or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return None
    if len(head) == 132 and head[128:] == b"DICM":
        return "part10"
    return "bare" if len(head) >= 8 and head[:2] == b"\x08\x00" else None


def _read_header(path: Path, kind: str) -> tuple:
    """The dataset of ``path`` up to its pixel data, and whether the file ended first
    (no pixel data: a truncated copy, or a file that is no image)."""
    with open(path, "rb") as handle:
        ds = _read_dataset(handle, kind, stop_before_pixels=True)
        return ds, handle.tell() >= os.fstat(handle.fileno()).st_size


def _is_image(ds) -> bool:
    """Whether ``ds``'s SOP class (or its file meta's) is an image storage class (CT,
    MR, PET, secondary capture...), not a DICOMDIR, report or structure set."""
    return "Image Storage" in _sop_name(ds)


def _sop_name(ds) -> str:
    """The name of ``ds``'s SOP class (or its file meta's), as pydicom knows it ("CT
    Image Storage", "Segmentation Storage"...); the UID itself for a private one."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    sop = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    return "" if sop is None else UID(str(sop)).name


def _read_dataset(path, kind: str, **kwargs):
    """``pydicom.dcmread`` of a path or open file, also for a dataset without the
    preamble and file meta (its transfer syntax, which pydicom needs to decode the
    pixels, from the encoding)."""
    import pydicom
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ds = pydicom.dcmread(path, force=kind == "bare", **kwargs)
    meta = getattr(ds, "file_meta", None)
    if kind == "bare" and (meta is None or "TransferSyntaxUID" not in meta):
        implicit, little = ds.original_encoding
        syntax = (ImplicitVRLittleEndian if implicit
                  else ExplicitVRLittleEndian if little else ExplicitVRBigEndian)  # fmt: skip
        ds.ensure_file_meta()
        ds.file_meta.TransferSyntaxUID = syntax
    return ds


def read_dicom(
    folder: str | os.PathLike, *, series: str | None = None
) -> tuple[np.ndarray, VolumeGeometry]:
    """A DICOM series folder as a ``(z, y, x)`` LPS array and its geometry.

    Slices are ordered by their position along the slice normal (not by file
    name or instance number); values are rescaled (``RescaleSlope``,
    ``RescaleIntercept``) to float32 when the series asks for it.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder of single-frame DICOM files (other files, and localizer images,
        are skipped).
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
        ``series``, or slices that do not form one volume (different
        orientations or sizes, repeated or unevenly spaced positions).
    """
    groups = _series_groups(Path(folder))
    if series is None and len(groups) > 1:
        listing = "; ".join(
            f"{uid} ({len(items)} files, {_description(items)})"
            for uid, items in sorted(groups.items())
        )
        raise ValueError(
            f"{folder} holds {len(groups)} DICOM series: {listing}; choose one (napari "
            "opens each as a layer; elsewhere put each series in a folder of its own, or "
            "pass series= to napari_seg.medical.read_volume)"
        )
    if series is not None and series not in groups:
        raise ValueError(f"{folder} has no series {series!r}; it has {sorted(groups)}")
    items = groups[series] if series is not None else next(iter(groups.values()))
    return _read_series(items, folder)


def read_dicom_series(folder: str | os.PathLike) -> tuple[list[tuple], list[str]]:
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

    Raises
    ------
    ValueError
        For a folder without a readable series, whose series all fail (each
        one's reason), or whose series together would take more than
        ``limits.MAX_VOLUME_BYTES``.
    """
    others: dict[str, list[str]] = {}
    groups = _series_groups(Path(folder), below=True, others=others)
    total = sum(_claimed_bytes(items) for items in groups.values())
    if len(groups) > 1 and total > MAX_VOLUME_BYTES:
        raise ValueError(
            f"{folder} holds {len(groups)} DICOM series that would take {total / GIB:.0f} "
            f"GiB together, more than the {MAX_VOLUME_BYTES // GIB} GiB napari-seg reads at "
            "once; open the folder of one series"
        )
    read, failed = [], []
    skipped = [  # a segmentation exported with the study: named, not shown
        f"{', '.join(others[name][:3])}: {advice}"
        for name, advice in _NOT_SLICES.items()
        if name in others
    ]

    def number(item):  # SeriesNumber, as viewers list a study; then the description
        uid, items = item
        return int(getattr(items[0][1], "SeriesNumber", 0) or 0), _description(items), uid

    for uid, items in sorted(groups.items(), key=number):
        try:
            read.append((uid, _description(items), *_read_series(items, folder)))
        except ValueError as exc:
            failed.append((exc, f"series {_description(items)} ({uid}): {exc}"))
    if not read and len(failed) == 1:
        raise failed[0][0]
    if not read and failed:
        reasons = "; ".join(line for _exc, line in failed)
        raise ValueError(f"none of the {len(failed)} DICOM series in {folder} reads: {reasons}")
    return read, skipped + [line for _exc, line in failed]


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
    if len(volumes) > MAX_NIFTI_CHANNELS:
        raise ValueError(
            f"{folder}: the series holds {len(volumes)} volumes at the same positions; "
            f"napari-seg reads them as channels (at most {MAX_NIFTI_CHANNELS}): convert "
            "it to NIfTI files first (dcm2niix)"
        )
    data, affine = None, None
    for channel, group in enumerate(volumes):
        group_affine, order = _dicom_affine(group, folder)
        if affine is not None and not np.allclose(group_affine, affine, atol=1e-3):
            raise ValueError(f"{folder}: the volumes of the series lie on different grids")
        affine = group_affine
        planes = []
        for index in order:
            path, header = group[index]
            # a file read without its preamble has none (its kind, found by _dicom_headers)
            planes.append(_dicom_plane(path, "bare" if header.preamble is None else "part10"))
        volume = np.stack(planes).transpose(2, 1, 0)  # (column, row, slice)
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
    return geometry.to_array(data), geometry


#: Tags that tell apart the volumes of a series whose slices repeat their positions
#: (echoes, time points, diffusion weightings), tried in this order.
VOLUME_TAGS = (
    "EchoNumbers",
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


def _dicom_headers(folder: Path, *, below: bool = False, others=None) -> list:
    """The image slices' headers (path, dataset) of ``folder``'s files, and with
    ``below`` of its subfolders' files too (:func:`_folders_below`); the names of
    the other DICOM files go into ``others`` by what they are."""
    try:
        import pydicom  # noqa: F401
    except ImportError:
        raise ValueError(extra_message("reading DICOM", "pydicom", "medical")) from None
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of DICOM files")
    files: list[Path] = []
    for where in _folders_below(folder) if below else [folder]:
        try:
            files += [p for p in sorted(where.iterdir()) if p.is_file()]
        except OSError:
            if where == folder:
                raise
            continue  # a subfolder this user may not list: searched as far as it can be
        if len(files) > MAX_DICOM_FILES:
            within = " with its subfolders" if below else ""
            raise ValueError(
                f"{folder}{within} holds more than {MAX_DICOM_FILES} files; open the "
                "folder of one series"
            )
    headers: list = []
    others = {} if others is None else others  # the files that are no slice, by kind
    for path in files:
        if (kind := _dicom_header_kind(path)) is None:
            continue
        try:
            ds, ended = _read_header(path, kind)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (OSError, ValueError, EOFError, AttributeError, KeyError, TypeError) as exc:
            if kind == "bare":
                continue  # only its first bytes looked like DICOM
            raise ValueError(f"cannot read {path} as DICOM: {one_line(exc, 200)}") from None
        if ended and _is_image(ds):
            # pydicom returns what it read of a truncated file without a word: skipped
            # as "no image slice", the series would be a slice short.
            raise ValueError(
                f"{path} ends before its pixel data: a truncated or damaged copy (copy it "
                "again, or remove it if the series is whole without it)"
            )
        if (sop := _sop_name(ds)) in _NOT_SLICES:
            others.setdefault(sop, []).append(path.name)
        elif frames > 1:
            others.setdefault("multi-frame", []).append(path.name)
        elif "LOCALIZER" in [str(v).upper() for v in ds.get("ImageType", [])]:
            others.setdefault("localizer", []).append(path.name)  # a scout, beside the slices
        elif "ImagePositionPatient" in ds and "PixelSpacing" in ds:
            headers.append((path, ds))
    if not headers:
        raise ValueError(
            _why_no_slices(folder, others) + ("" if below else _subfolders_hint(folder))
        )
    return headers


#: DICOM objects that are not image slices, and what to do with them.
_NOT_SLICES = {
    "Segmentation Storage": (
        "a DICOM SEG segmentation; napari-seg reads label maps as NIfTI: convert it "
        "first (dcmqi's segimage2itkimage, or highdicom)"
    ),
    "RT Structure Set Storage": (
        "an RT structure set (contours, not voxels): convert it to a label map on its "
        "image's grid first (dcmrtstruct2nii, or rt-utils)"
    ),
}


def _why_no_slices(folder: Path, others: dict[str, list[str]]) -> str:
    """Why ``folder`` gave no image slice, from what its DICOM files are instead."""
    for name, advice in _NOT_SLICES.items():
        if name in others:
            return f"{folder} holds {advice} ({', '.join(others[name][:3])})"
    if "multi-frame" in others:
        return (
            f"{folder} holds multi-frame DICOM files ({', '.join(others['multi-frame'][:3])}); "
            "napari-seg reads series of single-frame slices: convert them to NIfTI first "
            "(dcm2niix)"
        )
    scouts = others.get("localizer", [])
    only = f" (only localizers: {', '.join(scouts[:3])})" if scouts else ""
    return f"{folder} holds no DICOM image slices (with a position and a spacing){only}"


def _subfolders_hint(folder: Path) -> str:
    """For a study or CD export (a DICOMDIR beside the series' folders): the folders
    below ``folder`` that hold DICOM files, to give instead."""
    found = [f for f in list(_folders_below(folder))[1:] if is_dicom_folder(f)]
    if not found:
        return ""
    shown = ", ".join(f.relative_to(folder).as_posix() for f in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f"; its subfolders hold DICOM files ({shown}{more}): give one of them"


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
    order = [int(i) for i in np.argsort(where, kind="stable")]
    steps = np.diff(where[order])
    if len(items) > 1 and (np.any(steps < 1e-3) or np.ptp(steps) > 0.01 * np.median(steps)):
        raise ValueError(
            f"{folder}: the slices are not evenly spaced along the normal (steps "
            f"{np.round(np.unique(np.round(steps, 3)), 3).tolist()[:5]} mm): repeated or "
            "missing slices, or several volumes in one series"
        )
    dz = float(np.median(steps)) if len(items) > 1 else float(getattr(first, "SliceThickness", 1))
    lps = np.eye(4)
    lps[:3, 0] = cosines[0] * dx  # along a row: the column index
    lps[:3, 1] = cosines[1] * dy  # down a column: the row index
    lps[:3, 2] = normal * dz
    lps[:3, 3] = positions[order[0]]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, order


def _dicom_plane(path: Path, kind: str) -> np.ndarray:
    try:
        ds = _read_dataset(path, kind)
        undecodable = _undecodable(path, ds)
        plane = None if undecodable else ds.pixel_array
    except (OSError, ValueError, EOFError, AttributeError, KeyError, RuntimeError) as exc:
        raise ValueError(f"cannot read the pixels of {path}: {one_line(exc, 200)}") from None
    if plane is None:
        raise ValueError(undecodable)
    if plane.ndim != 2:
        raise ValueError(f"{path} is not a single-frame greyscale slice (shape {plane.shape})")
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    if slope != 1 or intercept != 0:
        return (plane.astype(np.float32) * slope + intercept).astype(np.float32)
    return plane


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
