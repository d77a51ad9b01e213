"""Label ids stored in the smallest type that holds them (one rule for every file)."""

from __future__ import annotations

import numpy as np


def compact_ids(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint8 or uint16 when their ids fit (0 to 65535), else unchanged.

    Fiji opens uint8 and uint16 stacks as hyperstacks (not int32, which tifffile then
    writes as a plain TIFF), and the file is two to four times smaller; labels with a
    negative id or one over 65535 keep their type (uint32 or int32 objects).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer or boolean ids; other arrays come back unchanged.

    Returns
    -------
    numpy.ndarray
        ``labels`` itself when already compact (never copied needlessly).
    """
    if labels.dtype == np.bool_:
        return labels.astype(np.uint8)
    if labels.dtype.kind not in "iu" or labels.dtype in (np.uint8, np.uint16):
        return labels
    if labels.size == 0:
        return labels.astype(np.uint8)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > np.iinfo(np.uint16).max:
        return labels
    return labels.astype(np.uint8 if high <= np.iinfo(np.uint8).max else np.uint16)
