"""Writing into a Labels layer as one undoable step (napari's own history)."""

from __future__ import annotations

import numpy as np


def write_undoable(layer, index: tuple, values: np.ndarray, *, base=None, changed=None) -> int:
    """Set ``layer.data[index] = values`` as one undo step; returns the pixels changed.

    Only changed pixels are recorded, through :meth:`Labels.data_setitem` inside
    :meth:`Labels.block_history`, so Ctrl+Z restores exactly the labels that were
    there just before. Main thread only.

    Parameters
    ----------
    layer : napari.layers.Labels
    index : tuple
        The region of ``layer.data`` that ``values`` covers (ints and slices).
    values : numpy.ndarray
        The new labels of the region.
    base : numpy.ndarray, optional
        The labels a job started from: only pixels where ``values`` differs from
        ``base`` are written, so edits made to the layer while the job ran are
        kept elsewhere.
    changed : tuple of numpy.ndarray, optional
        The same, precomputed off the main thread: ``np.nonzero(values != base)``.
        Only those positions are then read and compared here, so the main thread's
        work grows with the pixels changed, not with the region.
    """
    values = np.asarray(values)
    region = layer.data[index]
    if tuple(np.shape(region)) != values.shape:
        raise ValueError(f"cannot write {values.shape} values into a {np.shape(region)} region")
    if changed is None:
        current = np.asarray(region)
        mask = current != values
        if base is not None:
            mask &= np.asarray(base) != values
        local = np.nonzero(mask)
    else:
        local = tuple(np.asarray(a) for a in changed)
        differs = np.asarray(region)[local] != values[local]
        local = tuple(a[differs] for a in local)
    new = values[local]
    info = np.iinfo(layer.data.dtype)
    if new.size and (new.min() < info.min or new.max() > info.max):
        raise ValueError(
            f"labels up to {int(new.max())} do not fit the layer's dtype {layer.data.dtype}"
        )
    count = int(new.size)
    if count == 0:
        return 0
    positions = iter(local)
    full = []
    for axis, item in enumerate(index):
        if isinstance(item, (int, np.integer)):
            full.append(np.full(count, int(item), dtype=np.intp))
        else:
            start, _stop, step = item.indices(layer.data.shape[axis])
            full.append(start + step * next(positions))
    with layer.block_history():
        layer.data_setitem(tuple(full), new)
    return count
