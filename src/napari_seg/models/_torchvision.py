"""Adapter over torchvision's FCN."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .architecture import Architecture
from .spec import ModelSpec


class TorchvisionSegmentation(nn.Module):
    """Return the ``"out"`` tensor of a torchvision segmentation model."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def encoder(self) -> nn.Module:
        return cast(nn.Module, self.net.backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def build_fcn(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    from torchvision.models.segmentation import fcn_resnet50, fcn_resnet101

    builder = {"resnet50": fcn_resnet50, "resnet101": fcn_resnet101}[str(spec.encoder)]
    net = builder(weights=None, weights_backbone=None, num_classes=spec.num_classes)
    if spec.in_channels != 3:
        old = net.backbone.conv1
        net.backbone.conv1 = nn.Conv2d(
            spec.in_channels,
            old.out_channels,
            kernel_size=old.kernel_size,
            stride=old.stride,
            padding=old.padding,
            bias=False,
        )
    # The dilated backbone has output stride 8; the result is upsampled to the
    # input size, so any size runs, but multiples of 8 keep the grid aligned.
    return TorchvisionSegmentation(net), 8
