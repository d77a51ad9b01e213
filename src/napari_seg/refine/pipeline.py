"""Refine jobs: a validated list of steps applied to a label array, as a generator."""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .._config_file import JobConfig
from .._generators import Returning
from .._layers import INSTANCE_CLASS_NAMES
from .._types import ArrayLike
from .._validate import check_axes
from ..limits import brief
from ._checks import absent_id_warnings, check_labels
from ._planes import assemble_planes, plane_inputs_at, split_planes
from .inputs import check_inputs, image_channel_axis
from .operations import INPUTS, get_operation


@dataclass(frozen=True)
class RefineStep:
    """One operation and its parameters (defaults filled in, checked by :meth:`validate`)."""

    op: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> RefineStep:
        """A copy with the operation's canonical name and every parameter checked.

        Returns
        -------
        RefineStep

        Raises
        ------
        ValueError, TypeError
            For an unknown operation or parameter, or a value out of range.
        """
        operation = get_operation(self.op)
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params of {self.op} must be a mapping, got {brief(self.params)}")
        params = operation.check_params(self.params)
        return RefineStep(operation.name, params)

    def to_dict(self) -> dict[str, Any]:
        """``{"op": name, "params": {...}}`` in plain JSON types.

        Returns
        -------
        dict
        """
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params.items()}
        return {"op": self.op, "params": params}


@dataclass(frozen=True)
class RefineConfig(JobConfig):
    """Settings of a refine job, shared by the Refine widget and ``napari-seg refine``.

    Parameters
    ----------
    steps : tuple of RefineStep
        Operations applied in order.
    per_slice : bool
        Apply each step to every slice along ``axis`` separately instead of to the
        whole array: the 2D planes of a 3D stack (a time series or a stack of
        sections), the volumes of 4D labels (a time series of volumes), or, with
        two axes, the 2D planes of 4D labels (a 2D model's prediction of a
        ``TZYX`` stack). Objects never span two slices; their ids stay unique.
    axis : int or tuple of int
        The axis (or axes) the slices are taken along when ``per_slice`` is set;
        what remains of each slice must be 2D or 3D.
    """

    steps: tuple[RefineStep, ...] = ()
    per_slice: bool = False
    axis: int | tuple[int, ...] = 0

    KIND: ClassVar[str] = "refine"

    def validate(self) -> RefineConfig:
        """A copy with every step checked and its defaults filled in.

        Returns
        -------
        RefineConfig

        Raises
        ------
        ValueError, TypeError
            For no step, a bad axis or flag, or an invalid step.
        """
        if not self.steps:
            raise ValueError("a refine job needs at least one step")
        check_axes("axis", self.axis)
        axis = self.axis
        if isinstance(axis, (tuple, list)):
            if not axis:
                raise ValueError("axis must list at least one axis")
            axis = int(axis[0]) if len(axis) == 1 else tuple(int(a) for a in axis)
        if not isinstance(self.per_slice, bool):
            raise TypeError(f"per_slice must be true or false, got {self.per_slice!r}")
        checked = RefineConfig(steps=tuple(_as_step(s).validate() for s in self.steps),
                               per_slice=self.per_slice, axis=axis)  # fmt: skip
        whole = checked.volume_steps
        if self.per_slice and whole:
            raise ValueError(f"{', '.join(whole)} works on the whole volume, not per slice")
        return checked

    @property
    def volume_steps(self) -> tuple[str, ...]:
        """The steps that work on the whole volume only (never per slice)."""
        return tuple(s.op for s in self.steps if get_operation(s.op).volume_only)

    @property
    def needs(self) -> tuple[str, ...]:
        """Inputs some step requires (image, probabilities, region, reference)."""
        names = {n for s in self.steps for n in get_operation(s.op).needs}
        return tuple(n for n in INPUTS if n in names)

    @property
    def makes_instances(self) -> bool:
        """Whether the result holds instance ids rather than classes."""
        result = False
        for step in self.steps:
            op = get_operation(step.op)
            result = op.makes_instances or (result and op.name not in _TO_SEMANTIC)
        return result

    def to_dict(self) -> dict[str, Any]:
        """The pipeline as plain JSON types.

        Returns
        -------
        dict
        """
        return {
            "steps": [s.to_dict() for s in self.steps],
            "per_slice": self.per_slice,
            "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis,
        }

    @classmethod
    def given(cls, config: Any, **changes: Any) -> RefineConfig:
        """As :meth:`JobConfig.given`, and a list of steps (as a pipeline file may hold
        them: dicts or :class:`RefineStep`) or one :class:`RefineStep`.

        Parameters
        ----------
        config : RefineConfig, dict, list of steps, RefineStep or None
        **changes
            Fields that override ``config``'s.

        Returns
        -------
        RefineConfig
        """
        if isinstance(config, RefineStep):
            config = [config]
        if isinstance(config, (list, tuple)):
            config = cls.from_dict(list(config))
        return super().given(config, **changes)

    @classmethod
    def from_dict(cls, data: Any) -> RefineConfig:
        """From ``{"steps": [...], ...}``, or a bare list of steps.

        Parameters
        ----------
        data : dict or list

        Returns
        -------
        RefineConfig

        Raises
        ------
        ValueError, TypeError
            For anything else, unknown settings, or invalid steps.
        """
        if isinstance(data, list):
            data = {"steps": data}
        if not isinstance(data, Mapping):
            raise ValueError(f"a refine pipeline must be a mapping or a list, got {brief(data)}")
        return super().from_dict(dict(data))

    @classmethod
    def _from_mapping(cls, data: dict[str, Any]) -> RefineConfig:
        steps = data.get("steps") or ()
        if not isinstance(steps, (list, tuple)):
            raise ValueError(f"steps must be a list, got {brief(steps)}")
        return cls(
            steps=tuple(_as_step(s) for s in steps),
            per_slice=data.get("per_slice", False),
            axis=data.get("axis", 0),
        )


_TO_SEMANTIC = ("instances_to_semantic",)


def _as_step(item: Any) -> RefineStep:
    if isinstance(item, RefineStep):
        return item
    if not isinstance(item, Mapping) or "op" not in item:
        raise ValueError(
            f'each step must look like {{"op": NAME, "params": {{...}}}}, got {item!r}'
        )
    extra = set(item) - {"op", "params"}
    if extra:
        raise ValueError(f"unknown key(s) {sorted(extra)} in step {item['op']!r}")
    return RefineStep(item["op"], item.get("params") or {})


@dataclass(frozen=True)
class RefineProgress:
    """``done`` of ``total`` units (one step on one plane) finished; fractional
    while an iterative step (the CRF) is under way."""

    done: float
    total: int
    op: str


@dataclass(frozen=True)
class RefineResult:
    """The refined labels, how many pixels differ from the input, the time taken, and
    what the job named that the input does not hold (:func:`absent_id_warnings`)."""

    labels: np.ndarray
    changed: int
    seconds: float
    warnings: tuple[str, ...] = ()


def iter_refine(
    labels: ArrayLike,
    config: RefineConfig | dict | list | RefineStep,
    *,
    image: ArrayLike | None = None,
    probabilities: ArrayLike | None = None,
    region: ArrayLike | None = None,
    reference: ArrayLike | None = None,
    channel_axis: int | None = None,
) -> Generator[RefineProgress, None, RefineResult]:
    """Apply ``config``'s steps to ``labels``, yielding progress.

    The input is never modified. Closing the generator cancels at the next step.

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    config : RefineConfig, dict, list of steps or RefineStep
        The job; a dict of its settings, or its steps alone (dicts as a pipeline
        file holds them, or :class:`RefineStep`).
    image : array, optional
        For the CRF; it may have a channel axis (``channel_axis``, counted in the image).
    probabilities : (C, M, N[, P]) array of float, optional
        Class first (CRF, watershed seeds).
    region : array of bool, optional
        The labels' shape (set_class).
    reference : array of int, optional
        The labels' shape (instances_to_semantic).
    channel_axis : int, optional

    Yields
    ------
    RefineProgress
        One per step and plane; fractional within an iterative step (the CRF).

    Returns
    -------
    RefineResult
        As the generator's return value.

    Raises
    ------
    ValueError
        If a step lacks an input it needs or an input's shape does not match.
    """
    config = RefineConfig.given(config)  # a dict or list of steps (as a pipeline file) too
    labels = check_labels(labels, stacked=config.per_slice)
    if image is not None:
        channel_axis = image_channel_axis(np.shape(image), labels.shape, channel_axis)
    inputs = check_inputs(
        labels,
        [step.op for step in config.steps],
        image=image,
        probabilities=probabilities,
        region=region,
        reference=reference,
        channel_axis=channel_axis,
    )
    start = time.perf_counter()
    planes = split_planes(labels, config.per_slice, config.axis)
    total, done = len(planes) * len(config.steps), 0
    parts = []
    for index in planes:
        current = labels[index]
        plane_inputs = plane_inputs_at(inputs, index, labels.ndim, channel_axis)
        for step in config.steps:
            op = get_operation(step.op)
            if op.stream is None:
                current = op.call(current, dict(step.params), plane_inputs)
            else:
                current = yield from _streamed(op, current, step, plane_inputs, done, total)
            done += 1
            yield RefineProgress(done, total, step.op)
        parts.append(current)
    out = assemble_planes(parts, planes, labels, config.axis, config.makes_instances)
    changed = int(np.count_nonzero(out != labels))
    warnings = absent_id_warnings(labels, config.steps)
    return RefineResult(out, changed, time.perf_counter() - start, warnings)


def _streamed(op, labels, step, inputs, done: int, total: int):
    """Run an iterative operation, reporting its progress within the unit."""
    run = Returning(op.stream(labels, dict(step.params), inputs))
    for fraction in run:
        if fraction < 1:
            yield RefineProgress(done + fraction, total, step.op)
    return run.value


def objects_job(class_names: Sequence[str], *, background: int | None) -> RefineConfig:
    """The refine job that numbers the objects of a model's prediction.

    A model trained on instance labels with boundaries (classes named "object" and
    "boundary", as ``TrainingConfig.instances="boundaries"`` names them) gets
    :func:`objects_from_boundaries`; any other model the connected components of
    every class but its background.

    Parameters
    ----------
    class_names : sequence of str
        The model's class names, indexed by id.
    background : int or None
        The model's background id.

    Returns
    -------
    RefineConfig

    Raises
    ------
    ValueError
        For a model without a background class (trained on sparse strokes with
        label 0 unlabelled): every pixel would belong to some object.
    """
    names = list(class_names)
    object_name, boundary_name = INSTANCE_CLASS_NAMES["boundaries"][1:]
    if object_name in names and boundary_name in names:
        params = {"objects": names.index(object_name), "boundaries": names.index(boundary_name)}
        step = RefineStep("objects_from_boundaries", params)
    elif background is None:
        raise ValueError(
            "the model has no background class (label 0 was 'unlabelled' in training), so "
            "every pixel would be part of an object; number the objects of its classes "
            "with napari-seg refine --op connected_components --classes ID..."
        )
    else:
        step = RefineStep("connected_components", {"background": background})
    return RefineConfig(steps=(step,)).validate()


def number_objects(
    labels: ArrayLike,
    class_names: Sequence[str],
    *,
    background: int | None,
    slice_axes: Sequence[int] = (),
) -> np.ndarray:
    """The objects of a model's prediction, each its own id (as :func:`objects_job`).

    Parameters
    ----------
    labels : array of int
        The prediction (class ids).
    class_names : sequence of str
        The model's class names, indexed by id.
    background : int or None
        The model's background id.
    slice_axes : sequence of int, optional
        The axes the prediction was made slice by slice along (a time series or a
        stack for a 2D model): the objects of each slice are numbered apart, and no
        object spans two slices. Ids stay unique over the whole array.

    Returns
    -------
    ndarray of int32
        Same shape as ``labels``; 0 is no object.

    Raises
    ------
    ValueError
        As :func:`objects_job`.
    """
    job = objects_job(class_names, background=background)
    if slice_axes:
        job = job.with_(per_slice=True, axis=tuple(slice_axes))
    return refine(labels, job).astype(np.int32, copy=False)


def refine(
    labels: ArrayLike, config: RefineConfig | dict | list | RefineStep, **inputs: Any
) -> np.ndarray:
    """Apply a refine job and return the new labels (see :func:`iter_refine`).

    Parameters
    ----------
    labels : (M, N[, P]) array of int
    config : RefineConfig, dict, list of steps or RefineStep
    **inputs
        ``image``, ``probabilities``, ``region``, ``reference``, ``channel_axis``.

    Returns
    -------
    ndarray
        New labels, same shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((6, 6), dtype=np.uint8)
    >>> labels[0, 0] = 1
    >>> labels[2:6, 2:6] = 1
    >>> job = RefineConfig(steps=(RefineStep("remove_small_objects", {"min_size": 4}),))
    >>> int(refine(labels, job).sum())
    16
    """
    from .._generators import drain

    return drain(iter_refine(labels, config, **inputs)).labels
