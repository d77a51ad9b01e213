"""U-Net: the classic from-scratch network, or smp's U-Net on a chosen encoder.

The classic U-Net (Ronneberger et al. 2015) is written here because no
maintained library offers it with both a configurable depth and base width:
MONAI's ``BasicUNet`` fixes the depth at 4 and MONAI's ``UNet`` downsamples
with strided (optionally residual) convolutions instead of max pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import CLASSIC, Architecture
from .spec import ModelSpec


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ClassicUNet(nn.Module):
    """Double 3x3 conv blocks, 2x2 max pooling, transposed-conv upsampling, skips.

    Parameters
    ----------
    in_channels, num_classes : int
    depth : int
        Number of downsamplings; inputs must be multiples of ``2**depth``.
    base_width : int
        Channels of the first level; each level doubles them.
    """

    def __init__(self, in_channels: int, num_classes: int, *, depth: int, base_width: int):
        super().__init__()
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])])
        self.down.extend(_double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.up = nn.ModuleList(
            _double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for upsample, block in zip(self.upsample, self.up, strict=True):
            x = block(torch.cat([skips.pop(), upsample(x)], dim=1))
        return self.head(x)


def build_unet(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    if spec.encoder != CLASSIC:
        from ._smp import build_smp_unet

        return build_smp_unet(spec, arch)
    depth = arch.option(spec, "depth")
    net = ClassicUNet(
        spec.in_channels,
        spec.num_classes,
        depth=depth,
        base_width=arch.option(spec, "base_width"),
    )
    return net, 2**depth
