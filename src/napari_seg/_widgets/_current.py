"""The model a viewer's widgets share (Model creates it, Segment and Train use it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models.stats import ModelStats
    from ..models.wrapper import SegmentationModel

logger = logging.getLogger(__name__)


class CurrentModel:
    """Holds one model, where it came from, and who wants to know when it changes.

    One instance is created per viewer and passed explicitly to the widgets
    that share it; there is no module-level singleton. Mutate it from one
    thread (in napari, the main thread): callbacks run synchronously.

    Attributes
    ----------
    model : SegmentationModel or None
    path : pathlib.Path or None
        The file the model was loaded from or last saved to.
    dirty : bool
        True when the model has changes not saved to ``path``.
    stats : ModelStats or None
        Parameter count and GFLOPs of ``model`` when known.
    """

    def __init__(self) -> None:
        self.model: SegmentationModel | None = None
        self.path: Path | None = None
        self.dirty = False
        self.stats: ModelStats | None = None
        self._callbacks: list[Callable[[CurrentModel], None]] = []
        self._jobs: dict[int, int] = {}  # id(model): jobs running with it
        self._dropped: dict[int, SegmentationModel] = {}  # replaced while in use

    def hold(self, model: SegmentationModel) -> None:
        """Mark ``model`` as used by a job (in a worker): replaced or cleared meanwhile,
        it keeps its device until :meth:`let_go` (moving it off the GPU under a running
        forward made the job fail with tensors on two devices)."""
        self._jobs[id(model)] = self._jobs.get(id(model), 0) + 1

    def let_go(self, model: SegmentationModel) -> None:
        """The job that held ``model`` has ended; a model dropped meanwhile is released."""
        key = id(model)
        left = self._jobs.get(key, 0) - 1
        if left > 0:
            self._jobs[key] = left
            return
        self._jobs.pop(key, None)
        dropped = self._dropped.pop(key, None)
        if dropped is not None and dropped is not self.model:
            _release(dropped)

    def _drop(self, model: SegmentationModel | None) -> None:
        """Release a model that is no longer current, or later if a job holds it."""
        if model is None or model is self.model:
            return
        if self._jobs.get(id(model)):
            self._dropped[id(model)] = model
        else:
            _release(model)

    def connect(self, callback: Callable[[CurrentModel], None]) -> None:
        """Call ``callback(self)`` after every change."""
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[[CurrentModel], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def set(
        self,
        model: SegmentationModel,
        *,
        path: Path | None = None,
        dirty: bool = False,
        stats: ModelStats | None = None,
    ) -> None:
        """Replace the held model; the previous one is released (GPU memory freed)."""
        previous = self.model
        self.model, self.path, self.dirty, self.stats = model, path, dirty, stats
        self._drop(previous)
        self._emit()

    def mark_saved(self, path: Path, model: SegmentationModel | None = None) -> None:
        """Record that ``model`` (the current one when None) is saved in ``path``.

        A model replaced while it was being saved leaves the new one's path and
        unsaved changes as they are: the file holds the old model.
        """
        if model is not None and model is not self.model:
            return
        self.path, self.dirty = Path(path), False
        self._emit()

    def clear(self) -> None:
        """Drop the model and release its memory."""
        previous, self.model, self.path, self.dirty = self.model, None, None, False
        self.stats = None
        self._drop(previous)
        self._emit()

    def _emit(self) -> None:
        for callback in list(self._callbacks):
            callback(self)


def _release(model) -> None:
    """Move a dropped model off its accelerator and return the cached memory.

    Nothing to do for a model on the CPU: its memory goes when the last
    reference does (no ``gc.collect()`` on the GUI thread, which takes a
    noticeable pause with napari's many objects).
    """
    from .._device import release_memory

    device = model.device
    if device.type == "cpu":
        return
    model.to("cpu")
    release_memory(device)
    logger.debug("released model from %s", device)
