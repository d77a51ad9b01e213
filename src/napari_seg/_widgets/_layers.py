"""Reading and adding napari layers, and the viewer's position (main thread only)."""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays.named import is_time_label

#: A region read from the view is at most this many pixels on a side (around its centre).
MAX_REGION = 2048


def full_resolution(layer):
    """The layer's array at full resolution (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def level_data(layer, level: int = 0):
    """The layer's array at resolution ``level`` (0: full resolution)."""
    return layer.data[level] if getattr(layer, "multiscale", False) else layer.data


def level_factors(layer, level: int = 0) -> tuple[float, ...]:
    """How many full-resolution pixels one pixel of ``level`` spans, per axis."""
    full, coarse = full_resolution(layer).shape, level_data(layer, level).shape
    return tuple(float(a) / float(b) for a, b in zip(full, coarse, strict=True))


def unit_names(layer, axes=None) -> tuple[str, ...] | None:
    """The layer's unit along each of ``axes`` (default all) by name (``"micrometer"``,
    napari's default ``"pixel"``), or None for a napari without layer units."""
    units = getattr(layer, "units", None)
    if units is None:
        return None
    return tuple(str(units[a]) for a in (range(len(units)) if axes is None else axes))


def layer_spacing(layer, axes) -> tuple[tuple[float, ...] | None, str | None, str | None]:
    """The layer's voxel size along ``axes``, the length unit it is in
    (``arrays.spacing.spacing_and_unit`` with the layer's ``units``) and where it
    came from when not from the layer: see :func:`file_scale`.

    Returns
    -------
    spacing : tuple of float or None
    unit : str or None
    source : str or None
        The file's name when the size is the one its header declares, else None.
    """
    from ..arrays.spacing import spacing_and_unit

    spacing, unit = spacing_and_unit(layer.scale, axes, unit_names(layer))
    declared = None if spacing is not None else file_scale(layer)
    if declared is None:
        return spacing, unit, None
    scale, units, name = declared
    spacing, unit = spacing_and_unit(scale, axes, units)
    return spacing, unit, None if spacing is None else name


def file_scale(layer) -> tuple[tuple[float, ...], tuple[str | None, ...], str] | None:
    """The pixel size the layer's TIFF declares when the layer shows none.

    napari's own TIFF reader drops an ImageJ or OME-TIFF calibration: a confocal
    stack opens at a scale of 1 along every axis, which says nothing
    (``arrays.spacing.spacing_from_scale``), while ``napari-seg predict`` on the same
    file reads its voxel size. When the layer's scale is napari's default and the
    layer still holds its file's pixels (same shape), the file's scale, units and
    name; else None.
    """
    from .._headers import tiff_header

    if getattr(layer, "multiscale", False) or any(float(s) != 1.0 for s in layer.scale):
        return None
    path = getattr(getattr(layer, "source", None), "path", None)
    if not path:
        return None
    header = tiff_header(path)  # None for another format; a header it cannot read: no size
    if header is None or header.calibration is None:
        return None
    if header.shape != tuple(np.shape(layer.data)):
        return None
    scale, _translation, units = header.calibration.transform
    return scale, units, Path(path).name


def is_time_axis(layer, axis: int) -> bool:
    """Whether axis ``axis`` of ``layer`` is time: napari's ``axis_labels`` say so
    (napari-ome-zarr's "t"), or the layer's TIFF names it T (a Fiji or OME-TIFF
    time-lapse, which napari's own reader opens with axes "axis -3", ...) while the
    layer still holds that file's pixels (same shape).
    """
    from .._headers import file_axes, tiff_header

    labels = getattr(layer, "axis_labels", None)
    if labels is not None and is_time_label(labels[axis]):
        return True
    path = getattr(getattr(layer, "source", None), "path", None)
    header = tiff_header(path) if path else None
    if header is None or header.shape != tuple(full_resolution(layer).shape):
        return False
    letters = file_axes(path, header, layer.ndim)
    return letters is not None and letters[axis] == "T"


def file_spacing_note(name: str, source: str, spacing, unit: str | None, use: str) -> str:
    """The note that the voxel size of layer ``name`` comes from its file ``source``
    (:func:`file_scale`), and what ``use`` is made of it."""
    from .._units import format_spacing

    return (
        f"{name} is shown at napari's default scale of 1, but {source} declares a voxel "
        f"size of {format_spacing(spacing, unit)}: {use} at that size (set the layer's "
        "scale, or open the file with a reader that keeps it, to see it in napari too)"
    )


def units_kwargs(units) -> dict:
    """``{"units": units}`` for a napari layer constructor, or nothing when they are
    unknown (None)."""
    return {} if units is None else {"units": tuple(units)}


def world_to_data(viewer, layer, point) -> np.ndarray:
    """``layer.world_to_data(point)`` for a ``point`` of the viewer (``dims.point``).

    When layers or axes have different units, napari expresses the viewer's world
    in one unit per axis (a z of 2 mm is 2000 in a world of micrometres), and its
    own slicing converts; ``Layer.world_to_data`` does not (napari 0.9). The point
    is brought to the layer's units first.
    """
    world = getattr(viewer.dims, "units", None)
    own = getattr(layer, "units", None)
    point = [float(v) for v in point]
    if world is not None and own is not None:
        offset = len(point) - len(own)
        for i, unit in enumerate(own):
            j = i + offset
            if 0 <= j < len(world) and str(world[j]) != str(unit):
                try:
                    point[j] *= float((1 * world[j]).to(unit).magnitude)
                except (TypeError, AttributeError, ValueError):  # pint: not convertible
                    continue  # (pixels and micrometres, say): the value as given
    return np.asarray(layer.world_to_data(point))


def viewer_position(viewer, layer) -> tuple[list[int], list[int]]:
    """The layer axes shown in the canvas and the current index along every layer axis.

    Indices are clamped to the layer's shape, so a viewer whose other layers are
    larger still gives a valid position in this one.
    """
    dims = viewer.dims
    offset = dims.ndim - layer.ndim
    displayed = [d - offset for d in dims.displayed if d >= offset]
    shape = full_resolution(layer).shape
    step = [int(np.round(v)) for v in world_to_data(viewer, layer, dims.point)]
    step = [min(max(s, 0), n - 1) for s, n in zip(step, shape, strict=False)]
    return displayed, step


def visible_region(viewer, layer, spatial: list[int]) -> tuple[slice, slice]:
    """Rows and columns of ``layer`` on screen (at most ``MAX_REGION`` on a side).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    layer : napari layer
    spatial : list of int
        The layer's two axes of the plane, in order.

    Returns
    -------
    tuple of slice
    """
    shape = full_resolution(layer).shape
    dims = viewer.dims
    offset = dims.ndim - layer.ndim
    world = [d + offset for d in spatial]
    height, width = _canvas_size(viewer)
    camera = viewer_camera(viewer)
    zoom, center = camera.zoom, camera.center[-2:]
    if not height or not width or not zoom or list(dims.displayed) != world:
        return tuple(slice(0, min(shape[d], MAX_REGION)) for d in spatial)  # type: ignore
    corners = []  # all four: under a rotation two opposite ones do not bound the view
    for row in (-1, 1):
        for col in (-1, 1):
            point = list(dims.point)
            point[world[0]] = center[0] + row * height / 2 / zoom
            point[world[1]] = center[1] + col * width / 2 / zoom
            corners.append(world_to_data(viewer, layer, point))
    out = []
    for d in spatial:
        low = min(c[d] for c in corners)
        high = max(c[d] for c in corners)
        mid, half = (low + high) / 2, min((high - low) / 2, MAX_REGION / 2)
        start = max(0, math.floor(mid - half))
        stop = min(shape[d], math.ceil(mid + half) + 1)
        out.append(slice(start, max(start + 1, stop)) if start < shape[d] else slice(0, 1))
    return out[0], out[1]


def viewer_camera(viewer):
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9 (which deprecated
    ``viewer.camera``), ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def history_depth(layer) -> tuple[int, int]:
    """The depths of a Labels layer's undo and redo histories, (0, 0) for None: napari's
    undo and redo emit only ``set_data``, as every scroll does, and a change of these
    depths tells them apart. napari keeps the histories in private attributes; without
    them, (0, 0) always (undo is then seen at the next stroke).

    Parameters
    ----------
    layer : napari.layers.Labels or None

    Returns
    -------
    tuple of int
    """
    return (
        len(getattr(layer, "_undo_history", ()) or ()),
        len(getattr(layer, "_redo_history", ()) or ()),
    )


def _canvas_size(viewer) -> tuple[int, int]:
    """The canvas's height and width in screen pixels: ``viewer.canvas`` from napari
    0.9, the Qt viewer's canvas before (a private attribute); (0, 0) when unknown."""
    canvas = getattr(viewer, "canvas", None)
    if canvas is None:
        canvas = getattr(
            getattr(getattr(viewer, "window", None), "_qt_viewer", None), "canvas", None
        )
    size = getattr(canvas, "size", None)
    return (int(size[0]), int(size[1])) if size is not None and len(size) == 2 else (0, 0)


def add_labels(viewer, data, *, window=None, **kwargs):
    """``viewer.add_labels(data, **kwargs)`` in three turns of Qt's event loop.

    Adding a Labels layer builds its controls, its vispy visual and the vispy
    visuals of its painting overlays (polygon and brush outline), and the window's
    next repaint draws them, the layer list and the canvas with the layer's texture
    (about 45 ms for a 3072x3072 result under software OpenGL, where every repaint
    composites the whole window). In one turn that is one stall of 85-105 ms (up to
    135 ms on a busy machine). The layer is added hidden, with the window's repaints
    held and its painting overlays not yet visible (napari builds an overlay's
    visual only once it is visible); it is selected on the next turn and shown on
    the one after, where one repaint draws everything. The window answers in
    between. Each painting overlay is made visible when the user first picks its
    tool (napari enables it; :func:`show_when_enabled`), so a result nobody paints
    on never builds them (25-45 ms at the end of a job, measured).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    data : array-like
    window : QWidget, optional
        A widget in the viewer's window (the calling dock's): its top-level
        window's repaints are held until the layer is shown. Without it the
        window repaints on every turn.
    **kwargs
        As for ``viewer.add_labels``.

    Returns
    -------
    napari.layers.Labels
    """
    from napari.layers import Labels
    from qtpy.QtCore import QTimer

    visible = kwargs.pop("visible", True)
    layer = Labels(data, visible=False, **kwargs)
    # napari's overlays of this layer (a private dict; none on a napari without it)
    overlays = [o for o in getattr(layer, "_overlays", {}).values() if o.visible]
    for overlay in overlays:
        overlay.visible = False
    top = window.window() if window is not None else None
    if top is not None and not top.updatesEnabled():
        top = None  # held by someone else: theirs to release
    if top is not None:
        top.setUpdatesEnabled(False)

    # napari selects a layer as it is inserted (its controls come to the front):
    # done on the next turn instead. The flag is private: it is set on the layer list
    # behind napari's proxy, and a napari without it selects the layer at once.
    layers = getattr(viewer, "__wrapped__", viewer).layers
    select_later = getattr(layers, "_activate_on_insert", None) is True
    # The turns hold weak references: a viewer closed meanwhile is not kept alive.
    pending = _Pending(weakref.ref(layers), weakref.ref(layer), overlays, visible,
                       None if top is None else weakref.ref(top), select_later)  # fmt: skip
    if select_later:
        layers._activate_on_insert = False
    try:
        layers.append(layer)
    finally:
        if select_later:
            layers._activate_on_insert = True
        # a lambda: PyQt holds a bound method's object only weakly
        QTimer.singleShot(1, lambda: pending.overlays_and_selection())
    return layer


def show_when_enabled(overlay) -> None:
    """Make a hidden napari overlay visible once it is enabled (a Labels layer's polygon
    overlay when the polygon tool is picked, its brush overlay with the brush), and at
    once when it already is, or when it has no ``enabled`` event to wait for.

    Parameters
    ----------
    overlay : napari overlay
    """
    event = getattr(getattr(overlay, "events", None), "enabled", None)
    if event is None or getattr(overlay, "enabled", True):
        overlay.visible = True
        return

    def _on_enabled(change) -> None:  # napari passes an event whose value is the new one
        if getattr(change, "value", change):
            overlay.visible = True  # napari builds its visual now, in the user's click

    event.connect(_on_enabled)


@dataclass
class _Pending:
    """The turns of :func:`add_labels` after the insert's."""

    layers: Callable[[], Any]
    layer: Callable[[], Any]
    overlays: list
    visible: bool
    top: Callable[[], Any] | None
    select: bool

    def overlays_and_selection(self) -> None:
        """Second turn: the layer's controls in front; its painting overlays are shown
        when their tool is picked (at once on a napari whose overlays cannot say)."""
        from qtpy.QtCore import QTimer

        layers, layer = self.layers(), self.layer()
        try:
            for overlay in self.overlays if layer is not None else ():
                show_when_enabled(overlay)  # also on a layer removed meanwhile, for its return
            if self.select and layers is not None and layer is not None and layer in layers:
                layers.selection.active = layer
        finally:
            QTimer.singleShot(1, lambda: self.show())

    def show(self) -> None:
        """Third turn: the layer shown and the window repainted, in one repaint."""
        layers, layer = self.layers(), self.layer()
        top = None if self.top is None else self.top()
        try:
            if self.visible and layers is not None and layer is not None and layer in layers:
                layer.visible = True
        finally:
            if top is not None:
                with contextlib.suppress(RuntimeError):  # the window was closed meanwhile
                    top.setUpdatesEnabled(True)
