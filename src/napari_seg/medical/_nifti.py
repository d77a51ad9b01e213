"""NIfTI files (nibabel): read as ``(z, y, x)`` LPS arrays, labels written back with
the source's affine, voxel order and unit."""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import replace
from typing import Any

import numpy as np

from .._atomic import atomic_write
from .._extras import import_for_reading
from .._paths import user_path
from ..limits import one_line
from ._geometry import GZIP_LEVEL, NIFTI_UNITS, VolumeGeometry, check_claimed_bytes, fit_array
from ._rescale import rescaled
from ._time import nifti_time_step

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: The longest axis NIfTI-1 can state (its sizes are int16); NIfTI-2 takes int64.
NIFTI1_MAX_SIZE = 32767


def is_nifti(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _nibabel():
    return import_for_reading("nibabel", "reading NIfTI", "nibabel", "medical")


def _load(path: str | os.PathLike):
    """``nibabel.load`` of a NIfTI file, also of one whose name says the opposite of
    its compression (an uncompressed file named ``.nii.gz``, as some datasets ship
    and browsers leave downloads; a gzipped one named ``.nii``), which nibabel
    refuses by its name and ITK reads by its content."""
    nib = _nibabel()
    try:
        return nib.load(str(path))
    except Exception:
        image = _load_by_content(nib, path)
        if image is None:
            raise
        return image


def _load_by_content(nib, path: str | os.PathLike):
    """The NIfTI image of ``path`` read as its first bytes say (gzip or not), or None
    when they agree with its name (nibabel's own error stands) or hold no NIfTI
    header size (348: NIfTI-1, 540: NIfTI-2, in either byte order)."""
    import gzip

    with open(path, "rb") as first:
        gzipped = first.read(2) == b"\x1f\x8b"
    if gzipped == str(path).lower().endswith(".gz"):
        return None
    handle: Any = gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115
    try:
        head = handle.read(4)
        handle.seek(0)
    except (OSError, EOFError):
        handle.close()
        return None
    sizes = {int.from_bytes(head, "little"), int.from_bytes(head, "big")}
    klass = nib.Nifti2Image if 540 in sizes else nib.Nifti1Image if 348 in sizes else None
    if klass is None:
        handle.close()
        return None
    image = klass.from_file_map({"image": nib.FileHolder(str(path), handle)})
    weakref.finalize(image, handle.close)  # it reads its voxels through the handle
    return image


def nifti_unit(image: Any) -> str:
    """The length unit of a nibabel NIfTI ``image``'s affine by its NGFF name: its
    header's ``xyzt_units``; millimetres when that says "unknown" or holds a code
    NIfTI does not define (as ITK and most medical tools read such a file).

    Parameters
    ----------
    image : nibabel.Nifti1Image or Nifti2Image

    Returns
    -------
    str
    """
    try:
        space = image.header.get_xyzt_units()[0]
    except (KeyError, ValueError):  # a code nibabel does not know
        return "millimeter"
    by_nifti = {v: k for k, v in NIFTI_UNITS.items()}
    return by_nifti.get(space, "millimeter")


def _known_codes(codes: tuple[int, int]) -> tuple[int, int]:
    """NIfTI form codes as stored, with one NIfTI does not define (over 4) read as 1
    (scanner), as nibabel reads the affine of such a file."""
    q, s = (c if 0 <= c <= 4 else 1 for c in codes)
    return q, s


def nifti_is_label_map(path: str | os.PathLike) -> bool:
    """Whether the NIfTI file's header says it holds labels (``NIFTI_INTENT_LABEL``,
    as napari-seg writes them); False for a header that cannot be read.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    path = user_path(path)
    _nibabel()
    try:
        return _load(path).header.get_intent()[0] == "label"
    except Exception:  # the pixels are read, and refused, elsewhere
        return False


def read_nifti(path: str | os.PathLike) -> tuple[np.ndarray, VolumeGeometry]:
    """A NIfTI volume as a ``(z, y, x)`` (or ``(c, z, y, x)``) LPS array and its geometry.

    Uncompressed files are memory-mapped; ``.nii.gz`` files are read whole. A 4D
    file's volumes come first, as do an RGB(A) file's colours and a 5D file's
    components when it has one time point (ITK's vector or multi-component volume):
    whether they are channels or time points is
    :func:`~napari_seg.medical.volume_channel_axis`'s rule, not the reader's.
    Scaled data (``scl_slope``, ``scl_inter``) is returned as a rescaled DICOM series
    is (:func:`~napari_seg.medical._rescale.rescaled`: whole numbers stay whole
    numbers, others float32; float64 for a float64 file).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    array : ndarray
    geometry : VolumeGeometry

    Raises
    ------
    ValueError
        For a file that is not a readable 3D/4D NIfTI (the message says why).
    """
    path = user_path(path)
    nib = _nibabel()
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    try:
        image = _load(path)
        header_shape = tuple(int(n) for n in image.shape)
        affine = image.affine
    except (OSError, ValueError, EOFError, ImageFileError, HeaderDataError) as exc:
        raise ValueError(f"cannot read {path} as NIfTI: {one_line(exc, 300)}") from None
    colours = image.get_data_dtype().names  # RGB24 / RGBA32: one field per colour
    shape = _volume_shape(path, header_shape, bool(colours))
    if affine is None:
        raise ValueError(f"{path} has no affine (a broken header)")
    # Scaled voxels (scl_slope, scl_inter) as a rescaled DICOM series's: nibabel's own
    # choice is float64, four times an int16 CT's memory for nothing an image holds.
    slope = float(getattr(image.dataobj, "slope", 1.0))
    inter = float(getattr(image.dataobj, "inter", 0.0))
    scaled = (slope, inter) != (1.0, 0.0) and not colours
    itemsize = image.get_data_dtype().itemsize
    check_claimed_bytes(path, shape, math.prod(shape) * (max(itemsize, 4) if scaled else itemsize))
    codes = (int(image.header["qform_code"]), int(image.header["sform_code"]))
    geometry = VolumeGeometry.from_affine(
        affine,
        shape[:3],
        unit=nifti_unit(image),
        form_codes=_known_codes(codes),
        source="nifti2" if isinstance(image, nib.Nifti2Image) else "nifti",
    )
    try:
        if scaled and image.get_data_dtype() != np.float64:
            raw = np.asanyarray(image.dataobj.get_unscaled()).reshape(shape)
            data = rescaled(raw, slope, inter)
        else:
            data = np.asanyarray(image.dataobj).reshape(shape)
    except (OSError, ValueError, EOFError, MemoryError) as exc:
        raise ValueError(f"cannot read the voxels of {path}: {one_line(exc, 300)}") from None
    if colours:  # the colours as channels, as a 4D NIfTI's volumes
        data = np.stack([data[name] for name in colours], axis=-1)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    elif data.ndim == 4 and not colours:  # time points, if the header times them
        geometry = replace(geometry, time_step=nifti_time_step(image))
    return geometry.to_array(data), geometry


def _volume_shape(path, header_shape: tuple[int, ...], colours: bool) -> tuple[int, ...]:
    """The ``(x, y, z[, channels])`` shape a file's voxels are read as, or the reason
    napari-seg does not read them."""
    shape = header_shape + (1,) * (3 - len(header_shape))
    if len(shape) > 4 and sum(n > 1 for n in shape[3:]) <= 1:
        # ITK and SimpleITK write a vector or multi-component volume as 5D, its
        # components on the 5th axis and 1 time point: the components are channels
        shape = shape[:3] + tuple(n for n in shape[3:] if n > 1)
    if colours and len(shape) > 3:
        raise ValueError(f"{path} is an RGB NIfTI of {len(shape)} axes {shape}; napari-seg reads 3")
    if len(shape) > 4:
        raise ValueError(
            f"{path} is a {len(shape)}D NIfTI {shape} (more than one of its axes after the "
            "3rd longer than 1); napari-seg reads 3D and 4D: split it into volumes"
        )
    return shape


def write_nifti(
    path: str | os.PathLike,
    array: np.ndarray,
    geometry: VolumeGeometry,
    *,
    overwrite: bool = False,
    label: bool = True,
) -> None:
    """Write a ``([c,] z, y, x)`` array as NIfTI with the source's voxel order and affine.

    Values are stored as :func:`~napari_seg.medical._geometry.fit_array` gives them
    (ids in the smallest type that holds them, others float32). NIfTI-1, unless the
    source was NIfTI-2 or an axis is longer than NIfTI-1 can state
    (``NIFTI1_MAX_SIZE``): then NIfTI-2. Written atomically; an existing file is
    replaced only with ``overwrite=True``.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii`` or ``.nii.gz``.
    array : ndarray
    geometry : VolumeGeometry
        Of the volume the array was computed from.
    overwrite : bool
    label : bool
        Whether integers are a label map's ids or an image's values
        (:func:`~napari_seg.medical.write_volume`).

    Raises
    ------
    ValueError
        If the suffix is not a NIfTI one or the array does not fit the geometry.
    """
    path = user_path(path)
    nib = _nibabel()
    if not is_nifti(path):
        raise ValueError(f"{path}: a NIfTI file name ends in .nii or .nii.gz")
    data = fit_array(array, geometry, ids=label)
    # NIfTI-1 stores sizes as int16: a longer axis needs NIfTI-2 (fewer tools read it).
    two = geometry.source == "nifti2" or max(data.shape) > NIFTI1_MAX_SIZE
    kind = nib.Nifti2Image if two else nib.Nifti1Image
    # ``data`` is the array's transpose, so NIfTI's Fortran order: no copy to C order,
    # which nibabel would transpose back (two copies of the volume, 1.3 s at 512x512x200)
    image = kind(data, geometry.affine)
    image.header.set_xyzt_units(NIFTI_UNITS[geometry.unit])
    if data.ndim == 4 and geometry.time_step is not None:  # the source's frame interval
        image.header.set_xyzt_units(NIFTI_UNITS[geometry.unit], "sec")
        image.header.set_zooms((*image.header.get_zooms()[:3], geometry.time_step))
    if label and np.issubdtype(data.dtype, np.integer):  # NIFTI_INTENT_LABEL: a label map
        image.header.set_intent("label")
    qform, sform = geometry.form_codes
    image.set_qform(geometry.affine, code=qform)
    image.set_sform(geometry.affine, code=sform)
    gz = str(path).lower().endswith(".gz")
    with atomic_write(path, overwrite=overwrite) as handle:
        payload = image.to_bytes()
        if gz:
            import gzip

            payload = gzip.compress(payload, compresslevel=GZIP_LEVEL)
        handle.write(payload)
