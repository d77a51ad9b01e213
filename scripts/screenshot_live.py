"""Screenshot of the live scribble loop (docs/images/live_update.png).

Run under an X server:
``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_live.py``.
Opens scikit-image's ``coins`` image, paints short strokes of two classes through
the Labels layer's API (background as id 1, coins as id 2; placed from a rough
Otsu mask, as a user would place them by eye), names the classes in the Train
dock's legend, marks id 1 as the background, turns "live update" on, and shoots
the window once the prediction layer has been refreshed.
"""

from pathlib import Path

import napari
import numpy as np
import skimage.data
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from scipy import ndimage as ndi
from skimage import filters

from napari_seg._widgets import train_widget

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "live_update.png"


def main() -> None:
    image = skimage.data.coins()
    rough = ndi.binary_fill_holes(image > filters.threshold_otsu(image))
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1600, 1000)
    viewer.add_image(image, name="coins")
    strokes = viewer.add_labels(np.zeros(image.shape, np.uint8), name="strokes")
    strokes.brush_size = 5
    rng = np.random.default_rng(0)
    for label, inside in ((1, ndi.binary_erosion(~rough, iterations=6)),
                          (2, ndi.binary_erosion(rough, iterations=6))):  # fmt: skip
        points = np.argwhere(inside)
        for y, x in points[rng.choice(len(points), 8, replace=False)]:
            for dx in range(-6, 7, 2):
                if 0 <= x + dx < image.shape[1] and inside[y, x + dx]:
                    strokes.paint((float(y), float(x + dx)), label)
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["coins"], strokes
    w.classes.refresh()
    w.classes.rename(1, "background")
    w.classes.rename(2, "coin")
    w.classes.background.value = "1"
    w.live.toggle.value = True

    def poll() -> None:
        if w.live.refits < 1 or w.live._worker is not None:
            QTimer.singleShot(300, poll)
            return
        viewer.layers["strokes"].visible = True
        QApplication.processEvents()
        viewer.screenshot(str(OUT), canvas_only=False)
        print(w.live.status.value)
        viewer.close()

    QTimer.singleShot(500, poll)
    napari.run()


if __name__ == "__main__":
    main()
