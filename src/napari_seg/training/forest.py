"""The random forest of the pixel classifier: fitted by scikit-learn, copied into tensors.

scikit-learn's ``RandomForestClassifier`` (classes weighted by the inverse of their
pixel count) is fitted on the feature vectors of annotated pixels, then each tree
is copied into :class:`~napari_seg.models._pixel.PixelClassifierNet`'s tensors as
a complete binary tree, whose decisions match scikit-learn's exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from ..models._pixel import PixelClassifierNet

#: A split that a tree did not make sends every pixel left (a finite "infinity",
#: as model files hold finite numbers only).
NEVER = float(np.finfo(np.float32).max)


@dataclass
class PixelFit:
    """A fit's out-of-bag error rate and scikit-learn's forest (whose decisions the
    network's tensors copy exactly; kept in memory only, never written)."""

    error: float
    forest: Any


@dataclass
class FeatureSamples:
    """Feature vectors of annotated pixels and their classes (and, when drawn from
    more pixels, how many pixels each stands for)."""

    vectors: torch.Tensor  # (n, features), float32 on the CPU
    classes: torch.Tensor  # (n,) int64
    weights: torch.Tensor | None = None  # (n,) float64


def fit_forest(
    net: PixelClassifierNet, samples: FeatureSamples, *, seed: int = 0, threads: int | None = None
) -> PixelFit:
    """Fit the forest of ``net`` on ``samples`` (in place).

    Parameters
    ----------
    net : PixelClassifierNet
    samples : FeatureSamples
    seed : int
    threads : int, optional
        CPU threads scikit-learn may use (all by default).

    Returns
    -------
    PixelFit
        The forest's out-of-bag error rate on the samples (a rough, optimistic
        fit figure; the held-out strokes say more) and the forest.
    """
    from sklearn.ensemble import RandomForestClassifier

    x = samples.vectors.numpy()
    y = samples.classes.numpy()
    forest = RandomForestClassifier(
        n_estimators=net.trees,
        max_depth=net.depth,
        class_weight="balanced",
        n_jobs=threads or -1,
        random_state=seed,
    )
    forest.fit(x, y)
    feature, threshold, leaf = _complete_trees(forest, net.depth, net.num_classes)
    levels = max(estimator.tree_.max_depth for estimator in forest.estimators_)
    net.load_forest(feature, threshold, leaf, levels)
    error = _oob_error(forest, x, y) if len(y) >= 2 * net.trees else float("nan")
    return PixelFit(error, forest)


def _oob_error(forest: Any, x: np.ndarray, y: np.ndarray) -> float:
    """The forest's out-of-bag error rate: each sample classified by the trees whose
    bootstrap left it out, over the samples some tree left out.

    scikit-learn's ``oob_score_`` is the same figure when every sample is left out by
    some tree. With few trees and many samples (16 trees leave about 0.07% of the
    samples in every bootstrap) it warns, and scores those samples as predicted to
    be its first class, which skews the figure; here they are left out.
    """
    votes = np.zeros((len(y), len(forest.classes_)), np.float64)
    for tree, drawn in zip(forest.estimators_, forest.estimators_samples_, strict=True):
        out = np.ones(len(y), bool)
        out[drawn] = False
        if out.any():
            votes[out] += tree.predict_proba(x[out])
    covered = votes.sum(axis=1) > 0
    if not covered.any():
        return float("nan")
    predicted = forest.classes_[votes[covered].argmax(axis=1)]
    return float(np.mean(predicted != y[covered]))


def _complete_trees(forest: Any, depth: int, num_classes: int):
    """The forest's trees as complete binary trees of ``depth``: arrays of
    split features ``(T, 2**depth - 1)``, thresholds (float32, same rule as
    scikit-learn's float64 ones for float32 features) and leaf class
    probabilities ``(T, 2**depth, num_classes)``."""
    splits = 2**depth - 1
    trees = len(forest.estimators_)
    feature = np.zeros((trees, splits), np.int64)
    threshold = np.full((trees, splits), NEVER, np.float32)
    leaf = np.zeros((trees, splits + 1, num_classes), np.float32)
    columns = forest.classes_.astype(np.int64)
    for t, estimator in enumerate(forest.estimators_):
        tree = estimator.tree_
        values = tree.value[:, 0, :]
        probs = values / np.maximum(values.sum(axis=1, keepdims=True), 1e-12)
        stack = [(0, 0)]
        while stack:
            node, k = stack.pop()
            if k >= splits:
                leaf[t, k - splits, columns] = probs[node]
                continue
            left, right = tree.children_left[node], tree.children_right[node]
            if left == -1:  # a leaf above the last level: both branches repeat it
                stack += [(node, 2 * k + 1), (node, 2 * k + 2)]
                continue
            feature[t, k] = tree.feature[node]
            threshold[t, k] = _float32_at_most(tree.threshold[node])
            stack += [(left, 2 * k + 1), (right, 2 * k + 2)]
    return feature, threshold, leaf


def _float32_at_most(value: float) -> np.float32:
    """The largest float32 not above ``value``: ``x <= it`` iff ``x <= value`` for float32 x."""
    low = np.float32(value)
    if float(low) > value:
        low = np.nextafter(low, np.float32(-np.inf))
    return low
