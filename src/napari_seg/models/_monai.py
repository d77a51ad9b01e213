"""Adapter over MONAI's Attention U-Net."""

from __future__ import annotations

from torch import nn

from .registry import Architecture
from .spec import ModelSpec


def build_attention_unet(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    from monai.networks.nets import AttentionUnet

    depth = arch.option(spec, "depth")
    width = arch.option(spec, "base_width")
    net = AttentionUnet(
        spatial_dims=2,
        in_channels=spec.in_channels,
        out_channels=spec.num_classes,
        channels=[width * 2**i for i in range(depth + 1)],
        strides=[2] * depth,
    )
    return net, 2**depth
