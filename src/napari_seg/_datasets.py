"""Image and label files paired by name: the one rule ``train`` and ``evaluate`` share.

A folder of images and a folder of labels (or one folder holding both) pair a file
``NAME.ext`` with the label file ``NAME<suffix>.ext2`` (``_labels`` by default: what
``napari-seg predict`` writes and what many datasets use, e.g. BBBC007), or with
``NAME.ext2`` when the labels sit in a folder of their own under the same names
(``images/a.tif`` and ``masks/a.png``). Extensions never take part: ``a.tif`` pairs
with ``a_labels.png`` and ``brain.nii.gz`` with ``brain_labels.nii.gz``.

Folders whose names pair nowhere but each hold one number (the Cell Tracking
Challenge's ``01/t013.tif`` and ``01_GT/SEG/man_seg013.tif``, a method's
``01_RES/mask013.tif``; Cellpose's ``000_img.png`` beside ``000_masks.png``) pair by
that number, with a warning naming the rule.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ._dataset_json import CHANNEL_FILE, channel_files
from ._io import expand_inputs, output_stem
from .medical import OUTPUT_TAILS, SLICER_LABEL_TAILS

#: The tail a label file's name carries by default (``napari-seg predict`` writes
#: ``NAME_labels.tif``).
LABELS_SUFFIX = OUTPUT_TAILS["labels"]
#: The tail of the probability files ``predict --probabilities`` writes beside labels.
PROBABILITIES_SUFFIX = OUTPUT_TAILS["probabilities"]
#: The tail of the object files ``predict --objects`` writes beside labels.
OBJECTS_SUFFIX = OUTPUT_TAILS["objects"]


@dataclass(frozen=True)
class FilePairs:
    """What :func:`pair_files` found.

    Attributes
    ----------
    pairs : list of (Path, Path)
        (image, labels) pairs, sorted by the image's path.
    unpaired_images : list of Path
        Images without a label file (left out).
    unpaired_labels : list of Path
        Label files without an image (left out).
    """

    pairs: list[tuple[Path, Path]]
    unpaired_images: list[Path]
    unpaired_labels: list[Path]
    by_number: bool = False

    def left_out(self, image: str = "image", label: str = "label file") -> list[str]:
        """One sentence per kind of file left out, naming up to three of them.

        Parameters
        ----------
        image, label : str
            What one file of each side is called (e.g. "prediction", "ground-truth file").

        Returns
        -------
        list of str
        """
        out = []
        if self.by_number:
            first = self.pairs[0]
            out.append(
                f"no names pair, so files pair by the one number in their names, as the "
                f"Cell Tracking Challenge names them ({first[0].name} with {first[1].name})"
            )
        for what, paths, other in (
            (image, self.unpaired_images, label),
            (label, self.unpaired_labels, image),
        ):
            if paths:
                names = few_names(paths)
                plural = "s" if len(paths) > 1 else ""
                article = "an" if other[0] in "aeiou" else "a"
                out.append(
                    f"{len(paths)} {what}{plural} without {article} {other} left out: {names}"
                )
        return out


def few_names(paths: list[Path], count: int = 3) -> str:
    """The names of the first ``count`` of ``paths``, then "..." if there are more.

    Parameters
    ----------
    paths : list of Path
    count : int, optional

    Returns
    -------
    str
    """
    return ", ".join(p.name for p in paths[:count]) + (", ..." if len(paths) > count else "")


def outputs_beside_images(paths: list[Path]) -> list[Path]:
    """The files ``predict`` writes (labels, probabilities, objects) among ``paths`` that
    lie beside the file they belong to (``a_labels.tif`` beside ``a.tif``;
    ``a_probabilities.tif`` or ``a_objects.tif`` beside ``a.tif`` or ``a_labels.tif``):
    what a folder of images holds once ``predict`` wrote into it, or a dataset's
    ground truth; and 3D Slicer's label files beside their volume (``a.seg.nrrd`` or
    ``a-label.nrrd`` beside ``a.nrrd``).

    Parameters
    ----------
    paths : list of Path

    Returns
    -------
    list of Path
    """
    stems = {(p.parent, output_stem(p)) for p in paths}

    def beside(p: Path) -> bool:
        stem = output_stem(p)
        for tail in (*OUTPUT_TAILS.values(), *SLICER_LABEL_TAILS):
            if stem.endswith(tail):
                key = name_key(p, tail)
                beside_labels = tail in (PROBABILITIES_SUFFIX, OBJECTS_SUFFIX)
                owners = {key, key + LABELS_SUFFIX} if beside_labels else {key}
                if any((p.parent, owner) in stems for owner in owners):
                    return True
        return False

    return [p for p in paths if beside(p)]


def images_beside_labels(paths: list[Path]) -> list[Path]:
    """The files among ``paths`` that have a label file beside them (``a.tif`` when
    ``a_labels.tif`` is there too): the images of a dataset's folder, not labels.

    Parameters
    ----------
    paths : list of Path

    Returns
    -------
    list of Path
    """
    stems = {(p.parent, output_stem(p)) for p in paths}
    return [p for p in paths if (p.parent, output_stem(p) + LABELS_SUFFIX) in stems]


def prediction_tail(folder: str | os.PathLike, *, objects: bool) -> str:
    """The name tail of the predictions to score in ``folder``: ``_objects`` for
    object scores when ``predict --objects`` wrote such files there, else ``_labels``.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder of predictions (a file gives ``_labels``).
    objects : bool
        Whether objects are scored (instance mode).

    Returns
    -------
    str
    """
    folder = Path(folder)
    files = expand_inputs([folder]) if objects and folder.is_dir() else []
    if files != [folder] and any(output_stem(p).endswith(OBJECTS_SUFFIX) for p in files):
        return OBJECTS_SUFFIX
    return LABELS_SUFFIX


def name_key(path: str | os.PathLike, suffix: str = "") -> str:
    """The name a file is paired by: its name without extensions and without ``suffix``.

    Parameters
    ----------
    path : str or os.PathLike
    suffix : str, optional
        A tail to drop from the name when present (``"_labels"``: ``a_labels.tif``
        gives ``a``).

    Returns
    -------
    str
    """
    stem = output_stem(path)
    if suffix and stem.endswith(suffix) and len(stem) > len(suffix):
        return stem[: -len(suffix)]
    return stem


def pair_files(
    images: str | os.PathLike,
    labels: str | os.PathLike,
    *,
    suffix: str = LABELS_SUFFIX,
    image_suffix: str = "",
    skip: tuple[str, ...] = (),
) -> FilePairs:
    """Pair the image files of ``images`` with the label files of ``labels`` by name.

    Parameters
    ----------
    images, labels : str or os.PathLike
        Two files (one pair, names not compared), or two folders, or the same
        folder twice (then its files named ``NAME<suffix>`` are the labels and the
        others the images). Zarr stores and DICOM series folders count as files.
    suffix : str, optional
        The tail of a label file's name (default ``"_labels"``). In a folder that
        holds files with it, only those are labels (the others are taken for the
        images they label); in one without, every file is, and pairs by its whole
        name (``""`` pairs equal names).
    image_suffix : str, optional
        A tail dropped from the images' names too, by the same rule (``"_labels"``
        pairs the predictions ``predict`` wrote with ground-truth files).
    skip : tuple of str, optional
        Name tails of image files to pass over without a word (``("_probabilities",)``:
        what ``predict --probabilities`` writes beside the labels).

    Returns
    -------
    FilePairs

    Raises
    ------
    ValueError
        For a folder paired with a file, a folder of labels and images without a
        ``suffix``, two files of one side with the same name, or folders in which
        no file pairs (the message says what names were looked for).
    """
    images, labels = Path(images), Path(labels)
    image_files, label_files = expand_inputs([images]), expand_inputs([labels])
    single = [image_files == [images], label_files == [labels]]
    if all(single):
        return FilePairs([(images, labels)], [], [])
    if any(single):
        file, folder = (images, labels) if single[0] else (labels, images)
        raise ValueError(
            f"{file} is a file and {folder} a folder: give two files (one pair) or two "
            "folders (paired by name)"
        )
    if images.resolve() == labels.resolve():
        if not suffix:
            raise ValueError(
                f"images and labels share the folder {images}: the labels need a name "
                "suffix to tell them apart (e.g. '_labels')"
            )
        label_files = [p for p in image_files if output_stem(p).endswith(suffix)]
        image_files = [p for p in image_files if p not in label_files]
    else:
        label_files = _with_tail(label_files, suffix)
        image_files = _with_tail(image_files, image_suffix)
        if not image_suffix:  # predict's outputs beside the images are none of them
            outputs = set(outputs_beside_images(image_files))
            image_files = [p for p in image_files if p not in outputs]
    image_files = [p for p in image_files if not output_stem(p).endswith(skip)]
    by_image = _by_key(image_files, image_suffix)
    by_label = _by_key(label_files, suffix)
    pairs = [(by_image[k], by_label[k]) for k in by_image if k in by_label]
    if not pairs:
        found = _pair_by_channel_file(by_image, by_label) or _pair_by_number(
            image_files, label_files
        )
        if found is not None:
            return found
        raise ValueError(
            f"no file of {labels} pairs with a file of {images}: an image NAME.ext pairs "
            f"with a label file NAME{suffix}.ext or NAME.ext (found e.g. "
            f"{image_files[0].name if image_files else 'no image'} and "
            f"{label_files[0].name if label_files else 'no label file'})"
        )
    return FilePairs(
        sorted(pairs),
        sorted(p for k, p in by_image.items() if k not in by_label),
        sorted(p for k, p in by_label.items() if k not in by_image),
    )


def _pair_by_channel_file(by_image: dict[str, Path], by_label: dict[str, Path]) -> FilePairs | None:
    """The images named as nnU-Net names one channel of a case (``case_001_0000``),
    paired with the label file of the case (``case_001``); None when the images are
    not all so named or none pairs.

    A case of several channel files (``_0000``, ``_0001``) pairs by its first,
    which reads the others when the dataset's ``dataset.json`` names the channels.

    Raises
    ------
    ValueError
        For cases of several channel files that no ``dataset.json`` names.
    """
    cases: dict[str, list[Path]] = {}
    for key, path in by_image.items():
        match = CHANNEL_FILE.fullmatch(key)
        if match is None:
            return None
        cases.setdefault(match.group(1), []).append(path)
    cases = {case: sorted(files) for case, files in cases.items()}
    pairs = [(files[0], by_label[case]) for case, files in cases.items() if case in by_label]
    if not pairs:
        return None
    several = next((f for f in cases.values() if len(f) > 1), None)
    if several is not None and channel_files(several[0]) is None:
        raise ValueError(
            f"{', '.join(p.name for p in several)} are the channels of one case, each in "
            "its own file as nnU-Net stores them, but no dataset.json beside their folder "
            'names them ("channel_names" or "modality"): add one, or stack the channels '
            "into one file (a multi-channel TIFF, or a 4D NIfTI)"
        )
    return FilePairs(
        sorted(pairs),  # a case's first channel file reads the others (channel_files)
        sorted(f[0] for case, f in cases.items() if case not in by_label),
        sorted(p for case, p in by_label.items() if case not in cases),
    )


def _pair_by_number(images: list[Path], labels: list[Path]) -> FilePairs | None:
    """The files paired by the one number each name holds (``t013`` with
    ``man_seg013``), or None when a name holds none or several, or two files of a
    side share a number."""
    sides = []
    for files in (images, labels):
        numbers = [re.findall(r"\d+", output_stem(p)) for p in files]
        if not files or any(len(n) != 1 for n in numbers):
            return None
        keyed = {int(n[0]): p for n, p in zip(numbers, files, strict=True)}
        if len(keyed) != len(files):
            return None
        sides.append(keyed)
    by_image, by_label = sides
    pairs = sorted((p, by_label[k]) for k, p in by_image.items() if k in by_label)
    if not pairs:
        return None
    return FilePairs(
        pairs,
        sorted(p for k, p in by_image.items() if k not in by_label),
        sorted(p for k, p in by_label.items() if k not in by_image),
        by_number=True,
    )


def _with_tail(files: list[Path], suffix: str) -> list[Path]:
    """The files named ``NAME<suffix>`` when there are any (a folder of images and
    their labels, given as the labels' folder), else all of them."""
    tailed = [p for p in files if suffix and output_stem(p).endswith(suffix)]
    return tailed or files


def _by_key(files: list[Path], suffix: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in files:
        key = name_key(path, suffix)
        if key in found:
            raise ValueError(
                f"{found[key].name} and {path.name} in {path.parent} have the same name "
                f"{key!r} once extensions{' and ' + repr(suffix) if suffix else ''} are "
                "dropped: move one of them away"
            )
        found[key] = path
    return found
