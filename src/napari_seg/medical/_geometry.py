"""A medical volume's geometry: its file's affine and voxel order, and its place
in napari (``(z, y, x)`` in LPS; see :mod:`napari_seg.medical`)."""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..limits import GIB, MAX_VOLUME_BYTES

#: Orientation codes of the array axes (x, y, z) before they are reversed to (z, y, x).
LPS = ("L", "P", "S")

#: NIfTI's spatial units (nibabel's names for ``xyzt_units``) by NGFF length unit.
NIFTI_UNITS = {"millimeter": "mm", "micrometer": "micron", "meter": "meter"}
#: Millimetres per unit of :data:`NIFTI_UNITS`: formats without a unit (MetaImage)
#: state lengths in millimetres.
MILLIMETERS = {"millimeter": 1.0, "micrometer": 1e-3, "meter": 1e3}
#: gzip level of written volumes (``.nii.gz``, ``.nrrd``): the fastest. Label files
#: are about twice as large as at level 6 (0.47 against 0.22 MiB for 200x512x512 in
#: ``bench/medical_io.py``) but compressed 4.6x faster; probabilities 0.7% larger.
GZIP_LEVEL = 1
#: RAS to LPS, and LPS to RAS: the first two world axes change sign.
FLIP_RAS_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


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
    series_file : str or None
        One file of the DICOM series the volume was read from (it names its series),
        which a DICOM SEG of labels computed from it references; None for other
        sources.
    time_step : float or None
        The seconds between the time points of a 4D volume whose header states them
        (a cine MRI's frame interval: a NIfTI's ``pixdim[4]`` in its ``xyzt_units``
        time unit), written back with 4D labels; None otherwise.
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
    series_file: str | None = None
    time_step: float | None = None

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
        # the axes' directions, whatever the voxel size (4 nm voxels in mm are no fault)
        if not np.all(zooms > 0) or abs(np.linalg.det(affine[:3, :3] / zooms)) < 1e-6:
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
    def lps_affine(self) -> np.ndarray:
        """The file's voxel-to-world affine in LPS (ITK's and NRRD's frame), in ``unit``."""
        return FLIP_RAS_LPS @ self.affine

    @property
    def array_shape(self) -> tuple[int, int, int]:
        """The ``(z, y, x)`` shape of the arrays :meth:`to_array` gives."""
        lps = [0, 0, 0]
        for size, (axis, _flip) in zip(self.source_shape, self.transform, strict=True):
            lps[int(axis)] = size
        x, y, z = lps
        return z, y, x

    def placement(self, ndim: int) -> tuple[tuple[float, ...], tuple[float, ...], tuple]:
        """The scale, translation and units along each axis of an ``ndim`` array of the
        volume (:meth:`to_array`'s; a 4D one has channels or time points first: scale 1,
        no translation and no unit, or its ``time_step`` in seconds), as
        ``_headers.read_source_transform`` gives a file's.

        Parameters
        ----------
        ndim : int
            3 or 4.

        Returns
        -------
        tuple
        """
        lead = ndim - 3
        step, unit = (self.time_step, "second") if lead and self.time_step else (1.0, None)
        return (
            (step,) * lead + tuple(self.spacing),
            (0.0,) * lead + tuple(self.origin),
            (unit,) * lead + (self.unit,) * 3,
        )

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
            **({} if self.series_file is None else {"series_file": self.series_file}),
            **({} if self.time_step is None else {"time_step": self.time_step}),
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
        geometry = cls.from_affine(
            affine,
            shape,
            source=str(data.get("source", "nifti")),
            unit=recorded_unit(data),
            form_codes=data.get("form_codes", (1, 1)),
        )
        series_file = data.get("series_file")
        step = data.get("time_step")
        good = isinstance(step, (int, float)) and math.isfinite(step) and step > 0
        return replace(
            geometry,
            series_file=series_file if isinstance(series_file, str) else None,
            time_step=float(step) if good else None,
        )


def fit_array(array: np.ndarray, geometry: VolumeGeometry, *, ids: bool = True) -> np.ndarray:
    """A ``([c,] z, y, x)`` array to write with ``geometry``, in the file's voxel order
    (``(i, j, k[, c])``), its values as medical tools read them: ids (and booleans)
    in the smallest unsigned type that holds them (:func:`~napari_seg.arrays.ids.compact_ids`),
    int32 beyond 65535 or below 0 (uint32 beyond int32); other values float32. An
    image's values (``ids=False``: a CT's Hounsfield units) keep their type, but for
    booleans (uint8) and floats other than float32 and float64 (float32).

    Parameters
    ----------
    array : ndarray
    geometry : VolumeGeometry
    ids : bool
        Whether integers are ids (a label map) or an image's values.

    Returns
    -------
    ndarray

    Raises
    ------
    ValueError
        If the array does not fit the geometry, or holds ids beyond 32 bits.
    """
    from ..arrays.ids import compact_ids

    array = np.asarray(array)
    if array.ndim not in (3, 4) or array.shape[-3:] != geometry.array_shape:
        raise ValueError(
            f"an array of shape {array.shape} does not fit the volume it should be written "
            f"with (z, y, x = {geometry.array_shape})"
        )
    data = geometry.to_file(array)
    if not ids:  # an image's values: their own type (booleans as uint8)
        if data.dtype.kind in "iu" or data.dtype in (np.float32, np.float64):
            return data
        return data.astype(np.uint8 if data.dtype == np.bool_ else np.float32)
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_):
        return data.astype(np.float32)
    data = compact_ids(data)
    if data.dtype in (np.uint8, np.uint16):
        return data
    low, high = int(data.min()), int(data.max())  # larger (or negative) ids
    for kind in (np.int32, np.uint32):  # int32 first: every tool reads it
        if np.iinfo(kind).min <= low and high <= np.iinfo(kind).max:
            return data.astype(kind)
    raise ValueError(
        f"label ids from {low} to {high} do not fit the 32-bit integers medical files "
        "hold; relabel them (e.g. skimage.segmentation.relabel_sequential)"
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
    from .._units import LENGTH_UNITS, known_unit

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


def check_claimed_bytes(path: Any, shape: tuple[int, ...], claimed: int) -> None:
    """Refuse a file whose header claims more than napari-seg reads at once
    (``limits.MAX_VOLUME_BYTES``), before its voxels are read.

    Parameters
    ----------
    path : path-like
        The file, for the message.
    shape : tuple of int
        The sizes its header states.
    claimed : int
        The bytes they take.

    Raises
    ------
    ValueError
        Naming the file, its sizes and the bytes.
    """
    if claimed > MAX_VOLUME_BYTES:
        raise ValueError(
            f"{path}'s header claims {tuple(shape)} voxels ({claimed / GIB:.0f} GiB), more "
            f"than the {MAX_VOLUME_BYTES // GIB} GiB napari-seg reads at once"
        )


def check_data_file(header: Any, name: str) -> None:
    """Refuse the data file ``name`` of a detached ``header`` (NRRD's ``.nhdr``,
    MetaImage's ``.mhd``) when it is missing or no regular file: a pipe or a device
    would block the reader, or read without end.

    Parameters
    ----------
    header : path-like
        The header file; a relative ``name`` lies in its folder.
    name : str
        The data file as the header states it.

    Raises
    ------
    ValueError
        Naming the header and its data file.
    """
    target = os.path.join(os.path.dirname(header), name)  # an absolute name stays itself
    try:
        regular = stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        regular = None
    if not regular:
        said = "is missing" if regular is None else "is not a regular file"
        raise ValueError(f"{os.path.basename(header)}: its data file {name!r} {said}")
