"""MetaImage volumes (``.mha``, ``.mhd`` with its data file): ITK's format, in which
grand-challenge.org, ITK-SNAP and elastix exchange images, read with SimpleITK as
``(z, y, x)`` LPS arrays with their geometry; labels computed from one are written
as MetaImage (one ``.mha`` file) with the same grid (:func:`write_metaimage`).

ITK states a volume in LPS: its ``Offset`` (the first voxel's position), its
``ElementSpacing`` and its ``TransformMatrix`` (the axes' directions) give the RAS
affine a NIfTI of the same voxels would have. Lengths are millimetres (MetaImage
states no unit). A volume of several components per voxel (a vector image) has them
as channels, as a 4D NIfTI's volumes are. Only ITK's MetaImage reader is used: a file
named ``.mha`` is never read as some other format.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from .._atomic import atomic_path
from .._extras import import_for_reading
from .._paths import user_path
from ..limits import one_line
from ._geometry import (
    FLIP_RAS_LPS,
    MILLIMETERS,
    VolumeGeometry,
    check_claimed_bytes,
    check_data_file,
    fit_array,
)

METAIMAGE_SUFFIXES = (".mha", ".mhd")
#: The start of a file searched for the header's required fields.
HEADER_BYTES = 4096


def is_metaimage(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a MetaImage file (``.mha``, or a ``.mhd`` header).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return str(path).lower().endswith(METAIMAGE_SUFFIXES)


def read_metaimage(path: str | os.PathLike) -> tuple[np.ndarray, VolumeGeometry]:
    """A MetaImage volume as a ``(z, y, x)`` (or ``(c, z, y, x)``) LPS array and its
    geometry.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    array : ndarray
    geometry : VolumeGeometry
        Its ``affine`` maps the file's voxels to RAS, as a NIfTI's does.

    Raises
    ------
    ValueError
        For a file that is not a readable 3D MetaImage volume (the message says why).
    """
    path = user_path(path)
    sitk = _simpleitk("reading MetaImage")
    head = _check_header(path)
    reader = sitk.ImageFileReader()
    reader.SetImageIO("MetaImageIO")
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        claimed = _check(path, reader, sitk)
        _check_data_size(path, head, claimed)
        image = reader.Execute()
    except RuntimeError as exc:  # ITK's exceptions: the reason, without ITK's source path
        reason = re.search(r"ITK ERROR: [^:]*: (.*)", str(exc))
        said = one_line(reason.group(1) if reason else exc, 300)
        raise ValueError(f"cannot read {path} as MetaImage: {said}") from None
    array = sitk.GetArrayFromImage(image)  # (k, j, i[, c]): ITK's index reversed
    data = array.transpose(2, 1, 0, *range(3, array.ndim))  # (i, j, k[, c])
    lps = np.eye(4)
    lps[:3, :3] = np.reshape(image.GetDirection(), (3, 3)) @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    affine = FLIP_RAS_LPS @ lps
    geometry = VolumeGeometry.from_affine(affine, data.shape[:3], source="metaimage")
    return geometry.to_array(data), geometry


def _simpleitk(doing: str):
    return import_for_reading("SimpleITK", doing, "SimpleITK", "metaimage")


def write_metaimage(
    path: str | os.PathLike,
    array: np.ndarray,
    geometry: VolumeGeometry,
    *,
    overwrite: bool = False,
    label: bool = True,
) -> None:
    """Write a ``([c,] z, y, x)`` array as one compressed MetaImage file (``.mha``)
    with the voxel order, spacing, directions and origin of the volume it was computed
    from (in millimetres: MetaImage states no unit); channels (class probabilities)
    are its components. Values as :func:`~napari_seg.medical._geometry.fit_array`
    gives them. Written atomically; an existing file is replaced only with
    ``overwrite=True``.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.mha``.
    array : ndarray
    geometry : VolumeGeometry
    overwrite : bool
    label : bool
        Whether integers are a label map's ids or an image's values
        (:func:`~napari_seg.medical.write_volume`).

    Raises
    ------
    ValueError
        For another suffix (a ``.mhd`` header with its data file too) or an array that
        does not fit the geometry.
    """
    path = user_path(path)
    sitk = _simpleitk("writing MetaImage")
    if not str(path).lower().endswith(".mha"):
        raise ValueError(f"{path}: napari-seg writes MetaImage as one .mha file")
    data = fit_array(array, geometry, ids=label)  # (i, j, k[, c])
    lps = geometry.lps_affine[:3] * MILLIMETERS[geometry.unit]
    spacing = np.sqrt((lps[:, :3] ** 2).sum(axis=0))
    image = sitk.GetImageFromArray(
        data.transpose(2, 1, 0, *range(3, data.ndim)), isVector=data.ndim == 4
    )
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:, :3] / spacing).ravel().tolist())
    image.SetOrigin(lps[:, 3].tolist())
    with atomic_path(path, overwrite=overwrite) as target:
        writer = sitk.ImageFileWriter()
        writer.SetImageIO("MetaImageIO")
        writer.SetFileName(str(target))
        writer.SetUseCompression(True)
        writer.Execute(image)


def _check_header(path) -> bytes:
    """Refuse a file whose first lines are no MetaImage header (ITK's parser would
    print its complaints on the console); its first bytes otherwise."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_BYTES)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {one_line(exc, 300)}") from None
    if b"NDims" not in head or b"ElementDataFile" not in head:
        raise ValueError(
            f"cannot read {path} as MetaImage: its header does not state NDims and ElementDataFile"
        )
    name = _data_file(head)
    if name is not None and name != "LOCAL":
        check_data_file(path, name)
    return head


def _data_file(head: bytes) -> str | None:
    """The header's one data file (``"LOCAL"``: after the header); None for a list
    or a pattern of slice files, which are left to ITK."""
    found = re.search(rb"^\s*ElementDataFile\s*=\s*(.+?)\s*$", head, re.MULTILINE)
    name = found.group(1).decode("utf-8", "replace") if found else "LOCAL"
    if name.upper() == "LOCAL":
        return "LOCAL"
    return None if name.upper().startswith("LIST") or " " in name else name


def _check_data_size(path, head: bytes, claimed: int) -> None:
    """Refuse voxel data shorter than the header says (a file cut short by an
    interrupted copy or download), before ITK reads it: ITK prints its complaint on the
    console and says only that the file "cannot be read"."""
    name = _data_file(head)
    fields = dict(re.findall(rb"^\s*(\w+)\s*=\s*(.*?)\s*$", head, re.MULTILINE))
    text = fields.get(b"BinaryData", b"True").strip().lower() == b"false"
    if name is None or b"HeaderSize" in fields or text:  # ITK's to judge
        return
    compressed = fields.get(b"CompressedData", b"False").strip().lower() == b"true"
    stated = fields.get(b"CompressedDataSize", b"").strip()
    if compressed and not stated.isdigit():
        return  # ITK finds the end of the stream itself
    needed = int(stated) if compressed else claimed
    if name == "LOCAL":
        end = re.search(rb"^\s*ElementDataFile\s*=.*?\n", head, re.MULTILINE)
        if end is None:
            return
        have = os.path.getsize(path) - end.end()
    else:
        have = os.path.getsize(os.path.join(os.path.dirname(path), name))
    if have < needed:
        raise ValueError(
            f"cannot read {path} as MetaImage: its voxel data is cut short ({have} of "
            f"{needed} bytes): the file was not copied or downloaded whole"
        )


def _check(path, reader, sitk) -> int:
    """Refuse what is no 3D volume, or more than napari-seg reads at once, before
    reading the voxels; the bytes of its voxels otherwise."""
    size = tuple(int(n) for n in reader.GetSize())
    if reader.GetDimension() != 3:
        raise ValueError(
            f"{os.path.basename(path)} is a {reader.GetDimension()}D MetaImage of size "
            f"{size}; napari-seg reads 3D volumes"
        )
    kind = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    bits = re.findall(r"(\d+)-bit", kind)
    item = int(bits[0]) // 8 if bits else 8
    claimed = math.prod(size) * reader.GetNumberOfComponents() * item
    check_claimed_bytes(path, size, claimed)
    return claimed
