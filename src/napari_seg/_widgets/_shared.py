"""Per-viewer shared state, handed explicitly to each widget; helpers the docks share."""

from __future__ import annotations

import contextlib
import os
import weakref
from concurrent.futures import Future, ThreadPoolExecutor

from qtpy.QtCore import QTimer

from .._generators import Returning
from ..limits import MAX_THREADS
from ._current import CurrentModel

#: CPU cores a dock's job leaves to napari's window.
GUI_CORES = 1
#: From how many cores each kind of dock job leaves ``GUI_CORES`` to the window.
#: Segment and the live refits run in napari's own process, where their torch
#: threads compete with the window's thread for the cores and the GIL: on 2 cores,
#: Segment with 2 threads stalled the window (heartbeat p99 15-24 ms) and with 1 did
#: not (10-11 ms), and both jobs even ran faster with one thread beside the window
#: (Segment 1536x1536, tile 128: 1.2-1.7 s against 1.7-2.8 s; three live refits
#: 1.1-1.4 s against 1.4-1.5 s), though a lone 3072x3072 Segment with tile 512 is
#: 40% slower. Training runs in its own process, where 2 threads on 2 cores kept
#: p99 at 11-14 ms (docs/performance.md, Responsiveness).
_SPARE_FROM_CORES = {"segment": 2, "live": 2, "train": 4}


def job_threads(job: str) -> int:
    """torch CPU threads for a dock's ``job`` (``"segment"``, ``"live"`` or ``"train"``):
    the cores this process may use, less ``GUI_CORES`` from the job's threshold up."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    cores = min(cores, MAX_THREADS)
    return max(1, cores - GUI_CORES) if cores >= _SPARE_FROM_CORES[job] else cores


# One CurrentModel per open viewer, dropped when the viewer is garbage collected.
_per_viewer: dict[int, CurrentModel] = {}


def unwrap(obj):
    """The object behind napari's ``PublicOnlyProxy`` (or ``obj`` itself)."""
    return getattr(obj, "__wrapped__", obj)


def current_model_for(viewer) -> CurrentModel:
    """The :class:`CurrentModel` shared by the widgets docked in ``viewer``.

    napari hands widgets opened from its menus a proxy of the viewer (a new one
    each time), so the key is the real viewer behind it.
    """
    real = unwrap(viewer)
    key = id(real)
    if key not in _per_viewer:
        _per_viewer[key] = CurrentModel()
        weakref.finalize(real, _per_viewer.pop, key, None)
    return _per_viewer[key]


def same_layer(a, b) -> bool:
    """Whether ``a`` and ``b`` are the same layer (through napari's proxies)."""
    return a is not None and b is not None and unwrap(a) is unwrap(b)


def forward_events(events, cancel):
    """Worker body around a core generator: yield its events, return its value.

    Stops at the next event once ``cancel`` (a ``threading.Event``) is set and
    returns None; the core generator is closed in this thread either way, so it
    frees its device memory where it ran.
    """
    run = Returning(events)
    try:
        for event in run:
            yield event
            if cancel.is_set():
                return None
        return run.value
    finally:
        events.close()


# One background thread for slow first-time work (imports), so the docks open at once.
_background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-seg-background")
_devices: Future | None = None
_labels_warm: Future | None = None


def _list_devices():
    from .._device import list_devices

    return list_devices()


def device_list() -> Future:
    """The devices of this machine, listed once per process in a background thread
    (listing imports torch, which takes seconds)."""
    global _devices
    if _devices is None:
        _devices = _background.submit(_list_devices)
    return _devices


def _warm_training():
    from ..training import loop  # noqa: F401  (torch and the loop's modules, for the results)
    from ..training.process import prepare

    # Training runs in a separate process (``training.process``), whose imports
    # (torch._dynamo's among them, 220-270 ms of garbage collection in napari's
    # heap had they run here) take seconds: it is started now, as the dock opens.
    return prepare()


def warm_training() -> Future:
    """Import what training needs and make sure a training process is started, in the
    background thread; the future's result is an event set once that process is ready."""
    return _background.submit(_warm_training)


def _warm_labels() -> None:
    import numpy as np
    from napari.layers import Labels

    # napari's first Labels layer imports pandas (its features table) and
    # scikit-image's colour module (its colormap): about 300 ms of the main thread
    # when a job's result arrives. A throwaway layer model (no Qt, no canvas) here
    # imports them in the background instead.
    Labels(np.zeros((2, 2), np.uint8))
    # Adding the first Labels layer to a canvas builds its line overlays, whose dash
    # patterns vispy computes once per process (an lru_cache, 60-80 ms of numpy
    # loops on the main thread here). Pure numpy, no OpenGL: compute them here.
    # Best effort: a vispy without this module only loses the warm-up.
    try:
        from vispy.visuals.line.dash_atlas import DashAtlas
    except ImportError:  # pragma: no cover - depends on vispy's layout
        return
    DashAtlas()


def warm_labels() -> Future:
    """Import what napari's Labels layers need, once per process, in the background."""
    global _labels_warm
    if _labels_warm is None:
        # pint's application registry (napari's layer units) builds itself on first
        # use, and not thread-safely: a layer made here in the background while the
        # main thread adds one left the main thread with a half-built registry
        # ("'pixel' is not defined in the unit registry"). Build it here, on the main
        # thread (about 170 ms, nothing when a layer already exists).
        import pint

        _ = pint.get_application_registry().pixel
        _labels_warm = _background.submit(_warm_labels)
    return _labels_warm


#: The encoder field's entry for an architecture without encoders.
NO_ENCODER = "(none)"


def encoder_choices(arch: str) -> list[str]:
    """The encoder field's choices for architecture ``arch`` (the Model and Train
    docks'): its encoders, else :data:`NO_ENCODER`."""
    from ..models import get_architecture

    return list(get_architecture(arch).encoders) or [NO_ENCODER]


def device_choices(_widget=None) -> list[tuple[str, str]]:
    """Choices of a device ComboBox: "auto", then every device here once listed.

    Pass this function as the ComboBox's ``choices``, so that napari's
    ``reset_choices`` (on every layer change) keeps the devices.
    """
    future = device_list()
    listed = future.result() if future.done() and future.exception() is None else []
    return [("auto", "auto")] + [(d.description, d.id) for d in listed]


def fill_device_choices(combo) -> None:
    """Refresh a device ComboBox (built with ``choices=device_choices``) once the
    devices are listed.

    The list arrives on the main thread; a combo box closed meanwhile is left
    alone. No Qt object is touched from the listing thread, so closing napari
    while it runs is safe.
    """
    future = device_list()

    def fill() -> None:
        if not future.done():
            QTimer.singleShot(100, fill)
            return
        with contextlib.suppress(RuntimeError):  # the combo box's Qt object is gone
            combo.reset_choices()

    fill()
