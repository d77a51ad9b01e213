"""OME-Zarr label images (NGFF 0.4): created empty, filled block by block, then finished.

The layout is NGFF 0.4 on zarr format 2, which napari-ome-zarr, Fiji (MoBIE,
n5-viewer) and ome-zarr-py all read; the ome-zarr library writes the metadata
and ome-zarr-models validates the result after writing (NGFF 0.5 label output
of ome-zarr 0.18 fails strict validation). A label image is either a folder of
its own (its root group is the label image) or ``labels/NAME`` inside the source
image's OME-Zarr (``into_source``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._units import known_unit

#: Pyramid levels at most, each half the previous along y and x (nearest).
MAX_LEVELS = 5
AXES_BY_NDIM = {2: "yx", 3: "zyx", 4: "tzyx"}


def check_available() -> None:
    """Fail fast, before any block runs, when the libraries that write and check
    OME-Zarr are missing.

    Raises
    ------
    MissingExtraError
        Naming the extra to install.
    """
    import importlib.util

    import zarr

    from .._extras import MissingExtraError

    missing = [m for m in ("ome_zarr", "ome_zarr_models") if importlib.util.find_spec(m) is None]
    if missing or int(zarr.__version__.split(".")[0]) < 3:
        raise MissingExtraError(
            "OME-Zarr output", "zarr>=3, ome-zarr and ome-zarr-models", "cluster"
        )


def axes_for(ndim: int, *, channels: bool = False) -> str:
    """NGFF axis names of an array with ``ndim`` axes (``yx``, ``zyx``, ``tzyx``; with
    ``channels``, a leading class axis: ``cyx``, ``czyx``).

    Parameters
    ----------
    ndim : int
    channels : bool
        The first axis holds channels (probabilities: one per class).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For fewer than 2 or more than 4 axes (3 besides channels: NGFF puts time
        before channels).
    """
    if channels:
        if ndim - 1 not in (2, 3):
            raise ValueError(
                f"OME-Zarr probabilities need 2 or 3 axes besides the classes, got {ndim - 1}"
            )
        return "c" + AXES_BY_NDIM[ndim - 1]
    if ndim not in AXES_BY_NDIM:
        raise ValueError(f"OME-Zarr labels need 2 to 4 axes (t, z, y, x), got {ndim}")
    return AXES_BY_NDIM[ndim]


def create_level0(
    path: str | Path,
    shape: Sequence[int],
    *,
    chunks: Sequence[int],
    dtype: Any,
    channels: bool = False,
) -> Any:
    """Create the group at ``path`` with an empty full-resolution array ``0``.

    Parameters
    ----------
    path : path
        A new folder (the caller writes into a temporary one and renames it).
    shape, chunks : sequence of int
    dtype : dtype
    channels : bool
        The first axis holds channels (see :func:`axes_for`).

    Returns
    -------
    zarr.Array
        Filled with 0 where nothing was written.
    """
    import zarr

    axes_for(len(shape), channels=channels)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    return _new_level(group, 0, shape, chunks, dtype)


def _new_level(group: Any, level: int, shape, chunks, dtype) -> Any:
    """An empty resolution level of ``group`` (0 where unwritten, NGFF 0.4 "/" keys)."""
    return group.create_array(
        str(level), shape=tuple(shape), chunks=tuple(chunks), dtype=np.dtype(dtype),
        fill_value=0, chunk_key_encoding={"name": "v2", "separator": "/"},
    )  # fmt: skip


def finish_labels(
    path: str | Path,
    *,
    scale: Sequence[float] | None = None,
    translation: Sequence[float] | None = None,
    units: Sequence[str | None] | None = None,
    class_names: Sequence[str] = (),
    colors: Sequence[Sequence[float]] = (),
) -> int:
    """Add the pyramid and the NGFF metadata to a filled level 0, then validate.

    Parameters
    ----------
    path : path
        The group :func:`create_level0` made.
    scale, translation : sequence of float, optional
        Physical pixel size and origin of level 0 along every axis.
    units : sequence of str or None, optional
        The unit of each axis (None where unknown): the source image's.
    class_names : sequence of str
        Name of each label value (0 first), stored as ``properties``.
    colors : sequence of RGBA
        Colour of each label value, floats in [0, 1], stored as ``colors``.

    Returns
    -------
    int
        Number of levels.

    Raises
    ------
    ValueError
        When the written group does not validate as an NGFF 0.4 label image.
    """
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import add_metadata

    group, levels = _write_multiscales(path, scale, translation, units, channels=False)
    meta = image_label_metadata(class_names, colors)
    add_metadata(group, {"image-label": meta}, fmt=FormatV04())
    _validate(path, "ImageLabel", "label image")
    return levels


def finish_image(
    path: str | Path,
    *,
    scale: Sequence[float] | None = None,
    translation: Sequence[float] | None = None,
    units: Sequence[str | None] | None = None,
) -> int:
    """Add the pyramid and the NGFF metadata to a filled level 0 of an image whose first
    axis holds channels (probabilities), then validate.

    Parameters
    ----------
    path : path
    scale, translation : sequence of float, optional
        Along every axis but the channels.
    units : sequence of str or None, optional
        Along every axis but the channels.

    Returns
    -------
    int
        Number of levels.

    Raises
    ------
    ValueError
        When the written group does not validate as an NGFF 0.4 image.
    """
    scale = None if scale is None else [1.0, *scale]
    translation = None if translation is None else [0.0, *translation]
    units = None if units is None else [None, *units]
    _, levels = _write_multiscales(path, scale, translation, units, channels=True)
    _validate(path, "Image", "image")
    return levels


def _write_multiscales(path, scale, translation, units, *, channels: bool) -> tuple[Any, int]:
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(str(path), mode="r+", zarr_format=2)
    level0: Any = group["0"]
    ndim = level0.ndim
    levels = _write_pyramid(group, level0)
    base = list(scale) if scale is not None else [1.0] * ndim
    datasets = []
    for i in range(levels):
        factor = [1.0] * (ndim - 2) + [2.0**i] * 2
        transforms: list[dict[str, Any]] = [
            {"type": "scale", "scale": [s * f for s, f in zip(base, factor, strict=True)]}
        ]
        if translation is not None and any(translation):
            transforms.append({"type": "translation", "translation": list(translation)})
        datasets.append({"path": str(i), "coordinateTransformations": transforms})
    names = axes_for(ndim, channels=channels)
    axes = [_axis(name, unit) for name, unit in zip(names, units or [None] * ndim, strict=True)]
    write_multiscales_metadata(group, datasets, fmt=FormatV04(), axes=axes)
    return group, levels


def _axis(name: str, unit: str | None) -> dict[str, str]:
    """An NGFF axis object; ``unit`` kept when NGFF lists it for the axis's kind (a
    source's time axis may become ``z`` here: its seconds are then left out)."""
    kind = {"c": "channel", "t": "time"}.get(name, "space")
    axis = {"name": name, "type": kind}
    kept = known_unit(kind, unit)
    if kept is not None:
        axis["unit"] = kept
    return axis


def image_label_metadata(
    class_names: Sequence[str], colors: Sequence[Sequence[float]]
) -> dict[str, Any]:
    """The ``image-label`` block: a colour (0-255 RGBA) and a class name per label value.

    Parameters
    ----------
    class_names : sequence of str
    colors : sequence of RGBA floats in [0, 1]

    Returns
    -------
    dict
    """
    meta: dict[str, Any] = {"version": "0.4"}
    if colors:
        meta["colors"] = [
            {"label-value": i, "rgba": [round(255 * float(c)) for c in rgba]}
            for i, rgba in enumerate(colors)
        ]
    if class_names:
        meta["properties"] = [
            {"label-value": i, "class": str(name)} for i, name in enumerate(class_names)
        ]
    return meta


def validate_labels(path: str | Path) -> None:
    """Check the group at ``path`` against the NGFF 0.4 ``image-label`` schema.

    Parameters
    ----------
    path : path

    Raises
    ------
    ValueError
        Naming what does not validate.
    """
    _validate(path, "ImageLabel", "label image")


def _validate(path, model: str, what: str) -> None:
    import zarr
    from ome_zarr_models import v04

    try:
        getattr(v04, model).from_zarr(zarr.open_group(str(path), mode="r", zarr_format=2))
    except Exception as exc:  # pydantic's ValidationError, zarr's errors
        raise ValueError(f"{path} is not a valid OME-Zarr 0.4 {what}: {exc}") from exc


def _write_pyramid(group: Any, level0: Any) -> int:
    """Levels 1.. by taking every second pixel along y and x (nearest), chunk by chunk."""
    import dask.array as da

    previous, level = level0, 1
    while level < MAX_LEVELS and max(previous.shape[-2:]) > max(level0.chunks[-2:]):
        source = da.from_zarr(previous)[..., ::2, ::2]
        target = _new_level(group, level, source.shape, level0.chunks, level0.dtype)
        da.store(source.rechunk(level0.chunks), target, lock=False)
        previous, level = target, level + 1
    return level


def list_label(labels: str | Path, name: str) -> None:
    """Add ``name`` to the ``labels`` list of an image's ``labels`` group (NGFF 0.4).

    Parameters
    ----------
    labels : path
        The image's ``labels`` group (created when missing).
    name : str
    """
    import zarr

    group = zarr.open_group(str(labels), mode="a", zarr_format=2)
    names: list[Any] = list(group.attrs.get("labels") or [])  # type: ignore[arg-type]
    if name not in names:
        group.attrs["labels"] = [*names, name]


#: The attribute a finished output keeps its request key in.
DONE_KEY = "napari-seg"


def mark_done(path: str | Path, request: str) -> None:
    """Record in the group's attributes which request produced it.

    Parameters
    ----------
    path : path
    request : str
        ``records.request_key`` of the run.
    """
    import zarr

    group = zarr.open_group(str(path), mode="r+", zarr_format=2)
    group.attrs[DONE_KEY] = {"request": request}


def done_request(path: str | Path) -> str | None:
    """The request key a finished output recorded (None for anything else).

    Parameters
    ----------
    path : path

    Returns
    -------
    str or None
    """
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # not a zarr group: not ours
        return None
    mark = attrs.get(DONE_KEY)
    return mark.get("request") if isinstance(mark, dict) else None
