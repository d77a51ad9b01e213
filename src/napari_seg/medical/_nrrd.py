"""NRRD volumes (pynrrd): 3D Slicer's format for volumes and segmentations, read as
``(z, y, x)`` LPS arrays with their geometry; labels computed from one are written
as NRRD on the same grid (:func:`write_nrrd`).

The header places the voxels: ``space directions`` (one vector per axis, in file
order, ``none`` for an axis of components), ``space origin`` and ``space`` (the
patient frame they are stated in: ``left-posterior-superior``, as Slicer writes
them, ``right-anterior-superior`` or ``left-anterior-superior``). A file that names
no anatomical space (``scanner-xyz``, ``3D-right-handed``, or none) is read in LPS,
as ITK reads it; one without ``space directions`` is placed by its ``spacings`` at
the origin. An axis of components (``kinds`` ``vector``, ``list``, ``RGB-color``: a
multi-component volume) is the channel axis, as a 4D NIfTI's volumes are; the
layers of a 3D Slicer segmentation whose segments overlap are merged into one label
map instead (segment k is id k + 1, a later segment taking the voxels it shares with
an earlier one, as Slicer's export to a label map does).
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write
from .._extras import import_for_reading
from .._paths import user_path
from ..limits import MAX_CLASSES, MAX_NAME_LENGTH, one_line
from ._geometry import (
    GZIP_LEVEL,
    VolumeGeometry,
    check_claimed_bytes,
    check_data_file,
    fit_array,
)
from ._nrrd_reference import on_reference_grid

NRRD_SUFFIXES = (".nrrd", ".nhdr")
#: The name tails of 3D Slicer's label files beside their volume: a segmentation
#: ``NAME.seg.nrrd``, a label map ``NAME-label.nrrd``.
SLICER_LABEL_TAILS = (".seg", "-label")
#: The segments of a segmentation's header read at most (a class each).
MAX_SEGMENTS = MAX_CLASSES
#: The sign that turns each named space's coordinates into RAS ones.
SPACES = {
    "right-anterior-superior": (1.0, 1.0, 1.0),
    "ras": (1.0, 1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0),
    "las": (-1.0, 1.0, 1.0),
    "left-posterior-superior": (-1.0, -1.0, 1.0),
    "lps": (-1.0, -1.0, 1.0),
    "scanner-xyz": (-1.0, -1.0, 1.0),  # no anatomical frame: LPS, as ITK reads it
    "3d-right-handed": (-1.0, -1.0, 1.0),
}
#: ``space units`` as the length units a volume geometry states.
UNITS = {
    "mm": "millimeter",
    "millimeter": "millimeter",
    "millimeters": "millimeter",
    "um": "micrometer",
    "µm": "micrometer",
    "micron": "micrometer",
    "micrometer": "micrometer",
    "m": "meter",
    "meter": "meter",
}
#: The ``space units`` written for each length unit.
WRITTEN_UNITS = {"millimeter": "mm", "micrometer": "um", "meter": "m"}


def is_nrrd(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an NRRD file (``.nrrd``, or a detached ``.nhdr`` header).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return str(path).lower().endswith(NRRD_SUFFIXES)


def _pynrrd():
    return import_for_reading("nrrd", "reading NRRD", "pynrrd", "medical")


def read_nrrd(path: str | os.PathLike) -> tuple[np.ndarray, VolumeGeometry]:
    """An NRRD volume as a ``(z, y, x)`` (or ``(c, z, y, x)``) LPS array and its geometry.

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
        For a file that is not a readable 3D (or 3D + components) NRRD volume.
    """
    path = user_path(path)
    nrrd = _pynrrd()
    try:
        with open(path, "rb") as fh:
            header = nrrd.read_header(fh)
            spatial, components = _axes(path, header)
            _check_size(path, header)
            detached = header.get("datafile", header.get("data file"))
            if detached is not None:
                check_data_file(path, str(detached))
            data = nrrd.read_data(header, fh, str(path), index_order="F")
    except (nrrd.NRRDError, zlib.error, EOFError) as exc:
        raise ValueError(f"cannot read {path} as NRRD: {one_line(exc, 300)}") from None
    shape = tuple(int(header["sizes"][a]) for a in spatial)
    geometry = VolumeGeometry.from_affine(
        nrrd_affine(header, spatial), shape, source="nrrd", unit=_unit(header)
    )
    data = np.moveaxis(data, [*spatial, *components], range(data.ndim))  # (i, j, k[, c])
    table = _segment_table(header) if components else []
    if table:  # a segmentation whose segments overlap: its layers
        data = _merge_layers(data, table)
    # a segmentation saved cropped to its segments: on the grid of its image
    return on_reference_grid(geometry.to_array(data), geometry, header, Path(path).name)


def write_nrrd(
    path: str | os.PathLike,
    array: np.ndarray,
    geometry: VolumeGeometry,
    *,
    overwrite: bool = False,
    segments: dict[int, tuple[str, tuple[float, ...]]] | None = None,
    label: bool = True,
) -> None:
    """Write a ``([c,] z, y, x)`` array as one gzipped NRRD file (``.nrrd``) with the
    voxel order, directions and origin of the volume it was computed from, in LPS,
    as 3D Slicer writes them; channels (class probabilities) are its first axis, of
    kind ``list``. Values as :func:`~napari_seg.medical._geometry.fit_array` gives
    them. Written atomically; an existing file is replaced only with ``overwrite=True``.

    A label map written with ``segments`` (:func:`class_segments`) states them as
    3D Slicer's segmentation fields (``Segment0_Name``, ``_LabelValue``, ``_Color``...,
    one layer, each segment spanning the whole grid), so that Slicer opens it as a
    segmentation with the classes' names and colours, and :func:`nrrd_segments` reads
    them back.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.nrrd``.
    array : ndarray
    geometry : VolumeGeometry
    overwrite : bool
    segments : dict, optional
        ``{label value: (name, (r, g, b[, a]) or ())}``, values from 1.
    label : bool
        Whether integers are a label map's ids or an image's values
        (:func:`~napari_seg.medical.write_volume`).

    Raises
    ------
    ValueError
        For another suffix (a detached ``.nhdr`` too), an array that does not fit
        the geometry, or ``segments`` for channels or a value under 1.
    """
    path = user_path(path)
    nrrd = _pynrrd()
    if not str(path).lower().endswith(".nrrd"):
        raise ValueError(f"{path}: napari-seg writes NRRD as one .nrrd file")
    data = fit_array(array, geometry, ids=label)  # (i, j, k[, c])
    fields = _segment_fields(segments, data.shape) if segments else {}
    lps = geometry.lps_affine
    directions = lps[:3, :3].T  # a row per file axis
    kinds = ["domain"] * 3
    if data.ndim == 4:  # the components first (fastest), as Slicer stores them
        data = np.moveaxis(data, 3, 0)
        directions = np.vstack([np.full(3, np.nan), directions])
        kinds = ["list", *kinds]
    header = {
        "space": "left-posterior-superior",
        "space directions": directions,
        "space origin": lps[:3, 3],
        "space units": [WRITTEN_UNITS[geometry.unit]] * 3,
        "kinds": kinds,
        "encoding": "gzip",
        **fields,
    }
    with atomic_write(path, overwrite=overwrite) as handle:
        nrrd.write(handle, data, header, compression_level=GZIP_LEVEL)


def _segment_fields(
    segments: dict[int, tuple[str, tuple[float, ...]]], shape: tuple[int, ...]
) -> dict[str, str]:
    """3D Slicer's segmentation fields for a label map of ``shape`` (file order): the
    segments in order of label value, all in layer 0, each with the whole grid as its
    extent (Slicer's own choice for a segment it is not told the extent of)."""
    if len(shape) != 3:
        raise ValueError(f"segments name the ids of a label map, got an array of shape {shape}")
    if min(segments) < 1:
        raise ValueError(f"segment label values start at 1 (0 is unsegmented), got {min(segments)}")
    extent = " ".join(f"0 {n - 1}" for n in shape)
    fields = {
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    }
    for k, (value, (name, color)) in enumerate(sorted(segments.items())[:MAX_SEGMENTS]):
        prefix = f"Segment{k}_"
        fields[prefix + "ID"] = f"Segment_{value}"
        fields[prefix + "Name"] = _header_text(name) or f"segment {value}"
        fields[prefix + "NameAutoGenerated"] = "0"
        if len(color) >= 3:
            fields[prefix + "Color"] = " ".join(f"{float(c):.6g}" for c in color[:3])
            fields[prefix + "ColorAutoGenerated"] = "0"
        fields[prefix + "LabelValue"] = str(int(value))
        fields[prefix + "Layer"] = "0"
        fields[prefix + "Extent"] = extent
    return fields


def _header_text(text: str) -> str:
    """``text`` as one line of an NRRD header, which pynrrd writes (and reads) as ASCII:
    accents dropped ("Läsion" is "Lasion"), other characters ASCII lacks left out, line
    breaks, control characters and runs of spaces one space."""
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    line = " ".join("".join(c if c.isprintable() else " " for c in folded).split())
    return line[:MAX_NAME_LENGTH]


def class_segments(
    class_names: Sequence[str] | Mapping[int, str],
    class_colors: Sequence[Sequence[float]] | Mapping[int, Sequence[float]] = (),
    background: int | None = 0,
) -> dict[int, tuple[str, tuple[float, ...]]]:
    """The segments a label map of these classes is written with (:func:`write_nrrd`):
    every class but the background and id 0 (3D Slicer's unsegmented voxels), by id,
    with its colour when ``class_colors`` has one. The inverse of
    :func:`segment_class_names`.

    Parameters
    ----------
    class_names : sequence of str, or dict
        Indexed by class id, or ``{class id: name}``.
    class_colors : sequence of RGBA sequences, or dict, optional
        The same way; a class without one gets none (Slicer picks it).
    background : int or None
        The background class id, not a segment.

    Returns
    -------
    dict
        ``{label value: (name, (r, g, b, a) or ())}``.
    """
    names = class_names if isinstance(class_names, Mapping) else dict(enumerate(class_names))
    colors = class_colors if isinstance(class_colors, Mapping) else dict(enumerate(class_colors))
    return {
        int(i): (str(name), tuple(float(c) for c in colors[i]) if i in colors else ())
        for i, name in sorted(names.items())
        if i > 0 and i != background
    }


def _axes(path, header: dict) -> tuple[list[int], list[int]]:
    """The file's spatial axes and its axis of components (none or one)."""
    sizes = [int(n) for n in header["sizes"]]
    directions = header.get("space directions")
    if directions is not None:
        spatial = [a for a, row in enumerate(directions) if np.all(np.isfinite(row))]
    else:
        kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * len(sizes))]
        spatial = [a for a, kind in enumerate(kinds) if kind in ("domain", "space")]
    components = [a for a in range(len(sizes)) if a not in spatial]
    if len(spatial) != 3 or len(components) > 1:
        raise ValueError(
            f"{Path(path).name} is an NRRD file of sizes {sizes} with {len(spatial)} "
            "spatial axes; napari-seg reads 3D volumes (with at most one axis of "
            "components or channels)"
        )
    return spatial, components


def _check_size(path, header: dict) -> None:
    """Refuse a header that claims more than napari-seg reads at once."""
    sizes = tuple(int(n) for n in header["sizes"])
    check_claimed_bytes(path, sizes, math.prod(sizes) * _item_bytes(str(header["type"])))


def _item_bytes(kind: str) -> int:
    """The bytes of one value of an NRRD ``type`` (``int16``, ``unsigned short``,
    ``uchar``, ``double``...)."""
    kind = kind.lower()
    bits = re.findall(r"\d+", kind)
    if bits:
        return max(1, int(bits[0]) // 8)
    if "char" in kind:
        return 1
    if "short" in kind:
        return 2
    return 8 if "long" in kind or "double" in kind else 4


def nrrd_affine(header: dict[str, Any], spatial: list[int]) -> np.ndarray:
    """The voxel-to-RAS affine of an NRRD header's ``spatial`` axes (file order).

    Parameters
    ----------
    header : dict
        pynrrd's header.
    spatial : list of int
        The spatial axes, in file order.

    Returns
    -------
    ndarray, shape (4, 4)

    Raises
    ------
    ValueError
        For a space that is not 3D patient or scanner space (a time-varying one).
    """
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space not in SPACES:
        raise ValueError(
            f"an NRRD space of {space!r} is not read (3D spaces: RAS, LAS, LPS, "
            "scanner-xyz, 3D-right-handed)"
        )
    affine = np.eye(4)
    directions = header.get("space directions")
    if directions is not None:
        affine[:3, :3] = np.asarray(directions, float)[spatial].T
    else:  # spacings along the axes of LPS
        spacings = np.asarray(header.get("spacings", [1.0] * len(header["sizes"])), float)
        steps = np.where(np.isfinite(spacings[spatial]), spacings[spatial], 1.0)
        affine[:3, :3] = np.diag(steps)
        space = "left-posterior-superior"
    origin = header.get("space origin")
    if origin is not None:
        affine[:3, 3] = np.asarray(origin, float)[:3]
    return np.diag([*SPACES[space], 1.0]) @ affine


def _unit(header: dict) -> str:
    """The length unit of ``space units`` (millimetres when unstated or unknown, as
    Slicer and ITK read it)."""
    units = {UNITS.get(str(u).strip().lower(), "") for u in header.get("space units") or ()}
    return units.pop() if len(units) == 1 and "" not in units else "millimeter"


def nrrd_segments(path: str | os.PathLike) -> dict[int, tuple[str, tuple[float, ...]]]:
    """The segments a 3D Slicer segmentation (``.seg.nrrd``) names in its header, by
    the label value :func:`read_nrrd` gives them: their names and RGBA colours. A
    segmentation whose segments overlap (layers) is read as one label map whose ids are
    the segments' places in the header, from 1. Empty for any other file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``{label value: (name, (r, g, b, a))}``.
    """
    path = user_path(path)
    if not is_nrrd(path):
        return {}
    nrrd = _pynrrd()
    try:
        header = nrrd.read_header(str(path))
    except (nrrd.NRRDError, OSError, ValueError):
        return {}
    table = _segment_table(header)
    layered = len(header.get("sizes", ())) == 4  # a segmentation in layers: merged
    return {
        k + 1 if layered else value: (name, color)
        for k, (_layer, value, name, color) in enumerate(table)
    }


def _segment_table(header: dict) -> list[tuple[int, int, str, tuple[float, ...]]]:
    """The header's segments in order: (layer, label value in it, name, RGBA colour
    or ``()``); empty when it states none, or states them in a way not understood."""
    found: list[tuple[int, int, str, tuple[float, ...]]] = []
    for i in range(MAX_SEGMENTS):
        prefix = f"Segment{i}_"
        if prefix + "LabelValue" not in header:
            break
        try:
            value = int(str(header[prefix + "LabelValue"]))
            layer = int(str(header.get(prefix + "Layer", "0")))
            rgb = [float(c) for c in str(header.get(prefix + "Color", "")).split()][:3]
        except ValueError:
            return []
        if value < 1 or layer < 0:
            return []
        name = str(header.get(prefix + "Name", f"segment {value}")).strip()[:MAX_NAME_LENGTH]
        color = (*rgb, 1.0) if len(rgb) == 3 and all(0 <= c <= 1 for c in rgb) else ()
        found.append((layer, value, name or f"segment {value}", color))
    return found


def _merge_layers(data: np.ndarray, table: list) -> np.ndarray:
    """One label map from a segmentation's layers (``(i, j, k, layer)``): segment k is
    id k + 1, a later segment taking the voxels it shares with an earlier one (as 3D
    Slicer's export to a label map does)."""
    ids = np.zeros(data.shape[:3], np.uint8 if len(table) < 256 else np.uint16)
    for k, (layer, value, *_rest) in enumerate(table):
        if layer < data.shape[3]:
            ids[data[..., layer] == value] = k + 1
    return ids


def segment_class_names(
    segments: dict[int, tuple[str, tuple[float, ...]]],
) -> tuple[str, ...] | None:
    """The class names a 3D Slicer segmentation's ``segments`` (:func:`nrrd_segments`)
    give, indexed by label value: 0 ``"background"`` (Slicer's unsegmented voxels),
    values no segment names ``"class N"``; None without segments.

    Parameters
    ----------
    segments : dict
        ``{label value: (name, colour)}``.

    Returns
    -------
    tuple of str or None
    """
    if not segments or min(segments) < 1:
        return None
    names = [segments[i][0] if i in segments else f"class {i}" for i in range(max(segments) + 1)]
    names[0] = "background"
    return tuple(names)
