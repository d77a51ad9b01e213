"""The image a 3D Slicer segmentation was drawn on: its grid, from the segmentation's
header, so that a segmentation saved cropped to its segments is read on it.

3D Slicer 4.11 saved a ``.seg.nrrd`` cropped to the smallest box holding its segments
(later versions save it on the grid of the image it was drawn on). Either way its
header records that image's grid among the conversion parameters, as "Reference image
geometry": the image-to-RAS matrix, row by row, and the voxel extent, ``i0;i1;j0;j1;
k0;k1``. A cropped segmentation is read on that grid, padded with 0, as a DICOM SEG is
read on its series': a label map as large as its image, which can be painted, refined
or dilated anywhere on it, and lies on the image voxel for voxel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..limits import MAX_VOLUME_BYTES
from ._geometry import VolumeGeometry
from ._grids import place_on_grid

#: The conversion parameter holding the grid of the image a segmentation was drawn on.
_REFERENCE = "Reference image geometry"


def reference_grid(header: dict[str, Any], unit: str) -> VolumeGeometry | None:
    """The grid of the image the 3D Slicer segmentation of ``header`` (pynrrd's) was
    drawn on, its lengths in ``unit``; None when the header records none, records one
    not understood, or one larger than napari-seg reads at once.

    Parameters
    ----------
    header : dict
    unit : str

    Returns
    -------
    VolumeGeometry or None
    """
    text = str(header.get("Segmentation_ConversionParameters", ""))
    found = [p.split("|") for p in text.split("&") if p.split("|")[0].strip() == _REFERENCE]
    if not found or len(found[0]) < 2:
        return None
    try:
        numbers = [float(v) for v in found[0][1].strip().strip(";").split(";")]
    except ValueError:
        return None
    if len(numbers) != 22 or not all(math.isfinite(v) for v in numbers):
        return None
    matrix, extent = np.reshape(numbers[:16], (4, 4)), np.asarray(numbers[16:])
    low, high = extent[0::2], extent[1::2]
    if np.any(high < low) or np.any(extent != np.round(extent)):
        return None
    shape = tuple(int(n) for n in high - low + 1)
    if math.prod(shape) > MAX_VOLUME_BYTES:
        return None
    affine = matrix.copy()
    affine[3] = (0.0, 0.0, 0.0, 1.0)
    affine[:3, 3] += matrix[:3, :3] @ low  # the extent's first voxel
    try:
        return VolumeGeometry.from_affine(affine, shape, source="nrrd", unit=unit)
    except ValueError:
        return None


def on_reference_grid(
    labels: np.ndarray, geometry: VolumeGeometry, header: dict[str, Any], name: str
) -> tuple[np.ndarray, VolumeGeometry]:
    """``labels`` (a 3D Slicer segmentation's, on ``geometry``) on the grid of the image
    it was drawn on (:func:`reference_grid`) when they cover a window of it; as they
    are otherwise (no grid recorded, the same grid, or one they do not lie on: an
    oversampled segmentation).

    Parameters
    ----------
    labels : ndarray
    geometry : VolumeGeometry
    header : dict
    name : str
        The segmentation's file name, for a message.

    Returns
    -------
    labels : ndarray
    geometry : VolumeGeometry
    """
    reference = reference_grid(header, geometry.unit)
    if labels.ndim != 3 or reference is None:
        return labels, geometry
    try:
        placed = place_on_grid(labels, geometry, reference, (name, "its reference image"))
    except ValueError:
        return labels, geometry
    return (labels, geometry) if placed is labels else (placed, reference)
