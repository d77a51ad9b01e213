"""Live update in the Train dock: strokes painted through the layer's API refit the
pixel classifier and refresh a prediction layer (run under xvfb-run)."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")


from napari_seg._widgets import _live as live_module  # noqa: E402
from napari_seg._widgets import train_widget  # noqa: E402
from napari_seg.sample_data import cells_2d  # noqa: E402

TIMEOUT_MS = 60_000


@pytest.fixture
def notes(capture_notes):
    return capture_notes(live_module)


@pytest.fixture
def painted(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    image, truth = cells_2d((256, 256), seed=3)
    viewer.add_image(image, name="cells")
    strokes = viewer.add_labels(np.zeros(image.shape, np.uint8), name="strokes")
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["cells"], strokes
    return viewer, w, strokes, truth


def _until(qtbot, w, condition, timeout=TIMEOUT_MS):
    """Wait for ``condition``, then for the live worker to be done."""
    qtbot.waitUntil(condition, timeout=timeout)
    qtbot.waitUntil(lambda: w.live._worker is None, timeout=TIMEOUT_MS)


def _paint_class(layer, truth, cls, label, count, rng):
    """Paint ``count`` brush dabs of ``label`` inside class ``cls`` of ``truth``."""
    inside = np.argwhere(truth == cls)
    layer.brush_size = 5
    for y, x in inside[rng.choice(len(inside), count, replace=False)]:
        layer.paint((float(y), float(x)), label)


def test_strokes_refit_and_refresh_the_prediction_with_a_live_gui(painted, qtbot, notes, heartbeat):
    viewer, w, strokes, truth = painted
    w.live.toggle.value = True
    rng = np.random.default_rng(0)
    _paint_class(strokes, truth, 0, 1, 12, rng)  # background painted as id 1
    _paint_class(strokes, truth, 1, 2, 12, rng)  # cells as id 2
    name = "strokes live"
    _until(qtbot, w, lambda: name in viewer.layers and w.live.refits >= 1)
    # The layers exist (napari's own cost of adding them is issue 13's); now the
    # loop itself: more strokes, debounced refits in the worker, layers updated.
    first = w.live.refits
    with heartbeat:
        for round_ in range(3):
            _paint_class(strokes, truth, 1, 2, 3, rng)
            _until(qtbot, w, lambda r=round_: w.live.refits > first + r)
    assert notes["error"] == []
    # A burst of strokes is coalesced into one refit (plus one when a refit was running).
    assert w.live.refits <= first + 6
    prediction = viewer.layers[name].data
    assert set(np.unique(prediction)) <= {0, 1, 2}
    cells = np.isin(truth, (1, 2))
    iou = (cells & (prediction == 2)).sum() / max(1, (cells | (prediction == 2)).sum())
    assert iou > 0.6, iou
    assert viewer.layers["strokes uncertainty"].data.max() > 0
    # Predictions keep the strokes' placement and colours.
    assert tuple(viewer.layers[name].scale) == tuple(strokes.scale)
    np.testing.assert_allclose(
        viewer.layers[name].colormap.map(2)[:3], strokes.colormap.map(2)[:3], atol=1e-6
    )
    heartbeat.check("while live")


def test_background_choice_makes_that_class_transparent(painted, qtbot, notes):
    viewer, w, strokes, truth = painted
    rng = np.random.default_rng(1)
    _paint_class(strokes, truth, 0, 1, 8, rng)
    _paint_class(strokes, truth, 1, 2, 8, rng)
    qtbot.waitUntil(lambda: w.classes.ids() == (1, 2), timeout=5000)
    assert w.classes.background.choices == ("none", "1", "2")
    w.classes.background.value = "1"
    w.classes.rename(2, "nucleus")
    assert w.classes.names() == {1: "class 1", 2: "nucleus"}
    w.live.toggle.value = True
    qtbot.waitUntil(lambda: w.live.refits >= 1, timeout=TIMEOUT_MS)
    layer = viewer.layers["strokes live"]
    assert layer.colormap.map(1)[3] == 0  # background transparent
    assert layer.colormap.map(2)[3] > 0
    assert list(layer.features["class"])[2] == "nucleus"
    # Picking a class in the legend sets the brush.
    w.classes.pick(2)
    assert strokes.selected_label == 2
    assert notes["error"] == []


def test_undoing_a_class_s_last_stroke_drops_its_legend_row(painted, qtbot, notes):
    """napari's undo emits no paint event: the legend kept the row of a class whose
    only stroke was undone until the next stroke; scrolling alone rebuilds nothing."""
    _viewer, w, strokes, truth = painted
    rng = np.random.default_rng(3)
    for cls, label, dabs in ((0, 1, 3), (1, 3, 1)):
        with strokes.block_history():  # one stroke, its paint event after its pixels
            _paint_class(strokes, truth, cls, label, dabs, rng)
    qtbot.waitUntil(lambda: len(w.classes.rows) == 2, timeout=5000)
    assert w.classes.background.choices == ("none", "1", "3")
    strokes.undo()
    qtbot.waitUntil(lambda: len(w.classes.rows) == 1, timeout=5000)
    assert w.classes.background.choices == ("none", "1")
    strokes.redo()
    qtbot.waitUntil(lambda: len(w.classes.rows) == 2, timeout=5000)
    assert notes["error"] == []


def test_one_class_only_says_what_is_missing(painted, qtbot, notes):
    _viewer, w, strokes, truth = painted
    _paint_class(strokes, truth, 0, 1, 4, np.random.default_rng(2))
    w.live.toggle.value = True
    qtbot.waitUntil(lambda: "two classes" in w.live.status.value, timeout=5000)
    assert w.live.refits == 0
    assert notes["error"] == []


def test_panning_predicts_the_region_come_into_view(painted, qtbot, notes):
    """Zoomed in on one corner, the strokes' refit predicts that corner; panning to the
    opposite one predicts it with the same fit (it stayed empty until a stroke)."""
    from napari_seg._widgets._layers import viewer_camera

    viewer, w, strokes, truth = painted
    camera = viewer_camera(viewer)
    camera.zoom *= 6
    camera.center = (0, 32, 32)
    w.live.toggle.value = True
    rng = np.random.default_rng(0)
    _paint_class(strokes, truth, 0, 1, 12, rng)
    _paint_class(strokes, truth, 1, 2, 12, rng)
    _until(qtbot, w, lambda: w.live.refits >= 1)
    live = viewer.layers["strokes live"]
    assert live.data[16:48, 16:48].all()  # the view: about 60 x 45 pixels around (32, 32)
    assert not live.data[192:, 192:].any()
    refits = w.live.refits
    camera.center = (0, 224, 224)
    _until(qtbot, w, lambda: live.data[208:240, 208:240].all(), timeout=10_000)
    assert w.live.refits == refits
    assert notes["error"] == []


def test_train_deep_model_scores_both_and_the_winner_becomes_current(
    painted, qtbot, notes, capture_notes
):
    from napari_seg._widgets import _train as train_module

    shown = capture_notes(train_module)
    viewer, w, strokes, truth = painted
    rng = np.random.default_rng(4)
    _paint_class(strokes, truth, 0, 1, 10, rng)
    _paint_class(strokes, truth, 1, 2, 10, rng)
    w._budget_unit.value = "epochs"
    w._budget.value = 1
    w._batch.value = 2
    w._patch.value = 64
    w.train_deep()
    assert w._worker is not None, shown["error"]
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    assert shown["error"] == []
    assert "held-out stroke agreement: deep" in w._status.value
    model = w.current.model
    assert model is not None
    assert model.spec.architecture in ("scribble-unet", "pixel-classifier")
    assert w.source.arch.value == "scribble-unet"  # no CNN to fine-tune: a new one
    layer = viewer.layers["strokes live"]
    assert set(np.unique(layer.data)) <= {0, 1, 2}
    assert (layer.data == 2).any()


def _live_on_a_plane(viewer, qtbot, image_name, strokes, truth, at):
    """Ten strokes of each class on plane ``at`` of the strokes layer (from ``truth``),
    live update on in a Train dock, and its first refit done."""
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers[image_name], strokes
    rng = np.random.default_rng(0)
    for cls, label in ((0, 1), (1, 2)):
        inside = np.argwhere(truth[at] == cls)
        for y, x in inside[rng.choice(len(inside), 10, replace=False)]:
            strokes.paint((*map(float, at), float(y), float(x)), label)
    w.live.toggle.value = True
    _until(qtbot, w, lambda: w.live.refits >= 1)
    return w


def test_live_update_on_a_stack_predicts_the_current_plane(make_napari_viewer_proxy, qtbot, notes):
    viewer = make_napari_viewer_proxy()
    planes = [cells_2d((96, 96), seed=s) for s in range(4)]
    image = np.stack([p[0] for p in planes])
    truth = np.stack([p[1] for p in planes])
    viewer.add_image(image, name="stack", scale=(3, 0.5, 0.5))
    strokes = viewer.add_labels(np.zeros(truth.shape, np.uint8), name="strokes",
                                scale=(3, 0.5, 0.5))  # fmt: skip
    viewer.dims.set_current_step(0, 2)
    _live_on_a_plane(viewer, qtbot, "stack", strokes, truth, (2,))
    assert notes["error"] == []
    live = viewer.layers["strokes live"]
    assert live.data.shape == truth.shape
    assert tuple(live.scale) == (3.0, 0.5, 0.5)
    assert (live.data[2] > 0).any()
    assert not (live.data[[0, 1, 3]] > 0).any()  # only the plane on screen


def test_live_update_in_a_3d_view_predicts_the_plane_painted(
    make_napari_viewer_proxy, qtbot, notes
):
    """In a 3D view the slider's plane is not on screen: strokes painted on plane 2
    (the slider left at 0) are predicted on plane 2, and the next strokes on plane 1
    move the prediction there."""
    viewer = make_napari_viewer_proxy()
    planes = [cells_2d((64, 64), seed=s) for s in range(4)]
    image = np.stack([p[0] for p in planes])
    truth = np.stack([p[1] for p in planes])
    viewer.add_image(image, name="stack")
    strokes = viewer.add_labels(np.zeros(truth.shape, np.uint8), name="strokes")
    viewer.dims.ndisplay = 3
    viewer.dims.set_current_step(0, 0)
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["stack"], strokes
    w.live.toggle.value = True
    rng = np.random.default_rng(0)
    for at in (2, 1):
        seen = w.live.refits
        for cls, label in ((0, 1), (1, 2)):
            inside = np.argwhere(truth[at] == cls)
            for y, x in inside[rng.choice(len(inside), 10, replace=False)]:
                strokes.paint((float(at), float(y), float(x)), label)
        _until(qtbot, w, lambda s=seen: w.live.refits > s)
        live = viewer.layers["strokes live"].data
        assert (live[at] > 0).mean() > 0.9, at
    assert notes["error"] == []
    assert not (live[[0, 3]] > 0).any()  # never the slider's plane


def test_undoing_a_stroke_refits_and_a_moved_view_is_predicted(
    make_napari_viewer_proxy, qtbot, notes
):
    """napari's undo and redo emit no paint event: the live prediction kept the undone
    stroke until the next one. And a plane scrolled to was left unpredicted until a
    stroke was painted there; it is predicted with the last fit (no refit)."""
    viewer = make_napari_viewer_proxy()
    planes = [cells_2d((96, 96), seed=s) for s in range(3)]
    image = np.stack([p[0] for p in planes])
    truth = np.stack([p[1] for p in planes])
    viewer.add_image(image, name="stack")
    strokes = viewer.add_labels(np.zeros(truth.shape, np.uint8), name="strokes")
    viewer.dims.set_current_step(0, 1)
    w = _live_on_a_plane(viewer, qtbot, "stack", strokes, truth, (1,))
    live = viewer.layers["strokes live"]
    before, refits = live.data[1].copy(), w.live.refits
    # A wrong stroke: a big dab of cell (2) on background, which the refit learns.
    wrong = np.argwhere(truth[1] == 0)
    strokes.brush_size = 15
    for y, x in wrong[np.random.default_rng(1).choice(len(wrong), 6, replace=False)]:
        strokes.paint((1.0, float(y), float(x)), 2)
    _until(qtbot, w, lambda: w.live.refits > refits)
    assert (live.data[1] != before).any()
    for _ in range(6):
        strokes.undo()
    _until(qtbot, w, lambda: w.live.refits > refits + 1, timeout=10_000)
    np.testing.assert_array_equal(live.data[1], before)  # the same strokes, the same fit
    # Scrolling to plane 0: predicted with that fit, without a refit.
    refits = w.live.refits
    assert not live.data[0].any()
    viewer.dims.set_current_step(0, 0)
    _until(qtbot, w, lambda: live.data[0].any(), timeout=10_000)
    assert w.live.refits == refits
    assert ((live.data[0] == 2) == (truth[0] == 1)).mean() > 0.8
    assert notes["error"] == []


def test_live_update_on_a_time_lapse_of_stacks_predicts_the_plane_on_screen(
    make_napari_viewer_proxy, qtbot, notes
):
    """A TZYX layer steps through two sliders (stack axes (0, 1)): indexing the
    current position by that pair raised a TypeError in the viewer; the plane on
    screen is frame t, slice z."""
    viewer = make_napari_viewer_proxy()
    planes = [cells_2d((64, 64), seed=s) for s in range(6)]
    image = np.stack([p[0] for p in planes]).reshape(2, 3, 64, 64)
    truth = np.stack([p[1] for p in planes]).reshape(2, 3, 64, 64)
    viewer.add_image(image, name="movie")
    strokes = viewer.add_labels(np.zeros(truth.shape, np.uint8), name="strokes")
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 2)
    _live_on_a_plane(viewer, qtbot, "movie", strokes, truth, (1, 2))
    assert notes["error"] == []
    live = np.array(viewer.layers["strokes live"].data)
    predicted = live[1, 2].copy()
    assert (predicted > 0).mean() > 0.9
    live[1, 2] = 0
    assert not live.any()  # only the plane on screen
    # the classes follow that plane's image (not another frame's)
    assert ((predicted == 2) == (truth[1, 2] == 1)).mean() > 0.8


def test_closing_after_qt_deleted_the_timer_is_quiet(painted):
    # At a script's exit Qt may delete the panel's timer before the dock's destroyed
    # signal reaches close(): that was a RuntimeError traceback in napari's log.
    from qtpy.QtCore import QCoreApplication, QEvent

    _viewer, w, _strokes, _truth = painted
    w.live._timer.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    with pytest.raises(RuntimeError, match="has been deleted"):
        w.live._timer.isActive()  # gone, as at exit
    w.live.close()


def test_strokes_placed_elsewhere_than_the_image_are_named_once(painted, qtbot, notes):
    _viewer, w, strokes, truth = painted
    strokes.rotate = 15  # turned with the transform tool: strokes land elsewhere on screen
    w.live.toggle.value = True
    rng = np.random.default_rng(4)
    _paint_class(strokes, truth, 0, 1, 6, rng)
    _paint_class(strokes, truth, 1, 2, 6, rng)
    _until(qtbot, w, lambda: w.live.refits >= 1)
    _paint_class(strokes, truth, 1, 2, 2, rng)
    qtbot.waitUntil(lambda: w.live.refits >= 2, timeout=TIMEOUT_MS)
    assert len(notes["warning"]) == 1
    assert "cells and strokes are placed differently" in notes["warning"][0]
    assert notes["error"] == []


def test_live_update_on_a_two_channel_layer_reads_both_channels(
    make_napari_viewer_proxy, qtbot, notes
):
    """A CYX layer (a two-channel TIFF opened whole) painted with YX strokes: the
    classifier reads both channels (its channel slider is the axis the strokes lack);
    it refused 'labels shape (96, 96) does not match the image shape (2, 96, 96)'."""
    viewer = make_napari_viewer_proxy()
    image, truth = cells_2d((96, 96), seed=3)
    rng = np.random.default_rng(1)
    noise = rng.random(image.shape).astype(np.float32)
    viewer.add_image(np.stack([noise, image]), name="two")  # channel 1 has the cells
    strokes = viewer.add_labels(np.zeros(truth.shape, np.uint8), name="strokes")
    viewer.dims.set_current_step(0, 0)  # the noise channel on screen
    w = _live_on_a_plane(viewer, qtbot, "two", strokes, truth, ())
    assert notes["error"] == []
    assert w.live._session.config.channel_axis == 0
    predicted = viewer.layers["strokes live"].data
    assert predicted.shape == truth.shape
    assert ((predicted == 2) == (truth == 1)).mean() > 0.8


def test_a_failed_refit_is_a_notification_only(painted, qtbot, notes, monkeypatch):
    """A refit that raises ends in one error notification: the worker's error used to be
    re-raised in Qt's event loop too (napari's traceback dialog; an abort without
    napari's exception hook)."""
    from napari_seg.training import live as core_live

    def broken(self, *args):
        raise ValueError("the strokes cannot be read")

    monkeypatch.setattr(core_live.LiveClassifier, "update", broken)
    _viewer, w, strokes, truth = painted
    w.live.toggle.value = True
    rng = np.random.default_rng(0)
    _paint_class(strokes, truth, 0, 1, 4, rng)
    _paint_class(strokes, truth, 1, 2, 4, rng)
    _until(qtbot, w, lambda: bool(notes["error"]))
    assert notes["error"] == ["napari-seg live update: the strokes cannot be read"]
    assert w.live.status.value == "live: the last refit failed"


def test_choosing_other_layers_during_a_refit_refits_for_them(
    make_napari_viewer_proxy, qtbot, notes, monkeypatch
):
    """The pair changes while a refit runs: its result (for the old layers) is dropped
    and the new pair is fitted. Writing it raised 'could not broadcast input array
    from shape (128, 62) into shape (64, 47)' in Qt's event loop."""
    import threading

    from napari_seg.training import live as core_live

    gate, real = threading.Event(), core_live.LiveClassifier.update

    def held(self, *args):
        gate.wait(TIMEOUT_MS / 1000)
        return real(self, *args)

    monkeypatch.setattr(core_live.LiveClassifier, "update", held)
    viewer = make_napari_viewer_proxy()
    rng = np.random.default_rng(0)
    pairs = []
    for name, shape, seed in (("a", (128, 128), 3), ("b", (64, 80), 4)):
        image, truth = cells_2d(shape, seed=seed)
        viewer.add_image(image, name=name)
        strokes = viewer.add_labels(np.zeros(shape, np.uint8), name=f"{name} strokes")
        for cls, label in ((0, 1), (1, 2)):
            inside = np.argwhere(truth == cls)
            for y, x in inside[rng.choice(len(inside), 10, replace=False)]:
                strokes.data[y, x] = label
        pairs.append((viewer.layers[name], strokes))
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.reset_choices()
    w._image.value, w._labels.value = pairs[0]
    w.live.toggle.value = True
    qtbot.waitUntil(lambda: w.live._worker is not None, timeout=TIMEOUT_MS)
    w._image.value, w._labels.value = pairs[1]  # while the first refit runs
    gate.set()
    _until(qtbot, w, lambda: w.live.refits >= 1)
    assert notes["error"] == []
    assert "a strokes live" not in viewer.layers
    live = viewer.layers["b strokes live"].data
    assert live.shape == (64, 80)
    assert (live > 0).any()
