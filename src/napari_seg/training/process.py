"""Running a training generator in a separate Python process, its events streamed back.

Why a process: the GUI's training ran in a thread, and the first optimizer of a
process imports ``torch._dynamo``, whose imports trigger full garbage-collection
passes of napari's whole heap (220-270 ms each, holding the GIL whichever thread
runs them): the window froze for a quarter of a second. A separate process has
its own heap and its own GIL, so nothing training does can stall napari's main
thread; a crash in it (a native library, the kernel's out-of-memory killer)
ends the job with a message, not napari.

The process is started with :mod:`subprocess` (``python -c``), not with
:mod:`multiprocessing`: its "spawn" start method runs the main script of the
parent again in the child, and a napari script without an
``if __name__ == "__main__":`` guard would open a second viewer.

The protocol, one pickled tuple per length-prefixed frame (the child's standard
output carries the frames; what it prints goes to its standard error):

- parent to child: ``("job", func, args, kwargs)``, ``("next",)`` after each
  event the parent has taken, ``("close",)`` instead when the parent stops
  reading (the child closes the generator, freeing its memory), ``("stop",)``
  to set the ``stop`` event the generator was given;
- child to parent: ``("ready",)`` once its imports are done, ``("event", e)``,
  ``("returned", value)``, ``("error", exception)``, ``("closed", None)``.

The child waits for ``next`` after each event, so it runs no further than the
parent reads: a worker paused at an event pauses the run (and its budget clock)
as it did in a thread. Pickle is used only between this process and the child it
started, on their private pipes; models cross as their spec, card and CPU
tensors and are rebuilt with :func:`~napari_seg.models.create_model`, never as
pickled modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Generator
from typing import IO, Any

__all__ = ["TrainingProcessError", "prepare", "run_in_process", "shutdown_idle"]

_FRAME = struct.Struct("<Q")
_PATH_VARIABLE = "NAPARI_SEG_SYS_PATH"
_BOOT = (
    "import json, os, sys; "
    f"sys.path[:] = json.loads(os.environ.pop({_PATH_VARIABLE!r})); "
    "from napari_seg.training.process import child_main; child_main()"
)
#: Seconds the child may take to close a generator it was told to close.
CLOSE_TIMEOUT_S = 30.0
#: Seconds between checks of the parent's ``stop`` event while it waits (a training
#: step takes longer: Stop lands within the step it was asked in, as in a thread).
POLL_S = 0.01


class TrainingProcessError(RuntimeError):
    """The training process ended without a result (crashed, killed, broken pipe)."""


# -- frames ---------------------------------------------------------------------------
class _Pickler(pickle.Pickler):
    """Pickles models as what rebuilds them (spec, card, CPU tensors), not as modules."""

    def reducer_override(self, obj: Any) -> Any:
        wrapper = sys.modules.get("napari_seg.models.wrapper")
        if wrapper is not None and isinstance(obj, wrapper.SegmentationModel):
            state = {k: v.detach().cpu() for k, v in obj.state_dict().items()}
            extra = {k: v.detach().cpu() for k, v in obj.extra_tensors.items()}
            return _rebuild_model, (obj.spec, obj.card, state, extra, obj.training)
        return NotImplemented


def _rebuild_model(spec, card, state, extra, training: bool):
    from ..models import create_model

    model = create_model(spec)
    model.load_state_dict(state, strict=True)
    model.card, model.extra_tensors = card, extra
    return model.train(training)


def _write(stream: IO[bytes], message: tuple, lock: threading.Lock) -> None:
    import io

    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    data = buffer.getvalue()
    with lock:
        stream.write(_FRAME.pack(len(data)))
        stream.write(data)
        stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other process closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read(stream: IO[bytes]) -> tuple:
    (size,) = _FRAME.unpack(_read_exact(stream, _FRAME.size))
    return pickle.loads(_read_exact(stream, size))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle round trip, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


# -- the parent's side ----------------------------------------------------------------
class _Child:
    """One training process and the thread that reads its frames into a queue."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env[_PATH_VARIABLE] = json.dumps(sys.path)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.messages: queue.Queue[tuple] = queue.Queue()
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._stop_forwarded = False
        threading.Thread(target=self._pump, name="napari-seg-training-reader", daemon=True).start()

    def _pump(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            try:
                message = _read(stream)
            except EOFError:
                self.messages.put(("exit", None))
                return
            except Exception as exc:  # a frame that does not unpickle: the child is unusable
                self.kill()
                self.messages.put(("exit", exc))
                return
            if message[0] == "ready":
                self.ready.set()
            else:
                self.messages.put(message)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, *message: Any) -> None:
        assert self.process.stdin is not None
        try:
            _write(self.process.stdin, message, self._lock)
        except (OSError, ValueError) as exc:  # a broken pipe, or one already closed
            raise self.exit_error(exc) from exc

    def start_job(self, func: Callable, args: tuple, kwargs: dict) -> None:
        self._stop_forwarded = False
        self.send("job", func, args, kwargs)

    def next_message(self, stop: threading.Event | None) -> tuple:
        """The next frame of the job; forwards ``stop`` (once) while it waits."""
        while True:
            if stop is not None and stop.is_set() and not self._stop_forwarded:
                self.send("stop")
                self._stop_forwarded = True
            try:
                return self.messages.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def close_job(self) -> bool:
        """Tell the child to close its generator; whether it did in time."""
        try:
            self.send("close")
        except TrainingProcessError:
            return False
        try:
            kind, _ = self.messages.get(timeout=CLOSE_TIMEOUT_S)
        except queue.Empty:
            return False
        return kind == "closed"

    def exit_error(self, cause: BaseException | None) -> TrainingProcessError:
        """Why the child can no longer be used: its exit, or ``cause``."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and (cause is None or isinstance(cause, OSError)):
            reason = _exit_reason(code)  # a pipe breaks because the child is gone
            return TrainingProcessError(f"the training process stopped unexpectedly ({reason})")
        if cause is not None:  # e.g. a message that does not unpickle
            return TrainingProcessError(f"lost contact with the training process ({cause})")
        return TrainingProcessError("the training process stopped answering")

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def shutdown(self) -> None:
        """End an idle child: it exits when its input closes."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()


_SIGNAL_MEANING = {"SIGKILL": "killed, perhaps out of memory", "SIGSEGV": "crashed"}


def _exit_reason(code: int | None) -> str:
    """How a child ended, in words ("SIGKILL: killed, perhaps out of memory")."""
    if code is None:
        return "it did not exit"
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
    meaning = _SIGNAL_MEANING.get(name)
    return f"{name}: {meaning}" if meaning else name


_idle: list[_Child] = []
_idle_lock = threading.Lock()


def prepare() -> threading.Event:
    """Start a training process now (its imports take seconds), to be used by the next job.

    Returns
    -------
    threading.Event
        Set once the process has imported what training needs.
    """
    with _idle_lock:
        _idle[:] = [child for child in _idle if child.alive]
        if not _idle:
            _idle.append(_Child())
        return _idle[0].ready


def shutdown_idle() -> None:
    """End the training processes waiting for a job (the next job starts a new one)."""
    with _idle_lock:
        idle, _idle[:] = list(_idle), []
    for child in idle:
        child.shutdown()


def _take() -> _Child:
    with _idle_lock:
        while _idle:
            child = _idle.pop()
            if child.alive:
                return child
    return _Child()


def _give_back(child: _Child) -> None:
    with _idle_lock:
        if child.alive and not _idle:
            _idle.append(child)
            return
    child.shutdown()


def run_in_process(
    func: Callable[..., Generator[Any, None, Any]],
    *args: Any,
    stop: threading.Event | None = None,
    **kwargs: Any,
) -> Generator[Any, None, Any]:
    """Run the generator ``func(*args, stop=..., **kwargs)`` in a training process.

    Parameters
    ----------
    func : callable
        A generator function importable by name (module-level), taking ``stop``.
    *args, **kwargs
        Its arguments; they are pickled (arrays are copied to the process).
    stop : threading.Event, optional
        When set here, the ``stop`` event ``func`` was given is set in the process.

    Yields
    ------
    object
        The generator's events, in order.

    Returns
    -------
    object
        The generator's return value.

    Raises
    ------
    Exception
        What the generator raised (its type and message).
    TrainingProcessError
        When the process ends without a result.
    """
    child = _take()
    reusable = False
    try:
        child.start_job(func, args, kwargs)
        while True:
            kind, payload = child.next_message(stop)
            if kind == "event":
                yield payload
                child.send("next")
            elif kind in ("returned", "error"):
                reusable = True
                if kind == "error":
                    raise payload
                return payload
            else:
                raise child.exit_error(payload)
    except GeneratorExit:
        reusable = child.close_job()
        raise
    finally:
        if reusable:
            _give_back(child)
        else:
            child.kill()


# -- the child's side ------------------------------------------------------------------
class _Inbox:
    """The child's reader of its parent's frames: ``stop`` sets the event at once."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stop = threading.Event()
        self.messages: queue.Queue[tuple] = queue.Queue()
        self._stream = stream
        threading.Thread(target=self._pump, name="napari-seg-inbox", daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                message = _read(self._stream)
            except EOFError:
                os._exit(0)  # the parent is gone (or done with us): nothing to report to
            except BaseException:  # a frame that does not unpickle: end, the parent says so
                import traceback

                traceback.print_exc()
                os._exit(1)
            if message[0] == "stop":
                self.stop.set()
            else:
                self.messages.put(message)


def _warm() -> None:
    import torch

    from . import loop  # noqa: F401

    # The first optimizer imports torch._dynamo: done before the first job.
    torch.optim.AdamW(torch.nn.Linear(1, 1).parameters())


def _run_job(send: Callable[[tuple], None], inbox: _Inbox, func, args, kwargs) -> None:
    from .._generators import Returning

    inbox.stop.clear()
    events = None
    try:
        events = func(*args, stop=inbox.stop, **kwargs)
        run = Returning(events)
        for event in run:
            send(("event", event))
            if inbox.messages.get()[0] == "close":
                events.close()
                send(("closed", None))
                return
        send(("returned", run.value))
    except Exception as exc:
        if events is not None:
            events.close()
        send(("error", _portable(exc)))


def child_main() -> None:
    """The training process's main loop (started by :func:`run_in_process`)."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints go to stderr, not the frames
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    lock = threading.Lock()

    def send(message: tuple) -> None:
        try:
            _write(channel, message, lock)
        except BrokenPipeError:
            os._exit(0)  # napari is gone (closed right after opening the dock, say): quiet

    # The parent's frames wait in the pipe until the imports are done: unpickling a
    # job imports modules too, and two threads importing at once can deadlock.
    _warm()
    inbox = _Inbox(sys.stdin.buffer)
    send(("ready",))
    while True:
        message = inbox.messages.get()
        if message[0] == "job":
            _run_job(send, inbox, *message[1:])
