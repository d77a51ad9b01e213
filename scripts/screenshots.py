"""Regenerate the screenshots in docs/images from a real napari window.

Run under an X server:
``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py``.
It opens the GUI demo, which creates a U-Net, trains it for a minute on the
top rows of the sample (Train widget), segments the whole image (Segment) and
evaluates it with the error overlay (Evaluate), and shoots each widget as the
loop reaches it; then it docks Refine and previews a clean-up of the prediction.
The window is 1600x1000; for each shot the other docks are hidden, so the dock
shown has the whole column (its fields scroll when they do not fit), and the
notifications of earlier steps are closed.
"""

from pathlib import Path

import napari
from napari._qt.dialogs.qt_notification import NapariQtNotification
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_seg._widgets import refine_widget
from napari_seg._widgets.demo import open_demo_viewer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"


def main() -> None:
    viewer, loop = open_demo_viewer(minutes=1.0)
    viewer.window._qt_window.resize(1600, 1000)
    docks = viewer.window._dock_widgets
    shots: list[str] = []

    def shoot(name: str, dock: str, scroll: float = 0.0) -> None:
        """Show only ``dock`` (scrolled to ``scroll`` of its height), then shoot the window."""
        for key, widget in docks.items():
            widget.setVisible(key == dock)
        inner = docks[dock].widget()
        bar = next(iter(inner.findChildren(QScrollArea))).verticalScrollBar()
        bar.setValue(round(scroll * bar.maximum()))
        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()  # a step's passing notice ("Model ready") would cover the canvas
        QApplication.processEvents()
        viewer.reset_view()  # the whole image in the canvas the dock leaves
        QApplication.processEvents()
        OUT.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(OUT / f"{name}.png"), canvas_only=False)
        shots.append(name)

    def poll() -> None:
        if "model_widget" not in shots and loop.stage == "training":
            shoot("model_widget", "Model")
        elif "train_widget" not in shots and loop.stage in ("segmenting", "evaluating", "done"):
            shoot("train_widget", "Train", scroll=1.0)  # down to the curves
        elif "segment_widget" not in shots and loop.stage in ("evaluating", "done"):
            viewer.layers["cells2d ground truth"].visible = False
            shoot("segment_widget", "Segment")
        elif loop.stage == "done":
            for layer in viewer.layers:
                layer.visible = layer.name == "cells2d" or layer.name.endswith("errors")
            shoot("evaluate_widget", "Evaluate", scroll=1.0)  # down to the table and plots
            start_refine()
            return
        elif loop.stage == "stopped":
            viewer.close()
            raise SystemExit("the demo loop stopped early; see the notifications")
        QTimer.singleShot(500, poll)

    def start_refine() -> None:
        for dock in list(docks.values()):
            viewer.window.remove_dock_widget(dock)
        w = refine_widget(viewer)
        viewer.window.add_dock_widget(w, name="Refine")
        prediction = next(x for x in viewer.layers if " labels [" in x.name)
        for layer in viewer.layers:
            layer.visible = layer.name in ("cells2d", prediction.name)
        w.reset_choices()
        w._labels.value = prediction
        w._op.value = "remove_small_objects"
        w._params["min_size"].value = 100
        w._params["replace_with"].value = "nearest"
        viewer.window._qt_window.resize(1600, 1000)
        w.preview()
        wait_refine(w)

    def wait_refine(w) -> None:
        if w._worker is not None:
            QTimer.singleShot(300, lambda: wait_refine(w))
            return
        shoot("refine_widget", "Refine")
        viewer.close()

    QTimer.singleShot(1000, poll)
    napari.run()


if __name__ == "__main__":
    main()
