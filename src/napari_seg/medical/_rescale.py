"""The one rule for stored values with a linear rescale (a DICOM slice's
``RescaleSlope`` and ``RescaleIntercept``, a NIfTI's ``scl_slope`` and ``scl_inter``):
whole numbers stay whole numbers, as 3D Slicer and dcm2niix keep a CT's Hounsfield
units in int16, at half the memory of float32."""

from __future__ import annotations

import numpy as np


def rescaled(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """``values * slope + intercept``: ``values`` as they are when that changes nothing;
    whole numbers (int16, else int32) when ``values`` are integers, ``slope`` and
    ``intercept`` whole numbers and the results fit; float32 otherwise.

    Parameters
    ----------
    values : ndarray
        The stored values.
    slope, intercept : float

    Returns
    -------
    ndarray
    """
    if slope == 1 and intercept == 0:
        return values
    if slope.is_integer() and intercept.is_integer() and values.dtype.kind in "iu" and values.size:
        stored = [float(values.min()), float(values.max())]
        ends = [v * slope + intercept for v in stored]
        product = max(map(abs, stored)) * abs(slope)  # the largest value on the way
        for kind in (np.int16, np.int32):
            if np.iinfo(kind).min <= min(ends) and max(ends) <= np.iinfo(kind).max:
                # in the result's own type where the product fits it: no wider copy
                ways = (kind, np.int32, np.int64)
                step = next(w for w in ways if product <= np.iinfo(w).max)
                whole = values.astype(step)
                whole *= int(slope)
                whole += int(intercept)
                return whole.astype(kind, copy=False)
    scaled = values.astype(np.float32)
    scaled *= np.float32(slope)
    scaled += np.float32(intercept)
    return scaled
