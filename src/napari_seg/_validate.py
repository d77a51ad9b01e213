"""Checks of config and spec fields shared by every job (errors name the field).

Each check takes the field's name and value and raises ``TypeError`` for a
value of the wrong kind or ``ValueError`` for one out of range; messages quote
the value through :func:`napari_seg.limits.brief`, so they stay short whatever
was passed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from .limits import MAX_AXIS, MAX_NAME_LENGTH, MAX_SPACING, MIN_SPACING, brief


def check_int(
    name: str,
    value: Any,
    low: int | None = None,
    high: int | None = None,
    *,
    optional: bool = False,
) -> None:
    """``value`` is an integer in ``[low, high]`` (or None when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "an integer or None" if optional else "an integer"
        raise TypeError(f"{name} must be {kind}, got {brief(value)}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high}, got {brief(value)}")


def pixels_hint(value: Any) -> str:
    """What to add to a refusal of ``value`` as a length in pixels when it is a
    fraction below 1, as MONAI's ``sliding_window_inference`` takes its overlap; ""
    otherwise (one wording for the command line and the Python API)."""
    if isinstance(value, float) and 0 < value < 1:
        return " (not a fraction of the tile, as MONAI's overlap: tile/4 is the default)"
    return ""


def check_number(
    name: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
) -> None:
    """``value`` is a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {brief(value)}")
    if value < low or (low_open and value == low) or value > high:
        bound = f"> {low}" if low_open else f">= {low}"
        upper = f" and <= {high}" if math.isfinite(high) else ""
        raise ValueError(f"{name} must be {bound}{upper}, got {value}")


def check_spacing(name: str, value: Any, lengths: Sequence[int] = (1, MAX_AXIS)) -> None:
    """``value`` is None or a tuple of sizes from ``MIN_SPACING`` to ``MAX_SPACING``: as
    many as one of ``lengths`` (exactly, for a single length; between the two, for a
    pair ``(low, high)``)."""
    if value is None:
        return
    if len(lengths) == 1:
        ok = isinstance(value, tuple) and len(value) == lengths[0]
        wanted = f"one size per spatial axis ({lengths[0]})"
    else:
        ok = isinstance(value, tuple) and lengths[0] <= len(value) <= lengths[1]
        wanted = f"{lengths[0]} to {lengths[1]} sizes"
    if not ok:
        raise ValueError(f"{name} must hold {wanted}, got {brief(value)}")
    for size in value:
        check_number(name, size, low=0.0, low_open=True)
        if not MIN_SPACING <= size <= MAX_SPACING:
            raise ValueError(
                f"{name} must be from {MIN_SPACING:g} to {MAX_SPACING:g} along each axis "
                f"(so that distances and volumes stay finite numbers), got {size:g}"
            )


def check_length_unit(name: str, value: Any, spacing: Any) -> None:
    """``value`` is None, or the NGFF name of a length unit (``"micrometer"``) for a
    ``spacing`` that is given."""
    if value is None:
        return
    from ._units import known_unit

    if known_unit("space", value) is None:
        raise ValueError(
            f"{name} must be a length unit by its NGFF name ('micrometer', 'millimeter', "
            f"'nanometer', ...), got {brief(value)}"
        )
    if spacing is None:
        raise ValueError(f"{name} is the unit of a spacing, and no spacing is given")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {brief(value)}")


def check_bool(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, bool):
        kind = "true, false or None" if optional else "true or false"
        raise TypeError(f"{name} must be {kind}, got {brief(value)}")


def check_str(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        kind = "a string or None" if optional else "a string"
        raise TypeError(f"{name} must be {kind}, got {brief(value)}")


def check_axis(name: str, value: Any) -> None:
    """An optional array axis, ``-MAX_AXIS - 1 <= value <= MAX_AXIS``."""
    check_int(name, value, -MAX_AXIS - 1, MAX_AXIS, optional=True)


def check_axes(name: str, value: Any) -> None:
    """An optional array axis, or a tuple or list of them (several stack axes)."""
    if isinstance(value, (tuple, list)):
        if len(value) > MAX_AXIS:
            raise ValueError(f"{name} lists at most {MAX_AXIS} axes, got {len(value)}")
        for a in value:
            check_int(name, a, -MAX_AXIS - 1, MAX_AXIS)
    else:
        check_axis(name, value)


def as_id(name: str, value: Any, *, negative: bool = False) -> int:
    """One label id as an int: a whole number (never a bool, float or string, which
    ``int()`` would turn from 1.5 or "1" into 1 without a word), ``>= 0`` unless
    ``negative``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must hold whole-number label ids, got {brief(value)}")
    if value < 0 and not negative:
        raise ValueError(f"{name} must be ids >= 0, got {value!r}")
    return int(value)


def check_ids(name: str, value: Any, *, negative: bool = False) -> None:
    """A tuple of label ids (e.g. ids left out), each as :func:`as_id` takes it."""
    if not isinstance(value, tuple):
        raise TypeError(f"{name} must be a list of label ids, got {brief(value)}")
    for i in value:
        as_id(name, i, negative=negative)


def as_names(name: str, value: Any, *, max_count: int) -> tuple[str, ...]:
    """``value`` as a tuple of non-empty, distinct-or-not names, checked.

    A bare string is refused (``"abc"`` is not the three names a, b, c).
    """
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of names, got {brief(value)}")
    if len(value) > max_count:
        raise ValueError(f"{name} may hold at most {max_count} names, got {len(value)}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{name} must be non-empty strings, got {brief(value)}")
        if len(item) > MAX_NAME_LENGTH:
            raise ValueError(
                f"{name} must be at most {MAX_NAME_LENGTH} characters each, got one of {len(item)}"
            )
    return tuple(value)


#: What other libraries call napari-seg's settings (MONAI's ``sliding_window_inference``
#: and transforms, segmentation-models-pytorch, PyTorch training loops), first the
#: prediction's name, then the training's: a hint names ours where spelling alone
#: would guess wrong ("roi_size: did you mean noise?").
OTHER_NAMES: dict[str, tuple[str, ...]] = {
    "roi_size": ("tile", "patch_size"),
    "spatial_size": ("tile", "patch_size"),
    "tile_size": ("tile", "patch_size"),
    "window_size": ("tile", "patch_size"),
    "patch_size": ("tile",),  # a prediction's (training has its own patch_size)
    "pixdim": ("spacing",),
    "sw_batch_size": ("batch_size",),
    "mode": ("blending",),
    "lr": ("learning_rate",),
    "max_epochs": ("epochs",),
    "num_epochs": ("epochs",),
    "n_epochs": ("epochs",),
    "out_channels": ("num_classes",),
    "classes": ("num_classes",),
    "n_classes": ("num_classes",),
    "in_chans": ("in_channels",),
    "n_channels": ("in_channels",),
    "encoder_name": ("encoder",),
    "amp": ("precision",),
    "dtype": ("precision",),
    "overlap_ratio": ("overlap",),
}


def closest_name(word: str, known: Sequence[str]) -> str | None:
    """The known name closest to an unknown ``word``: ours for another library's name
    (:data:`OTHER_NAMES`), else a typo's by spelling (``difflib``'s ratio of 0.6 or
    more), or None when none is close.

    Parameters
    ----------
    word : str
    known : sequence of str

    Returns
    -------
    str or None
    """
    import difflib

    if word in OTHER_NAMES:  # another library's name: ours, or no guess by spelling
        return next((name for name in OTHER_NAMES[word] if name in known), None)
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def closest_names(words: Sequence[str], known: Sequence[str]) -> str:
    """For a message about unknown names: each word's closest known name, as
    ``"tiles: did you mean tile?"`` joined by "; " (empty when none is close).

    Parameters
    ----------
    words : sequence of str
        The unknown names as given.
    known : sequence of str

    Returns
    -------
    str
    """
    hints = [(word, closest_name(word, known)) for word in words]
    return "; ".join(f"{word}: did you mean {close}?" for word, close in hints if close)


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """``" (did you mean X?)"`` for an unknown ``word`` close to a known name ``X``,
    else "": to follow the word in a message.

    Parameters
    ----------
    word : str
    known : sequence of str

    Returns
    -------
    str
    """
    close = closest_name(word, known)
    return "" if close is None else f" (did you mean {close}?)"


def reject_unknown(data, known, what: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming the keys of ``data`` not in ``known``, the closest known
    name of each, and the known ones (a file's keys: ValueError; keyword arguments:
    TypeError, as Python's own)."""
    unknown = sorted(map(str, set(data) - set(known)))
    if unknown:
        hints = closest_names(unknown, known)
        raise error(
            f"unknown {what} setting(s) {brief(unknown)}{f' ({hints})' if hints else ''}; "
            f"known: {sorted(known)}"
        )
