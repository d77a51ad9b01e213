"""The GUI demo opens napari with the sample and every widget docked."""

import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari_seg._widgets.demo import open_demo_viewer  # noqa: E402


def test_demo_docks_model_segment_and_evaluate(qtbot):
    viewer, model = open_demo_viewer(show=False)
    try:
        assert {"Model", "Segment", "Evaluate"} <= set(viewer.window.dock_widgets)
        assert "cells2d ground truth" in viewer.layers
        qtbot.waitUntil(lambda: model.current.model is not None, timeout=60_000)
    finally:
        viewer.close()
