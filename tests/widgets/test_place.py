"""Layers made from a layer lie on it wherever the user moved it: scale, translate,
rotation, shear and affine (``_widgets._place``), in the docks that make them."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari.layers import Image, Labels  # noqa: E402

from napari_seg._layers import labels_layer_kwargs  # noqa: E402
from napari_seg._widgets import _segment as segment_module  # noqa: E402
from napari_seg._widgets import evaluate_widget, refine_widget, segment_widget  # noqa: E402
from napari_seg._widgets._place import Place  # noqa: E402
from napari_seg.models import ModelSpec, create_model  # noqa: E402
from napari_seg.sample_data import CLASS_COLORS, CLASS_NAMES, cells_2d, cells_3d  # noqa: E402

TIMEOUT_MS = 120_000
#: A 3D affine turning y and x by 20 degrees about z and moving the layer.
TURN = np.array(
    [
        [1.0, 0.0, 0.0, 3.0],
        [0.0, np.cos(0.35), -np.sin(0.35), -7.0],
        [0.0, np.sin(0.35), np.cos(0.35), 11.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _moved(shape, units=("mm", "um", "um")):
    """A 3D Image layer with every part of napari's placement set (the widget tests
    leave units out: the viewer's world would be in micrometres, a z of 2 mm at 2000)."""
    data = np.zeros(shape, np.float32)
    return Image(data, name="img", scale=(2.0, 0.5, 0.25), translate=(1.0, -4.0, 6.0),
                 rotate=np.array(TURN[:3, :3]), shear=[0.0, 0.0, 0.2], affine=TURN,
                 units=units)  # fmt: skip


def _same_world(a, b, points, offset=(0,)):
    """Layer ``b``'s pixel ``p`` lies where ``a``'s pixel ``p + offset`` does."""
    for p in points:
        q = np.add(p, offset)
        np.testing.assert_allclose(b.data_to_world(p), a.data_to_world(q), atol=1e-9)


POINTS = [(0, 0, 0), (3, 7, 2), (1, 15, 9)]


def test_a_layer_made_from_a_place_lies_on_its_source():
    source = _moved((4, 16, 12))
    made = Labels(np.zeros((4, 16, 12), np.uint8), **Place.of(source).kwargs())
    _same_world(source, made, POINTS)
    assert tuple(str(u) for u in made.units) == ("millimeter", "micrometer", "micrometer")
    # A region starting at pixel (1, 5, 3) of the source: its pixel p is the source's p + origin.
    region = Labels(np.zeros((2, 4, 4), np.uint8), **Place.of(source).shifted((1, 5, 3)).kwargs())
    _same_world(source, region, POINTS, offset=(1, 5, 3))
    # Probabilities: a class axis in front, each class image on the source.
    probs = Image(np.zeros((3, 4, 16, 12)), **Place.of(source).with_leading_axis().kwargs())
    for p in POINTS:
        np.testing.assert_allclose(probs.data_to_world((2, *p))[1:], source.data_to_world(p))
    assert Place.of(source).matches(Place.of(made))
    assert not Place.of(source).matches(Place.of(Labels(np.zeros((4, 16, 12), np.uint8))))


def test_leaving_out_an_axis_keeps_the_transform_unless_it_mixes_that_axis():
    # A channel axis first (C, Y, X): the turn of y and x is kept for a 2D result.
    turn = np.eye(4)
    turn[1:3, 1:3] = TURN[1:3, 1:3]
    turn[1:3, 3] = (5.0, -2.0)
    source = Image(np.zeros((2, 16, 12)), scale=(1, 0.5, 0.5), translate=(0, 3, 4), affine=turn)
    kept = Place.of(source, [1, 2])
    assert kept.note is None
    made = Labels(np.zeros((16, 12), np.uint8), **kept.kwargs())
    for p in [(0, 0), (7, 2), (15, 9)]:
        np.testing.assert_allclose(made.data_to_world(p), source.data_to_world((0, *p))[1:])
    # Turning z into y cannot be kept in y and x alone: placed by scale and translate.
    c, s = np.cos(0.3), np.sin(0.3)
    tilt = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    mixed = Image(np.zeros((4, 16, 12)), name="img", scale=(2, 0.5, 0.25), translate=(1, -4, 6),
                  rotate=tilt)  # fmt: skip
    flat = Place.of(mixed, [1, 2])
    assert flat.rotate is None
    assert flat.affine is None
    assert flat.shear is None
    assert "img's rotation, shear or affine transform mixes" in flat.note
    assert flat.scale == (0.5, 0.25)
    assert flat.translate == (-4.0, 6.0)


def _model():
    spec = ModelSpec("unet", encoder="classic", in_channels=1, num_classes=3,
                     class_names=CLASS_NAMES, options={"depth": 2, "base_width": 4})  # fmt: skip
    return create_model(spec).eval()


def test_segment_places_labels_and_probabilities_on_a_moved_image(
    make_napari_viewer_proxy, qtbot, capture_notes
):
    notes = capture_notes(segment_module)
    viewer = make_napari_viewer_proxy()
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    w.current.set(_model(), path=None, dirty=True)
    w._precision.value = "fp32"
    image, _ = cells_3d((4, 48, 40), seed=1)
    layer = _moved(image.shape, units=None)
    layer.data = image.astype(np.float32)
    viewer.add_layer(layer)
    viewer.dims.set_point(0, layer.data_to_world((2, 0, 0))[0])
    w.reset_choices()
    w._image.value = layer
    w._scope.value = "slice"
    w._probabilities.value = True
    w.run()
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    assert notes["error"] == []
    assert notes["warning"] == []
    labels = viewer.layers["img labels [unet-classic]"]
    _same_world(layer, labels, POINTS)
    probs = viewer.layers["img probabilities [unet-classic]"]
    step = int(np.round(layer.world_to_data(viewer.dims.point)[0]))
    assert step == 2
    assert probs.data.shape[1] == 1  # the current slice, at its place in the stack
    for p in [(0, 0), (7, 2), (30, 9)]:
        np.testing.assert_allclose(
            probs.data_to_world((1, 0, *p))[1:], layer.data_to_world((step, *p)), atol=1e-9
        )


def test_evaluate_overlay_and_refine_results_lie_on_their_layer(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    _, gt = cells_3d((4, 32, 40), seed=2)
    gt = gt.astype(np.uint8)
    place = Place.of(_moved(gt.shape, units=None)).kwargs()
    kw = labels_layer_kwargs("gt", CLASS_NAMES, CLASS_COLORS)
    viewer.add_labels(gt, **place, **kw)
    pred = viewer.add_labels(gt[::-1].copy(), name="pred", **place)
    ev = evaluate_widget(viewer)
    viewer.window.add_dock_widget(ev, name="Evaluate")
    ev.reset_choices()
    ev._pred.value, ev._gt.value = pred, viewer.layers["gt"]
    ev.run()
    qtbot.waitUntil(lambda: ev._worker is None, timeout=TIMEOUT_MS)
    ev.show_errors()
    qtbot.waitUntil(lambda: ev._worker is None, timeout=TIMEOUT_MS)
    _same_world(pred, viewer.layers["pred errors"], POINTS)

    rf = refine_widget(viewer)
    viewer.window.add_dock_widget(rf, name="Refine")
    rf.reset_choices()
    rf._labels.value = pred
    rf._op.value = "opening"
    rf._params["radius"].value = 1
    viewer.dims.set_point(0, pred.data_to_world((2, 0, 0))[0])
    index = int(np.round(pred.world_to_data(viewer.dims.point)[0]))
    assert index == 2
    rf.preview()
    qtbot.waitUntil(lambda: rf._worker is None, timeout=TIMEOUT_MS)
    preview = viewer.layers["pred [preview]"]
    assert preview.data.shape[0] == 1
    _same_world(pred, preview, [(0, 0, 0), (0, 7, 2), (0, 15, 9)], offset=(index, 0, 0))


def _train_with_preview(viewer, layer, truth):
    """A Train dock on ``layer`` and ``truth`` with the preview on, and its job's inputs."""
    from napari_seg._widgets import train_widget

    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.current.set(_model(), path=None, dirty=True)
    w.reset_choices()
    w._image.value, w._labels.value = layer, truth
    w._label0.value = "background"
    w._preview.value = True
    return w, w._make_job()


def test_the_training_preview_lies_on_the_image(make_napari_viewer_proxy, capture_notes):
    from napari_seg._widgets import _train as train_module

    notes = capture_notes(train_module)

    viewer = make_napari_viewer_proxy()
    image, labels = cells_2d((96, 80), seed=2)
    kept = Place.of(_moved((1, 96, 80), units=None), [1, 2]).kwargs()
    layer = viewer.add_image(image, name="cells", **kept)
    truth = viewer.add_labels(labels, name="truth", **kept)
    w, inputs = _train_with_preview(viewer, layer, truth)
    origin = inputs.preview.origin  # the part of the image on screen
    (y, x), (h, wide) = origin, inputs.preview.image.shape
    np.testing.assert_array_equal(inputs.preview.image, image[y : y + h, x : x + wide])
    preview = Labels(np.zeros((h, wide), np.uint8), **inputs.preview.place.kwargs())
    _same_world(layer, preview, [(0, 0), (7, 2), (30, 9)], offset=origin)
    assert notes["warning"] == []
    # Labels placed elsewhere than the image: paired index by index, and the dock says so.
    truth.translate = (truth.translate[0], truth.translate[1] + 8)
    w._make_job()
    assert len(notes["warning"]) == 1
    assert "cells and truth are placed differently" in notes["warning"][0]


def test_segment_says_when_a_turn_cannot_be_kept(make_napari_viewer_proxy, qtbot, capture_notes):
    notes = capture_notes(segment_module)
    viewer = make_napari_viewer_proxy()
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    spec = ModelSpec("unet", encoder="classic", in_channels=2, num_classes=3,
                     options={"depth": 2, "base_width": 4})  # fmt: skip
    w.current.set(create_model(spec).eval(), path=None, dirty=True)
    c, s = np.cos(0.3), np.sin(0.3)
    tilt = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # channels into y
    image = np.random.default_rng(0).random((2, 48, 40)).astype(np.float32)
    layer = viewer.add_image(image, name="two", scale=(1, 0.5, 0.5), rotate=tilt)
    w.reset_choices()
    w._image.value = layer
    w.run()
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    assert notes["error"] == []
    assert any("placed by scale and translate alone" in n for n in notes["warning"])
    labels = viewer.layers["two labels [unet-classic]"]
    assert labels.data.shape == (48, 40)
    assert tuple(labels.scale) == (0.5, 0.5)


def test_the_visible_region_of_a_turned_layer_holds_the_whole_view(make_napari_viewer_proxy, qtbot):
    """The live loop and the Train preview read the part of a layer on screen: under a
    rotation two opposite corners of the view do not bound it, all four do."""
    from napari_seg._widgets._layers import visible_region

    viewer = make_napari_viewer_proxy(show=True)
    layer = viewer.add_image(np.zeros((600, 600), np.float32), rotate=45)
    scene = getattr(viewer, "scene", None)  # napari 0.9 moved the camera there
    camera = scene.camera if scene is not None else viewer.camera
    camera.center = tuple(layer.data_to_world((300, 300)))
    camera.zoom = 3 * camera.zoom
    qtbot.wait(100)
    ys, xs = visible_region(viewer, layer, [0, 1])
    canvas = getattr(viewer, "canvas", None) or viewer.window._qt_viewer.canvas  # napari < 0.9
    height, width = canvas.size
    for row in (-1, 1):
        for col in (-1, 1):
            corner = np.add(camera.center[-2:], (row * height / 2 / camera.zoom,
                                                 col * width / 2 / camera.zoom))  # fmt: skip
            y, x = layer.world_to_data(corner)
            assert ys.start <= y <= ys.stop, (row, col)
            assert xs.start <= x <= xs.stop, (row, col)


def test_segment_again_after_moving_the_image_moves_its_labels_with_it(
    make_napari_viewer_proxy, qtbot
):
    viewer = make_napari_viewer_proxy()
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    w.current.set(_model(), path=None, dirty=True)
    w._precision.value = "fp32"
    layer = viewer.add_image(cells_2d((64, 80), seed=2)[0], name="img", scale=(0.5, 0.5))
    w.reset_choices()
    w._image.value = layer
    for turn in (None, TURN[1:, 1:]):  # segment, move the image (transform tool), again
        if turn is not None:
            layer.affine = turn
            layer.translate = (3.0, -2.0)
        w.run()
        qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
        labels = viewer.layers["img labels [unet-classic]"]
        _same_world(layer, labels, [(0, 0), (7, 2), (60, 79)])
    assert len(viewer.layers) == 2  # the same labels layer, updated


def test_the_canvas_size_is_found_before_napari_0_9_too():
    """napari before 0.9 has no ``viewer.canvas``: the region on screen then came out
    as the whole plane (up to 2048 pixels a side), and the live loop predicted it all."""
    from types import SimpleNamespace

    from napari_seg._widgets._layers import _canvas_size

    new = SimpleNamespace(canvas=SimpleNamespace(size=(651, 912)))
    old = SimpleNamespace(window=SimpleNamespace(_qt_viewer=new))
    assert _canvas_size(new) == (651, 912)
    assert _canvas_size(old) == (651, 912)
    assert _canvas_size(SimpleNamespace()) == (0, 0)


def test_the_training_preview_of_a_sheared_stack_lies_on_its_slice(
    make_napari_viewer_proxy, capture_notes
):
    """A light-sheet stack deskewed by a shear between z and y cannot place a 2D
    preview by y and x alone: it is placed along every axis, at the current slice."""
    from napari_seg._widgets import _train as train_module

    notes = capture_notes(train_module)
    viewer = make_napari_viewer_proxy()
    image, labels = cells_3d((6, 64, 48), seed=1)
    place = {"scale": (2.0, 0.5, 0.5), "shear": [0.7, 0.0, 0.0]}  # y shifts with z
    layer = viewer.add_image(image.astype(np.float32), name="stack", **place)
    truth = viewer.add_labels(labels, name="truth", **place)
    # The whole point: along a shear, which slice is current depends on y as well.
    viewer.dims.set_point([0, 1, 2], tuple(layer.data_to_world((3, 0, 0))))
    w, inputs = _train_with_preview(viewer, layer, truth)
    origin = inputs.preview.origin
    assert origin[0] == 3
    assert inputs.preview.expand == (0,)
    assert notes["warning"] == []
    # What the dock shows when training sends a preview.
    from napari_seg.training.events import PreviewReady

    w._inputs, w._classes = inputs, (CLASS_NAMES, CLASS_COLORS)
    w._show_preview(PreviewReady(1, np.ones(inputs.preview.image.shape, np.uint8)))
    shown = viewer.layers["stack preview"]
    assert shown.data.shape == (1, *inputs.preview.image.shape)
    _same_world(layer, shown, [(0, 0, 0), (0, 7, 2), (0, 30, 9)], offset=origin)
