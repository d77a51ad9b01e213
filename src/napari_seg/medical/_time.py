"""The time between a 4D volume's time points, as its header states it (a NIfTI's
``pixdim[4]``, a DICOM series' trigger or acquisition times): one bound for both."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: A frame interval longer than this (about four months) is no interval a header
#: means: it is read as none (napari's time axis then steps by 1).
MAX_TIME_STEP_S = 1e7
#: Seconds per NIfTI time unit (``xyzt_units``).
_SECONDS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
#: DICOM tags whose values differ between the volumes of a series of time points.
_TEMPORAL_TAGS = ("TemporalPositionIdentifier", "TemporalPositionIndex", "TriggerTime")


def _bounded(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) and 0 < seconds <= MAX_TIME_STEP_S else None


def nifti_time_step(image: Any) -> float | None:
    """The seconds between a 4D NIfTI's volumes: ``pixdim[4]`` in the header's time
    unit; None when the header states no time unit, or no step in (0, 1e7] s.

    Parameters
    ----------
    image : nibabel.Nifti1Image or Nifti2Image

    Returns
    -------
    float or None
    """
    try:
        factor = _SECONDS.get(image.header.get_xyzt_units()[1])
        step = float(image.header["pixdim"][4])
    except (KeyError, ValueError, IndexError):
        return None
    return _bounded(step * factor) if factor else None


def dicom_time_step(volumes: list[list]) -> float | None:
    """The seconds between the volumes of a DICOM series (lists of ``(path, dataset)``
    slices, in order) when they are time points: the median step of their
    ``TriggerTime`` (a cardiac cine's phases) or, without one, of their
    ``AcquisitionTime`` (a dynamic series), each volume's earliest slice's; None for
    one volume, for volumes no temporal tag tells apart (echoes, diffusion
    weightings), or for times that do not increase.

    Parameters
    ----------
    volumes : list of list

    Returns
    -------
    float or None
    """
    if len(volumes) < 2 or not any(_differ(volumes, tag) for tag in _TEMPORAL_TAGS):
        return None
    for tag, seconds in (("TriggerTime", _milliseconds), ("AcquisitionTime", _tm_seconds)):
        try:
            times = [min(seconds(getattr(ds, tag)) for _, ds in group) for group in volumes]
        except (AttributeError, TypeError, ValueError):
            continue
        steps = np.diff(times)
        if np.all(steps > 0):
            return _bounded(float(np.median(steps)))
    return None


def _differ(volumes: list[list], tag: str) -> bool:
    """Whether every volume's first slice has ``tag`` and its values are not all one."""
    values = [getattr(group[0][1], tag, None) for group in volumes]
    texts = ["" if value is None else str(value).strip() for value in values]
    return all(texts) and len(set(texts)) > 1


def _milliseconds(value: Any) -> float:
    return float(value) / 1000.0


def _tm_seconds(value: Any) -> float:
    """A DICOM time (TM: ``HHMMSS.FFFFFF``, or the old ``HH:MM:SS``) in seconds."""
    text = str(value).strip().replace(":", "")
    if len(text) < 2 or not text[:2].isdigit():
        raise ValueError(f"not a DICOM time: {value!r}")
    hours, minutes = int(text[:2]), int(text[2:4] or 0)
    return hours * 3600 + minutes * 60 + float(text[4:] or 0)
