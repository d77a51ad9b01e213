"""Fitting the pixel classifier: features of annotated pixels, then a random forest.

The classifier (:mod:`napari_seg.models._pixel`) is fitted, not trained for
epochs: the filter features of the annotated pixels are computed once (window by
window, with the context the widest filter needs), at most
``MAX_SAMPLES_PER_CLASS`` pixels of each class are drawn, and scikit-learn's
``RandomForestClassifier`` (classes weighted by the inverse of their pixel
count) is fitted on them, then copied into the model's tensors as complete
binary trees (:mod:`napari_seg.training.forest`). A 1-megapixel image fits in
a fraction of a second on two CPU cores.

A random forest, not a small neural network: on the scribble benchmark
(bench/scribbles.py) a two-layer perceptron on the same features matched the
forest after the first strokes but hardly improved with corrections, while the
forest improves with every round of strokes, as ilastik users expect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch

from ._shared import IGNORE_INDEX, Window
from .data import TrainingData
from .forest import FeatureSamples, PixelFit, fit_forest

if TYPE_CHECKING:
    from ..models._pixel import PixelClassifierNet
    from ..models.wrapper import SegmentationModel
    from .validation import Validation
    from .volume import VolumeData

#: At most this many annotated pixels per class are fitted on (drawn at random).
MAX_SAMPLES_PER_CLASS = 10_000
#: Side of the windows whose features are computed at once (2D, 3D).
WINDOW, WINDOW_3D = 1024, 128
#: At most this many held-out voxels of each class and block score a 3D fit (each
#: weighted by the voxels it stands for).
HELD_OUT_PER_CLASS = 20_000


class FeatureCache:
    """Features of windows already computed, by window key (for refits while painting).

    Parameters
    ----------
    max_bytes : int
        The cache drops its oldest windows beyond this size.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self._items: dict[tuple, torch.Tensor] = {}

    def get(self, key: tuple, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached features of ``key``, computed with ``compute`` when missing.

        Parameters
        ----------
        key : tuple
        compute : callable

        Returns
        -------
        torch.Tensor
        """
        if key in self._items:
            self._items[key] = self._items.pop(key)  # most recently used last
            return self._items[key]
        value = compute()
        self._items[key] = value
        while sum(v.numel() * v.element_size() for v in self._items.values()) > self.max_bytes:
            if len(self._items) == 1:
                break
            self._items.pop(next(iter(self._items)))
        return value


def sample_features(
    net: PixelClassifierNet,
    windows: Iterable[Window],
    rng: np.random.Generator,
    device: torch.device,
    cache: FeatureCache | None = None,
    stop: threading.Event | None = None,
) -> FeatureSamples:
    """Feature vectors of the annotated pixels of ``windows``, at most
    ``MAX_SAMPLES_PER_CLASS`` per class.

    Parameters
    ----------
    net : PixelClassifierNet
    windows : iterable of Window
    rng : numpy.random.Generator
    device : torch.device
    cache : FeatureCache, optional
    stop : threading.Event, optional
        Once set, no window is read after the current one (the samples are
        those of the windows read so far).

    Returns
    -------
    FeatureSamples

    Raises
    ------
    ValueError
        If no window holds an annotated pixel.
    """
    parts: list[FeatureSamples] = []
    for window in windows:
        feats = window_features(net, window, device, cache)
        parts.append(draw_samples(feats, window.target, rng, MAX_SAMPLES_PER_CLASS))
        if stop is not None and stop.is_set() and any(len(p.classes) for p in parts):
            break
    return balanced(_joined(parts), rng)


def draw_samples(
    feats: torch.Tensor, target: np.ndarray, rng: np.random.Generator, per_class: int
) -> FeatureSamples:
    """The feature vectors of the annotated pixels of one window, at most
    ``per_class`` of each class (drawn at random), each weighted by the pixels of
    its class in the window it stands for.

    Parameters
    ----------
    feats : torch.Tensor
        ``(F, *region)``.
    target : ndarray
        The region's classes, ``IGNORE_INDEX`` where nothing is annotated.
    rng : numpy.random.Generator
    per_class : int

    Returns
    -------
    FeatureSamples
    """
    flat = feats.reshape(feats.shape[0], -1)
    target_t = torch.from_numpy(np.ascontiguousarray(target).reshape(-1))
    vectors, classes, weights = [], [], []
    for c in torch.unique(target_t[target_t != IGNORE_INDEX]).tolist():
        where = torch.nonzero(target_t == c).reshape(-1)
        count = where.numel()
        if count > per_class:
            where = where[torch.from_numpy(rng.permutation(count))][:per_class]
        vectors.append(flat[:, where.to(flat.device)].T.float().cpu())
        classes.append(torch.full((where.numel(),), c, dtype=torch.int64))
        weights.append(torch.full((where.numel(),), count / where.numel(), dtype=torch.float64))
    if not vectors:
        return FeatureSamples(torch.zeros(0, feats.shape[0]), torch.zeros(0, dtype=torch.int64))
    return FeatureSamples(torch.cat(vectors), torch.cat(classes), torch.cat(weights))


def _joined(parts: list[FeatureSamples]) -> FeatureSamples:
    """The samples of ``parts`` together (none: empty)."""
    if not parts:
        return FeatureSamples(torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64))
    weights = [p.weights if p.weights is not None else torch.ones(len(p.classes)) for p in parts]
    return FeatureSamples(
        torch.cat([p.vectors for p in parts]),
        torch.cat([p.classes for p in parts]),
        torch.cat([w.double() for w in weights]),
    )


def balanced(samples: FeatureSamples, rng: np.random.Generator) -> FeatureSamples:
    """At most ``MAX_SAMPLES_PER_CLASS`` of ``samples`` per class, drawn at random:
    what a forest is fitted on.

    Parameters
    ----------
    samples : FeatureSamples
    rng : numpy.random.Generator

    Returns
    -------
    FeatureSamples

    Raises
    ------
    ValueError
        If there is no sample.
    """
    if not len(samples.classes):
        raise ValueError("no annotated pixel to fit the pixel classifier on")
    keep = _balanced_subsample(samples.classes, rng)
    return FeatureSamples(samples.vectors[keep], samples.classes[keep])


def window_features(
    net: PixelClassifierNet, window: Window, device: torch.device, cache: FeatureCache | None
) -> torch.Tensor:
    """Features ``(F, *inner)`` of a window's inner region, from ``cache`` when there.

    Parameters
    ----------
    net : PixelClassifierNet
    window : Window
    device : torch.device
    cache : FeatureCache, optional

    Returns
    -------
    torch.Tensor
    """

    def compute() -> torch.Tensor:
        with torch.no_grad():
            image = torch.from_numpy(np.ascontiguousarray(window.image))[None].to(device)
            return net.features(image, window.inner)[0].contiguous()

    if cache is None:
        return compute()
    key = (*window.key, net.features.sigmas, str(device))
    return cache.get(key, compute)


def _balanced_subsample(classes: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Indices keeping at most ``MAX_SAMPLES_PER_CLASS`` samples of each class."""
    keep = []
    for c in torch.unique(classes).tolist():
        where = torch.nonzero(classes == c).reshape(-1)
        if where.numel() > MAX_SAMPLES_PER_CLASS:
            where = where[torch.from_numpy(rng.choice(where.numel(), MAX_SAMPLES_PER_CLASS, False))]
        keep.append(where)
    return torch.cat(keep)


def fit_pixel_classifier(
    model: SegmentationModel,
    data: TrainingData,
    *,
    seed: int = 0,
    cache: FeatureCache | None = None,
    threads: int | None = None,
    stop: threading.Event | None = None,
) -> PixelFit:
    """Fit ``model`` (a ``pixel-classifier``) to the training annotations of ``data``.

    Parameters
    ----------
    model : SegmentationModel
        Its ``net`` is a :class:`~napari_seg.models._pixel.PixelClassifierNet`;
        fitted in place.
    data : TrainingData
        Planes (a 3D classifier is fitted on volumes by :func:`iter_fit_volume`).
    seed : int
    cache : FeatureCache, optional
        Features of windows computed by earlier fits of the same data.
    threads : int, optional
        CPU threads for the forest.
    stop : threading.Event, optional
        Once set, the forest is fitted on the windows read so far.

    Returns
    -------
    PixelFit
        The forest's out-of-bag error rate (NaN with very few samples) and the
        scikit-learn forest.

    Raises
    ------
    ValueError
        If the model is not a 2D pixel classifier, ``data`` not planes, or there is
        nothing to fit on.
    """
    net = pixel_net(model)
    if net.features.dims != 2:
        raise ValueError(
            "a 3D pixel classifier is fitted on volumes, not on planes (iter_fit_volume)"
        )
    if not isinstance(data, TrainingData):
        raise ValueError("a 2D pixel classifier is fitted on planes, not on volumes")
    rng = np.random.default_rng(seed)
    windows = data.windows(WINDOW, net.features.margin)
    samples = sample_features(net, windows, rng, model.device, cache, stop)
    return fit_forest(net, samples, seed=seed, threads=threads)


def iter_fit_volume(
    model: SegmentationModel,
    data: VolumeData,
    loss_fn: torch.nn.Module,
    *,
    seed: int = 0,
    threads: int | None = None,
    stop: threading.Event | None = None,
) -> Generator[tuple[int, int], None, tuple[PixelFit, Validation]]:
    """Fit a 3D pixel classifier on ``data``, validate it on the held-out slabs, and
    fit it again on every annotation, reading each window's features once.

    Each block's features (:meth:`VolumeData.window_pairs`) give the training
    samples and the held-out ones (at most :data:`HELD_OUT_PER_CLASS` per class
    and block, each weighted by the voxels it stands for). The forest fitted on
    the training samples scores the held-out ones (the confusion matrix weighted,
    so that subsampling leaves the scores unbiased), then is fitted again on both.

    Parameters
    ----------
    model : SegmentationModel
        A 3D ``pixel-classifier``; fitted in place.
    data : VolumeData
    loss_fn : torch.nn.Module
        The run's loss, for the held-out loss.
    seed : int
    threads : int, optional
    stop : threading.Event, optional
        Once set, no block is read after the current one, and the forest is
        fitted on what was read, without validation.

    Yields
    ------
    (done, total) : tuple of int
        Blocks read so far, and in all.

    Returns
    -------
    fit : PixelFit
        The first fit's out-of-bag error and the last fit's forest.
    validation : Validation
        NaN when nothing is held out or the run was stopped.

    Raises
    ------
    ValueError
        If the model is not a 3D pixel classifier, or nothing is annotated.
    """
    from .validation import Validation

    net = pixel_net(model)
    if net.features.dims != 3:
        raise ValueError("iter_fit_volume fits a 3D pixel classifier")
    rng = np.random.default_rng(seed)
    training: list[FeatureSamples] = []
    held: list[FeatureSamples] = []
    for done, total, window, held_target in data.window_pairs(WINDOW_3D, net.features.margins):
        if window is not None and held_target is not None:
            feats = window_features(net, window, model.device, None)
            training.append(draw_samples(feats, window.target, rng, MAX_SAMPLES_PER_CLASS))
            held.append(draw_samples(feats, held_target, rng, HELD_OUT_PER_CLASS))
        yield done, total
        if stop is not None and stop.is_set() and any(len(p.classes) for p in training):
            break
    samples = _joined(training)
    fit = fit_forest(net, balanced(samples, rng), seed=seed, threads=threads)
    scored = _joined(held)
    if (stop is not None and stop.is_set()) or not data.regions or not len(scored.classes):
        return fit, Validation(float("nan"), float("nan"), {}, data.validation_metric)
    validation = _score_samples(model, scored, loss_fn, data.validation_metric)
    both = _joined([samples, scored])
    refit = fit_forest(net, balanced(both, rng), seed=seed, threads=threads)
    return PixelFit(fit.error, refit.forest), validation


def _score_samples(
    model: SegmentationModel, samples: FeatureSamples, loss_fn: torch.nn.Module, metric: str
) -> Validation:
    """The validation of ``model``'s forest on held-out ``samples``: their loss, and
    the scores of their confusion matrix, each sample counting for the pixels it
    stands for."""
    from ..models.wrapper import mask_untrained
    from .validation import validation_from_matrix

    net, k = pixel_net(model), model.spec.num_classes
    with torch.no_grad():
        logits = net.logits_of_features(samples.vectors.to(model.device).T)[None]
        y = samples.classes.to(logits.device)[None]
        loss = float(loss_fn(logits, y))
        pred = mask_untrained(logits, model.spec).argmax(dim=1)[0].cpu().numpy()
    weights = samples.weights.numpy() if samples.weights is not None else None
    counts = np.bincount(samples.classes.numpy() * k + pred, weights=weights, minlength=k * k)
    matrix = np.rint(counts).astype(np.int64).reshape(k, k)
    return validation_from_matrix(matrix, [loss], [len(samples.classes)], metric)


def pixel_net(model: SegmentationModel) -> PixelClassifierNet:
    """The pixel classifier inside ``model``.

    Parameters
    ----------
    model : SegmentationModel

    Returns
    -------
    PixelClassifierNet
        Its net, or the classifier inside a ``scribble-unet``.

    Raises
    ------
    ValueError
        If ``model`` is another architecture.
    """
    from ..models._pixel import PixelClassifierNet
    from ..models._stacked import StackedNet

    if isinstance(model.net, StackedNet):  # the classifier an auto-context U-Net sees
        return model.net.pixel
    if not isinstance(model.net, PixelClassifierNet):
        raise ValueError(
            f"this is a {model.spec.architecture} model, not a pixel classifier "
            "(architecture 'pixel-classifier')"
        )
    return model.net
