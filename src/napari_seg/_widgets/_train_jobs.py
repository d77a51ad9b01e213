"""The Train dock's worker bodies and what they are given (they touch no layer or widget)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inference.config import PredictConfig
from ..training.config import TrainingConfig
from ._shared import forward_events


@dataclass(frozen=True)
class TrainInputs:
    """What the worker needs, copied out of the layers on the main thread."""

    pairs: list
    names: list[str]
    config: TrainingConfig
    model: object
    out: Path | None
    overwrite: bool
    preview: np.ndarray | None
    preview_name: str
    preview_place: tuple[tuple[float, ...], tuple[float, ...]]
    preview_slice: int | None = None  # a 3D preview: the slice of the slab to show
    preview_units: tuple[str, ...] | None = None  # the image layer's, along y and x


def train_job(inputs: TrainInputs, *, stop, cancel):
    """Worker body: forward the training events; return the result, None when cancelled."""
    from ..training import iter_train

    events = iter_train(
        inputs.pairs,
        inputs.config,
        model=inputs.model,
        out=inputs.out,
        overwrite=inputs.overwrite,
        stop=stop,
        preview=inputs.preview,
        names=inputs.names,
    )
    return (yield from forward_events(events, cancel))


def takeover_job(inputs: TrainInputs, *, stop, cancel):
    """Worker body of "Train deep model": the takeover's events, then its result and the
    labels of the winning model for the strokes' image (None when cancelled)."""
    from ..inference import predict
    from ..training.takeover import iter_takeover

    ((image, strokes),) = inputs.pairs
    events = iter_takeover(
        image, strokes, inputs.config, model=inputs.model, stop=stop, preview=inputs.preview
    )
    result = yield from forward_events(events, cancel)
    if result is None:
        return None
    winner = result.deep if result.replaced else result.pixel
    config = PredictConfig(device=inputs.config.device, channel_axis=inputs.config.channel_axis)
    return result, predict(winner, image, config).labels
