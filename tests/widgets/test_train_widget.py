"""Train widget in a real napari viewer (run under xvfb-run)."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")


from napari_seg._widgets import _train as train_module  # noqa: E402
from napari_seg._widgets import train_widget  # noqa: E402
from napari_seg._widgets._train_pairs import new_model_class_names  # noqa: E402
from napari_seg.inference import predict  # noqa: E402
from napari_seg.models import ModelSpec, create_model, load_model  # noqa: E402
from napari_seg.sample_data import CLASS_NAMES, cells_2d  # noqa: E402
from napari_seg.training.events import PreviewReady, StepProgress  # noqa: E402

TIMEOUT_MS = 180_000


def _model():
    torch.manual_seed(0)
    spec = ModelSpec(
        "unet",
        in_channels=1,
        num_classes=3,
        class_names=CLASS_NAMES,
        options={"depth": 3, "base_width": 8},
    )
    return create_model(spec).eval()


@pytest.fixture
def notes(capture_notes):
    return capture_notes(train_module)


@pytest.fixture
def setup(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    image, labels = cells_2d((192, 192), seed=2)
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="truth")
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    original = _model()
    w.current.set(original, path=None, dirty=True)
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["cells"], viewer.layers["truth"]
    w._label0.value = "background"
    w._budget_unit.value = "epochs"
    w._budget.value = 3
    w._batch.value = 2
    w._patch.value = 64
    w._device.value = "auto"
    return viewer, w, original


def _wait(qtbot, w):
    assert w._worker is not None, "training did not start"
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)


def _steps(model) -> int:
    return model.card["provenance"]["training"]["metrics"]["steps"]


def test_training_draws_curves_ends_with_a_current_model_and_keeps_the_gui_alive(
    setup, qtbot, notes, heartbeat
):
    """Started as soon as the dock opens: the training process may still be importing
    torch._dynamo, whose garbage-collection passes froze napari for 250-320 ms when
    training ran in a thread of napari's process."""
    _viewer, w, original = setup
    with heartbeat:
        w.start()  # trains in the training process (training.process)
        _wait(qtbot, w)
    assert notes["error"] == []
    assert len(w.curves.history) == 3
    assert len(w.curves.losses) == 3 * 25
    lines = w.curves.artist.iou_line
    assert list(lines.get_xdata()) == [1, 2, 3]
    model = w.current.model
    assert model is not original
    assert model.spec.class_names == CLASS_NAMES
    assert _steps(model) == 75
    assert w.current.dirty
    assert w.current.path is None
    assert "budget" in w._status.value
    assert w._start.enabled
    assert not w._stop.enabled
    # the model handed to the job was copied, never changed
    fresh = _model()
    assert all(
        torch.equal(a, b)
        for a, b in zip(original.state_dict().values(), fresh.state_dict().values(), strict=True)
    )
    heartbeat.check("while training from the dock's opening")


def test_stop_lands_within_one_step_and_keeps_the_model(setup, qtbot, notes):
    """The training process runs on while napari's main thread handles an event, so
    the steps here are made longer (about 0.2 s) than the main thread's reaction."""
    _viewer, w, original = setup
    w._budget.value = 50
    w._patch.value, w._batch.value = 128, 4
    seen = []

    def on_event(event):
        if isinstance(event, StepProgress) and not seen:
            seen.append(event.step)
            w.stop()

    w.start()
    w._worker.yielded.connect(on_event)
    _wait(qtbot, w)
    assert seen, "no step event arrived"
    steps = _steps(w.current.model)
    assert steps <= seen[0] + 1, f"stopped at step {steps}, asked at {seen[0]}"
    assert "stopped" in w._status.value
    assert w.current.model is not original


def test_pause_holds_the_run_and_resume_finishes_it(setup, qtbot, notes):
    _viewer, w, _original = setup
    w._budget.value = 2
    counts = []

    def on_event(event):
        if isinstance(event, StepProgress):
            counts.append(event.step)
            if len(counts) == 1:
                w.toggle_pause()

    w.start()
    w._worker.yielded.connect(on_event)
    qtbot.waitUntil(lambda: len(counts) >= 1, timeout=TIMEOUT_MS)
    qtbot.wait(300)  # the step in flight may still land
    held = len(counts)
    qtbot.wait(1500)
    assert len(counts) == held, "steps went on while paused"
    assert w._pause.text == "Resume"
    w.toggle_pause()
    _wait(qtbot, w)
    assert _steps(w.current.model) == 50
    assert notes["error"] == []


def test_closing_the_widget_cancels_and_keeps_the_current_model(setup, qtbot, notes):
    _viewer, w, original = setup
    w._budget.value = 50
    w.start()
    worker = w._worker
    qtbot.waitUntil(lambda: len(w.curves.losses) >= 1, timeout=TIMEOUT_MS)
    w.native.destroyed.emit()  # what Qt sends when the dock (or napari) is closed
    qtbot.waitUntil(lambda: w._worker is None, timeout=TIMEOUT_MS)
    assert worker is not None
    assert w.current.model is original
    assert "cancelled" in w._status.value


def test_bad_inputs_become_notifications_and_change_nothing(setup, qtbot, notes, tmp_path):
    viewer, w, original = setup
    layers_before = [layer.name for layer in viewer.layers]
    viewer.add_labels(np.zeros((100, 100), np.uint8), name="small")
    w.reset_choices()
    w._labels.value = viewer.layers["small"]
    w.start()
    assert w._worker is None or _wait(qtbot, w) is None
    assert any("does not match the image shape" in m for m in notes["error"]), notes
    viewer.add_labels(np.zeros((192, 192), np.uint8), name="empty")
    w.reset_choices()
    w._labels.value = viewer.layers["empty"]
    w._label0.value = "unlabelled"
    w.start()
    _wait(qtbot, w)
    assert any("no annotated pixel" in m for m in notes["error"]), notes
    w._labels.value = viewer.layers["truth"]
    w._out.value = tmp_path / "missing" / "model.safetensors"
    w.start()
    _wait(qtbot, w)
    assert any("output folder does not exist" in m for m in notes["error"]), notes
    assert w.current.model is original
    assert [layer.name for layer in viewer.layers][: len(layers_before)] == layers_before
    assert not (tmp_path / "missing").exists()


def test_pairs_list_and_preview(make_napari_viewer_proxy, qtbot, notes):
    viewer = make_napari_viewer_proxy()
    for seed in (1, 2):
        image, labels = cells_2d((128, 160), seed=seed)
        viewer.add_image(image, name=f"cells{seed}")
        viewer.add_labels(labels, name=f"truth{seed}")
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.current.set(_model(), path=None, dirty=True)
    w.reset_choices()
    for seed in (1, 2):
        w._image.value, w._labels.value = (
            viewer.layers[f"cells{seed}"],
            viewer.layers[f"truth{seed}"],
        )
        w.add_pair()
    assert len(w._pairs.choices) == 2
    w._label0.value = "background"
    w._budget_unit.value = "epochs"
    w._budget.value = 1
    w._patch.value = 64
    w._preview.value = True
    w.start()
    _wait(qtbot, w)
    assert notes["error"] == []
    preview = viewer.layers["cells1 preview"]
    assert preview.data.shape == (128, 160)
    assert list(preview.features["class"]) == list(CLASS_NAMES)
    training = w.current.model.card["provenance"]["training"]
    assert len(training["data"]["pairs"]) == 2


def test_a_new_model_takes_the_class_names_of_the_labels_layer(setup):
    viewer, w, _ = setup
    truth = viewer.layers["truth"]
    truth.features = {"index": [0, 1, 2], "class": ["background", "cytoplasm", "nucleus"]}
    w._source.value = "new"
    assert w._make_job().config.class_names == ("background", "cytoplasm", "nucleus")
    w._label0.value = "unlabelled"  # id 0 is never trained: not "background"
    assert w._make_job().config.class_names == ("unlabelled", "cytoplasm", "nucleus")
    truth.features = {}
    assert w._make_job().config.class_names == ()  # the model's defaults
    w._source.value = "current"  # fine-tuning keeps the model's names
    truth.features = {"index": [0, 1, 2], "class": ["a", "b", "c"]}
    assert w._make_job().config.class_names == ()


def test_a_new_model_s_normalisation_is_chosen_in_the_train_dock_too(setup):
    """A new model trained from the dock was always normalised by percentiles; the
    dock's "new model" now offers the Model dock's normalisation fields (the window
    proposed from the selected image's contrast limits). Fine-tuning hides them: the
    model keeps its own."""
    viewer, w, _ = setup
    fields = w.source.normalization
    assert fields.method.native.isHidden()  # current model: its own normalisation
    w._source.value = "new"
    assert not fields.method.native.isHidden()
    viewer.layers.selection.active = viewer.layers["cells"]
    viewer.layers["cells"].contrast_limits = (10, 200)
    fields.method.value = "window"
    assert not fields.window.native.isHidden()
    assert fields.window.value == "10, 200"
    config = w._make_job().config
    assert (config.normalization, config.normalization_window) == ("window", (10.0, 200.0))
    fields.window.value = "ten"
    with pytest.raises(ValueError, match="intensity window must be two numbers"):
        w._make_job()
    w._source.value = "current"
    assert fields.method.native.isHidden()
    assert fields.window.native.isHidden()
    config = w._make_job().config
    assert (config.normalization, config.normalization_window) == ("percentile", None)


def test_fine_tuning_passes_no_hidden_architecture(setup):
    """The architecture and encoder fields are hidden when fine-tuning, but their
    values went into the run's config: the core then said the model keeps its
    network when the hidden fields named another. Fine-tuning now asks nothing."""
    from napari_seg.training import TrainingConfig
    from napari_seg.training._setup import kept_settings

    _, w, original = setup
    w._source.value = "new"
    w.source.arch.value = "fpn"
    config = w._make_job().config
    assert (config.architecture, config.encoder) == ("fpn", "resnet34")
    w._source.value = "current"
    config = w._make_job().config
    assert (config.architecture, config.encoder) == (TrainingConfig.architecture, None)
    assert kept_settings(config, original) == []


def test_the_best_model_file_gets_its_suffix_as_in_the_model_dock(setup, tmp_path):
    """The Model dock saved "mine" as mine.safetensors; the Train dock wrote "mine" as
    it was, and "mine.pt" (a name torch.load tries) is now refused by the run: both
    docks append the suffix a model file needs."""
    _, w, _ = setup
    for typed, written in [("best", "best.safetensors"), ("best.pt", "best.pt.safetensors"),
                           ("b.SafeTensors", "b.SafeTensors")]:  # fmt: skip
        w._out.value = tmp_path / typed
        assert w._make_job().out == tmp_path / written
    w._out._file.line_edit.value = ""  # the field cleared
    assert w._make_job().out is None  # no file: the run writes none


def test_new_class_picks_the_next_id_or_asks_for_a_labels_layer(
    make_napari_viewer_proxy, capture_notes
):
    """ "New class" selects the next unused id on the strokes layer for painting; with no
    Labels layer it did nothing at all, and now says what it needs."""
    from napari_seg._widgets import _train_classes

    notes = capture_notes(_train_classes)
    viewer = make_napari_viewer_proxy()
    image, labels = cells_2d((64, 64), seed=2)
    viewer.add_image(image, name="cells")
    w = train_widget(viewer)
    w.reset_choices()
    w.classes.new_class()
    assert notes["warning"] == ["Choose a Labels layer to paint the new class in (or add one)"]
    strokes = viewer.add_labels(labels, name="strokes")
    w.reset_choices()
    w._labels.value = strokes
    w.classes.new_class()
    assert strokes.selected_label == int(labels.max()) + 1
    assert strokes.mode == "paint"
    assert len(notes["warning"]) == 1


def test_new_model_class_names_fill_gaps_in_the_ids():
    from types import SimpleNamespace

    layer = SimpleNamespace(features={"index": [0, 3], "class": ["bg", "spot"]})
    names = new_model_class_names([layer], "background")
    assert names == ("bg", "class 1", "class 2", "spot")
    only_zero = SimpleNamespace(features={"index": [0], "class": ["bg"]})
    assert new_model_class_names([only_zero], "background") == ()


def test_closing_the_viewer_while_training_shows_no_error(make_napari_viewer, qtbot, notes):
    """Events that arrive after the dock is gone are dropped quietly (no RuntimeError)."""
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    image, labels = cells_2d((192, 192), seed=2)
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="truth")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-seg", "Train")
    w.current.set(_model(), path=None, dirty=True)
    w._label0.value = "background"
    w._budget_unit.value = "epochs"
    w._budget.value = 50
    w._batch.value = 2
    w._patch.value = 64
    before = len(notification_manager.records)
    w.start()
    worker = w._worker
    qtbot.waitUntil(lambda: len(w.curves.losses) >= 2, timeout=TIMEOUT_MS)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=TIMEOUT_MS)
    qtbot.wait(500)  # let the events queued by the worker arrive
    shown = [str(n.message) for n in notification_manager.records[before:]]
    assert not [m for m in shown if "deleted" in m or "Error" in m], shown
    assert notes["error"] == []


def test_an_existing_model_file_is_kept_unless_replace_is_ticked(setup, qtbot, notes, tmp_path):
    _viewer, w, original = setup
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"last week's model")
    w._out.value = target
    w._budget.value = 1
    w.start()
    _wait(qtbot, w)
    assert any("already exists" in m for m in notes["error"]), notes
    assert target.read_bytes() == b"last week's model"
    assert w.current.model is original
    w._out.overwrite = True
    w.start()
    _wait(qtbot, w)
    assert w.current.path == target
    assert _steps(load_model(target)) == 25


def test_the_window_stays_responsive_once_the_dock_is_ready(setup, qtbot, notes, heartbeat):
    """The dock's one-time background
    imports (torch._dynamo, which holds the GIL for about 200 ms) finish first, as they
    do while a user picks layers and settings."""
    from napari_seg._widgets._shared import warm_training

    _viewer, w, _original = setup
    assert warm_training().result().wait(timeout=120), "the training process did not start"
    w._budget.value = 4
    with heartbeat:
        w.start()
        _wait(qtbot, w)
    assert notes["error"] == []
    heartbeat.check("while training", min_ticks=100)


def test_a_new_model_records_the_pixel_size_a_tiff_declares(setup, notes, tmp_path):
    """An image opened by napari's own TIFF reader shows a scale of 1: the new model
    records the pixel size its file declares (as ``napari-seg train`` on the file)."""
    import tifffile

    viewer, w, _ = setup
    image = viewer.layers["cells"].data
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(4.0, 2.0), metadata={"unit": "um"})
    (layer,) = viewer.open(path, plugin="napari")
    assert tuple(layer.scale) == (1, 1)
    w.reset_choices()
    w._image.value = layer
    w._source.value = "new"
    config = w._make_job().config
    assert (config.spacing, config.spacing_unit) == ((0.5, 0.25), "micrometer")
    assert any("cells.tif declares a voxel size of 0.5 x 0.25 µm" in m for m in notes["info"])


def test_a_new_model_records_the_image_layer_pixel_size(setup):
    viewer, w, _ = setup
    w._source.value = "new"
    assert w._make_job().config.spacing is None  # napari's default scale: unknown
    viewer.layers["cells"].scale = (0.25, 0.5)
    assert w._make_job().config.spacing == (0.25, 0.5)
    assert w._make_job().config.spacing_unit is None  # napari's "pixel": no length unit
    if hasattr(viewer.layers["cells"], "units"):  # napari >= 0.6: the unit goes with it
        viewer.layers["cells"].units = ("micrometer", "nanometer")
        config = w._make_job().config
        assert (config.spacing, config.spacing_unit) == ((250.0, 0.5), "nanometer")
    w._source.value = "current"  # fine-tuning keeps the model's own card
    assert w._make_job().config.spacing is None


def test_a_3d_model_trains_on_a_few_painted_slices_with_a_slice_preview(
    make_napari_viewer_proxy, qtbot, notes
):
    """A volume with every 4th slice painted and a 3D current model: the run trains the
    3D model on the volume (patch planned), and the preview shows the slice on screen
    as the 3D model predicts it from the slab around it."""
    from napari_seg.sample_data import cells_3d

    viewer = make_napari_viewer_proxy()
    image, labels = cells_3d((24, 48, 48), seed=1)
    sparse = np.zeros(labels.shape, np.uint8)
    sparse[::4] = labels[::4] + 1
    viewer.add_image(image, name="vol", scale=(2.0, 1.0, 1.0))
    viewer.add_labels(sparse, name="slices", scale=(2.0, 1.0, 1.0))
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    torch.manual_seed(0)
    spec = ModelSpec("unet", in_channels=1, num_classes=4, spatial_dims=3,
                     options={"depth": 2, "base_width": 4})  # fmt: skip
    w.current.set(create_model(spec), path=None, dirty=True)
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["vol"], viewer.layers["slices"]
    w._label0.value = "unlabelled"
    w._budget_unit.value = "epochs"
    w._budget.value = 1
    w._preview.value = True
    viewer.dims.set_current_step(0, 10)
    inputs = w._make_job()
    assert inputs.config.axis is None  # the stack is one volume, not planes
    assert inputs.preview.image.shape == (24, 48, 48)
    assert inputs.preview.take == (0, 10)
    w.start()
    _wait(qtbot, w)
    assert notes["error"] == []
    model = w.current.model
    assert model.spec.spatial_dims == 3
    assert len(model.card["provenance"]["training"]["config"]["patch_3d"]) == 3
    preview = viewer.layers["vol preview"]
    assert preview.data.shape == (48, 48)
    assert set(np.unique(preview.data)) <= {1, 2, 3}  # never the unpainted id 0


def test_a_3d_pixel_classifier_is_fitted_from_a_few_painted_slices(setup, qtbot, notes):
    """A new pixel classifier with a 3D network: fitted on the painted slices of the
    volume (3D filter features) in the worker, and it predicts every slice."""
    from napari_seg.sample_data import cells_3d

    viewer, w, _ = setup
    image, labels = cells_3d((24, 48, 48), seed=1)
    sparse = np.zeros(labels.shape, np.int64)  # NumPy's default integers
    sparse[::4] = labels[::4] + 1
    viewer.add_image(image, name="vol", scale=(2.0, 1.0, 1.0))
    painted = viewer.add_labels(sparse.copy(), name="slices", scale=(2.0, 1.0, 1.0))
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["vol"], viewer.layers["slices"]
    w._label0.value = "unlabelled"
    w._source.value = "new"
    w.source.arch.value = "pixel-classifier"
    w.settings.dims.value = 3
    reports, report = [], w.runner.report

    def recording(fraction=None, text=None):
        reports.append(text)
        report(fraction, text)

    w.runner.report = recording
    w.start()
    _wait(qtbot, w)
    assert notes["error"] == []
    np.testing.assert_array_equal(painted.data, sparse)  # the strokes are left as they were
    assert any("reading block 1/1" in str(text) for text in reports)  # progress while fitting
    model = w.current.model
    assert (model.spec.architecture, model.spec.spatial_dims) == ("pixel-classifier", 3)
    assert model.spec.spacing == (2.0, 1.0, 1.0)
    assert model.net.features.steps == (2.0, 1.0, 1.0)  # the layer's scale sets the filters
    assert model.card["provenance"]["training"]["status"] == "fitted"
    predicted = predict(model, image).labels
    unpainted = np.ones(24, bool)
    unpainted[::4] = False
    hit = predicted[unpainted] == labels[unpainted] + 1
    assert hit.mean() > 0.9


def test_a_new_3d_model_takes_the_voxel_size_and_a_3d_encoder(setup):
    viewer, w, _ = setup
    volume = viewer.add_image(np.zeros((16, 32, 32), np.float32), name="v", scale=(3, 1, 1))
    truth = viewer.add_labels(np.zeros((16, 32, 32), np.uint8), name="t", scale=(3, 1, 1))
    w.reset_choices()
    w._image.value, w._labels.value = volume, truth
    w._source.value = "new"
    w.source.arch.value = "unet"
    w.settings.dims.value = 3
    assert not w.settings.patch.enabled
    config = w._make_job().config
    assert config.dims == 3
    assert config.spacing == (3.0, 1.0, 1.0)
    assert config.axis is None
    assert config.encoder == "classic"


def test_fine_tuning_a_3d_model_file_reads_the_stack_as_a_volume(setup, tmp_path):
    from napari_seg.models import save_model

    viewer, w, _ = setup
    spec = ModelSpec("unet", in_channels=1, num_classes=3, spatial_dims=3,
                     options={"depth": 2, "base_width": 4})  # fmt: skip
    save_model(create_model(spec), tmp_path / "m3d.safetensors")
    volume = viewer.add_image(np.zeros((16, 32, 32), np.float32), name="v")
    truth = viewer.add_labels(np.zeros((16, 32, 32), np.uint8), name="t")
    w.reset_choices()
    w._image.value, w._labels.value = volume, truth
    w._source.value = "file"
    w.source.model_file.value = tmp_path / "m3d.safetensors"
    w._preview.value = True
    inputs = w._make_job()
    assert inputs.config.axis is None
    assert inputs.preview.image.ndim == 3
    assert inputs.preview.take is not None


def test_instance_labels_train_as_objects_and_boundaries(setup, qtbot, notes, make_instances):
    viewer, w, _ = setup
    _, objects = make_instances((192, 192), n=40, radius=(8.0, 8.0))
    viewer.add_labels(objects, name="nuclei")
    w.reset_choices()
    w._labels.value = viewer.layers["nuclei"]
    w._source.value = "new"
    w._label0.value = "unlabelled"
    w.start()  # as class ids: refused, with the way out
    _wait(qtbot, w)
    assert any("look like instance labels" in m for m in notes["error"]), notes
    w.settings.labels_are.value = "boundaries"
    assert (w._label0.value, w._label0.enabled) == ("background", False)
    assert w.classes.background.native.isHidden()  # the legend of stroke classes
    config = w._make_job().config
    assert (config.instances, config.class_names, config.background) == ("boundaries", (), 0)
    assert w._make_job(label0="unlabelled").config.instances is None  # strokes: never objects
    w.start()
    _wait(qtbot, w)
    assert w.current.model.spec.class_names == ("background", "object", "boundary")
    w.settings.labels_are.value = "classes"
    assert w._label0.enabled
    assert not w.classes.background.native.isHidden()


def test_a_new_model_s_classes_confirm_many_classes(setup, qtbot, notes, make_instances):
    """Labels that look like instance labels are classes when the user says how many."""
    viewer, w, _ = setup
    _, objects = make_instances((192, 192), n=20, radius=(8.0, 8.0))
    viewer.add_labels(objects, name="atlas")
    w.reset_choices()
    w._labels.value = viewer.layers["atlas"]
    w._source.value = "current"
    assert w.source.classes.native.isHidden()
    assert w._make_job().config.num_classes is None
    w._source.value = "new"
    assert not w.source.classes.native.isHidden()
    w.start()
    _wait(qtbot, w)
    assert any("a new model's 'class count'" in m for m in notes["error"]), notes
    needed = int(objects.max()) + 1
    w.source.classes.value = needed
    assert w._make_job().config.num_classes == needed
    w._budget.value = 1
    w.start()
    _wait(qtbot, w)
    assert w.current.model.spec.num_classes == needed


def test_a_void_id_is_left_out_with_the_ignore_ids_field(setup, qtbot, notes):
    """A mask whose 255 outlines the objects (Pascal VOC's void): refused as 256
    classes, trained as 3 with 'ignore ids' (and named by the layer's features but
    for the void)."""
    from skimage.segmentation import find_boundaries

    viewer, w, _ = setup
    truth = viewer.layers["truth"].data
    void = truth.astype(np.uint8)
    void[find_boundaries(truth, mode="inner")] = 255
    layer = viewer.add_labels(void, name="voc")
    w.reset_choices()
    w._labels.value = layer
    w._source.value = "new"
    w.start()
    _wait(qtbot, w)
    assert any("(--ignore 255; 'ignore ids' in the Train dock)" in m for m in notes["error"]), notes
    w.settings.ignore.value = "255, x"
    w.start()
    assert w._worker is None
    assert any("ignore ids must be whole numbers, got 'x'" in m for m in notes["error"])
    assert 255 in w.classes.ids()  # a class of the legend until it is left out
    w.settings.ignore.value = "255"
    w.settings.ignore.native.editingFinished.emit()
    assert w.classes.ids() == (1, 2)
    assert "255" not in w.classes.background.choices
    assert w.live_config(viewer.layers["cells"]).ignore_labels == (255,)  # the live update's
    layer.features = {"index": [0, 1, 2, 255], "class": ["bg", "cell", "nucleus", "void"]}
    config = w._make_job().config
    assert (config.ignore_labels, config.class_names) == ((255,), ("bg", "cell", "nucleus"))
    w._budget.value = 1
    w.start()
    _wait(qtbot, w)
    assert w.current.model.spec.class_names == ("bg", "cell", "nucleus")
    assert (layer.data == void).all()  # the user's labels as they were


def test_an_nnunet_ignore_label_fills_in_ignore_ids(setup, tmp_path, qtbot, notes):
    """A label map of an nnU-Net dataset, opened by napari-seg's reader, brings its
    "ignore" label as the ignore ids (the CLI leaves it out; the dock trained it as a
    class) and, being a dense map whose 0 is "background", label 0 as background (it
    stayed "unlabelled": the background was never trained); another layer restores
    both, and what the user set stays."""
    import json

    import nibabel as nib

    from napari_seg._napari_io import read_layers

    viewer, w, _ = setup
    truth = viewer.layers["truth"].data.astype(np.uint8)
    marked = np.stack([truth, truth])
    marked[:, :8] = 3  # the "ignore" band
    (tmp_path / "labelsTr").mkdir()
    path = tmp_path / "labelsTr" / "cells_001.nii.gz"
    nib.save(nib.Nifti1Image(marked.T, np.eye(4)), path)
    names = {"background": 0, "cytoplasm": 1, "nucleus": 2, "ignore": 3}
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": names}))
    [(data, kwargs, kind)] = read_layers(str(path))
    assert kind == "labels"
    layer = viewer.add_labels(data, **kwargs)
    viewer.add_image(np.stack([viewer.layers["cells"].data] * 2), name="cells 3d")
    w.reset_choices()
    w._label0.value = "unlabelled"  # the dock's first value
    w._labels.value = viewer.layers["truth"]
    w.settings.follow(viewer.layers["truth"])  # the fixture's choice: the dock's defaults
    w._image.value, w._labels.value = viewer.layers["cells 3d"], layer
    assert w.settings.ignore.value == "3"
    assert w._label0.value == "background"
    assert 3 not in w.classes.ids()
    w._source.value = "new"
    config = w._make_job().config
    assert config.ignore_labels == (3,)
    assert config.class_names == ("background", "cytoplasm", "nucleus")
    w._labels.value = viewer.layers["truth"]  # records nothing: the fields go back
    assert (w.settings.ignore.value, w._label0.value) == ("", "unlabelled")
    w.settings.ignore.value = "7"  # the user's own ids stay whatever the layer
    w._labels.value = layer
    assert (w.settings.ignore.value, w._label0.value) == ("7", "background")
    w.settings.ignore.value = "-1, 3"  # as `train --ignore -1 3` (it was refused)
    assert w._make_job().config.ignore_labels == (-1, 3)
    assert notes["error"] == []


def test_a_tzyx_layer_trains_on_the_planes_of_every_frame(setup, qtbot, notes):
    """A 2D model on a 4D layer steps through both sliders (it took only the first
    and refused the stack: "leaves 3 spatial axes")."""
    viewer, w, _ = setup
    planes = [cells_2d((64, 64), seed=s) for s in range(4)]
    image = np.stack([p[0] for p in planes]).reshape(2, 2, 64, 64)
    labels = np.stack([p[1] for p in planes]).reshape(2, 2, 64, 64)
    viewer.add_image(image, name="movie")
    viewer.add_labels(labels, name="movie truth")
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["movie"], viewer.layers["movie truth"]
    w._budget.value = 1
    assert w._make_job().config.axis == (0, 1)
    w.start()
    _wait(qtbot, w)
    assert notes["error"] == []
    training = w.current.model.card["provenance"]["training"]
    assert training["data"]["annotated_pixels"] > labels[0].size  # both frames' planes


def test_a_2d_model_in_the_3d_view_trains_on_the_planes_of_the_stack(setup, qtbot, notes):
    """In napari's 3D view every axis of a ZYX stack is displayed: a 2D model found
    no stack axis and the run failed ("3 non-channel axes"); it steps through the
    depth shown."""
    viewer, w, _ = setup
    planes = [cells_2d((64, 64), seed=s) for s in range(3)]
    viewer.add_image(np.stack([p[0] for p in planes]), name="stack")
    viewer.add_labels(np.stack([p[1] for p in planes]), name="stack truth")
    viewer.dims.ndisplay = 3
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["stack"], viewer.layers["stack truth"]
    w._budget.value = 1
    assert w._make_job().config.axis == 0
    w.start()
    _wait(qtbot, w)
    assert notes["error"] == []
    assert w.current.model.spec.spatial_dims == 2


def test_a_3d_model_trains_on_a_time_series_of_volumes_volume_by_volume(setup, qtbot, notes):
    """A TZYX layer and a new 3D model: the time slider's frames are separate volumes
    (the run dropped every stack axis and was refused: "4 non-channel axes")."""
    from napari_seg.sample_data import cells_3d

    viewer, w, _ = setup
    frames = [cells_3d((12, 40, 40), seed=s) for s in (1, 2)]
    image = np.stack([f[0] for f in frames])
    labels = np.stack([f[1] for f in frames])
    viewer.add_image(image, name="movie")
    viewer.add_labels(labels, name="movie truth")
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["movie"], viewer.layers["movie truth"]
    w._label0.value = "background"
    w._source.value = "new"
    w.source.arch.value = "pixel-classifier"
    w.settings.dims.value = 3
    assert w._make_job().config.axis == 0
    w.start()
    _wait(qtbot, w)
    assert notes["error"] == []
    model = w.current.model
    assert model.spec.spatial_dims == 3
    predicted = predict(model, image, axis=0).labels
    assert (predicted == labels).mean() > 0.9


def test_the_preview_of_a_two_channel_layer_reads_both_channels(
    make_napari_viewer_proxy, qtbot, notes
):
    """A channels-first layer (CYX, not split into layers): the preview is the plane
    with both channels, and the run's previews predict it (the run failed at its
    first preview: 'the model expects 2 channels but ... shape (96, 96)')."""
    viewer = make_napari_viewer_proxy()
    image, labels = cells_2d((96, 96), seed=1)
    two = np.stack([image, image[::-1]]).astype(np.float32)
    viewer.add_image(two, name="two", scale=(1.0, 0.5, 0.5))
    viewer.add_labels(labels, name="truth", scale=(0.5, 0.5))
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    torch.manual_seed(0)
    spec = ModelSpec("unet", in_channels=2, num_classes=3, options={"depth": 2, "base_width": 4})
    w.current.set(create_model(spec), path=None, dirty=True)
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["two"], viewer.layers["truth"]
    w._label0.value = "background"
    w._budget_unit.value = "epochs"
    w._budget.value = 1
    w._patch.value = 64
    w._preview.value = True
    w._source.value = "new"  # a new model reads the axis the labels lack as channels
    assert w._make_job().config.channel_axis == 0
    w._source.value = "current"
    inputs = w._make_job()
    assert inputs.config.channel_axis == 0
    (y, x), (h, wide, c) = inputs.preview.origin, inputs.preview.image.shape
    assert c == 2
    np.testing.assert_array_equal(
        inputs.preview.image, np.moveaxis(two[:, y : y + h, x : x + wide], 0, -1)
    )
    w.start()
    _wait(qtbot, w)
    assert notes["error"] == []
    preview = viewer.layers["two preview"]
    assert preview.data.shape == (h, wide)
    np.testing.assert_allclose(preview.scale, (0.5, 0.5))


def test_a_transposed_view_previews_and_measures_the_plane_on_screen(
    make_napari_viewer_proxy, notes
):
    """The view shows z and x (an orthogonal view of a stack): the run trains on those
    planes, a new model takes their pixel size, and the preview is the plane on screen
    at the y slider, shown where that plane of the image lies (it was the yx plane at
    the hidden z, drawn along y and x)."""
    from napari_seg.sample_data import cells_3d

    viewer = make_napari_viewer_proxy()
    volume, truth = cells_3d((40, 64, 48), seed=1)
    scale = (2.0, 0.5, 0.25)
    layer = viewer.add_image(volume, name="vol", scale=scale, translate=(4.0, 0.0, 1.0))
    viewer.add_labels(truth, name="vt", scale=scale, translate=(4.0, 0.0, 1.0))
    viewer.dims.order = (1, 0, 2)
    viewer.dims.set_current_step(1, 30)
    w = train_widget(viewer)
    viewer.window.add_dock_widget(w, name="Train")
    w.reset_choices()
    w._image.value, w._labels.value = layer, viewer.layers["vt"]
    w._source.value = "new"
    w._label0.value = "background"
    w._budget_unit.value = "epochs"
    w._budget.value = 1
    w._patch.value = 32
    w._preview.value = True
    inputs = w._make_job()
    assert inputs.config.axis == 1
    assert inputs.config.spacing == (2.0, 0.25)
    origin, image = inputs.preview.origin, inputs.preview.image
    assert origin[1] == 30
    assert image.shape == (40, 48)
    np.testing.assert_array_equal(image, volume[:, 30, :])
    # what a run shows at its first preview (the two-channel test above runs one)
    w._inputs, w._classes = inputs, (CLASS_NAMES, ((0, 0, 0, 0), (1, 0, 0, 1), (0, 1, 0, 1)))
    w._show_preview(PreviewReady(1, np.ones(image.shape, np.uint8)))
    assert notes["error"] == []
    shown = viewer.layers["vol preview"]
    assert shown.data.shape == (40, 1, 48)
    for p in [(0, 0, 0), (5, 0, 7), (39, 0, 47)]:
        np.testing.assert_allclose(
            shown.data_to_world(p), layer.data_to_world(np.add(p, origin)), atol=1e-9
        )


def test_the_preview_in_the_3d_view_lies_at_its_slice(setup):
    """napari's 3D view shows a stack whole: a 2D run's preview is the plane at the
    hidden slider, drawn at that slice (a flat layer would lie at the first one)."""
    viewer, w, _ = setup
    volume = np.random.default_rng(0).random((6, 40, 32)).astype(np.float32)
    layer = viewer.add_image(volume, name="stack", translate=(10.0, 0.0, 0.0))
    viewer.add_labels(np.ones(volume.shape, np.uint8), name="painted")
    viewer.dims.set_current_step(0, 13)  # world z: slice 3 of the stack
    viewer.dims.ndisplay = 3
    w.reset_choices()
    w._image.value, w._labels.value = layer, viewer.layers["painted"]
    w._preview.value = True
    preview = w._make_job().preview
    assert preview.origin == (3, 0, 0)
    assert preview.expand == (0,)
    np.testing.assert_array_equal(preview.image, volume[3])
    np.testing.assert_allclose(preview.place.translate, (13.0, 0.0, 0.0))


def test_a_3d_model_in_a_transposed_view_reads_the_volume_and_previews_the_plane(setup):
    """z and x shown, a 3D model: the stack is one volume (the hidden y was taken for a
    slider, so a 3D model got planes), and the preview is the slab of y slices around
    the one on screen, shown at that slice."""
    from napari_seg.sample_data import cells_3d

    viewer, w, _ = setup
    volume, truth = cells_3d((40, 64, 48), seed=1)
    layer = viewer.add_image(volume, name="vol", scale=(2.0, 1.0, 1.0))
    viewer.add_labels(truth, name="vt", scale=(2.0, 1.0, 1.0))
    viewer.dims.order = (1, 0, 2)
    viewer.dims.set_current_step(1, 50)
    spec = ModelSpec("unet", in_channels=1, num_classes=3, spatial_dims=3,
                     options={"depth": 2, "base_width": 4})  # fmt: skip
    w.current.set(create_model(spec), path=None, dirty=True)
    w.reset_choices()
    w._image.value, w._labels.value = layer, viewer.layers["vt"]
    w._preview.value = True
    inputs = w._make_job()
    assert inputs.config.axis is None
    preview = inputs.preview
    assert preview.image.shape == (40, 32, 48)  # y 32 to 63: the slab around y = 50
    assert preview.take == (1, 18)
    np.testing.assert_array_equal(preview.image[:, 18], volume[:, 50])
    w._inputs, w._classes = inputs, (CLASS_NAMES, ((0, 0, 0, 0), (1, 0, 0, 1), (0, 1, 0, 1)))
    labels = np.zeros(preview.image.shape, np.uint8)
    labels[:, 18] = 2
    w._show_preview(PreviewReady(1, labels))
    shown = viewer.layers["vol preview"]
    assert shown.data.shape == (40, 1, 48)
    assert (shown.data == 2).all()
    np.testing.assert_allclose(shown.data_to_world((3, 0, 5)), layer.data_to_world((3, 50, 5)))


def test_pairs_and_encoders_survive_a_new_layer(setup):
    """napari resets a dock's choices whenever a layer is added: the pairs list went
    empty (the pairs still trained on, unseen and unselectable) and the new model's
    encoder list fell back to "classic" alone, which was also all it offered a U-Net
    until the architecture was changed."""
    from napari_seg.models import get_architecture

    viewer, w, _ = setup
    w.add_pair()  # cells + truth, chosen by the fixture
    w._source.value = "new"
    encoders = list(get_architecture("unet").encoders)
    assert len(encoders) > 1
    assert list(w.source.encoder.choices) == encoders  # not "classic" alone
    w.source.encoder.value = encoders[-1]
    viewer.add_image(viewer.layers["cells"].data, name="another")
    assert list(w._pairs.choices) == ["cells  +  truth"]
    assert list(w.source.encoder.choices) == encoders
    assert w.source.encoder.value == encoders[-1]
