"""Changing a model's class list: a wider output head for new classes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .spec import default_class_colors
from .wrapper import SegmentationModel


def with_classes(
    model: SegmentationModel, num_classes: int, *, class_names: Sequence[str] = ()
) -> SegmentationModel:
    """A copy of ``model`` with ``num_classes`` outputs (at least as many as now).

    Every weight is copied; the tensors whose size depends on the class count
    (output convolutions, deep-supervision heads) keep the old classes' slices
    and initialise the new ones as a fresh model would. Existing classes keep
    their names and colours.

    Parameters
    ----------
    model : SegmentationModel
    num_classes : int
    class_names : sequence of str
        Names of the classes, from id 0 (the new ones default to "class N").

    Returns
    -------
    SegmentationModel

    Raises
    ------
    ValueError
        If ``num_classes`` is smaller than the model's.
    """
    from .registry import create_model

    old = model.spec
    if num_classes < old.num_classes:
        raise ValueError(
            f"num_classes can only grow: the model has {old.num_classes}, got {num_classes}"
        )
    if num_classes == old.num_classes:
        return model
    names = list(old.class_names) + [f"class {i}" for i in range(old.num_classes, num_classes)]
    names[: len(class_names)] = list(class_names)[:num_classes]
    colors = list(old.class_colors) + list(default_class_colors(num_classes)[old.num_classes :])
    spec = old.with_(num_classes=num_classes, class_names=tuple(names), class_colors=tuple(colors))
    grown = create_model(spec.validate()).to(model.device)
    target = grown.state_dict()
    with torch.no_grad():
        for key, value in model.state_dict().items():
            new = target[key]
            if new.shape == value.shape:
                new.copy_(value)
            else:  # the class axis grew: keep the trained slice
                new[tuple(slice(0, n) for n in value.shape)].copy_(value)
    return grown
