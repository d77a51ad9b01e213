"""Evaluate widget in a real napari viewer (run under xvfb-run)."""

import csv
import json

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from matplotlib.backend_bases import MouseEvent  # noqa: E402

from napari_seg._layers import IGNORE_KEY, labels_layer_kwargs  # noqa: E402
from napari_seg._widgets import _evaluate as evaluate_module  # noqa: E402
from napari_seg._widgets import evaluate_widget  # noqa: E402
from napari_seg.metrics import EvaluateConfig, error_map, evaluate  # noqa: E402
from napari_seg.sample_data import CLASS_COLORS, CLASS_NAMES, cells_3d  # noqa: E402

TIMEOUT_MS = 60_000


@pytest.fixture
def notes(capture_notes):
    return capture_notes(evaluate_module)


@pytest.fixture
def stack():
    _, gt = cells_3d((5, 64, 80), seed=2)
    pred = gt.copy()
    pred[2] = 0  # slice 2 all background
    pred[:, :6, :6] = 1  # a false positive corner
    better = gt.copy()
    better[2, :, :40] = 0
    return pred, better, gt


@pytest.fixture
def setup(make_napari_viewer_proxy, stack):
    viewer = make_napari_viewer_proxy()
    w = evaluate_widget(viewer)
    viewer.window.add_dock_widget(w, name="Evaluate")
    pred, better, gt = stack
    kw = labels_layer_kwargs("gt", CLASS_NAMES, CLASS_COLORS)
    layers = {
        "gt": viewer.add_labels(gt, scale=(2, 1, 1), **kw),
        "pred": viewer.add_labels(pred, name="pred", scale=(2, 1, 1)),
        "better": viewer.add_labels(better, name="better", scale=(2, 1, 1)),
    }
    w.reset_choices()
    w._pred.value, w._gt.value = layers["pred"], layers["gt"]
    return viewer, w, layers


def _wait(qtbot, w):
    assert w._worker is not None, "the job did not start"
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)


def test_table_and_plots_match_the_core(setup, stack, qtbot, notes):
    _viewer, w, _ = setup
    w.run()
    _wait(qtbot, w)
    assert notes["error"] == []
    pred, _, gt = stack
    core = evaluate(
        pred, gt, EvaluateConfig(slice_axis=0, class_names=dict(enumerate(CLASS_NAMES)))
    )
    shown = w._table.value
    assert list(shown["columns"][:3]) == ["class", "id", "IoU"]
    classes = [row[0] for row in shown["data"]]
    assert classes[: len(CLASS_NAMES)] == list(CLASS_NAMES)
    for row, iou in zip(shown["data"], core.scores.iou, strict=False):
        assert row[2] == f"{iou:.4f}"
    assert "mean (no background)" in classes
    # bar heights are the per-class IoU; the per-slice curve is one point per slice
    heights = [p.get_height() for p in w.plots.bars.patches]
    np.testing.assert_allclose(heights, np.nan_to_num(core.scores.iou))
    curve = w.plots.slices.get_lines()[0].get_ydata()
    np.testing.assert_allclose(curve, core.slice_summary())
    assert curve[2] == 0


def test_clicking_the_slice_plot_moves_the_viewer(setup, qtbot):
    viewer, w, _ = setup
    w.run()
    _wait(qtbot, w)
    w.plots.canvas.draw()
    ax = w.plots.slices
    x, y = ax.transData.transform((3, 0.5))
    event = MouseEvent("button_press_event", w.plots.canvas, x, y, button=1)
    w.plots.canvas.callbacks.process("button_press_event", event)
    assert viewer.dims.current_step[0] == 3


def test_per_slice_scores_in_the_3d_view_run_along_the_depth_shown(setup, stack, qtbot, notes):
    """napari's 3D view displays every axis of a volume: "score each slice" found no
    slider axis and scored no slice; it scores along the depth shown."""
    viewer, w, _ = setup
    viewer.dims.ndisplay = 3
    w.run()
    _wait(qtbot, w)
    assert notes["error"] == []
    pred, _, gt = stack
    core = evaluate(pred, gt, EvaluateConfig(slice_axis=0))
    np.testing.assert_allclose(w.plots.slices.get_lines()[0].get_ydata(), core.slice_summary())


def test_show_errors_adds_an_overlay_equal_to_the_core(setup, stack, qtbot, notes):
    viewer, w, _layers = setup
    units = ("millimeter", "micrometer", "micrometer")
    viewer.layers["pred"].units = units
    w._ignore.value = "0"
    w.run()
    _wait(qtbot, w)
    w.show_errors()
    _wait(qtbot, w)
    pred, _, gt = stack
    overlay = viewer.layers["pred errors"]
    np.testing.assert_array_equal(overlay.data, error_map(pred, gt, ignore_labels=[0]))
    assert tuple(overlay.scale) == (2, 1, 1)
    assert tuple(str(u) for u in overlay.units) == units  # the prediction's placement
    assert list(overlay.features["class"])[1:4] == [
        "true positive",
        "false positive",
        "false negative",
    ]
    assert notes["error"] == []


def test_compare_two_predictions_and_export(setup, stack, qtbot, tmp_path):
    viewer, w, layers = setup
    w._compare.value = layers["better"]
    w.run()
    _wait(qtbot, w)
    pred, better, gt = stack
    rows = w.table_rows()
    assert "IoU [B]" in rows[0]
    assert "delta IoU" in rows[0]
    core_b = evaluate(better, gt)
    assert rows[1]["IoU [B]"] == pytest.approx(core_b.scores.iou[1])
    assert len(w.plots.slices.get_lines()) == 2
    w.export(tmp_path / "scores.csv")
    with open(tmp_path / "scores.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert float(table[1]["IoU"]) == pytest.approx(evaluate(pred, gt).scores.iou[1])
    w.export(tmp_path / "scores.json")
    data = json.loads((tmp_path / "scores.json").read_text())
    assert data["prediction"] == "pred"
    assert data["compare"]["prediction"] == "better"
    assert len(data["per_slice"]["values"]) == 5
    # Show errors: one overlay per prediction compared.
    w.show_errors()
    _wait(qtbot, w)
    for name, array in (("pred", pred), ("better", better)):
        np.testing.assert_array_equal(viewer.layers[f"{name} errors"].data, error_map(array, gt))
    assert "pred:" in w._status.value
    assert "better:" in w._status.value


def test_instance_mode(setup, stack, qtbot):
    _viewer, w, _layers = setup
    w._mode.value = "instance"
    w._per_slice.value = False
    w.run()
    _wait(qtbot, w)
    pred, _, gt = stack
    core = evaluate(pred, gt, EvaluateConfig(mode="instance"))
    np.testing.assert_array_equal(w.result.scores.tp, core.scores.tp)
    assert w._table.value["data"][0][0] == "0.50"
    assert w.plots.slices is None


def test_instance_mode_per_slice_reports_objects_matched_slice_by_slice(setup, stack, qtbot):
    """A time series' objects are matched in each plane: the status gives those too."""
    _viewer, w, _layers = setup
    w._mode.value = "instance"
    w.run()
    _wait(qtbot, w)
    pred, _, gt = stack
    planes = evaluate(pred, gt, EvaluateConfig(mode="instance", slice_axis=0)).pooled_slices
    assert planes.n_true > w.result.scores.n_true  # objects cut into one per plane
    assert f"slice by slice: {planes.n_true} true, {planes.n_pred} predicted" in (w._status.value)


def test_bad_inputs_become_notifications(setup, qtbot, notes, tmp_path):
    viewer, w, layers = setup
    w._export_path.value = tmp_path / "scores.txt"
    w._on_export_clicked()
    assert "evaluate first" in notes["error"][-1]
    other = viewer.add_labels(np.zeros((5, 64, 81), np.uint8), name="other", scale=(2, 1, 1))
    w.reset_choices()
    w._pred.value = other
    w.run()
    assert w._worker is None
    assert "same shape" in notes["error"][-1]
    w._pred.value = layers["pred"]
    layers["pred"].scale = (1, 1, 1)
    w.run()
    assert "scale" in notes["error"][-1]
    layers["pred"].scale = (2, 1, 1)
    layers["pred"].translate = (0, 5, 0)
    w.run()
    _wait(qtbot, w)
    assert "placed differently" in notes["warning"][-1]
    layers["pred"].translate = (0, 0, 0)
    layers["pred"].affine = [[1, 0, 0, 0], [0, 0, -1, 63], [0, 1, 0, 0], [0, 0, 0, 1]]
    warned = len(notes["warning"])
    w.run()
    _wait(qtbot, w)
    assert len(notes["warning"]) == warned + 1
    assert "placed differently" in notes["warning"][-1]  # turned by the transform tool
    layers["pred"].affine = np.eye(4)
    w._ignore.value = "0, x"
    w.run()
    assert "ignore ids" in notes["error"][-1]
    w._ignore.value = ""
    w.run()
    _wait(qtbot, w)
    w._on_export_clicked()
    assert ".csv or .json" in notes["error"][-1]
    assert not (tmp_path / "scores.txt").exists()


def test_pickers_start_on_a_likely_pair_and_then_follow_the_user(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    labels = np.zeros((8, 8), np.uint8)
    gt = viewer.add_labels(labels, name="cells2d ground truth")
    pred = viewer.add_labels(labels, name="cells2d labels [unet]")
    w = evaluate_widget(viewer)
    viewer.window.add_dock_widget(w, name="Evaluate")
    w.reset_choices()
    assert (w._pred.value, w._gt.value) == (pred, gt)
    # A chosen pair is kept when layers come and go.
    other = viewer.add_labels(labels, name="other")
    w._pred.value = other
    viewer.add_labels(labels, name="newer")
    w.reset_choices()
    assert (w._pred.value, w._gt.value) == (other, gt)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["pred", "gt"], ("pred", "gt")),
        (["GT", "labels [unet]", "refined"], ("refined", "GT")),
        (["nuclei annotations", "nuclei labels"], ("nuclei labels", "nuclei annotations")),
        (["a", "b", "c"], ("c", "a")),  # nothing reads as truth: the first layer
        (["only"], (None, None)),
        (["target", "ground_truth"], ("target", "ground_truth")),
    ],
)
def test_suggest_pair_reads_layer_names(names, expected):
    from types import SimpleNamespace

    from napari_seg._widgets._evaluate_jobs import suggest_pair

    layers = [SimpleNamespace(name=n) for n in names]
    pred, gt = suggest_pair(layers)
    assert (getattr(pred, "name", None), getattr(gt, "name", None)) == expected


def test_export_replaces_an_existing_file_only_when_asked(setup, qtbot, notes, tmp_path):
    _viewer, w, _layers = setup
    w.run()
    _wait(qtbot, w)
    target = tmp_path / "scores.csv"
    target.write_text("kept")
    w._export_path.value = target
    w._on_export_clicked()
    assert "already exists" in notes["error"][-1]
    assert target.read_text() == "kept"
    w._export_path.overwrite = True
    w._on_export_clicked()
    assert target.read_text().startswith("class")


def test_surface_distances_use_the_layer_scale(setup, stack, qtbot, notes, tmp_path):
    _viewer, w, layers = setup
    layers["gt"].metadata["napari_seg_geometry"] = {"affine": "recorded by the reader"}
    assert not w._tolerance.enabled  # used only by the surface scores
    w._tolerance.value = 2.0
    assert w.config().surface is False  # a tolerance left set is not an error while off
    w._surface.value = True
    assert w._tolerance.enabled
    w.run()
    _wait(qtbot, w)
    assert notes["error"] == []
    pred, _, gt = stack
    config = w.result.config
    assert config.spacing == (2.0, 1.0, 1.0)
    assert config.unit == "mm"
    from napari_seg.metrics import surface_scores

    expected = surface_scores(pred, gt, spacing=(2, 1, 1), tolerance=2.0, labels=(1, 2))
    columns = list(w._table.value["columns"])
    assert "HD95 (mm)" in columns
    assert "gt volume (mL)" in columns
    row = w._table.value["data"][1]  # class 1
    assert row[columns.index("HD95 (mm)")] == f"{expected.hausdorff[0]:.4f}"
    w.export(tmp_path / "scores.json")
    data = json.loads((tmp_path / "scores.json").read_text())
    assert data["surface"]["classes"][0]["surface_dice"] == pytest.approx(expected.surface_dice[0])
    w._mode.value = "instance"
    w.run()
    assert any("semantic mode" in m for m in notes["error"])


def test_surface_distances_of_a_micrometre_nifti_are_in_micrometres(setup, qtbot, notes):
    """The unit a medical file's header states travels with its geometry: a NIfTI
    in micrometres is measured in micrometres, its volumes not in mL."""
    _viewer, w, layers = setup
    layers["gt"].metadata["napari_seg_geometry"] = {"affine": "...", "unit": "micrometer"}
    w._surface.value = True
    w.run()
    _wait(qtbot, w)
    assert notes["error"] == []
    assert w.result.config.unit == "µm"
    columns = list(w._table.value["columns"])
    assert "HD95 (µm)" in columns
    assert not any("mL" in c for c in columns)


def test_surface_distances_of_ground_truth_opened_from_a_calibrated_tiff(
    setup, stack, qtbot, notes, tmp_path
):
    """Ground truth opened by napari's own TIFF reader shows a scale of 1; its file
    declares 2 x 0.5 x 0.5 µm, which ``napari-seg evaluate`` on the file uses, and so
    does the dock."""
    import tifffile

    viewer, w, _layers = setup
    _, _, gt = stack
    path = tmp_path / "truth.tif"
    tifffile.imwrite(path, gt, imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})  # fmt: skip
    (truth,) = viewer.open(path, plugin="napari", layer_type="labels")
    assert tuple(truth.scale) == (1, 1, 1)
    w.reset_choices()
    w._gt.value = truth
    w._surface.value = True
    w.run()
    assert notes["error"] == ["Cannot evaluate: pred has scale 2 x 1 x 1 but truth has 1 x 1 x 1; "
                              "the pixels would not correspond"]  # fmt: skip
    notes["error"].clear()
    w._pred.value.scale = (1, 1, 1)  # as Segment gives for the image beside it
    w.run()
    _wait(qtbot, w)
    assert notes["error"] == []
    config = w.result.config
    assert (config.spacing, config.unit) == ((2.0, 0.5, 0.5), "µm")


def test_surface_distances_in_one_unit_when_the_axes_have_different_ones(
    setup, stack, qtbot, notes
):
    """z in millimetres, y and x in micrometres: distances are measured in micrometres
    (2 mm = 2000 um along z) and the table says so."""
    _viewer, w, layers = setup
    layers["gt"].units = ("millimeter", "micrometer", "micrometer")
    w._surface.value = True
    w.run()
    _wait(qtbot, w)
    assert notes["error"] == []
    config = w.result.config
    assert config.spacing == (2000.0, 1.0, 1.0)
    assert config.unit == "µm"
    assert "HD95 (µm)" in list(w._table.value["columns"])


@pytest.mark.parametrize(("axes", "series"), [("TYX", 4), ("ZYX", 1)])
def test_a_fiji_time_lapse_opened_by_napari_gets_surfaces_frame_by_frame(
    make_napari_viewer_proxy, qtbot, tmp_path, axes, series
):
    """napari's own TIFF reader names no axis ("axis -3"...), so a Fiji time-lapse's
    surfaces were measured across time in 3D; its file says T, as the command line
    reads it. A z-stack stays one volume."""
    import tifffile

    viewer = make_napari_viewer_proxy()
    w = evaluate_widget(viewer)
    viewer.window.add_dock_widget(w, name="Evaluate")
    _, gt = cells_3d((4, 48, 64), seed=2)
    for name, data in (("gt", gt), ("pred", np.roll(gt, 2, axis=2))):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, imagej=True, metadata={"axes": axes})
        viewer.open(tmp_path / f"{name}.tif", plugin="napari", layer_type="labels")
    w.reset_choices()
    w._pred.value, w._gt.value = viewer.layers["pred"], viewer.layers["gt"]
    w._surface.value = True
    w.run()
    _wait(qtbot, w)
    assert w.result.surface.series == series
    assert len(w.result.surface.spacing) == (2 if series > 1 else 3)


def test_a_layer_whose_slider_is_time_gets_surfaces_frame_by_frame(make_napari_viewer_proxy, qtbot):
    """napari-ome-zarr names a time-lapse's axes ("t", "y", "x"): its surfaces are
    measured in each frame (2D) and averaged, not across time in 3D."""
    from napari_seg.metrics import surface_scores

    viewer = make_napari_viewer_proxy()
    w = evaluate_widget(viewer)
    viewer.window.add_dock_widget(w, name="Evaluate")
    _, gt = cells_3d((4, 48, 64), seed=2)
    pred = np.roll(gt, 2, axis=2)
    g = viewer.add_labels(gt, name="gt", axis_labels=("t", "y", "x"))
    p = viewer.add_labels(pred, name="pred", axis_labels=("t", "y", "x"))
    w.reset_choices()
    w._pred.value, w._gt.value = p, g
    w._surface.value = True
    w.run()
    _wait(qtbot, w)
    surface = w.result.surface
    assert surface.series == 4
    assert surface.spacing == (1.0, 1.0)
    frames = [surface_scores(a, b, labels=surface.labels) for a, b in zip(pred, gt, strict=True)]
    np.testing.assert_allclose(surface.assd, np.nanmean([f.assd for f in frames], axis=0))


def test_a_ground_truth_that_records_an_ignore_label_fills_in_ignore_ids(setup, qtbot, notes):
    """nnU-Net's "ignore" label, recorded by the reader in the layer's metadata, is
    left out as the CLI leaves it out; a ground truth without one empties the field."""
    viewer, w, layers = setup
    gt = layers["gt"].data.copy()
    gt[:, :5] = 3
    kw = labels_layer_kwargs("marked", [*CLASS_NAMES, "ignore"], [*CLASS_COLORS, (1, 1, 1, 1)],
                             ignore=[3])  # fmt: skip
    assert kw["metadata"][IGNORE_KEY] == [3]
    marked = viewer.add_labels(gt, scale=(2, 1, 1), **kw)
    w.reset_choices()
    w._gt.value = marked
    assert w._ignore.value == "3"
    w.run()
    _wait(qtbot, w)
    assert notes["error"] == []
    assert w.result.config.ignore_labels == (3,)
    assert 3 not in w.result.scores.labels
    w._gt.value = layers["gt"]
    assert w._ignore.value == ""
    w._ignore.value = "-1"  # scores take ids >= 0: said by the config's own rule
    w.run()
    assert w._worker is None
    assert any("ignore_labels must be ids >= 0, got -1" in m for m in notes["error"]), notes
