"""The demo, GUI part: napari with sample data and the plugin's widgets docked."""

from __future__ import annotations

import napari

from .model_widget import model_widget


def open_demo_viewer(*, show: bool = True) -> napari.Viewer:
    """A viewer with the 2D sample (image + ground truth) and the Model widget docked."""
    viewer = napari.Viewer(title="napari-seg demo", show=show)
    viewer.open_sample("napari-seg", "cells2d")
    widget = model_widget(viewer)
    viewer.window.add_dock_widget(widget, name="Model", area="right")
    return viewer


def run_gui() -> None:
    """Open the demo viewer and run napari's event loop until it is closed."""
    open_demo_viewer()
    napari.run()
