"""Writing into a Labels layer as one undoable step (napari's own history)."""

from __future__ import annotations

import numpy as np


def write_undoable(layer, index: tuple, values: np.ndarray, *, base=None) -> int:
    """Set ``layer.data[index] = values`` as one undo step; returns the pixels changed.

    Only changed pixels are recorded, through :meth:`Labels.data_setitem` inside
    :meth:`Labels.block_history`, so Ctrl+Z restores exactly the labels that were
    there just before. With ``base`` (the labels a job started from), only the
    pixels where ``values`` differs from ``base`` are written, so edits made to
    the layer while the job ran are kept elsewhere. Main thread only.
    """
    current = np.asarray(layer.data[index])
    values = np.asarray(values)
    if values.shape != current.shape:
        raise ValueError(f"cannot write {values.shape} values into a {current.shape} region")
    info = np.iinfo(layer.data.dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise ValueError(
            f"labels up to {int(values.max())} do not fit the layer's dtype {layer.data.dtype}"
        )
    changed = current != values
    if base is not None:
        changed &= np.asarray(base) != values
    count = int(np.count_nonzero(changed))
    if count == 0:
        return 0
    local = iter(np.nonzero(changed))
    full = []
    for axis, item in enumerate(index):
        if isinstance(item, (int, np.integer)):
            full.append(np.full(count, int(item), dtype=np.intp))
        else:
            start, _stop, step = item.indices(layer.data.shape[axis])
            full.append(start + step * next(local))
    with layer.block_history():
        layer.data_setitem(tuple(full), values[changed])
    return count
