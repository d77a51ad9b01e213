"""The job runner's repaints: a running job reaches the screen at most every REFRESH_S."""

import threading

import pytest

pytestmark = pytest.mark.gui

pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari_seg._widgets import _runner  # noqa: E402
from napari_seg._widgets._runner import JobRunner  # noqa: E402


def test_the_first_progress_waits_for_the_next_refresh_after_the_start(qtbot, monkeypatch):
    """Starting repaints the window ("starting..."); a progress report a moment later
    joins the next refresh instead of repainting the window a second time."""
    monkeypatch.setattr(_runner, "REFRESH_S", 0.5)
    runner = JobRunner("Test", status_lines=1)
    release = threading.Event()
    seen = []

    def job(cancel):
        yield "half"
        release.wait(10)
        return "done"

    def on_event(text):
        runner.report(0.5, text)
        seen.append(runner.status.value)  # what the screen shows right after the report

    runner.start(job, on_result=lambda _r: None, on_event=on_event)
    try:
        qtbot.waitUntil(lambda: bool(seen), timeout=5000)
        assert seen == ["starting..."]
        qtbot.waitUntil(lambda: runner.status.value == "half", timeout=5000)
        assert runner.progress.value == 500
    finally:
        release.set()
        qtbot.waitUntil(lambda: runner.worker is None, timeout=5000)


def test_the_result_is_handled_with_the_end_of_the_job_in_one_turn(qtbot):
    """napari's worker sends ``returned`` and then ``finished``: the runner handles the
    result when the job finishes, so the result's changes and the idle state (buttons
    enabled again, status) reach the screen in one repaint."""
    runner = JobRunner("Test", status_lines=1)
    handled = []

    def on_result(value):
        handled.append(value)
        runner.set_status(f"done: {value}")

    go = threading.Event()

    def job(cancel):
        yield "event"
        go.wait(10)  # returns once the test listens to the worker
        return 7

    runner.start(job, on_result=on_result)
    results = []
    runner.worker.returned.connect(lambda value: results.append((value, list(handled))))
    go.set()
    qtbot.waitUntil(lambda: runner.worker is None, timeout=5000)
    assert results == [(7, [])]  # not handled when it was returned...
    assert handled == [7]  # ...but when the job finished
    assert runner.status.value == "done: 7"
    assert runner.state is _runner.JobState.IDLE


def test_a_failing_result_handler_still_ends_the_job_and_says_so(qtbot):
    """A result the dock cannot take (a bug, an array that refuses writes) ends the job
    and is said in a notification; it reached Qt's event loop, which napari shows as
    a traceback dialog."""
    said = []
    runner = JobRunner("Test", status_lines=1, notify_error=said.append)

    def on_result(value):
        raise ValueError("handler failed")

    def job(cancel):
        yield "event"
        return 1

    runner.start(job, on_result=on_result)
    with qtbot.capture_exceptions() as errors:
        qtbot.waitUntil(lambda: runner.worker is None, timeout=5000)
    assert runner.state is _runner.JobState.IDLE
    assert errors == []
    assert said == ["napari-seg Test: the result could not be taken: handler failed"]
    assert runner.status.value == "failed: handler failed"


def test_a_status_of_several_lines_reads_as_one_paragraph():
    from napari_seg._widgets._runner import status_line

    text = "budget: 8 epochs; best IoU 0.83\nthe best model is now the current model"
    assert status_line(text) == (
        "budget: 8 epochs; best IoU 0.83; the best model is now the current model"
    )
    assert status_line("cpu: 1 thread:\n  3/16 tiles\n\n") == "cpu: 1 thread: 3/16 tiles"
    assert len(status_line("x\n" * 1000)) <= 600


def test_a_status_longer_than_its_lines_is_whole_in_the_tooltip(qtbot):
    """A status label keeps a fixed height (no relayout of the window as its text
    changes), so a long status was cut without a way to read the rest (Evaluate's
    error-overlay counts); the whole text is now the label's tooltip."""
    from napari_seg._widgets._dock import wrapping_label

    label = wrapping_label("status", "idle", lines=2)
    height = label.native.height()
    assert label.native.toolTip() == "idle"
    long = "error overlay: " + ", ".join(f"class {i}: {1000 * i} pixels" for i in range(30))
    label.value = long
    assert label.native.toolTip() == long
    assert label.native.height() == height  # still fixed
