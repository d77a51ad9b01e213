"""The widgets open the way users open them: the Plugins menu, add_plugin_dock_widget,
``napari -w``. Building a widget in code skips napari's injection of the viewer."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari._app_model import get_app_model  # noqa: E402

from napari_seg._widgets import (  # noqa: E402
    EvaluateWidget,
    ModelWidget,
    RefineWidget,
    SegmentWidget,
    TrainWidget,
)
from napari_seg._widgets._shared import unwrap  # noqa: E402
from napari_seg.models import ModelSpec, create_model  # noqa: E402

WIDGETS = {
    "Model": ("napari-seg.model_widget", ModelWidget),
    "Segment": ("napari-seg.segment_widget", SegmentWidget),
    "Evaluate": ("napari-seg.evaluate_widget", EvaluateWidget),
    "Train": ("napari-seg.train_widget", TrainWidget),
    "Refine": ("napari-seg.refine_widget", RefineWidget),
}


def _inner(viewer, name):
    """The dock's widget itself (the test's viewer proxy would wrap it in a proxy)."""
    return unwrap(viewer.window.dock_widgets[f"{name} (napari-seg)"])


def test_every_widget_opens_from_the_plugins_menu_and_they_share_the_model(
    make_napari_viewer_proxy, qtbot
):
    viewer = make_napari_viewer_proxy()
    app = get_app_model()
    for name, (command, cls) in WIDGETS.items():
        app.commands.execute_command(command).result()
        assert isinstance(_inner(viewer, name), cls), name
    holders = {id(_inner(viewer, n).current) for n in WIDGETS if n != "Evaluate"}
    assert len(holders) == 1, "the docks opened from the menu do not share one model"
    model = create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 8}))
    _inner(viewer, "Model").current.set(model)
    assert "unet" in _inner(viewer, "Segment")._model_info.value
    assert _inner(viewer, "Refine").legend.names == model.spec.class_names


def test_every_widget_opens_with_add_plugin_dock_widget(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    opened = {}
    for name, (_command, cls) in WIDGETS.items():
        _dock, widget = viewer.window.add_plugin_dock_widget("napari-seg", name)
        assert isinstance(widget, cls), name
        opened[name] = unwrap(widget)
    holders = {id(w.current) for n, w in opened.items() if n != "Evaluate"}
    assert len(holders) == 1


NAPARI_W = textwrap.dedent(
    """
    import sys
    from napari.__main__ import _build_viewer

    sys.argv = ["napari", "-w", "napari-seg", "Model", "Segment", "Evaluate", "Train", "Refine"]
    viewer = _build_viewer()
    print(sorted(viewer.window.dock_widgets))
    viewer.close()
    """
)


def test_napari_w_opens_every_widget():
    """`napari -w napari-seg Model Segment ...`, through napari's own command line."""
    result = subprocess.run(
        [sys.executable, "-c", NAPARI_W], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = sorted(f"{name} (napari-seg)" for name in WIDGETS)
    assert result.stdout.strip().splitlines()[-1] == str(expected)
    assert "Traceback" not in result.stderr


def test_all_five_docks_fit_a_1000_pixel_window_and_long_text_does_not_widen_them(
    make_napari_viewer_proxy, qtbot
):
    viewer = make_napari_viewer_proxy(show=True)
    qt = unwrap(viewer.window)  # the Qt window itself, which the proxy keeps private
    window = qt._qt_window
    window.resize(1600, 1000)
    for name in WIDGETS:
        viewer.window.add_plugin_dock_widget("napari-seg", name)
    qtbot.wait(300)
    assert window.height() <= 1000, f"the docks make the window {window.height()} px tall"
    canvas = qt._qt_viewer.canvas.native
    before = canvas.width()
    for name in WIDGETS:
        _inner(viewer, name).runner.set_status("a very long status line " * 40)
    qtbot.wait(300)
    assert window.height() <= 1000
    assert canvas.width() >= before - 2, "a long status line widened the docks"
    assert canvas.width() > 600


def test_the_widgets_are_listed_by_task_in_the_layers_menu(make_napari_viewer_proxy):
    """napari's Layers menu groups tools by task (Segment, Measure...): the docks are
    there as well as under Plugins, and open from there."""
    viewer = make_napari_viewer_proxy()
    app = get_app_model()
    listed = {
        menu: {item.command.id for item in app.menus.get_menu(menu) if hasattr(item, "command")}
        for menu in ("napari/layers/segment", "napari/layers/measure")
    }
    segment = {WIDGETS[n][0] for n in ("Model", "Segment", "Train", "Refine")}
    assert segment <= listed["napari/layers/segment"]
    assert WIDGETS["Evaluate"][0] in listed["napari/layers/measure"]
    app.commands.execute_command(WIDGETS["Refine"][0]).result()
    assert isinstance(_inner(viewer, "Refine"), RefineWidget)
