"""Patch and batch size of a 3D run, planned from the spacing and a memory budget.

The rule (after nnU-Net's planner, Isensee et al. 2021, simplified and stated):

1. Start from the largest volume's shape, each side capped at ``MAX_SIDE`` and
   rounded up to the network's size multiple.
2. While one patch of a batch of ``MIN_BATCH`` does not fit the budget, shrink by one
   size multiple the axis whose patch side is longest in physical units (side x
   spacing), so that patches stay close to isotropic in millimetres: a CT of
   5 x 0.8 x 0.8 mm voxels keeps few slices and wide planes.
   A patch keeps more than one voxel at the network's coarsest level (some side at
   least twice the size multiple; for a volume smaller than that, the patch is
   larger than the volume and padded): instance normalisation there (MONAI's
   networks) cannot train on a single value per channel.
3. The batch is as many patches as fit the budget, at most the configured batch
   size; above ``MIN_BATCH``, at most what covers ``MAX_DATA_SHARE`` of the
   training voxels (nnU-Net's 5% rule, so a small dataset is not seen whole in
   every step); never below 1.

Training memory per voxel is measured, not guessed: one forward pass of a small
probe patch with a hook on every module counts the values the network keeps for
its backward pass; gradients and temporaries double it (``BACKWARD_FACTOR``),
and the parameters with AdamW's two moments and their gradients add four copies.
On a CPU the budget also caps the voxels per step (``CPU_STEP_VOXELS``), so that a
step takes about a second on a few cores rather than minutes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: Longest patch side considered (voxels).
MAX_SIDE = 160
#: The planner keeps at least this many patches per batch while it can.
MIN_BATCH = 2
#: A batch covers at most this share of the training voxels.
MAX_DATA_SHARE = 0.05
#: Stored activations x this = memory of a training step's activations.
BACKWARD_FACTOR = 2.0
#: On a CPU, at most this many voxels per step (patch voxels x batch).
CPU_STEP_VOXELS = 2 * 64**3
#: Share of a GPU's free memory, and of the host's available memory, given to a run.
GPU_SHARE, HOST_SHARE = 0.8, 0.4
#: Side of the probe patch (at least this, and two of the network's size multiples).
PROBE_SIDE = 32


@dataclass(frozen=True)
class TrainingPlan:
    """A planned 3D run: patch size, batch size and the memory they are expected to use."""

    patch: tuple[int, int, int]
    batch_size: int
    bytes_per_voxel: float
    expected_bytes: int
    budget_bytes: int


def memory_budget(device: torch.device, memory_gb: float | None = None) -> int:
    """Bytes a run may use on ``device``: ``memory_gb`` when given, else a share of
    the GPU's free memory or of the host's available memory.

    Parameters
    ----------
    device : torch.device
    memory_gb : float, optional

    Returns
    -------
    int
    """
    if memory_gb is not None:
        return int(memory_gb * 2**30)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(GPU_SHARE * free)
    import psutil

    return int(HOST_SHARE * psutil.virtual_memory().available)


def training_bytes_per_voxel(net: torch.nn.Module, in_channels: int, multiple: int) -> float:
    """Bytes of activations a training step keeps per input voxel (measured).

    Parameters
    ----------
    net : torch.nn.Module
        A 3D network taking ``(B, in_channels, D, H, W)``.
    in_channels : int
    multiple : int
        The network's size multiple (the probe's side is a multiple of it).

    Returns
    -------
    float
    """
    # Two size multiples at least: one voxel at the coarsest level fails the instance
    # normalisation of a network in training mode (swin-unetr's multiple is 32).
    side = max(PROBE_SIDE, 2 * multiple) // multiple * multiple
    kept = [0]

    def count(_module, _inputs, output) -> None:
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                kept[0] += t.numel() * t.element_size()

    leaves = [m for m in net.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    device = next(net.parameters()).device
    try:
        with torch.no_grad():
            net(torch.zeros(1, in_channels, side, side, side, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return BACKWARD_FACTOR * kept[0] / side**3


def plan_patch_3d(
    shapes: Sequence[Sequence[int]],
    *,
    spacing: Sequence[float] | None,
    bytes_per_voxel: float,
    parameter_bytes: int,
    budget_bytes: int,
    multiple: int,
    max_batch: int,
    cpu: bool,
) -> TrainingPlan:
    """Plan a 3D run's patch and batch (see the module's rule).

    Parameters
    ----------
    shapes : sequence of 3-tuples
        The training volumes' shapes.
    spacing : sequence of 3 float, optional
        Voxel size (isotropic when not given).
    bytes_per_voxel : float
        From :func:`training_bytes_per_voxel`.
    parameter_bytes : int
        The network's parameters (they are held four times: weights, gradients
        and AdamW's two moments).
    budget_bytes : int
    multiple : int
        Every patch side is a multiple of it.
    max_batch : int
    cpu : bool
        Also cap the voxels per step (``CPU_STEP_VOXELS``).

    Returns
    -------
    TrainingPlan

    Raises
    ------
    ValueError
        When even the smallest patch does not fit the budget.
    """
    spacing = tuple(spacing) if spacing is not None else (1.0, 1.0, 1.0)
    largest = np.max(np.asarray(shapes), axis=0)
    patch = [min(_round_up(int(n), multiple), _round_up(MAX_SIDE, multiple)) for n in largest]
    if all(side == multiple for side in patch):  # one voxel at the coarsest level
        patch[int(np.argmax(np.asarray(largest) * np.asarray(spacing)))] = 2 * multiple
    available = budget_bytes - 4 * parameter_bytes
    step_voxels = CPU_STEP_VOXELS if cpu else math.inf

    def fits(batch: int) -> bool:
        voxels = math.prod(patch) * batch
        return voxels * bytes_per_voxel <= available and voxels <= step_voxels

    while not fits(min(MIN_BATCH, max_batch)):
        shrinkable = [
            a for a in range(3) if patch[a] > multiple and _coarse_after(patch, a, multiple) > 1
        ]
        if not shrinkable:
            if fits(1):
                break
            need = math.prod(patch) * bytes_per_voxel + 4 * parameter_bytes
            raise ValueError(
                f"even a {'x'.join(map(str, patch))} patch needs about {_gib(need)} GiB, more "
                f"than the budget of {_gib(budget_bytes)} GiB; use a smaller network or a "
                "larger budget"
            )
        axis = max(shrinkable, key=lambda a: (patch[a] * spacing[a], patch[a]))
        patch[axis] -= multiple
    voxels = math.prod(patch)
    total = sum(math.prod(int(n) for n in s) for s in shapes)
    batch = max_batch
    while batch > 1 and not fits(batch):
        batch -= 1
    while batch > MIN_BATCH and batch * voxels > MAX_DATA_SHARE * total:
        batch -= 1
    expected = int(voxels * batch * bytes_per_voxel + 4 * parameter_bytes)
    return TrainingPlan(
        (patch[0], patch[1], patch[2]), batch, bytes_per_voxel, expected, budget_bytes
    )


def _coarse_after(patch: list[int], axis: int, multiple: int) -> int:
    """Voxels at the network's coarsest level once ``axis`` shrinks by ``multiple``."""
    sides = [n - multiple if a == axis else n for a, n in enumerate(patch)]
    return math.prod(n // multiple for n in sides)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f}"
