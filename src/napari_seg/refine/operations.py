"""The registry of refine operations: names, parameters and the inputs each needs.

The Refine widget builds its fields from :data:`OPERATIONS` and the command
line parses ``--param VALUE`` with :meth:`Param.parse`, so both offer the same
operations with the same names, defaults and checks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validate import as_id, closest_names, did_you_mean
from ..limits import MAX_CRF_ITERATIONS, MAX_CRF_RADIUS, MAX_MIN_DISTANCE, MAX_RADIUS
from . import classes as _classes
from . import instances as _instances
from . import morphology as _morphology
from . import slices as _slices

INPUTS = ("image", "probabilities", "region", "reference")
KINDS = ("int", "float", "bool", "str", "ints", "mapping")


def _id_mapping(mapping: Mapping) -> dict[int, int]:
    """Old -> new ids as ints. Keys may be strings ("1"), as a JSON object's keys are;
    otherwise whole numbers only: 1.5 is refused, not read as 1."""

    def key(old: Any) -> int:
        return int(old) if isinstance(old, str) else as_id("mapping", old, negative=True)

    return {key(old): as_id("mapping", new, negative=True) for old, new in mapping.items()}


@dataclass(frozen=True)
class Param:
    """One parameter of an operation.

    ``kind`` is one of "int", "float", "bool", "str", "ints" (a list of class
    ids, written ``1,2`` on the command line) or "mapping" (old -> new ids,
    written ``1:2,3:0``). ``default`` None with ``required`` False means "not
    set" (e.g. every class).
    """

    name: str
    kind: str
    default: Any = None
    help: str = ""
    minimum: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    maximum: float | None = None

    def parse(self, text: str) -> Any:
        """The value of a command-line string, checked.

        Parameters
        ----------
        text : str
            As typed after ``--NAME`` (``1,2`` for ids, ``1:2,3:0`` for mappings).

        Returns
        -------
        object
            The checked value (see :meth:`check`).

        Raises
        ------
        ValueError, TypeError
            For text that is not of the parameter's kind, or a value out of range.
        """
        text = text.strip()
        value: object
        try:
            if self.kind == "int":
                value = int(text)
            elif self.kind == "float":
                value = float(text)
            elif self.kind == "bool":
                low = text.lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = low in ("true", "1", "yes")
            elif self.kind == "ints":
                value = [int(x) for x in text.replace(" ", "").split(",") if x]
            elif self.kind == "mapping":
                pairs = [item.split(":") for item in text.replace(" ", "").split(",") if item]
                value = {int(k): int(v) for k, v in pairs}
            else:
                value = text
        except ValueError:
            raise ValueError(f"{self.name} must be {_DESCRIBE[self.kind]}, got {text!r}") from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        """``value`` (from a config file or a widget) converted and checked.

        Parameters
        ----------
        value : object
            None means "not set" (an error for a required parameter).

        Returns
        -------
        object
            ints and floats as such, id lists as tuples, mappings as int-to-int dicts.

        Raises
        ------
        ValueError, TypeError
            Naming the parameter, what it must be and the value.
        """
        if value is None:
            if self.required:
                raise ValueError(f"{self.name} is required ({self.help})")
            return None
        ok = {
            "int": lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool),
            "bool": lambda v: isinstance(v, bool),
            "str": lambda v: isinstance(v, str),
            "ints": lambda v: (
                isinstance(v, (list, tuple))
                and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
            ),
            "mapping": lambda v: isinstance(v, Mapping),
        }[self.kind]
        if not ok(value):
            raise TypeError(f"{self.name} must be {_DESCRIBE[self.kind]}, got {value!r}")
        if self.kind == "mapping":
            try:
                value = _id_mapping(value)
            except (TypeError, ValueError):
                raise TypeError(f"{self.name} must map integer ids to ids, got {value!r}") from None
        if self.kind == "ints":
            value = tuple(value)
        if self.kind == "float":
            value = float(value)
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{self.name} must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(
                f"{self.name} must be at most {self.maximum} (see napari_seg.limits), got {value}"
            )
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {self.choices}, got {value!r}")
        return value


_DESCRIBE = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "ints": "a list of class ids (e.g. 1,2)",
    "mapping": "old:new id pairs (e.g. 1:2,3:0)",
}


@dataclass(frozen=True)
class Operation:
    """A named refine operation: ``call(labels, params, inputs) -> array``.

    ``volume_only`` operations work on a whole 3D volume (never per slice).
    """

    name: str
    title: str
    call: Callable[..., np.ndarray]
    params: tuple[Param, ...] = ()
    needs: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    makes_instances: bool = False
    description: str = ""
    volume_only: bool = False
    stream: Callable[..., Generator[float, None, np.ndarray]] | None = None
    param_map: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_map", {p.name: p for p in self.params})

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter, defaults filled in, checked; unknown names raise.

        Parameters
        ----------
        params : mapping of str to value

        Returns
        -------
        dict

        Raises
        ------
        ValueError, TypeError
            For an unknown parameter (the message lists the operation's) or an
            invalid value.
        """
        unknown = set(params) - set(self.param_map)
        if unknown:
            hints = closest_names(sorted(unknown), list(self.param_map))
            raise ValueError(
                f"{self.name} has no parameter(s) {sorted(unknown)}"
                f"{f' ({hints})' if hints else ''}; it takes {sorted(self.param_map) or 'none'}"
            )
        return {p.name: p.check(params.get(p.name, p.default)) for p in self.params}


def _classes_param(help_text: str = "classes to process (default: all but background)"):
    return Param("classes", "ints", None, help_text)


_BACKGROUND = Param("background", "int", 0, "label of unlabelled pixels", minimum=0)
_CONNECTIVITY = Param("connectivity", "int", 1, "1: faces only; ndim: also edges and corners", 1)
_RADIUS = Param(
    "radius", "int", 1, "footprint radius in pixels (disk / ball)", minimum=0, maximum=MAX_RADIUS
)
_REPLACE = Param(
    "replace_with",
    "str",
    "background",
    "removed pixels become background, or the label of the nearest kept pixel",
    choices=_morphology.REPLACE_CHOICES,
)
_OVER_CLASSES = Param("over_classes", "bool", False, "grow over other classes too")


def _kw(params: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: params[n] for n in names}


def _morph_op(name: str, title: str, grows: bool) -> Operation:
    fn = getattr(_morphology, name)
    extra = ("over_classes",) if grows else ()
    return Operation(
        name,
        title,
        lambda labels, p, _i: fn(labels, p["radius"], **_kw(p, "classes", "background", *extra)),
        (_RADIUS, _classes_param(), _BACKGROUND, *((_OVER_CLASSES,) if grows else ())),
        description=(fn.__doc__ or "").splitlines()[0],
    )


def _crf_stream(labels, p, inputs):
    """The CRF, yielding the fraction of its iterations (over all tiles) done."""
    from .._generators import Returning
    from .crf import iter_crf

    run = Returning(
        iter_crf(
            inputs["probabilities"], inputs["image"], channel_axis=inputs.get("channel_axis"), **p
        )
    )
    for event in run:
        yield event.fraction
    return run.value.labels.astype(labels.dtype, copy=False)


def _crf(labels, p, inputs):
    from .._generators import drain

    return drain(_crf_stream(labels, p, inputs))


def _watershed(labels, p, inputs):
    return _instances.watershed_split(labels, probabilities=inputs.get("probabilities"), **p)


def _to_semantic(labels, p, inputs):
    return _instances.instances_to_semantic(labels, reference=inputs.get("reference"), **p)


def _interpolate(labels, p, _inputs):
    axis = None if p["slice_axis"] == "auto" else int(p["slice_axis"])
    return _slices.interpolate_slices(
        labels, axis=axis, **_kw(p, "method", "classes", "background")
    )


def _set_class(labels, p, inputs):
    return _classes.set_class_in_region(labels, inputs["region"], p["value"], only=p["only"])


_OPERATIONS = (
    Operation(
        "remove_small_objects",
        "remove small objects",
        lambda labels, p, _i: _morphology.remove_small_objects(labels, **p),
        (
            Param("min_size", "int", 64, "objects with fewer pixels are removed", minimum=0),
            _classes_param(),
            _CONNECTIVITY,
            _BACKGROUND,
            _REPLACE,
        ),
        description="Remove the connected components of each class smaller than min_size.",
    ),
    Operation(
        "fill_holes",
        "fill holes",
        lambda labels, p, _i: _morphology.fill_holes(labels, **p),
        (
            Param("max_size", "int", 64, "holes with fewer pixels are filled", minimum=0),
            _classes_param(),
            _CONNECTIVITY,
            _BACKGROUND,
            Param("over_classes", "bool", False, "also fill over other classes inside the hole"),
        ),
        description="Fill enclosed holes of each class smaller than max_size.",
    ),
    _morph_op("opening", "opening", grows=False),
    _morph_op("closing", "closing", grows=True),
    _morph_op("dilation", "dilation", grows=True),
    _morph_op("erosion", "erosion", grows=False),
    Operation(
        "keep_largest",
        "keep largest component",
        lambda labels, p, _i: _morphology.keep_largest(labels, **p),
        (_classes_param(), _CONNECTIVITY, _BACKGROUND, _REPLACE),
        description="Keep only the largest connected component of each class.",
    ),
    Operation(
        "majority",
        "majority smoothing",
        lambda labels, p, _i: _morphology.majority(labels, p["radius"]),
        (_RADIUS,),
        description="Each pixel takes the most common label within the radius.",
    ),
    Operation(
        "connected_components",
        "connected components (instances)",
        lambda labels, p, _i: _instances.connected_components(labels, **p),
        (_classes_param(), _CONNECTIVITY, _BACKGROUND),
        makes_instances=True,
        description="Number each connected component of each class as an instance.",
    ),
    Operation(
        "watershed_split",
        "watershed split (instances)",
        _watershed,
        (
            _classes_param(),
            Param(
                "min_distance",
                "int",
                5,
                "minimum distance between seeds (pixels)",
                1,
                maximum=MAX_MIN_DISTANCE,
            ),
            Param("seed_threshold", "float", 0.9, "seed probability (with probabilities)", 0.0),
            _CONNECTIVITY,
            _BACKGROUND,
        ),
        optional=("probabilities",),
        makes_instances=True,
        description="Split touching objects with a watershed seeded from the distance "
        "transform (or from the probabilities when given).",
    ),
    Operation(
        "objects_from_boundaries",
        "objects from boundaries (instances)",
        lambda labels, p, _i: _instances.objects_from_boundaries(labels, **p),
        (
            Param("objects", "int", 1, "class of the objects' interiors", 0),
            Param("boundaries", "int", 2, "class of their boundaries", 0),
            Param(
                "distance",
                "int",
                1,
                "pixels an object grows into the boundary class",
                minimum=0,
                maximum=MAX_RADIUS,
            ),
            _CONNECTIVITY,
        ),
        makes_instances=True,
        description="Objects from a model trained on instances with boundaries: the "
        "interiors' components, grown back over the boundary class.",
    ),
    Operation(
        "instances_to_semantic",
        "instances to semantic",
        _to_semantic,
        (
            Param("foreground", "int", 1, "class of every instance (without reference)", 0),
            _BACKGROUND,
        ),
        optional=("reference",),
        description="Instances become classes: the reference's majority class, or foreground.",
    ),
    Operation(
        "merge_classes",
        "merge classes",
        lambda labels, p, _i: _classes.merge_classes(labels, p["sources"], p["target"]),
        (
            Param("sources", "ints", None, "classes to merge", required=True),
            Param("target", "int", None, "class they become", minimum=0, required=True),
        ),
        description="Give every pixel of the source classes the target class.",
    ),
    Operation(
        "relabel",
        "relabel",
        lambda labels, p, _i: _classes.relabel(labels, p["mapping"]),
        (Param("mapping", "mapping", None, "old:new id pairs, e.g. 1:2,2:1", required=True),),
        description="Replace label values (swaps allowed).",
    ),
    Operation(
        "interpolate_slices",
        "fill between slices",
        _interpolate,
        (
            Param(
                "method",
                "str",
                "shape",
                "shape (signed distances), nearest (copy) or contour (ITK, optional extra)",
                choices=_slices.METHODS,
            ),
            Param(
                "slice_axis",
                "str",
                "auto",
                "axis of the drawn slices (auto: the axis with gaps between drawn slices)",
                choices=("auto", "0", "1", "2"),
            ),
            _classes_param("classes to fill (default: all)"),
            _BACKGROUND,
        ),
        description="Fill the empty slices between annotated slices of a volume, per class; "
        "annotated slices are never changed.",
        volume_only=True,
    ),
    Operation(
        "set_class",
        "set class in region",
        _set_class,
        (
            Param("value", "int", None, "class to write", minimum=0, required=True),
            Param("only", "ints", None, "only overwrite these classes (default: all)"),
        ),
        needs=("region",),
        description="Set a class on every pixel of a region (a mask or drawn shapes).",
    ),
    Operation(
        "crf",
        "CRF (mean field)",
        _crf,
        (
            Param(
                "iterations",
                "int",
                5,
                "mean-field iterations",
                minimum=1,
                maximum=MAX_CRF_ITERATIONS,
            ),
            Param("radius", "int", 5, "window radius in pixels", minimum=1, maximum=MAX_CRF_RADIUS),
            Param("theta_alpha", "float", 3.0, "bilateral kernel width (pixels)", 1e-3),
            Param("theta_beta", "float", 0.1, "bilateral kernel width (intensity 0..1)", 1e-3),
            Param("theta_gamma", "float", 1.0, "smoothness kernel width (pixels)", 1e-3),
            Param("w_bilateral", "float", 4.0, "bilateral kernel weight", 0.0),
            Param("w_gaussian", "float", 2.0, "smoothness kernel weight", 0.0),
            Param("device", "str", "auto", "auto, cpu, cuda, cuda:N or mps"),
        ),
        needs=("image", "probabilities"),
        description="Mean-field CRF from class probabilities and the image (torch).",
        stream=_crf_stream,
    ),
)

OPERATIONS: dict[str, Operation] = {op.name: op for op in _OPERATIONS}


def get_operation(name: str) -> Operation:
    """The operation called ``name`` (case and dashes do not matter).

    Parameters
    ----------
    name : str

    Returns
    -------
    Operation

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    key = str(name).lower().replace("-", "_")
    if key not in OPERATIONS:
        hint = did_you_mean(key, list(OPERATIONS))
        raise ValueError(f"unknown refine operation {name!r}{hint}; valid: {', '.join(OPERATIONS)}")
    return OPERATIONS[key]
