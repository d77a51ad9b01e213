"""Medical volumes: NIfTI files (nibabel) and DICOM series folders (pydicom).

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
  Segmentation Decathlon: the array is ``(c, z, y, x)``; 5D and larger files
  are refused;
- a DICOM folder must hold one series; with several, the error lists them
  (pass ``series=`` to choose one).

Needs the ``medical`` extra (``pip install napari-seg[medical]``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write
from ._extras import extra_message
from .limits import GIB, MAX_DICOM_FILES, MAX_NIFTI_CHANNELS, MAX_VOLUME_BYTES, one_line

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Orientation codes of the array axes (x, y, z) before they are reversed to (z, y, x).
LPS = ("L", "P", "S")
#: The longest axis NIfTI-1 can state (its sizes are int16); NIfTI-2 takes int64.
NIFTI1_MAX_SIZE = 32767

#: NIfTI's spatial units (nibabel's names for ``xyzt_units``) by NGFF length unit.
NIFTI_UNITS = {"millimeter": "mm", "micrometer": "micron", "meter": "meter"}


@dataclass(frozen=True)
class VolumeGeometry:
    """Where a volume's voxels are, and how to write labels back as its source file.

    Attributes
    ----------
    affine : ndarray, shape (4, 4)
        The source file's voxel-to-world (RAS+) affine, as stored, in ``unit``.
    source_shape : tuple of int
        The spatial shape of the source file, in its own axis order.
    transform : ndarray, shape (3, 2)
        nibabel orientation transform from the file's axes to LPS axes.
    spacing : tuple of float
        Voxel size along ``(z, y, x)`` of the returned array, in ``unit``.
    origin : tuple of float
        LPS position of voxel ``(0, 0, 0)`` along ``(z, y, x)``, in ``unit``.
    oblique : bool
        Whether the axes are rotated from the patient's (shown unrotated).
    source : str
        What was read: ``"nifti"`` (NIfTI-1), ``"nifti2"`` or ``"dicom"``; labels
        are written back in the source's NIfTI version.
    unit : str
        The world's length unit by its NGFF name: ``"millimeter"``,
        ``"micrometer"`` or ``"meter"``, the ones a NIfTI header can state.
    form_codes : tuple of int
        The NIfTI ``qform_code`` and ``sform_code`` of the source (what world the
        affine maps to: 1 scanner, 2 aligned to another image, 3 Talairach, 4 MNI;
        0 unset), written back with the labels; ``(1, 1)`` for DICOM.
    """

    affine: np.ndarray
    source_shape: tuple[int, ...]
    transform: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    oblique: bool = False
    source: str = "nifti"
    unit: str = "millimeter"
    form_codes: tuple[int, int] = (1, 1)

    @classmethod
    def from_affine(
        cls,
        affine: np.ndarray,
        shape: tuple[int, ...],
        source: str = "nifti",
        unit: str = "millimeter",
        form_codes: tuple[int, int] = (1, 1),
    ) -> VolumeGeometry:
        """The geometry of a volume of spatial ``shape`` stored with ``affine``.

        Parameters
        ----------
        affine : array_like, shape (4, 4)
            Voxel (file order) to RAS+ world, in ``unit``.
        shape : tuple of int
            The three spatial sizes, in file order.
        source : str
        unit : str
            One of :data:`NIFTI_UNITS` (its NGFF name).
        form_codes : tuple of int
            ``qform_code`` and ``sform_code``, each 0 to 4.

        Returns
        -------
        VolumeGeometry

        Raises
        ------
        ValueError
            For an affine that is not finite or whose axes are degenerate, a unit
            NIfTI cannot state or form codes it does not define.
        """
        from nibabel import orientations as no

        if not isinstance(unit, str) or unit not in NIFTI_UNITS:
            raise ValueError(f"a volume's unit is one of {sorted(NIFTI_UNITS)}, got {unit!r}")
        codes = tuple(form_codes) if isinstance(form_codes, (list, tuple)) else ()
        if len(codes) != 2 or not all(type(c) is int and 0 <= c <= 4 for c in codes):
            raise ValueError(f"NIfTI form codes are two integers 0 to 4, got {form_codes!r}")
        affine = np.asarray(affine, dtype=float)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise ValueError("the affine is not a finite 4x4 matrix (NaN or infinite entries)")
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        if not np.all(zooms > 0) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError(f"the affine's axes are degenerate (voxel sizes {zooms.tolist()})")
        transform = no.ornt_transform(no.io_orientation(affine), no.axcodes2ornt(LPS))
        lps = affine @ no.inv_ornt_aff(transform, shape[:3])
        lps_zooms = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))  # ``zooms``, reordered
        ras_to_lps = np.array([-1.0, -1.0, 1.0])
        expected = np.diag(ras_to_lps)  # the direction of L, P, S in RAS
        return cls(
            affine=affine,
            source_shape=tuple(int(n) for n in shape[:3]),
            transform=transform,
            spacing=_zyx(lps_zooms),
            origin=_zyx(lps[:3, 3] * ras_to_lps),
            oblique=not np.allclose(lps[:3, :3] / lps_zooms, expected, atol=1e-4),
            source=source,
            unit=unit,
            form_codes=(codes[0], codes[1]),
        )

    @classmethod
    def from_placement(
        cls,
        spacing: tuple[float, ...],
        origin: tuple[float, ...],
        shape: tuple[int, ...],
        units: tuple[str, ...] | None = None,
        turn: np.ndarray | None = None,
    ) -> VolumeGeometry:
        """The geometry of a ``(z, y, x)`` LPS array placed by napari's ``scale`` (spacing)
        and ``translate`` (origin), for an array that was not read from a medical file.

        The file holds the array as it is (its axes reversed, as NIfTI orders them);
        ``to_array(array.T)`` is the array as this geometry shows it, which is
        ``array`` itself unless ``turn`` brings an axis nearer another LPS axis than
        its own.

        Parameters
        ----------
        spacing, origin : tuple of float
            ``(z, y, x)`` voxel size and LPS position of the first voxel.
        shape : tuple of int
            The ``(z, y, x)`` shape.
        units : tuple of str, optional
            The unit of each axis by name (a napari layer's ``units``). Lengths
            NIfTI cannot state (nanometres, centimetres...) are converted to one it
            can (:func:`nifti_placement_unit`); without units, or with one that is
            not a length (napari's default ``"pixel"``), millimetres are assumed.
        turn : ndarray, shape (3, 3), optional
            A rotation (or shear) applied after the spacing, in ``(z, y, x)``: a layer
            turned in napari. None: axis-aligned.

        Returns
        -------
        VolumeGeometry

        Raises
        ------
        ValueError
            If the three do not describe a 3D volume.
        """
        if not len(spacing) == len(origin) == len(shape) == 3:
            raise ValueError(f"a volume has 3 axes, got shape {tuple(shape)}")
        factors, unit = nifti_placement_unit(units)
        rows = np.asarray(factors, dtype=float)[:, None]  # each world axis in the file's unit
        linear = rows * (np.eye(3) if turn is None else np.asarray(turn, dtype=float))
        linear = linear * np.asarray(spacing, dtype=float)[None, :]
        affine = np.eye(4)
        # (z, y, x) LPS to (x, y, z) RAS, and file index (i, j, k) = (x, y, z): reversed.
        ras = np.diag([-1.0, -1.0, 1.0])
        affine[:3, :3] = ras @ linear[::-1, ::-1]
        affine[:3, 3] = ras @ (rows[:, 0] * np.asarray(origin, dtype=float))[::-1]
        return cls.from_affine(affine, tuple(shape[::-1]), unit=unit)

    def to_array(self, data: np.ndarray) -> np.ndarray:
        """File-ordered data ``(i, j, k[, c])`` as the ``([c,] z, y, x)`` array (views).

        Parameters
        ----------
        data : ndarray

        Returns
        -------
        ndarray
        """
        from nibabel.orientations import apply_orientation

        return apply_orientation(data, self.transform).T  # (x, y, z[, c]) reversed

    def to_file(self, array: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_array`: a ``([c,] z, y, x)`` array in file order.

        Parameters
        ----------
        array : ndarray

        Returns
        -------
        ndarray
        """
        from nibabel import orientations as no

        back = no.ornt_transform(no.axcodes2ornt(LPS), no.io_orientation(self.affine))
        return no.apply_orientation(array.T, back)

    @property
    def array_shape(self) -> tuple[int, int, int]:
        """The ``(z, y, x)`` shape of the arrays :meth:`to_array` gives."""
        lps = [0, 0, 0]
        for size, (axis, _flip) in zip(self.source_shape, self.transform, strict=True):
            lps[int(axis)] = size
        x, y, z = lps
        return z, y, x

    def to_metadata(self) -> dict[str, Any]:
        """The geometry as plain JSON types (for a napari layer's ``metadata``).

        Returns
        -------
        dict
        """
        return {
            "affine": self.affine.tolist(),
            "source_shape": list(self.source_shape),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "oblique": self.oblique,
            "source": self.source,
            "unit": self.unit,
            "form_codes": list(self.form_codes),
            "axes": "zyx (LPS)",
        }

    @classmethod
    def from_metadata(cls, data: Any) -> VolumeGeometry:
        """The geometry stored by :meth:`to_metadata`.

        Parameters
        ----------
        data : dict

        Returns
        -------
        VolumeGeometry

        Raises
        ------
        ValueError
            If ``data`` does not describe a geometry.
        """
        try:
            affine = np.asarray(data["affine"], dtype=float)
            shape = tuple(int(n) for n in data["source_shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a volume geometry ({type(exc).__name__}: {exc})") from None
        if len(shape) != 3:
            raise ValueError(f"a volume geometry has 3 sizes, got {shape}")
        return cls.from_affine(
            affine,
            shape,
            source=str(data.get("source", "nifti")),
            unit=recorded_unit(data),
            form_codes=data.get("form_codes", (1, 1)),
        )


def recorded_unit(data: dict) -> Any:
    """The length unit a geometry's :meth:`VolumeGeometry.to_metadata` records, as
    stored (checked by :meth:`VolumeGeometry.from_affine`); millimetres for metadata
    recorded before units were kept.

    Parameters
    ----------
    data : dict

    Returns
    -------
    object
    """
    return data.get("unit", "millimeter")


def nifti_placement_unit(
    units: tuple[str, ...] | None,
) -> tuple[tuple[float, float, float], str]:
    """A length unit NIfTI can state for axes in ``units``, and the factor that brings
    each axis's values into it.

    Axes in one of :data:`NIFTI_UNITS` keep it. Other lengths, or axes in different
    units, are expressed in micrometres when the finest axis is finer than a
    millimetre, else in millimetres (metres from a metre up). Without a length
    unit on every axis (napari's default ``"pixel"``) the values are taken as
    millimetres, as NIfTI readers take a file whose unit is "unknown".

    Parameters
    ----------
    units : tuple of str or None
        Three unit names (napari's or NGFF's: ``"micrometer"``), or None.

    Returns
    -------
    factors : tuple of float
    unit : str
    """
    from ._units import LENGTH_UNITS, known_unit

    ones = (1.0, 1.0, 1.0)
    if units is None or len(units) != 3:
        return ones, "millimeter"
    known = [known_unit("space", str(u)) for u in units]
    if any(u is None for u in known):
        return ones, "millimeter"
    lengths = [LENGTH_UNITS[str(u)] for u in known]
    if len(set(known)) == 1 and known[0] in NIFTI_UNITS:
        return ones, known[0]
    finest = min(lengths)
    target = "micrometer" if finest < 1e-3 else "millimeter" if finest < 1 else "meter"
    # 15 significant digits: 1e-9 / 1e-6 is 0.001, not 0.0010000000000000002
    factors = tuple(float(f"{m / LENGTH_UNITS[target]:.15g}") for m in lengths)
    return (factors[0], factors[1], factors[2]), target


def _zyx(values) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in values)
    return z, y, x


def volume_channel_axis(ndim: int) -> int | None:
    """The channel axis of a medical volume of ``ndim`` axes as napari-seg reads it:
    the first of a 4D one (``c, z, y, x``: a 4D NIfTI, or a case's channel files),
    none of a 3D one.

    Parameters
    ----------
    ndim : int

    Returns
    -------
    int or None
    """
    return 0 if ndim == 4 else None


def layout_defaults(ndim: int, spatial_dims: int, spacing: tuple[float, ...]) -> dict[str, Any]:
    """How a model reads a medical volume when the user says nothing: a 4D volume's
    first axis holds channels, a 2D model segments axial slices (the first
    spatial axis) one by one, and the voxel size is the image's spacing.

    Parameters
    ----------
    ndim : int
        3 (``z, y, x``) or 4 (``c, z, y, x``).
    spatial_dims : int
        The model's dimensionality.
    spacing : tuple of float
        The volume's ``(z, y, x)`` voxel size.

    Returns
    -------
    dict
        ``channel_axis``, ``axis`` and ``spacing`` settings of a ``PredictConfig``.
    """
    channel_axis = volume_channel_axis(ndim)
    first = 1 if ndim == 4 else 0
    return {
        "channel_axis": channel_axis,
        "axis": first if spatial_dims == 2 else None,
        "spacing": tuple(spacing[-spatial_dims:]),
    }


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
    try:
        import nibabel
    except ImportError:
        raise ValueError(extra_message("reading NIfTI", "nibabel", "medical")) from None
    return nibabel


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
    nib = _nibabel()
    try:
        return nib.load(str(path)).header.get_intent()[0] == "label"
    except Exception:  # the pixels are read, and refused, elsewhere
        return False


def read_nifti(path: str | os.PathLike) -> tuple[np.ndarray, VolumeGeometry]:
    """A NIfTI volume as a ``(z, y, x)`` (or ``(c, z, y, x)``) LPS array and its geometry.

    Uncompressed files are memory-mapped; ``.nii.gz`` files are read whole.
    Scaled data (``scl_slope``) is returned as floats, as nibabel scales it.

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
    nib = _nibabel()
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    try:
        image = nib.load(str(path))
        header_shape = tuple(int(n) for n in image.shape)
        affine = image.affine
    except (OSError, ValueError, EOFError, ImageFileError, HeaderDataError) as exc:
        raise ValueError(f"cannot read {path} as NIfTI: {one_line(exc, 300)}") from None
    shape = header_shape + (1,) * (3 - len(header_shape))
    if len(shape) > 4:
        raise ValueError(f"{path} is a {len(shape)}D NIfTI {shape}; napari-seg reads 3D and 4D")
    if len(shape) == 4 and shape[3] > MAX_NIFTI_CHANNELS:
        raise ValueError(
            f"{path} holds {shape[3]} volumes along its 4th axis; napari-seg reads a 4D NIfTI "
            f"as channels (at most {MAX_NIFTI_CHANNELS}): split a time series into volumes"
        )
    if affine is None:
        raise ValueError(f"{path} has no affine (a broken header)")
    claimed = math.prod(shape) * image.get_data_dtype().itemsize
    if claimed > MAX_VOLUME_BYTES:
        raise ValueError(
            f"{path}'s header claims {shape} voxels ({claimed / GIB:.0f} GiB), more than the "
            f"{MAX_VOLUME_BYTES // GIB} GiB napari-seg reads at once"
        )
    codes = (int(image.header["qform_code"]), int(image.header["sform_code"]))
    geometry = VolumeGeometry.from_affine(
        affine,
        shape[:3],
        unit=nifti_unit(image),
        form_codes=_known_codes(codes),
        source="nifti2" if isinstance(image, nib.Nifti2Image) else "nifti",
    )
    try:
        data = np.asanyarray(image.dataobj).reshape(shape)
    except (OSError, ValueError, EOFError, MemoryError) as exc:
        raise ValueError(f"cannot read the voxels of {path}: {one_line(exc, 300)}") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    return geometry.to_array(data), geometry


def write_nifti(
    path: str | os.PathLike,
    array: np.ndarray,
    geometry: VolumeGeometry,
    *,
    overwrite: bool = False,
) -> None:
    """Write a ``([c,] z, y, x)`` array as NIfTI with the source's voxel order and affine.

    Integer arrays are stored with the smallest unsigned type that holds them
    (labels: ``arrays.ids.compact_ids``; int32 beyond 65535 or below 0), others as
    float32. NIfTI-1, unless the source was NIfTI-2 or an axis
    is longer than NIfTI-1 can state (``NIFTI1_MAX_SIZE``): then NIfTI-2. Written
    atomically; an existing file is replaced only with ``overwrite=True``.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii`` or ``.nii.gz``.
    array : ndarray
    geometry : VolumeGeometry
        Of the volume the array was computed from.
    overwrite : bool

    Raises
    ------
    ValueError
        If the suffix is not a NIfTI one or the array does not fit the geometry.
    """
    nib = _nibabel()
    if not is_nifti(path):
        raise ValueError(f"{path}: a NIfTI file name ends in .nii or .nii.gz")
    array = np.asarray(array)
    if array.ndim not in (3, 4) or array.shape[-3:] != geometry.array_shape:
        raise ValueError(
            f"an array of shape {array.shape} does not fit the volume it should be written "
            f"with (z, y, x = {geometry.array_shape})"
        )
    data = geometry.to_file(array)
    if np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_:
        from .arrays.ids import compact_ids

        data = compact_ids(data)  # larger (or negative) ids: int32, which NIfTI tools read
        data = data if data.dtype in (np.uint8, np.uint16) else data.astype(np.int32)
    else:
        data = data.astype(np.float32)
    # NIfTI-1 stores sizes as int16: a longer axis needs NIfTI-2 (fewer tools read it).
    two = geometry.source == "nifti2" or max(data.shape) > NIFTI1_MAX_SIZE
    kind = nib.Nifti2Image if two else nib.Nifti1Image
    image = kind(np.ascontiguousarray(data), geometry.affine)
    image.header.set_xyzt_units(NIFTI_UNITS[geometry.unit])
    if np.issubdtype(data.dtype, np.integer):  # NIFTI_INTENT_LABEL: a label map
        image.header.set_intent("label")
    qform, sform = geometry.form_codes
    image.set_qform(geometry.affine, code=qform)
    image.set_sform(geometry.affine, code=sform)
    gz = str(path).lower().endswith(".gz")
    with atomic_write(path, overwrite=overwrite) as handle:
        payload = image.to_bytes()
        if gz:
            import gzip

            payload = gzip.compress(payload, compresslevel=6)
        handle.write(payload)


#: The name tails of ``predict``'s outputs: ``NAME_labels.tif``, ``NAME_probabilities.tif``,
#: ``NAME_objects.tif`` (``.nii.gz`` for medical inputs, ``.ome.zarr`` block by block).
OUTPUT_TAILS = {"labels": "_labels", "probabilities": "_probabilities", "objects": "_objects"}


def label_path(folder: Path, stem: str, source: str | os.PathLike, what: str = "labels") -> Path:
    """The output file of an input: ``brain.nii.gz`` gives ``brain_labels.nii.gz``, a
    DICOM folder gives NIfTI too, other inputs TIFF.

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
    medical = is_nifti(source) or is_dicom_folder(source)
    tail = OUTPUT_TAILS[what] if what else ""
    return folder / f"{stem}{tail}{'.nii.gz' if medical else '.tif'}"


def is_dicom_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder whose files include DICOM files (checked by preamble).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    path = Path(path)
    if not path.is_dir():
        return False
    for i, child in enumerate(sorted(path.iterdir())):
        if i >= 64:
            break
        if child.is_file() and _has_dicom_preamble(child):
            return True
    return False


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


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
        A folder of single-frame DICOM files (other files are skipped).
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
    headers = _dicom_headers(Path(folder))
    groups: dict[str, list] = {}
    for path, ds in headers:
        groups.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((path, ds))
    if series is None and len(groups) > 1:
        listing = "; ".join(
            f"{uid} ({len(items)} files, {getattr(items[0][1], 'SeriesDescription', '') or '-'})"
            for uid, items in sorted(groups.items())
        )
        raise ValueError(f"{folder} holds {len(groups)} DICOM series: {listing}; choose one")
    if series is not None and series not in groups:
        raise ValueError(f"{folder} has no series {series!r}; it has {sorted(groups)}")
    items = groups[series] if series is not None else next(iter(groups.values()))
    affine, order = _dicom_affine(items, folder)
    first = items[0][1]
    claimed = int(first.Rows) * int(first.Columns) * len(items) * 4
    if claimed > MAX_VOLUME_BYTES:
        raise ValueError(
            f"{folder}: {len(items)} slices of {first.Rows}x{first.Columns} would take "
            f"{claimed / GIB:.0f} GiB, more than the {MAX_VOLUME_BYTES // GIB} GiB "
            "napari-seg reads at once"
        )
    planes = []
    for index in order:
        path, _ = items[index]
        planes.append(_dicom_plane(path))
    volume = np.stack(planes)  # (slice, row, column)
    geometry = VolumeGeometry.from_affine(affine, volume.shape[::-1], source="dicom")
    return geometry.to_array(volume.transpose(2, 1, 0)), geometry


def _dicom_headers(folder: Path) -> list:
    try:
        import pydicom
    except ImportError:
        raise ValueError(extra_message("reading DICOM", "pydicom", "medical")) from None
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of DICOM files")
    files = [p for p in sorted(folder.iterdir()) if p.is_file()]
    if len(files) > MAX_DICOM_FILES:
        raise ValueError(f"{folder} holds {len(files)} files, more than {MAX_DICOM_FILES}")
    headers, multiframe = [], []
    for path in files:
        if not _has_dicom_preamble(path):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (OSError, ValueError, EOFError, AttributeError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read {path} as DICOM: {one_line(exc, 200)}") from None
        if frames > 1:
            multiframe.append(path.name)
        elif "ImagePositionPatient" in ds and "PixelSpacing" in ds:
            headers.append((path, ds))
    if not headers and multiframe:
        raise ValueError(
            f"{folder} holds multi-frame DICOM files ({', '.join(multiframe[:3])}); napari-seg "
            "reads series of single-frame slices: convert them to NIfTI first (dcm2niix)"
        )
    if not headers:
        raise ValueError(f"{folder} holds no DICOM image slices (with a position and a spacing)")
    return headers


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


def _dicom_plane(path: Path) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        plane = ds.pixel_array
    except (OSError, ValueError, EOFError, AttributeError, KeyError, RuntimeError) as exc:
        raise ValueError(f"cannot read the pixels of {path}: {one_line(exc, 200)}") from None
    if plane.ndim != 2:
        raise ValueError(f"{path} is not a single-frame greyscale slice (shape {plane.shape})")
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    if slope != 1 or intercept != 0:
        return (plane.astype(np.float32) * slope + intercept).astype(np.float32)
    return plane


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


def read_volume(
    path: str | os.PathLike, *, series: str | None = None
) -> tuple[np.ndarray, VolumeGeometry]:
    """A NIfTI file or a DICOM series folder, as :func:`read_nifti` / :func:`read_dicom`.

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
    if is_nifti(path):
        return read_nifti(path)
    if is_dicom_folder(path):
        return read_dicom(path, series=series)
    raise ValueError(f"{path} is neither a NIfTI file nor a folder of DICOM files")
