"""Enhanced (multi-frame) DICOM images: each frame a slice of its series.

Scanners of the last decade often export a series as one Enhanced CT, MR or PET
file whose frames carry their geometry in functional groups, per frame or shared
by all of them. Each frame becomes a header of its own holding the tags a
single-frame slice has (position, orientation, spacing, rescale, and the tags that
tell a multi-echo or dynamic series' volumes apart), so the series reader sorts,
splits and places them as it does single-frame slices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The file's own tags each frame keeps.
_FILE_TAGS = (
    "SOPClassUID",
    "Modality",
    "SeriesInstanceUID",
    "SeriesDescription",
    "SeriesNumber",
    "Rows",
    "Columns",
)

#: (functional group, its element, the single-frame tag it stands for).
_GROUP_TAGS = (
    ("PlanePositionSequence", "ImagePositionPatient", "ImagePositionPatient"),
    ("PlaneOrientationSequence", "ImageOrientationPatient", "ImageOrientationPatient"),
    ("PixelMeasuresSequence", "PixelSpacing", "PixelSpacing"),
    ("PixelMeasuresSequence", "SliceThickness", "SliceThickness"),
    ("PixelValueTransformationSequence", "RescaleSlope", "RescaleSlope"),
    ("PixelValueTransformationSequence", "RescaleIntercept", "RescaleIntercept"),
    ("MREchoSequence", "EffectiveEchoTime", "EchoTime"),
    ("FrameContentSequence", "TemporalPositionIndex", "TemporalPositionIndex"),
    ("MRDiffusionSequence", "DiffusionBValue", "DiffusionBValue"),
    ("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime", "TriggerTime"),
)


def frame_headers(path: Path, ds: Any) -> list[tuple[Path, Any]]:
    """A header per frame of the enhanced multi-frame image ``ds`` (read from ``path``
    without its pixels), each with its ``frame_index``; empty when the file does not
    state every frame's geometry (a cine loop, a multi-frame secondary capture).

    Parameters
    ----------
    path : pathlib.Path
    ds : pydicom.Dataset

    Returns
    -------
    list of (path, pydicom.Dataset)
    """
    from pydicom.dataset import Dataset

    count = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    if len(per_frame) != count:
        return []
    frames = []
    for index, groups in enumerate(per_frame):
        frame = Dataset()
        for tag in _FILE_TAGS:
            if tag in ds:
                setattr(frame, tag, ds[tag].value)
        for sequence, element, tag in _GROUP_TAGS:
            value = _group_value(groups, shared, sequence, element)
            if value is not None:
                setattr(frame, tag, value)
        if "ImagePositionPatient" not in frame or "PixelSpacing" not in frame:
            return []
        if (meta := getattr(ds, "file_meta", None)) is not None:
            frame.file_meta = meta  # the transfer syntax, for the decoder check
        frame.frame_index = index
        frame.preamble = getattr(ds, "preamble", None)
        frames.append((path, frame))
    return frames


def _group_value(groups: Any, shared: Any, sequence: str, element: str) -> Any:
    """``element`` of functional group ``sequence``: the frame's own, else the one
    all frames share; None when neither states it."""
    for source in (groups, shared):
        items = source.get(sequence)
        if items and element in items[0]:
            return items[0][element].value
    return None
