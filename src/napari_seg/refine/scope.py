"""Which part of a Labels layer a Refine run covers (no napari import)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..arrays.screen import view_axes

SCOPES = ("slice", "each", "volume")


@dataclass(frozen=True)
class RefineScope:
    """``index`` into the layer's array, and how to treat the indexed block.

    Attributes
    ----------
    index : tuple
        Integers fix axes, ``slice(None)`` keeps them.
    per_slice : bool
        Apply the operations to each 2D plane of the block along ``axis``.
    axis : int
        Plane axis of the (indexed) block.
    """

    index: tuple
    per_slice: bool
    axis: int


def plan_refine_scope(
    shape: Sequence[int], *, displayed: Sequence[int], step: Sequence[int], scope: str
) -> RefineScope:
    """Plan a Refine run over ``scope`` of a labels array of ``shape``.

    Parameters
    ----------
    shape : sequence of int
        Shape of the layer's data.
    displayed : sequence of int
        Layer axes shown on screen (the last two are the plane; with three, the
        first is the depth of napari's 3D view).
    step : sequence of int
        The current position along every layer axis (data coordinates).
    scope : {"slice", "each", "volume"}
        The plane on screen; every plane of the stack (2D each); or the stack as
        a volume (3D). For more than 3 axes, axes beyond the stack axis stay at
        the current position. In napari's 3D view (three displayed axes) the stack
        axis is the depth shown, and "slice" is the volume on screen, plane by plane.

    Returns
    -------
    RefineScope

    Raises
    ------
    ValueError
        For an unknown scope, fewer than 2 axes, or no 2D plane on screen.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(f"labels must have at least 2 axes, got shape {tuple(shape)}")
    plane, depth = view_axes([a for a in displayed if 0 <= a < ndim])
    if ndim == 2:
        return RefineScope((slice(None), slice(None)), False, 0)
    if len(plane) < 2:
        raise ValueError("show a 2D plane of the labels (not a 1D view) to refine it")
    hidden = [a for a in range(ndim) if a not in plane]
    if scope == "slice" and depth is None:
        index = tuple(int(step[a]) if a in hidden else slice(None) for a in range(ndim))
        return RefineScope(index, False, 0)
    # napari's 3D view shows a volume: its depth axis is the stack, and the "slice"
    # on screen is every plane of it (2D each).
    stack_axis = hidden[-1] if depth is None else depth
    index = tuple(
        int(step[a]) if a in hidden and a != stack_axis else slice(None) for a in range(ndim)
    )
    axis = sum(1 for a in range(stack_axis) if isinstance(index[a], slice))
    return RefineScope(index, scope != "volume", axis)
