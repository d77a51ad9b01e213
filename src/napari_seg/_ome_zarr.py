"""OME-Zarr images read: their resolution levels and the scale, translation and units of
their full-resolution level (NGFF 0.4 and 0.5), every field checked."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ._units import axis_units, common_length_unit
from .arrays.named import is_time_label
from .limits import MAX_LEVELS, brief


def _multiscales(group) -> Any:
    """The ``multiscales`` metadata of NGFF 0.4 (at the top) or 0.5 (under ``ome``)."""
    attrs = dict(group.attrs)
    ome = attrs.get("ome")
    return attrs.get("multiscales") or (ome.get("multiscales") if isinstance(ome, dict) else None)


def ome_zarr_datasets(group) -> list[str]:
    """Paths of an OME-Zarr image's resolution levels, finest first ([] if not one).

    Parameters
    ----------
    group : zarr.Group
        NGFF 0.4 (``multiscales`` in its attributes) or 0.5 (under ``ome``).

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        When the metadata is malformed: ``multiscales`` not a list of objects, no
        ``datasets``, a dataset without a ``path``, or a path that leaves the group
        (absolute, ``..``) or names no array in it.
    """
    multiscales = _multiscales(group)
    if not multiscales:
        return []
    bad = "the OME-Zarr metadata is malformed:"
    if not isinstance(multiscales, list) or not isinstance(multiscales[0], dict):
        raise ValueError(f"{bad} 'multiscales' is not a list of objects")
    datasets = multiscales[0].get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise ValueError(f"{bad} 'multiscales[0].datasets' is not a non-empty list")
    paths = []
    for i, dataset in enumerate(datasets[: MAX_LEVELS + 1]):
        path = dataset.get("path") if isinstance(dataset, dict) else None
        where = f"'multiscales[0].datasets[{i}].path'"
        if not isinstance(path, str) or not path:
            raise ValueError(f"{bad} {where} is missing or not a string")
        if path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"{bad} {where} ({brief(path)}) leaves the group")
        paths.append(path)
    if len(paths) > MAX_LEVELS:
        raise ValueError(f"{bad} more than {MAX_LEVELS} resolution levels")
    level0 = group.get(paths[0])
    if level0 is None or not hasattr(level0, "shape"):
        raise ValueError(f"{bad} its full-resolution level {brief(paths[0])} is not an array")
    return paths


def ome_zarr_transform(
    group,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[str | None, ...]]:
    """Scale, translation and unit of an OME-Zarr image's full-resolution level, per axis.

    The level's own ``coordinateTransformations`` come first, then the image's
    (``multiscales[0]``), as NGFF 0.4 and 0.5 define them: a voxel at index ``i``
    lies at ``scale * i + translation``. When the spatial axes declare different
    length units (z in micrometres, x in nanometres), their scale and translation
    are expressed in one: the last spatial axis's (``_units.common_length_unit``),
    so that a voxel size taken from them is one size.

    Parameters
    ----------
    group : zarr.Group
        An OME-Zarr image (:func:`ome_zarr_datasets` finds its levels).

    Returns
    -------
    scale, translation : tuple of float
        One value per axis of the full-resolution array.
    units : tuple of str or None
        The unit of each axis's values (None where none is declared, or one NGFF
        does not list).

    Raises
    ------
    ValueError
        When a transformation is malformed: not a list of objects, an unknown type,
        values that are not one finite number per axis, or a scale that is not
        positive.
    """
    paths = ome_zarr_datasets(group)
    ndim = len(group[paths[0]].shape)
    image = _multiscales(group)[0]  # a list of objects: checked above
    scale, translation = [1.0] * ndim, [0.0] * ndim
    for where, owner in (("datasets[0]", image["datasets"][0]), ("", image)):
        field = f"'multiscales[0].{where + '.' if where else ''}coordinateTransformations'"
        for kind, values in _transformations(owner.get("coordinateTransformations", []), field,
                                             ndim):  # fmt: skip
            if kind == "scale":
                scale = [s * v for s, v in zip(scale, values, strict=True)]
                translation = [t * v for t, v in zip(translation, values, strict=True)]
            else:
                translation = [t + v for t, v in zip(translation, values, strict=True)]
    declared = axis_units(image.get("axes"), ndim) or (("", None),) * ndim
    factors, units = common_length_unit(declared)
    scale = [s * f for s, f in zip(scale, factors, strict=True)]
    translation = [t * f for t, f in zip(translation, factors, strict=True)]
    if not all(math.isfinite(v) and v > 0 for v in scale) or not all(
        math.isfinite(v) for v in translation
    ):
        raise ValueError(
            "the OME-Zarr metadata's scale and translation are not finite (or the scale "
            f"not positive) once its spatial axes are in one unit ({brief(units[-1])})"
        )
    return tuple(scale), tuple(translation), units


def read_ome_zarr_transform(
    path: str | os.PathLike,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[str | None, ...]] | None:
    """:func:`ome_zarr_transform` of the image at ``path``; None when it is not an
    OME-Zarr image (a plain zarr array, a TIFF...).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    tuple or None
    """
    node = _open_image(path)
    return None if node is None else ome_zarr_transform(node)


def _open_image(path: str | os.PathLike) -> Any:
    """The OME-Zarr image (a zarr group with levels) at ``path``, opened to read, or
    None for anything else (a plain zarr array, a TIFF...)."""
    path = Path(path)
    if not path.is_dir() or not is_zarr_path(path):
        return None
    import zarr

    node = zarr.open(str(path), mode="r")
    if not isinstance(node, zarr.Group) or not ome_zarr_datasets(node):
        return None
    return node


def read_ome_zarr_axis_letters(path: str | os.PathLike) -> str | None:
    """The axes of the OME-Zarr image at ``path`` as a TIFF names them (``"TCZYX"``):
    ``T`` for a time axis, ``C`` for a channel axis, a space axis by its name (``Z``,
    ``Y``, ``X``), ``Q`` for any other; None when it is not an OME-Zarr image or its
    axes cannot be read.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str or None
    """
    node = _open_image(path)
    return None if node is None else _axis_letters(node)


def read_ome_zarr_layout(path: str | os.PathLike) -> tuple[str | None, Any] | None:
    """The axis letters (:func:`read_ome_zarr_axis_letters`) and, when they read, the
    transform (:func:`read_ome_zarr_transform`) of the OME-Zarr image at ``path``, from
    one opening of its metadata; None when it is not an OME-Zarr image.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    (str or None, tuple or None) or None
    """
    node = _open_image(path)
    if node is None:
        return None
    letters = _axis_letters(node)
    return letters, None if letters is None else ome_zarr_transform(node)


def _axis_letters(node) -> str | None:
    """:func:`read_ome_zarr_axis_letters` of an opened image."""
    axes = _multiscales(node)[0].get("axes")
    level0 = node.get(ome_zarr_datasets(node)[0])
    if not isinstance(axes, list) or len(axes) != len(getattr(level0, "shape", ())):
        return None
    letters = []
    for axis in axes:  # NGFF 0.4+: objects; 0.3: names only
        name = axis.get("name") if isinstance(axis, dict) else axis
        kind = axis.get("type") if isinstance(axis, dict) else None
        name = str(name).lower() if isinstance(name, str) else ""
        if kind == "time" or is_time_label(name):
            letters.append("T")
        elif kind == "channel" or name in ("c", "channel"):
            letters.append("C")
        elif name in ("z", "y", "x"):
            letters.append(name.upper())
        else:
            letters.append("Q")
    return "".join(letters)


def _transformations(items, field: str, ndim: int) -> list[tuple[str, list[float]]]:
    bad = f"the OME-Zarr metadata is malformed: {field}"
    if not isinstance(items, list) or len(items) > 8:
        raise ValueError(f"{bad} is not a short list")
    out = []
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "identity":
            continue
        if kind not in ("scale", "translation"):
            raise ValueError(f"{bad} holds a transformation of type {brief(kind)}")
        values = item.get(kind)
        ok = isinstance(values, list) and len(values) == ndim
        ok = ok and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        )
        if not ok:
            raise ValueError(f"{bad}: its {kind} is not {ndim} finite numbers")
        if kind == "scale" and not all(v > 0 for v in values):
            raise ValueError(f"{bad}: its scale is not positive")
        out.append((kind, [float(v) for v in values]))
    return out


def is_zarr_path(path: Path) -> bool:
    """Whether the folder ``path`` is a zarr array or group (v2 or v3)."""
    return any((path / name).exists() for name in (".zarray", "zarr.json", ".zgroup"))
