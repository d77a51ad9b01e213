"""Label ids that mark pixels to leave out of training.

Datasets often give the pixels nobody could classify an id of their own: 255 ("void")
in Pascal VOC and Cityscapes, a border drawn around every object, an "ignore" label in
nnU-Net's datasets. Such an id is no class: trained as one, it would become a class of
the model (and a 0/255 mask, a model of 256 classes). :class:`IgnoredIds` reads the
labels with those ids as ``IGNORE_INDEX``, the target value the losses, the
validation and the class counts leave out, region by region as training reads them (a
Dask or Zarr label image is never converted whole).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._shared import IGNORE_INDEX


class LabelView:
    """Labels seen through a conversion applied to each region read (subclasses
    give ``dtype`` and ``__getitem__``); ``labels`` is the array read."""

    labels: Any

    @property
    def shape(self) -> tuple[int, ...]:
        """The labels' shape."""
        return tuple(self.labels.shape)

    @property
    def ndim(self) -> int:
        """The labels' number of axes."""
        return len(self.shape)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[(slice(None),) * self.ndim]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, index: Any) -> np.ndarray:
        raise NotImplementedError


class IgnoredIds(LabelView):
    """Labels whose ids ``ignore`` read as ``IGNORE_INDEX``.

    Parameters
    ----------
    labels : array-like
        Label ids: a NumPy, Dask or Zarr array, read only in the regions asked for.
    ignore : sequence of int
        The ids to leave out.
    """

    def __init__(self, labels: Any, ignore: Sequence[int]) -> None:
        self.labels = labels
        self.ignore = np.asarray(sorted({int(i) for i in ignore}), dtype=np.int64)

    @property
    def dtype(self) -> np.dtype:
        """int64: the labels' ids and ``IGNORE_INDEX``."""
        return np.dtype(np.int64)

    def __getitem__(self, index: Any) -> np.ndarray:
        block = np.asarray(self.labels[index])
        out = block.astype(np.int64)
        out[np.isin(block, self.ignore)] = IGNORE_INDEX
        return out


def ignoring(pairs: list[tuple[Any, Any]], ignore: Sequence[int]) -> list[tuple[Any, Any]]:
    """``pairs`` with the ids ``ignore`` of their labels left out.

    Parameters
    ----------
    pairs : list of (image, labels)
    ignore : sequence of int
        Label ids to leave out; none: ``pairs`` come back unchanged.

    Returns
    -------
    list of (image, labels)
        The labels as :class:`IgnoredIds`.
    """
    if not len(ignore):
        return pairs
    return [(image, IgnoredIds(labels, ignore)) for image, labels in pairs]
