"""Helpers shared by the ``napari-seg`` subcommands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
EXIT_ERROR = 1
# Errors of one input that should not stop a batch (the others are still processed).
INPUT_ERRORS = (ValueError, TypeError, OSError, MemoryError)


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


def for_each_input(
    command: str, items: Sequence[T], work: Callable[[T], str], name: Callable[[T], object]
) -> int:
    """Run ``work`` on every item, print its message, report failures by ``name``.

    Returns the exit status: 0, or 1 when any item failed (the others still ran).
    """
    failed = 0
    for item in items:
        try:
            message = work(item)
        except INPUT_ERRORS as exc:
            failed += 1
            print(f"napari-seg {command}: error: {name(item)}: {exc}", file=sys.stderr)
            continue
        print(message)
    if failed:
        print(f"napari-seg {command}: {failed} of {len(items)} input(s) failed", file=sys.stderr)
        return EXIT_ERROR
    return 0
