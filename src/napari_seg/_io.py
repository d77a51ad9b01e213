"""Reading images lazily, finding the inputs of a folder and naming outputs (Qt-free,
for the CLI); label files are written by :mod:`napari_seg._io_write`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._ome_zarr import is_zarr_path, ome_zarr_datasets, ome_zarr_transform
from ._paths import user_path
from .limits import MAX_CHUNK_BYTES, one_line

if TYPE_CHECKING:
    from .medical import VolumeGeometry

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INPUT_KINDS = (
    "TIFF, PNG, JPEG, NumPy .npy, zarr, NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), "
    "MetaImage (.mha, .mhd) or a DICOM series (its folder or one of its files)"
)


def read_image(path: str | os.PathLike):
    """Open an image for reading, lazily where the format allows.

    TIFF files are memory-mapped when uncompressed (else opened through
    tifffile's zarr interface, read by region), ``.npy`` files are
    memory-mapped without pickle, zarr arrays are opened read-only, PNG and
    JPEG are read whole. NIfTI, NRRD and MetaImage files and DICOM series (a folder,
    or one of its files) are read as :mod:`napari_seg.medical` says (``(z, y, x)`` in LPS); use
    :func:`read_with_geometry` to keep where their voxels are.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the format is not supported or the file cannot be read as an image.
    """
    return read_with_geometry(path)[0]


def read_with_geometry(path: str | os.PathLike) -> tuple[Any, VolumeGeometry | None]:
    """:func:`read_image`, with the geometry of a medical volume (None for other formats).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the format is not supported or the file cannot be read as an image.
    """
    from . import medical
    from ._dataset_json import channel_files

    path = user_path(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    geometry = None
    suffix = path.suffix.lower()
    try:
        if medical.is_nifti(path) and (channels := channel_files(path)) is not None:
            array, geometry = medical.read_channel_files(channels)
        elif medical.is_volume(path):
            array, geometry = medical.read_volume(path)
        elif suffix in TIFF_SUFFIXES:
            array = _read_tiff(path)
        elif suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        elif suffix == ".zarr" or (path.is_dir() and is_zarr_path(path)):
            array = _read_zarr(path)
        elif suffix in IMAGE_SUFFIXES:
            import imageio.v3 as iio

            array = iio.imread(path)
        else:
            raise ValueError(f"unsupported input {path}: expected {INPUT_KINDS}")
    except ValueError as exc:
        if str(exc).startswith("unsupported input") or str(path) in str(exc):
            raise
        raise ValueError(f"cannot read {path} as an image: {one_line(exc, 300)}") from None
    except (OSError, KeyError, ArithmeticError, MemoryError, RecursionError) as exc:
        # Parsers of hostile files fail in many ways; each is one line naming the file.
        what = type(exc).__name__
        raise ValueError(f"cannot read {path} as an image ({what}: {one_line(exc, 300)})") from None
    check_pixels(path, array)
    return array, geometry


def check_pixels(path: str | os.PathLike, array: Any) -> None:
    """Refuse an image napari cannot show and napari-seg cannot segment: one without
    pixels (an axis of length 0) or one whose values are not real numbers (complex, as
    some MRI reconstructions save, text, records).

    Parameters
    ----------
    path : str or os.PathLike
        The file, named in the message.
    array : array-like
        What it holds (only its shape and dtype are read).

    Raises
    ------
    ValueError
        Naming the file and what is wrong with its pixels.
    """
    shape = tuple(int(n) for n in array.shape)
    if 0 in shape:
        raise ValueError(f"{path} holds an empty image (shape {shape})")
    dtype = np.dtype(array.dtype)
    if dtype.kind == "c":
        raise ValueError(
            f"{path} holds complex values ({dtype}); napari-seg reads real-valued images: "
            "save their magnitude (abs) instead"
        )
    if dtype.kind not in "biuf":
        raise ValueError(f"{path} holds values that are not numbers ({dtype})")


def read_labels(path: str | os.PathLike) -> tuple[Any, VolumeGeometry | None]:
    """:func:`read_with_geometry` of a label image, with its ids as integers.

    Many tools store label images as floats (FSL's NIfTI segmentations, Fiji's
    32-bit label maps, arrays saved from Python without a dtype), masks as
    booleans, ids as the indices of a palette PNG (read as the indices, not
    their colours), or a grey mask in colour mode (an RGB PNG, JPEG or TIFF whose
    channels are equal: read as one channel; a label image of several colours is
    refused, by name), or channel-last with one channel (``(H, W, 1)``, as Keras
    and OpenCV save a mask: read as ``(H, W)``). A float array whose
    values are all whole numbers (and fit in int32), or a boolean one, is read as
    the smallest integer type that holds its ids; other floats keep their dtype,
    so the caller's check names them
    (:func:`napari_seg.arrays.ids.as_ids`, the rule the Python API follows too).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    array : array-like
    geometry : VolumeGeometry or None

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_with_geometry`.
    """
    from .arrays.ids import as_ids

    path = user_path(path)
    if (indices := _palette_indices(path)) is not None:
        return indices, None  # a PNG: no medical geometry
    array, geometry = read_with_geometry(path)
    if _holds_colours(path):
        array = _grey_labels(np.asarray(array), path.name)
    if geometry is None and len(array.shape) >= 3 and array.shape[-1] == 1:
        array = array[..., 0]  # a grey mask stored channel-last, (H, W, 1)
    return as_ids(array), geometry


def _holds_colours(path: Path) -> bool:
    """Whether a file's last axis, when it has 3 or 4 values, is colour samples: a PNG's
    or JPEG's always, a TIFF's when its header says so (RGB samples, ``S``)."""
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        from ._calibration import read_header

        return (read_header(path).axes or "").endswith("S")
    return suffix in IMAGE_SUFFIXES


def _grey_labels(array: np.ndarray, name: str) -> np.ndarray:
    """A colour label image's ids (a PNG's, JPEG's or RGB TIFF's): a grey one as it
    is, an RGB(A) one whose colour channels are equal everywhere (a mask saved in
    colour mode, as paint programs and Fiji's "RGB Color" do) as one of them; other
    colours are refused, by name: which id a colour stands for is the dataset's
    convention, not the file's.

    Raises
    ------
    ValueError
        For a label image of several colours, or an alpha channel that varies.
    """
    if array.ndim < 3 or array.shape[-1] not in (3, 4):
        return array
    grey = array[..., 0]
    alpha_varies = array.shape[-1] == 4 and bool((array[..., 3] != array.flat[3]).any())
    if not alpha_varies and all(np.array_equal(array[..., c], grey) for c in (1, 2)):
        return grey
    colours = len(np.unique(array.reshape(-1, array.shape[-1]), axis=0))
    lossy = name.lower().endswith((".jpg", ".jpeg"))
    raise ValueError(
        f"{name} is a colour image ({colours} colours): a label image holds one class id "
        "per pixel (grey levels, or a palette PNG's indices); save the labels as ids, or "
        "map each colour to its id first"
        + ("" if not alpha_varies else " (its alpha channel varies, too)")
        + ("" if not lossy else "; JPEG's compression changes the ids: save them as PNG")
    )


def _palette_indices(path: str | os.PathLike) -> np.ndarray | None:
    """The colour indices of a palette PNG (how Pascal VOC, CVAT and labelme store
    label masks: each pixel's class id, shown through a palette), or None for any
    other file; read as an image, such a file gives its colours. Decoded once, before
    the image reader would decode its colours; a file that is missing or does not
    decode is left to :func:`read_with_geometry` to name."""
    path = Path(path)
    if path.suffix.lower() != ".png" or not path.is_file():
        return None
    import imageio.v3 as iio

    try:
        if iio.immeta(path).get("mode") != "P":
            return None
        indices = iio.imread(path, mode="P")
    except (OSError, ValueError, SyntaxError, MemoryError):  # PIL's errors of a bad PNG
        return None
    return indices if indices.size else None


def _read_tiff(path: Path):
    """A TIFF as a memory map (uncompressed) or a zarr array read chunk by chunk.

    A compressed TIFF is decompressed strip by strip (or tile by tile) for the
    region asked for, so its chunks must be of a reasonable size: a file that
    stores a large image in one strip is refused before anything is read.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.pages:
            raise ValueError("the TIFF has no image")
        page = tif.pages.first
        shape = tuple(page.shape)
        if 0 in shape:
            raise ValueError(f"the TIFF's image is empty (shape {shape})")
        if page.dtype is None:
            raise ValueError("the TIFF's sample format is not one napari-seg can read")
        if not page.is_contiguous:  # compressed or tiled
            fix = "save it tiled (e.g. tifffile tile=(512, 512)) or uncompressed"
            check_chunks(shape, page.chunks, page.dtype, fix)
        if len(tif.series) > 1:  # positions of a multi-position OME-TIFF, a slide's label
            sizes = ", ".join("x".join(map(str, s.shape)) for s in tif.series[:6])
            more = ", ..." if len(tif.series) > 6 else ""
            logger.warning(
                "%s holds %d images (%s%s): napari-seg reads the first; save each other "
                "one as a file of its own to segment it",
                path.name, len(tif.series), sizes, more,
            )  # fmt: skip
    try:
        return tifffile.memmap(path, mode="r")
    except ValueError:  # compressed or tiled: read by region through zarr
        import zarr

        store = tifffile.imread(path, aszarr=True)
        array = zarr.open(store, mode="r")
        if not hasattr(array, "shape"):  # a pyramid: use the full-resolution level
            array = array["0"]
        return array


def check_chunks(shape, chunks, dtype, fix: str) -> None:
    """Refuse an image stored in chunks too big to decompress for every region read.

    Parameters
    ----------
    shape, chunks : tuple of int
        The image's and one chunk's shape.
    dtype : numpy dtype
    fix : str
        What the user can do about it, for the message.

    Raises
    ------
    ValueError
        When one chunk holds more than ``limits.MAX_CHUNK_BYTES`` once decompressed.
    """
    chunk = int(np.prod(chunks, dtype=np.int64)) * np.dtype(dtype).itemsize
    if chunk > MAX_CHUNK_BYTES:
        raise ValueError(
            f"it stores its {'x'.join(map(str, shape))} image in chunks of "
            f"{'x'.join(map(str, chunks))} pixels ({chunk / 2**30:.1f} GiB each in memory, "
            f"more than the {MAX_CHUNK_BYTES // 2**30} GiB napari-seg reads at once); {fix}"
        )


def _read_zarr(path: Path):
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Group):
        datasets = ome_zarr_datasets(node)
        if not datasets:
            raise ValueError(
                f"{path} is a zarr group, not an array or an OME-Zarr image; give the array's path"
            )
        ome_zarr_transform(node)  # its coordinate transformations are checked here
        node = node[datasets[0]]  # the full-resolution level (an array: checked)
    array: Any = node
    fix = "rechunk it (e.g. chunks of 512x512 pixels or 128^3 voxels)"
    check_chunks(tuple(array.shape), tuple(array.chunks), array.dtype, fix)
    return array


def expand_inputs(paths: list[Path]) -> list[Path]:
    """The inputs, a plain folder replaced by the images in it (sorted), a wildcard
    pattern (``images/*.tif``) by the paths it matches.

    Zarr stores and DICOM series folders stay as they are (each is one image), and
    count as images inside a plain folder (a dataset of a DICOM folder per case, a
    study's series folders); hidden files and other subfolders are left out.

    Parameters
    ----------
    paths : list of Path

    Returns
    -------
    list of Path

    Raises
    ------
    ValueError
        For a folder that holds no image file.
    """
    from . import medical

    readable = (
        *TIFF_SUFFIXES,
        *IMAGE_SUFFIXES,
        ".npy",
        ".nii",
        ".gz",
        *medical.NRRD_SUFFIXES,
        *medical.METAIMAGE_SUFFIXES,
    )
    expanded: list[Path] = []
    for path in (match for given in paths for match in _matches(given)):
        if not path.is_dir() or is_zarr_path(path) or medical.is_dicom_folder(path):
            expanded.append(path)
            continue
        files = sorted(
            p for p in path.iterdir()
            if not p.name.startswith(".") and (p.suffix.lower() in readable or is_zarr_path(p)
                                               or medical.is_dicom_folder(p))
            and (p.suffix.lower() != ".gz" or medical.is_nifti(p))
        )  # fmt: skip
        if not files:
            raise ValueError(f"{path} is a folder without image files ({INPUT_KINDS})"
                             + _subfolders_hint(path))  # fmt: skip
        expanded.extend(files)
    return expanded


def _matches(path: Path) -> list[Path]:
    """``path``, or the paths its wildcards match (sorted) when no file has that name:
    Windows' cmd and PowerShell pass ``images\\*.tif`` on unexpanded, as a POSIX shell
    does a quoted pattern.

    Raises
    ------
    FileNotFoundError
        For a pattern that matches nothing.
    """
    import glob

    path = user_path(path)  # a quoted "~/images/*.tif" reaches here unexpanded
    if path.exists() or not glob.has_magic(str(path)):
        return [path]
    matches = sorted(Path(p) for p in glob.glob(str(path)))
    if not matches:
        raise FileNotFoundError(f"no file matches {path}")
    return matches


def one_file_per_series(paths: list[Path]) -> list[Path]:
    """``paths`` less the DICOM files of a series that an earlier one stands for (a
    DICOM file is read as its whole series: ``napari-seg predict ct/*.dcm`` is that
    series once, not once per slice).

    Parameters
    ----------
    paths : list of Path

    Returns
    -------
    list of Path
    """
    from . import medical

    seen: set[tuple[str, str]] = set()
    kept = []
    for path in paths:
        if medical.is_dicom_file(path):
            try:
                key = (str(path.resolve().parent), medical.dicom_file_series(path)[0])
            except ValueError:  # unreadable: left for the reader to name
                key = (str(path), "")
            if key in seen:
                continue
            seen.add(key)
        kept.append(path)
    return kept


def _subfolders_hint(path: Path) -> str:
    """For a folder of folders (a dataset's root): name them, as inputs to give."""
    folders = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        return ""
    shown = ", ".join(folders[:5]) + (f" and {len(folders) - 5} more" if len(folders) > 5 else "")
    return f"; it holds folders ({shown}): give those as inputs (each may be a folder)"


#: Extensions of two parts, dropped whole from a name (``a.ome.tif`` is ``a``).
COMPOUND_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr", ".nii.gz")
#: Extensions dropped from a name; any other dot belongs to the name
#: (``2024.01.05_a.tif`` is ``2024.01.05_a``, a DICOM folder ``1.2.840.1`` keeps its name).
NAME_SUFFIXES = (
    *TIFF_SUFFIXES,
    *IMAGE_SUFFIXES,
    ".npy",
    ".zarr",
    ".nii",
    ".dcm",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
)


def file_suffix(path: str | os.PathLike) -> str:
    """The extension of an image, volume or array file that ``path``'s name ends in
    (``.tif``, ``.nii.gz``...), as written; "" for none and for folder stores (``.zarr``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    suffix = _known_suffix(Path(path).name)
    return "" if suffix.lower().endswith(".zarr") else suffix


def _known_suffix(name: str) -> str:
    """The extension of :data:`COMPOUND_SUFFIXES` or :data:`NAME_SUFFIXES` that ``name``
    ends in (as written there), "" for none or a name that is nothing else."""
    lower = name.lower()
    for suffix in (*COMPOUND_SUFFIXES, *NAME_SUFFIXES):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[-len(suffix) :]
    return ""


def output_stem(path: str | os.PathLike) -> str:
    """The input's name without its file extension (``a.ome.tif`` and ``a.tif`` give
    ``a``; ``2024.01.05_a.tif`` gives ``2024.01.05_a``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    name = Path(path).name
    return name[: len(name) - len(_known_suffix(name))]
