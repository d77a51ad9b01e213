"""Helpers shared by the ``napari-seg`` subcommands."""

from __future__ import annotations

import json
from pathlib import Path


def read_config(cls, path: Path | None):
    """``cls.from_json`` of the file at ``path`` (a default ``cls()`` when None).

    Raises
    ------
    ValueError
        If the file is not valid JSON or its settings are invalid.
    OSError
        If the file cannot be read.
    """
    if path is None:
        return cls()
    try:
        return cls.from_json(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config {path} is not valid JSON: {exc}") from None
