"""File > Save Layers, file type "napari-seg TIFF labels with pixel size": a Labels
layer as a TIFF that keeps its pixel size and compact ids (napari's own writer
stores the array alone, as uint32)."""

import json

import numpy as np
import pytest
import tifffile

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari_seg._headers import tiff_calibration  # noqa: E402
from napari_seg._napari_write import layer_calibration  # noqa: E402
from napari_seg.cli import main  # noqa: E402


def _save(viewer, data, path, **kwargs):
    layer = viewer.add_labels(data, **kwargs)
    return layer.save(str(path), plugin="napari-seg")


def test_labels_keep_their_pixel_size_and_ids(make_napari_viewer_proxy, tmp_path, capsys):
    if not hasattr(napari.layers.Labels(np.zeros((2, 2), np.uint8)), "units"):
        pytest.skip("napari before 0.6 has no layer units: the scale's unit is unknown")
    viewer = make_napari_viewer_proxy()
    labels = np.zeros((4, 30, 40), np.uint8)
    labels[1:3, 5:20, 5:25] = 2
    [path] = _save(viewer, labels, tmp_path / "cells_labels.tif", scale=(2, 0.5, 0.5),
                   units=("um", "um", "um"))  # fmt: skip
    calibration = tiff_calibration(path)
    assert (calibration.axes, calibration.scale, calibration.unit) == (
        "ZYX",
        (2.0, 0.5, 0.5),
        "micrometer",
    )
    stored = tifffile.imread(path)
    assert stored.dtype == np.uint8  # not napari's uint32
    np.testing.assert_array_equal(stored, labels)
    # napari-seg commands read that size: surface distances in micrometres
    capsys.readouterr()
    assert main(["evaluate", "--pred", path, "--gt", path, "--surface", "--json"]) == 0
    surface = json.loads(capsys.readouterr().out)["surface"]
    assert (surface["spacing"], surface["unit"]) == ([2.0, 0.5, 0.5], "µm")
    # napari's default scale says nothing: an uncalibrated TIFF, ids still compact
    [plain] = _save(viewer, labels.astype(np.int64), tmp_path / "plain.tif")
    assert tiff_calibration(plain) is None
    assert tifffile.imread(plain).dtype == np.uint8


UM, NM, S = "micrometer", "nanometer", "second"  # napari's layer units by name


@pytest.mark.parametrize(
    ("ndim", "meta", "expected"),
    [
        (2, {"scale": (20, 20), "units": (NM, NM)}, ("YX", (20.0, 20.0), NM)),
        (3, {"scale": (1, 0.3, 0.3), "units": (S, UM, UM)}, ("TYX", (1.0, 0.3, 0.3), UM)),
        (4, {"scale": (1, 2, 0.5, 0.5), "units": (S, UM, UM, UM)},
         ("TZYX", (1.0, 2.0, 0.5, 0.5), UM)),
        (3, {"scale": (2, 0.5, 0.5)}, None),  # no units (napari < 0.6): unknown unit
        (3, {"scale": (1, 1, 1), "units": ("pixel",) * 3}, None),  # napari's default
        (5, {"scale": (1,) * 5, "units": (UM,) * 5}, None),
    ],
)  # fmt: skip
def test_the_calibration_of_a_layer(ndim, meta, expected):
    calibration = layer_calibration(ndim, meta)
    found = None if calibration is None else (calibration.axes, calibration.scale, calibration.unit)
    assert found == expected
