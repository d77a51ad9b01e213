"""UNet3+ (Huang et al. 2020, "UNet 3+: a full-scale connected UNet").

Written here because no maintained library provides it. It reuses the encoders
of segmentation-models-pytorch, so it offers the same encoder choice (and the
same ImageNet weights) as the other architectures.

Each decoder level fuses every encoder level at or above its resolution
(max-pooled down to it) and every coarser decoder level (upsampled to it),
each through a 3x3 conv to ``cat_channels``; the concatenation is fused by a
3x3 conv. Deep supervision heads sit on every coarser decoder level and on the
bottleneck. The paper's classification-guided module is not included.
Differences from the paper: the finest encoder level of smp encoders has
stride 2, so the finest decoder level is at half resolution and its logits are
upsampled bilinearly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import Architecture
from .spec import ModelSpec


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def _resample(source: int, target: int) -> nn.Module:
    """Bring a feature map from level ``source`` to level ``target`` (stride 2**level)."""
    if source < target:
        factor = 2 ** (target - source)
        return nn.MaxPool2d(factor, factor, ceil_mode=True)
    if source > target:
        return nn.Upsample(scale_factor=2 ** (source - target), mode="bilinear")
    return nn.Identity()


class UNet3Plus(nn.Module):
    """UNet3+ decoder over an smp encoder; ``forward_aux`` adds deep supervision."""

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        *,
        cat_channels: int = 64,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        # index: level (stride 2**level)
        enc_channels = list(cast(Sequence[int], encoder.out_channels))
        levels = len(enc_channels) - 1
        self.levels = levels
        self.aux_enabled = deep_supervision
        fused = levels * cat_channels
        # decoder[i] builds decoder level `target` = levels - 1 - i (coarse to fine).
        self.branches = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for target in range(levels - 1, 0, -1):
            branches = nn.ModuleList()
            for source in range(1, levels + 1):
                from_decoder = target < source < levels
                channels = fused if from_decoder else enc_channels[source]
                branches.append(
                    nn.Sequential(_resample(source, target), *_conv_bn_relu(channels, cat_channels))
                )
            self.branches.append(branches)
            self.fuse.append(nn.Sequential(*_conv_bn_relu(fused, fused)))
        self.head = nn.Conv2d(fused, num_classes, 3, padding=1)
        # Deep supervision: the bottleneck and decoder levels 2..levels-1.
        self.aux_heads = nn.ModuleList(
            [nn.Conv2d(enc_channels[levels], num_classes, 3, padding=1)]
            + [nn.Conv2d(fused, num_classes, 3, padding=1) for _ in range(levels - 2)]
        )

    def _decode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return [bottleneck, decoder level levels-1, ..., decoder level 1]."""
        features = self.encoder(x)
        # maps[level] holds the newest map at that level: encoder levels first,
        # replaced by decoder maps as the decoder builds them coarse to fine.
        enc = {level: features[level] for level in range(1, self.levels + 1)}
        dec: dict[int, torch.Tensor] = {self.levels: enc[self.levels]}
        for i, target in enumerate(range(self.levels - 1, 0, -1)):
            size = enc[target].shape[-2:]
            parts = []
            branches = cast(nn.ModuleList, self.branches[i])
            for source, branch in zip(range(1, self.levels + 1), branches, strict=True):
                src = dec[source] if source > target else enc[source]
                part = branch(src)
                if part.shape[-2:] != size:  # ceil-mode pooling on odd sizes
                    part = F.interpolate(part, size=size, mode="bilinear")
                parts.append(part)
            dec[target] = self.fuse[i](torch.cat(parts, dim=1))
        return [dec[level] for level in range(self.levels, 0, -1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        finest = self._decode(x)[-1]
        return F.interpolate(self.head(finest), size=x.shape[-2:], mode="bilinear")

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps = self._decode(x)
        size = x.shape[-2:]
        out = F.interpolate(self.head(maps[-1]), size=size, mode="bilinear")
        aux = [
            F.interpolate(head(m), size=size, mode="bilinear")
            for head, m in zip(self.aux_heads, maps[:-1], strict=True)
        ]
        return out, aux


def build_unet3plus(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    from segmentation_models_pytorch.encoders import get_encoder

    encoder = get_encoder(
        spec.encoder,
        in_channels=spec.in_channels,
        depth=arch.option(spec, "depth"),
        weights=None,
    )
    net = UNet3Plus(
        encoder,
        spec.num_classes,
        cat_channels=arch.option(spec, "cat_channels"),
        deep_supervision=arch.option(spec, "deep_supervision"),
    )
    return net, int(encoder.output_stride)
