"""Several trained models predicting as one: their softmax probabilities averaged.

nnU-Net predicts with the five models of its cross-validation and averages their
softmax; MONAI's ``MeanEnsemble`` does the same with any models. Here the members
become one :class:`SegmentationModel` whose output is the logarithm of the mean
probabilities: the softmax that prediction applies to any model's output gives back
that mean, so tiling, blending, resampling, test-time mirroring and blocks treat an
ensemble as one model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import nn

from .spec import ModelSpec
from .wrapper import SegmentationModel, class_probabilities

#: What the members must share, with how a difference is named.
_SHARED = {
    "spatial_dims": "dimensionality",
    "in_channels": "input channels",
    "num_classes": "number of classes",
    "class_names": "class names",
    "background": "background class",
    "normalization": "normalisation",
    "spacing": "voxel size",
    "spacing_unit": "voxel size unit",
}

#: The smallest mean probability kept: log(0) would make the softmax of the output NaN.
_TINY = 1e-30


class MeanOfModels(nn.Module):
    """The network of an ensemble: the log of the members' mean softmax.

    Parameters
    ----------
    members : sequence of SegmentationModel
    """

    def __init__(self, members: Sequence[SegmentationModel]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        first = members[0].net
        for name in ("preferred_tile", "preferred_overlap"):
            if hasattr(first, name):
                setattr(self, name, getattr(first, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``log(mean_k softmax(member_k(x)))`` in float32.

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        torch.Tensor
        """
        total = None
        for member in self.members:
            assert isinstance(member, SegmentationModel)
            probs = class_probabilities(member(x), member.spec)
            total = probs if total is None else total.add_(probs)
        assert total is not None
        return total.div_(len(self.members)).clamp_min_(_TINY).log_()


def check_members(specs: Sequence[ModelSpec]) -> None:
    """Check that models of these specs can form an ensemble (the one home of the
    rule :func:`ensemble` applies; with :func:`read_model_spec`, before any weight
    is read).

    Parameters
    ----------
    specs : sequence of ModelSpec

    Raises
    ------
    ValueError
        Naming the first member that differs from the first one in its
        dimensionality, input channels, classes, background, normalisation or
        voxel size.
    """
    first = specs[0]
    for k, spec in enumerate(specs[1:], start=2):
        for field, what in _SHARED.items():
            if getattr(spec, field) != getattr(first, field):
                raise ValueError(
                    f"model {k} differs from model 1 in its {what}: "
                    f"{getattr(spec, field)!r} against {getattr(first, field)!r}; "
                    "an ensemble's models must read and predict the same things"
                )


def load_models(
    paths: Sequence[str | os.PathLike], *, device: str | torch.device = "cpu"
) -> SegmentationModel:
    """The model of one file, or the :func:`ensemble` of several, each loaded safely.

    The members are checked from their files' headers (:func:`check_members`)
    before any weight is read.

    Parameters
    ----------
    paths : sequence of path-like
    device : str or torch.device

    Returns
    -------
    SegmentationModel

    Raises
    ------
    ValueError
        For no path, or members that cannot form an ensemble.
    ModelFileError
        As :func:`napari_seg.models.load_model`.
    """
    from . import load_model, read_model_spec  # the package's names, as callers use them

    paths = list(paths)
    if not paths:
        raise ValueError("give a model file")
    if len(paths) > 1:
        check_members([read_model_spec(path) for path in paths])
    models = [load_model(path, device=device) for path in paths]
    return models[0] if len(models) == 1 else ensemble(models)


def ensemble(models: Sequence[SegmentationModel]) -> SegmentationModel:
    """One model that predicts the mean probabilities of ``models``.

    The members may be of different architectures, but must read and predict the
    same things: dimensionality, input channels, classes (names and background),
    normalisation and voxel size. A class one member never trained on is left out of
    its vote (its probability there is 0).

    Parameters
    ----------
    models : sequence of SegmentationModel
        Two or more trained models, e.g. from ``load_model``.

    Returns
    -------
    SegmentationModel
        With the first member's spec (untrained classes: those none trained on) and a
        card listing the members' cards; it predicts like any model but is not saved
        as one file (save the members).

    Raises
    ------
    ValueError
        For fewer than two models, or members that differ in one of those respects
        (the message names it).
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(models)}")
    check_members([model.spec for model in models])
    first = models[0].spec
    untrained = set(first.untrained_classes)
    for model in models[1:]:
        untrained &= set(model.spec.untrained_classes)
    spec: ModelSpec = first.with_(untrained_classes=tuple(sorted(untrained)))
    multiple = math.lcm(*(m.size_multiple for m in models))
    out = SegmentationModel(MeanOfModels(models), spec, size_multiple=multiple)
    out.card = {"provenance": {"ensemble": [m.card for m in models]}}
    return out.eval()
