"""What keeps the main thread short when a job's result arrives as a new layer.

The figures behind each rule are measured by bench/responsiveness.py; these tests
check the mechanisms, not times.
"""

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari_seg._widgets import _shared  # noqa: E402
from napari_seg._widgets._layers import add_labels  # noqa: E402


def test_a_labels_layer_is_added_hidden_and_shown_on_the_next_turn(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    data = np.zeros((32, 32), np.uint8)
    data[4:9, 4:9] = 1
    layer = add_labels(viewer, data, name="result", scale=(2.0, 0.5), opacity=0.7)
    # In the viewer at once, with every keyword applied, but not drawn yet.
    assert viewer.layers["result"] is layer
    assert tuple(layer.scale) == (2.0, 0.5)
    assert layer.opacity == 0.7
    assert not layer.visible
    qtbot.waitUntil(lambda: layer.visible, timeout=2000)


def test_the_painting_overlays_wait_for_their_tool_and_the_selection_a_turn(
    make_napari_viewer_proxy, qtbot
):
    """napari builds a Labels layer's polygon and brush overlays, and brings its
    controls to the front, as it inserts it. The selection waits for the next turn,
    and each overlay until its tool is picked, which shortens the end of a job
    (bench/responsiveness.py); then the layer is as napari would have added it, also
    for a dock's proxy of the viewer."""
    viewer = make_napari_viewer_proxy()
    other = viewer.add_labels(np.zeros((8, 8), np.uint8), name="other")
    layer = add_labels(viewer, np.zeros((8, 8), np.uint8), name="late")
    polygon = layer._overlays["polygon"]
    brush = layer._overlays.get("brush_stroke")
    assert viewer.layers.selection.active.name == other.name  # not selected yet
    qtbot.waitUntil(lambda: layer.visible, timeout=2000)
    assert viewer.layers.selection.active.name == "late"
    more = viewer.add_labels(np.zeros((8, 8), np.uint8), name="more")
    assert viewer.layers.selection.active.name == more.name  # napari's flag restored
    if brush is None:
        return  # napari < 0.7 (no brush overlay) shows the polygon overlay as it inserts
    assert not polygon.visible  # nobody has painted yet: no visuals built
    assert not brush.visible
    layer.mode = "polygon"
    assert polygon.enabled
    assert polygon.visible
    # napari drew the polygon overlay's visual once it was visible
    canvas = getattr(viewer, "__wrapped__", viewer).window._qt_viewer.canvas
    assert any(o is polygon for o in _overlay_models(canvas, layer))
    assert not brush.visible
    layer.mode = "paint"
    assert brush.enabled
    assert brush.visible
    layer.mode = "polygon"  # and back: both stay shown
    assert polygon.visible
    assert brush.visible


def _overlay_models(canvas, layer):
    """The overlay models napari has built vispy visuals for, on ``layer``."""
    visuals = getattr(canvas, "_layer_overlay_to_visual", {}).get(layer, {})
    return list(visuals)


def test_a_layer_asked_hidden_stays_hidden(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = add_labels(viewer, np.zeros((8, 8), np.uint8), name="hidden", visible=False)
    qtbot.wait(50)
    assert not layer.visible


def test_a_layer_removed_before_it_is_shown_is_left_alone(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = add_labels(viewer, np.zeros((8, 8), np.uint8), name="gone")
    viewer.layers.remove(layer)
    qtbot.wait(50)  # the pending show runs, and must neither fail nor bring it back
    assert "gone" not in viewer.layers
    assert not layer.visible


def test_the_labels_warm_up_computes_vispy_line_dash_patterns():
    """The first Labels layer on a canvas builds line overlays whose dash patterns
    vispy computes once per process (60-80 ms on the main thread); the warm-up
    computes them in the background thread instead."""
    dash_atlas = pytest.importorskip("vispy.visuals.line.dash_atlas")
    dash_atlas._make_pattern.cache_clear()
    _shared._warm_labels()
    assert dash_atlas._make_pattern.cache_info().currsize >= 10


def test_closing_the_viewer_before_the_layer_is_shown_is_quiet(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = add_labels(viewer, np.zeros((8, 8), np.uint8), name="late")
    viewer.close()
    qtbot.wait(50)  # the pending show runs against a closed window: no error
    assert not layer.visible


def _dock(viewer):
    from qtpy.QtWidgets import QLabel

    label = QLabel("dock")
    viewer.window.add_dock_widget(label, name="dock")
    return label


def test_the_window_holds_its_repaints_until_the_layer_is_shown(make_napari_viewer, qtbot):
    """One repaint draws the new layer's controls, the layer list and the canvas: the
    window's updates are off from the add until the layer is shown."""
    viewer = make_napari_viewer()
    dock = _dock(viewer)
    window = dock.window()
    layer = add_labels(viewer, np.zeros((8, 8), np.uint8), name="held", window=dock)
    assert not layer.visible
    assert not window.updatesEnabled()
    qtbot.waitUntil(lambda: layer.visible, timeout=2000)
    assert window.updatesEnabled()


@pytest.mark.parametrize("case", ["hidden", "removed"])
def test_the_window_repaints_again_whatever_becomes_of_the_layer(make_napari_viewer, qtbot, case):
    viewer = make_napari_viewer()
    dock = _dock(viewer)
    layer = add_labels(
        viewer, np.zeros((8, 8), np.uint8), name="x", window=dock, visible=case != "hidden"
    )
    if case == "removed":
        viewer.layers.remove(layer)
    assert not dock.window().updatesEnabled()
    qtbot.waitUntil(lambda: dock.window().updatesEnabled(), timeout=2000)
    assert not layer.visible


def test_a_window_held_by_someone_else_is_left_to_them(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    dock = _dock(viewer)
    dock.window().setUpdatesEnabled(False)
    layer = add_labels(viewer, np.zeros((8, 8), np.uint8), name="x", window=dock)
    qtbot.waitUntil(lambda: layer.visible, timeout=2000)
    assert not dock.window().updatesEnabled()  # not ours to release
    dock.window().setUpdatesEnabled(True)


def test_closing_a_held_window_before_the_layer_is_shown_is_quiet(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = add_labels(viewer, np.zeros((8, 8), np.uint8), name="late", window=_dock(viewer))
    viewer.close()
    qtbot.wait(50)
    assert not layer.visible


@pytest.mark.parametrize(
    ("cores", "segment", "live", "train"),
    [(1, 1, 1, 1), (2, 1, 1, 2), (3, 2, 2, 3), (4, 3, 3, 3), (16, 15, 15, 15)],
)
def test_dock_jobs_leave_a_core_to_the_window(monkeypatch, cores, segment, live, train):
    # Segment's and the live refits' threads share napari's process with the window;
    # the training process keeps every core of a small machine (the reasons: _shared).
    monkeypatch.setattr(_shared.os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert [_shared.job_threads(job) for job in ("segment", "live", "train")] == [
        segment,
        live,
        train,
    ]


def test_the_cores_counted_are_those_this_process_may_use(monkeypatch):
    monkeypatch.setattr(_shared.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(_shared.os, "cpu_count", lambda: 64)
    assert _shared.job_threads("segment") == 1
