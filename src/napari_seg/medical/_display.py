"""The intensity window a volume's file states for display: a DICOM image's
``WindowCenter`` and ``WindowWidth`` (an enhanced image's frame VOI LUT), a NIfTI
header's ``cal_min`` and ``cal_max``. napari opens a CT with it (soft tissue, lung,
bone, as the scanner or the reading station chose) instead of the whole range of
its values, in which soft tissue is a flat grey."""

from __future__ import annotations

import math
import os
from typing import Any

from .._paths import user_path
from ._geometry import VolumeGeometry


def display_range(path: str | os.PathLike, geometry: VolumeGeometry) -> tuple[float, float] | None:
    """The (low, high) values the volume read from ``path`` (with ``geometry``) states
    to display between, as napari's contrast limits: a DICOM series' first window
    (centre -/+ half its width, as 3D Slicer applies it) or a NIfTI's ``cal_min`` to
    ``cal_max``; None when it states none (or one that is no range).

    Parameters
    ----------
    path : str or os.PathLike
    geometry : VolumeGeometry

    Returns
    -------
    tuple of float or None
    """
    path = user_path(path)
    if geometry.source == "dicom" and geometry.series_file is not None:
        found = _dicom_window(geometry.series_file)
    elif geometry.source.startswith("nifti"):
        found = _nifti_range(path)
    else:
        found = None
    if found is None or not all(map(math.isfinite, found)) or found[0] >= found[1]:
        return None
    return found


def _dicom_window(path: str) -> tuple[float, float] | None:
    """A DICOM image's first window: its own, else an enhanced image's frame VOI LUT
    (shared by its frames, else its first frame's)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (OSError, ValueError, EOFError, AttributeError, KeyError, TypeError):
        return None
    sources = [ds]
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        first = (ds.get(groups) or [None])[0]
        sources += list(first.get("FrameVOILUTSequence") or []) if first is not None else []
    for source in sources:
        centre, width = _first(source, "WindowCenter"), _first(source, "WindowWidth")
        if centre is not None and width is not None and width > 0:
            return centre - width / 2, centre + width / 2
    return None


def _first(ds: Any, keyword: str) -> float | None:
    """The first value of a (possibly multi-valued) number ``keyword`` of ``ds``."""
    value = ds.get(keyword)
    if value is None:
        return None
    if not isinstance(value, (int, float, str)):
        value = next(iter(value), None)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _nifti_range(path: str | os.PathLike) -> tuple[float, float] | None:
    """A NIfTI header's display range (``cal_min``, ``cal_max``), when it states one."""
    import nibabel as nib

    try:
        header: Any = nib.load(os.fspath(path)).header
        return float(header["cal_min"]), float(header["cal_max"])
    except (OSError, ValueError, KeyError, TypeError, nib.filebasedimages.ImageFileError):
        return None
