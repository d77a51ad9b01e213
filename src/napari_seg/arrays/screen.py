"""The axes napari's view shows of a layer, and what a model steps through there.

The plane on screen is the last two displayed axes; napari's 3D view shows a depth
too. A 2D model steps through every other non-channel axis; a 3D model's volume
takes one more (:func:`volume_depth`). Used by Segment's and Refine's scopes, the
Train dock's stack axes and preview, and Evaluate's per-slice axis.
"""

from __future__ import annotations

from collections.abc import Sequence


def view_axes(displayed: Sequence[int]) -> tuple[list[int], int | None]:
    """The plane napari shows (the last two displayed axes) and, in its 3D view (three
    displayed axes), the depth on screen (the first of them; else None).

    Parameters
    ----------
    displayed : sequence of int

    Returns
    -------
    plane : list of int
    depth : int or None

    Examples
    --------
    >>> view_axes((1, 2)), view_axes((0, 1, 2))
    (([1, 2], None), ([1, 2], 0))
    """
    shown = [int(a) for a in displayed][-3:]
    return shown[-2:], shown[0] if len(shown) == 3 else None


def volume_depth(
    axes: Sequence[int], plane: Sequence[int], shown_depth: int | None = None
) -> int | None:
    """The axis a 3D model takes besides the plane on screen, to make a volume.

    The depth napari's 3D view shows; else, when the plane lies in the last three of
    ``axes`` (a ``...ZYX`` layer, a transposed view's too), the third of them; else
    the last slider axis before the plane. None when there is none (a plane).

    Parameters
    ----------
    axes : sequence of int
        The layer's axes other than its channels, in order.
    plane : sequence of int
        The two axes of the plane on screen.
    shown_depth : int, optional
        The depth of napari's 3D view.

    Returns
    -------
    int or None

    Examples
    --------
    >>> volume_depth([0, 1, 2, 3], [2, 3]), volume_depth([0, 1, 2], [0, 2])
    (1, 1)
    """
    sliders = [a for a in axes if a not in plane]
    if shown_depth is not None and shown_depth in sliders:
        return shown_depth
    last = list(axes)[-3:]
    if len(last) == 3 and set(plane) <= set(last):
        return next(a for a in last if a not in plane)
    before = [a for a in sliders if a < min(plane)]
    return before[-1] if before else None


def stack_axes(
    ndim: int, *, displayed: Sequence[int], channel_axis: int | None, spatial_dims: int = 2
) -> int | tuple[int, ...] | None:
    """The axes a model steps through in a layer of ``ndim`` axes: its sliders' (a 3D
    model's volumes take a depth: :func:`volume_depth`, as
    :func:`~napari_seg.inference.scope.plan_scope` takes it).

    Parameters
    ----------
    ndim : int
        The layer's axes (the RGB axis included).
    displayed : sequence of int
        Axes shown in napari's canvas; the last two are the plane (in napari's 3D
        view the first of three is a depth the model steps through).
    channel_axis : int or None
    spatial_dims : {2, 3}
        The model's dimensionality.

    Returns
    -------
    int, tuple of int or None
        The axes neither in the plane (nor a 3D model's depth) nor the channels (one as
        an int, several as a tuple: a TZYX layer's T and Z for a 2D model); None for a
        single plane or volume.
    """
    plane, depth = view_axes(displayed)
    stepped = [a for a in range(ndim) if a not in plane and a != channel_axis]
    if spatial_dims == 3:
        third = volume_depth([a for a in range(ndim) if a != channel_axis], plane, depth)
        if third is not None:
            stepped.remove(third)
    if not stepped:
        return None
    return stepped[0] if len(stepped) == 1 else tuple(stepped)
