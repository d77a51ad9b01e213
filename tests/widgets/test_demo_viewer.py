"""The GUI demo opens napari with the sample, docks every widget and runs the whole loop."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari_seg._widgets._shared import job_threads  # noqa: E402
from napari_seg._widgets.demo import open_demo_viewer  # noqa: E402
from napari_seg.inference import predict  # noqa: E402


def test_demo_trains_segments_and_evaluates(qtbot):
    viewer, loop = open_demo_viewer(show=False, minutes=0.05)
    segmented_with = []
    real_run = loop.segment.run

    def run():
        segmented_with.append(loop.segment.current.model)
        real_run()

    loop.segment.run = run
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
        current = loop.model.current.model
        training = current.card["provenance"]["training"]
        assert training["data"]["pairs"] == ["cells2d top rows / cells2d top rows labels"]
        # Segment used the trained model, not the one training started from.
        assert len(segmented_with) == 1
        assert segmented_with[0] is current
        config = loop.segment.config().with_(threads=job_threads("segment"))
        image = viewer.layers["cells2d"].data
        expected = predict(current, image, config).labels
        np.testing.assert_array_equal(viewer.layers["cells2d labels [unet-classic]"].data, expected)
    finally:
        viewer.close()
