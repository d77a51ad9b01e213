"""Adapters over segmentation-models-pytorch (smp) architectures."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import Architecture
from .spec import ModelSpec

# smp's default decoder widths for its U-Net family, finest level last.
_UNET_DECODER_CHANNELS = (256, 128, 64, 32, 16)


def smp_kwargs(spec: ModelSpec, arch: Architecture) -> dict:
    """Keyword arguments shared by every smp model built from a spec.

    ``encoder_weights`` is always None here: pretrained weights are loaded by
    :mod:`napari_seg.models.weights`, which controls caching and fails fast offline.
    """
    return {
        "encoder_name": spec.encoder,
        "encoder_weights": None,
        "in_channels": spec.in_channels,
        "classes": spec.num_classes,
    }


def _size_multiple(net: Any) -> int:  # an smp model (untyped)
    return int(net.encoder.output_stride)


def build_smp_unet(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    """U-Net on an smp encoder (``encoder`` other than 'classic')."""
    import segmentation_models_pytorch as smp

    depth = arch.option(spec, "depth")
    net = smp.Unet(
        encoder_depth=depth,
        decoder_channels=_UNET_DECODER_CHANNELS[:depth],
        **smp_kwargs(spec, arch),
    )
    return net, _size_multiple(net)


def build_unetplusplus(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    import segmentation_models_pytorch as smp

    depth = arch.option(spec, "depth")
    net = smp.UnetPlusPlus(
        encoder_depth=depth,
        decoder_channels=_UNET_DECODER_CHANNELS[:depth],
        **smp_kwargs(spec, arch),
    )
    multiple = _size_multiple(net)
    if arch.option(spec, "deep_supervision"):
        net = UnetPlusPlusDeepSupervision(net, spec.num_classes)
    return net, multiple


def build_deeplabv3(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    import segmentation_models_pytorch as smp

    net = smp.DeepLabV3(
        encoder_output_stride=arch.option(spec, "output_stride"), **smp_kwargs(spec, arch)
    )
    _batch_one_safe_aspp(net)
    return net, _size_multiple(net)


def build_deeplabv3plus(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    import segmentation_models_pytorch as smp

    net = smp.DeepLabV3Plus(
        encoder_output_stride=arch.option(spec, "output_stride"), **smp_kwargs(spec, arch)
    )
    _batch_one_safe_aspp(net)
    # The decoder fuses stride-4 features with upsampled ASPP output: inputs must
    # divide by the larger of the encoder stride and 4.
    return net, max(_size_multiple(net), 4)


def build_fpn(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    import segmentation_models_pytorch as smp

    net = smp.FPN(encoder_depth=arch.option(spec, "depth"), **smp_kwargs(spec, arch))
    return net, _size_multiple(net)


def _batch_one_safe_aspp(net: nn.Module) -> None:
    """Replace BatchNorm after ASPP's global pooling with GroupNorm.

    After global average pooling each channel holds one value per image, so
    BatchNorm in training mode fails for a batch of one ("Expected more than 1
    value per channel"). GroupNorm normalises over channel groups instead and
    works for any batch size.
    """
    from segmentation_models_pytorch.decoders.deeplabv3.decoder import ASPPPooling

    for module in net.modules():
        if isinstance(module, ASPPPooling):
            for idx, child in enumerate(module):
                if isinstance(child, nn.BatchNorm2d):
                    channels = child.num_features
                    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
                    module[idx] = nn.GroupNorm(groups, channels)


class UnetPlusPlusDeepSupervision(nn.Module):
    """smp U-Net++ plus deep-supervision heads on the nested full-width nodes.

    U-Net++ (Zhou et al. 2018) supervises the nodes X^{0,1}..X^{0,4} that all sit
    at the finest decoder level. In smp's naming these are the blocks
    ``x_{d}_{depth-1}`` for d >= 1 (``x_0_{depth-1}`` feeds the main output).
    Their outputs are captured with forward hooks, so smp's own forward runs
    unchanged.
    """

    aux_enabled = True

    def __init__(self, net: Any, num_classes: int) -> None:  # an smp UnetPlusPlus (untyped)
        super().__init__()
        self.net = net
        decoder = net.decoder
        level = decoder.depth - 1
        self._nodes = [f"x_{d}_{level}" for d in range(1, decoder.depth)]
        channels = decoder.skip_channels[level]
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(channels, num_classes, kernel_size=1) for _ in self._nodes
        )

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        captured: dict[str, torch.Tensor] = {}
        handles = [
            self.net.decoder.blocks[name].register_forward_hook(
                lambda _m, _i, out, name=name: captured.__setitem__(name, out)
            )
            for name in self._nodes
        ]
        try:
            out = self.net(x)
        finally:
            for handle in handles:
                handle.remove()
        size = x.shape[-2:]
        aux = [
            F.interpolate(head(captured[name]), size=size, mode="bilinear", align_corners=False)
            for name, head in zip(self._nodes, self.aux_heads, strict=True)
        ]
        return out, aux
