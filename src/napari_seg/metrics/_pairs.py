"""Counting (ground truth id, predicted id) pairs sparsely, block by block."""

from __future__ import annotations

import functools

import numpy as np

from ._arrays import block_slices, read_block

#: Up to this id, a block's pairs are counted with ``bincount`` on a combined index.
DENSE_MAX_ID = 255
#: Interleaved copies of the counters (see :func:`block_pairs`).
LANES = 4


@functools.lru_cache(maxsize=8)
def _lane_offsets(n: int, step: int, dtype: type) -> np.ndarray:
    """0, step, 2 step, 3 step, 0, step, ... (n values, read-only, shared)."""
    offsets: np.ndarray = (np.arange(n) % LANES * step).astype(dtype)
    offsets.flags.writeable = False
    return offsets


def block_pairs(g: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (g, p) pairs of two equal-shaped id blocks and how often each occurs.

    Small ids use ``bincount`` on a combined uint8/uint16 index; larger ids use
    run lengths (label images are piecewise constant, so runs are far fewer than
    pixels) followed by ``np.unique`` of the runs. Memory grows with the block
    and with the number of distinct pairs, never with the number of ids squared.
    """
    g = g.ravel()
    p = p.ravel()
    k = int(max(g.max(), p.max())) + 1
    if k <= DENSE_MAX_ID + 1:
        # Label images hold long runs of one value, and bincount's increments of a
        # single counter form a dependency chain; spreading neighbouring pixels
        # over LANES copies of the counters makes it about 1.5x faster.
        lanes = LANES if k * k * LANES <= 65536 else 1
        dtype = np.uint8 if k * k * lanes <= 256 else np.uint16
        combined = g.astype(dtype, copy=True)
        np.multiply(combined, k, out=combined, casting="unsafe")
        np.add(combined, p, out=combined, casting="unsafe")
        if lanes > 1:
            np.add(combined, _lane_offsets(combined.size, k * k, dtype), out=combined)
        counts = np.bincount(combined, minlength=k * k * lanes)
        counts = counts.reshape(lanes, k * k).sum(axis=0)
        nz = np.flatnonzero(counts)
        return nz // k, nz % k, counts[nz]
    ids, g, p = _small_ids(g, p, k)
    k = int(max(g.max(), p.max())) + 1
    key = g.astype(np.int64) * k + p
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    lengths = np.diff(np.append(starts, key.size))
    keys, inverse = np.unique(key[starts], return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=lengths).astype(np.int64)
    return ids(keys // k), ids(keys % k), counts


def _small_ids(g: np.ndarray, p: np.ndarray, k: int):
    """Ids below 2**31 so that ``g * k + p`` fits in int64; a function maps them back."""
    if k <= 2**31:
        return (lambda x: x), g, p
    uniq, inverse = np.unique(np.concatenate((g, p)), return_inverse=True)
    inverse = inverse.ravel()
    return (lambda x: uniq[x].astype(np.int64)), inverse[: g.size], inverse[g.size :]


def reduce_pairs(parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge (g, p, count) triplets from several blocks into distinct pairs."""
    parts = list(parts)
    g = np.concatenate([t[0] for t in parts]).astype(np.int64)
    p = np.concatenate([t[1] for t in parts]).astype(np.int64)
    c = np.concatenate([t[2] for t in parts]).astype(np.int64)
    if len(parts) == 1:
        return g, p, c
    ids, g, p = _small_ids(g, p, int(max(g.max(), p.max())) + 1)
    k = int(max(g.max(), p.max())) + 1
    keys, inverse = np.unique(g * k + p, return_inverse=True)
    return ids(keys // k), ids(keys % k), np.bincount(inverse.ravel(), weights=c).astype(np.int64)


def pair_counts(pred, gt, index: tuple = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (gt id, pred id) pairs over ``gt[index]``/``pred[index]`` with counts.

    Reads the arrays block by block (numpy views, or regions of dask/zarr arrays).
    """
    full = tuple(pred.shape)
    index = tuple(index) + (slice(None),) * (len(full) - len(index))
    # ``index`` holds whole-axis slices and integers (one slice of a stack).
    shape = tuple(n for n, i in zip(full, index, strict=True) if not isinstance(i, int))
    parts = []
    for block in block_slices(shape):
        where = _compose(index, block)
        parts.append(block_pairs(read_block(gt, where), read_block(pred, where)))
    return reduce_pairs(parts)


def _compose(outer: tuple, inner: tuple) -> tuple:
    """The index into the full array of block ``inner`` of ``array[outer]``."""
    rest = iter(inner)
    return tuple(o if isinstance(o, int) else next(rest, slice(None)) for o in outer)
