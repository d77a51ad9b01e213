"""Running the core's event generators to the end."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

R = TypeVar("R")


def drain(events: Generator[object, None, R]) -> R:
    """Consume every event of ``events`` and return the generator's return value."""
    while True:
        try:
            next(events)
        except StopIteration as done:
            return done.value
