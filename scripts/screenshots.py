"""Regenerate the screenshots in docs/images from a real napari window.

Run under an X server, e.g. ``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py``.
The Segment screenshot uses a classic U-Net trained for a minute on the sample
(the short training loop of ``bench/inference.py``), so that its labels mean something.
"""

import sys
from pathlib import Path

import napari
from qtpy.QtCore import QTimer

from napari_seg._widgets.demo import open_demo_viewer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"


def trained_model():
    sys.path.insert(0, str(ROOT / "bench"))
    from inference import train_briefly

    from napari_seg.models import ModelSpec, create_model

    spec = ModelSpec(
        "unet",
        encoder="classic",
        in_channels=1,
        num_classes=3,
        class_names=("background", "cytoplasm", "nucleus"),
        options={"base_width": 16},
    )
    model = create_model(spec)
    train_briefly(model, 60)
    return model


def main() -> None:
    model = trained_model()  # before the window exists: training imports torch._dynamo
    viewer, widget = open_demo_viewer()
    viewer.window._qt_window.resize(1500, 950)
    segment = viewer.window._dock_widgets["Segment"].widget()._magic_widget
    evaluate = viewer.window._dock_widgets["Evaluate"].widget()._magic_widget
    state = {"step": "model"}

    def shoot():
        if state["step"] == "model":
            if widget.current.model is None:  # wait for the model worker
                QTimer.singleShot(500, shoot)
                return
            OUT.mkdir(parents=True, exist_ok=True)
            viewer.screenshot(str(OUT / "model_widget.png"), canvas_only=False)
            widget.current.set(model, path=None, dirty=True)
            segment.reset_choices()
            segment._image.value = viewer.layers["cells2d"]
            segment.run()
            state["step"] = "segment"
            QTimer.singleShot(500, shoot)
            return
        if state["step"] == "segment":
            if segment._worker is not None:
                QTimer.singleShot(500, shoot)
                return
            viewer.layers["cells2d ground truth"].visible = False
            viewer.screenshot(str(OUT / "segment_widget.png"), canvas_only=False)
            viewer.window._dock_widgets["Evaluate"].raise_()
            evaluate.reset_choices()
            evaluate._pred.value = next(
                layer for layer in viewer.layers if "labels [" in layer.name
            )
            evaluate._gt.value = viewer.layers["cells2d ground truth"]
            evaluate.run()
            state["step"] = "evaluate"
            QTimer.singleShot(500, shoot)
            return
        if evaluate._worker is not None:
            QTimer.singleShot(500, shoot)
            return
        if state["step"] == "evaluate":
            evaluate.show_errors()
            state["step"] = "errors"
            QTimer.singleShot(500, shoot)
            return
        viewer.window._dock_widgets["Segment"].hide()
        viewer.window._dock_widgets["Model"].hide()
        for layer in viewer.layers:
            layer.visible = layer.name == "cells2d" or layer.name.endswith("errors")
        viewer.screenshot(str(OUT / "evaluate_widget.png"), canvas_only=False)
        viewer.close()

    QTimer.singleShot(1500, shoot)
    napari.run()


if __name__ == "__main__":
    main()
