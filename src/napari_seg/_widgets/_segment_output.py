"""The Segment dock's job (worker) and the layers its result becomes (main thread)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._layers import GEOMETRY_KEY, labels_layer_kwargs
from ..inference.config import PredictConfig
from ..inference.events import PredictResult
from ..inference.scope import ScopePlan
from ._history import changed_positions, writable, write_undoable
from ._layers import add_labels
from ._place import Place
from ._shared import forward_events


@dataclass(frozen=True)
class Placement:
    """What the main thread needs to place a finished run's result."""

    image_name: str
    plan: ScopePlan
    place: Place  # the layer's, along the kept axes
    labels_name: str
    probabilities_name: str
    objects_name: str
    class_names: tuple[str, ...]
    class_colors: tuple[tuple[float, ...], ...]
    background: int | None = None
    geometry: dict | None = None  # a medical volume's (GEOMETRY_KEY), kept for saving


def predict_job(
    model, image, config: PredictConfig, previous=None, objects=None, members=(), *, cancel
):
    """Worker body: forward the predictor's events; stop at the next batch on ``cancel``.

    ``previous`` is ``(data, index)`` of the Labels layer the result will update, or
    None: where the result differs from ``data[index]`` is found here, so that the
    main thread writes those pixels without comparing the whole region. With
    ``objects`` (the labels' slice axes), the result's objects are numbered here too.
    ``members`` are model files read here whose probabilities are averaged with
    ``model``'s (:func:`napari_seg.models.ensemble`, which names a mismatch).
    """
    from ..inference import iter_predict
    from ..models import check_members, ensemble, load_model, read_model_spec
    from ..refine import number_objects

    if members:  # checked from the files' headers before any weight is read
        check_members([model.spec, *(read_model_spec(path) for path in members)])
        model = ensemble([model, *(load_model(path) for path in members)])
    result = yield from forward_events(iter_predict(model, image, config), cancel)
    if result is None:
        return None
    numbered = None
    if objects is not None:
        spec = model.spec
        numbered = number_objects(
            result.labels, spec.class_names, background=spec.background, slice_axes=objects
        )
    if previous is None or previous[0].dtype != result.labels.dtype:
        return Segmented(result, objects=numbered)
    data, index = previous
    changed = changed_positions(result.labels, data[index])
    return Segmented(result, changed, data, objects=numbered)


@dataclass(frozen=True)
class Segmented:
    """A finished run: its result and, when it updates a layer, where it differs from
    ``compared`` (the layer's data it read; None: compare when writing)."""

    result: PredictResult
    changed: tuple[np.ndarray, ...] | None = None
    compared: object = None
    objects: np.ndarray | None = None  # each object its own id, when asked


def layer_to_update(viewer, name: str, plan: ScopePlan, update: bool):
    """The Labels layer named ``name`` whose pixels a run's result replaces (with
    ``update``, when its shape fits and its array takes writes: not one read lazily
    from a file), or None (add one)."""
    layers = viewer.layers
    existing = layers[name] if name in layers else None  # noqa: SIM401
    if (
        update
        and existing is not None
        and existing.data.shape == plan.labels_shape
        and writable(existing.data)
    ):
        return existing
    return None


def write_labels(viewer, window, run: Placement, done: Segmented, update: bool):
    """Write a run's labels into the layer it updates (one undoable step) or a new
    Labels layer placed as its image; the layer."""
    result = done.result
    existing = layer_to_update(viewer, run.labels_name, run.plan, update)
    if existing is not None and existing.data.dtype == result.labels.dtype:
        # One undoable step: Ctrl+Z brings back the previous output (and any painting).
        # The pixels to write were found in the worker, unless the layer's data was
        # replaced meanwhile.
        changed = done.changed if existing.data is done.compared else None
        write_undoable(existing, run.plan.labels_index, result.labels, changed=changed)
        if not Place.of(existing).matches(run.place):  # the image was moved since
            run.place.apply(existing)
        return existing
    whole = all(i == slice(None) for i in run.plan.labels_index)
    if whole:
        data = result.labels
    else:
        data = np.zeros(run.plan.labels_shape, dtype=result.labels.dtype)
        data[run.plan.labels_index] = result.labels
    kwargs = labels_layer_kwargs(run.labels_name, run.class_names, run.class_colors, run.background)
    if run.geometry is not None:
        kwargs["metadata"][GEOMETRY_KEY] = run.geometry
    return add_labels(
        viewer,
        data,
        window=window,
        **run.place.kwargs(),
        **kwargs,
    )


def write_objects(viewer, window, run: Placement, objects: np.ndarray) -> None:
    """Replace the objects layer of this image and model with a new one."""
    data = np.zeros(run.plan.labels_shape, dtype=objects.dtype)
    data[run.plan.labels_index] = objects
    if run.objects_name in viewer.layers:
        viewer.layers.remove(run.objects_name)
    metadata = {} if run.geometry is None else {GEOMETRY_KEY: run.geometry}
    add_labels(
        viewer,
        data,
        window=window,
        name=run.objects_name,
        metadata=metadata,
        **run.place.kwargs(),
    )


def write_probabilities(viewer, run: Placement, result: PredictResult) -> None:
    """Replace the probabilities layer of this image and model with a new one."""
    place = run.place.shifted(run.plan.origin).with_leading_axis()
    # Axes fixed by the scope (e.g. the current slice) become length-1 axes again,
    # so the region lines up with the image at its place in the stack.
    fixed = [1 + i for i, idx in enumerate(run.plan.labels_index) if isinstance(idx, int)]
    probs = np.expand_dims(result.probabilities, axis=fixed) if fixed else result.probabilities
    if run.probabilities_name in viewer.layers:
        viewer.layers.remove(run.probabilities_name)
    viewer.add_image(
        probs,
        name=run.probabilities_name,
        **place.kwargs(),
        contrast_limits=(0.0, 1.0),
        colormap="magma",
    )
