"""Adapters over MONAI's networks: Attention U-Net, DynUNet, SegResNet and SwinUNETR.

Each reads the spec's dimensionality, and the U-Nets plan their pooling from the
spec's spacing (:func:`~napari_seg.models._planning.plan_strides`).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from ._planning import plan_strides, size_multiple
from .architecture import Architecture
from .spec import ModelSpec


def build_attention_unet(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    from monai.networks.nets import AttentionUnet

    depth = arch.option(spec, "depth")
    width = arch.option(spec, "base_width")
    strides = plan_strides(spec.spacing, depth, spec.spatial_dims)
    net = AttentionUnet(
        spatial_dims=spec.spatial_dims,
        in_channels=spec.in_channels,
        out_channels=spec.num_classes,
        channels=[width * 2**i for i in range(depth + 1)],
        strides=cast(Any, strides),  # MONAI takes a size or a tuple per level
    )
    return net, size_multiple(strides)


class DeepSupervisedDynUNet(nn.Module):
    """MONAI's DynUNet with the deep-supervision protocol of :class:`SegmentationModel`.

    In training mode with deep supervision, DynUNet returns its main output and
    the upsampled auxiliary heads stacked on axis 1; ``forward`` keeps the main
    output and ``forward_aux`` returns ``(main, [aux, ...])``.

    Parameters
    ----------
    net : monai.networks.nets.DynUNet
    deep_supervision : bool
    """

    def __init__(self, net: nn.Module, deep_supervision: bool) -> None:
        super().__init__()
        self.net = net
        self.aux_enabled = deep_supervision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._run(x)
        return out[:, 0] if out.ndim == x.ndim + 1 else out

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = self._run(x)
        if out.ndim != x.ndim + 1:
            return out, []
        return out[:, 0], [out[:, i] for i in range(1, out.shape[1])]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """DynUNet's output, its supervision heads let go of afterwards.

        DynUNet keeps the heads' last outputs in a list it shares with its layers.
        After a training step they hold the step's autograd graph: memory kept until
        the next step, and a model that ``copy.deepcopy`` refuses (the best model of
        a run without validation is such a copy). The output has used them already.
        """
        out = self.net(x)
        heads = getattr(self.net, "heads", None)
        if isinstance(heads, list):
            for i in range(len(heads)):  # in place: the layers hold the same list
                heads[i] = _NO_HEAD
        return out


#: What a released supervision head holds (a leaf tensor, as DynUNet's own start).
_NO_HEAD = torch.zeros(1)


def build_dynunet(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    from monai.networks.nets import DynUNet

    depth = arch.option(spec, "depth")
    width = arch.option(spec, "base_width")
    deep = bool(arch.option(spec, "deep_supervision"))
    strides = plan_strides(spec.spacing, depth, spec.spatial_dims)
    ones = (1,) * spec.spatial_dims
    net = DynUNet(
        spatial_dims=spec.spatial_dims,
        in_channels=spec.in_channels,
        out_channels=spec.num_classes,
        kernel_size=[(3,) * spec.spatial_dims] * (depth + 1),
        strides=[ones, *strides],
        upsample_kernel_size=strides,
        filters=[min(width * 2**i, 320) for i in range(depth + 1)],  # nnU-Net caps at 320
        norm_name="instance",
        deep_supervision=deep,
        deep_supr_num=max(1, min(2, depth - 1)),
        res_block=False,
    )
    return DeepSupervisedDynUNet(net, deep), size_multiple(strides)


def build_segresnet(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    from monai.networks.nets import SegResNet

    filters = arch.option(spec, "base_width")
    net = SegResNet(
        spatial_dims=spec.spatial_dims,
        init_filters=filters,
        in_channels=spec.in_channels,
        out_channels=spec.num_classes,
        blocks_down=(1, 2, 2, 4),
        blocks_up=(1, 1, 1),
        num_groups=min(8, filters),
    )
    return net, 8  # three downsamplings


def build_swin_unetr(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    from monai.networks.nets import SwinUNETR

    net = SwinUNETR(
        in_channels=spec.in_channels,
        out_channels=spec.num_classes,
        feature_size=arch.option(spec, "feature_size"),
        spatial_dims=spec.spatial_dims,
        use_v2=True,
    )
    return net, 32  # patch embedding (2) and four merging stages
