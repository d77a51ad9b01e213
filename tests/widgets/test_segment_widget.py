"""Segment widget in a real napari viewer (run under xvfb-run)."""

import numpy as np
import pytest
import tifffile
import torch

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")


from napari_seg._widgets import _segment as segment_module  # noqa: E402
from napari_seg._widgets import _segment_output as segment_output  # noqa: E402
from napari_seg._widgets import segment_widget  # noqa: E402
from napari_seg.inference import PredictConfig, predict  # noqa: E402
from napari_seg.models import ModelSpec, create_model, save_model  # noqa: E402
from napari_seg.sample_data import cells_2d, cells_3d  # noqa: E402

TIMEOUT_MS = 120_000


def _model(in_channels=1):
    torch.manual_seed(0)
    spec = ModelSpec(
        "unet",
        encoder="classic",
        in_channels=in_channels,
        num_classes=3,
        class_names=("background", "cytoplasm", "nucleus"),
        options={"depth": 3, "base_width": 8},
    )
    return create_model(spec).eval()


@pytest.fixture
def notes(capture_notes):
    return capture_notes(segment_module)


@pytest.fixture
def setup(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    w.current.set(_model(), path=None, dirty=True)
    w._precision.value = "fp32"
    return viewer, w


def _select(w, layer):
    w.reset_choices()
    w._image.value = layer


def _run(qtbot, w):
    w.run()
    assert w._worker is not None, "the run did not start"
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)


def test_segment_creates_then_updates_a_labels_layer(setup, qtbot, notes, monkeypatch):
    viewer, w = setup
    image, _ = cells_2d((200, 260), seed=4)
    layer = viewer.add_image(image, name="cells", scale=(0.5, 0.25), translate=(10, 20))
    _select(w, layer)
    w._tile.value = 96
    held = []  # whether the window's repaints were held while the new layer was added
    real_add = segment_output.add_labels

    def add_labels(*args, **kwargs):
        added = real_add(*args, **kwargs)
        held.append(not w.native.window().updatesEnabled())
        return added

    monkeypatch.setattr(segment_output, "add_labels", add_labels)
    _run(qtbot, w)
    assert notes["error"] == []
    assert held == [True]
    qtbot.waitUntil(lambda: w.native.window().updatesEnabled(), timeout=2000)
    out = viewer.layers["cells labels [unet-classic]"]
    assert isinstance(out, napari.layers.Labels)
    assert tuple(out.scale) == (0.5, 0.25)
    assert tuple(out.translate) == (10, 20)
    assert list(out.features["class"]) == ["background", "cytoplasm", "nucleus"]
    expected = predict(w.current.model, image, tile=96, precision="fp32").labels
    np.testing.assert_array_equal(out.data, expected)
    assert "done in" in w._status.value
    # Running again updates the same layer instead of adding one.
    out.data[:] = 0
    _run(qtbot, w)
    assert len(viewer.layers) == 2
    np.testing.assert_array_equal(viewer.layers["cells labels [unet-classic]"].data, expected)
    # ...as one undoable step: undo brings back what was there before the run.
    out.undo()
    assert not out.data.any()


@pytest.mark.parametrize("replaced", [False, True])
def test_an_update_is_compared_in_the_worker(setup, qtbot, notes, monkeypatch, replaced):
    """The second run finds the pixels it changes in the worker; the main thread writes
    only those. If the layer's data is replaced meanwhile, the write compares again."""
    import threading

    viewer, w = setup
    image, _ = cells_2d((160, 200), seed=2)
    _select(w, viewer.add_image(image, name="cells"))
    w._tile.value = 96
    _run(qtbot, w)
    out = viewer.layers["cells labels [unet-classic]"]
    expected = out.data.copy()
    out.data[40:80, 50:120] = 0  # what the second run puts back
    compared, written, go_on = [], [], threading.Event()
    real_compare, real_write = segment_output.changed_positions, segment_output.write_undoable

    def compare(new, old):
        compared.append(threading.current_thread() is threading.main_thread())
        go_on.wait(timeout=TIMEOUT_MS / 1000)
        return real_compare(new, old)

    def write(layer, index, values, *, changed=None, **kwargs):
        written.append(changed)
        return real_write(layer, index, values, changed=changed, **kwargs)

    monkeypatch.setattr(segment_output, "changed_positions", compare)
    monkeypatch.setattr(segment_output, "write_undoable", write)
    w.run()
    qtbot.waitUntil(lambda: bool(compared), timeout=TIMEOUT_MS)
    if replaced:  # the user loads other labels into the layer while the job runs
        out.data = np.full_like(expected, 2)
    go_on.set()
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    assert notes["error"] == []
    assert compared == [False]  # once, in the worker
    np.testing.assert_array_equal(out.data, expected)
    if replaced:
        assert written == [None]
    else:
        (changed,) = written
        assert len(changed[0]) == np.count_nonzero(expected[40:80, 50:120])
    out.undo()
    assert out.data[40:80, 50:120].any() == replaced


def test_probabilities_layer(setup, qtbot, notes):
    viewer, w = setup
    layer = viewer.add_image(cells_2d((96, 128))[0], name="img", scale=(2, 2))
    _select(w, layer)
    w._probabilities.value = True
    _run(qtbot, w)
    probs = viewer.layers["img probabilities [unet-classic]"]
    assert probs.data.shape == (3, 96, 128)
    assert tuple(probs.scale) == (1, 2, 2)
    np.testing.assert_allclose(np.asarray(probs.data, np.float32).sum(0), 1, atol=3e-3)


def test_test_time_mirroring_from_the_dock(setup, qtbot, notes):
    viewer, w = setup
    image = cells_2d((96, 128))[0]
    _select(w, viewer.add_image(image, name="img"))
    w._probabilities.value = w._tta.value = True
    _run(qtbot, w)
    assert notes["error"] == []
    assert "mirrored x4" in w._head
    probs = np.asarray(viewer.layers["img probabilities [unet-classic]"].data, np.float32)
    run = {"probabilities": True, "precision": "fp32"}
    mirrored = predict(w.current.model, image, tta=True, **run).probabilities
    plain = predict(w.current.model, image, **run).probabilities
    np.testing.assert_allclose(probs, mirrored, atol=1e-3)
    assert np.abs(probs - plain).max() > 1e-3


def test_an_ensemble_averages_the_current_model_with_model_files(
    setup, qtbot, notes, tmp_path, monkeypatch
):
    from napari_seg import models
    from napari_seg.models import ensemble, load_model

    viewer, w = setup
    image = cells_2d((96, 128))[0]
    _select(w, viewer.add_image(image, name="img"))
    torch.manual_seed(1)
    other = create_model(w.current.model.spec).eval()  # another seed, same reading
    path = save_model(other, tmp_path / "seed1.safetensors")
    w._members.value = [path]
    w._probabilities.value = True
    _run(qtbot, w)
    assert notes["error"] == []
    assert w._head.startswith("an ensemble of 2 models running on")
    assert "; an ensemble of 2 models" in w._status.value  # the line that stays
    probs = np.asarray(viewer.layers["img probabilities [unet-classic + 1]"].data, np.float32)
    both = ensemble([w.current.model, load_model(path)])
    expected = predict(both, image, probabilities=True, precision="fp32").probabilities
    np.testing.assert_allclose(probs, expected, atol=1e-3)
    alone = predict(w.current.model, image, probabilities=True, precision="fp32").probabilities
    assert np.abs(probs - alone).max() > 1e-2
    assert w.current.model.spec == other.spec  # the current model is still the one model

    # A member that reads other things is named, from its file's header before any
    # weight is read, and no layer is added.
    save_model(_model(in_channels=2), tmp_path / "two.safetensors")
    w._members.value = [tmp_path / "two.safetensors"]
    before = [layer.name for layer in viewer.layers]
    loaded = []
    monkeypatch.setattr(
        models, "load_model", lambda *a, **k: loaded.append(a) or load_model(*a, **k)
    )
    _run(qtbot, w)
    assert any("differs from model 1 in its input channels" in m for m in notes["error"])
    assert loaded == []
    assert [layer.name for layer in viewer.layers] == before
    w._members.value = [tmp_path / "gone.safetensors"]
    w.run()
    assert "average with: no model file at" in notes["error"][-1]
    assert w._worker is None


def test_objects_of_a_stack_are_numbered_slice_by_slice(setup, qtbot, notes):
    from napari_seg.refine import number_objects

    viewer, w = setup
    stack = cells_3d((3, 64, 80), seed=1)[0]
    layer = viewer.add_image(stack, name="stack", scale=(3, 0.5, 0.5))
    _select(w, layer)
    w._scope.value = "stack"
    w._objects.value = True
    _run(qtbot, w)
    assert notes["error"] == []
    labels = viewer.layers["stack labels [unet-classic]"]
    objects = viewer.layers["stack objects [unet-classic]"]
    spec = w.current.model.spec
    expected = number_objects(labels.data, spec.class_names, background=0, slice_axes=(0,))
    np.testing.assert_array_equal(objects.data, expected)
    assert objects.data.max() > 0
    assert tuple(objects.scale) == tuple(labels.scale) == (3, 0.5, 0.5)
    _run(qtbot, w)  # a second run replaces the objects layer
    assert [ly.name for ly in viewer.layers].count("stack objects [unet-classic]") == 1
    # a model trained on strokes (no background class): refused before any work
    torch.manual_seed(0)
    strokes = ModelSpec("unet", encoder="classic", in_channels=1, num_classes=3,
                        class_names=("unlabelled", "a", "b"), untrained_classes=(0,),
                        background=None, options={"depth": 3, "base_width": 8})  # fmt: skip
    w.current.set(create_model(strokes).eval(), path=None, dirty=True)
    w.run()
    assert w._worker is None
    assert "no background class" in notes["error"][-1]


@pytest.mark.parametrize("scope", ["slice", "stack"])
def test_stack_scopes(setup, qtbot, notes, scope):
    viewer, w = setup
    stack = cells_3d((4, 64, 80), seed=1)[0]
    layer = viewer.add_image(stack, name="stack")
    viewer.dims.set_current_step(0, 2)
    _select(w, layer)
    w._scope.value = scope
    _run(qtbot, w)
    assert notes["error"] == []
    out = viewer.layers["stack labels [unet-classic]"].data
    assert out.shape == stack.shape
    expected = predict(w.current.model, stack, axis=0, precision="fp32").labels
    if scope == "stack":
        np.testing.assert_array_equal(out, expected)
    else:
        alone = predict(w.current.model, stack[2], precision="fp32").labels
        np.testing.assert_array_equal(out[2], alone)
        assert not out[[0, 1, 3]].any()


def test_visible_region_scope(make_napari_viewer_proxy, qtbot, notes):
    # The canvas must be shown for napari to compute the visible corners.
    viewer = make_napari_viewer_proxy(show=True)
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    w.current.set(_model(), path=None, dirty=True)
    layer = viewer.add_image(cells_2d((400, 400))[0], name="big")
    scene = getattr(viewer, "scene", None)  # napari 0.9 moved the camera there
    camera = scene.camera if scene is not None else viewer.camera
    camera.center = (100, 100)
    camera.zoom = 4 * camera.zoom
    qtbot.wait(200)  # let the canvas redraw and update the visible corners
    corners = np.asarray(layer.corner_pixels).copy()
    assert (corners[1] - corners[0]).max() < 300, "the canvas did not report a zoomed view"
    _select(w, layer)
    w._scope.value = "visible"
    w._probabilities.value = True
    _run(qtbot, w)
    assert notes["error"] == []
    probs = viewer.layers["big probabilities [unet-classic]"]
    # Only the visible part was segmented, and it sits where it was seen.
    assert probs.data.shape[1:] == tuple(np.minimum(corners[1] + 1, 400) - corners[0])
    assert tuple(probs.translate[1:]) == tuple(corners[0])


def test_cancel_after_the_first_event_leaves_the_viewer_as_it_was(setup, qtbot, notes):
    viewer, w = setup
    layer = viewer.add_image(cells_2d((512, 512))[0], name="cells")
    _select(w, layer)
    w._tile.value = 64
    w._batch.value = 1
    progress = []

    def on_event(event):
        progress.append(event)
        w.cancel()

    w.run()
    w._worker.yielded.connect(on_event)
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert "cancelled" in w._status.value
    assert len(progress) <= 3  # started, at most a batch or two
    assert w._run.enabled
    assert not w._cancel.enabled
    assert all(p.is_contiguous() for p in w.current.model.parameters())  # job was closed


def test_a_model_replaced_while_segmenting_is_released_when_the_run_ends(
    setup, qtbot, notes, monkeypatch
):
    """Creating or loading another model released the running one at once: on a GPU
    that moved its weights to the CPU under the worker's forward, and the run failed
    with tensors on two devices. It is released when the run that uses it ends."""
    from napari_seg._widgets import _current

    viewer, w = setup
    released = []
    monkeypatch.setattr(_current, "_release", released.append)
    running = w.current.model
    layer = viewer.add_image(cells_2d((512, 512))[0], name="cells")
    _select(w, layer)
    w._tile.value = 64
    w._batch.value = 1
    w.run()
    w.current.set(_model(), path=None, dirty=True)  # Model > Create while it runs
    assert released == []
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    assert released == [running]
    assert notes["error"] == []
    assert viewer.layers["cells labels [unet-classic]"].data.shape == (512, 512)
    w.current.set(_model(), path=None, dirty=True)  # no run: released at once
    assert len(released) == 2


def test_the_window_stays_responsive_while_segmenting(setup, qtbot, notes, heartbeat):
    viewer, w = setup
    layer = viewer.add_image(cells_2d((1536, 1536))[0], name="cells")
    _select(w, layer)
    w._tile.value = 128
    with heartbeat:
        w.run()
        qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    heartbeat.check("while segmenting")


def test_a_run_here_leaves_a_core_to_the_window(setup, qtbot, notes, monkeypatch):
    # On a 2-core machine 2 torch threads beside the window stalled it (heartbeat
    # p99 15-24 ms against 10-11 with one; docs/performance.md).
    from napari_seg._widgets import _shared

    viewer, w = setup
    monkeypatch.setattr(_shared.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    threads = []
    real = segment_module.predict_job

    def job(model, image, config, *rest, cancel):
        threads.append(config.threads)
        return (yield from real(model, image, config, *rest, cancel=cancel))

    monkeypatch.setattr(segment_module, "predict_job", job)
    _select(w, viewer.add_image(cells_2d((96, 96))[0], name="cells"))
    assert w._threads.value is None  # "auto"
    _run(qtbot, w)
    assert threads == [1]
    assert "1 thread," in w._head  # the status line says what runs
    assert w.config().threads is None  # what the fields say (a cluster's workers: their own)
    w._threads.value = 2  # the user's choice wins
    _run(qtbot, w)
    assert threads == [1, 2]
    assert "2 threads," in w._head
    sent = []  # a cluster's workers keep their own counts: the field is this process's

    def cluster_args(_self, layer, plan, config, members):
        sent.append(config.threads)
        raise ValueError("not sent in this test")

    monkeypatch.setattr(segment_module.SegmentWidget, "_cluster_args", cluster_args)
    w.cluster.where.value = "local"
    w.run()
    assert sent == [None]
    assert "not sent in this test" in notes["error"][-1]


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (
            np.zeros((64, 64, 3), np.uint8),
            {"rgb": True},
            "the image is RGB (3 colour channels) and the model reads 1",
        ),
        (np.full((64, 64), np.nan, np.float32), {}, "no finite value"),
        (np.zeros((4, 4), np.float32), {}, "too small"),
    ],
)
def test_bad_inputs_become_notifications(setup, qtbot, notes, data, kwargs, message):
    viewer, w = setup
    layer = viewer.add_image(data, name="bad", **kwargs)
    _select(w, layer)
    w.run()
    qtbot.waitUntil(lambda: w._worker is None and bool(notes["error"]), timeout=TIMEOUT_MS)
    assert message in notes["error"][0]
    assert [layer.name for layer in viewer.layers] == ["bad"]


def test_channels_in_separate_layers_are_merged_with_napari_s_merge_to_stack(setup, qtbot, notes):
    """napari shows channels as separate layers (``channel_axis`` on open); a model of
    two channels reads them from one layer: the notification names napari's own
    Merge to Stack, and the merged layer (channels on a slider axis) segments."""
    viewer, w = setup
    w.current.set(_model(in_channels=2), path=None, dirty=True)
    image = cells_2d((64, 64), seed=3)[0].astype(np.float32)
    nuclei, membrane = viewer.add_image(np.stack([image, image[::-1]]), channel_axis=0)
    _select(w, nuclei)
    w.run()
    assert "right-click > Merge to Stack" in notes["error"][-1]
    viewer.layers.selection = {nuclei, membrane}
    from napari._app_model import get_app_model

    get_app_model().commands.execute_command("napari.layer.merge_stack").result()
    (merged,) = viewer.layers
    assert merged.data.shape == (2, 64, 64)
    _select(w, merged)
    _run(qtbot, w)
    assert len(notes["error"]) == 1
    out = viewer.layers[f"{merged.name} labels [unet-classic]"]
    expected = predict(w.current.model, merged.data, channel_axis=0, precision="fp32").labels
    np.testing.assert_array_equal(out.data, expected)


def test_missing_model_or_image(make_napari_viewer_proxy, notes):
    viewer = make_napari_viewer_proxy()
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w)
    w.run()
    assert "no model yet" in notes["error"][-1]
    w.current.set(_model(), path=None, dirty=True)
    w.reset_choices()
    w.run()
    assert "choose an Image layer" in notes["error"][-1]


def test_load_a_model_file_here(make_napari_viewer_proxy, qtbot, notes, tmp_path):
    viewer = make_napari_viewer_proxy()
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w)
    path = save_model(_model(), tmp_path / "nuclei.safetensors")
    w._model_path.value = path
    w.load_model()
    qtbot.waitUntil(lambda: w.current.model is not None, timeout=TIMEOUT_MS)
    assert "nuclei.safetensors" in w._model_info.value
    assert w.config() == PredictConfig(precision="auto")


def test_a_model_file_typed_under_home_loads(
    make_napari_viewer_proxy, qtbot, notes, tmp_path, monkeypatch
):
    monkeypatch.setenv("HOME", str(tmp_path))  # "~/..." typed in the field, as in a shell
    viewer = make_napari_viewer_proxy()
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w)
    save_model(_model(), tmp_path / "typed.safetensors")
    # typed into the field's text box (magicgui expands "~" only when value is set in code)
    w._model_path.line_edit.value = "~/typed.safetensors"
    w.load_model()
    assert not notes["error"]  # once: "no file at '~/typed.safetensors'"
    qtbot.waitUntil(lambda: w.current.model is not None, timeout=TIMEOUT_MS)
    assert w.current.path == tmp_path / "typed.safetensors"


def test_removing_the_image_while_segmenting_writes_nothing_and_says_so(setup, qtbot, notes):
    viewer, w = setup
    layer = viewer.add_image(cells_2d((512, 512))[0], name="cells")
    _select(w, layer)
    w._tile.value = 64
    w._batch.value = 1
    removed = []

    def on_event(event):
        if not removed:
            removed.append(event)
            viewer.layers.remove("cells")

    w.run()
    w._worker.yielded.connect(on_event)
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    assert removed
    assert len(viewer.layers) == 0  # no labels layer for the deleted image
    assert any("'cells' was removed; nothing written" in m for m in notes["info"]), notes
    assert "removed" in w._status.value
    assert notes["error"] == []


def _model_3d(spacing=None):
    torch.manual_seed(0)
    spec = ModelSpec(
        "unet",
        in_channels=1,
        num_classes=3,
        spatial_dims=3,
        class_names=("background", "cytoplasm", "nucleus"),
        options={"depth": 2, "base_width": 4},
        spacing=spacing,
    )
    return create_model(spec).eval()


@pytest.mark.parametrize("scope", ["slice", "stack"])
def test_a_3d_model_segments_the_volume_in_3d(setup, qtbot, notes, scope):
    """The current volume of a time series ("slice") or every volume ("stack"), in 3D
    patches, at the model's spacing, placed with the layer's scale and translate."""
    viewer, w = setup
    w.current.set(_model_3d(spacing=(2.0, 1.0, 1.0)), path=None, dirty=True)
    volume = cells_3d((12, 48, 40), seed=1)[0].astype(np.float32)
    series = np.stack([volume, volume[:, ::-1]])  # (t, z, y, x)
    layer = viewer.add_image(series, name="series", scale=(1, 4, 0.5, 0.5), translate=(0, 3, 0, 0))
    viewer.dims.set_current_step(0, 1)
    _select(w, layer)
    w._scope.value = scope
    _run(qtbot, w)
    assert notes["error"] == []
    assert "at the model's voxel size (24x24x20)" in w._head  # 12x48x40 at 4 x 0.5 x 0.5
    out = viewer.layers["series labels [unet-classic]"]
    np.testing.assert_allclose(out.scale, (1, 4, 0.5, 0.5))
    np.testing.assert_allclose(out.translate, (0, 3, 0, 0))
    model = w.current.model
    at = {"spacing": (4.0, 0.5, 0.5), "precision": "fp32"}
    if scope == "slice":
        np.testing.assert_array_equal(out.data[1], predict(model, series[1], **at).labels)
        assert not out.data[0].any()
    else:  # normalised over the whole series, as a stack is
        np.testing.assert_array_equal(out.data, predict(model, series, axis=0, **at).labels)


def test_a_3d_model_segments_a_stack_shown_transposed(setup, qtbot, notes):
    """z and x on screen (y on the slider): a 3D model still segments the volume; it
    was refused ('a 3D model needs a volume'), no slider lying before the plane."""
    viewer, w = setup
    w.current.set(_model_3d(), path=None, dirty=True)
    volume = cells_3d((12, 48, 40), seed=1)[0].astype(np.float32)
    layer = viewer.add_image(volume, name="vol")
    viewer.dims.order = (1, 0, 2)
    viewer.dims.set_current_step(1, 20)
    _select(w, layer)
    w._scope.value = "slice"
    _run(qtbot, w)
    assert notes["error"] == []
    out = viewer.layers["vol labels [unet-classic]"].data
    np.testing.assert_array_equal(out, predict(w.current.model, volume, precision="fp32").labels)


@pytest.mark.parametrize("scope", ["slice", "visible"])
def test_a_2d_model_in_the_3d_view_segments_the_volume_on_screen(setup, qtbot, notes, scope):
    """In napari's 3D view a 2D model's "slice" and "visible" segment every plane of
    the volume on screen; they segmented the plane at the hidden z slider only."""
    viewer, w = setup
    volume = cells_3d((6, 64, 72), seed=3)[0].astype(np.float32)
    layer = viewer.add_image(volume, name="vol")
    viewer.dims.ndisplay = 3
    _select(w, layer)
    w._scope.value = scope
    w._tile.value = 96
    _run(qtbot, w)
    assert notes["error"] == []
    out = viewer.layers["vol labels [unet-classic]"].data
    expected = predict(w.current.model, volume, axis=0, tile=96, precision="fp32").labels
    np.testing.assert_array_equal(out, expected)


def test_a_previous_output_read_lazily_is_kept_and_a_new_layer_added(setup, qtbot, notes):
    """A labels layer of the output's name that holds a dask array (reopened from a
    file) cannot take the new labels in place: the run adds a layer and leaves it."""
    import dask.array as da

    viewer, w = setup
    image, _ = cells_2d((96, 96), seed=4)
    layer = viewer.add_image(image, name="cells")
    old = np.ones((96, 96), np.uint8)
    previous = viewer.add_labels(da.from_array(old), name="cells labels [unet-classic]")
    _select(w, layer)
    with qtbot.capture_exceptions() as errors:
        _run(qtbot, w)
    assert errors == []
    assert notes["error"] == []
    np.testing.assert_array_equal(np.asarray(previous.data), old)
    assert [x.name for x in viewer.layers] == [
        "cells", "cells labels [unet-classic]", "cells labels [unet-classic] [1]"
    ]  # fmt: skip
    expected = predict(w.current.model, image, precision="fp32").labels
    np.testing.assert_array_equal(viewer.layers[2].data, expected)


def test_auto_fields_show_what_auto_chose(setup, qtbot, notes):
    """Tile, overlap and batch left to "auto" show the values the run used (they
    depend on the model and the image), still ticked "auto"; unticking starts there."""
    import re

    viewer, w = setup
    w.current.set(_model_3d(), path=None, dirty=True)
    volume = cells_3d((12, 48, 40), seed=1)[0].astype(np.float32)
    _select(w, viewer.add_image(volume, name="vol"))
    before = (w._tile._number.value, w._overlap._number.value)
    _run(qtbot, w)
    assert notes["error"] == []
    tile, overlap, batch = map(int, re.search(r"tile (\d+), overlap (\d+), batch (\d+)",
                                              w._head).groups())  # fmt: skip
    assert (tile, overlap) != before  # 512 and 128 were shown before any run
    assert (w._tile.value, w._overlap.value, w._batch.value) == (None, None, None)
    shown = (w._tile._number.value, w._overlap._number.value, w._batch._number.value)
    assert shown == (tile, overlap, batch)
    w._tile._auto.value = False
    assert w._tile.value == tile


def test_a_layer_s_axes_in_different_units_give_one_voxel_size(setup, qtbot, notes):
    """z in millimetres, y and x in nanometres (napari layer units): the voxel size is
    taken in nanometres (4000 x 500 x 500) for a model recorded at 2000 x 1000 x 1000,
    and the labels keep the layer's scale and units."""
    viewer, w = setup
    w.current.set(_model_3d(spacing=(2000.0, 1000.0, 1000.0)), path=None, dirty=True)
    volume = cells_3d((12, 48, 40), seed=1)[0].astype(np.float32)
    units = ("millimeter", "nanometer", "nanometer")
    layer = viewer.add_image(volume, name="vol", scale=(0.004, 500, 500), units=units)
    _select(w, layer)
    _run(qtbot, w)
    assert notes["error"] == []
    assert "at the model's voxel size (24x24x20)" in w._head
    assert w._status.value.startswith("done in")  # ...and the result says so too
    assert w._status.value.endswith("at the model's voxel size (24x24x20)")
    out = viewer.layers["vol labels [unet-classic]"]
    np.testing.assert_allclose(out.scale, (0.004, 500, 500))
    assert tuple(str(u) for u in out.units) == units
    at = {"spacing": (4000.0, 500.0, 500.0), "precision": "fp32"}
    np.testing.assert_array_equal(out.data, predict(w.current.model, volume, **at).labels)


def test_a_calibrated_tiff_opened_by_napari_s_reader_is_segmented_at_its_size(
    setup, qtbot, notes, tmp_path
):
    """napari's own TIFF reader drops a Fiji stack's calibration (scale 1 everywhere):
    the dock takes the voxel size the file declares, as ``napari-seg predict`` does on
    the same file, says so, and the labels keep the layer's scale of 1."""
    viewer, w = setup
    w.current.set(_model_3d(spacing=(2.0, 1.0, 1.0)), path=None, dirty=True)
    volume = cells_3d((12, 48, 40), seed=1)[0].astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, volume, imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 4.0, "unit": "um", "axes": "ZYX"})  # fmt: skip
    (layer,) = viewer.open(path, plugin="napari")
    assert tuple(layer.scale) == (1, 1, 1)  # what napari's reader gives
    _select(w, layer)
    _run(qtbot, w)
    assert notes["error"] == []
    assert any("stack.tif declares a voxel size of 4 x 0.5 x 0.5 µm" in m for m in notes["info"])
    assert "at the model's voxel size (24x24x20)" in w._head
    out = viewer.layers["stack labels [unet-classic]"]
    np.testing.assert_allclose(out.scale, (1, 1, 1))
    at = {"spacing": (4.0, 0.5, 0.5), "precision": "fp32"}
    np.testing.assert_array_equal(out.data, predict(w.current.model, volume, **at).labels)
    # A layer that shows a scale of its own keeps it; so does one whose pixels changed.
    notes["info"].clear()
    layer.scale = (2, 1, 1)
    assert w.config(w._plan(layer, w.current.model), layer).spacing == (2.0, 1.0, 1.0)
    layer.scale = (1, 1, 1)
    layer.data = volume[:6]
    assert w.config(w._plan(layer, w.current.model), layer).spacing is None
    assert not any("declares" in m for m in notes["info"])


def test_a_scale_in_another_unit_than_the_model_is_one_notification(setup, qtbot, notes):
    """A layer scaled in micrometres (1000) for a model recorded in millimetres (1):
    resampling 1000x finer would make 10^9 times the voxels; refused, nothing added."""
    viewer, w = setup
    w.current.set(_model_3d(spacing=(1.0, 1.0, 1.0)), path=None, dirty=True)
    volume = cells_3d((12, 48, 40), seed=1)[0].astype(np.float32)
    layer = viewer.add_image(volume, name="vol", scale=(1000, 1000, 1000))
    _select(w, layer)
    w.run()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=30_000)
    assert any("same unit" in m and "1000x along axis 0" in m for m in notes["error"]), notes
    assert [x.name for x in viewer.layers] == ["vol"]


def test_a_model_and_a_layer_that_state_their_units_are_compared_in_one(setup, qtbot, notes):
    """The same volume as above, but the model records millimetres and the layer says
    micrometres: 1000 µm is its 1 mm, so nothing is resampled (nor refused)."""
    viewer, w = setup
    model = _model_3d(spacing=(1.0, 1.0, 1.0))
    model.spec = model.spec.with_(spacing_unit="millimeter")
    w.current.set(model, path=None, dirty=True)
    volume = cells_3d((12, 48, 40), seed=1)[0].astype(np.float32)
    units = ("micrometer",) * 3
    layer = viewer.add_image(volume, name="vol", scale=(1000, 1000, 1000), units=units)
    _select(w, layer)
    _run(qtbot, w)
    assert notes["error"] == []
    assert "model's voxel size" not in w._head
    out = viewer.layers["vol labels [unet-classic]"]
    np.testing.assert_allclose(out.scale, (1000, 1000, 1000))
    expected = predict(w.current.model, volume, precision="fp32").labels
    np.testing.assert_array_equal(out.data, expected)


def test_a_3d_model_needs_a_volume_of_any_depth(setup, qtbot, notes):
    viewer, w = setup
    w.current.set(_model_3d(), path=None, dirty=True)
    layer = viewer.add_image(cells_2d((64, 64))[0], name="flat")
    _select(w, layer)
    w.run()
    assert any("a 3D model needs a volume" in m for m in notes["error"])
    assert [x.name for x in viewer.layers] == ["flat"]
    # a stack of 3 slices is a volume (it was refused as too small)
    thin = viewer.add_image(cells_3d((3, 48, 40), seed=2)[0].astype(np.float32), name="thin")
    _select(w, thin)
    _run(qtbot, w)
    expected = predict(w.current.model, thin.data, precision="fp32").labels
    np.testing.assert_array_equal(viewer.layers["thin labels [unet-classic]"].data, expected)


def test_a_multiscale_image_is_segmented_at_the_chosen_level(setup, qtbot, notes):
    viewer, w = setup
    image, _ = cells_2d((256, 320), seed=5)
    layer = viewer.add_image([image, image[::2, ::2]], multiscale=True, name="pyramid",
                             scale=(0.5, 0.5))  # fmt: skip
    _select(w, layer)
    assert w._level.enabled
    assert tuple(w._level.choices) == (0, 1)
    w._level.value = 1
    w._tile.value = 96
    _run(qtbot, w)
    assert notes["error"] == []
    out = viewer.layers["pyramid labels [unet-classic]"]
    expected = predict(w.current.model, image[::2, ::2], tile=96, precision="fp32").labels
    np.testing.assert_array_equal(out.data, expected)
    assert tuple(out.scale) == (1.0, 1.0)  # lies over the image: each pixel spans 2 of it
    plain = viewer.add_image(image, name="plain")
    _select(w, plain)
    assert not w._level.enabled


def test_a_cluster_job_writes_ome_zarr_and_opens_it_lazily(setup, qtbot, notes, tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("ome_zarr_models")
    import tifffile

    viewer, w = setup
    image, _ = cells_2d((300, 340), seed=6)
    tifffile.imwrite(tmp_path / "cells.tif", image)
    (layer,) = viewer.open(str(tmp_path / "cells.tif"))
    _select(w, layer)
    w.cluster.where.value = "local"
    w.cluster.workers.value = 1
    w.cluster.output.value = tmp_path / "cells_labels"
    w.cluster.block.value = 256
    w._tile.value = 96
    w.run()  # the model is not saved yet: refused, nothing started
    assert "save the current model first" in notes["error"][-1]
    save_model(w.current.model, tmp_path / "m.safetensors")
    w.current.set(w.current.model, path=tmp_path / "m.safetensors", dirty=False)
    _run(qtbot, w)
    assert notes["error"] == [notes["error"][0]]
    out = viewer.layers["cells labels [m]"]
    assert out.multiscale
    assert type(out.data[0]).__name__ == "Array"  # dask: read when shown, never whole
    torch.set_num_threads(1)  # the worker's count
    expected = predict(w.current.model, image, w.config().with_(threads=1)).labels
    np.testing.assert_array_equal(np.asarray(out.data[0]), expected)
    assert (tmp_path / "cells_labels.ome.zarr").is_dir()
    # With "average with": the workers read both files and average them.
    from napari_seg.models import ensemble, load_model

    torch.manual_seed(3)
    save_model(create_model(w.current.model.spec), tmp_path / "other.safetensors")
    w._members.value = [tmp_path / "other.safetensors"]
    w.cluster.output.value = tmp_path / "both"
    _run(qtbot, w)
    assert notes["error"] == [notes["error"][0]]
    both = ensemble([w.current.model, load_model(tmp_path / "other.safetensors")])
    expected = predict(both, image, w.config().with_(threads=1)).labels
    np.testing.assert_array_equal(
        np.asarray(viewer.layers["cells labels [m + 1]"].data[0]), expected
    )
    w._members.value = ()
    memory = viewer.add_image(image, name="in memory")
    _select(w, memory)
    w.cluster.output.value = tmp_path / "again"
    w.run()
    assert "was not opened from a file" in notes["error"][-1]
