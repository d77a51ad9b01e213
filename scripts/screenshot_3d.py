"""Screenshot of a 3D segmentation in napari's 3D view (docs/images/segment_3d.png).

Run under an X server:
``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_3d.py``.
Needs ``pip install --no-deps nilearn==0.14.1`` for the MNI ICBM152 2009a T1 template
(BSD-3 via nilearn; MNI copyright). Opens the NIfTI file through napari-seg's reader,
segments the whole volume in the Segment dock with a 3D model, and shoots the window
in napari's 3D view. The model is a 3D U-Net whose network is replaced by a 1x1x1
convolution set by hand to two T1 intensity thresholds (dark / grey matter / white
matter): a stand-in for a trained 3D network until 3D training exists, so the picture
shows the 3D path (NIfTI reader, 3D patches, the layer's scale, transparent
background), not a model's accuracy.
"""

import importlib.util
from pathlib import Path

import napari
import torch
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_seg._widgets import segment_widget
from napari_seg.models import ModelSpec, Normalization, create_model

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "segment_3d.png"


def threshold_model():
    spec = ModelSpec(
        "unet",
        1,
        3,
        spatial_dims=3,
        class_names=("background", "grey matter", "white matter"),
        normalization=Normalization(method="none"),
        spacing=(1.0, 1.0, 1.0),
        spacing_unit="millimeter",
        options={"depth": 2, "base_width": 4},
    )
    model = create_model(spec).eval()
    conv = torch.nn.Conv3d(1, 3, 1)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([-1.0, 0.0, 1.0]).reshape(3, 1, 1, 1, 1) / 10
        conv.bias[:] = torch.tensor([110.0, 0.0, -195.0]) / 10
    model.net = conv
    return model


def main() -> None:
    data = Path(importlib.util.find_spec("nilearn").submodule_search_locations[0])
    t1 = data / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1600, 1000)
    [image] = viewer.open(t1, plugin="napari-seg")
    image.name = "MNI T1"
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    w.current.set(threshold_model(), path=None, dirty=True)
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
        labels.selected_label = 2
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
