""" "Train deep model": a CNN that takes over from the pixel classifier when it is
better on strokes neither of them was fitted on.

The scheme (docs/architecture.md, "Deep model from strokes"):

1. Whole strokes are held out (about ``holdout`` of each class's strokes; every
   class keeps one), as the sparse training data does.
2. The pixel classifier is fitted on the other strokes and predicts the image.
3. The CNN's targets are the kept strokes plus the classifier's predictions
   where it is confident (probability at least ``confidence``) and nothing is
   painted; the rest gives no gradient. Patches are centred on the pixels of a
   class drawn at random, so small classes are seen as often as large ones.
   With architecture ``scribble-unet`` (the default of the dock) the CNN also
   sees that classifier's class probabilities as input channels (auto-context):
   it starts from the classifier's answer instead of from nothing.
4. Both models are scored on the held-out strokes (agreement balanced over
   classes); the CNN replaces the pixel classifier only when it scores higher.

Qt-free: the Train dock runs :func:`iter_takeover` in its worker.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import TrainingConfig
from .events import TrainEvent, TrainResult, TrainWarning
from .strokes import choose_held_out, find_strokes, stroke_mask

if TYPE_CHECKING:
    from ..models.wrapper import SegmentationModel

#: Pixel-classifier probability from which an unpainted pixel becomes a target.
CONFIDENCE = 0.9
#: Share of each class's strokes held out to decide between the two models.
HOLDOUT = 0.3


@dataclass
class TakeoverResult:
    """What "Train deep model" found.

    Attributes
    ----------
    deep : SegmentationModel
        The trained CNN.
    pixel : SegmentationModel
        The pixel classifier fitted on every stroke.
    deep_score, pixel_score : float
        Agreement with the held-out strokes, balanced over classes (NaN when no
        stroke could be held out).
    replaced : bool
        Whether the CNN scored higher (it then replaces the live prediction).
    training : TrainResult
        The CNN's run.
    """

    deep: SegmentationModel
    pixel: SegmentationModel
    deep_score: float
    pixel_score: float
    replaced: bool
    training: TrainResult


def iter_takeover(
    image: Any,
    strokes: Any,
    config: TrainingConfig | None = None,
    *,
    confidence: float = CONFIDENCE,
    holdout: float = HOLDOUT,
    model: SegmentationModel | None = None,
    stop: threading.Event | None = None,
    preview: Any = None,
) -> Generator[TrainEvent, None, TakeoverResult]:
    """Train a CNN from strokes and the pixel classifier's confident predictions.

    Parameters
    ----------
    image : array-like
        A 2D image (channels as for training).
    strokes : array-like of int
        The image's shape without channels; 0 unpainted, ids 1 and up classes.
    config : TrainingConfig, optional
        The CNN's run (architecture, budget, device...); ``label0`` and
        ``validation_fraction`` are set by the scheme.
    confidence : float
        See ``CONFIDENCE``.
    holdout : float
        See ``HOLDOUT``.
    model : SegmentationModel, optional
        A CNN to fine-tune (a copy); else ``config.from_model`` or a new one.
    stop : threading.Event, optional
        Ends the CNN's training early (the result is still scored).
    preview : array-like, optional
        Image predicted every few seconds of training (``PreviewReady`` events).

    Yields
    ------
    TrainEvent

    Returns
    -------
    TakeoverResult

    Raises
    ------
    ValueError
        For strokes of fewer than two classes, or a stack (2D images only).
    """
    from .loop import iter_train

    cfg = replace(TrainingConfig.given(config), label0="unlabelled", validation_fraction=0.0)
    labels = np.asarray(strokes)
    if labels.ndim != 2:
        raise ValueError(f"Train deep model takes a 2D image's strokes, got shape {labels.shape}")
    kept, held, messages = _hold_out(labels, holdout, cfg.seed)
    for message in messages:
        yield TrainWarning(message)
    live = _live_classifier(image, cfg, model)
    guess = live.update(kept)
    targets = np.where(
        kept > 0, kept, np.where(guess.uncertainty <= 1 - confidence, guess.labels, 0)
    )
    pixel_score = _agreement(guess.labels, labels, held)
    if model is None and cfg.from_model is None and _stacked(cfg.architecture):
        model = _with_classifier(create_stacked(live.model, cfg), live.model)
    pair = (image, targets.astype(labels.dtype))
    run = yield from iter_train(pair, cfg, model=model, stop=stop, preview=preview)
    deep_score = _agreement(_predict(run.model, image, cfg), labels, held)
    pixel = live.fit(labels)  # chosen on held-out strokes, refitted on all of them
    if _stacked(run.model.spec.architecture):
        _with_classifier(run.model, pixel)
    replaced = bool(deep_score > pixel_score)  # False when nothing could be held out
    return TakeoverResult(run.model, pixel, deep_score, pixel_score, replaced, run)


def iter_takeover_labels(
    image: Any,
    strokes: Any,
    config: TrainingConfig | None = None,
    *,
    model: SegmentationModel | None = None,
    stop: threading.Event | None = None,
    preview: Any = None,
) -> Generator[TrainEvent, None, tuple[TakeoverResult, np.ndarray]]:
    """:func:`iter_takeover`, then the winning model's labels of ``image``.

    What the Train dock's "Train deep model" runs (in a training process).

    Parameters
    ----------
    image, strokes, config, model, stop, preview
        As for :func:`iter_takeover`.

    Yields
    ------
    TrainEvent

    Returns
    -------
    (TakeoverResult, ndarray)
        The result and the labels the winner predicts for ``image``.
    """
    from ..inference import PredictConfig, predict

    cfg = TrainingConfig.given(config)
    result = yield from iter_takeover(image, strokes, cfg, model=model, stop=stop, preview=preview)
    winner = result.deep if result.replaced else result.pixel
    labels = predict(winner, image, PredictConfig(device=cfg.device, channel_axis=cfg.channel_axis))
    return result, labels.labels


def _stacked(architecture: str) -> bool:
    return architecture == "scribble-unet"


def _live_classifier(image: Any, cfg: TrainingConfig, model: SegmentationModel | None) -> Any:
    """The pixel classifier of the scheme (the run's classes, names, colours and
    background), shaped as the ``scribble-unet``'s own classifier."""
    from .live import LiveClassifier

    options: dict[str, Any] = {}
    stacked = model.spec if model is not None else cfg
    if _stacked(stacked.architecture):
        names = {"max_sigma": "max_sigma", "trees": "trees", "tree_depth": "depth"}
        options = {names[k]: v for k, v in stacked.options.items() if k in names}
    return LiveClassifier(image, replace(cfg, architecture="pixel-classifier", encoder=None,
                                         options=options, from_model=None))  # fmt: skip


def create_stacked(pixel: SegmentationModel, cfg: TrainingConfig) -> SegmentationModel:
    """A new ``scribble-unet`` with the classes, colours and normalisation of ``pixel``.

    Parameters
    ----------
    pixel : SegmentationModel
        A fitted pixel classifier.
    cfg : TrainingConfig
        Its ``options`` are the new network's.

    Returns
    -------
    SegmentationModel
    """
    import torch

    from ..models import create_model

    spec = pixel.spec.with_(architecture="scribble-unet", encoder=None, options=dict(cfg.options))
    torch.manual_seed(cfg.seed)
    return create_model(spec.validate()).to(pixel.device)


def _with_classifier(model: SegmentationModel, pixel: SegmentationModel) -> SegmentationModel:
    """``model`` (a ``scribble-unet``) with the forest of ``pixel`` copied in."""
    from .pixel import pixel_net

    inner, source = pixel_net(model), pixel_net(pixel)
    inner.load_state_dict(source.state_dict())
    return model


def _hold_out(labels: np.ndarray, fraction: float, seed: int):
    """Strokes with some whole strokes removed, the removed pixels, and warnings."""
    strokes = find_strokes(labels, 0, 0)
    if len({s.cls for s in strokes}) < 2:
        raise ValueError("paint strokes of at least two classes first")
    held, messages = choose_held_out(strokes, fraction, np.random.default_rng(seed))
    mask = stroke_mask(held, labels.shape)
    kept = labels.copy()
    kept[mask] = 0
    return kept, mask, messages


def _agreement(prediction: np.ndarray, labels: np.ndarray, held: np.ndarray) -> float:
    """Held-out stroke agreement (``validation.stroke_agreement``) of ``prediction``."""
    from .validation import stroke_agreement

    k = int(max(labels.max(), prediction.max())) + 1
    pairs = labels[held].astype(np.int64) * k + prediction[held].astype(np.int64)
    return stroke_agreement(np.bincount(pairs, minlength=k * k).reshape(k, k))[0]


def _predict(model: SegmentationModel, image: Any, cfg: TrainingConfig) -> np.ndarray:
    from ..inference import PredictConfig, predict

    config = PredictConfig(device=cfg.device, channel_axis=cfg.channel_axis)
    return np.asarray(predict(model, image, config).labels)
