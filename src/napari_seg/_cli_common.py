"""Helpers shared by the ``napari-seg`` subcommands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
EXIT_ERROR = 1
# Errors of one input that should not stop a batch (the others are still processed).
INPUT_ERRORS = (ValueError, TypeError, OSError, MemoryError)


def read_config(cls, path: Path | None):
    """``cls.from_dict`` of the JSON or YAML file at ``path`` (a default ``cls()`` when None).

    Raises
    ------
    ValueError
        If the file is not valid JSON/YAML or its settings are invalid.
    OSError
        If the file cannot be read.
    """
    from ._config_file import read_mapping

    if path is None:
        return cls()
    try:
        return cls.from_dict(read_mapping(path))
    except ValueError as exc:
        raise ValueError(f"--config {path}: {exc}") from None


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse, before any work, outputs that would replace an input of the batch (always)
    or an existing file (unless ``overwrite``); the message lists them all.

    Raises
    ------
    ValueError
        Naming the outputs that may not be written.
    """
    from ._atomic import OutputExistsError, check_target

    inputs_hit, existing = [], []
    for path in outputs:
        if not path.parent.is_dir():
            continue  # a folder still to be created replaces nothing
        try:
            check_target(path, overwrite=overwrite, inputs=inputs)
        except OutputExistsError:
            existing.append(str(path))
        except ValueError:
            inputs_hit.append(str(path))
    if inputs_hit:
        raise ValueError(
            f"output(s) {', '.join(inputs_hit[:5])} would replace input(s) of this batch; "
            "choose another output folder"
        )
    if existing:
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise ValueError(
            f"output(s) {', '.join(existing[:5])}{more} already exist; pass --overwrite to "
            "replace them, or choose another output folder"
        )


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
