"""What the Evaluate dock runs in its worker (scores, error maps, each prediction placed
on the ground truth's grid first), what it records of a run, and its guess of which
layer is the ground truth. No napari import."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..metrics import EvaluateConfig


@dataclass(frozen=True)
class Scored:
    """Which layers a finished evaluation scored (names) and its slice axis in the viewer."""

    pred_name: str
    compare_name: str | None
    gt_name: str
    slice_axis_world: int | None
    #: for the prediction and the second one: their own and the ground truth's medical
    #: geometries and names when one covers a window of the other's grid
    #: (``_place.window_grids``), else None
    grids: tuple[tuple | None, tuple | None] = (None, None)


def _paired(pred, gt, grid: tuple | None) -> tuple:
    """A prediction and the ground truth on one grid (worker): the one covering a window
    of the other's grid placed on it (:func:`~napari_seg.medical.pair_on_grid`, the
    evaluate command's rule), else both as they are."""
    from ..medical import pair_on_grid

    if grid is None:
        return pred, gt
    pred_geometry, gt_geometry, names = grid
    return pair_on_grid(np.asarray(pred), pred_geometry, np.asarray(gt), gt_geometry, names)


def evaluate_job(pred, gt, compare, config: EvaluateConfig, grids: tuple = (None, None)):
    from ..metrics import evaluate

    first = evaluate(*_paired(pred, gt, grids[0]), config)
    return first, (None if compare is None else evaluate(*_paired(compare, gt, grids[1]), config))


def errors_job(predictions: list[tuple[str, object, tuple | None]], gt, config: EvaluateConfig):
    """Error maps of each ``(name, prediction, grid)`` against ``gt``: ``[(name, map,
    on_truth), ...]``, ``on_truth`` when the map lies on the ground truth's grid (the
    prediction covered a window of it)."""
    from ..metrics import error_map, instance_error_map

    maps = []
    for name, pred, grid in predictions:
        placed, truth = _paired(pred, gt, grid)
        if config.mode == "instance":
            errors = instance_error_map(placed, truth, threshold=config.thresholds[0])
        else:
            errors = error_map(
                placed, truth, ignore_labels=config.ignore_labels, background=config.background
            )
        maps.append((name, errors, np.shape(placed) != np.shape(pred)))
    return maps


_TRUTH = re.compile(r"ground.?truth|\btruth\b|\bgt\b|annotat|manual", re.IGNORECASE)


def _looks_like_truth(name: str) -> bool:
    """Whether a layer name reads as ground truth ("cells ground truth", "gt", ...)."""
    return _TRUTH.search(name) is not None


def suggest_pair(layers) -> tuple:
    """A (prediction, ground truth) guess among Labels ``layers`` (in layer order).

    Ground truth: the last layer whose name reads as such, else the first layer.
    Prediction: the newest other layer. ``(None, None)`` for fewer than two layers.
    """
    layers = list(layers)
    if len(layers) < 2:
        return None, None
    truth = [layer for layer in layers if _looks_like_truth(layer.name)]
    gt = truth[-1] if truth else layers[0]
    others = [layer for layer in layers if layer is not gt]
    return others[-1], gt
