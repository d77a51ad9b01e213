"""Atomic file writes that never replace a file unless told to.

This module is the one home of the output rule: an existing file is replaced
only with ``overwrite=True`` (``--overwrite`` on the command line, "replace an
existing file" in the widgets), a job never writes over one of its own inputs,
a crash leaves either the old file or the complete new one, and the file gets
the permissions a plain ``open(path, "w")`` would give it (the umask, or the
mode of the file it replaces).

Temporary files are named ``.NAME.nsgPID-HOST-RANDOM.tmp`` beside the
destination. A process killed while writing leaves one behind; the next write
into that folder from this machine removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

#: Marker of our temporary files (``.NAME.nsg<pid>-<host>-<random>.tmp``).
TEMP_TAG = "nsg"
_TEMP = re.compile(r"^\..+\." + TEMP_TAG + r"(?P<pid>\d+)-(?P<host>[0-9a-f]{6})-[0-9a-z]{10}\.tmp$")
#: Temporary files of earlier versions (``tempfile.mkstemp``: ``.NAME.XXXXXXXX.tmp``),
#: removed once they are this old (seconds): their writer is long gone.
LEGACY_TEMP_AGE = 3600.0
_LEGACY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")

_cleaned: set[str] = set()
_cleaned_lock = threading.Lock()


class OutputExistsError(FileExistsError):
    """Writing would replace an existing file, and overwriting was not allowed."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path} already exists; napari-seg replaces a file only when told to "
            "(--overwrite on the command line, 'replace an existing file' in the widgets, "
            "overwrite=True in Python)"
        )


def check_target(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable = (),
    folder: bool = False,
) -> Path:
    """Check that ``path`` may be written, before any work is done.

    Parameters
    ----------
    path : path-like
        The file to write.
    overwrite : bool
        Whether an existing file may be replaced.
    inputs : iterable of path-like
        Files the job reads; ``path`` must be none of them unless ``overwrite``
        is set and the job has read them whole before writing (the caller decides:
        pass only the inputs that must never be replaced).
    folder : bool
        Whether the output is a folder (an OME-Zarr store) rather than a file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    IsADirectoryError
        If ``path`` is a folder and ``folder`` is False.
    FileNotFoundError
        If its folder does not exist.
    ValueError
        If ``path`` is one of ``inputs``.
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.is_dir() and not folder:
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {parent}")
    for source in inputs:
        if same_file(path, source):
            raise ValueError(f"{path} is an input of this job; it is never written over")
    if not overwrite and path.exists():
        raise OutputExistsError(path)
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (links included); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).absolute() == Path(b).absolute()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; move it to ``path`` on success.

    The data is flushed and fsynced before it is moved, so readers see either
    the old file or the complete new one. On an exception the temporary file is
    removed and ``path`` is untouched.

    Parameters
    ----------
    path : path-like
        Destination. Its folder must exist and be writable.
    overwrite : bool
        Replace ``path`` if it exists (keeping its permission bits). Without it
        an existing file is never replaced, even one that appears while writing.

    Raises
    ------
    FileNotFoundError, PermissionError
        If the destination folder is missing or not writable (raised before
        anything is written).
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    path = check_target(path, overwrite=overwrite)
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_temporaries(folder)
    tmp = _create_temp(folder, path.name)
    try:
        with _open_temp(tmp) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _keep_mode(tmp, path)
        _move(tmp, path, overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Make a rename into ``folder`` durable."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """As :func:`atomic_write`, for a writer that takes a file name rather than a
    handle and picks its format by the name's suffix (SimpleITK): it writes the
    path yielded, which has ``path``'s name, in a temporary folder beside ``path``.

    Parameters
    ----------
    path : path-like
    overwrite : bool

    Yields
    ------
    pathlib.Path
        Where to write. Only that file is moved to ``path``; whatever else the
        writer leaves in the folder is removed with it.

    Raises
    ------
    FileNotFoundError, PermissionError, OutputExistsError
        As :func:`atomic_write`.
    """
    path = check_target(path, overwrite=overwrite)
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_temporaries(folder)
    tmp = _create_temp(folder, path.name, folder=True)
    try:
        written = tmp / path.name
        yield written
        with open(written, "rb+") as handle:
            os.fsync(handle.fileno())
        _keep_mode(written, path)
        _move(written, path, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _sync_folder(folder)


def _create_temp(parent: Path, name: str, *, folder: bool = False) -> Path:
    """An empty temporary file, created with mode 0o666 so that the umask applies (a
    private folder with ``folder=True``)."""
    for _ in range(100):
        token = secrets.token_hex(5)
        tmp = parent / f".{name}.{TEMP_TAG}{os.getpid()}-{_host_tag()}-{token}.tmp"
        try:
            if folder:
                os.mkdir(tmp, 0o700)
                return tmp
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:  # named by the file asked for, not our temporary one
            raise type(exc)(f"cannot write {parent / name}: {exc.strerror}") from None
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file in {parent}")  # pragma: no cover


def _open_temp(path: Path) -> BinaryIO:
    # Opened by name (not from a descriptor) so that writers such as tifffile
    # see a real file name in ``handle.name``.
    return open(path, "wb")


def _keep_mode(tmp: Path, path: Path) -> None:
    """Give the new file the permission bits of the file it replaces."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))


def _move(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    # A hard link fails if ``path`` exists, so a file that appeared while we wrote survives.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(path) from None
    except OSError as exc:  # no hard links here (FAT, some network file systems)
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if path.exists():
            raise OutputExistsError(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove our temporary files (and :func:`atomic_path`'s folders) in ``folder``
    left by processes that are gone.

    Only files named by this module are touched: those of this machine whose
    process no longer runs, and those of earlier versions older than
    ``LEGACY_TEMP_AGE``. Each folder is scanned once per process.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    key = os.path.abspath(folder)
    with _cleaned_lock:
        if key in _cleaned:
            return []
        _cleaned.add(key)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    now = time.time()
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        if _is_stale(entry, now):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):  # an atomic_path folder
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _is_stale(entry: os.DirEntry, now: float) -> bool:
    match = _TEMP.match(entry.name)
    if match is not None:
        return match["host"] == _host_tag() and not _process_alive(int(match["pid"]))
    if _LEGACY.match(entry.name) is None:
        return False
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_TEMP_AGE
    except OSError:
        return False


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or we cannot tell: keep the file)
    return True


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
