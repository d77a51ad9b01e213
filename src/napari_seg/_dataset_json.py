"""The ``dataset.json`` of a Medical Segmentation Decathlon or nnU-Net dataset: its
class names, its channel (modality) names, and the files of a case stored one per
channel (nnU-Net v2's ``case_001_0000.nii.gz``, ``case_001_0001.nii.gz``).

Kept apart from :mod:`napari_seg._datasets` (which pairs files) so that the image
reader (:func:`napari_seg._io.read_with_geometry`) can find a case's channel files
without importing the pairing rules that import it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: nnU-Net's name for one channel of a case: ``case_001_0000.nii.gz`` (channel 0).
CHANNEL_FILE = re.compile(r"(.+)_(\d{4})$")


def dataset_class_names(labels: str | os.PathLike) -> tuple[str, ...] | None:
    """The class names of a Medical Segmentation Decathlon or nnU-Net dataset whose
    label folder is ``labels`` (``Task01_BrainTumour/labelsTr``): its
    ``dataset.json``'s ``"labels"``, by id (the Decathlon's ``{"0": "background"}``
    or nnU-Net's ``{"background": 0}``). None without such a file, or when its ids
    are not 0, 1, 2... (nnU-Net's regions, ids given as lists, say nothing here).

    Parameters
    ----------
    labels : str or os.PathLike
        A folder of label files.

    Returns
    -------
    tuple of str or None

    Raises
    ------
    ValueError
        For a ``dataset.json`` that is too large or not JSON (the message names it).
    """
    from .limits import MAX_CLASSES, MAX_NAME_LENGTH

    description = _dataset_description(labels)
    entries = None if description is None else description.get("labels")
    if not isinstance(entries, dict) or not 0 < len(entries) <= MAX_CLASSES:
        return None
    by_id: dict[int, str] = {}
    for key, value in entries.items():
        ident, name = (key, value) if isinstance(value, str) else (value, key)
        if isinstance(ident, str) and ident.isdigit():
            ident = int(ident)
        if isinstance(ident, bool) or not isinstance(ident, int) or not isinstance(name, str):
            return None
        by_id[ident] = name.strip()[:MAX_NAME_LENGTH]
    if sorted(by_id) != list(range(len(by_id))) or not all(by_id.values()):
        return None
    return tuple(by_id[i] for i in range(len(by_id)))


def dataset_ignore_label(names: tuple[str, ...]) -> int | None:
    """The id of an nnU-Net dataset's "ignore" label (:func:`dataset_class_names`'
    ``names``): nnU-Net v2 names the pixels to leave out of training and scoring
    ``"ignore"``, with the largest id; None when the last name is not that.

    Parameters
    ----------
    names : tuple of str

    Returns
    -------
    int or None
    """
    return len(names) - 1 if len(names) > 1 and names[-1] == "ignore" else None


def _dataset_description(folder: str | os.PathLike) -> dict | None:
    """The ``dataset.json`` beside ``folder`` (``Task01_BrainTumour/labelsTr`` or
    ``imagesTr``), as a mapping; None when ``folder`` is not a folder or there is
    no such file.

    Raises
    ------
    ValueError
        For a file that is too large or not a JSON object (the message names it).
    """
    from ._config_file import read_mapping

    path = Path(folder).parent / "dataset.json"
    if not Path(folder).is_dir() or not path.is_file():
        return None
    try:  # bounded in size and nesting, as any config file
        description = read_mapping(path, yaml_format=False)
    except ValueError as exc:
        raise ValueError(f"{path} is not a dataset description (JSON object): {exc}") from None
    if not isinstance(description, dict):
        raise ValueError(f"{path} is not a dataset description (JSON object)")
    return description


def dataset_channels(images: str | os.PathLike) -> tuple[str, ...] | None:
    """The channel (modality) names of a Decathlon or nnU-Net dataset whose image
    folder is ``images``: its ``dataset.json``'s ``"channel_names"`` (nnU-Net v2) or
    ``"modality"`` (the Decathlon, nnU-Net v1), ``{"0": "T2", "1": "ADC"}``.

    Parameters
    ----------
    images : str or os.PathLike
        A folder of image files.

    Returns
    -------
    tuple of str or None
        None without such a file or entry, or when its keys are not 0, 1, 2...

    Raises
    ------
    ValueError
        For a ``dataset.json`` that is too large or not JSON.
    """
    from .limits import MAX_NAME_LENGTH, MAX_NIFTI_CHANNELS

    description = _dataset_description(images)
    if description is None:
        return None
    entries = description.get("channel_names", description.get("modality"))
    if not isinstance(entries, dict) or not 0 < len(entries) <= MAX_NIFTI_CHANNELS:
        return None
    if set(entries) != {str(i) for i in range(len(entries))}:
        return None
    return tuple(str(entries[str(i)])[:MAX_NAME_LENGTH] for i in range(len(entries)))


def named_channels(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the first file of a case of channel files
    (:func:`channel_files`): its volume's first axis holds channels whatever their
    number (``medical.volume_channel_axis`` takes many volumes for time points).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    return channel_files(path) is not None


def channel_files(path: str | os.PathLike) -> list[Path] | None:
    """The files of every channel of the case whose first channel file is ``path``,
    as nnU-Net stores a case of several modalities (``case_001_0000.nii.gz``,
    ``case_001_0001.nii.gz``): when ``path`` is a NIfTI file named ``NAME_0000``
    and its dataset's ``dataset.json`` names two or more channels. None otherwise.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    list of Path or None

    Raises
    ------
    ValueError
        If a channel file of the case is missing (named).
    """
    from .medical import NIFTI_SUFFIXES, is_nifti

    path = Path(path)
    if not is_nifti(path):
        return None
    tail = next(t for t in NIFTI_SUFFIXES if path.name.lower().endswith(t))
    stem = path.name[: -len(tail)]
    match = CHANNEL_FILE.fullmatch(stem)
    if match is None or match.group(2) != "0000":
        return None
    names = dataset_channels(path.parent)
    if names is None or len(names) < 2:
        return None
    tail = path.name[len(stem) :]
    files = [path.parent / f"{match.group(1)}_{k:04d}{tail}" for k in range(len(names))]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ValueError(
            f"{path.name} is the first of {len(names)} channels ({', '.join(names)}) that "
            f"dataset.json names, but {', '.join(missing)} is missing"
        )
    return files


def later_channel_files(files: list[Path]) -> list[Path]:
    """The files of ``files`` that are a case's second, third... channel file, read
    with its first one (:func:`channel_files`): they are not images of their own.

    Parameters
    ----------
    files : list of Path

    Returns
    -------
    list of Path
    """
    later: list[Path] = []
    for path in files:
        found = channel_files(path)
        if found is not None:
            later += found[1:]
    chosen = set(files)
    return [p for p in later if p in chosen]
