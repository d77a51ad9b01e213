"""Typed events yielded by :func:`napari_seg.inference.iter_predict`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PredictStarted:
    """The job's resolved settings, yielded once before the first tile."""

    device: str
    device_description: str
    precision: str
    tile: int
    overlap: int
    batch_size: int
    tiles_total: int
    planes: int
    #: The spatial sizes the tiles run at when the image is resampled to the
    #: model's spacing (None: the image's own grid).
    resampled: tuple[int, ...] | None = None
    #: Forward passes per tile: 1, or the mirror images of test-time augmentation.
    mirrors: int = 1


@dataclass(frozen=True)
class PredictProgress:
    """Yielded after every batch of tiles."""

    tiles_done: int
    tiles_total: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        """Share of the tiles done, 0 to 1.

        Returns
        -------
        float
        """
        return self.tiles_done / self.tiles_total if self.tiles_total else 1.0

    @property
    def eta_s(self) -> float | None:
        """Estimated seconds left, None before the first tile is done."""
        if self.tiles_done == 0:
            return None
        return self.elapsed_s * (self.tiles_total - self.tiles_done) / self.tiles_done


@dataclass(frozen=True)
class SettingsAdjusted:
    """The device ran out of memory: the batch or the tile was halved and the job goes on."""

    batch_size: int
    tile: int
    reason: str


@dataclass(frozen=True)
class PredictWarning:
    """Something the user should know that does not stop the job (e.g. NaN pixels)."""

    message: str


@dataclass(frozen=True)
class PredictResult:
    """What a finished job returns.

    Attributes
    ----------
    labels : array
        Integer class labels with the input's shape minus its channel axis
        (the ``out`` array when one was given).
    probabilities : array or None
        float16 ``(num_classes, *labels.shape)`` when asked for.
    """

    labels: np.ndarray
    probabilities: np.ndarray | None
    device: str
    precision: str
    tile: int
    overlap: int
    batch_size: int
    seconds: float
    warnings: tuple[str, ...] = field(default=())


PredictEvent = PredictStarted | PredictProgress | SettingsAdjusted | PredictWarning
