"""Medical volumes: NIfTI files (nibabel), NRRD files (pynrrd, 3D Slicer's format),
MetaImage files (SimpleITK, ITK's format) and DICOM series folders (pydicom).

Axis order (the one rule for every reader and writer of napari-seg): a volume
is returned as an array indexed ``(z, y, x)`` in the patient's LPS frame, the
frame of DICOM and ITK. Axis 0 runs from inferior to superior (axial slices
along the first axis), axis 1 from anterior to posterior and axis 2 from the
patient's right to left, so napari shows an axial slice as radiologists read it
(anterior up, the patient's right on the left of the screen). Getting there
only flips and permutes the stored axes (nibabel's orientation tools), never
resamples.

The file's own voxel order and affine are kept in a :class:`VolumeGeometry`,
so that labels written back (:func:`write_nifti`) have exactly the source's
shape and affine. A volume's ``spacing`` and ``origin`` (in ``(z, y, x)``
order, LPS) place it in napari as ``scale`` and ``translate``. They are in the
file's length unit, :attr:`VolumeGeometry.unit`: millimetres for DICOM, the
header's ``xyzt_units`` for NIfTI (millimetres, micrometres or metres; a header
that says "unknown" is read as millimetres, as ITK and most medical tools read
it), and labels are written back with that unit.

Stated choices:

- an oblique volume (its axes not aligned with the patient's) is shown on its
  voxel grid, unrotated; :attr:`VolumeGeometry.oblique` says so and the full
  affine is kept and written back;
- a 4D NIfTI holds channels (modalities) along its 4th axis, as in the Medical
  Segmentation Decathlon: the array is ``(c, z, y, x)`` (predicting with ``axis=0``
  takes them as time points instead); so does a 5D file
  with one time point (its components), other 5D and larger files are refused;
  so are the volumes of a DICOM series that repeats its slice positions
  (multi-echo, dynamic), told apart by EchoNumbers, EchoTime,
  TemporalPositionIdentifier and the like (``_dicom.VOLUME_TAGS``);
- an enhanced multi-frame DICOM file is a series whose frames are its slices;
- a tilted CT series (its slice positions drift across the slice plane) is a
  stack along the slice normal, as ITK reads it, with a logged warning of the drift;
- a DICOM folder must hold one series; with several, the error lists them
  (give one of a series' files, which reads its series, or pass ``series=``);
  :func:`read_dicom_series` reads each, as
  napari's File > Open Folder does (a layer per series), also from subfolders
  (a study folder, or a CD export with a DICOMDIR: :func:`holds_dicom`).

Needs the ``medical`` extra (``pip install napari-seg[medical]``); MetaImage files need
the ``metaimage`` extra (SimpleITK).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._paths import user_path
from ._dicom import DicomSlice, dicom_file_series, dicom_slices, read_dicom, read_dicom_series
from ._dicom_files import holds_dicom, is_dicom_file, is_dicom_folder
from ._dicom_seg import (
    SEG_SOP_CLASSES,
    check_seg_numbers,
    dicom_seg_segments,
    is_dicom_seg,
    read_dicom_seg,
    read_seg_on_series,
    seg_series_uids,
    write_dicom_seg,
)
from ._display import display_range
from ._geometry import (
    LPS,
    NIFTI_UNITS,
    VolumeGeometry,
    nifti_placement_unit,
    recorded_unit,
)
from ._grids import check_same_grid, crop_to_grid, pair_on_grid, place_on_grid
from ._layout import MAX_VOLUME_CHANNELS, layout_defaults, volume_axes, volume_channel_axis
from ._metaimage import METAIMAGE_SUFFIXES, is_metaimage, read_metaimage, write_metaimage
from ._nifti import (
    NIFTI1_MAX_SIZE,
    NIFTI_SUFFIXES,
    is_nifti,
    nifti_is_label_map,
    nifti_unit,
    read_nifti,
    write_nifti,
)
from ._nrrd import (
    NRRD_SUFFIXES,
    SLICER_LABEL_TAILS,
    class_segments,
    is_nrrd,
    nrrd_segments,
    read_nrrd,
    segment_class_names,
    write_nrrd,
)
from ._rtstruct import (
    RTSTRUCT_SOP_CLASS,
    is_rtstruct,
    read_rtstruct,
    rtstruct_roi_types,
    rtstruct_segments,
)
from ._rtstruct_write import write_rtstruct

__all__ = [
    "LPS",
    "MAX_VOLUME_CHANNELS",
    "METAIMAGE_SUFFIXES",
    "NIFTI1_MAX_SIZE",
    "NIFTI_SUFFIXES",
    "NIFTI_UNITS",
    "NRRD_SUFFIXES",
    "OUTPUT_TAILS",
    "RTSTRUCT_SOP_CLASS",
    "SEG_SOP_CLASSES",
    "SLICER_LABEL_TAILS",
    "VOLUME_OUTPUT_SUFFIXES",
    "VOLUME_WRITTEN",
    "DicomSlice",
    "VolumeGeometry",
    "check_same_grid",
    "check_seg_numbers",
    "class_segments",
    "crop_to_grid",
    "dicom_file_series",
    "dicom_seg_segments",
    "dicom_slices",
    "display_range",
    "holds_dicom",
    "is_dicom",
    "is_dicom_file",
    "is_dicom_folder",
    "is_dicom_seg",
    "is_metaimage",
    "is_nifti",
    "is_nrrd",
    "is_rtstruct",
    "is_segmentation",
    "is_volume",
    "is_volume_file",
    "is_volume_output",
    "label_path",
    "label_segments",
    "layout_defaults",
    "nifti_is_label_map",
    "nifti_placement_unit",
    "nifti_unit",
    "nrrd_segments",
    "output_suffix",
    "pair_on_grid",
    "place_on_grid",
    "read_channel_files",
    "read_dicom",
    "read_dicom_seg",
    "read_dicom_series",
    "read_metaimage",
    "read_nifti",
    "read_nrrd",
    "read_rtstruct",
    "read_seg_on_series",
    "read_segmentation",
    "read_volume",
    "recorded_unit",
    "rtstruct_roi_types",
    "rtstruct_segments",
    "seg_series_uids",
    "segment_class_names",
    "volume_axes",
    "volume_channel_axis",
    "write_dicom_seg",
    "write_metaimage",
    "write_nifti",
    "write_nrrd",
    "write_rtstruct",
    "write_volume",
]

#: The name tails of ``predict``'s outputs: ``NAME_labels.tif``, ``NAME_probabilities.tif``,
#: ``NAME_objects.tif`` (a medical input's own format: :func:`output_suffix`;
#: ``.ome.zarr`` block by block).
OUTPUT_TAILS = {"labels": "_labels", "probabilities": "_probabilities", "objects": "_objects"}


#: The medical files :func:`write_volume` writes, by name.
VOLUME_WRITTEN = (".nii", ".nii.gz", ".nrrd", ".mha")
#: The suffix of the files written for each medical format, by what reads it.
VOLUME_OUTPUT_SUFFIXES = {".nii.gz": is_nifti, ".nrrd": is_nrrd, ".mha": is_metaimage}


def is_volume_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a medical file :func:`write_volume` writes (``.nii``,
    ``.nii.gz``, ``.nrrd``, ``.mha``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return str(path).lower().endswith(VOLUME_WRITTEN)


def output_suffix(source: str | os.PathLike) -> str:
    """The suffix of what is computed from ``source``: its own medical format
    (``.nii.gz``, ``.nrrd``, ``.mha``, one file each, with its grid: nnU-Net's rule,
    and what grand-challenge.org and 3D Slicer read back), NIfTI for a DICOM series,
    ``.tif`` for other inputs.

    Parameters
    ----------
    source : str or os.PathLike

    Returns
    -------
    str
    """
    for suffix, reads in VOLUME_OUTPUT_SUFFIXES.items():
        if reads(source):
            return suffix
    return ".nii.gz" if is_volume(source) else ".tif"


def write_volume(
    path: str | os.PathLike,
    array: np.ndarray,
    geometry: VolumeGeometry,
    *,
    overwrite: bool = False,
    segments: dict[int, tuple[str, tuple[float, ...]]] | None = None,
    label: bool = True,
) -> None:
    """Write a ``([c,] z, y, x)`` array with ``geometry`` in the medical format its
    name says: :func:`write_nifti`, :func:`write_nrrd` or :func:`write_metaimage`.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.nii``, ``.nii.gz``, ``.nrrd`` or ``.mha``.
    array : ndarray
    geometry : VolumeGeometry
    overwrite : bool
    segments : dict, optional
        A label map's classes (:func:`class_segments`), kept where the format has a
        place for them: NRRD states them as 3D Slicer's segments; NIfTI and MetaImage
        have none (nnU-Net keeps them in a dataset.json).
    label : bool
        Whether integers are a label map's ids (stored in the smallest type holding
        them; a NIfTI's intent "label") or an image's values (kept as they are).

    Raises
    ------
    ValueError
        For another name (the formats written named), or an array that does not fit.
    """
    path = user_path(path)
    if is_nifti(path):
        write_nifti(path, array, geometry, overwrite=overwrite, label=label)
    elif is_nrrd(path):
        write_nrrd(path, array, geometry, overwrite=overwrite, segments=segments, label=label)
    elif is_metaimage(path):
        write_metaimage(path, array, geometry, overwrite=overwrite, label=label)
    else:
        raise ValueError(f"{path}: volumes are written as {', '.join(VOLUME_WRITTEN)}")


def label_path(folder: Path, stem: str, source: str | os.PathLike, what: str = "labels") -> Path:
    """The output file of an input: ``brain.nii.gz`` gives ``brain_labels.nii.gz``,
    ``case.nrrd`` ``case_labels.nrrd`` and ``case.mha`` (or ``.mhd``)
    ``case_labels.mha`` (:func:`output_suffix`), each with the source's grid; a DICOM
    series (its folder or one of its files) gives NIfTI, other inputs TIFF.

    Parameters
    ----------
    folder : pathlib.Path
    stem : str
    source : str or os.PathLike
        The input the output is computed from.
    what : str
        "labels", "probabilities" or "objects" (appended as ``_labels``...), or "" for
        the stem alone.

    Returns
    -------
    pathlib.Path
    """
    tail = OUTPUT_TAILS[what] if what else ""
    return folder / f"{stem}{tail}{output_suffix(source)}"


def label_segments(path: str | os.PathLike) -> dict[int, tuple[str, tuple[float, ...]]]:
    """The segments a label file names by label value, with their colours: a 3D Slicer
    segmentation's (:func:`nrrd_segments`), a DICOM SEG's (:func:`dicom_seg_segments`) or
    an RT structure set's ROIs (:func:`rtstruct_segments`);
    empty for other files.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``{label value: (name, (r, g, b, a) or ())}``.
    """
    return nrrd_segments(path) or dicom_seg_segments(path) or rtstruct_segments(path)


def read_channel_files(paths: list[Path]) -> tuple[np.ndarray, VolumeGeometry]:
    """3D NIfTI files of one grid (a case's channels, each in its own file, as nnU-Net
    stores them) as one ``(c, z, y, x)`` array, as a 4D NIfTI is read, with the first
    file's geometry.

    Parameters
    ----------
    paths : list of Path

    Returns
    -------
    array : ndarray
    geometry : VolumeGeometry

    Raises
    ------
    ValueError
        If a file is not a 3D volume, or its grid (shape, voxel size, position or
        orientation) differs from the first's: both named.
    """
    arrays: list[np.ndarray] = []
    geometries: list[VolumeGeometry] = []
    for path in paths:
        array, geometry = read_nifti(path)
        if array.ndim != 3:
            raise ValueError(f"{path.name} is one channel of a case, so a 3D volume, not "
                             f"{array.ndim}D {tuple(array.shape)}")  # fmt: skip
        if arrays and (
            array.shape != arrays[0].shape
            or not np.allclose(geometry.affine, geometries[0].affine, atol=1e-3)
        ):
            raise ValueError(
                f"{path.name} and {paths[0].name} are channels of one case but lie on "
                f"different grids (shapes {tuple(array.shape)} and {tuple(arrays[0].shape)}, "
                "or their affines differ): resample them to one grid"
            )
        arrays.append(array)
        geometries.append(geometry)
    return np.stack(arrays), geometries[0]


def is_segmentation(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM segmentation file: a SEG or an RT structure set.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    from ._dicom_files import header_of_class

    path = user_path(path)
    return header_of_class(path, (*SEG_SOP_CLASSES, RTSTRUCT_SOP_CLASS)) is not None  # one read


def read_segmentation(
    path: str | os.PathLike, known: Mapping[str, VolumeGeometry] | None = None
) -> tuple[np.ndarray, VolumeGeometry, dict[int, tuple[str, tuple[float, ...]]]]:
    """A DICOM segmentation file as a ``(z, y, x)`` label map on the grid of the series
    it was made on, with its segments: a SEG (:func:`read_seg_on_series`) or an RT
    structure set (:func:`read_rtstruct`).

    Parameters
    ----------
    path : str or os.PathLike
    known : mapping, optional
        ``{SeriesInstanceUID: geometry}`` of series read with it (a study).

    Returns
    -------
    labels : ndarray
    geometry : VolumeGeometry
    segments : dict

    Raises
    ------
    ValueError
        As the reader of its kind.
    """
    if is_rtstruct(path):
        return read_rtstruct(path, known)
    return read_seg_on_series(path, known)


def read_volume(
    path: str | os.PathLike, *, series: str | None = None
) -> tuple[np.ndarray, VolumeGeometry]:
    """A NIfTI, NRRD or MetaImage file, a DICOM series (its folder, or one of its
    files) or a DICOM SEG file, as :func:`read_nifti` / :func:`read_nrrd` /
    :func:`read_metaimage` / :func:`read_dicom` / :func:`read_segmentation` (a SEG or
    an RT structure set, on the grid of its series when that is found beside it) read
    them.

    Parameters
    ----------
    path : str or os.PathLike
    series : str, optional
        The SeriesInstanceUID to read from a folder with several.

    Returns
    -------
    array : ndarray
    geometry : VolumeGeometry

    Raises
    ------
    ValueError
        If ``path`` is neither, or cannot be read.
    """
    path = user_path(path)
    if is_nifti(path):
        return read_nifti(path)
    if is_nrrd(path):
        return read_nrrd(path)
    if is_metaimage(path):
        return read_metaimage(path)
    if is_segmentation(path):  # a SEG or RTSTRUCT, on its series' grid
        labels, geometry, _segments = read_segmentation(path)
        return labels, geometry
    if is_dicom(path):
        return read_dicom(path, series=series)
    raise ValueError(f"{path} is not a NIfTI, NRRD or MetaImage file, nor a folder of DICOM files")


def is_volume(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as a medical volume (:func:`read_volume`): a NIfTI,
    NRRD or MetaImage file, or a DICOM series (:func:`is_dicom`).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return is_volume_file(path) or is_dicom_folder(path)


def is_volume_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file read as a medical volume: a NIfTI, NRRD or MetaImage
    file, or a DICOM file (its series).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return is_nifti(path) or is_nrrd(path) or is_metaimage(path) or is_dicom_file(path)


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as a DICOM series: a folder of DICOM files, or one
    DICOM file (the series it belongs to, :func:`read_dicom`).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return is_dicom_folder(path) or is_dicom_file(path)
