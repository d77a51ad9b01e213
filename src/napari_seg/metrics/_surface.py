"""Surface distances of label arrays in physical units (any dimensionality).

Per class: the percentile Hausdorff distance, the average symmetric surface
distance and the normalised surface Dice at a tolerance, with the definitions of
MONAI's ``compute_hausdorff_distance``, ``compute_average_surface_distance``
and ``compute_surface_dice`` (the oracle of the tests): a class's surface is the
set of its voxels with a face-neighbour outside it (or on the array border), and
a distance is the Euclidean distance, in units of ``spacing``, from a surface
voxel of one array to the nearest surface voxel of the other.

Written here rather than taken from MONAI because MONAI expands the labels to
one-hot volumes and runs a distance transform of the class's bounding box per
direction, metric and class (six for the three metrics): here each class is
cropped to the bounding box of its voxels in either array (one ``find_objects``
pass per array), and the nearest-surface distances of both directions come from
k-d trees over the surface voxels' physical positions, which serve all three
metrics in memory that grows with the surfaces' areas, not the boxes' volumes
(bench/metrics.py measures both).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .._types import RegionArray
from .._validate import check_spacing
from ._arrays import check_pair
from ._confusion import MAX_CLASSES
from ._pairs import pair_counts

#: The normalised surface Dice's default tolerance, in the spacing's units.
DEFAULT_TOLERANCE = 1.0


@dataclass(frozen=True)
class SurfaceScores:
    """Per-class surface distances and volumes (NaN where undefined).

    Attributes
    ----------
    labels : tuple of int
        The class of each entry.
    spacing : tuple of float
        The size of a voxel along each axis, in ``unit``.
    unit : str or None
        The length unit of ``spacing`` (e.g. "mm"), None when unknown.
    tolerance : float
        The tolerance of the surface Dice, in ``unit``.
    percentile : float
        The percentile of the Hausdorff distance (95: HD95).
    hausdorff : ndarray of float
        The larger of the two directed percentile distances; NaN when the class
        is in neither array, inf when it is in one only.
    assd : ndarray of float
        The mean of the distances of both surfaces to the other (NaN / inf as above).
    surface_dice : ndarray of float
        The share of both surfaces within ``tolerance`` of the other (NaN when
        the class is in neither array, 0 when in one only).
    volume_gt, volume_pred : ndarray of float
        The class's volume (area in 2D) in ``unit`` to the power of the
        dimensionality.
    series : int
        The number of volumes of a series whose figures are averaged
        (:func:`series_surface_scores`); 1 for one array.
    """

    labels: tuple[int, ...]
    spacing: tuple[float, ...]
    unit: str | None
    tolerance: float
    percentile: float
    hausdorff: np.ndarray
    assd: np.ndarray
    surface_dice: np.ndarray
    volume_gt: np.ndarray
    volume_pred: np.ndarray
    series: int = 1

    def volume_unit(self) -> tuple[float, str]:
        """How to show volumes: a factor and its unit ("mL" for a 3D spacing in mm,
        "voxels" or "pixels" for a count at a spacing of 1 without a unit).

        Returns
        -------
        factor : float
            Multiply ``volume_gt`` / ``volume_pred`` by it.
        unit : str
        """
        ndim = len(self.spacing)
        if self.unit == "mm" and ndim == 3:
            return 1e-3, "mL"
        if self.unit is None and all(float(s) == 1.0 for s in self.spacing):
            return 1.0, "voxels" if ndim == 3 else "pixels"  # a count
        base = self.unit or "units"  # a spacing without a stated unit
        return 1.0, f"{base}^{ndim}" if ndim > 1 else base


def surface_scores(
    pred: RegionArray,
    gt: RegionArray,
    *,
    spacing: Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    percentile: float = 95.0,
    unit: str | None = None,
) -> SurfaceScores:
    """Surface distances and volumes of each class of ``pred`` against ``gt``.

    Parameters
    ----------
    pred, gt : array_like of int
        Label arrays of one shape, 2D or more (read whole).
    spacing : sequence of float, optional
        Voxel size along each axis (default: 1 on every axis).
    labels : sequence of int, optional
        The classes to score (default: every id > 0 in either array).
    tolerance : float
        Distance within which a surface counts as right (surface Dice), in the
        units of ``spacing``.
    percentile : float
        Of the Hausdorff distance, in (0, 100].
    unit : str, optional
        The length unit of ``spacing``, carried to the result.

    Returns
    -------
    SurfaceScores

    Raises
    ------
    ValueError
        For arrays of different shapes, 1D arrays, a spacing of the wrong
        length or not positive, a negative tolerance or a percentile out of range.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((20, 20), np.uint8); gt[5:15, 5:15] = 1
    >>> pred = np.zeros_like(gt); pred[5:15, 6:16] = 1
    >>> s = surface_scores(pred, gt, spacing=(1.0, 0.5))
    >>> float(s.hausdorff[0]), float(s.volume_gt[0])
    (0.5, 50.0)
    """
    pred, gt = check_pair(pred, gt)
    pred, gt = np.asarray(pred), np.asarray(gt)
    spacing_t = _check(pred.ndim, spacing, tolerance, percentile)
    # Voxels per id of each array, from the block-wise pair counts the confusion
    # matrix uses (one pass over both arrays; negative ids refused there).
    gt_ids, pred_ids, pairs = pair_counts(pred, gt)
    top = int(max(gt_ids.max(), pred_ids.max())) + 1
    if top > MAX_CLASSES and labels is None:
        raise ValueError(
            f"ids up to {top - 1}: this looks like an instance image; surface distances "
            f"are computed per class (at most {MAX_CLASSES}), pass labels= to choose some"
        )
    count_g, count_p = _voxels(gt_ids, pairs), _voxels(pred_ids, pairs)
    if labels is None:
        labels = sorted(i for i in {*count_g, *count_p} if i > 0)
    boxes = _boxes(pred, gt, [int(label) for label in labels], top)
    cell = math.prod(spacing_t)
    out = np.full((3, len(labels)), np.nan)
    volumes = np.zeros((2, len(labels)))
    for i, label in enumerate(labels):
        label = int(label)
        volumes[:, i] = count_g.get(label, 0) * cell, count_p.get(label, 0) * cell
        box = boxes.get(label)
        if box is not None:
            out[:, i] = _class_scores(
                pred[box] == label, gt[box] == label, spacing_t, tolerance, percentile
            )
    return SurfaceScores(
        labels=tuple(int(lab) for lab in labels),
        spacing=spacing_t,
        unit=unit,
        tolerance=float(tolerance),
        percentile=float(percentile),
        hausdorff=out[0],
        assd=out[1],
        surface_dice=out[2],
        volume_gt=volumes[0],
        volume_pred=volumes[1],
    )


def series_surface_scores(
    pred: RegionArray, gt: RegionArray, *, axis: int, labels: Sequence[int], **options
) -> SurfaceScores:
    """:func:`surface_scores` of each volume (or plane) along a series ``axis`` (a time
    series: distances never cross it), averaged over the series.

    Parameters
    ----------
    pred, gt : array_like of int
        Label arrays of one shape.
    axis : int
        The series axis.
    labels : sequence of int
        The classes to score (the same in every volume).
    **options
        ``spacing`` (of a volume's axes), ``tolerance``, ``percentile``, ``unit``.

    Returns
    -------
    SurfaceScores
        Each figure the mean over the volumes where it is defined (NaN where the class
        is in neither array of any volume; inf when a volume has it in one only);
        volumes are a volume's mean.

    Raises
    ------
    ValueError
        As :func:`surface_scores`, and for an axis out of range.
    """
    pred, gt = check_pair(pred, gt)
    ndim = len(pred.shape)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for {ndim} axes")
    axis %= ndim
    frames = []
    for k in range(int(pred.shape[axis])):
        index = (slice(None),) * axis + (k,)
        frames.append(surface_scores(np.asarray(pred[index]), np.asarray(gt[index]),
                                     labels=labels, **options))  # fmt: skip
    first = frames[0]

    def mean(name: str) -> np.ndarray:
        values = np.stack([getattr(f, name) for f in frames])
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a class absent everywhere
            return np.nanmean(values, axis=0)

    return replace(
        first,
        hausdorff=mean("hausdorff"),
        assd=mean("assd"),
        surface_dice=mean("surface_dice"),
        volume_gt=mean("volume_gt"),
        volume_pred=mean("volume_pred"),
        series=len(frames),
    )


def _check(ndim: int, spacing, tolerance: float, percentile: float) -> tuple[float, ...]:
    if ndim < 2:
        raise ValueError(f"surface distances need a 2D or larger array, got {ndim}D")
    spacing_t = tuple(float(s) for s in (spacing if spacing is not None else (1.0,) * ndim))
    if len(spacing_t) != ndim:
        raise ValueError(f"spacing has {len(spacing_t)} values for a {ndim}D array")
    try:
        check_spacing("spacing", spacing_t, (ndim,))
    except TypeError as exc:  # NaN or infinite: a bad value, as for the other settings here
        raise ValueError(str(exc)) from None
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    return spacing_t


#: Ids below this find their boxes in one pass (a table of this many entries);
#: labels= with larger ids (instance images) are boxed one mask at a time.
_BOX_TABLE = 2**16


def _voxels(ids: np.ndarray, pairs: np.ndarray) -> dict[int, float]:
    """Voxels per id, from the pair counts (sized by the ids present, not the largest)."""
    unique, inverse = np.unique(ids, return_inverse=True)
    return dict(zip(unique.tolist(), np.bincount(inverse, weights=pairs).tolist(), strict=True))


def _boxes(pred, gt, labels: list[int], top: int) -> dict[int, tuple[slice, ...]]:
    """The box each label is scored in: both arrays' extent of it, grown by a voxel
    (the whole array for 0; absent where neither array has the label)."""
    from scipy import ndimage

    whole = tuple(slice(0, n) for n in pred.shape)
    boxes = {0: whole} if 0 in labels else {}
    wanted = [label for label in labels if label > 0]
    if top <= _BOX_TABLE:
        found = ndimage.find_objects(pred, max_label=top), ndimage.find_objects(gt, max_label=top)
        wanted = [label for label in wanted if label < top]
        pairs = {label: (found[0][label - 1], found[1][label - 1]) for label in wanted}
    else:
        pairs = {label: (_mask_box(pred == label), _mask_box(gt == label)) for label in wanted}
    for label, (a, b) in pairs.items():
        box = _union(a, b, pred.shape)
        if box is not None:
            boxes[label] = box
    return boxes


def _mask_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of a mask's True voxels (None when there are none)."""
    from scipy import ndimage

    found = ndimage.find_objects(mask.view(np.uint8))
    return found[0] if found else None


def _union(a, b, shape) -> tuple[slice, ...] | None:
    """The bounding box of two boxes (either may be None), grown by one voxel
    (so the erosion sees the outside) and clipped to the array."""
    if a is None and b is None:
        return None
    boxes = [x for x in (a, b) if x is not None]
    return tuple(
        slice(max(min(s.start for s in axis) - 1, 0), min(max(s.stop for s in axis) + 1, n))
        for axis, n in zip(zip(*boxes, strict=True), shape, strict=True)
    )


def _class_scores(
    p: np.ndarray, g: np.ndarray, spacing: tuple[float, ...], tolerance: float, q: float
) -> tuple[float, float, float]:
    """Hausdorff (percentile), ASSD and surface Dice of two masks of one class."""
    from scipy import ndimage

    edge_p = p & ~ndimage.binary_erosion(p)
    edge_g = g & ~ndimage.binary_erosion(g)
    n_p, n_g = int(edge_p.sum()), int(edge_g.sum())
    if n_p == 0 and n_g == 0:
        return math.nan, math.nan, math.nan
    if n_p == 0 or n_g == 0:
        return math.inf, math.inf, 0.0
    d_pg, d_gp = _nearest(edge_p, edge_g, spacing)
    hausdorff = max(float(np.percentile(d_pg, q)), float(np.percentile(d_gp, q)))
    assd = (float(d_pg.sum()) + float(d_gp.sum())) / (n_p + n_g)
    # A distance equal to the tolerance counts as within it, whatever the rounding of
    # the positions (0.3 * 5 - 0.3 * 2 is not exactly 0.3 * 3 in floating point).
    limit = tolerance * (1 + 1e-9)
    near = int(np.count_nonzero(d_pg <= limit)) + int(np.count_nonzero(d_gp <= limit))
    return hausdorff, assd, near / (n_p + n_g)


def _nearest(
    edge_a: np.ndarray, edge_b: np.ndarray, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each surface voxel of ``a`` to the nearest of ``b``, and back.

    A k-d tree over the surface voxels' physical positions gives the same exact
    Euclidean distances as a distance transform of the box, in memory that grows
    with the surfaces' areas rather than with the box's volume.
    """
    from scipy.spatial import cKDTree

    scale = np.asarray(spacing)
    points_a = np.argwhere(edge_a) * scale
    points_b = np.argwhere(edge_b) * scale
    d_ab = cKDTree(points_b).query(points_a, workers=-1)[0]
    d_ba = cKDTree(points_a).query(points_b, workers=-1)[0]
    return d_ab, d_ba


def surface_rows(s: SurfaceScores, names: Sequence[str] | None = None) -> list[dict]:
    """One table row per class: its surface distances and volumes, units in the column names.

    Infinite distances (a class in one array only) and NaN are given as None.

    Parameters
    ----------
    s : SurfaceScores
    names : sequence of str, optional
        Class names indexed by id.

    Returns
    -------
    list of dict
    """
    from ._report import class_name

    length = f" ({s.unit})" if s.unit else ""
    factor, vunit = s.volume_unit()
    return [
        {
            "class": class_name(label, names),
            "id": label,
            f"HD{s.percentile:g}{length}": _finite(s.hausdorff[i]),
            f"ASSD{length}": _finite(s.assd[i]),
            f"surface Dice @{s.tolerance:g}{length.strip()}": _finite(s.surface_dice[i]),
            f"gt volume ({vunit})": float(s.volume_gt[i] * factor),
            f"pred volume ({vunit})": float(s.volume_pred[i] * factor),
        }
        for i, label in enumerate(s.labels)
    ]


def surface_dict(s: SurfaceScores, names: Sequence[str] | None = None) -> dict:
    """The surface scores in plain JSON types (NaN and inf as None, volumes in ``unit``^n).

    Parameters
    ----------
    s : SurfaceScores
    names : sequence of str, optional

    Returns
    -------
    dict
    """
    from ._report import class_name

    factor, vunit = s.volume_unit()
    return {
        "spacing": list(s.spacing),
        "unit": s.unit,
        "percentile": s.percentile,
        "tolerance": s.tolerance,
        "volume_unit": vunit,
        "series": s.series,
        "classes": [
            {
                "class": class_name(label, names),
                "id": label,
                "hausdorff": _finite(s.hausdorff[i]),
                "assd": _finite(s.assd[i]),
                "surface_dice": _finite(s.surface_dice[i]),
                "volume_gt": float(s.volume_gt[i] * factor),
                "volume_pred": float(s.volume_pred[i] * factor),
            }
            for i, label in enumerate(s.labels)
        ],
    }


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
