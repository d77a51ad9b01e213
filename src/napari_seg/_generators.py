"""Running the core's event generators: their events, then their return value."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Generic, TypeVar

E = TypeVar("E")
R = TypeVar("R")


class Returning(Generic[E, R]):
    """Iterate the events of a generator; once it is exhausted, ``value`` is its return value.

    Examples
    --------
    >>> def job():
    ...     yield "step"
    ...     return 42
    >>> run = Returning(job())
    >>> [event for event in run], run.value
    (['step'], 42)
    """

    def __init__(self, events: Generator[E, None, R]) -> None:
        self.events = events
        self.value: R | None = None

    def __iter__(self) -> Iterator[E]:
        self.value = yield from self.events


def drain(events: Generator[object, None, R]) -> R:
    """Consume every event of ``events`` and return the generator's return value."""
    run = Returning(events)
    for _ in run:
        pass
    return run.value
