"""Refine widget in a real napari viewer (run under xvfb-run)."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from qtpy.QtCore import Qt  # noqa: E402

from napari_seg import refine  # noqa: E402
from napari_seg._layers import labels_layer_kwargs  # noqa: E402
from napari_seg._widgets import _refine as refine_module  # noqa: E402
from napari_seg._widgets import evaluate_widget, refine_widget  # noqa: E402
from napari_seg._widgets._layers import full_resolution  # noqa: E402
from napari_seg.models import ModelSpec, create_model  # noqa: E402
from napari_seg.sample_data import CLASS_COLORS, CLASS_NAMES, cells_3d  # noqa: E402

TIMEOUT_MS = 60_000


@pytest.fixture
def notes(capture_notes):
    return capture_notes(refine_module)


def noisy(labels, seed=0):
    """``labels`` with specks of every class sprinkled in."""
    rng = np.random.default_rng(seed)
    out = labels.copy()
    specks = rng.random(labels.shape) < 0.02
    out[specks] = rng.integers(0, 3, specks.sum())
    return out


@pytest.fixture
def setup(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    w = refine_widget(viewer)
    viewer.window.add_dock_widget(w, name="Refine")
    _, gt = cells_3d((4, 48, 64), seed=1)
    gt = gt.astype(np.uint8)
    layer = viewer.add_labels(noisy(gt), **labels_layer_kwargs("pred", CLASS_NAMES, CLASS_COLORS))
    w.reset_choices()
    w._labels.value = layer
    return viewer, w, layer, gt


def _run(qtbot, w, action):
    action()
    assert w._worker is not None, "the job did not start"
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)


def _canvas():
    """The viewer's vispy canvas widget (found by type, without private napari attributes)."""
    from qtpy.QtWidgets import QApplication
    from vispy.app.backends._qt import CanvasBackendDesktop

    found = [
        c for top in QApplication.topLevelWidgets() for c in top.findChildren(CanvasBackendDesktop)
    ]
    assert len(found) == 1
    return found[0]


def _choose(w, op, **params):
    w._op.value = op
    for name, value in params.items():
        w._params[name].value = value


def test_apply_is_one_undoable_step(setup, qtbot, notes):
    viewer, w, layer, _ = setup
    before = layer.data.copy()
    _choose(w, "remove_small_objects", min_size=4)
    w._scope.value = "each"
    _run(qtbot, w, w.apply)
    assert notes["error"] == []
    expected = np.stack([refine.remove_small_objects(p, 4) for p in before])
    np.testing.assert_array_equal(layer.data, expected)
    assert w.last_changed == int((expected != before).sum()) > 0
    # Ctrl+Z on the canvas, with the layer selected: napari's own undo restores it exactly.
    viewer.layers.selection.active = layer
    canvas = _canvas()
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(layer.data, before)
    layer.redo()
    np.testing.assert_array_equal(layer.data, expected)
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    layer.undo()  # nothing older from us: the labels stay as they were
    np.testing.assert_array_equal(layer.data, before)


def test_current_slice_and_whole_volume(setup, qtbot):
    viewer, w, layer, _ = setup
    before = layer.data.copy()
    viewer.dims.set_current_step(0, 2)
    _choose(w, "majority", radius=1)
    w._scope.value = "slice"
    _run(qtbot, w, w.apply)
    expected = before.copy()
    expected[2] = refine.majority(before[2], 1)
    np.testing.assert_array_equal(layer.data, expected)
    layer.undo()
    w._scope.value = "volume"
    _run(qtbot, w, w.apply)
    np.testing.assert_array_equal(layer.data, refine.majority(before, 1))
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)


def test_the_current_slice_in_the_3d_view_is_the_volume_on_screen(setup, qtbot, notes):
    """In napari's 3D view "current slice" refines every plane of the volume shown (it
    refined the plane at the hidden z slider); Preview shows all of them."""
    viewer, w, layer, _ = setup
    before = layer.data.copy()
    viewer.dims.set_current_step(0, 2)
    viewer.dims.ndisplay = 3
    _choose(w, "majority", radius=1)
    w._scope.value = "slice"
    expected = np.stack([refine.majority(plane, 1) for plane in before])
    _run(qtbot, w, w.preview)
    assert notes["error"] == []
    np.testing.assert_array_equal(viewer.layers["pred [preview]"].data, expected)
    _run(qtbot, w, w.apply)
    np.testing.assert_array_equal(layer.data, expected)
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)


def test_preview_shows_the_slice_and_leaves_the_layer(setup, qtbot):
    viewer, w, layer, _ = setup
    before = layer.data.copy()
    viewer.dims.set_current_step(0, 1)
    _choose(w, "opening", radius=1)
    _run(qtbot, w, w.preview)
    preview = viewer.layers["pred [preview]"]
    np.testing.assert_array_equal(preview.data[0], refine.opening(before[1], 1))
    assert preview.translate[0] == 1  # sits on the slice it previews
    np.testing.assert_array_equal(layer.data, before)
    _run(qtbot, w, w.apply)
    assert "pred [preview]" not in viewer.layers


def test_a_result_beside_the_layer_keeps_its_units(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    w = refine_widget(viewer)
    viewer.window.add_dock_widget(w, name="Refine")
    gt = cells_3d((4, 48, 64), seed=1)[1].astype(np.uint8)
    units = ("millimeter", "micrometer", "micrometer")
    kwargs = labels_layer_kwargs("pred", CLASS_NAMES, CLASS_COLORS)
    layer = viewer.add_labels(noisy(gt), scale=(2, 0.5, 0.5), units=units, **kwargs)
    w.reset_choices()
    w._labels.value = layer
    viewer.dims.set_current_step(0, 1)
    _choose(w, "opening", radius=1)
    _run(qtbot, w, w.preview)
    preview = viewer.layers["pred [preview]"]
    np.testing.assert_array_equal(preview.data[0], refine.opening(layer.data[1], 1))
    assert tuple(str(u) for u in preview.units) == units
    np.testing.assert_allclose(preview.scale, (2, 0.5, 0.5))
    _run(qtbot, w, w.apply)  # writes into the layer itself
    np.testing.assert_array_equal(layer.data[1], refine.opening(noisy(gt)[1], 1))


@pytest.mark.parametrize("kind", ["dask", "read-only", "multiscale"])
def test_a_layer_that_cannot_change_in_place_gets_a_new_layer(
    make_napari_viewer_proxy, qtbot, notes, kind
):
    """Apply "replace" on labels read lazily (a dask array, as readers of large files
    give) or a read-only array: writing raised in the event loop (a traceback dialog);
    the result goes to a new layer, with a note, and the layer stays as it was. A
    multiscale layer (an OME-Zarr pyramid) failed with "list indices must be integers
    or slices, not tuple"; its full resolution is refined, into a new layer (writing
    level 0 would leave the other levels stale)."""
    import dask.array as da

    viewer = make_napari_viewer_proxy()
    w = refine_widget(viewer)
    viewer.window.add_dock_widget(w, name="Refine")
    labels = noisy(cells_3d((4, 48, 64), seed=1)[1].astype(np.uint8))
    if kind == "dask":
        data = da.from_array(labels, chunks=(1, 48, 64))
    elif kind == "multiscale":
        data = [labels.copy(), labels[:, ::2, ::2].copy()]
    else:
        data = labels.copy()
        data.flags.writeable = False
    layer = viewer.add_labels(data, name="lazy", scale=(2, 1, 1))
    w.reset_choices()
    w._labels.value = layer
    _choose(w, "majority", radius=1)
    w._scope.value = "each"
    with qtbot.capture_exceptions() as errors:
        _run(qtbot, w, w.apply)
    assert errors == []
    assert notes["error"] == []
    assert any("cannot change in place" in m for m in notes["info"])
    np.testing.assert_array_equal(np.asarray(full_resolution(layer)), labels)
    result = viewer.layers["lazy refined"]
    np.testing.assert_array_equal(result.data, np.stack([refine.majority(p, 1) for p in labels]))
    np.testing.assert_allclose(result.scale, (2, 1, 1))


def test_watershed_makes_an_instances_layer(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    w = refine_widget(viewer)
    grid = np.indices((40, 60))
    discs = ((grid[0] - 20) ** 2 + (grid[1] - 20) ** 2 <= 100) | (
        (grid[0] - 20) ** 2 + (grid[1] - 37) ** 2 <= 100
    )
    layer = viewer.add_labels(discs.astype(np.uint8), name="cells")
    w.reset_choices()
    w._labels.value = layer
    _choose(w, "watershed_split")
    _run(qtbot, w, w.apply)
    instances = viewer.layers["cells instances"].data
    assert instances.max() == 2
    assert instances[20, 20] != instances[20, 37]
    np.testing.assert_array_equal(layer.data, discs)


def _crf_layers(viewer, channels: bool):
    """A square's labels, a noisy image of it (one channel, or two first: CYX) and
    probabilities, as layers; the arrays."""
    labels = np.zeros((32, 32), np.uint8)
    labels[8:24, 8:24] = 1
    image = labels + np.random.default_rng(0).normal(0, 0.1, labels.shape).astype(np.float32)
    if channels:
        image = np.stack([image, 1.0 - labels]).astype(np.float32)
    probs = np.stack([1.0 - 0.6 * labels, 0.6 * labels + 0.2]).astype(np.float32)
    layers = (
        viewer.add_labels(labels.copy(), name="pred"),
        viewer.add_image(image, name="img"),
        viewer.add_image(probs, name="probs"),
    )
    return layers, (labels, image, probs)


def test_crf_and_region_inputs(make_napari_viewer_proxy, qtbot, notes):
    viewer = make_napari_viewer_proxy()
    w = refine_widget(viewer)
    (layer, img, prob_layer), (labels, image, probs) = _crf_layers(viewer, channels=False)
    w.reset_choices()
    w._labels.value = layer
    _choose(w, "crf", iterations=2, device="cpu")
    w.apply()  # no image chosen: a notification, no job, nothing changed
    assert notes["error"]
    assert "crf needs image" in notes["error"][-1]
    assert w._worker is None
    np.testing.assert_array_equal(layer.data, labels)
    w._image.value, w._probabilities.value = img, prob_layer
    _run(qtbot, w, w.apply)
    expected = refine.crf_refine(probs, image, iterations=2, device="cpu")
    np.testing.assert_array_equal(layer.data, expected)
    # set a class inside a drawn rectangle
    shapes = viewer.add_shapes([np.array([[0, 0], [0, 5], [5, 5], [5, 0]])], name="box")
    w.reset_choices()
    _choose(w, "set_class", value=2)
    w._region.value = shapes
    _run(qtbot, w, w.apply)
    assert (layer.data[:5, :5] == 2).all()
    assert (layer.data[7:, 7:] != 2).all()


def test_the_crf_reads_a_two_channel_layer(make_napari_viewer_proxy, qtbot, notes):
    """A CYX layer (two channels opened whole) for YX labels: the CRF reads both
    channels; the dock refused 'the image layer covers (2, 32, 32), the labels (32, 32)'."""
    viewer = make_napari_viewer_proxy()
    w = refine_widget(viewer)
    (layer, img, prob_layer), (_, image, probs) = _crf_layers(viewer, channels=True)
    w.reset_choices()
    w._labels.value = layer
    _choose(w, "crf", iterations=2, device="cpu")
    w._image.value, w._probabilities.value = img, prob_layer
    _run(qtbot, w, w.apply)
    assert notes["error"] == []
    expected = refine.crf_refine(probs, image, iterations=2, channel_axis=0, device="cpu")
    np.testing.assert_array_equal(layer.data, expected)


def test_cancel_changes_nothing(setup, qtbot, monkeypatch):
    import threading

    _viewer, w, layer, _ = setup
    before = layer.data.copy()
    cancelled = threading.Event()
    real = refine.iter_refine

    def held(labels, config, **kwargs):  # the job waits until cancel was pressed
        assert cancelled.wait(TIMEOUT_MS / 1000)
        return (yield from real(labels, config, **kwargs))

    monkeypatch.setattr(refine, "iter_refine", held)
    _choose(w, "remove_small_objects", min_size=4)
    w._scope.value = "each"
    w.apply()
    w.cancel()
    cancelled.set()
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    assert w._status.value.startswith("cancelled")
    np.testing.assert_array_equal(layer.data, before)


def test_painting_during_a_job_is_kept(setup, qtbot, monkeypatch):
    """Pixels painted while a job runs stay painted unless the job changed them."""
    import threading

    _viewer, w, layer, _ = setup
    before = layer.data.copy()
    read, go_on = threading.Event(), threading.Event()
    real = refine.iter_refine

    def held(labels, config, **kwargs):  # the job has read the labels: hold it there
        read.set()
        assert go_on.wait(TIMEOUT_MS / 1000)
        return (yield from real(labels, config, **kwargs))

    monkeypatch.setattr(refine, "iter_refine", held)
    _choose(w, "remove_small_objects", min_size=4)
    w._scope.value = "each"
    w.apply()
    assert read.wait(TIMEOUT_MS / 1000)
    result = np.stack([refine.remove_small_objects(p, 4) for p in before])
    job_changed = result != before
    # Paint a 6x6 square of class 2 where the job changes nothing, as the brush would.
    square = (0, slice(40, 46), slice(50, 56))
    assert not job_changed[square].any()
    assert (before[square] != 2).any()
    brush = np.zeros(layer.data.shape, bool)
    brush[square] = True
    layer.data_setitem(np.nonzero(brush), 2)
    painted = layer.data.copy()
    go_on.set()
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    expected = painted.copy()
    expected[job_changed] = result[job_changed]
    np.testing.assert_array_equal(layer.data, expected)
    assert (layer.data[square] == 2).all()
    layer.undo()  # the refine step
    np.testing.assert_array_equal(layer.data, painted)
    layer.undo()  # the painting
    np.testing.assert_array_equal(layer.data, before)


def test_legend_shows_the_model_classes_and_sets_the_brush(setup):
    viewer, w, _layer, _ = setup
    legend = w.legend
    assert legend.names == tuple(CLASS_NAMES)  # no model yet: from the layer's features
    spec = ModelSpec(
        "unet",
        encoder="classic",
        in_channels=1,
        num_classes=3,
        class_names=("bg", "membrane", "nucleus"),
        options={"depth": 2, "base_width": 4},
    )
    w.current.set(create_model(spec))
    assert legend.names == ("bg", "membrane", "nucleus")
    assert [b.text for b in legend._rows] == ["0: bg", "1: membrane", "2: nucleus"]
    gt = viewer.add_labels(np.zeros((4, 48, 64), np.uint8), name="gt")
    viewer.layers.selection.active = gt
    legend._rows[2].native.click()
    assert gt.selected_label == 2
    w._labels.value = gt
    legend.colour_layer()
    assert list(gt.features["class"]) == ["bg", "membrane", "nucleus"]
    np.testing.assert_allclose(gt.colormap.map(1), spec.validate().class_colors[1], atol=1e-6)


def test_evaluate_shows_the_change_after_refining(setup, qtbot):
    viewer, w, layer, gt = setup
    gt_layer = viewer.add_labels(gt, name="gt")
    _choose(w, "remove_small_objects", min_size=4, replace_with="nearest")
    w._scope.value = "each"
    w._output.value = "new"
    _run(qtbot, w, w.apply)
    refined = viewer.layers["pred refined"]
    ev = evaluate_widget(viewer)
    ev.reset_choices()
    ev._pred.value, ev._gt.value, ev._compare.value = layer, gt_layer, refined
    ev.run()
    qtbot.waitUntil(lambda: ev._worker is None, timeout=TIMEOUT_MS)
    before, after = ev.result.scores.mean_iou, ev.compared.scores.mean_iou
    assert after > before + 0.02
    rows = ev.table_rows()
    assert rows[1]["delta IoU"] > 0  # class 1 (cytoplasm) improved


def test_the_window_stays_responsive_while_refining(
    make_napari_viewer_proxy, qtbot, notes, heartbeat
):
    """Majority smoothing of each slice of a 36x480x480 stack, applied as one undo step:
    the changed pixels are found in the worker, so the main thread only writes them."""
    viewer = make_napari_viewer_proxy()
    w = refine_widget(viewer)
    viewer.window.add_dock_widget(w, name="Refine")
    gt = np.tile(cells_3d((6, 96, 96), seed=1)[1].astype(np.uint8), (6, 5, 5))
    layer = viewer.add_labels(noisy(gt), name="pred")
    w.reset_choices()
    w._labels.value = layer
    w._scope.value = "each"
    _choose(w, "majority", radius=2)
    with heartbeat:
        _run(qtbot, w, w.apply)
    assert notes["error"] == []
    assert w.last_changed > 0
    heartbeat.check("while refining")


def test_fill_between_slices_runs_on_the_stack_and_undoes(make_napari_viewer_proxy, qtbot, notes):
    """Outlines on every 3rd slice: choosing "fill between slices" switches the scope to
    the stack; Preview shows the filled stack beside the layer, Apply fills it as one
    undoable step and never changes a drawn slice."""
    viewer = make_napari_viewer_proxy()
    w = refine_widget(viewer)
    viewer.window.add_dock_widget(w, name="Refine")
    _, gt = cells_3d((10, 48, 64), seed=3)
    sparse = np.zeros_like(gt, dtype=np.uint8)
    sparse[::3] = gt[::3]
    layer = viewer.add_labels(sparse.copy(), name="outlines")
    w.reset_choices()
    w._labels.value = layer
    w._scope.value = "slice"
    _choose(w, "interpolate_slices", method="nearest")
    assert w._scope.value == "volume"
    assert not w._scope.enabled
    assert w._preview.text == "Preview stack"
    expected = refine.interpolate_slices(sparse, method="nearest")
    _run(qtbot, w, w.preview)
    np.testing.assert_array_equal(viewer.layers["outlines [preview]"].data, expected)
    np.testing.assert_array_equal(layer.data, sparse)
    _run(qtbot, w, w.apply)
    assert notes["error"] == []
    np.testing.assert_array_equal(layer.data, expected)
    np.testing.assert_array_equal(layer.data[::3], sparse[::3])
    layer.undo()
    np.testing.assert_array_equal(layer.data, sparse)
    _choose(w, "majority")
    assert w._scope.enabled


def test_a_class_the_layer_lacks_is_warned_of_for_the_whole_layer(setup, qtbot, notes):
    """A class the layer does not hold changed nothing, silently; on the whole layer it
    is a warning now. One slice lacking a class is no mistake: no warning there."""
    _viewer, w, layer, _ = setup
    before = layer.data.copy()
    _choose(w, "keep_largest", classes="7")
    w._scope.value = "slice"
    _run(qtbot, w, w.apply)
    assert notes["warning"] == []
    w._scope.value = "volume"
    _run(qtbot, w, w.apply)
    assert notes["error"] == []
    assert notes["warning"] == [
        "napari-seg Refine: keep_largest: classes [7] not in the labels (they hold [0, 1, 2])"
    ]
    np.testing.assert_array_equal(layer.data, before)
