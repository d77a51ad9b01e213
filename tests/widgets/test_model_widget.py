"""Model widget in a real napari viewer (run under xvfb-run)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari_seg._widgets import ModelWidget, current_model_for, model_widget  # noqa: E402
from napari_seg._widgets import _model as widget_module  # noqa: E402
from napari_seg.models import get_architecture, list_architectures, load_model  # noqa: E402

TIMEOUT_MS = 60_000


@pytest.fixture
def errors(monkeypatch):
    shown = []
    monkeypatch.setattr(widget_module, "show_error", shown.append)
    return shown


@pytest.fixture
def widget(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    w = model_widget(viewer)
    viewer.window.add_dock_widget(w, name="Model")
    return w


def _wait_idle(qtbot, w):
    qtbot.waitUntil(lambda: w._create.enabled, timeout=TIMEOUT_MS)


def test_create_shows_stats_and_shares_the_model(widget, qtbot, errors):
    widget._arch.value = "fpn"
    widget._encoder.value = "resnet18"
    widget._in_channels.value = 2
    widget._classes.value = 3
    widget._class_names.value = "bg, cell, nucleus"
    widget.create_model()
    qtbot.waitUntil(lambda: widget.current.model is not None, timeout=TIMEOUT_MS)
    _wait_idle(qtbot, widget)
    model = widget.current.model
    assert model.spec.architecture == "fpn"
    assert model.spec.encoder == "resnet18"
    assert model.spec.class_names == ("bg", "cell", "nucleus")
    info = widget._info.value
    assert "M parameters" in info
    assert "GFLOP per megapixel" in info
    assert "on cpu" in info
    # A second widget in the same viewer sees the same model holder.
    other = model_widget(widget._viewer)
    assert other.current is widget.current
    assert "FPN" in other._info.value
    assert errors == []


def test_every_architecture_maps_to_a_valid_spec(widget):
    for arch in [a.name for a in list_architectures()]:
        widget._arch.value = arch
        spec = widget.spec()
        assert spec.architecture == arch
        assert spec.resolved_encoder == get_architecture(arch).default_encoder
        # only an architecture with a pretrainable encoder offers pretrained weights
        assert widget._weights.enabled == (get_architecture(arch).default_encoder is not None
                                           and spec.resolved_encoder != "classic")  # fmt: skip
    widget._arch.value = "attention-unet"
    assert widget.spec().encoder is None
    assert not widget._weights.enabled  # no pretrained encoder to load


def test_save_then_load_round_trip(widget, qtbot, tmp_path, errors):
    widget._arch.value = "unet"
    widget.create_model()
    qtbot.waitUntil(lambda: widget.current.model is not None, timeout=TIMEOUT_MS)
    _wait_idle(qtbot, widget)
    first = widget.current.model
    widget._save_path.value = tmp_path / "mine"
    widget.save_model()
    target = tmp_path / "mine.safetensors"
    qtbot.waitUntil(lambda: widget.current.path == target, timeout=TIMEOUT_MS)
    assert not widget.current.dirty
    widget._load_path.value = target
    widget.load_model()
    qtbot.waitUntil(lambda: widget.current.model is not first, timeout=TIMEOUT_MS)
    _wait_idle(qtbot, widget)
    x = torch.randn(1, 1, 48, 48)
    first.eval()
    with torch.inference_mode():
        assert torch.equal(widget.current.model(x), first(x))
    assert torch.equal(load_model(target)(x), first(x))
    assert errors == []


def test_bad_fields_give_a_notification_not_a_traceback(widget, errors):
    widget._classes.value = 3
    widget._class_names.value = "only, two"
    widget.create_model()
    assert len(errors) == 1
    assert "one name per class" in errors[0]
    assert widget._worker is None or widget.current.model is None


def test_failed_load_notifies_and_keeps_the_current_model(widget, qtbot, tmp_path, errors):
    widget.create_model()
    qtbot.waitUntil(lambda: widget.current.model is not None, timeout=TIMEOUT_MS)
    _wait_idle(qtbot, widget)
    kept = widget.current.model
    evil = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, evil)
    widget._load_path.value = evil
    widget.load_model()
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=TIMEOUT_MS)
    assert "refused unread" in errors[0]
    assert widget.current.model is kept


def test_a_folder_or_an_empty_field_is_named_as_such(widget, tmp_path, errors):
    """Loading a folder (an empty field is the working folder) said "no file at"."""
    (tmp_path / "models").mkdir()
    for value, words in (
        (tmp_path / "models", "is a folder; choose a model file (.safetensors) in it"),
        (tmp_path / "gone.safetensors", "no file at"),
    ):
        widget._load_path.value = value
        widget.load_model()
        assert words in errors[-1]
    widget._load_path.line_edit.value = ""  # cleared: magicgui's "." was named a folder
    widget.load_model()
    assert errors[-1] == "Cannot load model: no model file chosen; pick one with Select file"
    assert len(errors) == 3


def test_offline_imagenet_request_is_a_notification(widget, qtbot, errors, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    widget._arch.value = "fpn"
    widget._encoder.value = "resnet18"
    assert widget._weights.enabled
    widget._weights.value = "imagenet"
    widget.create_model()
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=TIMEOUT_MS)
    assert "not in the local cache" in errors[0]
    assert widget.current.model is None


def test_device_choices_list_cpu(widget, qtbot):
    qtbot.waitUntil(lambda: "cpu" in [c for c in widget._device.choices], timeout=TIMEOUT_MS)


def test_sample_data_layers(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample("napari-seg", "cells2d")
    image, labels = viewer.layers
    assert image.data.shape == labels.data.shape
    assert isinstance(labels, napari.layers.Labels)
    assert list(labels.features["class"]) == ["background", "cytoplasm", "nucleus"]
    assert np.unique(labels.data).tolist() == [0, 1, 2]


def test_widget_gets_its_holder_explicitly(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    mine = current_model_for(viewer)
    w = ModelWidget(viewer, current=mine)
    assert w.current is mine
    another = make_napari_viewer_proxy()
    assert current_model_for(another) is not mine


OPTIMIZER_IN_VIEWER = textwrap.dedent(
    """
    import napari, torch
    viewer = napari.Viewer(show=True)        # the OpenGL canvas exists first
    viewer.add_image(torch.rand(64, 64).numpy())
    from napari_seg._widgets import model_widget   # as when a user opens the widget
    w = model_widget(viewer)
    from napari_seg.models import ModelSpec, create_model
    from napari_seg.models.stats import model_stats
    model = create_model(ModelSpec("unet", 1, 2, options={"depth": 2, "base_width": 8}))
    model_stats(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model(torch.rand(1, 1, 32, 32)).mean()
    loss.backward()
    opt.step()
    viewer.close()
    print("optimizer-ok")
    """
)


def test_optimizer_inside_a_real_viewer_does_not_crash():
    """TRAPS.md #1: triton imported after the canvas exists segfaults under Mesa."""
    result = subprocess.run(
        [sys.executable, "-c", OPTIMIZER_IN_VIEWER], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "optimizer-ok" in result.stdout


def test_saving_over_an_existing_file_needs_replace(widget, qtbot, tmp_path, errors):
    widget.create_model()
    qtbot.waitUntil(lambda: widget.current.model is not None, timeout=TIMEOUT_MS)
    _wait_idle(qtbot, widget)
    target = tmp_path / "nuclei.safetensors"
    target.write_bytes(b"a colleague's model")
    widget._save_path.value = target
    widget.save_model()
    assert widget._worker is None
    assert "already exists" in errors[-1]
    assert target.read_bytes() == b"a colleague's model"
    widget._save_path.overwrite = True
    widget.save_model()
    qtbot.waitUntil(lambda: widget.current.path == target, timeout=TIMEOUT_MS)
    assert load_model(target).spec == widget.current.model.spec


def test_save_with_no_file_name_is_a_notification(widget, qtbot, errors):
    """An empty "save as" raised from the button's slot ("PosixPath('.') has an empty
    name": a traceback in napari); it is now a notification asking for a name."""
    widget.create_model()
    qtbot.waitUntil(lambda: widget.current.model is not None, timeout=TIMEOUT_MS)
    _wait_idle(qtbot, widget)
    widget.save_model()  # the field as the dock opens: empty
    assert widget._worker is None
    assert errors == ["Cannot save model: give a file name in 'save as'"]


def test_a_3d_model_with_its_spacing(widget, qtbot, errors):
    widget._arch.value = "fpn"
    assert [c for c in widget._dims.choices] == [2]  # 2D only: nothing to choose
    assert not widget._dims.enabled
    widget._arch.value = "dynunet"
    assert list(widget._dims.choices) == [2, 3]
    widget._dims.value = 3
    widget._spacing.value = "5, 0.5, 0.5 mm"
    widget.create_model()
    qtbot.waitUntil(lambda: widget.current.model is not None, timeout=TIMEOUT_MS)
    _wait_idle(qtbot, widget)
    spec = widget.current.model.spec
    assert (spec.spatial_dims, spec.spacing) == (3, (5.0, 0.5, 0.5))
    assert spec.spacing_unit == "millimeter"
    assert "3D, spacing 5 x 0.5 x 0.5 mm" in widget._info.value
    assert "GFLOP per megavoxel" in widget._info.value
    widget._spacing.value = "5, 0.5"
    widget.create_model()
    assert "one size per spatial axis" in errors[-1]
    widget._spacing.value = "five"
    widget.create_model()
    assert "voxel size must be numbers" in errors[-1]
    widget._spacing.value = "5 0.5 0.5 furlong"
    widget.create_model()
    assert "unknown length unit 'furlong'" in errors[-1]
    # The spacing as the dock shows it ("5 x 0.5 x 0.5 mm") was refused when typed back.
    widget._spacing.value = "2.5 x 0.7 x 0.7 mm"
    widget.create_model()
    qtbot.waitUntil(
        lambda: widget.current.model.spec.spacing == (2.5, 0.7, 0.7), timeout=TIMEOUT_MS
    )


def test_a_3d_model_proposes_the_selected_volume_s_voxel_size(widget):
    """Choosing 3D left the voxel size empty, though the selected CT states 2.5 x 0.7 x
    0.7 mm (which a 3D U-Net plans its pooling from): it is now proposed, in the layer's
    unit; a size typed already, a 2D image or napari's default scale propose nothing.
    Adding a layer (napari then resets every dock's choices) turned a 3D DynUNet choice
    back to 2D, its only choice left "classic": the choices now follow the
    architecture."""
    import numpy as np

    viewer = widget._viewer
    widget._arch.value = "dynunet"
    widget._dims.value = 3
    viewer.add_image(np.zeros((4, 8, 8)), name="first")
    assert (list(widget._dims.choices), widget._dims.value) == ([2, 3], 3)
    assert list(widget._encoder.choices) == list(widget._encoder_choices())
    widget._dims.value = 2
    ct = viewer.add_image(np.zeros((4, 8, 8), np.int16), scale=(2.5, 0.7, 0.7), name="ct")
    if hasattr(ct, "units"):  # napari >= 0.6: the layer states its unit
        ct.units = ("millimeter",) * 3
    widget._arch.value = "dynunet"
    widget._dims.value = 3
    expected = "2.5, 0.7, 0.7" + (" mm" if hasattr(ct, "units") else "")
    assert widget._spacing.value == expected
    assert widget.spec().spacing == (2.5, 0.7, 0.7)  # the proposal parses
    widget._dims.value = 2
    widget._spacing.value = "1, 1, 1"
    widget._dims.value = 3
    assert widget._spacing.value == "1, 1, 1"  # the user's, kept
    widget._spacing.value = ""
    widget._dims.value = 2
    viewer.layers.selection.active = viewer.add_image(np.zeros((4, 8, 8)), name="plain")
    widget._dims.value = 3
    assert widget._spacing.value == ""  # napari's default scale: no size to propose


def test_a_fixed_intensity_window_proposed_from_the_selected_ct(widget, qtbot, errors):
    """Normalisation "window" (a CT's Hounsfield units, mapped to 0 and 1 and clipped)
    could be set from the command line only; the dock now offers it, proposes the
    selected image's contrast limits (the window a CT's files state, as napari-seg opens
    it), records it in the card and shows it; a malformed window is a notification."""
    viewer = widget._viewer
    assert widget._window.native.isHidden()
    viewer.add_image(np.zeros((4, 8, 8), np.int16), contrast_limits=(-160, 240), name="ct")
    widget._normalization.value = "window"
    assert not widget._window.native.isHidden()  # shown (the viewer itself is hidden)
    assert widget._window.value == "-160, 240"
    widget._window.value = "-175, 250"  # the user's own choice
    widget.create_model()
    qtbot.waitUntil(lambda: widget.current.model is not None, timeout=TIMEOUT_MS)
    _wait_idle(qtbot, widget)
    assert widget.current.model.spec.normalization.window == (-175.0, 250.0)
    assert "normalisation window -175 to 250, clipped" in widget._info.value
    for text, message in (("250", "two numbers"), ("250, -175", "lowest < highest")):
        widget._window.value = text
        widget.create_model()
        assert message in errors[-1]
    widget._window.value = "-40 to 80"  # as the dock shows a window; refused once
    assert widget.spec().normalization.window == (-40.0, 80.0)
    widget._normalization.value = "percentile"
    assert widget._window.native.isHidden()
    assert widget.spec().normalization.window is None  # the hidden field is not used


def test_a_model_replaced_while_saving_is_not_marked_saved(
    widget, qtbot, tmp_path, errors, monkeypatch
):
    """The file holds the model Save was pressed for: a model that replaced it meanwhile
    (a training run ending) kept "saved" and the file's path although it is not in it,
    and the saved one was released (moved off its device) under the writer."""
    import threading

    from napari_seg.models import create_model

    widget.create_model()
    qtbot.waitUntil(lambda: widget.current.model is not None, timeout=TIMEOUT_MS)
    _wait_idle(qtbot, widget)
    first = widget.current.model
    writing, go_on, released = threading.Event(), threading.Event(), []
    real_save = widget_module.save_job
    monkeypatch.setattr(
        "napari_seg._widgets._current._release", lambda model: released.append(model)
    )

    def slow_save(model, path, overwrite):
        writing.set()
        assert go_on.wait(30)
        return real_save(model, path, overwrite)

    monkeypatch.setattr(widget_module, "save_job", slow_save)
    widget._save_path.value = tmp_path / "first"
    widget.save_model()
    assert writing.wait(30)
    trained = create_model("unet", in_channels=1, num_classes=2)
    widget.current.set(trained, dirty=True)  # as a finished training run does
    assert released == []  # the one being written is released after it, not under it
    warnings = []
    monkeypatch.setattr(widget_module, "show_warning", warnings.append)
    go_on.set()
    qtbot.waitUntil(lambda: widget._save.enabled and bool(released), timeout=TIMEOUT_MS)
    assert released == [first]
    assert widget.current.model is trained
    assert widget.current.dirty
    assert widget.current.path is None
    assert "not saved" in warnings[0]
    x = torch.randn(1, 1, 32, 32)
    first.eval()
    with torch.inference_mode():
        assert torch.equal(load_model(tmp_path / "first.safetensors")(x), first(x))
    assert errors == []
