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
        self._finished = False
        self._value: R

    def __iter__(self) -> Iterator[E]:
        self._value = yield from self.events
        self._finished = True

    @property
    def value(self) -> R:
        """The generator's return value.

        Raises
        ------
        RuntimeError
            If the generator has not been run to its end.
        """
        if not self._finished:
            raise RuntimeError("the generator has not finished")
        return self._value


def drain(events: Generator[object, None, R]) -> R:
    """Consume every event of ``events`` and return the generator's return value."""
    run = Returning(events)
    for _ in run:
        pass
    return run.value
