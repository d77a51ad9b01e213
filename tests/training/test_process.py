"""The training process (``training.process``): events, results, errors, stop, close,
pause and crashes cross between napari's process and the one that trains.

The jobs below run in the child: they are found there by this module's name (the
child starts with the parent's ``sys.path``).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from napari_seg._generators import Returning
from napari_seg.models import ModelSpec, create_model
from napari_seg.training.process import TrainingProcessError, run_in_process


class NeedsTwoArguments(Exception):
    def __init__(self, a, b):  # pickle calls it with one: it does not survive the pipe
        super().__init__(f"{a} and {b}")


def counting(n, *, stop):
    """Yields 0..n-1, returns a small model and the process id."""
    yield from range(n)
    torch.manual_seed(0)
    spec = ModelSpec("unet", in_channels=1, num_classes=2, options={"depth": 2, "base_width": 4})
    return create_model(spec), os.getpid()


def failing(kind, *, stop):
    yield "started"
    if kind == "missing":
        raise FileNotFoundError("output folder does not exist: /nowhere")
    raise NeedsTwoArguments("this", "that")


def until_stopped(*, stop):
    count = 0
    while not stop.is_set():
        count += 1
        yield count
        time.sleep(0.01)
    return count


def marking(path, *, stop):
    try:
        yield os.getpid()
        yield "never taken"
    finally:
        with open(path, "w") as f:
            f.write("closed")


def timing(*, stop):
    for _ in range(3):
        yield time.monotonic()


def crashing(*, stop):
    yield os.getpid()
    os.kill(os.getpid(), signal.SIGKILL)
    yield "never"


def test_events_and_the_model_come_back_from_another_process():
    run = Returning(run_in_process(counting, 3))
    assert list(run) == [0, 1, 2]
    model, pid = run.value
    assert pid != os.getpid()
    torch.manual_seed(0)
    spec = ModelSpec("unet", in_channels=1, num_classes=2, options={"depth": 2, "base_width": 4})
    expected = create_model(spec)
    assert type(model) is type(expected)
    pairs = zip(model.state_dict().items(), expected.state_dict().items(), strict=True)
    for (k, a), (_, b) in pairs:
        assert torch.equal(a, b), k


def test_errors_keep_their_type_and_message_and_the_process_serves_again():
    with pytest.raises(FileNotFoundError, match="output folder does not exist: /nowhere"):
        list(run_in_process(failing, "missing"))
    with pytest.raises(RuntimeError, match="NeedsTwoArguments: this and that"):
        list(run_in_process(failing, "unpicklable"))
    run = Returning(run_in_process(counting, 1))
    assert list(run) == [0]


def test_stop_set_here_reaches_the_generator_there():
    import threading

    stop = threading.Event()
    run = Returning(run_in_process(until_stopped, stop=stop))
    for count in run:
        if count == 5:
            stop.set()
    assert 5 <= run.value < 500


def test_closing_the_run_closes_the_generator_there_and_keeps_the_process(tmp_path):
    marker = tmp_path / "closed.txt"
    events = run_in_process(marking, marker)
    pid = next(events)
    events.close()
    assert marker.read_text() == "closed"  # closed before close() returned
    again = run_in_process(marking, tmp_path / "again.txt")
    assert next(again) == pid  # the same process runs the next job
    again.close()


def test_the_process_does_not_run_ahead_of_the_reader():
    """A napari worker paused at an event pauses the run there, as in a thread."""
    events = run_in_process(timing)
    first = next(events)
    time.sleep(0.5)
    second = next(events)
    events.close()
    assert second - first >= 0.5


def test_a_killed_process_is_an_error_not_a_hang():
    events = run_in_process(crashing)
    pid = next(events)
    start = time.monotonic()
    with pytest.raises(TrainingProcessError, match=r"stopped unexpectedly.*SIGKILL"):
        next(events)
    assert time.monotonic() - start < 10
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


SCRIPT = textwrap.dedent(
    """
    # a napari script without an `if __name__ == "__main__":` guard
    import sys
    with open(sys.argv[1], "a") as f:
        f.write("ran\\n")
    sys.path.insert(0, sys.argv[2])
    from test_process import counting
    from napari_seg._generators import Returning
    from napari_seg.training.process import run_in_process
    run = Returning(run_in_process(counting, 2))
    print(list(run), run.value[1] > 0)
    """
)


def test_a_script_without_a_main_guard_is_not_run_again(tmp_path):
    """multiprocessing's spawn would run the parent's main script in the child."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    runs = tmp_path / "runs.txt"
    here = os.path.dirname(__file__)
    done = subprocess.run(
        [sys.executable, str(script), str(runs), here], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[0, 1] True"
    assert runs.read_text() == "ran\n"


def test_a_job_sent_to_a_dead_process_names_how_it_ended():
    from napari_seg.training import process

    child = process._Child()
    child.process.kill()
    child.process.wait()
    with pytest.raises(TrainingProcessError, match=r"stopped unexpectedly \(SIGKILL"):
        child.send("job", counting, (1,), {})


def test_the_process_ends_when_napari_is_killed(tmp_path):
    """No training process is left running (and using the CPU) after napari crashes."""
    script = tmp_path / "script.py"
    script.write_text(
        "import sys, time\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_process import marking\n"
        "from napari_seg.training.process import run_in_process\n"
        "events = run_in_process(marking, sys.argv[2])\n"
        "print(next(events), flush=True)\n"
        "time.sleep(600)\n"
    )
    here = os.path.dirname(__file__)
    parent = subprocess.Popen(
        [sys.executable, str(script), here, str(tmp_path / "closed.txt")],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    os.kill(child, 0)  # running
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not _running(child):
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the training process outlived napari")


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (an exited process not yet reaped by init does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _explode():
    raise ValueError("cannot be rebuilt")


class Unreadable:
    """Pickles here, raises when the training process unpickles it."""

    def __reduce__(self):
        return _explode, ()


def test_a_job_the_process_cannot_read_is_an_error_not_a_hang():
    import threading

    raised = []

    def consume():
        try:
            list(run_in_process(counting, Unreadable()))
        except Exception as exc:
            raised.append(exc)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "the job hangs"
    assert isinstance(raised[0], TrainingProcessError), raised
    assert "stopped unexpectedly (exit code 1)" in str(raised[0])


def test_a_process_whose_napari_is_gone_before_it_is_ready_ends_quietly():
    # `napari -w napari-seg Train` closed at once: the process finishes its imports
    # after napari has gone, and its "ready" meets a closed pipe.
    import json

    from napari_seg.training import process

    env = {**os.environ, process._PATH_VARIABLE: json.dumps(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", process._BOOT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    child.stdout.close()  # napari's end of the frames, gone
    try:
        child.wait(timeout=120)  # stdin stays open: only the frames' pipe is gone
        err = child.stderr.read()
    finally:
        child.kill()
        child.stdin.close()
        child.stderr.close()
    assert child.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err, err.decode()[-2000:]
