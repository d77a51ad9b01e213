"""Instance labels (one id per object) as the classes a semantic model learns.

Ground truth in microscopy often comes as instance labels: every nucleus its own id
(CellProfiler, StarDist, Cellpose and the BBBC sets all write them). A semantic model
trained on those ids directly would learn one class per object. Two conversions are
offered, applied region by region as training reads the labels (a Dask or Zarr label
image is never converted whole):

- ``"foreground"``: every object is class 1, the rest class 0;
- ``"boundaries"``: class 1 for the objects' interiors and class 2 for their inner
  boundaries (scikit-image's ``find_boundaries(mode="inner")``), so that touching
  objects stay apart in the prediction (the "three-class U-Net" of nucleus
  segmentation); :func:`napari_seg.refine.objects_from_boundaries` then gives the
  objects back.

:func:`refuse_instances` uses :func:`napari_seg.metrics.object_count`, which
recognises instance labels (many ids, each one connected region), so that training
on them without a conversion is refused with an explanation instead of quietly
building a model with one class per object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._layers import INSTANCE_CLASS_NAMES
from ._shared import IGNORE_INDEX
from .ignored import IgnoredIds, LabelView

INSTANCE_MODES = tuple(INSTANCE_CLASS_NAMES)


class InstanceClasses(LabelView):
    """Instance labels seen as class ids, converted region by region on reading.

    Parameters
    ----------
    labels : array-like
        Instance labels (0: background, every other id an object): a NumPy, Dask or
        Zarr array, read only in the regions asked for.
    mode : {"foreground", "boundaries"}
        See the module's description.

    Notes
    -----
    An integer index (a plane of a stack) keeps the boundaries in the plane; a slice
    is read with one more element on each side, so a region's boundaries are those
    of the whole image.
    """

    def __init__(self, labels: Any, mode: str, name: str | None = None) -> None:
        if mode not in INSTANCE_CLASS_NAMES:
            raise ValueError(f"instances must be one of {', '.join(INSTANCE_MODES)}, got {mode!r}")
        self.labels = labels
        self.mode = mode
        self.name = name

    @property
    def dtype(self) -> np.dtype:
        """uint8: the class ids 0, 1 and 2; int64 when ids are left out (labels read
        through :class:`~.ignored.IgnoredIds`), which stay ``IGNORE_INDEX``."""
        return np.dtype(np.int64 if self._leaves_out else np.uint8)

    @property
    def _leaves_out(self) -> bool:
        return isinstance(self.labels, IgnoredIds)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        if self.mode == "foreground":
            return self._classes(np.asarray(self.labels[index]))
        regions = _regions(index, self.shape)
        if regions is None:  # fancy indexing: convert everything, then index
            return np.asarray(self)[index]
        read, keep = regions
        return self._classes(np.asarray(self.labels[read]))[keep]

    def _classes(self, block: np.ndarray) -> np.ndarray:
        left_out = block == IGNORE_INDEX if self._leaves_out else None
        kept = block if left_out is None else block[~left_out]
        if kept.size and kept.min() < 0:  # not an object, not background: say so
            where = f"{self.name}: " if self.name else ""
            raise ValueError(
                f"{where}instance labels must be 0 (background) or a positive object id, "
                f"found {kept.min()}; if it marks pixels to leave out, name it with "
                f"ignore_labels (napari-seg train --ignore {kept.min()})"
            )
        if left_out is None or not left_out.any():
            return _classes(block, self.mode).astype(self.dtype, copy=False)
        classes = _classes(np.where(left_out, 0, block), self.mode).astype(np.int64)
        classes[left_out] = IGNORE_INDEX
        return classes


def _regions(index: tuple, shape: tuple[int, ...]) -> tuple[tuple, tuple] | None:
    """What to read for ``index`` (one more element on each side of every slice; an
    integer as a slice of one) and what to keep of it; None for any other index."""
    if len(index) > len(shape):
        return None
    read: list[slice] = []
    keep: list[int | slice] = []
    for i, n in zip((*index, *(slice(None),) * (len(shape) - len(index))), shape, strict=True):
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            at = int(i) + n if i < 0 else int(i)
            if not 0 <= at < n:
                raise IndexError(f"index {int(i)} is out of bounds for an axis of size {n}")
            read.append(slice(at, at + 1))
            keep.append(0)
        elif isinstance(i, slice) and i.step in (None, 1):
            start, stop, _ = i.indices(n)
            stop = max(start, stop)
            lo, hi = max(0, start - 1), min(n, stop + 1)
            read.append(slice(lo, hi))
            keep.append(slice(start - lo, stop - lo))
        else:
            return None
    return tuple(read), tuple(keep)


def _classes(block: np.ndarray, mode: str) -> np.ndarray:
    """The class ids (uint8) of a block of instance labels."""
    objects = block != 0
    classes = objects.astype(np.uint8)
    if mode == "boundaries" and classes.ndim:
        from skimage.segmentation import find_boundaries

        classes[find_boundaries(block, mode="inner") & objects] = 2
    return classes


def as_classes(
    pairs: list[tuple[Any, Any]], mode: str | None, names: Sequence[str] | None = None
) -> list[tuple[Any, Any]]:
    """``pairs`` with their labels seen as classes by ``mode``.

    Parameters
    ----------
    pairs : list of (image, labels)
    mode : {"foreground", "boundaries"} or None
        None: the labels are class ids, and ``pairs`` come back unchanged.
    names : sequence of str, optional
        The pairs' names, for the error a negative id raises on reading.

    Returns
    -------
    list of (image, labels)
        The labels as :class:`InstanceClasses` (read region by region).
    """
    if mode is None:
        return pairs
    names = list(names or ())
    return [
        (image, InstanceClasses(labels, mode, names[i] if i < len(names) else None))
        for i, (image, labels) in enumerate(pairs)
    ]


def refuse_instances(
    pairs: list[tuple[Any, Any]], names: list[str], *, needed: int, confirmed: int
) -> None:
    """Refuse to train ``needed`` classes on labels that look like instance labels.

    Parameters
    ----------
    pairs : list of (image, labels)
    names : list of str
        The pairs' names, for the message.
    needed : int
        The classes the labels' ids ask for (largest id + 1).
    confirmed : int
        The classes the run was told to expect (``num_classes``, ``class_names`` or
        the model to fine-tune): up to that many ids are class ids whatever they
        look like.

    Raises
    ------
    ValueError
        Naming the pair, its number of objects, and the settings that help.
    """
    from ..metrics import object_count
    from ..metrics._arrays import MIN_INSTANCE_IDS

    if needed <= max(confirmed, MIN_INSTANCE_IDS):
        return
    for name, (_, labels) in zip(names, pairs, strict=True):
        objects = object_count(labels)
        if objects:
            raise ValueError(
                f"{name}: the labels hold {objects} ids, about one connected object each: "
                f"they look like instance labels (one id per object), from which a model "
                f"would learn {needed} classes. To train on their objects, set instances "
                "('labels are' in the Train dock, --instances on the command "
                "line) to 'foreground' (object and background) or 'boundaries' (object, "
                "boundary and background: keeps touching objects apart). If these are "
                f"{needed} classes, say so with num_classes (--num-classes; in the Train "
                "dock, a new model's 'class count') or class_names"
            )


#: Labels whose ids leave more than this share of the classes they imply empty (a
#: mask saved as 0/255 implies 256 classes, two of them used) are refused.
UNUSED_CLASS_SHARE = 7 / 8


def refuse_unused_ids(present: Sequence[int], *, needed: int, confirmed: int) -> None:
    """Refuse to train ``needed`` classes when the labels use only a few of their ids.

    Label ids are class numbers, so a binary mask saved as 0/255 would make a model
    of 256 classes, 254 of them never seen. Up to :data:`MIN_INSTANCE_IDS` classes,
    or as many as the run was told to expect, are never refused.

    Parameters
    ----------
    present : sequence of int
        The ids the labels use.
    needed : int
        The classes those ids ask for (largest id + 1).
    confirmed : int
        The classes the run was told to expect (as in :func:`refuse_instances`).

    Raises
    ------
    ValueError
        Naming the ids and the settings that help.
    """
    from ..metrics._arrays import MIN_INSTANCE_IDS

    present = sorted(int(i) for i in present)
    if (
        needed <= max(confirmed, MIN_INSTANCE_IDS)
        or len(present) > (1 - UNUSED_CLASS_SHARE) * needed
    ):
        return
    ids = ", ".join(map(str, present[:8])) + (", ..." if len(present) > 8 else "")
    raise ValueError(
        f"the labels use {len(present)} ids ({ids}), but label ids are class numbers: a "
        f"model would learn {needed} classes, {needed - len(present)} of them absent. If "
        f"{present[-1]} marks pixels to leave out (void), name it with ignore_labels "
        f"(--ignore {present[-1]}; 'ignore ids' in the Train dock). A "
        "mask saved as 0/255: train its foreground with instances='foreground' (every "
        "non-zero id becomes the class 'object'; --instances foreground, or 'labels are: "
        "objects (foreground)' in the Train dock), or renumber the ids 0, 1, 2... "
        f"(Refine > relabel). If these are {needed} classes, say so with num_classes "
        "(--num-classes; in the Train dock, a new model's 'class count') or class_names"
    )
