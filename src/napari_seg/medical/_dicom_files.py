"""Finding a DICOM series' files (pydicom): which folders hold DICOM files, down to
a study's or CD export's subfolders, their image slices' headers, and what the
other DICOM objects among them are."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .._extras import import_for_reading
from .._ome_zarr import is_zarr_path
from .._paths import user_path
from ..limits import DICOM_SEARCH_DEPTH, DICOM_SEARCH_FOLDERS, MAX_DICOM_FILES, one_line
from ._dicom_frames import frame_headers


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
    path = user_path(path)
    if not path.is_dir():
        return False
    try:
        names = _file_names(path)
    except OSError:  # a folder this user may not list ("System Volume Information")
        return False
    names = [n for n in names if os.path.splitext(n)[1].lower() not in NOT_DICOM_SUFFIXES]
    return any(_dicom_header_kind(path / name) for name in names[:64])


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that begins as a DICOM file does (the Part 10
    preamble, or a dataset written without it), its name not one of another format's.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    path = user_path(path)
    if not path.is_file() or path.suffix.lower() in NOT_DICOM_SUFFIXES:
        return False
    return _dicom_header_kind(path) is not None


def _file_names(folder: Path) -> list[str]:
    """The names of ``folder``'s files, sorted (``scandir``: the entry type comes with
    the listing, no call per file, and names sort as strings, not as ``Path`` objects).

    Raises
    ------
    OSError
        For a folder that cannot be listed.
    """
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_file())


#: Name endings of files that are no DICOM (images, arrays, text) and that the search
#: for DICOM folders does not open: napari asks about every folder it opens, and a
#: tree of image folders cost a read per file (256 folders of 80 TIFFs: 0.62 s, now
#: 0.11-0.16 s with these passed over and the names sorted as strings).
NOT_DICOM_SUFFIXES = frozenset({
    ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy", ".npz", ".nii", ".gz",
    ".zip", ".txt", ".csv", ".json", ".xml", ".yaml", ".yml", ".md", ".pdf", ".py", ".h5",
    ".hdf5", ".czi", ".lif", ".nd2", ".safetensors", ".pt", ".nrrd", ".nhdr", ".raw",
    ".mha", ".mhd", ".zraw",
})  # fmt: skip


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
    path = user_path(path)
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


def header_of_class(path: str | os.PathLike, classes: Sequence[str]) -> Any:
    """The header (up to the pixel data) of a DICOM file whose SOP class is one of
    ``classes`` (as pydicom names them); None for any other file (:func:`is_dicom_file`
    first: a file of another format's name, or without DICOM's first bytes, is not
    opened as DICOM) or a header that cannot be read.

    Parameters
    ----------
    path : str or os.PathLike
    classes : sequence of str

    Returns
    -------
    pydicom.Dataset or None
    """
    path = Path(path)
    if not is_dicom_file(path) or (kind := _dicom_header_kind(path)) is None:
        return None
    try:
        ds, _ended = _read_header(path, kind)
    except Exception:  # not DICOM after all
        return None
    return ds if _sop_name(ds) in classes else None


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


def _dicom_headers(folder: Path, *, below: bool = False, others=None) -> list:
    """The image slices' headers (path, dataset) of ``folder``'s files, and with
    ``below`` of its subfolders' files too (:func:`_folders_below`); the paths of
    the other DICOM files go into ``others`` by what they are."""
    import_for_reading("pydicom", "reading DICOM", "pydicom", "medical")
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of DICOM files")
    files: list[Path] = []
    for where in _folders_below(folder) if below else [folder]:
        try:
            files += [where / name for name in _file_names(where)]
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
            others.setdefault(sop, []).append(path)
        elif "LOCALIZER" in [str(v).upper() for v in ds.get("ImageType", [])]:
            others.setdefault("localizer", []).append(path)  # a scout, beside the slices
        elif "PerFrameFunctionalGroupsSequence" in ds and (found := frame_headers(path, ds)):
            headers += found  # an enhanced multi-frame image: its frames are slices
        elif frames > 1:
            others.setdefault("multi-frame", []).append(path)
        elif "ImagePositionPatient" in ds and "PixelSpacing" in ds:
            headers.append((path, ds))
        elif _is_image(ds):  # an X-ray, ultrasound or camera image: no slice of a volume
            others.setdefault("2D", []).append(path)
    if not headers:
        raise ValueError(
            _why_no_slices(folder, others) + ("" if below else _subfolders_hint(folder))
        )
    return headers


#: The SOP classes of DICOM segmentations, as pydicom names them (one that does not
#: know the label-map class, added to DICOM in 2024, names it by its UID).
SEG_SOP_CLASSES = (
    "Segmentation Storage",
    "Label Map Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.7",
)
#: Patient and study attributes of type 2 (present, possibly empty) that a SEG or an
#: RT structure set copies from the images it was made on (an anonymised export may
#: drop them; they are then written empty).
PATIENT_STUDY_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                          "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                          "AccessionNumber")  # fmt: skip
#: The SOP class of an RT structure set, as pydicom names it.
RTSTRUCT_SOP_CLASS = "RT Structure Set Storage"
_SEG_ADVICE = (
    "a DICOM SEG segmentation, no image series: give the SEG file itself, which "
    "napari-seg reads as a label map"
)
#: DICOM objects that are not image slices, and what to do with them.
_NOT_SLICES = {
    **dict.fromkeys(SEG_SOP_CLASSES, _SEG_ADVICE),
    RTSTRUCT_SOP_CLASS: (
        "an RT structure set (contours, no image series): give the RTSTRUCT file itself, "
        "which napari-seg reads as a label map on the grid of its series"
    ),
}


def few_files(paths: list[Path]) -> str:
    """The names of the first three of ``paths``, for a message."""
    return ", ".join(p.name for p in paths[:3])


def _why_no_slices(folder: Path, others: dict[str, list[Path]]) -> str:
    """Why ``folder`` gave no image slice, from what its DICOM files are instead."""
    for name, advice in _NOT_SLICES.items():
        if name in others:
            return f"{folder} holds {advice} ({few_files(others[name])})"
    if "multi-frame" in others:
        return (
            f"{folder} holds multi-frame DICOM files ({few_files(others['multi-frame'])}) "
            "that do not state each frame's position; napari-seg reads series of "
            "single-frame slices and enhanced multi-frame images: convert them to NIfTI "
            "first (dcm2niix)"
        )
    if "2D" in others:
        return (
            f"{folder} holds DICOM images without a slice position and spacing "
            f"({few_files(others['2D'])}): 2D images (X-ray, ultrasound, camera), which "
            "napari-seg does not read as DICOM; save them as PNG or TIFF (their "
            "pixel_array in pydicom) and segment those"
        )
    scouts = others.get("localizer", [])
    only = f" (only localizers: {few_files(scouts)})" if scouts else ""
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
