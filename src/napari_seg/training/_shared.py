"""What the training data of planes (:mod:`.data`) and of volumes (:mod:`.volume`)
share: the targets' conventions, the pairs and their class ids, windows for the
pixel classifier, batches, padding and the check of what is annotated."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._validate import check_int
from ..arrays.ids import as_ids
from ..arrays.views import as_array
from ..limits import MAX_CLASSES, MAX_UNSTATED_CLASSES, brief

#: Target value of pixels that give no gradient (torch's default ignore index).
IGNORE_INDEX = -100
#: Targets at or above this are filled-in (lower-weight) targets of class ``t - FILLED``:
#: above every class id a run may have, so a painted id is never read as a filled one.
FILLED = MAX_CLASSES
#: Annotated positions kept per class and plane for drawing patch centres.
POSITIONS_PER_CLASS = 16384


@dataclass(frozen=True)
class Window:
    """A region of a plane (or volume) with image context around it, for
    whole-region features.

    Attributes
    ----------
    key : tuple
        ``(pair, plane, y0, y1, x0, x1)`` of the outer region (for a volume,
        ``(pair, (z0, z1), (y0, y1), (x0, x1))``): the same window of the same
        data always has the same key (a feature cache may use it).
    image : ndarray of float32, ``(C, h, w)`` or ``(C, d, h, w)``
        The normalised image of the outer region.
    target : ndarray of int64
        Training targets of the inner region (``IGNORE_INDEX`` where nothing is
        to be learnt).
    inner : tuple of slice
        Where the inner region lies in the outer one.
    """

    key: tuple
    image: np.ndarray
    target: np.ndarray
    inner: tuple[slice, ...]


def as_pairs(pairs: Any) -> list[tuple[Any, Any]]:
    """Accept one ``(image, labels)`` pair or a sequence of them.

    Parameters
    ----------
    pairs : (image, labels), a MONAI data dict ({"image": ..., "label": ...}), or a
        sequence of them

    Returns
    -------
    list of (image, labels)
        Torch tensors as NumPy arrays (:func:`~napari_seg.arrays.views.host_array`).

    Raises
    ------
    ValueError
        For an empty sequence or an item that is not a pair.
    """
    arrays = isinstance(pairs, (tuple, list)) and all(hasattr(item, "shape") for item in pairs)
    # [image, labels] too, and an array beside something else (a napari layer): one
    # pair, whose fault is named below
    if (
        isinstance(pairs, (tuple, list))
        and len(pairs) == 2
        and any(hasattr(item, "shape") for item in pairs)
    ):
        pairs = [tuple(pairs)]
    elif arrays and pairs:
        raise ValueError(
            f"pairs must be one (image, labels) pair or a list of them, got {len(pairs)} "
            "arrays in a row; group them in pairs: [(image1, labels1), (image2, labels2)]"
        )
    if isinstance(pairs, Mapping):  # one MONAI data dict
        pairs = [pairs]
    if not isinstance(pairs, Sequence) or isinstance(pairs, str) or len(pairs) == 0:
        got = type(pairs).__name__
        raise ValueError(
            f"pairs must be one (image, labels) pair or a non-empty list of them, got {got}"
        )
    out = []
    for i, pair in enumerate(pairs):
        pair = _monai_item(pair, i)
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"pair {i} must be an (image, labels) pair, got {type(pair).__name__}")
        out.append((as_array(pair[0], f"pair {i}: image"), as_array(pair[1], f"pair {i}: labels")))
    return out


def _monai_item(pair: Any, i: int) -> Any:
    """A MONAI data dict (``{"image": ..., "label": ...}``, as MONAI's datasets and
    decathlon lists hold them) as its (image, labels) pair; anything else as it is.
    Its entries must be arrays or tensors: paths are read by ``napari-seg train``."""
    if not isinstance(pair, Mapping):
        return pair
    key = next((k for k in ("label", "labels", "seg") if k in pair), None)
    if "image" not in pair or key is None:
        raise ValueError(
            f"pair {i} is a dict without 'image' and 'label' entries (MONAI's data dict), "
            f"got keys {sorted(map(str, pair))[:8]}"
        )
    if any(isinstance(pair[k], (str, os.PathLike)) for k in ("image", key)):
        raise TypeError(
            f"pair {i} holds file paths (MONAI's data dict before LoadImaged): read them "
            "first, or train from the files with napari-seg train --image ... --labels ..."
        )
    return (pair["image"], pair[key])


def pair_names(names: Sequence[str] | None, count: int) -> list[str]:
    """The names of ``count`` pairs in messages: ``names`` (one per pair), or
    "pair 0", "pair 1"... when none are given.

    Raises
    ------
    ValueError
        For a number of names other than the pairs'.
    """
    if not names:
        return [f"pair {i}" for i in range(count)]
    if isinstance(names, str) or len(names) != count:
        raise ValueError(f"names must hold one name per pair ({count}), got {brief(names)}")
    return [str(name) for name in names]


def check_labels_shape(name: str, labels, image, expected: Sequence[int]) -> None:
    """Refuse labels whose shape is not the image's without its channel axis.

    Parameters
    ----------
    name : str
        The pair's name, for the message.
    labels, image : array-like
    expected : sequence of int
        The image's shape without its channel axis.

    Raises
    ------
    ValueError
        Naming ``name`` and both shapes.
    """
    if tuple(labels.shape) != tuple(expected):
        kept = tuple(expected) != tuple(image.shape)  # a channel axis left out
        raise ValueError(
            f"{name}: labels shape {tuple(labels.shape)} does not match the image shape "
            + (
                f"{tuple(image.shape)} (without its channel axis: {tuple(expected)})"
                if kept
                else f"{tuple(image.shape)}, which has no channel axis"
            )
            + _channel_advice(tuple(labels.shape), tuple(image.shape), tuple(expected))
        )


def class_ids_of(name: str, labels):
    """``labels`` as integer class ids (a boolean mask and floats of whole numbers
    too, :func:`napari_seg.arrays.ids.as_ids`, as the file readers read them); other
    values (probabilities, a float mask) are refused.

    Parameters
    ----------
    name : str
        The pair's name, for the message.
    labels : array-like

    Returns
    -------
    array-like
        Of an integer or boolean dtype.

    Raises
    ------
    TypeError
        Naming ``name`` and the dtype.
    """
    labels = as_ids(labels)
    if np.dtype(labels.dtype).kind not in "iub":
        raise TypeError(
            f"{name}: labels must hold integer class ids, got {labels.dtype} values that are "
            "not all whole numbers (probabilities: give their argmax)"
        )
    return labels


def _channel_advice(labels: tuple, image: tuple, expected: tuple) -> str:
    """What to do when the labels have every axis of the image, the one read as
    channels too: labels have no channels, so that axis holds something else."""
    if labels != image or expected == image:
        return ""
    axis = next((i for i in range(len(image)) if image[:i] + image[i + 1 :] == expected), None)
    if axis is None:
        return ""
    return (
        f"; the labels have axis {axis} too, so it holds no channels: if it holds time "
        f"points or slices, name it as a stack axis (axis={axis}; --axis {axis})"
    )


def class_limit(max_classes: int) -> int:
    """``max_classes`` checked as the bound of a run's class ids: 2 to
    ``limits.MAX_CLASSES``, so that no id reaches the filled-in codes (:data:`FILLED`).

    Parameters
    ----------
    max_classes : int

    Returns
    -------
    int

    Raises
    ------
    ValueError, TypeError
        Naming ``max_classes``.
    """
    check_int("max_classes", max_classes, 2, MAX_CLASSES)
    return int(max_classes)


def check_class_ids(name: str, lab: np.ndarray, limit: int = MAX_UNSTATED_CLASSES) -> None:
    """Refuse negative ids and ids of ``limit`` or more in a block of labels read for
    training (``IGNORE_INDEX``, an id left out by ``ignore_labels``, aside).

    Parameters
    ----------
    name : str
        The pair's name, for the message.
    lab : numpy.ndarray
        The block of labels.
    limit : int
        Class ids must be below it: ``limits.MAX_UNSTATED_CLASSES`` unless the run says it has
        more classes (a config's ``num_classes`` or class names, a model to fine-tune).

    Raises
    ------
    ValueError
        Naming ``name`` and the id.
    """
    if lab.size and lab.min() == IGNORE_INDEX:  # ids left out (``ignore_labels``)
        lab = lab[lab != IGNORE_INDEX]
    if lab.size and lab.min() < 0:
        raise ValueError(
            f"{name}: labels must be >= 0, found {lab.min()}; if {lab.min()} marks pixels to "
            f"leave out, name it with ignore_labels (napari-seg train --ignore {lab.min()})"
        )
    if lab.size and lab.max() >= limit:
        raise ValueError(
            f"{name}: labels use id {lab.max()}, but class ids must be below {limit}; "
            "is this an image, or instance labels (one id per object)? Instance labels "
            "train with instances = 'foreground' or 'boundaries'; a model of more classes "
            "says so with num_classes (napari-seg train --num-classes)"
        )


def intensity_notes(sources: Iterable[Any]) -> list[str]:
    """The warning of each training source (``name``, ``stats``) whose intensities call
    for one (:attr:`IntensityStats.note`: NaN or infinite pixels, an image outside a
    fixed window), named by its pair.

    Parameters
    ----------
    sources : sequence
        A data set's sources, each with ``name`` and ``stats``.

    Returns
    -------
    list of str
    """
    return [f"{s.name}: {s.stats.note}" for s in sources if s.stats.note]


class LabelMode:
    """What label 0 means for a data set, and the validation metric that follows."""

    label0: str

    @property
    def sparse(self) -> bool:
        """Whether the labels are sparse strokes or slices (0 means "not annotated")."""
        return self.label0 == "unlabelled"

    def annotated(self, lab: np.ndarray) -> np.ndarray:
        """The pixels of ``lab`` (ids read for training) that train: ids > 0 with
        sparse labels, every id but the ignored ones (``IGNORE_INDEX``) with dense ones."""
        return lab > 0 if self.sparse else lab != IGNORE_INDEX

    @property
    def validation_metric(self) -> str:
        """``"agreement"`` (held-out strokes) for sparse labels, ``"iou"`` for dense ones."""
        return "agreement" if self.sparse else "iou"


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily.

    Parameters
    ----------
    items : iterable
    size : int

    Yields
    ------
    list
    """
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def pad_patch(
    image: np.ndarray, target: np.ndarray, size: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``(C, *spatial)`` and ``spatial`` to ``size``: image mirrored, target ignored.

    Parameters
    ----------
    image : numpy.ndarray
    target : numpy.ndarray
    size : int or sequence of int
        One size for every spatial axis, or one per axis (2D or 3D).

    Returns
    -------
    image, target : numpy.ndarray
    """
    sizes = (size,) * target.ndim if isinstance(size, (int, np.integer)) else tuple(size)
    pads = [max(0, int(s) - n) for s, n in zip(sizes, target.shape, strict=True)]
    if not any(pads):
        return image, target
    fits = all(p < n for p, n in zip(pads, target.shape, strict=True))
    mode: Literal["reflect", "edge"] = "reflect" if fits else "edge"
    widths = [(0, p) for p in pads]
    image = np.pad(image, [(0, 0), *widths], mode=mode)
    target = np.pad(target, widths, constant_values=IGNORE_INDEX)
    return image, target


def check_annotations(
    class_counts: np.ndarray, label0: str, names: Sequence[str], warnings: list[str]
) -> None:
    """Refuse labels a model cannot learn from; warn about a suspicious label 0 and
    about class ids below the largest that no pixel has (strokes painted 2 and 3).

    Parameters
    ----------
    class_counts : ndarray of int
        Annotated pixels per class id.
    label0 : {"unlabelled", "background"}
    names : sequence of str
        The pairs' names, for the message.
    warnings : list of str
        Messages for the user are appended here.

    Raises
    ------
    ValueError
        When no pixel, or only one class, is annotated.
    """
    present = np.flatnonzero(class_counts)
    joined = ", ".join(names)
    if present.size == 0:
        raise ValueError(
            f"the labels of {joined} have no annotated pixel (every pixel is 0, which "
            "means 'unlabelled'); paint at least two classes"
        )
    if present.size < 2:
        hint = (
            "paint the background too, with its own label id"
            if label0 == "unlabelled"
            else "label 0 is background here; paint at least one object"
        )
        raise ValueError(
            f"the labels of {joined} annotate only class {int(present[0])}; a model needs "
            f"at least two classes to learn from ({hint})"
        )
    first = 1 if label0 == "unlabelled" else 0  # id 0 is no class there
    if absent := [i for i in range(first, len(class_counts)) if not class_counts[i]]:
        some = ", ".join(map(str, absent[:8])) + (", ..." if len(absent) > 8 else "")
        warnings.append(
            f"no pixel of class id(s) {some} is annotated for training in {joined}, though "
            f"ids up to {len(class_counts) - 1} are classes (one left out by ignore_labels "
            "still is one): the model learns never to predict them. Paint them, or "
            "renumber the ids (Refine > relabel)"
        )
    if label0 == "background":
        unpainted = class_counts[0] / class_counts.sum()
        if unpainted > 0.98:
            warnings.append(
                f"label 0 covers {100 * unpainted:.1f}% of the pixels and is trained as "
                "background; if those pixels are simply not annotated, use "
                "label0='unlabelled'"
            )
