"""The image series a DICOM segmentation (a SEG, an RT structure set) references by
its ``SeriesInstanceUID``: found among the series read with it, or in the folders
around it, and its grid read from the headers alone."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..limits import DICOM_SEARCH_FOLDERS
from ._dicom_files import _dicom_headers, _subfolders, is_dicom_folder
from ._geometry import VolumeGeometry, check_claimed_bytes


def find_series_file(
    path: str | os.PathLike, uids: Sequence[str], tag: str = "SeriesInstanceUID"
) -> str | None:
    """A file of one of the series ``uids``, looked for in the folder of ``path`` (a
    segmentation file), then in its subfolders and the folders beside it (a study
    export keeps each series in a folder of its own; at most
    ``limits.DICOM_SEARCH_FOLDERS``, not entered further, a folder tried only when its
    first files are DICOM); None when none holds it.

    Parameters
    ----------
    path : str or os.PathLike
    uids : sequence of str
    tag : str
        What ``uids`` are: series UIDs, or ``"FrameOfReferenceUID"`` (an RT structure set
        that names only its frame of reference: the first series found in it).

    Returns
    -------
    str or None
    """
    wanted = set(uids)
    here = Path(path).resolve().parent
    if not wanted:
        return None
    beside = [f for f in _subfolders(here.parent) if f != here] if here.parent != here else []
    for folder in [here, *[*_subfolders(here), *beside][:DICOM_SEARCH_FOLDERS]]:
        if folder != here and not is_dicom_folder(folder):
            continue
        try:
            headers = _dicom_headers(folder)
        except (ValueError, OSError):  # no slices, too many files, a file unread
            continue
        for file, ds in headers:
            if str(getattr(ds, tag, "")) in wanted:
                return os.path.abspath(file)
    return None


def referenced_grid(
    path: str | os.PathLike,
    uids: Sequence[str],
    known: Mapping[str, VolumeGeometry] | None = None,
    tag: str = "SeriesInstanceUID",
) -> VolumeGeometry | None:
    """The grid of the series (one of ``uids``) a segmentation file at ``path``
    references, recording one of its files (``series_file``): from ``known`` (series
    read with it, by UID) when given, else found beside it (:func:`find_series_file`)
    and read from its headers; None when it is not found or is no single volume of
    single-frame slices.

    Parameters
    ----------
    path : str or os.PathLike
    uids : sequence of str
    known : mapping, optional
        ``{SeriesInstanceUID: geometry}``.
    tag : str
        What ``uids`` are (:func:`find_series_file`).

    Returns
    -------
    VolumeGeometry or None

    Raises
    ------
    ValueError
        When the series' headers claim a grid larger than ``limits.MAX_VOLUME_BYTES``
        of one-byte labels.
    """
    from ._dicom import dicom_slices

    if known is not None and tag == "SeriesInstanceUID":
        grid = next((known[uid] for uid in uids if uid in known), None)
        return grid if grid is not None and grid.series_file is not None else None
    series = find_series_file(path, uids, tag)
    if series is None:
        return None
    try:
        grid = replace(dicom_slices(series)[1], series_file=series)
    except ValueError:  # several echoes or time points
        return None
    # a label map is made on it: refused, as a volume is, when its headers claim too much
    check_claimed_bytes(series, grid.source_shape, math.prod(grid.source_shape))
    return grid
