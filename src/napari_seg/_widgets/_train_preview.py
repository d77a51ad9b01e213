"""Train dock, preview: the part of the view a run predicts every few seconds, and
where its labels are shown.

The preview is the plane on screen (napari's displayed axes, a transposed view's
too), the region of it in the canvas, every channel of the run; a 3D run reads the
slab of slices around it along its depth. Its labels lie where napari shows that
plane of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arrays.axes import normalise_axes
from ..arrays.screen import view_axes
from ..training.config import TrainingConfig
from ._layers import full_resolution, viewer_position, visible_region
from ._place import Place

#: Slices around the current one that a 3D run's preview predicts.
PREVIEW_DEPTH = 32


@dataclass(frozen=True, eq=False)
class PreviewView:
    """What a run's preview predicts and how its labels are shown.

    Parameters
    ----------
    image : ndarray
        The region predicted, its axes in the layer's order, channels last.
    place : Place
        The placement of the labels shown.
    origin : tuple of int
        The layer index of the first pixel of the labels shown, along their axes.
    take : tuple of int or None
        A 3D run's slab: the axis of the prediction and the index along it of the
        slice on screen; None for a plane.
    expand : tuple of int
        Where the plane shown takes length-1 axes (placed at its slice along every
        axis of the layer); empty for a plane placed along its own two axes.
    """

    image: np.ndarray
    place: Place
    origin: tuple[int, ...]
    take: tuple[int, int] | None = None
    expand: tuple[int, ...] = ()

    def shown(self, labels: np.ndarray) -> np.ndarray:
        """The labels layer's data for the run's prediction ``labels`` of ``image``.

        Parameters
        ----------
        labels : ndarray

        Returns
        -------
        ndarray
        """
        if self.take is not None:
            labels = np.take(labels, self.take[1], axis=self.take[0])
        return np.expand_dims(labels, self.expand) if self.expand else labels


def sample_axes(ndim: int, config: TrainingConfig) -> list[int]:
    """The axes of one plane (a 3D run's volume) of an image of ``ndim`` axes trained
    with ``config``: neither its channel axis nor its stack axes.

    Parameters
    ----------
    ndim : int
        The image's axes (an RGB layer's colour axis included).
    config : TrainingConfig

    Returns
    -------
    list of int
    """
    stacked = [] if config.axis is None else normalise_axes(config.axis, ndim, "axis")
    return [a for a in range(ndim) if a != config.channel_axis and a not in stacked]


def preview_view(viewer, layer, config: TrainingConfig, depth: int = PREVIEW_DEPTH) -> PreviewView:
    """The preview of a run of ``config`` on ``layer``, as the viewer shows it now.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    layer : napari.layers.Image
    config : TrainingConfig
        The run's (its channel and stack axes name the layer's data axes).
    depth : int
        Slices of a 3D run's slab.

    Returns
    -------
    PreviewView
    """
    data = full_resolution(layer)
    displayed, step = viewer_position(viewer, layer)
    plane, _ = view_axes(displayed)
    channel = config.channel_axis
    index: list = [slice(None)] * data.ndim  # an RGB layer's colours: beyond its steps
    for a, at in enumerate(step):
        if a != channel:
            index[a] = at
    rows, cols = visible_region(viewer, layer, plane)
    index[plane[0]], index[plane[1]] = rows, cols
    origin = list(index)
    take = None
    slab = [a for a in sample_axes(data.ndim, config) if a not in plane]
    if slab:  # a 3D run: the slices around the current one
        (axis,) = slab
        at, size = step[axis], data.shape[axis]
        start = max(0, min(at - depth // 2, size - depth))
        index[axis] = slice(start, min(size, start + depth))
        take = (sorted([*plane, axis]).index(axis), at - start)
    image = np.asarray(data[tuple(index)])
    if channel is not None:  # channels last
        image = np.moveaxis(image, sum(isinstance(i, slice) for i in index[:channel]), -1)
    axes = [a for a in range(layer.ndim) if a != channel]  # the labels' axes
    flat = Place.of(layer, plane)
    if len(displayed) == 2 and plane == axes[-2:] and flat.note is None:
        starts = (rows.start, cols.start)
        return PreviewView(image, flat.shifted(starts), starts, take)
    # a transposed or 3D view, or a turn mixing the plane with another axis: the
    # plane is placed along every axis, at its slice
    at_slice = tuple(i.start if isinstance(i, slice) else i for i in (origin[a] for a in axes))
    expand = tuple(i for i, a in enumerate(axes) if a not in plane)
    place = Place.of(layer, axes).shifted(at_slice)
    return PreviewView(image, place, at_slice, take, expand)
