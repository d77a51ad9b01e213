"""Per-viewer shared state, handed explicitly to each widget."""

from __future__ import annotations

import weakref
from functools import partial

from napari.qt.threading import create_worker

from .._generators import Returning
from ..models.current import CurrentModel

# One CurrentModel per open viewer, dropped when the viewer is garbage collected.
_per_viewer: dict[int, CurrentModel] = {}


def current_model_for(viewer) -> CurrentModel:
    """The :class:`CurrentModel` shared by the widgets docked in ``viewer``."""
    key = id(viewer)
    if key not in _per_viewer:
        _per_viewer[key] = CurrentModel()
        weakref.finalize(viewer, _per_viewer.pop, key, None)
    return _per_viewer[key]


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


def _list_devices():
    from .._device import list_devices

    return list_devices()


def fill_device_choices(combo) -> None:
    """Fill a device ComboBox with "auto" and every device here (name and memory).

    Listing devices imports torch, which takes seconds, so it runs in a worker
    and the choices arrive on the main thread.
    """
    fill = partial(_set_device_choices, combo)
    create_worker(_list_devices, _connect={"returned": fill}, _ignore_errors=True)


def _set_device_choices(combo, devices) -> None:
    combo.choices = [("auto", "auto")] + [(d.description, d.id) for d in devices]
