"""The output rule: atomic writes, never replacing a file unless told, permissions, stale
temporaries after a hard kill."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from napari_seg import _atomic
from napari_seg._atomic import OutputExistsError, atomic_write, check_target


def _write(path, data=b"new", **kwargs):
    with atomic_write(path, **kwargs) as handle:
        handle.write(data)


def _dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_an_existing_file_is_replaced_only_when_told(tmp_path):
    path = tmp_path / "ground_truth.tif"
    path.write_bytes(b"hand-made")
    with pytest.raises(OutputExistsError, match="already exists"):
        _write(path)
    assert path.read_bytes() == b"hand-made"
    _write(path, overwrite=True)
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["ground_truth.tif"]


def test_a_file_that_appears_while_writing_survives(tmp_path):
    path = tmp_path / "out.tif"

    def write_while_another_job_creates_it():
        with atomic_write(path) as handle:
            handle.write(b"ours")
            path.write_bytes(b"someone else's")  # created meanwhile, e.g. by another job

    with pytest.raises(OutputExistsError):
        write_while_another_job_creates_it()
    assert path.read_bytes() == b"someone else's"
    assert os.listdir(tmp_path) == ["out.tif"]


def test_new_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        _write(tmp_path / "a.bin")
        os.umask(0o077)
        _write(tmp_path / "b.bin")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o600


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "shared.json"
    path.write_bytes(b"old")
    path.chmod(0o664)
    _write(path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664


def test_check_target_names_inputs_folders_and_missing_folders(tmp_path):
    image = tmp_path / "x.tif"
    image.write_bytes(b"image")
    link = tmp_path / "alias.tif"
    link.symlink_to(image)
    with pytest.raises(ValueError, match="is an input of this job"):
        check_target(link, overwrite=True, inputs=[image])
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_target(tmp_path, overwrite=True)
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        check_target(tmp_path / "missing" / "a.tif")
    assert check_target(tmp_path / "new.tif") == tmp_path / "new.tif"


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from napari_seg._atomic import atomic_write

    with atomic_write(sys.argv[1]) as handle:
        handle.write(b"x" * 1000)
        handle.flush()
        print("writing", flush=True)
        time.sleep(60)
    """
)


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "big.tif"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1  # the running writer's temporary file
    _atomic._cleaned.clear()
    _write(tmp_path / "other.tif")
    assert leftovers[0].exists(), "a running writer's temporary file was removed"
    writer.send_signal(signal.SIGKILL)  # kill -9: no cleanup runs
    writer.wait()
    assert leftovers[0].exists()
    _atomic._cleaned.clear()  # a new process would scan the folder again
    _write(tmp_path / "third.tif")
    assert sorted(os.listdir(tmp_path)) == ["other.tif", "third.tif"]
    assert not target.exists()


def test_old_style_temporaries_are_removed_once_stale(tmp_path):
    old = tmp_path / ".cells_labels.tif.ab12cd34.tmp"  # tempfile.mkstemp naming of 0.1.0
    fresh = tmp_path / ".cells_labels.tif.zz98yy76.tmp"
    unrelated = tmp_path / ".notes.txt.tmp"
    for path in (old, fresh, unrelated):
        path.write_bytes(b"partial")
    long_ago = time.time() - 2 * _atomic.LEGACY_TEMP_AGE
    os.utime(old, (long_ago, long_ago))
    os.utime(unrelated, (long_ago, long_ago))
    _atomic._cleaned.clear()
    _write(tmp_path / "new.tif")
    assert not old.exists()
    assert fresh.exists()  # could still be written by a running process
    assert unrelated.exists()  # not our naming


def test_a_folder_that_refuses_writes_is_named_by_the_file_asked_for(tmp_path, monkeypatch):
    """A read-only folder said "Permission denied: '.../.m.safetensors.nsg123-...tmp'",
    naming our temporary file instead of the one the user chose."""

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_atomic.os, "open", refuse)
    target = tmp_path / "m.safetensors"
    with pytest.raises(PermissionError) as caught, atomic_write(target) as handle:
        handle.write(b"never")
    assert str(caught.value) == f"cannot write {target}: Permission denied"
    assert ".tmp" not in str(caught.value)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_atomic_path_moves_the_named_file_and_leaves_nothing_else(tmp_path):
    """A writer that takes a file name (SimpleITK picks its format by the suffix) gets
    the destination's own name in a private folder; what else it writes there (a
    data file beside a header) goes with the folder; a failure keeps the old file."""
    target = tmp_path / "case_labels.mha"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError), _atomic.atomic_path(target):
        pass
    seen = []

    def failing_writer():
        with _atomic.atomic_path(target, overwrite=True) as path:
            seen.append(path)
            path.write_bytes(b"partial")
            raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        failing_writer()
    assert seen[0].name == "case_labels.mha"
    assert seen[0].parent.parent == tmp_path
    assert target.read_bytes() == b"old"
    with _atomic.atomic_path(target, overwrite=True) as path:
        path.write_bytes(b"new")
        (path.parent / "case_labels.raw").write_bytes(b"data file")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["case_labels.mha"]


def test_a_stale_atomic_path_folder_is_removed(tmp_path):
    """The folder of a killed process is removed by the next write, as its files are."""
    dead = _dead_pid()
    stale = tmp_path / f".a.mha.{_atomic.TEMP_TAG}{dead}-{_atomic._host_tag()}-abcdefghij.tmp"
    stale.mkdir()
    (stale / "a.mha").write_bytes(b"partial")
    _atomic._cleaned.clear()
    _write(tmp_path / "b.tif")
    assert sorted(os.listdir(tmp_path)) == ["b.tif"]
