"""Segmentation losses that ignore unannotated pixels (library losses, combined here).

Cross-entropy comes from torch, Dice from segmentation-models-pytorch and the
softmax Focal loss from MONAI; all three take an ignore index, so pixels whose
target is :data:`~napari_seg.training.data.IGNORE_INDEX` give exactly zero
gradient.

Targets coded ``FILLED + class`` (classes filled in between annotated slices,
:class:`~napari_seg.training.volume.VolumeData`) enter the cross-entropy with a
lower weight (``filled_weight``) and are left out of Dice and Focal, which
keep to what the user painted.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._types import ArrayLike
from ._shared import FILLED, IGNORE_INDEX
from .config import LOSSES

FOCAL_GAMMA = 2.0


def class_weights(counts: ArrayLike) -> np.ndarray:
    """Class weights ``w_c = (N - N_c) / N`` from annotated pixel counts ``N_c``.

    Parameters
    ----------
    counts : array-like of int
        Annotated pixels of each class (``N`` is their sum).

    Returns
    -------
    ndarray of float32

    Raises
    ------
    ValueError
        When there is no annotated pixel.

    Examples
    --------
    >>> class_weights([90, 10]).tolist()
    [0.10000000149011612, 0.8999999761581421]
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("class_weights needs at least one annotated pixel")
    return ((total - counts) / total).astype(np.float32)


def resolve_loss(name: str, *, sparse: bool, num_classes: int, boundaries: bool = False) -> str:
    """The loss that ``name`` stands for (``"auto"`` chosen from the labels).

    Parameters
    ----------
    name : str
        One of :data:`~napari_seg.training.config.LOSSES`.
    sparse : bool
        Whether label 0 means "not annotated" (strokes, a few painted slices).
    num_classes : int
        Classes the model predicts.
    boundaries : bool, optional
        Whether the classes are objects and their one-pixel boundaries, from instance
        labels (``instances="boundaries"``).

    Returns
    -------
    str
        ``name`` itself unless it is ``"auto"``: then ``"weighted-ce"`` for objects
        and boundaries, ``"weighted-ce+dice"`` for sparse labels with three or more
        classes, ``"ce+dice"`` otherwise. With a few painted slices or strokes of
        many small classes the painted majority (usually the background) dominates
        the plain loss, and a CPU-length run predicts only a few classes; the class
        weights keep every class in play. A one-pixel boundary class is what Dice
        handles worst (a pixel's shift halves its overlap): class-weighted
        cross-entropy, as the three-class nucleus U-Net is trained, did better on
        both nucleus sets of docs/performance.md ("Instance labels").

    Raises
    ------
    ValueError
        For a name not in ``LOSSES``.

    Examples
    --------
    >>> resolve_loss("auto", sparse=True, num_classes=6)
    'weighted-ce+dice'
    >>> resolve_loss("auto", sparse=True, num_classes=2)
    'ce+dice'
    """
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
    if name != "auto":
        return name
    if boundaries:
        return "weighted-ce"
    return "weighted-ce+dice" if sparse and num_classes >= 3 else "ce+dice"


class SegmentationLoss(nn.Module):
    """One of :data:`~napari_seg.training.config.LOSSES`, called as ``loss(logits, target)``.

    Parameters
    ----------
    name : str
        ``"ce"``, ``"weighted-ce"``, ``"dice"``, ``"focal"`` (gamma 2),
        ``"weighted-focal"``, ``"ce+dice"`` or ``"weighted-ce+dice"`` (the class-weighted
        cross-entropy plus Dice).
    num_classes : int
    class_counts : array-like of int, optional
        Annotated pixels per class, needed by the weighted losses.

    Notes
    -----
    A batch without any annotated pixel gives a zero loss (with a graph, so
    ``backward`` works) instead of NaN.
    """

    def __init__(self, name: str, *, num_classes: int, class_counts=None) -> None:
        super().__init__()
        if name not in LOSSES or name == "auto":
            raise ValueError(f"loss must be one of {LOSSES[1:]}, got {name!r}")
        self.name = name
        weight = None
        if name.startswith("weighted-"):  # the cross-entropy or focal term is weighted
            if class_counts is None:
                raise ValueError(f"the {name} loss needs class_counts")
            counts = np.zeros(num_classes, dtype=np.int64)
            given = np.asarray(class_counts)[:num_classes]
            counts[: given.size] = given
            weight = torch.from_numpy(class_weights(counts))
        self.register_buffer("weight", weight)
        self.terms: list[nn.Module] = []
        if name in ("ce", "weighted-ce", "ce+dice", "weighted-ce+dice"):
            self.ce = nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE_INDEX)
            self.terms.append(self.ce)
        if name in ("dice", "ce+dice", "weighted-ce+dice"):
            from segmentation_models_pytorch.losses import DiceLoss

            self.dice = DiceLoss("multiclass", ignore_index=IGNORE_INDEX, from_logits=True)
            self.terms.append(self.dice)
        if name in ("focal", "weighted-focal"):
            from monai.losses import FocalLoss

            self.focal = FocalLoss(
                to_onehot_y=True,
                use_softmax=True,
                gamma=FOCAL_GAMMA,
                weight=weight,
                ignore_index=IGNORE_INDEX,
            )
            self.terms.append(self.focal)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, filled_weight: float = 0.0
    ) -> torch.Tensor:
        """The loss of ``logits`` against ``target`` (ignored pixels give no gradient).

        Parameters
        ----------
        logits : torch.Tensor
            ``(N, classes, *spatial)``; computed in fp32 whatever the autocast.
        target : torch.Tensor
            ``(N, *spatial)`` class ids, ``IGNORE_INDEX`` where nothing is known,
            ``FILLED + id`` where a class was filled in.
        filled_weight : float
            Weight of filled-in targets in the cross-entropy (0: ignored).

        Returns
        -------
        torch.Tensor
            A scalar; 0 (with a gradient of 0) when every pixel is ignored.
        """
        logits = logits.float()  # losses in fp32 also under autocast
        filled = target >= FILLED
        painted = target.masked_fill(filled, IGNORE_INDEX)
        # Filled-in targets count only in a cross-entropy term.
        weighted = filled_weight > 0 and hasattr(self, "ce") and bool(filled.any())
        any_painted = bool((painted != IGNORE_INDEX).any())
        if not any_painted and not weighted:
            return logits.sum() * 0.0
        total = logits.new_zeros(())
        for term in self.terms:
            if term is getattr(self, "ce", None) and weighted:
                total = total + self._weighted_ce(logits, target, filled, filled_weight)
            elif not any_painted:  # only filled-in targets here: the other terms skip them
                continue
            elif term is getattr(self, "focal", None):
                total = total + term(logits, painted.unsqueeze(1))
            else:
                total = total + term(logits, painted)
        return total

    def _weighted_ce(self, logits, target, filled, filled_weight: float) -> torch.Tensor:
        """Cross-entropy with painted targets at weight 1 and filled ones at ``filled_weight``."""
        import torch.nn.functional as F

        ids = torch.where(filled, target - FILLED, target)
        weight = self.weight if isinstance(self.weight, torch.Tensor) else None
        per_pixel = F.cross_entropy(
            logits, ids, weight=weight, ignore_index=IGNORE_INDEX, reduction="none"
        )
        weights = torch.where(filled, filled_weight, 1.0) * (ids != IGNORE_INDEX)
        return (per_pixel * weights).sum() / weights.sum().clamp(min=1e-6)
