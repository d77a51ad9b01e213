"""The Train dock's worker bodies and what they are given (they touch no layer or widget)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..training.config import TrainingConfig
from ._shared import forward_events
from ._train_preview import PreviewView


@dataclass(frozen=True)
class TrainInputs:
    """What the worker needs, copied out of the layers on the main thread."""

    pairs: list
    names: list[str]
    config: TrainingConfig
    model: object
    out: Path | None
    overwrite: bool
    preview: PreviewView | None  # the part of the view predicted every few seconds
    preview_name: str
    #: per pair, the labels' and image's medical geometries and names when their shapes
    #: differ (``_place.window_grids``): the worker places the labels on the image's grid
    #: (labels covering a window of it, or of a volume the image is cropped from)
    grids: list = field(default_factory=list)


def train_job(inputs: TrainInputs, *, stop, cancel):
    """Worker body: run training in the training process (``training.process``), forward
    its events; return the result, None when cancelled."""
    from ..medical import place_on_grid
    from ..training.loop import iter_train
    from ..training.process import run_in_process

    pairs = list(inputs.pairs)
    for k, grid in enumerate(inputs.grids):
        if grid is not None:  # a cropped segmentation, or labels of a cropped image's volume
            image, labels = pairs[k]
            pairs[k] = (image, place_on_grid(np.asarray(labels), *grid, drop_outside=True))
    events = run_in_process(
        iter_train,
        pairs,
        inputs.config,
        model=inputs.model,
        out=inputs.out,
        overwrite=inputs.overwrite,
        stop=stop,
        preview=None if inputs.preview is None else inputs.preview.image,
        names=inputs.names,
    )
    return (yield from forward_events(events, cancel))


def takeover_job(inputs: TrainInputs, *, stop, cancel):
    """Worker body of "Train deep model" (in the training process): the takeover's
    events, then its result and the labels of the winning model for the strokes'
    image (None when cancelled)."""
    from ..training.process import run_in_process
    from ..training.takeover import iter_takeover_labels

    ((image, strokes),) = inputs.pairs
    events = run_in_process(
        iter_takeover_labels,
        image,
        strokes,
        inputs.config,
        model=inputs.model,
        stop=stop,
        preview=None if inputs.preview is None else inputs.preview.image,
    )
    return (yield from forward_events(events, cancel))
