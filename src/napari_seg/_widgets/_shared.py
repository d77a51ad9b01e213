"""Per-viewer shared state, handed explicitly to each widget."""

from __future__ import annotations

import weakref

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
