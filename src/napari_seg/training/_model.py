"""The model a run trains: resumed, fine-tuned (with more classes) or new."""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Any, cast

import torch

from ..models.spec import Normalization
from .config import TrainingConfig
from .instances import INSTANCE_CLASS_NAMES

if TYPE_CHECKING:
    from ..models.wrapper import SegmentationModel


def base_model(
    config: TrainingConfig,
    model: SegmentationModel | None,
    resume: str | os.PathLike[str] | None,
    device: torch.device,
) -> tuple[SegmentationModel | None, dict[str, Any]]:
    """The model to start from (None for a new one) and where it came from."""
    from ..models import load_model

    if resume is not None:
        return load_model(resume, device=device), {"resumed_from": str(resume)}
    if model is not None:  # a copy: the caller's model is never changed
        return copy.deepcopy(model).to(device), {"fine_tuned_from": "the model handed to the run"}
    if config.from_model:
        source = {"fine_tuned_from": config.from_model}
        return load_model(config.from_model, device=device), source
    return None, {}


def run_dims(config: TrainingConfig, base: SegmentationModel | None = None) -> int:
    """A run's dimensionality: the model's when fine-tuning ``base`` (``config.dims``
    must agree), else ``dims``, else the ``from_model`` file's (read from its card
    only, before anything is loaded), else 2.

    Parameters
    ----------
    config : TrainingConfig
    base : SegmentationModel, optional
        The model the run starts from, once loaded.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        When ``config.dims`` contradicts ``base``.
    """
    if base is not None:
        dims = base.spec.spatial_dims
        if config.dims is not None and config.dims != dims:
            raise ValueError(
                f"dims={config.dims} but the model to fine-tune is {dims}D; leave dims unset "
                "to train it as it is"
            )
        return dims
    if config.dims is not None or config.from_model is None:
        return config.dims or 2
    from ..models import read_model_spec

    return read_model_spec(config.from_model).spatial_dims


def fit_classes(
    base: SegmentationModel | None,
    config: TrainingConfig,
    needed: int,
    in_channels: int,
    normalization: Normalization,
    device: torch.device,
) -> tuple[SegmentationModel, dict[str, Any] | None]:
    """``base`` fitted to labels with ids below ``needed``, or a new model; and its source.

    Raises
    ------
    ValueError
        If the labels use ids the model does not have (and ``grow_classes`` is off).
    """
    from ..models.heads import with_classes

    if base is None:
        return _new_model(config, needed, in_channels, normalization, device)
    have = base.spec.num_classes
    wanted = max(needed, config.num_classes or 0)
    if wanted > have and not config.grow_classes:
        raise ValueError(
            f"the labels use ids up to {needed - 1} but the model has {have} classes "
            f"(0 to {have - 1}: {', '.join(base.spec.class_names)}); relabel, or allow "
            "new classes (grow_classes) to train a wider output head"
        )
    if wanted > have:
        base = with_classes(base, wanted, class_names=config.class_names)
    if config.label0 == "background" and 0 in base.spec.untrained_classes:
        # dense labels train class 0 now
        kept = tuple(c for c in base.spec.untrained_classes if c != 0)
        base.spec = base.spec.with_(untrained_classes=kept)
    return base, None


def _new_model(
    config: TrainingConfig,
    needed: int,
    in_channels: int,
    normalization: Normalization,
    device: torch.device,
) -> tuple[SegmentationModel, dict[str, Any]]:
    from ..models import ModelSpec, create_model
    from ..models.spec import default_class_colors

    dims = config.dims or 2
    if config.spacing is not None and len(config.spacing) != dims:
        # A volume's three sizes for a 2D model (the config takes three when a 3D
        # model may be fine-tuned): which two are the planes' is not known here.
        raise ValueError(
            f"spacing has {len(config.spacing)} sizes but a new {dims}D model records "
            f"{dims}: give the planes' two pixel sizes (rows, columns), or dims=3 for a "
            "3D model"
        )
    names = config.class_names
    if not names and config.instances is not None:
        names = INSTANCE_CLASS_NAMES[config.instances]
    num_classes = config.num_classes or max(2, needed, len(names))
    if needed > num_classes:
        raise ValueError(f"the labels use ids up to {needed - 1} but num_classes is {num_classes}")
    unlabelled = config.label0 == "unlabelled"
    if not names and unlabelled:
        # Class ids are the painted ids; id 0 is never trained.
        names = ("unlabelled",)
    if names and len(names) < num_classes:  # ids the names do not reach: "class N"
        names = (*names, *(f"class {i}" for i in range(len(names), num_classes)))
    background = config.background
    if background is None and not unlabelled:
        background = 0
    defaults = default_class_colors(num_classes, background)
    given = [tuple(c) for c in config.class_colors][:num_classes]
    colors = cast(Any, (*given, *defaults[len(given) :]))  # RGBA tuples, checked by validate
    spec = ModelSpec(
        config.architecture,
        in_channels=in_channels,
        num_classes=num_classes,
        encoder=config.encoder,
        class_names=names,
        class_colors=colors,
        normalization=normalization,
        options=config.options,
        untrained_classes=(0,) if unlabelled else (),
        background=background,
        spacing=config.spacing,
        spacing_unit=config.spacing_unit,
        spatial_dims=dims,
    ).validate()
    torch.manual_seed(config.seed)
    return create_model(spec).to(device), {"initialisation": "random", "seed": config.seed}
