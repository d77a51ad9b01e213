"""One job runner for the docks: the worker, its state, and the fields that show it.

Each dock supplies a job (a generator or function run in a napari worker) and
its result handler; the runner owns everything else: starting one worker at a
time, the explicit state (idle, running, paused, cancelling), Cancel / Pause /
Stop, the progress bar and status line, errors shown as notifications, and
dropping the events that arrive after the dock has been closed.

Everything a running job shows (progress, status, the dock's plots) reaches
the screen in one repaint at most every ``REFRESH_S`` seconds. napari's canvas
is an OpenGL widget, so Qt composites the whole window for every repaint of any
widget in it: about 20 ms of the main thread for a 1600x1000 window under
software OpenGL (Xvfb, remote desktops, virtual machines), measured with
bench/responsiveness.py. A repaint per training step would make the window
stutter; one every two seconds costs about 1% of its time.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from magicgui.widgets import Container, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QTimer

from ..limits import one_line
from ._dock import wrapping_label

#: Shortest interval between two repaints of a running job's progress.
REFRESH_S = 2.0

logger = logging.getLogger(__name__)


class JobState(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLING = "cancelling"


class JobRunner:
    """Runs one job at a time for a dock.

    Parameters
    ----------
    name : str
        The dock's name, used in notifications ("napari-seg Segment: ...").
    busy : iterable of magicgui widgets
        Buttons disabled while a job runs (Run, Apply...); they open the row of
        control buttons.
    cancel, pause, stop : bool
        Which control buttons the job supports. Jobs that support them get
        ``cancel=`` / ``stop=`` keyword arguments (``threading.Event``).
    status_lines : int
        Height of the status line, in lines of text.
    notify_error, notify_warning : callable, optional
        How the dock shows errors and warnings (default: napari notifications).
        Docks pass functions of their own module, so a test can capture them there.
    """

    def __init__(
        self,
        name: str,
        *,
        busy: Iterable = (),
        cancel: bool = True,
        pause: bool = False,
        stop: bool = False,
        status_lines: int = 3,
        notify_error: Callable[[str], None] | None = None,
        notify_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._notify_error = notify_error or show_error
        self._notify_warning = notify_warning or show_warning
        self.state = JobState.IDLE
        self.worker = None
        self.closed = False
        self.cancel_reason: str | None = None
        self._busy = list(busy)
        self._cancel_event = threading.Event()
        self._stop_event = threading.Event()
        self._supports = {"cancel": cancel, "stop": stop}
        self._on_result: Callable[[Any], None] = lambda _value: None
        self._result: tuple[Any] | None = None  # the job's return value, until it finishes
        self.progress = ProgressBar(label="progress", min=0, max=1000, value=0)
        self.status = wrapping_label("status", "idle", lines=status_lines)
        self.pause_button = PushButton(text="Pause", enabled=False) if pause else None
        self.stop_button = PushButton(text="Stop", enabled=False) if stop else None
        self.cancel_button = PushButton(text="Cancel", enabled=False) if cancel else None
        for button, action in (
            (self.pause_button, self.toggle_pause),
            (self.stop_button, self.stop),
            (self.cancel_button, self.cancel),
        ):
            if button is not None:
                button.clicked.connect(action)
        self._pending: tuple[float | None, str | None] | None = None
        self._visuals: dict[str, Callable[[], None]] = {}
        self._last_refresh = 0.0
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._refresh)

    @property
    def widgets(self) -> list:
        """The runner's fields, in dock order: one row of buttons (the dock's own first),
        the progress bar, the status line."""
        controls = [self.pause_button, self.stop_button, self.cancel_button]
        row = Container(layout="horizontal", labels=False, label="")
        row.margins = (0, 0, 0, 0)
        row.extend([*self._busy, *(b for b in controls if b is not None)])
        return [row, self.progress, self.status]

    @property
    def running(self) -> bool:
        return self.worker is not None

    # -- starting -------------------------------------------------------------------------
    def start(
        self,
        job: Callable,
        *args: Any,
        on_result: Callable[[Any], None],
        on_event: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        status: str = "starting...",
    ) -> bool:
        """Run ``job(*args[, cancel=..., stop=...])`` in a worker; False if one runs already.

        Handlers run on the main thread; those that reach a Qt object of a closed dock
        stop there quietly.
        """
        if self.worker is not None:
            self._notify_warning(f"{self.name} is already running; wait for it or cancel it")
            return False
        self._cancel_event, self._stop_event = threading.Event(), threading.Event()
        kwargs = {}
        if self._supports["cancel"]:
            kwargs["cancel"] = self._cancel_event
        if self._supports["stop"]:
            kwargs["stop"] = self._stop_event
        self._user_finished = on_finished
        self._user_error = on_error
        self._on_result, self._result = on_result, None
        connect = {
            "returned": self._keep_result,
            "errored": self._guard(self._on_error),
            "finished": self._guard(self._on_finished),
        }
        if on_event is not None:
            connect["yielded"] = self._guard(on_event)
        self._set_state(JobState.RUNNING)
        self.cancel_reason = None
        self.set_progress(0.0)
        self.set_status(status)
        # This start repaints the window ("starting..."); the job's first progress waits
        # for the next refresh rather than repainting it again a moment later.
        self._last_refresh = time.perf_counter()
        self.worker = create_worker(job, *args, _connect=connect, **kwargs)
        return True

    # -- controls --------------------------------------------------------------------------
    def cancel(self, reason: str | None = None) -> None:
        """Abort the job at its next event; no layer or file is changed by it.

        ``reason`` (shown as the status, and kept as ``cancel_reason`` for the
        result handler) says why when the user did not ask for it.
        """
        if self.worker is None:
            return
        self._cancel_event.set()
        self._stop_event.set()
        if self.state is JobState.PAUSED:
            self.worker.resume()
        self._set_state(JobState.CANCELLING)
        self.cancel_reason = reason
        self.set_status(reason or "cancelling...")

    def stop(self) -> None:
        """End the job after its current step, keeping its result (training)."""
        if self.worker is None:
            return
        self._stop_event.set()
        if self.state is JobState.PAUSED:
            self.worker.resume()
            self._set_state(JobState.RUNNING)
        self.set_status("stopping after this step...")

    def toggle_pause(self) -> None:
        """Pause the job at its next event, or resume it."""
        if self.worker is None or self.state is JobState.CANCELLING:
            return
        self.worker.toggle_pause()
        if self.state is JobState.PAUSED:
            self._set_state(JobState.RUNNING)
            self.set_status("resuming...")
        else:
            self._set_state(JobState.PAUSED)
            self.set_status("paused (the budget clock is stopped)")

    def close(self) -> None:
        """The dock is gone: cancel the job and drop whatever it still sends."""
        self.closed = True
        with contextlib.suppress(RuntimeError):  # Qt may have deleted the timer already
            self._timer.stop()
        self.cancel()

    # -- showing progress --------------------------------------------------------------------
    def report(self, fraction: float | None = None, text: str | None = None) -> None:
        """Show progress (0..1) and/or a status text, at most every ``REFRESH_S``."""
        if self.state is JobState.CANCELLING:
            return  # the job's last events must not hide why it stops
        old = self._pending or (None, None)
        self._pending = (
            fraction if fraction is not None else old[0],
            text if text is not None else old[1],
        )
        self._schedule()

    def _schedule(self) -> None:
        wait = REFRESH_S - (time.perf_counter() - self._last_refresh)
        if wait <= 0:
            self._refresh()
        elif not self._timer.isActive():
            self._timer.start(int(wait * 1000) + 1)

    def present(self, key: str, update: Callable[[], None]) -> None:
        """Apply a visual ``update`` (a plot's new picture...) with the next refresh, or now
        when no job runs; a later update under the same ``key`` replaces it."""
        if self.worker is None:
            update()
            return
        self._visuals[key] = update
        self._schedule()

    def set_status(self, text: str) -> None:
        """Show ``text`` now, replacing any status waiting to be shown."""
        if self._pending is not None:
            self._pending = (self._pending[0], None)
        self.status.value = status_line(text)

    def _refresh(self) -> None:
        """Apply everything pending in one event-loop pass: one repaint of the window."""
        if self.closed:
            return
        self._last_refresh = time.perf_counter()
        visuals, self._visuals = self._visuals, {}
        for update in visuals.values():
            update()
        if self._pending is None:
            return
        fraction, text = self._pending
        self._pending = None
        if fraction is not None:
            self.set_progress(fraction)
        if text is not None:
            self.status.value = status_line(text)

    def set_progress(self, fraction: float) -> None:
        """Show ``fraction`` (0..1) in the progress bar, with the other changes' repaint.

        QProgressBar.setValue repaints at once (a whole-window composite of its own);
        with updates disabled meanwhile, the bar joins the next scheduled repaint.
        """
        bar = self.progress.native
        bar.setUpdatesEnabled(False)
        try:
            self.progress.value = round(1000 * min(1.0, max(0.0, fraction)))
        finally:
            bar.setUpdatesEnabled(True)

    # -- worker callbacks (main thread) ------------------------------------------------------
    def _guard(self, handler: Callable) -> Callable:
        """``handler``, quiet about Qt objects of a closed dock: events that arrive after
        the dock is gone have nothing left to show."""

        def call(*args):
            try:
                handler(*args)
            except RuntimeError as exc:
                if "has been deleted" not in str(exc):
                    raise

        return call

    def _on_error(self, exc: BaseException) -> None:
        message = one_line(exc, 600)
        self._notify_error(f"napari-seg {self.name}: {message}")
        self.set_status(f"failed: {message}")
        if self._user_error is not None:
            self._user_error(exc)

    def _keep_result(self, value: Any) -> None:
        self._result = (value,)

    def _on_finished(self) -> None:
        """The job's result, then the idle state: one turn of the event loop, so the
        result's changes and the re-enabled buttons reach the screen in one repaint."""
        kept, self._result = self._result, None
        try:
            if kept is not None:
                self._guard(self._on_result)(*kept)
        except Exception as exc:  # said in a notification, never a traceback dialog
            logger.exception("napari-seg %s: taking the result failed", self.name)
            message = one_line(exc, 600)
            self._notify_error(f"napari-seg {self.name}: the result could not be taken: {message}")
            self.set_status(f"failed: {message}")
            if self._user_error is not None:
                self._user_error(exc)
        finally:
            self._finish()

    def _finish(self) -> None:
        self.worker = None
        self._pending = None
        visuals, self._visuals = self._visuals, {}
        with contextlib.suppress(RuntimeError):
            self._timer.stop()
        if not self.closed:
            for update in visuals.values():  # the last picture of a plot, say
                update()
        try:
            if self._user_finished is not None:
                self._user_finished()
        finally:
            self._set_state(JobState.IDLE)

    def _set_state(self, state: JobState) -> None:
        self.state = state
        busy = state is not JobState.IDLE
        for widget in self._busy:
            widget.enabled = not busy
        for button in (self.pause_button, self.stop_button, self.cancel_button):
            if button is not None:
                button.enabled = busy and state is not JobState.CANCELLING
        if self.pause_button is not None:
            self.pause_button.text = "Resume" if state is JobState.PAUSED else "Pause"


class RunnerFields:
    """A dock's runner fields under the short names the tests and the demo use."""

    runner: JobRunner

    @property
    def _worker(self):
        return self.runner.worker

    @property
    def _status(self):
        return self.runner.status

    @property
    def _cancel(self):
        return self.runner.cancel_button


def status_line(text: str, limit: int = 600) -> str:
    """``text`` as the status line's one paragraph (it wraps within a fixed height):
    its lines joined with "; " where a line does not end in punctuation already.

    Parameters
    ----------
    text : str
    limit : int
        Characters at most.

    Returns
    -------
    str
    """
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    joined = "".join(
        line + ("" if i == len(lines) - 1 else " " if line[-1] in ".;:," else "; ")
        for i, line in enumerate(lines)
    )
    return one_line(joined, limit)
