"""An image's spacing from a per-axis scale (a napari layer's, an OME-Zarr image's, a
file's transform) and the length unit it is in."""

from __future__ import annotations

from collections.abc import Sequence


def spacing_from_scale(
    scale: Sequence[float], axes: Sequence[int], units: Sequence[str | None] | None = None
) -> tuple[float, ...] | None:
    """The image's spacing along ``axes`` from its per-axis ``scale`` (a napari layer's,
    an OME-Zarr image's), or None when every one of them is 1.

    A scale of 1 along every axis is the default of napari and of OME-Zarr writers:
    it says nothing about the voxel size, so it never causes resampling. When
    ``units`` gives those axes different length units (a napari layer's ``units``:
    z in micrometres, y and x in nanometres), the spacing is expressed in the last
    one's (``_units.common_length_unit``), as for an OME-Zarr image's axes.

    Parameters
    ----------
    scale : sequence of float
        One value per array axis.
    axes : sequence of int
        The axes the model sees.
    units : sequence of str, optional
        The unit of each array axis by name (``"micrometer"``; napari's default
        ``"pixel"`` is no length unit and converts nothing).

    Returns
    -------
    tuple of float or None
    """
    from .._units import in_one_unit

    spacing = tuple(float(scale[a]) for a in axes)
    if units is not None:
        spacing, _ = in_one_unit(spacing, [units[a] for a in axes])
    return None if all(s == 1.0 for s in spacing) else spacing


def spacing_and_unit(
    scale: Sequence[float], axes: Sequence[int], units: Sequence[str | None] | None
) -> tuple[tuple[float, ...] | None, str | None]:
    """:func:`spacing_from_scale` and the one length unit that spacing is in
    (``_units.length_unit``): None when ``units`` is None or names no length unit
    for one of ``axes`` (napari's ``"pixel"``, a file axis without a unit).

    Parameters
    ----------
    scale : sequence of float
    axes : sequence of int
    units : sequence of str or None, or None
        The unit of each array axis by name (a napari layer's ``units``, a file's
        transform units).

    Returns
    -------
    spacing : tuple of float or None
    unit : str or None
    """
    from .._units import length_unit

    spacing = spacing_from_scale(scale, axes, units)
    if spacing is None or units is None:
        return spacing, None
    return spacing, length_unit([units[a] for a in axes])
