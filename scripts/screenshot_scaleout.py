"""Screenshot of the Segment dock sending a job to a local Dask cluster
(docs/images/segment_cluster.png).

Run under an X server:
``xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_scaleout.py``.
Trains the demo's small U-Net for 30 s on the 2D sample, tiles the sample into a
4096 x 4096 TIFF, opens it as a user would (File > Open), and segments it on a
LocalCluster of 2 workers into OME-Zarr; the result is added lazily as a
multiscale Labels layer. The window is captured once the dock reports done.
"""

import tempfile
from pathlib import Path

import napari
import numpy as np
import tifffile
from qtpy.QtCore import QTimer

from napari_seg._widgets import segment_widget
from napari_seg.demo import demo_config
from napari_seg.models import save_model
from napari_seg.sample_data import cells_2d
from napari_seg.training import train

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "segment_cluster.png"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="napari-seg-shot-"))
    image, truth = cells_2d()
    model = train((image, truth), demo_config(0.5)).model
    save_model(model, work / "cells.safetensors")
    big = np.tile(image, (8, 8))
    tifffile.imwrite(work / "slide.tif", big, tile=(512, 512))
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    (layer,) = viewer.open(str(work / "slide.tif"))
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment", area="right")
    w.current.set(model, path=work / "cells.safetensors", dirty=False)
    w.reset_choices()
    w._image.value = layer
    w.cluster.where.value = "local"
    w.cluster.workers.value = 2
    w.cluster.output.value = work / "slide_labels.ome.zarr"
    w.cluster.block.value = 2048
    w.run()

    def poll() -> None:
        if w.runner.worker is not None:
            QTimer.singleShot(500, poll)
            return
        labels = viewer.layers[-1]
        print("status:", w._status.value)
        print("layer:", labels.name, "multiscale:", labels.multiscale,
              "levels:", [tuple(d.shape) for d in labels.data])  # fmt: skip
        viewer.camera.zoom = 0.6
        QTimer.singleShot(1500, shoot)

    def shoot() -> None:
        viewer.screenshot(str(OUT), canvas_only=False)
        print(f"wrote {OUT}")
        viewer.close()

    QTimer.singleShot(1000, poll)
    napari.run()


if __name__ == "__main__":
    main()
