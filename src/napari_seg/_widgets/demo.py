"""The demo, GUI part: napari with sample data and the plugin's widgets docked."""

from __future__ import annotations

import napari
from qtpy.QtCore import QTimer

from ..sample_data import CLASS_NAMES
from ._evaluate import evaluate_widget
from ._model import ModelWidget, model_widget
from ._segment import segment_widget


def open_demo_viewer(*, show: bool = True) -> tuple[napari.Viewer, ModelWidget]:
    """A viewer with the 2D sample and the Model, Segment and Evaluate widgets.

    Creates the demo model in a worker.
    """
    viewer = napari.Viewer(title="napari-seg demo", show=show)
    viewer.open_sample("napari-seg", "cells2d")
    widget = model_widget(viewer)
    viewer.window.add_dock_widget(widget, name="Model", area="right")
    widget._classes.value = len(CLASS_NAMES)
    widget._class_names.value = ", ".join(CLASS_NAMES)
    widget.create_model()  # runs in a worker; the window stays responsive
    segment = viewer.window.add_dock_widget(segment_widget(viewer), name="Segment", area="right")
    viewer.window.add_dock_widget(
        evaluate_widget(viewer), name="Evaluate", area="right", tabify=True
    )
    # Evaluate shares Segment's tab group; show Segment first once the window is up.
    QTimer.singleShot(0, segment.raise_)
    return viewer, widget


def run_gui() -> None:
    """Open the demo viewer and run napari's event loop until it is closed."""
    open_demo_viewer()
    napari.run()
