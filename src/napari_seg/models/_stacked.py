"""Auto-context: a classic U-Net that sees the image and a pixel classifier's class
probabilities (architecture ``scribble-unet``).

The pixel classifier (``_pixel.PixelClassifierNet``) is fitted from strokes in
seconds; the U-Net then learns where to trust it and where shape and context say
otherwise (as ilastik's "autocontext" stacks a second classifier on the first
one's output). The classifier's tensors are buffers of this network, so one model
file holds both and the tiled predictor runs both; only the U-Net has trainable
parameters. The training loop fits the classifier first when it is not fitted
(``training.pixel.fit_pixel_classifier``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from ._filters import sigmas_for
from ._pixel import PixelClassifierNet

if TYPE_CHECKING:
    from .architecture import Architecture
    from .spec import ModelSpec


#: The classifier's probabilities are floored here before their logarithm becomes
#: the prior: a class it rules out costs the U-Net about 4 logits to bring back.
PRIOR_FLOOR = 0.02


class StackedNet(nn.Module):
    """``log(max(p, PRIOR_FLOOR)) + unet(cat(x, p))`` with ``p`` the classifier's
    class probabilities: the U-Net learns a correction to the classifier's answer,
    and starts from that answer (its last layer starts near zero).

    Parameters
    ----------
    pixel : PixelClassifierNet
    unet : nn.Module
        Takes ``in_channels + num_classes`` channels.
    """

    def __init__(self, pixel: PixelClassifierNet, unet: nn.Module) -> None:
        super().__init__()
        self.pixel = pixel
        self.unet = unet

    @property
    def preferred_overlap(self) -> int:
        """Tile overlap the predictor uses by default: the classifier's filters' context."""
        return self.pixel.preferred_overlap

    def check_loaded(self) -> None:
        """Check the classifier's tensors read from a file (see ``PixelClassifierNet``)."""
        self.pixel.check_loaded()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of ``x`` ``(N, C, H, W)``.

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        torch.Tensor
        """
        with torch.no_grad():
            probabilities = self.pixel(x).float().exp()
            prior = probabilities.clamp_min(PRIOR_FLOOR).log().to(x.dtype)
        correction = self.unet(torch.cat([x, probabilities.to(x.dtype)], dim=1))
        return cast(torch.Tensor, prior + correction)


def build_stacked(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    """The registry's builder: an unfitted classifier and a new U-Net.

    Parameters
    ----------
    spec : ModelSpec
    arch : Architecture

    Returns
    -------
    net : StackedNet
    size_multiple : int
        The U-Net's.
    """
    from ._unet import ClassicUNet

    pixel = PixelClassifierNet(
        spec.in_channels,
        spec.num_classes,
        2,
        sigmas_for(arch.option(spec, "max_sigma")),
        arch.option(spec, "trees"),
        arch.option(spec, "tree_depth"),
    )
    depth = arch.option(spec, "depth")
    unet = ClassicUNet(
        spec.in_channels + spec.num_classes,
        spec.num_classes,
        depth=depth,
        base_width=arch.option(spec, "base_width"),
    )
    # near zero, not zero: gradients still reach the earlier layers from the first step
    nn.init.normal_(unet.head.weight, std=1e-3)
    if unet.head.bias is not None:
        nn.init.zeros_(unet.head.bias)
    return StackedNet(pixel, unet), 2**depth
