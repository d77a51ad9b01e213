"""What a run trains on: the input channels and normalisation, the class count its
config or model confirms, and the data of planes or of volumes (a 3D run's patch
and batch planned from the memory budget)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..arrays.axes import normalise_axes, output_axes
from ..arrays.channels import detect_in_channels, labels_channel_axis
from ..arrays.layout import resolve_layout
from ..arrays.views import ChannelView
from ..limits import MAX_UNSTATED_CLASSES
from ..models.registry import get_architecture
from ..models.spec import Normalization
from ._model import _new_model
from ._shared import check_labels_shape, pair_names
from .config import TrainingConfig
from .data import TrainingData
from .volume import VolumeData

if TYPE_CHECKING:
    from ..models.wrapper import SegmentationModel

#: The patch of a 3D pixel classifier's data: dense labels hold out slabs this
#: thick along the first axis (sparse ones hold out annotated slices).
PIXEL_HOLD_OUT_3D = (16, 128, 128)


def kept_settings(config: TrainingConfig, base: SegmentationModel | None) -> list[str]:
    """What to say when a run fine-tunes ``base`` but ``config`` asks for a new
    model's network or normalisation (``--arch``, ``--encoder``, ``--option``,
    ``--normalization``/``--window``) other than the model's: the model keeps its
    own, which its weights were made for.

    Parameters
    ----------
    config : TrainingConfig
    base : SegmentationModel or None

    Returns
    -------
    list of str
        One message per kept setting; empty for a new model.
    """
    if base is None:
        return []
    spec = base.spec
    said = []
    asked = config.intensity_normalization()
    if asked not in (Normalization(), spec.normalization):
        said.append(
            f"fine-tuning keeps the model's normalisation ({spec.normalization.summary()}), "
            f"which its weights were made for; the one asked ({asked.summary()}) applies to "
            "new models only"
        )
    network = {
        "architecture": (config.architecture, TrainingConfig.architecture, spec.architecture),
        "encoder": (config.encoder, None, spec.encoder),
    }
    asked_net = [f"{k} {a}" for k, (a, default, own) in network.items() if a not in (default, own)]
    ranges = get_architecture(spec.architecture).options_for(spec.encoder)
    own_options = {k: r.default for k, r in ranges.items()} | dict(spec.options)
    asked_net += [f"option {k}={v!r}" for k, v in config.options.items() if own_options.get(k) != v]
    if asked_net:
        said.append(
            f"fine-tuning keeps the model's network, {spec.network}; the "
            f"{', '.join(asked_net)} asked build new models only"
        )
    return said


def input_spec(
    config: TrainingConfig, base: SegmentationModel | None, first
) -> tuple[int, Normalization]:
    """Channels and normalisation: the base model's, or from the config and the first
    image ``first``."""
    if base is not None:
        return base.spec.in_channels, base.spec.normalization
    in_channels = config.in_channels or detect_in_channels(
        first.shape, channel_axis=config.channel_axis, axis=config.axis
    )
    return in_channels, config.intensity_normalization()


def channels_from_labels(
    config: TrainingConfig, base: SegmentationModel | None, pairs
) -> TrainingConfig:
    """The config with a new model's channel axis read from the first pair's shapes
    when nothing states it: the image's axis its labels lack
    (:func:`~napari_seg.arrays.channels.labels_channel_axis`; a stack axis never is).

    Parameters
    ----------
    config : TrainingConfig
    base : SegmentationModel, optional
        The model to fine-tune (its channels are found by their count instead).
    pairs : list of (image, labels)

    Returns
    -------
    TrainingConfig
    """
    if base is not None or config.channel_axis is not None or config.in_channels:
        return config
    image, labels = pairs[0]
    ndim = len(image.shape)
    stacked = [] if config.axis is None else normalise_axes(config.axis, ndim, "axis")
    axis = labels_channel_axis(image.shape, labels.shape, exclude=stacked)
    return config if axis is None else config.with_(channel_axis=axis)


def confirmed_classes(config: TrainingConfig, base: SegmentationModel | None) -> int:
    """How many classes the config or the model to fine-tune says the run has (0:
    neither says)."""
    return max(
        config.num_classes or 0,
        len(config.class_names),
        0 if base is None else base.spec.num_classes,
    )


def is_pixel_classifier(config: TrainingConfig, base: SegmentationModel | None) -> bool:
    """Whether the run fits a pixel classifier (the base model's architecture, else
    the config's)."""
    name = base.spec.architecture if base is not None else config.architecture
    return get_architecture(name).fitted == "forest"


def volumes_of(
    pairs, names, axis: int | tuple[int, ...], channel_axis: int | None
) -> tuple[list, list[str], int | None]:
    """Each pair's volumes along its stack axes ``axis`` (a time series of volumes:
    one pair per time point), read lazily; a 3D run trains on them as on separate
    volumes.

    Parameters
    ----------
    pairs : list of (image, labels)
    names : sequence of str, optional
        The pairs' names; each volume's adds its position.
    axis : int or tuple of int
        The images' stack axes.
    channel_axis : int, optional
        The images' channel axis.

    Returns
    -------
    pairs : list of (image, labels)
    names : list of str
    channel_axis : int or None
        The channel axis of a volume's image.

    Raises
    ------
    ValueError
        For a stack axis that is the channel axis or out of range.
    """
    names = pair_names(names, len(pairs))
    out, out_names, volume_channel = [], [], channel_axis
    for (image, labels), name in zip(pairs, names, strict=True):
        ndim = len(image.shape)
        stack = sorted(normalise_axes(axis, ndim, "axis"))
        caxis = (
            None if channel_axis is None else normalise_axes(channel_axis, ndim, "channel_axis")[0]
        )
        if caxis in stack:
            raise ValueError(f"axis {axis} is the channel axis ({caxis}); choose another axis")
        check_labels_shape(
            name, labels, image, [n for a, n in enumerate(image.shape) if a != caxis]
        )
        label_stack = output_axes(stack, caxis)
        for position in np.ndindex(*(int(image.shape[a]) for a in stack)):
            where = ", ".join(f"axis {a} = {p}" for a, p in zip(stack, position, strict=True))
            out.append((_at(image, stack, position), _at(labels, label_stack, position)))
            out_names.append(f"{name} [{where}]")
        volume_channel = None if caxis is None else caxis - sum(a < caxis for a in stack)
    return out, out_names, volume_channel


def _at(array, axes: Sequence[int], position: Sequence[int]):
    """``array`` at ``position`` along ``axes``: a numpy view, else a lazy view read
    region by region (one index along an axis, as a channel is read)."""
    if isinstance(array, np.ndarray):
        index: list = [slice(None)] * array.ndim
        for a, p in zip(axes, position, strict=True):
            index[a] = int(p)
        return array[tuple(index)]
    for a, p in sorted(zip(axes, position, strict=True), reverse=True):  # last axes first
        array = ChannelView(array, a, int(p))
    return array


def run_data(
    config: TrainingConfig,
    pairs,
    base: SegmentationModel | None,
    *,
    dims: int,
    in_channels: int,
    normalization: Normalization,
    names,
    confirmed: int,
    device: torch.device,
) -> tuple[TrainingData | VolumeData, TrainingConfig]:
    """The run's data, and its config with a 3D run's planned patch and batch
    recorded (unchanged otherwise).

    Parameters
    ----------
    config : TrainingConfig
    pairs : list of (image, labels)
    base : SegmentationModel, optional
        The model to fine-tune.
    dims : {2, 3}
        Planes or volumes.
    in_channels : int
    normalization : Normalization
    names : sequence of str, optional
        The pairs' names for messages.
    confirmed : int
        Classes the config or model states (:func:`confirmed_classes`): ids up to
        that many are accepted.
    device : torch.device
        Where a 3D run's memory is measured.

    Returns
    -------
    data : TrainingData or VolumeData
    config : TrainingConfig
    """
    args: dict[str, Any] = {
        "in_channels": in_channels,
        "normalization": normalization,
        "label0": config.label0,
        "validation_fraction": config.validation_fraction,
        "channel_axis": config.channel_axis,
        "seed": config.seed,
        "names": names,
        "max_classes": max(MAX_UNSTATED_CLASSES, confirmed),  # ids a config or model states
    }
    if dims == 2:
        data = TrainingData(pairs, patch_size=config.patch_size, axis=config.axis, **args)
        return data, config
    if is_pixel_classifier(config, base):
        # Fitted on the painted voxels of windows (no patches, nothing filled in).
        patch = config.patch_3d or PIXEL_HOLD_OUT_3D
        return VolumeData(pairs, patch=patch, fill=False, **args), config
    args["fill"] = config.filled_weight > 0
    if config.patch_3d is None:
        config = _planned(config, pairs, base, in_channels, normalization, device)
    assert config.patch_3d is not None
    return VolumeData(pairs, patch=config.patch_3d, **args), config


def _planned(config, pairs, base, in_channels, normalization, device) -> TrainingConfig:
    """The config with a 3D run's patch and batch planned from the memory budget."""
    from .planning import memory_budget, plan_patch_3d, training_bytes_per_voxel

    # Memory is measured on the model to fine-tune, or on a new one of the run's
    # architecture; the class count barely matters (3: two classes trained even
    # when id 0 means "unlabelled").
    if base is None:
        probe, _ = _new_model(config, 3, in_channels, normalization, device)
    else:
        probe = base.to(device)
    shapes = [_volume_shape(image, in_channels, config.channel_axis) for image, _ in pairs]
    plan = plan_patch_3d(
        shapes,
        spacing=probe.spec.spacing,
        bytes_per_voxel=training_bytes_per_voxel(probe.net, in_channels, probe.size_multiple),
        parameter_bytes=sum(p.numel() * p.element_size() for p in probe.parameters()),
        budget_bytes=memory_budget(device, config.memory_gb),
        multiple=probe.size_multiple,
        max_batch=config.batch_size,
        cpu=device.type == "cpu",
    )
    return config.with_(patch_3d=plan.patch, batch_size=plan.batch_size)


def _volume_shape(image, in_channels: int, channel_axis: int | None) -> tuple[int, ...]:
    layout = resolve_layout(
        image.shape, in_channels=in_channels, channel_axis=channel_axis, spatial_dims=3
    )
    return layout.spatial_shape
