"""Registry of segmentation architectures and the ``create_model`` factory.

Nothing here imports torch at module import time: listing architectures is
cheap (the GUI and ``napari-seg models`` do it), building one is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._validate import did_you_mean
from ..limits import brief
from .architecture import CLASSIC, Architecture, OptionRange
from .spec import ModelSpec, register_architecture_rules

if TYPE_CHECKING:
    from .wrapper import SegmentationModel

# Encoders from segmentation-models-pytorch that are offered in the GUI and
# tested here. All of them support dilation (needed by DeepLab heads).
SMP_ENCODERS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnext50_32x4d",
    "mobilenet_v2",
    "efficientnet-b0",
    "efficientnet-b2",
    "efficientnet-b4",
)
TORCHVISION_FCN_ENCODERS = ("resnet50", "resnet101")


_DEPTH_SMP = OptionRange(5, 3, 5, help="encoder depth (number of downsamplings)")
_DEEP_SUP = OptionRange(False, help="extra heads on intermediate decoder outputs for training")
# The pixel classifier's options, alone or inside a scribble-unet (one set of bounds:
# "Train deep model" builds the classifier of one to fit into the other).
_MAX_SIGMA = OptionRange(
    16, choices=(2, 4, 8, 16, 32), help="pixel classifier's largest filter scale (pixels)"
)
_TREES = OptionRange(16, 1, 128, help="trees of the pixel classifier's random forest")
_TREE_DEPTH = OptionRange(8, 2, 12, help="depth of each tree")

_ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "fcn",
            "FCN",
            "Fully convolutional network (Long et al. 2015): dilated ResNet backbone, "
            "1x1 classifier, bilinear upsampling.",
            "torchvision",
            "._torchvision:build_fcn",
            TORCHVISION_FCN_ENCODERS,
            "resnet50",
        ),
        Architecture(
            "unet",
            "U-Net",
            "Encoder-decoder with skip connections (Ronneberger et al. 2015); 'classic' is "
            "the from-scratch network with configurable depth and base width.",
            "napari-seg (classic) / segmentation-models-pytorch (encoders)",
            "._unet:build_unet",
            (CLASSIC, *SMP_ENCODERS),
            CLASSIC,
            {
                "depth": OptionRange(4, 2, 6, help="number of downsamplings"),
                "base_width": OptionRange(32, 4, 256, help="channels of the first level"),
            },
            encoder_options={"depth": _DEPTH_SMP},
            dims=(2, 3),
            encoders_3d=(CLASSIC,),
        ),
        Architecture(
            "unet++",
            "U-Net++",
            "U-Net with nested, dense skip pathways (Zhou et al. 2018); optional deep supervision.",
            "segmentation-models-pytorch",
            "._smp:build_unetplusplus",
            SMP_ENCODERS,
            "resnet34",
            {"depth": _DEPTH_SMP, "deep_supervision": _DEEP_SUP},
        ),
        Architecture(
            "unet3+",
            "UNet3+",
            "Full-scale skip connections between every encoder and decoder level "
            "(Huang et al. 2020), with deep supervision.",
            "napari-seg (on segmentation-models-pytorch encoders)",
            "._unet3plus:build_unet3plus",
            SMP_ENCODERS,
            "resnet34",
            {
                "depth": _DEPTH_SMP,
                "deep_supervision": OptionRange(True, help=_DEEP_SUP.help),
                "cat_channels": OptionRange(64, 8, 256, help="channels per skip path"),
            },
        ),
        Architecture(
            "attention-unet",
            "Attention U-Net",
            "U-Net whose skip connections pass through additive attention gates "
            "(Oktay et al. 2018).",
            "MONAI",
            "._monai:build_attention_unet",
            (),
            None,
            {
                "depth": OptionRange(4, 2, 6, help="number of downsamplings"),
                "base_width": OptionRange(32, 4, 256, help="channels of the first level"),
            },
            dims=(2, 3),
        ),
        Architecture(
            "dynunet",
            "DynUNet (nnU-Net)",
            "The nnU-Net network (Isensee et al. 2021): plain conv blocks with instance "
            "normalisation, pooling planned from the voxel spacing, channels capped at "
            "320, deep supervision.",
            "MONAI",
            "._monai:build_dynunet",
            (),
            None,
            {
                "depth": OptionRange(4, 2, 6, help="number of downsamplings"),
                "base_width": OptionRange(32, 4, 256, help="channels of the first level"),
                "deep_supervision": OptionRange(True, help=_DEEP_SUP.help),
            },
            dims=(2, 3),
        ),
        Architecture(
            "segresnet",
            "SegResNet",
            "Residual encoder-decoder with group normalisation (Myronenko 2018), the "
            "BraTS 2018 winner's network without its VAE branch.",
            "MONAI",
            "._monai:build_segresnet",
            (),
            None,
            {"base_width": OptionRange(16, 8, 128, help="channels of the first level")},
            dims=(2, 3),
        ),
        Architecture(
            "swin-unetr",
            "Swin UNETR",
            "Swin-transformer encoder with a convolutional U-Net decoder (Hatamizadeh et "
            "al. 2022; v2 residual blocks); random initialisation (no pretrained weights "
            "offline).",
            "MONAI",
            "._monai:build_swin_unetr",
            (),
            None,
            {
                "feature_size": OptionRange(
                    24, 12, 96, choices=(12, 24, 36, 48, 96), help="embedding channels"
                )
            },
            dims=(2, 3),
        ),
        Architecture(
            "deeplabv3",
            "DeepLabV3",
            "Atrous (dilated) encoder with atrous spatial pyramid pooling, ASPP "
            "(Chen et al. 2017).",
            "segmentation-models-pytorch",
            "._smp:build_deeplabv3",
            SMP_ENCODERS,
            "resnet34",
            {"output_stride": OptionRange(8, choices=(8, 16), help="encoder output stride")},
        ),
        Architecture(
            "deeplabv3+",
            "DeepLabV3+",
            "DeepLabV3 with a light decoder that refines boundaries with low-level "
            "features (Chen et al. 2018).",
            "segmentation-models-pytorch",
            "._smp:build_deeplabv3plus",
            SMP_ENCODERS,
            "resnet34",
            {"output_stride": OptionRange(16, choices=(8, 16), help="encoder output stride")},
        ),
        Architecture(
            "fpn",
            "FPN",
            "Feature pyramid network decoder: top-down pathway with lateral connections, "
            "merged multi-scale predictions (Lin et al. 2017; Kirillov et al. 2019).",
            "segmentation-models-pytorch",
            "._smp:build_fpn",
            SMP_ENCODERS,
            "resnet34",
            {"depth": _DEPTH_SMP},
        ),
        Architecture(
            "pixel-classifier",
            "Pixel classifier",
            "Random forest on multiscale filter features (Gaussian, gradient, Laplacian "
            "and difference of Gaussians, structure tensor and Hessian eigenvalues), "
            "fitted in seconds from sparse strokes, as in ilastik.",
            "napari-seg (filters and classifier in torch)",
            "._pixel:build_pixel_classifier",
            (),
            None,
            {
                "max_sigma": _MAX_SIGMA,
                "trees": _TREES,
                "depth": _TREE_DEPTH,
            },
            dims=(2, 3),
            fitted="forest",
        ),
        Architecture(
            "scribble-unet",
            "Scribble U-Net (auto-context)",
            "A classic U-Net that sees the image and a pixel classifier's class "
            "probabilities (auto-context, as ilastik stacks classifiers); the classifier "
            "is fitted from the annotations first, then the U-Net is trained. What "
            "'Train deep model' trains from strokes.",
            "napari-seg (classic U-Net + pixel classifier)",
            "._stacked:build_stacked",
            (),
            None,
            {
                "depth": OptionRange(4, 2, 6, help="U-Net downsamplings"),
                "base_width": OptionRange(16, 4, 256, help="U-Net channels of the first level"),
                "max_sigma": _MAX_SIGMA,
                "trees": _TREES,
                "tree_depth": _TREE_DEPTH,
            },
            intensity_augmentation=False,
        ),
    )
}


def list_architectures() -> list[Architecture]:
    """Return every registered architecture, in display order.

    Returns
    -------
    list of Architecture

    Examples
    --------
    >>> [a.name for a in list_architectures()][:3]
    ['fcn', 'unet', 'unet++']
    """
    return list(_ARCHITECTURES.values())


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by (case-insensitive) name.

    Parameters
    ----------
    name : str

    Returns
    -------
    Architecture

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if not isinstance(name, str):
        raise TypeError(f"architecture must be a string, got {type(name).__name__}")
    try:
        return _ARCHITECTURES[name.strip().lower()]
    except KeyError:
        key = name.strip().lower()
        stem = key.removesuffix("3d").removesuffix("2d").rstrip("-_ ")
        if stem != key and stem in _ARCHITECTURES:  # "unet3d": a dimensionality, not a name
            dims = key[-2]
            hint = f" ({stem} in {dims}D: {stem} with --dims {dims}, spatial_dims={dims} in Python)"
        else:
            hint = did_you_mean(key, list(_ARCHITECTURES))
        raise ValueError(
            f"unknown architecture {name!r}{hint}; valid architectures: {', '.join(_ARCHITECTURES)}"
        ) from None


def create_model(
    spec: ModelSpec | str | None = None, *, encoder_weights: str | None = None, **fields: Any
) -> SegmentationModel:
    """Build an untrained (or ImageNet-initialised) model from a spec.

    Parameters
    ----------
    spec : ModelSpec or str
        What to build; validated first. An architecture's name builds
        ``ModelSpec(spec, **fields)``; it may also be given as ``architecture=``.
    encoder_weights : {None, "imagenet"} or path, optional
        ``None`` (default) initialises randomly. ``"imagenet"`` loads ImageNet
        weights for the encoder from the local cache, downloading them when
        online. A path loads an encoder state dict from a ``.safetensors`` file
        (or a ``.pth``/``.pt`` file read with ``torch.load(weights_only=True)``).
    **fields
        :class:`ModelSpec` fields (``in_channels``, ``num_classes``, ``encoder``,
        ``spatial_dims``...) when ``spec`` is a name.

    Returns
    -------
    SegmentationModel
        The network wrapped with its spec; it pads inputs to its size multiple.

    Raises
    ------
    ValueError
        If the spec is invalid or the architecture has no encoder to load weights into.
    WeightsUnavailableError
        If requested weights cannot be found or downloaded.

    Examples
    --------
    >>> from napari_seg.models import ModelSpec, create_model
    >>> model = create_model(ModelSpec("unet", in_channels=1, num_classes=2))
    >>> model.size_multiple
    16
    >>> create_model("unet", in_channels=1, num_classes=2).spec == model.spec
    True
    """
    from .weights import load_encoder_weights
    from .wrapper import SegmentationModel

    spec = _as_spec(spec, fields)
    spec.validate()
    arch = get_architecture(spec.architecture)
    encoder = arch.resolve_encoder(spec.encoder, spec.spatial_dims)
    spec = spec.with_(architecture=arch.name, encoder=encoder)
    net, size_multiple = arch.build(spec)
    model = SegmentationModel(net, spec, size_multiple=size_multiple)
    if encoder_weights is not None:
        load_encoder_weights(model, encoder_weights)
    return model


def _as_spec(spec: Any, fields: dict[str, Any]) -> ModelSpec:
    """``spec`` itself, or the ModelSpec of an architecture's name and ``fields``
    (``create_model(architecture="unet", ...)`` names it as ModelSpec does)."""
    if spec is None and "architecture" in fields:
        spec = fields.pop("architecture")
    if isinstance(spec, str):
        from dataclasses import fields as spec_fields

        from .._validate import reject_unknown

        known = [f.name for f in spec_fields(ModelSpec) if f.name != "architecture"]
        fields, options = _options_as_keywords(spec, fields, known)
        reject_unknown(fields, known + options, "model", error=TypeError)
        return ModelSpec(spec, **fields)
    if not isinstance(spec, ModelSpec):
        raise TypeError(
            "create_model takes a ModelSpec or an architecture's name, e.g. "
            f"create_model('unet', in_channels=1, num_classes=2); got {type(spec).__name__}"
        )
    if fields:
        raise TypeError(
            f"create_model got a ModelSpec and spec fields {sorted(fields)}: change the "
            "spec instead (spec.with_(...))"
        )
    return spec


def _options_as_keywords(
    name: str, fields: dict[str, Any], known: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """``fields`` with the architecture's options given as keywords moved into
    ``options``, as segmentation-models-pytorch's ``create_model(arch, **kwargs)`` and
    MONAI's networks take them (``create_model("unet", depth=3)`` is
    ``create_model("unet", options={"depth": 3})``), and the options' names."""
    arch = get_architecture(name)
    option_names = sorted(set(arch.options) | set(arch.encoder_options or {}))
    moved = {k: v for k, v in fields.items() if k not in known and k in option_names}
    if not moved:
        return fields, option_names
    given = fields.get("options") or {}
    if not isinstance(given, Mapping):
        raise TypeError(
            f"options must be a mapping, got {brief(given)}; options may also be keywords "
            f"({', '.join(f'{k}={v!r}' for k, v in moved.items())})"
        )
    twice = sorted(set(moved) & set(given))
    if twice:
        raise TypeError(f"option(s) {twice} given both as keywords and in options")
    rest = {k: v for k, v in fields.items() if k not in moved}
    return {**rest, "options": {**given, **moved}}, option_names


class _RegistryRules:
    """The registry's answers to :class:`~napari_seg.models.spec.ArchitectureRules`."""

    def check(self, spec: ModelSpec) -> None:
        arch = get_architecture(spec.architecture)
        arch.check_encoder(spec.encoder)
        arch.check_options(spec.options, arch.resolve_encoder(spec.encoder, spec.spatial_dims))
        if spec.spatial_dims not in arch.dims:
            offered = " or ".join(f"{d}D" for d in arch.dims)
            raise ValueError(
                f"architecture {arch.name!r} is {offered} only, got spatial_dims="
                f"{spec.spatial_dims}"
            )
        encoder = arch.resolve_encoder(spec.encoder, spec.spatial_dims)
        if (
            spec.spatial_dims == 3
            and arch.encoders_3d is not None
            and encoder not in (arch.encoders_3d)
        ):
            raise ValueError(
                f"{arch.name!r} in 3D needs encoder {' or '.join(arch.encoders_3d)}; "
                f"{encoder!r} is a 2D (ImageNet) encoder"
            )

    def resolve_encoder(self, spec: ModelSpec) -> str | None:
        return get_architecture(spec.architecture).resolve_encoder(spec.encoder, spec.spatial_dims)


register_architecture_rules(_RegistryRules())
