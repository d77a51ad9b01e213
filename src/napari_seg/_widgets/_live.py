"""Train dock, live update: every stroke refits the pixel classifier and refreshes
the prediction of the region on screen (as ilastik's "live update" does).

Strokes are read on the main thread when the brush stops (debounced); the fit
and the prediction run in a worker (:class:`~napari_seg.training.live.LiveClassifier`,
which keeps the image's features between refits); the prediction and
uncertainty layers are written on the main thread. Strokes painted while a
refit runs start one more refit when it ends, so the last stroke always counts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QTimer

from ..arrays.ids import painted_ids
from ..limits import one_line
from ._dock import wrapping_label
from ._layers import (
    add_labels,
    full_resolution,
    history_depth,
    viewer_camera,
    viewer_position,
    visible_region,
)
from ._place import Place, placed_apart

if TYPE_CHECKING:
    import napari

    from ..training.config import TrainingConfig
    from ..training.live import LiveClassifier, LivePrediction
    from ._train_classes import StrokeClasses

#: Quiet time after the last paint event before a refit starts.
DEBOUNCE_MS = 300


def _live_job(session: LiveClassifier, strokes: np.ndarray | None, plane: int, region):
    if strokes is None:  # the view moved, the strokes did not: the last fit predicts it
        return session.predict(plane, region)
    return session.update(strokes, plane, region)


class LivePanel:
    """The "live update" switch of the Train dock and what it runs.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    image, labels : callable
        Return the dock's Image layer and strokes (Labels) layer, or None.
    classes : StrokeClasses
        Names, colours and background of the strokes' classes.
    config : callable
        ``config(image_layer)``: the :class:`TrainingConfig` of the live
        classifier (device, threads, axes and options of the dock).
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        image: Callable[[], Any],
        labels: Callable[[], Any],
        classes: StrokeClasses,
        config: Callable[[Any], TrainingConfig],
    ) -> None:
        self._viewer = viewer
        self._image, self._labels, self._classes, self._config = image, labels, classes, config
        self.toggle = CheckBox(text="live update (pixel classifier, refits on every stroke)")
        self.status = wrapping_label(lines=2)
        self.widgets = [self.toggle, self.status]
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refit)
        self._session: LiveClassifier | None = None
        self._session_key: tuple | None = None
        self._worker: Any = None
        self._pending = False
        self._refit = True  # the strokes or layers may have changed since the last fit
        self._shown: tuple | None = None  # the session and view of the last prediction
        self._layer: Any = None  # the strokes layer whose events are connected
        self._last_stroke: tuple[int, ...] | None = None  # where it was painted last
        self._history = (0, 0)  # the strokes layer's undo and redo depths at the last change
        self._told: tuple | None = None  # the layers whose placement note was shown
        self.refits = 0  # refits shown so far
        self._closed = False
        self.toggle.changed.connect(self._on_toggle)

    # -- switching -------------------------------------------------------------------
    def _on_toggle(self, on: bool) -> None:
        self._disconnect()
        if on:
            self.watch()
        else:
            self._timer.stop()

    def watch(self, *_args) -> None:
        """Follow the paint events of the dock's current strokes layer, and refit for
        its strokes."""
        self._disconnect()
        layer = self._labels()
        if layer is None or not self.toggle.value:
            return
        layer.events.paint.connect(self._painted)
        layer.events.data.connect(self._replaced)
        # napari's undo and redo emit neither: only the refresh that follows them
        # (which scrolling emits too: told apart by the undo history)
        layer.events.set_data.connect(self._undone)
        for event in self._view_events():
            event.connect(self._navigated)
        self._layer = layer
        self._last_stroke = None
        self.schedule()

    def _view_events(self) -> list:
        """The viewer's events that move the view: the sliders, panning, zooming."""
        camera = viewer_camera(self._viewer)
        return [self._viewer.dims.events.current_step, camera.events.center, camera.events.zoom]

    def _disconnect(self) -> None:
        if self._layer is not None:
            self._layer.events.paint.disconnect(self._painted)
            self._layer.events.data.disconnect(self._replaced)
            self._layer.events.set_data.disconnect(self._undone)
            for event in self._view_events():
                event.disconnect(self._navigated)
            self._layer = None

    def _painted(self, event=None) -> None:
        """A stroke ended: note where (the plane a 3D view predicts) and refit."""
        where = _stroke_position(getattr(event, "value", None))
        if where is not None and self._layer is not None and len(where) == self._layer.ndim:
            self._last_stroke = where
        self.schedule()

    def _replaced(self, *_args) -> None:
        self._last_stroke = None
        self.schedule()

    def _undone(self, *_args) -> None:
        """A refresh of the strokes layer: a refit after an undo or redo (its history
        moved), nothing for a scroll (the view events predict what came on screen)."""
        if history_depth(self._layer) != self._history:
            self.schedule()

    def schedule(self, *_args) -> None:
        """Refit once the brush has been still for ``DEBOUNCE_MS``."""
        self._refit = True
        self._history = history_depth(self._layer)
        if self.toggle.value:
            self._timer.start()

    def _navigated(self, *_args) -> None:
        """The view moved: predict what is on screen once it rests (no refit)."""
        if self.toggle.value:
            self._timer.start()

    def close(self) -> None:
        """Stop following strokes (the dock is closing); a refit under way is dropped."""
        self._closed = True
        with contextlib.suppress(RuntimeError):  # Qt may have deleted the timer already
            self._timer.stop()
        self._disconnect()
        self._pending = False

    # -- one refit -------------------------------------------------------------------
    def refit(self) -> None:
        """Read the strokes and the view, and fit + predict in a worker."""
        if self._worker is not None:
            self._pending = True
            return
        image, labels = self._image(), self._labels()
        if image is None or labels is None:
            self.status.value = "live: choose the image and the strokes (Labels) layer"
            return
        moved = not self._refit  # only the view moved: the last fit predicts it
        if moved and (self._session is None or self._session.model is None):
            return  # nothing fitted yet
        strokes: np.ndarray | None = None
        if not moved:
            strokes = np.array(full_resolution(labels))  # a copy: painting goes on meanwhile
            if len(painted_ids(strokes)) < 2:
                self.status.value = "live: paint strokes of at least two classes"
                return
        try:
            session = self._session_for(image, full_resolution(labels).shape)
        except (ValueError, TypeError) as exc:
            if not moved:  # said once per refit, not again at every scroll or pan
                show_error(f"napari-seg live update: {one_line(exc)}")
            return
        if moved and session.model is None:
            return  # the dock's settings changed: the next stroke fits for them
        self._tell_placement(image, labels, session)
        plane, region, index = self._where(labels, session)
        if strokes is None and self._shown == (session, index):
            return  # the view is where it was (a 3D view turned)
        self._refit = False
        # connected at creation: a worker made without an "errored" slot re-raises its
        # error in Qt's event loop (napari's traceback dialog; PyQt6 aborts without
        # napari's exception hook)
        connect = {
            "returned": lambda result: self._show(result, index, (image, labels), session),
            "errored": self._failed,
            "finished": self._done,
        }
        worker = create_worker(
            _live_job, session, strokes, plane, region, _connect=connect, _start_thread=False
        )
        self._worker = worker
        self.status.value = "live: predicting the view..." if moved else "live: fitting..."
        worker.start()

    def _session_for(self, image, shape) -> LiveClassifier:
        from ..training.live import LiveClassifier

        config = self._config(image)
        key = (id(image), id(full_resolution(image)), shape, config)
        if self._session is None or self._session_key != key:
            self._session = LiveClassifier(full_resolution(image), config, names=[image.name])
            self._session_key = key
        return self._session

    def _tell_placement(self, image, labels, session: LiveClassifier) -> None:
        """Warn, once for these two layers, when the strokes lie elsewhere than the image."""
        key = (id(image), id(labels))
        if self._told == key:
            return
        self._told = key
        channel_axis = session.config.channel_axis
        spatial = [a for a in range(image.ndim) if a != channel_axis]
        note = placed_apart(image, labels, "paired", spatial)
        if note:
            show_warning(f"napari-seg live update: {note}")

    def _where(self, labels, session: LiveClassifier) -> tuple[int, tuple, tuple]:
        """Plane number, region of the plane, and the layer index it is written to.

        The plane is the one on screen; in a 3D view, where the stack axis is shown
        too, it is the plane painted last (the dims slider's position is not on
        screen there).
        """
        from ..arrays.axes import normalise_axes, output_axes

        displayed, step = viewer_position(self._viewer, labels)
        axis = session.config.axis
        stacked = () if axis is None else normalise_axes(axis, len(session.image.shape), "axis")
        axes = output_axes(stacked, session.config.channel_axis)  # the strokes have none
        last = self._last_stroke if labels is self._layer else None
        if last is not None and any(a in displayed for a in axes):
            step = [last[a] if a in displayed else s for a, s in enumerate(step)]
        shape = full_resolution(labels).shape
        # planes are numbered in C order over the stack axes (a TZYX stack: t * Z + z)
        plane = int(np.ravel_multi_index([step[a] for a in axes], [shape[a] for a in axes]))
        spatial = [d for d in range(labels.ndim) if d not in axes][-2:]
        region = visible_region(self._viewer, labels, spatial)
        index: list[Any] = list(step)
        for d, r in zip(spatial, region, strict=True):
            index[d] = r
        return plane, region, tuple(index)

    def _done(self) -> None:
        self._worker = None
        if self._closed:
            return
        if self._pending and self.toggle.value:
            self._pending = False
            self.refit()

    def _failed(self, exc: BaseException) -> None:
        if self._closed:
            return
        self.status.value = "live: the last refit failed"
        self._refit = True  # the next event tries again
        show_error(f"napari-seg live update: {one_line(exc)}")

    # -- showing (main thread) ---------------------------------------------------------
    def show_labels(self, values: np.ndarray, classes: int, index: tuple = (...,)) -> None:
        """Write ``values`` at ``index`` of the live prediction layer (created as needed)."""
        labels = self._labels()
        if labels is None:
            return
        shape = full_resolution(labels).shape
        kwargs = self._classes.prediction_kwargs(f"{labels.name} live", classes)
        dtype = np.uint8 if classes <= 256 else np.uint16
        pred = _own_layer(self, kwargs["name"], shape, dtype, labels, "labels")
        pred.data[index] = values
        pred.colormap, pred.features = kwargs["colormap"], kwargs["features"]
        pred.metadata = {**pred.metadata, **kwargs["metadata"]}
        pred.refresh()

    def _show(
        self, result: LivePrediction, index: tuple, layers: tuple, session: LiveClassifier
    ) -> None:
        """Write ``result`` at ``index``, unless the dock's ``layers`` (image, strokes)
        changed while it was fitted: then fit again for the new ones."""
        if self._closed:
            return
        labels = self._labels()
        if labels is None or not self.toggle.value:
            return
        if layers[0] is not self._image() or layers[1] is not labels:
            self._pending = self._refit = True  # _done refits for the layers chosen now
            return
        classes = result.model.spec.num_classes
        shape = full_resolution(labels).shape
        self.show_labels(result.labels, classes, index)
        name = f"{labels.name} uncertainty"
        unsure = _own_layer(self, name, shape, np.uint8, labels, "image")
        top = 1.0 - 1.0 / max(2, classes - 1)  # the most a trained class mix can reach
        unsure.data[index] = np.clip(result.uncertainty / top * 255, 0, 255).astype(np.uint8)
        unsure.refresh()
        self._shown = (session, index)
        if result.fit_seconds:
            self.refits += 1
        fitted = (
            f"refit {self.refits} in {result.fit_seconds:.2f} s, " if result.fit_seconds else ""
        )
        self.status.value = f"live: {fitted}predicted the view in {result.predict_seconds:.2f} s"


def _stroke_position(atoms) -> tuple[int, ...] | None:
    """The middle of the last change of a Labels ``paint`` event (its value: the
    undo item, a list of napari's history atoms), per axis; None when unknown.

    An atom is a bounding box (``slice_key``, napari >= 0.9's brush, fill and
    polygon) or ``(indices, old values, new values)`` (``data_setitem``).
    """
    for atom in reversed(list(atoms or ())):
        key = getattr(atom, "slice_key", None)
        if key is not None:
            if all(isinstance(k, slice) and k.stop is not None for k in key):
                return tuple(((k.start or 0) + k.stop - 1) // 2 for k in key)
            continue
        try:
            indices = atom[0]
            return tuple(int(np.median(np.asarray(i))) for i in indices)
        except (TypeError, IndexError, ValueError):
            continue
    return None


def _own_layer(panel: LivePanel, name: str, shape, dtype, like, kind: str):
    """The plugin's layer ``name`` with ``shape`` in the panel's viewer, created (placed
    as ``like``) when missing or of another shape."""
    viewer = panel._viewer
    layers = viewer.layers
    if name in layers and layers[name].data.shape == tuple(shape):
        return layers[name]
    if name in layers:
        layers.remove(name)
    place = Place.of(like).kwargs()
    data = np.zeros(shape, dtype)
    if kind == "labels":
        return add_labels(viewer, data, window=panel.toggle.native, name=name, opacity=0.6, **place)
    layer = viewer.add_image(
        data, name=name, colormap="magma", opacity=0.5, contrast_limits=(0, 255), **place
    )
    layer.blending = "additive"
    layer.visible = False  # one click shows where to paint next
    return layer
