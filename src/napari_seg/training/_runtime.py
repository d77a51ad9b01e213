"""Helpers of the training loop: the budget clock and the BatchNorm guard."""

from __future__ import annotations

import time

import torch


class Clock:
    """Training time: wall time minus the time spent outside the generator (pauses)."""

    def __init__(self, elapsed: float = 0.0) -> None:
        self._start = time.perf_counter() - elapsed
        self._outside = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self._start - self._outside

    def outside(self, event):
        t = time.perf_counter()
        yield event
        self._outside += time.perf_counter() - t


def guard_batchnorm(model) -> list:
    """Let BatchNorm layers that see one value per channel use running statistics.

    With batch size 1, the BatchNorm after global pooling (DeepLab's ASPP
    image-pooling branch) sees a single value per channel, which torch refuses
    to normalise in training mode. Those layers switch to eval mode for that
    call; every other BatchNorm trains normally.
    """
    handles = []

    def before(module, args):
        x = args[0]
        if module.training and x.numel() // max(1, x.shape[1]) <= 1:
            module.training = False
            module._napari_seg_restore = True

    def after(module, args, output):
        if getattr(module, "_napari_seg_restore", False):
            module.training = True
            module._napari_seg_restore = False

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
    return handles
