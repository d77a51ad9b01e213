"""U-Net: the classic from-scratch network, or smp's U-Net on a chosen encoder.

The classic U-Net (Ronneberger et al. 2015) is written here because no
maintained library offers it with both a configurable depth and base width:
MONAI's ``BasicUNet`` fixes the depth at 4 and MONAI's ``UNet`` downsamples
with strided (optionally residual) convolutions instead of max pooling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._planning import plan_strides, size_multiple
from .architecture import CLASSIC, Architecture
from .spec import ModelSpec


def _double_conv(in_channels: int, out_channels: int, dims: int = 2) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    # 3D patches come in batches of two: instance normalisation, as nnU-Net uses.
    norm = nn.BatchNorm2d if dims == 2 else nn.InstanceNorm3d
    extra = {} if dims == 2 else {"affine": True}
    return nn.Sequential(
        conv(in_channels, out_channels, 3, padding=1, bias=False),
        norm(out_channels, **extra),
        nn.ReLU(inplace=True),
        conv(out_channels, out_channels, 3, padding=1, bias=False),
        norm(out_channels, **extra),
        nn.ReLU(inplace=True),
    )


class ClassicUNet(nn.Module):
    """Double 3x3 conv blocks, max pooling, transposed-conv upsampling, skips (2D or 3D).

    Parameters
    ----------
    in_channels, num_classes : int
    depth : int
        Number of downsamplings; inputs must be multiples of ``2**depth``.
    base_width : int
        Channels of the first level; each level doubles them.
    strides : list of tuple of int, optional
        Per-level pooling strides (2 everywhere by default); a 3D network has
        3-tuples, e.g. from :func:`~napari_seg.models._planning.plan_strides`.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        depth: int,
        base_width: int,
        strides: list[tuple[int, ...]] | None = None,
    ):
        super().__init__()
        strides = strides or [(2, 2)] * depth
        dims = len(strides[0]) if strides else 2
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0], dims)])
        self.down.extend(_double_conv(widths[i], widths[i + 1], dims) for i in range(depth))
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        sizes: list[Any] = list(strides)  # torch types kernel sizes per dimensionality
        self.pools = nn.ModuleList(pool(s, stride=s) for s in sizes)
        self.upsample = nn.ModuleList(
            up(widths[i + 1], widths[i], sizes[i], stride=sizes[i]) for i in reversed(range(depth))
        )
        self.up = nn.ModuleList(
            _double_conv(2 * widths[i], widths[i], dims) for i in reversed(range(depth))
        )
        self.head = (nn.Conv2d if dims == 2 else nn.Conv3d)(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pools[i - 1](x))
            skips.append(x)
        x = skips.pop()
        for upsample, block in zip(self.upsample, self.up, strict=True):
            if torch.is_grad_enabled():
                x = block(torch.cat([skips.pop(), upsample(x)], dim=1))
            else:  # inference: the same numbers without the concatenation
                x = _decode_lean(block, [skips.pop(), upsample(x)])
        return self.head(x)


def _decode_lean(block: nn.Module, parts: list[torch.Tensor]) -> torch.Tensor:
    """``block(torch.cat(parts, 1))`` for a skip and an upsampled map, in less memory.

    The first convolution of the concatenation is the sum of one convolution of each
    part with its share of the kernel, so the concatenation (as wide as both parts)
    is never made, and each part is dropped (popped from ``parts``) once convolved.
    At the finest level this lowers the decoder's peak from four full-resolution maps
    of the level's width (skip, upsampled, concatenation of two) to three (skip,
    upsampled, output). Inference only: it frees tensors that autograd would keep.
    """
    conv, *rest = block.children()
    if not isinstance(conv, (nn.Conv2d, nn.Conv3d)):
        raise TypeError(f"a decoder block starts with a convolution, not {type(conv).__name__}")
    convolve = nn.functional.conv2d if isinstance(conv, nn.Conv2d) else nn.functional.conv3d
    width = parts[0].shape[1]
    options: dict[str, Any] = {
        "stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation
    }  # fmt: skip
    x = convolve(parts.pop(), conv.weight[:, width:], conv.bias, **options)
    x = x.add_(convolve(parts.pop(), conv.weight[:, :width], None, **options))
    for layer in rest:
        x = layer(x)
    return x


def build_unet(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    if spec.encoder != CLASSIC:
        from ._smp import build_smp_unet

        return build_smp_unet(spec, arch)
    depth = arch.option(spec, "depth")
    strides = plan_strides(spec.spacing, depth, spec.spatial_dims)
    net = ClassicUNet(
        spec.in_channels,
        spec.num_classes,
        depth=depth,
        base_width=arch.option(spec, "base_width"),
        strides=strides,
    )
    return net, size_multiple(strides)
