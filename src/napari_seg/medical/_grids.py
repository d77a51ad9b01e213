"""When two volumes' voxels pair: the same grid (:func:`check_same_grid`), or one a
window of the other's grid (:func:`place_on_grid`: a segmentation cropped to its
segments placed on its image's grid; :func:`crop_to_grid`: the image's voxels under
it), compared through each array's own voxel-to-world affine."""

from __future__ import annotations

import numpy as np

from ._geometry import VolumeGeometry


def check_same_grid(
    a: VolumeGeometry | None, b: VolumeGeometry | None, names: tuple[str, str]
) -> None:
    """Refuse two volumes whose voxels lie on different grids in the world.

    Files paired voxel by voxel (a prediction and its ground truth, an image and its
    labels) must share a grid: same shape, voxel size, origin and axis directions,
    within 1% of a voxel (headers round to float32) and 0.001 in direction cosines.
    Each file is read in its own orientation, so a pair on different grids gave
    numbers that held neither voxel by voxel nor in the world. A file without a
    medical geometry (None: a TIFF, say) is not compared.

    Parameters
    ----------
    a, b : VolumeGeometry or None
    names : tuple of str
        The two files' names, for the message.

    Raises
    ------
    ValueError
        Naming the files and how their grids differ.
    """
    if a is None or b is None:
        return
    differences = []
    if a.array_shape != b.array_shape:
        differences.append(f"shape {a.array_shape} against {b.array_shape}")
    elif a.unit != b.unit:
        differences.append(f"unit {a.unit} against {b.unit}")
    else:
        tolerance = 0.01 * min(*a.spacing, *b.spacing)
        if not np.allclose(a.spacing, b.spacing, rtol=0, atol=tolerance):
            differences.append(f"voxel size {_rounded(a.spacing)} against {_rounded(b.spacing)}")
        if not np.allclose(a.origin, b.origin, rtol=0, atol=tolerance):
            differences.append(f"origin {_rounded(a.origin)} against {_rounded(b.origin)}")
        if not np.allclose(_directions(a), _directions(b), rtol=0, atol=1e-3):
            differences.append("the directions of their axes")
    if differences:
        raise ValueError(
            f"{names[0]} and {names[1]} lie on different voxel grids "
            f"({'; '.join(differences)}): resample one onto the other's grid first"
        )


def place_on_grid(
    labels: np.ndarray,
    geometry: VolumeGeometry,
    target: VolumeGeometry,
    names: tuple[str, str],
    *,
    drop_outside: bool = False,
) -> np.ndarray:
    """``labels`` (a ``(z, y, x)`` array on ``geometry``'s grid) on ``target``'s grid:
    as they are on the same grid; on a window of it (the same voxel size, unit and
    axis directions, the origin a whole number of voxels away: a 3D Slicer
    segmentation cropped to its segments, a DICOM SEG of the slices it segments)
    padded with 0, which is what a segmentation says outside its extent. Refused as
    :func:`check_same_grid` refuses otherwise, and when labelled voxels would lie
    outside ``target``'s grid unless ``drop_outside``.

    Parameters
    ----------
    labels : ndarray
    geometry, target : VolumeGeometry
    names : tuple of str
        The labels' file and the target's, for a message.
    drop_outside : bool
        Leave out the labelled voxels outside ``target``'s grid (an image cropped to a
        region of interest, trained on with the labels of the whole volume) instead of
        refusing them; refused still when none of them lies on it.

    Returns
    -------
    ndarray
        ``target.array_shape``, ``labels``' type.

    Raises
    ------
    ValueError
        Naming the files and how their grids differ.
    """
    start = _window_start(geometry, target)
    if start is None or (not any(start) and geometry.array_shape == target.array_shape):
        check_same_grid(geometry, target, names)  # the same grid, or why not
        return labels
    source = tuple(slice(max(0, -a), min(n, m - a)) for a, n, m in
                   zip(start, labels.shape, target.array_shape, strict=True))  # fmt: skip
    inside = tuple(slice(s.start + a, s.stop + a) for s, a in zip(source, start, strict=True))
    placed = np.zeros(target.array_shape, labels.dtype)
    if all(s.stop > s.start for s in source):
        placed[inside] = labels[source]
    kept, labelled = np.count_nonzero(placed), np.count_nonzero(labels)
    if drop_outside and labelled and not kept:
        raise ValueError(
            f"none of the labelled voxels of {names[0]} lies on the grid of {names[1]}"
        )
    if kept != labelled and not drop_outside:  # labels outside the target
        check_same_grid(geometry, target, names)  # how the grids differ
        raise ValueError(f"{names[0]} labels voxels outside the grid of {names[1]}")
    return placed


def crop_to_grid(
    array: np.ndarray, geometry: VolumeGeometry, target: VolumeGeometry, names: tuple[str, str]
) -> np.ndarray:
    """The window of ``array`` (on ``geometry``'s grid) that ``target``'s grid covers,
    when ``target`` is a window of it (a segmentation cropped to its segments: its
    image's voxels under it, to refine it with); ``array`` as it is on the same grid.
    The inverse of :func:`place_on_grid`.

    Parameters
    ----------
    array : array-like
        ``(..., z, y, x)``: leading axes (channels first, as napari-seg reads volumes)
        are kept. Sliced, not copied (a dask array stays lazy).
    geometry, target : VolumeGeometry
    names : tuple of str
        The array's file and the target's, for a message.

    Returns
    -------
    array-like
        ``(..., *target.array_shape)``.

    Raises
    ------
    ValueError
        As :func:`check_same_grid` does, and naming the target and where its grid
        reaches outside ``array``'s.
    """
    start = _window_start(target, geometry)
    if start is None or (not any(start) and geometry.array_shape == target.array_shape):
        check_same_grid(geometry, target, names)  # the same grid, or why not
        return array
    stop = [a + n for a, n in zip(start, target.array_shape, strict=True)]
    if min(start) < 0 or any(b > n for b, n in zip(stop, geometry.array_shape, strict=True)):
        raise ValueError(
            f"{names[1]} reaches outside the grid of {names[0]}: its voxels are (z, y, x) "
            f"{tuple(start)} to {tuple(b - 1 for b in stop)} of {names[0]}'s "
            f"{geometry.array_shape}"
        )
    index: tuple = (Ellipsis, *(slice(a, b) for a, b in zip(start, stop, strict=True)))
    return array[index]


def pair_on_grid(
    a: np.ndarray,
    a_geometry: VolumeGeometry,
    b: np.ndarray,
    b_geometry: VolumeGeometry,
    names: tuple[str, str],
) -> tuple[np.ndarray, np.ndarray]:
    """Two label volumes (a prediction and its ground truth) on one grid: the one with
    fewer voxels placed on the other's grid (:func:`place_on_grid`) when it covers a
    window of it, 0 elsewhere; both as they are on the same grid.

    Parameters
    ----------
    a, b : ndarray
        ``(z, y, x)`` arrays on ``a_geometry``'s and ``b_geometry``'s grids.
    a_geometry, b_geometry : VolumeGeometry
    names : tuple of str
        ``a``'s and ``b``'s names, for a message.

    Returns
    -------
    tuple of ndarray
        ``(a, b)`` on one grid; the one placed is a new array, the other is returned
        as it is (so ``returned[0] is a`` says which grid they share).

    Raises
    ------
    ValueError
        As :func:`place_on_grid` does.
    """
    if np.size(a) <= np.size(b):
        return place_on_grid(a, a_geometry, b_geometry, names), b
    return a, place_on_grid(b, b_geometry, a_geometry, names[::-1])


def _window_start(geometry: VolumeGeometry, target: VolumeGeometry) -> list[int] | None:
    """The ``(z, y, x)`` index on ``target``'s grid of ``geometry``'s first voxel when
    its grid is one of ``target``'s shifted by whole voxels (the same voxel size, unit
    and axis directions), else None."""
    into = np.linalg.inv(_array_affine(target)) @ _array_affine(geometry)  # (x, y, z) indices
    shift = np.round(into[:3, 3])
    window = (
        geometry.unit == target.unit
        and np.allclose(into[:3, :3], np.eye(3), rtol=0, atol=1e-3)
        and np.allclose(into[:3, 3], shift, rtol=0, atol=0.01)
    )
    return [int(v) for v in shift[::-1]] if window else None


def _array_affine(geometry: VolumeGeometry) -> np.ndarray:
    """The voxel-to-world (RAS) affine of the ``(x, y, z)`` indices of
    :meth:`VolumeGeometry.to_array`'s arrays (reversed)."""
    from nibabel import orientations as no

    return geometry.affine @ no.inv_ornt_aff(geometry.transform, geometry.source_shape)


def _directions(geometry: VolumeGeometry) -> np.ndarray:
    """The world (RAS) directions of the ``(x, y, z)`` axes of :meth:`VolumeGeometry.to_array`'s
    arrays, as unit vectors (columns)."""
    axes = _array_affine(geometry)[:3, :3]
    return axes / np.sqrt((axes**2).sum(axis=0))


def _rounded(values) -> tuple[float, ...]:
    return tuple(round(float(v), 4) + 0.0 for v in values)  # + 0.0: no -0.0
