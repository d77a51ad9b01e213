"""Screenshot of a 3D segmentation in napari's 3D view (docs/images/segment_3d.png).

Run under an X server:
``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_3d.py``.
Needs ``pip install --no-deps nilearn==0.14.1`` for the MNI ICBM152 2009a T1 template
and its grey/white matter maps (BSD-3 via nilearn; MNI copyright). Opens the NIfTI
files through napari-seg's reader, fits a 3D pixel classifier on every 8th axial
slice of the classes the maps give (background/CSF, grey matter, white matter:
the argmax of 255 - GM - WM, GM and WM), segments the whole volume in the Segment
dock with it, and shoots the window in napari's 3D view (the white matter class).
"""

import importlib.util
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_seg._widgets import segment_widget
from napari_seg.training import train

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "segment_3d.png"
EVERY = 8


def fitted_model(viewer, folder: Path, image):
    """A 3D pixel classifier fitted on every 8th axial slice of the template's classes."""
    maps = []
    for kind in ("gm", "wm"):
        [layer] = viewer.open(folder / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz",
                              plugin="napari-seg")  # fmt: skip
        maps.append(np.asarray(layer.data, np.float32))
        viewer.layers.remove(layer)
    gm, wm = maps
    classes = np.argmax(np.stack([255 - gm - wm, gm, wm]), axis=0).astype(np.uint8) + 1
    painted = np.zeros_like(classes)
    painted[::EVERY] = classes[::EVERY]
    names = ("unpainted", "background", "grey matter", "white matter")
    result = train((np.asarray(image.data), painted), dims=3, architecture="pixel-classifier",
                   label0="unlabelled", epochs=1, minutes=None, spacing=tuple(image.scale),
                   class_names=names)  # fmt: skip
    print(result.describe())
    return result.model


def main() -> None:
    data = Path(importlib.util.find_spec("nilearn").submodule_search_locations[0])
    folder = data / "datasets" / "data"
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1600, 1000)
    [image] = viewer.open(
        folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", plugin="napari-seg"
    )
    image.name = "MNI T1"
    model = fitted_model(viewer, folder, image)
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    w.current.set(model, path=None, dirty=True)
    w.reset_choices()
    w._image.value = image
    w._scope.value = "stack"
    w.run()

    def poll() -> None:
        if w._worker is not None:
            QTimer.singleShot(300, poll)
            return
        labels = next(x for x in viewer.layers if isinstance(x, napari.layers.Labels))
        image.visible = False
        viewer.dims.ndisplay = 3
        # The white matter alone, in 3D: the grey matter would hide it.
        labels.selected_label = 3
        labels.show_selected_label = True
        viewer.camera.angles = (-15, 30, 100)
        viewer.camera.zoom = 2.4
        labels.opacity = 1.0
        viewer.scale_bar.visible = True  # in the file's unit (mm), from the layers' units
        QApplication.processEvents()
        viewer.screenshot(str(OUT), canvas_only=False)
        print(w._status.value, labels.data.shape, tuple(labels.scale))
        viewer.close()

    QTimer.singleShot(500, poll)
    napari.run()


if __name__ == "__main__":
    main()
