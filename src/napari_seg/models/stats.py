"""Model size and cost: parameter count and GFLOPs per megapixel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .wrapper import SegmentationModel


@dataclass(frozen=True)
class ModelStats:
    """Parameter count and compute of a model."""

    parameters: int
    gflops_per_megapixel: float
    #: "megapixel" for a 2D model, "megavoxel" for a 3D one.
    per: str = "megapixel"

    def summary(self) -> str:
        """ "7.76 M parameters, 367.4 GFLOP per megapixel".

        Returns
        -------
        str
        """
        return (
            f"{self.parameters / 1e6:.2f} M parameters, "
            f"{self.gflops_per_megapixel:.1f} GFLOP per {self.per}"
        )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    int
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gflops_per_megapixel(model: SegmentationModel, *, size: int = 256) -> float:
    """Forward-pass GFLOPs per megapixel, counted on a ``size`` x ``size`` input
    (per megavoxel for a 3D model, on a cube of side ``min(size, 64)``).

    Counts multiply-adds as two FLOPs (``torch.utils.flop_counter``). Counted
    on CPU in eval mode; the count does not depend on the device. ``size`` is
    rounded up to the model's size multiple.

    Parameters
    ----------
    model : SegmentationModel
    size : int

    Returns
    -------
    float
    """
    from torch.utils.flop_counter import FlopCounterMode

    dims = model.spec.spatial_dims
    multiple = getattr(model, "size_multiple", 1)
    size = min(size, 64) if dims == 3 else size
    size = -(-size // multiple) * multiple
    x = torch.zeros(1, model.spec.in_channels, *(size,) * dims, device=model.device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9 / (size**dims / 1e6)


def model_stats(model: SegmentationModel, *, size: int = 256) -> ModelStats:
    """Parameters and GFLOPs per megapixel of a :class:`SegmentationModel`.

    Parameters
    ----------
    model : SegmentationModel
    size : int
        Side of the input the FLOPs are counted on.

    Returns
    -------
    ModelStats
    """
    per = "megavoxel" if model.spec.spatial_dims == 3 else "megapixel"
    return ModelStats(count_parameters(model), gflops_per_megapixel(model, size=size), per)
