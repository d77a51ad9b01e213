"""Regenerate the screenshots in docs/images from a real napari window.

Run under an X server, e.g. ``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py``.
"""

from pathlib import Path

import napari
from qtpy.QtCore import QTimer

from napari_seg._widgets.demo import open_demo_viewer

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def main() -> None:
    viewer, widget = open_demo_viewer()
    viewer.window._qt_window.resize(1400, 860)

    def shoot():
        if widget.current.model is None:  # wait for the model worker
            QTimer.singleShot(500, shoot)
            return
        OUT.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(OUT / "model_widget.png"), canvas_only=False)
        viewer.close()

    QTimer.singleShot(1500, shoot)
    napari.run()


if __name__ == "__main__":
    main()
