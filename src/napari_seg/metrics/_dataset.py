"""Scores of a dataset: the evaluations of many images, each one's headline and all pooled.

Pooled semantic scores come from the sum of the images' confusion matrices (so a
class is scored on all its pixels, as in dataset-level IoU); pooled instance scores
from the summed matches (as StarDist's ``matching_dataset``). Surface distances and
volumes are per-class means over the images in which the class occurs (as nnU-Net
summarises cases), since a distance does not add up over images. The mean over
images of each image's headline scores is given beside them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import cast

import numpy as np

from ._confusion import ConfusionMatrix, pool_matrices
from ._evaluate import Evaluation
from ._instance import InstanceScores, pool_instance_scores
from ._report import to_dict
from ._semantic import nanmean_quiet, semantic_scores
from ._surface import SurfaceScores


@dataclass(frozen=True)
class DatasetEvaluation:
    """The evaluations of several images and what they give taken together.

    Attributes
    ----------
    names : tuple of str
        A name per image (e.g. its file name).
    images : tuple of Evaluation
        Each image's evaluation.
    pooled : Evaluation
        The images taken together (see the module's description).
    """

    names: tuple[str, ...]
    images: tuple[Evaluation, ...]
    pooled: Evaluation

    def rows(self) -> list[dict]:
        """One row per image with its :func:`headline` scores, then their means.

        Returns
        -------
        list of dict
            ``{"image": name, score: value, ...}``; the last row is "mean over images".
        """
        rows = [{"image": n, **h} for n, h in zip(self.names, self.headlines, strict=True)]
        return [*rows, {"image": "mean over images", **self.mean_over_images()}]

    @cached_property
    def headlines(self) -> list[dict[str, float | int]]:
        """Each image's :func:`headline` scores, computed once.

        Returns
        -------
        list of dict
        """
        return [headline(e) for e in self.images]

    def mean_over_images(self) -> dict[str, float | None]:
        """Each :func:`headline` score averaged over the images (NaN left out; a
        mean that is NaN or infinite, e.g. a distance to a class one image lacks, is None).

        Returns
        -------
        dict
        """
        heads = self.headlines
        # a score NaN in every image stays NaN
        means = {k: float(nanmean_quiet([h[k] for h in heads])) for k in heads[0]}
        return {k: v if math.isfinite(v) else None for k, v in means.items()}

    @cached_property
    def pooled_slices(self) -> InstanceScores | None:
        """Instance mode with per-slice scores: the objects matched plane by plane in
        every image, all planes' matches summed (a folder of time series); else None.

        Returns
        -------
        InstanceScores or None
        """
        planes = [e.slices for e in self.images]
        if not all(isinstance(p, tuple) for p in planes):
            return None
        return pool_instance_scores([s for p in planes for s in cast(tuple, p)])

    def to_dict(self) -> dict:
        """Every image's scores, the pooled scores and the means, in plain JSON types.

        Returns
        -------
        dict
        """
        out = {
            "images": [
                {"name": n, **e.to_dict()} for n, e in zip(self.names, self.images, strict=True)
            ],
            "pooled": self.pooled.to_dict(),
            "mean_over_images": self.mean_over_images(),
        }
        planes = self.pooled_slices
        if planes is not None:
            out["pooled_slices"] = to_dict(planes)
        return out


def headline(evaluation: Evaluation) -> dict[str, float | int]:
    """The few numbers that sum up one evaluation (a row of a dataset's table).

    Semantic: mean IoU and mean Dice (without the background when there is one) and
    pixel accuracy, plus the mean HD95 and surface Dice over the foreground classes
    when surfaces were scored. Instance: the object counts, F1 and accuracy at the
    first threshold and the accuracy averaged over the thresholds, and the same for
    the objects matched plane by plane when per-slice scores were asked for.

    Parameters
    ----------
    evaluation : Evaluation

    Returns
    -------
    dict of str to float or int
    """
    s = evaluation.scores
    if isinstance(s, InstanceScores):
        t = f"{s.thresholds[0]:g}"
        out: dict[str, float | int] = {
            "true objects": s.n_true,
            "predicted objects": s.n_pred,
            f"F1 @{t}": float(s.f1[0]),
            f"accuracy @{t}": float(s.accuracy[0]),
            "mean accuracy": s.mean_accuracy,
            "SEG": s.seg,
        }
        planes = evaluation.pooled_slices
        if planes is not None:  # objects matched plane by plane (a time series)
            out[f"F1 @{t} by slice"] = float(planes.f1[0])
            out["mean accuracy by slice"] = planes.mean_accuracy
            out["SEG by slice"] = planes.seg
        return out
    tail = "" if s.background is None else " (no background)"
    out = {
        f"mean IoU{tail}": float(s.mean_iou_foreground),
        f"mean Dice{tail}": float(s.mean_dice_foreground),
        "pixel accuracy": float(s.pixel_accuracy),
    }
    surface = evaluation.surface
    if surface is not None:
        out[f"mean HD{surface.percentile:g}"] = float(nanmean_quiet(surface.hausdorff))
        out["mean surface Dice"] = float(nanmean_quiet(surface.surface_dice))
    return out


def pool_evaluations(names: Sequence[str], evaluations: Sequence[Evaluation]) -> DatasetEvaluation:
    """Take the evaluations of several images together.

    Parameters
    ----------
    names : sequence of str
        A name per image.
    evaluations : sequence of Evaluation
        One per image, made with the same settings (per-image spacings may differ).

    Returns
    -------
    DatasetEvaluation

    Raises
    ------
    ValueError
        For no evaluations, a name count that differs, evaluations in different
        modes, or surface scores in different length units.
    """
    if not evaluations or len(names) != len(evaluations):
        raise ValueError(
            f"give one name per evaluation (at least one): {len(names)} names, "
            f"{len(evaluations)} evaluations"
        )
    modes = {e.config.mode for e in evaluations}
    if len(modes) > 1:
        raise ValueError(f"evaluations in different modes cannot be pooled: {sorted(modes)}")
    first = evaluations[0]
    if isinstance(first.scores, InstanceScores):
        scores = [cast(InstanceScores, e.scores) for e in evaluations]
        pooled = Evaluation(first.config, pool_instance_scores(scores))
    else:
        matrix = pool_matrices([cast(ConfusionMatrix, e.matrix) for e in evaluations])
        surface = _pool_surface([e.surface for e in evaluations if e.surface is not None])
        semantic = semantic_scores(matrix, background=first.config.background)
        pooled = Evaluation(first.config, semantic, matrix=matrix, surface=surface)
    return DatasetEvaluation(tuple(names), tuple(evaluations), pooled)


def _pool_surface(parts: list[SurfaceScores]) -> SurfaceScores | None:
    """Per-class means over the images in which the class occurs (NaN left out); the
    spacing is the first image's (distances and volumes are in physical units)."""
    if not parts:
        return None
    units = {p.unit for p in parts}
    if len(units) > 1:
        found = sorted(map(str, units))
        raise ValueError(f"surface scores in different units cannot be pooled: {found}")
    labels = sorted({lab for p in parts for lab in p.labels})

    def mean(field: str) -> np.ndarray:
        table = np.full((len(parts), len(labels)), np.nan)
        for row, p in zip(table, parts, strict=True):
            row[[labels.index(lab) for lab in p.labels]] = getattr(p, field)
        return np.asarray(nanmean_quiet(table.T))  # a class in no image stays NaN

    return replace(
        parts[0],
        labels=tuple(labels),
        hausdorff=mean("hausdorff"),
        assd=mean("assd"),
        surface_dice=mean("surface_dice"),
        volume_gt=mean("volume_gt"),
        volume_pred=mean("volume_pred"),
    )
