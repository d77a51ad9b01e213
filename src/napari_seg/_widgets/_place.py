"""Where a layer's pixels lie in napari's world, for the layers made from it.

A napari layer maps its pixel indices to the world by ``affine @ (rotate @ shear @
diag(scale) @ index + translate)``; the transform tool of the layer controls edits
``affine``, readers set any of them. A layer made from another (labels from an
image, an error overlay, a refined copy, a preview) is given the same five,
restricted to the axes it keeps, so that it lies on its source wherever the user
moved it. Units and axis names (a medical volume's "t", "z") go with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .._napari_write import shear_matrix, turn_matrix
from ._layers import unit_names


@dataclass(frozen=True, eq=False)
class Place:
    """Napari's placement of a layer along some of its axes.

    Parameters
    ----------
    scale, translate : tuple of float
    rotate, shear : ndarray or None
        Square matrices (``shear`` upper triangular with ones on its diagonal);
        None for the identity.
    affine : ndarray or None
        The homogeneous world transform applied after the others; None for the
        identity.
    units : tuple of str or None
        Napari's units per axis, or None where napari has none.
    axis_labels : tuple of str or None
        The axes' names where the layer gives them (napari's ``axis_labels``: "t",
        "z" of a medical volume), None for napari's own numbering.
    note : str or None
        Why the rotation, shear or affine were left out (they mix a kept axis with
        one left out), or None.
    """

    scale: tuple[float, ...]
    translate: tuple[float, ...]
    rotate: np.ndarray | None = None
    shear: np.ndarray | None = None
    affine: np.ndarray | None = None
    units: tuple[str, ...] | None = None
    axis_labels: tuple[str, ...] | None = None
    note: str | None = None

    @classmethod
    def of(
        cls, layer, axes: Sequence[int] | None = None, factors: Sequence[float] | None = None
    ) -> Place:
        """The placement of ``layer`` along ``axes`` (default all; negative counts
        from the last), with the scale multiplied by ``factors`` (per kept axis: a
        coarser resolution level's pixel size).

        Parameters
        ----------
        layer : napari layer
        axes : sequence of int, optional
        factors : sequence of float, optional

        Returns
        -------
        Place
        """
        ndim = len(layer.scale)
        keep = list(range(ndim)) if axes is None else [int(a) % ndim for a in axes]
        scale = np.asarray(layer.scale, dtype=float)[keep]
        if factors is not None:
            scale = scale * np.asarray(factors, dtype=float)
        matrices = {name: _matrix(layer, name, ndim) for name in ("rotate", "shear", "affine")}
        note = None
        if any(_mixes(m, keep, ndim) for m in matrices.values()):
            note = (
                f"{layer.name}'s rotation, shear or affine transform mixes the axes kept "
                "with the others: the result is placed by scale and translate alone"
            )
            matrices = dict.fromkeys(matrices)
        else:
            matrices = {k: _restrict(m, keep, ndim) for k, m in matrices.items()}
        return cls(
            scale=tuple(float(s) for s in scale),
            translate=tuple(float(layer.translate[a]) for a in keep),
            units=unit_names(layer, keep),
            axis_labels=_axis_names(layer, keep),
            note=note,
            **matrices,
        )

    def kwargs(self) -> dict:
        """Keyword arguments for a napari layer's constructor."""
        out: dict = {"scale": self.scale, "translate": self.translate}
        for name in ("rotate", "shear", "affine"):
            matrix = getattr(self, name)
            if matrix is not None:
                out[name] = matrix
        if self.units is not None:
            out["units"] = self.units
        if self.axis_labels is not None:
            out["axis_labels"] = self.axis_labels
        return out

    def apply(self, layer) -> None:
        """Place ``layer`` (of as many axes) here: its scale, translate, rotation, shear,
        affine and units become these.

        Parameters
        ----------
        layer : napari layer
        """
        n = len(self.scale)
        layer.scale = self.scale
        layer.translate = self.translate
        layer.rotate = np.eye(n) if self.rotate is None else self.rotate
        layer.shear = np.eye(n) if self.shear is None else self.shear
        layer.affine = np.eye(n + 1) if self.affine is None else self.affine
        if self.units is not None and hasattr(layer, "units"):
            layer.units = self.units
        if self.axis_labels is not None and hasattr(layer, "axis_labels"):
            layer.axis_labels = self.axis_labels

    def shifted(self, origin: Sequence[float]) -> Place:
        """The placement of the region whose first pixel is at index ``origin``.

        Parameters
        ----------
        origin : sequence of float
            Per axis.

        Returns
        -------
        Place
        """
        step = np.asarray(self.scale) * np.asarray(origin, dtype=float)
        step = turn_matrix(self.rotate, self.shear, len(self.scale)) @ step
        return replace(self, translate=tuple(float(t) for t in np.add(self.translate, step)))

    def with_leading_axis(self, unit: str = "pixel") -> Place:
        """The placement with a new first axis of scale 1 at 0 (the classes of a
        probabilities layer), its unit ``unit``."""
        grow = {name: _leading(getattr(self, name)) for name in ("rotate", "shear", "affine")}
        return replace(
            self,
            scale=(1.0, *self.scale),
            translate=(0.0, *self.translate),
            units=None if self.units is None else (unit, *self.units),
            axis_labels=None if self.axis_labels is None else ("class", *self.axis_labels),
            **grow,
        )

    def matches(self, other: Place) -> bool:
        """Whether ``other`` places pixels where this one does (within rounding)."""
        return all(
            np.allclose(a, b)
            for a, b in zip(self._matrix_parts(), other._matrix_parts(), strict=True)
        )

    def _matrix_parts(self) -> tuple[np.ndarray, ...]:
        n = len(self.scale)
        eye = np.eye(n)
        return (
            np.asarray(self.scale),
            np.asarray(self.translate),
            eye if self.rotate is None else self.rotate,
            eye if self.shear is None else self.shear,
            np.eye(n + 1) if self.affine is None else self.affine,
        )


def _matrix(layer, name: str, ndim: int) -> np.ndarray | None:
    """The layer's ``rotate``, ``shear`` or ``affine`` as a full matrix, or None where
    it is the identity."""
    value = getattr(layer, name, None)
    if value is None:
        return None
    if name == "affine":
        value = getattr(value, "affine_matrix", value)
    value = shear_matrix(value, ndim) if name == "shear" else np.asarray(value, dtype=float)
    return None if np.allclose(value, np.eye(len(value))) else value


def _mixes(matrix: np.ndarray | None, keep: list[int], ndim: int) -> bool:
    """Whether the linear part of ``matrix`` couples an axis of ``keep`` with one left
    out."""
    if matrix is None or len(keep) == ndim:
        return False
    linear = matrix[:ndim, :ndim]  # an affine's translation column does not couple
    out = [a for a in range(ndim) if a not in keep]
    return bool(np.any(linear[np.ix_(keep, out)]) or np.any(linear[np.ix_(out, keep)]))


def _restrict(matrix: np.ndarray | None, keep: list[int], ndim: int) -> np.ndarray | None:
    """``matrix`` along the axes of ``keep`` (an affine keeps its translation)."""
    if matrix is None:
        return None
    rows = [*keep, ndim] if len(matrix) == ndim + 1 else keep
    return matrix[np.ix_(rows, rows)]


def _leading(matrix: np.ndarray | None) -> np.ndarray | None:
    """``matrix`` with a new first axis that it leaves as it is."""
    if matrix is None:
        return None
    out = np.eye(len(matrix) + 1)
    out[1:, 1:] = matrix
    return out


def placed_apart(layer, other, use: str, axes: Sequence[int] | None = None) -> str | None:
    """The note that ``layer`` and ``other`` are placed differently in the viewer, or
    None when they lie on each other.

    Their last axes are compared (as many as the one with fewer has); ``axes``
    names ``layer``'s spatial axes when it has others (a channel axis).

    Parameters
    ----------
    layer, other : napari layer
    use : str
        What the job does with their pixels ("compared", "paired").
    axes : sequence of int, optional

    Returns
    -------
    str or None
    """
    mine = list(range(len(layer.scale))) if axes is None else [int(a) for a in axes]
    theirs = list(range(len(other.scale)))
    k = min(len(mine), len(theirs))
    if Place.of(layer, mine[len(mine) - k :]).matches(Place.of(other, theirs[len(theirs) - k :])):
        return None
    return (
        f"{layer.name} and {other.name} are placed differently in the viewer (scale, "
        f"translate, rotation or affine): their pixels are {use} index by index, not "
        "where they are shown"
    )


def window_grids(labels, layer) -> tuple | None:
    """The medical volume geometries of ``labels`` and ``layer`` (the reader's, kept
    under ``GEOMETRY_KEY``) when both are 3D volumes that record one and their shapes
    differ: a job then places the labels on the layer's grid when they cover a window
    of it (a cropped 3D Slicer segmentation, a DICOM SEG of some slices), or crops the
    layer to them, or refuses them (:func:`~napari_seg.medical.place_on_grid`,
    :func:`~napari_seg.medical.crop_to_grid`); None for layers paired index by index.

    Parameters
    ----------
    labels, layer : napari layer

    Returns
    -------
    tuple of VolumeGeometry, or None

    Raises
    ------
    ValueError
        For a recorded geometry that is not one.
    """
    from .._layers import GEOMETRY_KEY
    from ..medical import VolumeGeometry
    from ._layers import full_resolution

    recorded = [getattr(x, "metadata", {}).get(GEOMETRY_KEY) for x in (labels, layer)]
    shapes = [tuple(full_resolution(x).shape) for x in (labels, layer)]
    if not all(isinstance(r, dict) for r in recorded) or shapes[0] == shapes[1]:
        return None
    if len(shapes[0]) != 3 or len(shapes[1]) != 3:
        return None
    return VolumeGeometry.from_metadata(recorded[0]), VolumeGeometry.from_metadata(recorded[1])


def _axis_names(layer, axes: list[int]) -> tuple[str, ...] | None:
    """``layer``'s axis names along ``axes`` when it names any (a reader's "t", "z"),
    else None (napari numbers unnamed axes "-3", "-2"...: a layer made from it keeps
    napari's own numbering)."""
    labels = getattr(layer, "axis_labels", None)
    if labels is None or all(str(name).lstrip("-").isdigit() for name in labels):
        return None
    return tuple(str(labels[a]) for a in axes)
