"""Atomic file writes: a crash or an error never leaves a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; move it over ``path`` on success.

    The data is flushed and fsynced before ``os.replace``, which is atomic on
    POSIX and Windows, so readers see either the old file or the complete new
    one. On an exception the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : path-like
        Destination. Its folder must exist and be writable.

    Raises
    ------
    FileNotFoundError, PermissionError
        If the destination folder is missing or not writable (raised before
        anything is written).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {folder}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        with _open_temp(tmp) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _open_temp(path: str) -> BinaryIO:
    # Opened by name (not from the descriptor) so that writers such as tifffile
    # see a real file name in ``handle.name``.
    return open(path, "wb")
