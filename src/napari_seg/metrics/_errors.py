"""Error maps: which pixels are right, spurious, missed or of the wrong class."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .._types import RegionArray
from ._arrays import block_slices, check_pair, read_block
from ._instance import match_instances

#: Names of the error-map values (index = value).
ERROR_NAMES = ("", "true positive", "false positive", "false negative", "wrong class")
#: RGBA colours of the error-map values: green, magenta, yellow, orange.
ERROR_COLORS = (
    (0.0, 0.0, 0.0, 0.0),
    (0.1, 0.8, 0.2, 1.0),
    (0.9, 0.1, 0.8, 1.0),
    (1.0, 0.9, 0.1, 1.0),
    (1.0, 0.5, 0.0, 1.0),
)
TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE, WRONG_CLASS = 1, 2, 3, 4


def error_map(
    pred: RegionArray,
    gt: RegionArray,
    *,
    ignore_labels: Iterable[int] = (),
    background: int | None = 0,
) -> np.ndarray:
    """Label each pixel by the kind of agreement between prediction and truth.

    Parameters
    ----------
    pred, gt : array_like of int
        Semantic label arrays of the same shape.
    ignore_labels : iterable of int, optional
        Ground-truth ids whose pixels get 0.
    background : int or None, optional
        The background class (default 0). None: there is no background, so
        every mismatch is "wrong class".

    Returns
    -------
    ndarray of uint8, the shape of ``gt``
        0 where both are background (or ignored), 1 true positive (same
        foreground class), 2 false positive (foreground predicted on
        background), 3 false negative (foreground predicted as background),
        4 wrong class (both foreground, different classes); see
        :data:`ERROR_NAMES`.
    """
    pred, gt = check_pair(pred, gt)
    ignore = np.asarray(sorted(set(ignore_labels)), dtype=np.int64)
    out = np.zeros(tuple(gt.shape), dtype=np.uint8)
    bg = -1 if background is None else background
    for index in block_slices(tuple(gt.shape)):
        g, p = read_block(gt, index), read_block(pred, index)
        same = g == p
        g_fg, p_fg = g != bg, p != bg
        block = np.zeros(g.shape, dtype=np.uint8)
        block[same & g_fg] = TRUE_POSITIVE
        block[~same & ~g_fg] = FALSE_POSITIVE
        block[~same & g_fg & ~p_fg] = FALSE_NEGATIVE
        block[~same & g_fg & p_fg] = WRONG_CLASS
        if ignore.size:
            block[np.isin(g, ignore)] = 0
        out[index] = block
    return out


def instance_error_map(
    pred: RegionArray, gt: RegionArray, *, threshold: float = 0.5, background: int = 0
) -> np.ndarray:
    """Where the instance matching at ``threshold`` succeeded and failed.

    Parameters
    ----------
    pred, gt : array_like of int
        Instance label images of the same shape.
    threshold : float
        The IoU a match needs.
    background : int
        The id of background pixels.

    Returns
    -------
    ndarray of uint8, the shape of ``gt``
        1 on predicted objects matched to a true object, 2 on unmatched
        predicted objects (false positives), 3 on unmatched true objects where
        no predicted object lies (false negatives), 0 elsewhere.
    """
    scores = match_instances(pred, gt, thresholds=(threshold,), background=background)
    matched_true, matched_pred, _ = scores.matches[0]
    out = np.zeros(tuple(gt.shape), dtype=np.uint8)
    for index in block_slices(tuple(gt.shape)):
        g, p = read_block(gt, index), read_block(pred, index)
        block = np.zeros(g.shape, dtype=np.uint8)
        p_fg = p != background
        block[p_fg] = FALSE_POSITIVE
        block[np.isin(p, matched_pred) & p_fg] = TRUE_POSITIVE
        block[(g != background) & ~p_fg & ~np.isin(g, matched_true)] = FALSE_NEGATIVE
        out[index] = block
    return out
