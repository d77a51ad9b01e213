"""Label editing and post-processing (Qt-free; numpy, scipy, scikit-image, torch CRF).

Every function takes arrays and returns new arrays; inputs are never modified.
Semantic labels are 2D or 3D integer arrays.

- Per class: :func:`remove_small_objects`, :func:`fill_holes`, :func:`opening`,
  :func:`closing`, :func:`dilation`, :func:`erosion`, :func:`keep_largest`;
  :func:`majority` smooths all boundaries.
- Instances: :func:`connected_components`, :func:`watershed_split`,
  :func:`objects_from_boundaries`, :func:`instances_to_semantic`.
- Classes: :func:`merge_classes`, :func:`relabel`, :func:`set_class_in_region`.
- Volumes: :func:`interpolate_slices` fills between annotated slices.
- CRF: :func:`crf_refine` (mean field, torch, CPU or GPU).
- Jobs: :class:`RefineConfig` of :class:`RefineStep` s, run by :func:`iter_refine`
  / :func:`refine`; :data:`OPERATIONS` names every operation and its parameters.
"""

from .classes import merge_classes, relabel, set_class_in_region
from .crf import CRFProgress, CRFResult, crf_refine, iter_crf
from .instances import (
    connected_components,
    instances_to_semantic,
    objects_from_boundaries,
    watershed_split,
)
from .morphology import (
    closing,
    dilation,
    erosion,
    fill_holes,
    keep_largest,
    majority,
    opening,
    remove_small_objects,
)
from .operations import OPERATIONS, Operation, Param, get_operation
from .pipeline import (
    RefineConfig,
    RefineProgress,
    RefineResult,
    RefineStep,
    iter_refine,
    number_objects,
    objects_job,
    refine,
)
from .slices import interpolate_slices

__all__ = [
    "OPERATIONS",
    "CRFProgress",
    "CRFResult",
    "Operation",
    "Param",
    "RefineConfig",
    "RefineProgress",
    "RefineResult",
    "RefineStep",
    "closing",
    "connected_components",
    "crf_refine",
    "dilation",
    "erosion",
    "fill_holes",
    "get_operation",
    "instances_to_semantic",
    "interpolate_slices",
    "iter_crf",
    "iter_refine",
    "keep_largest",
    "majority",
    "merge_classes",
    "number_objects",
    "objects_from_boundaries",
    "objects_job",
    "opening",
    "refine",
    "relabel",
    "remove_small_objects",
    "set_class_in_region",
    "watershed_split",
]
