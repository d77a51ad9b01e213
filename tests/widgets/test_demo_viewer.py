"""The GUI demo opens napari with the sample, docks every widget and runs the whole loop."""

import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari_seg._widgets.demo import open_demo_viewer  # noqa: E402


def test_demo_trains_segments_and_evaluates(qtbot):
    viewer, loop = open_demo_viewer(show=False, minutes=0.05)
    try:
        assert {"Model", "Train", "Segment", "Evaluate"} <= set(viewer.window.dock_widgets)
        assert "cells2d ground truth" in viewer.layers
        qtbot.waitUntil(lambda: loop.stage in ("done", "stopped"), timeout=180_000)
        assert loop.stage == "done"
        assert loop.train.curves.history, "no curve was drawn"
        names = [layer.name for layer in viewer.layers]
        assert any(n.startswith("cells2d labels") for n in names)
        assert any(n.endswith("errors") for n in names)
        assert loop.evaluate.table_rows()
        training = loop.model.current.model.card["provenance"]["training"]
        assert training["data"]["pairs"] == ["cells2d top rows / cells2d top rows labels"]
    finally:
        viewer.close()
