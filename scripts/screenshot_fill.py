"""Screenshot of "fill between slices" in the Refine dock (docs/images/fill_between_slices.png).

Run under an X server:
``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_fill.py``.
The MNI ICBM152 template's grey and white matter (nilearn 0.14.1's copy) given on
every 8th axial slice, filled with the shape-based method; the window shows a slice
that was not given.
"""

from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QTimer

from napari_seg._widgets import refine_widget

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "fill_between_slices.png"


def main() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from sparse3d import given_slices, mni

    image, labels = mni()
    sparse, _ = given_slices(labels + 1, 8)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    viewer.add_image(image, name="T1", colormap="gray")
    layer = viewer.add_labels(sparse, name="every 8th slice", opacity=0.5)
    w = refine_widget(viewer)
    viewer.window.add_dock_widget(w, name="Refine", area="right")
    w.reset_choices()
    w._labels.value = layer
    w._op.value = "interpolate_slices"
    viewer.dims.set_current_step(0, 92)  # between the given slices 88 and 96
    w.apply()

    def poll() -> None:
        if w.runner.worker is not None:
            QTimer.singleShot(200, poll)
            return
        viewer.screenshot(str(OUT), canvas_only=False)
        print(f"wrote {OUT}; changed {w.last_changed} voxels; slice 92 filled:",
              bool(np.asarray(layer.data[92]).any()))  # fmt: skip
        viewer.close()

    QTimer.singleShot(500, poll)
    napari.run()


if __name__ == "__main__":
    main()
