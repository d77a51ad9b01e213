"""Paths as users give them: one rule for every file the Python API reads or writes."""

from __future__ import annotations

import os
from pathlib import Path


def user_path(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`pathlib.Path`, with a leading ``~`` (or ``~user``) as
    that home folder, as nibabel, imageio and shells read it.

    A shell expands an unquoted ``~`` before napari-seg sees it, but a path from
    Python, a config file or a quoted pattern arrives as written; without this,
    ``save_model(model, "~/m.safetensors")`` would look for a folder named ``~``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        If ``path`` is not a path (as :class:`pathlib.Path` says).

    Examples
    --------
    >>> user_path("data/a.tif")
    PosixPath('data/a.tif')
    """
    return Path(path).expanduser()
