"""One evaluation job: its validated settings and a single entry point (GUI and CLI)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, ClassVar, cast

import numpy as np

from .._config_file import JobConfig
from .._types import RegionArray
from .._validate import (
    check_bool,
    check_ids,
    check_int,
    check_number,
    check_spacing,
    check_str,
)
from ..limits import brief
from ._arrays import MIN_INSTANCE_IDS, check_pair, object_count, one_hot_notes
from ._confusion import ConfusionMatrix, confusion_matrix, slice_confusion_matrices, widen
from ._instance import (
    DEFAULT_THRESHOLDS,
    InstanceScores,
    _check_thresholds,
    match_instances,
    pool_instance_scores,
)
from ._report import _num, instance_rows, semantic_rows, to_dict
from ._semantic import SemanticScores, semantic_scores
from ._surface import (
    DEFAULT_TOLERANCE,
    SurfaceScores,
    series_surface_scores,
    surface_dict,
    surface_rows,
    surface_scores,
)
from ._warnings import (
    absent_background,
    all_ignored,
    classes_not_objects,
    id_mismatch,
    id_pixels,
)

MODES = ("semantic", "instance")


@dataclass(frozen=True)
class EvaluateConfig(JobConfig):
    """Settings of an evaluation.

    Parameters
    ----------
    mode : {"semantic", "instance"}
        Score classes pixel by pixel, or match objects (each id one object).
    ignore_labels : tuple of int
        Ground-truth ids left out (semantic mode), e.g. ``(0,)`` for sparse
        annotations where 0 means "not annotated".
    background : int or None
        Background id: left out of the "no background" means (semantic) or
        not an object (instance; must be an int there).
    thresholds : tuple of float
        IoU thresholds of the instance matching.
    slice_axis : int or None
        Also score every slice (or frame) along this axis.
    series : bool
        ``slice_axis`` is a series (time), not a spatial axis: surface distances are
        measured within each slice, never across it (implied for labels of more than
        three axes). ``napari-seg evaluate`` sets it for a TIFF's ``T`` axis.
    class_names : dict of int to str, or sequence of str
        Names of class ids (a sequence: of ids 0, 1, ... in order); named classes
        absent from both arrays are still listed (with NaN scores).
    surface : bool
        Also compute surface distances and volumes per class (semantic mode,
        dense ground truth): see :func:`surface_scores`.
    spacing : tuple of float or None
        Voxel size along each axis for the surface distances and volumes
        (None: 1 on every axis).
    tolerance : float
        Tolerance of the normalised surface Dice, in the units of ``spacing``.
    unit : str or None
        Length unit of ``spacing`` (e.g. "mm": volumes are then shown in mL).
    """

    mode: str = "semantic"
    ignore_labels: tuple[int, ...] = ()
    background: int | None = 0
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    slice_axis: int | None = None
    series: bool = False
    class_names: Mapping[int, str] = field(default_factory=dict)
    surface: bool = False
    spacing: tuple[float, ...] | None = None
    tolerance: float = DEFAULT_TOLERANCE
    unit: str | None = None

    KIND: ClassVar[str] = "evaluation"

    def __post_init__(self) -> None:
        super().__post_init__()  # lists as tuples
        names = self.class_names
        if isinstance(names, tuple) and all(isinstance(n, str) for n in names):
            # names of ids 0, 1, ... in order, as --class-names and a model's spec list them
            object.__setattr__(self, "class_names", dict(enumerate(names)))

    def validate(self) -> EvaluateConfig:
        """Return ``self`` if every field is valid.

        Returns
        -------
        EvaluateConfig

        Raises
        ------
        ValueError, TypeError
            Naming the field and the value.
        """
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {brief(self.mode)}")
        check_ids("ignore_labels", self.ignore_labels)
        if not isinstance(self.thresholds, tuple):
            raise TypeError(f"thresholds must be a list, got {brief(self.thresholds)}")
        if not isinstance(self.class_names, Mapping):
            raise TypeError(
                "class_names must map ids to names, or list the names of ids 0, 1, ... in "
                f"order, got {brief(self.class_names)}"
            )
        check_int("background", self.background, 0, optional=True)  # a label id: >= 0
        if self.mode == "instance" and self.background is None:
            raise ValueError("instance mode needs a background id (usually 0)")
        _check_thresholds(self.thresholds)
        if self.slice_axis is not None and (
            isinstance(self.slice_axis, bool) or not isinstance(self.slice_axis, int)
        ):
            raise TypeError(f"slice_axis must be an int or None, got {self.slice_axis!r}")
        for key, name in self.class_names.items():
            if not isinstance(key, int) or not isinstance(name, str):
                raise TypeError(f"class_names must map int ids to str, got {key!r}: {name!r}")
        self._validate_surface()
        return self

    def _validate_surface(self) -> None:
        check_bool("surface", self.surface)
        check_bool("series", self.series)
        if self.series and self.slice_axis is None:
            raise ValueError("series needs slice_axis: the axis of the series (e.g. time)")
        check_spacing("spacing", self.spacing)
        check_number("tolerance", self.tolerance, low=0.0)
        check_str("unit", self.unit, optional=True)
        if self.unit is not None and not 0 < len(self.unit) <= 16:
            raise ValueError(f"unit must be a short name such as 'mm', got {brief(self.unit)}")
        unused = [
            name
            for name, given in (
                ("spacing", self.spacing is not None),
                ("tolerance", self.tolerance != DEFAULT_TOLERANCE),
            )
            if given
        ]
        if unused and not self.surface:  # both once silently unused
            raise ValueError(
                f"{' and '.join(unused)} {'is' if len(unused) == 1 else 'are'} used only by "
                "the surface distances and volumes, which are off: ask for them with "
                f"surface=True (--surface), or leave {' and '.join(unused)} out"
            )
        if self.surface and self.mode != "semantic":
            raise ValueError("surface distances are per class: use the semantic mode")
        if self.surface and self.ignore_labels:
            raise ValueError(
                "surface distances need a dense ground truth; with ignore_labels "
                f"{list(self.ignore_labels)} the true surfaces are unknown"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON types (class ids as strings, tuples as lists).

        Returns
        -------
        dict
        """
        d = asdict(self)
        d["class_names"] = {str(k): v for k, v in self.class_names.items()}
        for key in ("ignore_labels", "thresholds"):
            d[key] = list(d[key])
        if self.spacing is not None:
            d["spacing"] = list(self.spacing)
        return d

    @classmethod
    def _from_mapping(cls, data: dict[str, Any]) -> EvaluateConfig:
        for key in ("ignore_labels", "thresholds", "spacing"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        if "class_names" in data:
            try:
                data["class_names"] = {int(k): v for k, v in data["class_names"].items()}
            except (AttributeError, ValueError, TypeError) as exc:
                raise ValueError(f"class_names must map ids to names: {exc}") from None
        return cls(**data)


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` found: whole-array scores and, if asked, per-slice scores."""

    config: EvaluateConfig
    scores: SemanticScores | InstanceScores
    slices: SemanticScores | tuple[InstanceScores, ...] | None = None
    matrix: ConfusionMatrix | None = None
    surface: SurfaceScores | None = None
    #: Inputs of the wrong kind: class labels given for instance scores, or instance
    #: labels as the ground truth of semantic scores.
    wrong_kind: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """Class names indexed by id (ids without a name get their number).

        Returns
        -------
        list of str
        """
        top = max([*self.config.class_names, *getattr(self.scores, "labels", ()), -1]) + 1
        return [self.config.class_names.get(i, str(i)) for i in range(top)]

    @property
    def warnings(self) -> list[str]:
        """What looks wrong with the inputs rather than the prediction: an input of the
        wrong kind (class labels for instance scores, instance labels as a semantic
        ground truth), else ids of the prediction and the ground truth that barely
        overlap, or else a background id that neither uses, or a ground truth whose
        every pixel is ignored (semantic mode).

        Returns
        -------
        list of str
        """
        if self.wrong_kind or self.matrix is None:
            return list(self.wrong_kind)
        # the first that applies: nothing scored, ids that barely overlap, then a
        # background id neither uses (what the ids say matters more)
        message = (
            all_ignored(self.matrix)
            or id_mismatch(self.matrix)
            or absent_background(self.matrix, self.config.background)
        )
        return [message] if message else []

    def slice_summary(self) -> np.ndarray | None:
        """One number per slice: mean IoU without background (semantic) or the accuracy
        at the first threshold (instance); None without per-slice scores.

        Returns
        -------
        numpy.ndarray or None
        """
        if self.slices is None:
            return None
        if isinstance(self.slices, SemanticScores):
            return np.asarray(self.slices.mean_iou_foreground, dtype=float)
        return np.array([s.accuracy[0] for s in self.slices], dtype=float)

    @cached_property
    def pooled_slices(self) -> InstanceScores | None:
        """Instance mode with per-slice scores: the objects matched plane by plane and
        the matches of all planes summed (the score of a time series, or of a stack of
        2D images); None otherwise (a stack's semantic scores are already the sum of
        its planes').

        Returns
        -------
        InstanceScores or None
        """
        if self.slices is None or isinstance(self.slices, SemanticScores):
            return None
        return pool_instance_scores(self.slices)

    def rows(self) -> list[dict]:
        """The table rows of the scores (one per class, or per IoU threshold).

        Returns
        -------
        list of dict
        """
        if isinstance(self.scores, InstanceScores):
            return instance_rows(self.scores)
        rows = semantic_rows(self.scores, self.names())
        if self.surface is not None:
            extra = {r["id"]: r for r in surface_rows(self.surface, self.names())}
            columns = [c for c in next(iter(extra.values()), {}) if c not in ("class", "id")]
            for row in rows:
                row.update({c: extra.get(row["id"], {}).get(c) for c in columns})
        return rows

    @property
    def row_key(self) -> str:
        """The column naming each row ("class" or "IoU threshold")."""
        return "IoU threshold" if self.config.mode == "instance" else "class"

    def to_dict(self) -> dict:
        """Every score and the config, in plain JSON types (NaN as None).

        Returns
        -------
        dict
        """
        out = to_dict(self.scores, self.names())
        if self.surface is not None:
            out["surface"] = surface_dict(self.surface, self.names())
        out["config"] = json.loads(self.config.to_json())
        summary = self.slice_summary()
        if summary is not None:
            out["per_slice"] = {
                "axis": self.config.slice_axis,
                "score": "mean_iou_foreground" if self.config.mode == "semantic" else "accuracy",
                "values": [_num(v) for v in summary],
            }
            pooled = self.pooled_slices
            if pooled is not None:
                out["per_slice"]["pooled"] = to_dict(pooled)
        return out


def evaluate(
    pred: RegionArray, gt: RegionArray, config: EvaluateConfig | None = None, **options: Any
) -> Evaluation:
    """Score ``pred`` against ``gt`` as ``config`` says.

    Parameters
    ----------
    pred, gt : array_like of int
        Label arrays of the same shape (numpy, dask or zarr).
    config : EvaluateConfig, optional
        Defaults: semantic scores, nothing ignored, background 0.
    **options
        Fields of :class:`EvaluateConfig` that override ``config``'s
        (``mode="instance"``, ``surface=True, spacing=(2.0, 1.0, 1.0)``...).

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import numpy as np
    >>> result = evaluate(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]))
    >>> round(result.scores.mean_iou, 3)
    0.583
    >>> pred, gt = np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]])
    >>> evaluate(pred, gt, mode="instance").config.mode
    'instance'
    """
    config = EvaluateConfig.given(config, **options)  # validated once; a dict too
    pred, gt = check_pair(pred, gt)  # a torch tensor read once, as NumPy
    if config.mode == "instance":
        return _evaluate_instances(pred, gt, config)
    if config.slice_axis is None:
        matrix = confusion_matrix(pred, gt, ignore_labels=config.ignore_labels)
        matrix = _with_named(matrix, config)
        slices = None
    else:
        stack = slice_confusion_matrices(
            pred, gt, axis=config.slice_axis, ignore_labels=config.ignore_labels
        )
        stack = _with_named(stack, config)
        slices = semantic_scores(stack, background=config.background)
        # The whole stack's matrix is the sum of the slices' (same labels); no second pass.
        matrix = ConfusionMatrix(
            stack.counts.sum(axis=0),
            stack.labels,
            stack.ignore_labels,
            int(np.sum(stack.ignored)),
        )
    scores = semantic_scores(matrix, background=config.background)
    surface = None
    if config.surface:
        surface = _surface(
            pred, gt, config, [lab for lab in scores.labels if lab != config.background]
        )
    wrong_kind = one_hot_notes(pred, gt) or _instance_truth_note(matrix, gt)
    return Evaluation(config, scores, slices, matrix, surface, wrong_kind=wrong_kind)


def _instance_truth_note(matrix: ConfusionMatrix, gt) -> tuple[str, ...]:
    """The warning for a ground truth of instance labels scored as classes, or ()."""
    # the matrix knows the ground truth's ids: only many ids are worth a look
    truth, _ = id_pixels(matrix)
    many = np.count_nonzero(truth) >= MIN_INSTANCE_IDS
    objects = object_count(gt) if many else 0
    return () if not objects else (
        f"the ground truth has {objects} ids, about one connected object each: it looks "
        "like instance labels, and semantic scores treat each object as a class. Score "
        "objects in instance mode (mode: instance; --instance on the command line), or "
        "score the foreground against the ground truth's objects as one class (Refine > "
        "merge classes, or ground truth > 0)",
    )  # fmt: skip


def _surface(pred, gt, config: EvaluateConfig, labels: list[int]) -> SurfaceScores:
    """Surface scores in 2D or 3D: labels of more axes, or whose per-slice axis is a
    series (``config.series``: time), are scored volume by volume (or plane by plane)
    along it, since distances must not cross it."""
    options: dict[str, Any] = {
        "spacing": config.spacing,
        "tolerance": config.tolerance,
        "unit": config.unit,
    }
    ndim = len(np.shape(gt))
    if ndim <= 3 and not config.series:
        return surface_scores(pred, gt, labels=labels, **options)
    if config.slice_axis is None:
        raise ValueError(
            f"surface distances are measured in 2D or 3D; these labels have {ndim} axes: "
            "score them volume by volume along their series axis (e.g. time: 'score each "
            "slice' in the dock, --per-slice 0 on the command line, slice_axis=0 in Python)"
        )
    axis = config.slice_axis % ndim
    if config.spacing is not None and len(config.spacing) == ndim:  # one per axis: not time's
        options["spacing"] = tuple(v for a, v in enumerate(config.spacing) if a != axis)
    return series_surface_scores(pred, gt, axis=axis, labels=labels, **options)


def _evaluate_instances(pred, gt, config: EvaluateConfig) -> Evaluation:
    background = cast(int, config.background)  # validate() requires one in instance mode

    def scored(p, g) -> InstanceScores:
        return match_instances(p, g, thresholds=config.thresholds, background=background)

    scores = scored(pred, gt)
    slices = None
    axis = None if config.slice_axis is None else config.slice_axis % len(gt.shape)
    if axis is not None:
        lead = (slice(None),) * axis

        def plane(i: int) -> tuple:
            return (*lead, i)

        slices = tuple(scored(pred[plane(i)], gt[plane(i)]) for i in range(gt.shape[axis]))
    wrong_kind = one_hot_notes(pred, gt) or tuple(
        message
        for what, array in (("prediction", pred), ("ground truth", gt))
        if (message := classes_not_objects(array, what, background, axis=axis))
    )
    return Evaluation(config, scores, slices, wrong_kind=wrong_kind)


def _with_named(cm: ConfusionMatrix, config: EvaluateConfig) -> ConfusionMatrix:
    """Add rows for named classes absent from both arrays (their scores are NaN)."""
    extra = set(config.class_names) - set(cm.labels) - set(config.ignore_labels)
    return widen(cm, sorted([*cm.labels, *extra])) if extra else cm
