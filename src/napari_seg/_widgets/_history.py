"""Writing into a Labels layer as one undoable step (napari's own history)."""

from __future__ import annotations

import math

import numpy as np

#: Elements compared per numpy call in :func:`changed_positions`. A numpy call holds
#: the GIL for as long as it runs, so a worker comparing a whole 10,000^2 region in
#: one call would stall the window for tens of milliseconds; 4 M elements take a
#: few.
COMPARE_ELEMENTS = 1 << 22


def changed_positions(new: np.ndarray, old) -> tuple[np.ndarray, ...]:
    """``np.nonzero(new != old)``, in pieces along the first axis; for workers.

    The result is what :func:`write_undoable` takes as ``changed``, so that the
    main thread compares only the pixels a job changed instead of its whole region.

    Parameters
    ----------
    new : numpy.ndarray
        A job's labels.
    old : array-like
        The labels they replace (a NumPy, Dask or Zarr array of the same shape), read
        piece by piece.

    Returns
    -------
    tuple of numpy.ndarray
        One index array per axis, in C order, as :func:`numpy.nonzero` gives.
    """
    new = np.asarray(new)
    if new.ndim == 0 or tuple(np.shape(old)) != new.shape:
        raise ValueError(f"cannot compare {new.shape} labels with {np.shape(old)} labels")
    step = max(1, COMPARE_ELEMENTS // max(1, math.prod(new.shape[1:])))
    parts = [tuple(np.empty(0, dtype=np.intp) for _ in new.shape)]
    for start in range(0, new.shape[0], step):
        stop = min(new.shape[0], start + step)
        where = np.nonzero(new[start:stop] != np.asarray(old[start:stop]))
        parts.append((where[0] + start, *where[1:]))
    return tuple(np.concatenate(axis) for axis in zip(*parts, strict=True))


def writable(data) -> bool:
    """Whether a layer's array takes writes in place (:func:`write_undoable`, napari's
    painting): a writeable numpy array, or a zarr array opened for writing; not a dask
    array, a read-only memory map or another lazy view.

    Parameters
    ----------
    data : array-like

    Returns
    -------
    bool
    """
    from ..arrays.views import is_read_only

    if isinstance(data, np.ndarray):
        return not is_read_only(data)
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr is a dependency
        return False
    return isinstance(data, zarr.Array) and not is_read_only(data)


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
        The same, precomputed off the main thread: ``np.nonzero(values != base)``
        (:func:`changed_positions`).
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
