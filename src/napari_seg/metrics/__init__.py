"""Segmentation scores (numpy only): confusion matrices, IoU/Dice, instance matching.

Semantic scores come from a :class:`ConfusionMatrix` counted block by block
(:func:`confusion_matrix`, :func:`slice_confusion_matrices`) and turned into
per-class and mean scores by :func:`semantic_scores`. Instance scores match
objects at IoU thresholds from sparse overlaps (:func:`match_instances`).
Surface distances (HD95, ASSD, surface Dice) and volumes in physical units come
from :func:`surface_scores`.
:func:`pool_evaluations` takes the evaluations of several images together.
:func:`error_map` and :func:`instance_error_map` say where the errors are.

Zero division: a score whose denominator is zero (e.g. the IoU of a class
absent from both arrays) is NaN, and means leave NaN out.
"""

from ._arrays import id_regions, object_count
from ._confusion import (
    MAX_CLASSES,
    ConfusionMatrix,
    confusion_matrix,
    pool_matrices,
    slice_confusion_matrices,
)
from ._dataset import DatasetEvaluation, headline, pool_evaluations
from ._errors import ERROR_COLORS, ERROR_NAMES, error_map, instance_error_map
from ._evaluate import MODES, EvaluateConfig, Evaluation, evaluate
from ._instance import (
    DEFAULT_THRESHOLDS,
    InstanceScores,
    Overlaps,
    instance_overlaps,
    match_instances,
    pool_instance_scores,
)
from ._report import (
    format_csv,
    format_scores,
    instance_rows,
    merge_rows,
    semantic_rows,
    to_dict,
)
from ._semantic import SemanticScores, semantic_scores
from ._surface import DEFAULT_TOLERANCE, SurfaceScores, surface_dict, surface_rows, surface_scores

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TOLERANCE",
    "ERROR_COLORS",
    "ERROR_NAMES",
    "MAX_CLASSES",
    "MODES",
    "ConfusionMatrix",
    "DatasetEvaluation",
    "EvaluateConfig",
    "Evaluation",
    "InstanceScores",
    "Overlaps",
    "SemanticScores",
    "SurfaceScores",
    "confusion_matrix",
    "error_map",
    "evaluate",
    "format_csv",
    "format_scores",
    "headline",
    "id_regions",
    "instance_error_map",
    "instance_overlaps",
    "instance_rows",
    "match_instances",
    "merge_rows",
    "object_count",
    "pool_evaluations",
    "pool_instance_scores",
    "pool_matrices",
    "semantic_rows",
    "semantic_scores",
    "slice_confusion_matrices",
    "surface_dict",
    "surface_rows",
    "surface_scores",
    "to_dict",
]
