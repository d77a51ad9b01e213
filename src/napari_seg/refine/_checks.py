"""Input checks shared by the refine operations (errors name the argument)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar, cast

import numpy as np

from .._validate import as_id
from ..arrays.ids import as_ids, present_ids
from ..arrays.views import as_array
from ..limits import brief


def check_labels(labels, name: str = "labels", *, stacked: bool = False) -> np.ndarray:
    """``labels`` as an integer numpy array with 2 or 3 dimensions (not copied; a
    boolean mask and floats of whole numbers as ids, :func:`~napari_seg.arrays.ids.as_ids`);
    with ``stacked`` (refined block by block along an axis) also 4."""
    array = np.asarray(as_ids(as_array(labels, name)))
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integer labels, got {array.dtype} values that are not all "
            "whole numbers"
        )
    if array.ndim == 4 and not stacked:
        raise ValueError(
            f"{name} must be 2D or 3D (one image or one volume), got shape {array.shape}: "
            "refine 4D labels slice by slice (a refine job's per_slice and axis): volume "
            "by volume along one axis (--axis 0) or plane by plane along two (--axis 0,1)"
        )
    if array.ndim not in ((2, 3, 4) if stacked else (2, 3)):
        raise ValueError(
            f"{name} must be 2D or 3D (one image or one volume), got shape {array.shape}"
        )
    return array


_Operation = TypeVar("_Operation", bound=Callable[..., np.ndarray])


def keeps_dtype(operation: _Operation) -> _Operation:
    """Give a result of the input's dtype for a boolean mask or float labels too, as
    scikit-image's operations do.

    For operations whose result holds only ids of their input (morphology, hole
    filling, small-object removal, slice interpolation): :func:`check_labels` works on
    integer ids (a uint8 view of a mask), and a caller who writes
    ``image[erosion(mask, 1)]`` must get a boolean index, not an integer one (which
    would pick rows 0 and 1).
    """

    @functools.wraps(operation)
    def keeping(labels, *args, **kwargs):
        labels = as_array(labels, "labels")  # a tensor's dtype as numpy's
        result = operation(labels, *args, **kwargs)
        dtype = np.dtype(labels.dtype)
        return result.astype(dtype) if dtype.kind in "bf" else result

    return cast(_Operation, keeping)


def class_last_hint(shape: tuple[int, ...], pixels: tuple[int, ...]) -> str:
    """ ": they look class-last ..." when probabilities of ``shape`` hold the classes
    on their last axis over ``pixels`` (``(H, W, C)``, as numpy users stack maps);
    refine takes them class first, as predict writes them. Else ""."""
    if tuple(shape[:-1]) != tuple(pixels):
        return ""
    last = len(shape) - 1
    order = ", ".join(map(str, (last, *range(last))))
    return (
        ": they look class-last; refine takes them class first: give "
        f"probabilities.transpose({order})"
    )


def check_same_shape(array, labels: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != labels.shape:
        raise ValueError(f"{name} must have the labels' shape {labels.shape}, got {array.shape}")
    return array


def check_count(value, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (bounds from :mod:`napari_seg.limits`)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {brief(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return int(value)


def check_connectivity(connectivity, ndim: int) -> int:
    connectivity = check_count(connectivity, "connectivity", minimum=1)
    if connectivity > ndim:
        raise ValueError(
            f"connectivity must be between 1 and the number of dimensions ({ndim}), "
            f"got {connectivity}"
        )
    return connectivity


def class_ids(
    labels: np.ndarray, classes: int | Iterable[int] | None, background: int
) -> list[int]:
    """The classes to work on: ``classes`` as ints, or every id present but ``background``."""
    if classes is None:
        return [int(c) for c in np.unique(labels) if c != background]
    wanted: Iterable[object] = (classes,) if isinstance(classes, (int, np.integer)) else classes
    ids = [as_id("classes", c, negative=True) for c in wanted]
    if background in ids:
        raise ValueError(f"classes must not include the background label {background}")
    return ids


def check_fits(value: int, labels: np.ndarray, name: str) -> None:
    """Raise when ``value`` cannot be stored in the labels' dtype."""
    info = np.iinfo(labels.dtype)
    if not info.min <= value <= info.max:
        raise ValueError(f"{name}={value} does not fit in labels of dtype {labels.dtype}")


def labels_with_room(labels, values: Iterable[int], name: str) -> np.ndarray:
    """:func:`check_labels` of ``labels``, in a type that holds the new ids ``values``
    too when the caller's array has no integer type of its own (a boolean mask, float
    labels): the integer type :func:`~napari_seg.arrays.ids.as_ids` chose is napari-seg's
    choice, so it widens (a float map's 1 relabelled to 300 gives uint16) rather than
    refusing in the name of a uint8 the caller never gave. Integer labels keep their
    dtype, and a value beyond it is refused (:func:`check_fits`).

    Parameters
    ----------
    labels : array-like
    values : iterable of int
        The ids the operation will write.
    name : str
        The parameter that gives them, for the message.

    Returns
    -------
    ndarray of int

    Raises
    ------
    ValueError
        For a value that does not fit integer labels' dtype.
    """
    given = as_array(labels, "labels")
    ids = check_labels(given)
    values = [int(v) for v in values]
    if np.dtype(given.dtype).kind in "bf" and values:
        wide = np.result_type(ids.dtype, *(np.min_scalar_type(v) for v in values))
        if wide != ids.dtype:
            return ids.astype(wide)
    for value in values:
        check_fits(value, ids, name)
    return ids


#: Parameters that name ids the labels are expected to hold (a mapping's keys too).
_ID_PARAMS = ("classes", "sources", "only", "objects", "boundaries", "mapping")
#: Operations after which the ids are no longer the input's (objects numbered, classes
#: chosen from probabilities): later steps are not checked.
_RENUMBERING = (
    "connected_components", "watershed_split", "objects_from_boundaries",
    "instances_to_semantic", "crf",
)  # fmt: skip


def absent_id_warnings(labels: np.ndarray, steps: Iterable) -> tuple[str, ...]:
    """What a refine job's steps name that the labels do not hold: classes with nothing
    to process, or a background id that is not there (every id is then taken for a
    class, and pixels an operation clears get the new id). Steps are followed while
    the ids stay known (morphology, merges, relabelling); numbering objects ends it.

    Parameters
    ----------
    labels : ndarray of int
        The job's input.
    steps : iterable of RefineStep
        Validated steps (defaults filled in).

    Returns
    -------
    tuple of str
        One line per step and parameter that names an absent id.
    """
    ids = present_ids(labels)
    found = []
    for step in steps:
        params, held = dict(step.params), brief(sorted(ids))
        for name in _ID_PARAMS:
            value = params.get(name)
            if value is None:
                continue
            # an id, a list of ids, or (relabel) a mapping whose keys are the ids it replaces
            named = {
                int(v) for v in np.atleast_1d(list(value) if isinstance(value, Mapping) else value)
            }
            if missing := sorted(named - ids):
                found.append(
                    f"{step.op}: {name} {brief(missing)} not in the labels (they hold {held})"
                )
        background = params.get("background")
        if background is not None and ids and int(background) not in ids:
            every = "classes" in params and params["classes"] is None  # every other id
            found.append(
                f"{step.op}: background {background} is not in the labels (they hold {held}): "
                "it is the id of unlabelled pixels"
                + (", so every id there is taken for a class" if every else "")
            )
        if step.op in _RENUMBERING:
            break
        ids = _ids_after(step.op, params, ids)
    return tuple(found)


def _ids_after(op: str, params: dict, ids: set[int]) -> set[int]:
    """The ids after a step that keeps them known (a superset where unsure)."""
    if op == "merge_classes" and ids & set(params["sources"]):
        return (ids - set(params["sources"])) | {int(params["target"])}
    if op == "relabel":
        mapping = {int(k): int(v) for k, v in params["mapping"].items()}
        return {mapping.get(i, i) for i in ids}
    if op == "set_class":
        return ids | {int(params["value"])}
    if params.get("background") is not None:  # removed pixels become the background
        return ids | {int(params["background"])}
    return ids
