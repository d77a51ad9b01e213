"""Tiled inference from arrays of any size into labels (Qt-free).

``iter_predict`` is a generator of typed events; ``predict`` drains it.
Importing this package does not import torch; the predictor does.
"""

from ..arrays.layout import MIN_PLANE_SIZE, ImageLayout, resolve_layout
from .config import PRECISIONS, PredictConfig
from .events import (
    PredictProgress,
    PredictResult,
    PredictStarted,
    PredictWarning,
    SettingsAdjusted,
)
from .tiling import BLENDING_MODES, TileGrid, blending_window, tile_starts

__all__ = [
    "BLENDING_MODES",
    "MIN_PLANE_SIZE",
    "PRECISIONS",
    "ImageLayout",
    "PredictConfig",
    "PredictProgress",
    "PredictResult",
    "PredictStarted",
    "PredictWarning",
    "SettingsAdjusted",
    "TileGrid",
    "blending_window",
    "iter_predict",
    "predict",
    "resolve_layout",
    "tile_starts",
]


def __getattr__(name: str):
    if name in ("iter_predict", "predict"):
        from . import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
