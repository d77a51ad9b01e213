"""The pixel classifier: multiscale filter features and a per-pixel classifier, in torch.

The features (:mod:`._filters`) are those ilastik and scikit-image's
``multiscale_basic_features`` offer, per input channel and scale, on any device.

The classifier is a random forest (fitted with scikit-learn, see
:mod:`napari_seg.training.pixel`) stored as tensors: every tree is laid out as
a complete binary tree of the forest's depth (a split's feature and threshold per
internal node, class probabilities per leaf; a branch that ended early repeats its
leaf), so that walking all trees for all pixels is a few gathers per level, on any
device. The tensors are ordinary model weights: a fitted classifier is stored in
the same safetensors model file as every other network, and nothing is pickled.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from ._filters import FilterBank, sigmas_for

if TYPE_CHECKING:
    from .architecture import Architecture
    from .spec import ModelSpec

#: Pixels whose features are walked through the forest at once (bounds the memory
#: of the walk to a few tens of MB whatever the input size).
CHUNK = 16384
#: Tile side the predictor uses for this network by default: its filters need
#: about a hundred pixels of context, which larger tiles waste less of (a
#: 2048x2048 tile has about 0.7 GB of features at the default scales, classified
#: ``FEATURE_BYTES`` at a time).
PREFERRED_TILE = 2048
#: The same in 3D: tiles are classified slab by slab (``FEATURE_BYTES``), so a
#: 256^3 tile holds a few hundred MB; it leaves room for the filters' context.
PREFERRED_TILE_3D = 256
#: Features held at once while a tile is classified (it is classified slab by slab;
#: one scale's filters with their context hold about twice this besides). Thinner
#: slabs recompute more context: 128 MiB took 15% longer on a 256^3 tile for 20%
#: less memory (docs/performance.md).
FEATURE_BYTES = 256 * 2**20
#: Probabilities are floored here before the logarithm that makes them logits.
MIN_PROBABILITY = 1e-6


class PixelClassifierNet(nn.Module):
    """Filter features, then a random forest walked in torch.

    Parameters
    ----------
    in_channels, num_classes : int
    dims : {2, 3}
    sigmas : tuple of float
    trees, depth : int
        Size of the forest; each tree has ``2**depth`` leaves.
    spacing : tuple of float, optional
        The voxel size the filters' scales are measured in (3D; see
        :class:`FilterBank`).

    Notes
    -----
    Node ``k`` of a tree sends a pixel to node ``2k + 1`` when its feature is at
    most the threshold (scikit-learn's rule) and to ``2k + 2`` otherwise; the
    nodes below the last split level are the leaves.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dims: int,
        sigmas: tuple[float, ...],
        trees: int,
        depth: int,
        spacing: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.features = FilterBank(in_channels, dims, sigmas, spacing)
        self.depth = int(depth)
        splits = 2**depth - 1
        self.register_buffer("split_feature", torch.zeros(trees, splits, dtype=torch.int64))
        self.register_buffer("split_threshold", torch.zeros(trees, splits))
        self.register_buffer("leaf_probability", torch.full((trees, 2**depth, num_classes), 1.0))
        # The forest has no gradient-trained weights; this marks whether it was fitted.
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        # Split levels the fitted trees use (at most depth): the walk stops there.
        self.register_buffer("levels", torch.tensor(self.depth, dtype=torch.int64))

    @property
    def preferred_tile(self) -> int:
        """Tile side the predictor uses by default (see :data:`PREFERRED_TILE`)."""
        return PREFERRED_TILE if self.features.dims == 2 else PREFERRED_TILE_3D

    @property
    def preferred_overlap(self) -> int:
        """Tile overlap the predictor uses by default: twice the filters' context in
        2D, once in 3D (where twice would leave a 256^3 tile a stride of 46 voxels;
        the Gaussian blending weighs each tile's edge little)."""
        return (2 if self.features.dims == 2 else 1) * self.features.margin

    def load_forest(self, feature: Any, threshold: Any, leaf: Any, levels: int) -> None:
        """Set the forest from arrays of the buffers' shapes (see the class notes).

        Parameters
        ----------
        feature : array of int, ``(trees, 2**depth - 1)``
        threshold : array of float32, same shape
        leaf : array of float32, ``(trees, 2**depth, classes)``
        levels : int
            Split levels in use: every node at this level is a leaf whose
            descendants repeat it.

        Raises
        ------
        ValueError
            If ``levels`` is not between 0 and the depth.
        """
        if not 0 <= levels <= self.depth:
            raise ValueError(f"levels must be between 0 and {self.depth}, got {levels}")
        cast(torch.Tensor, self.levels).fill_(int(levels))
        for name, values in (
            ("split_feature", feature),
            ("split_threshold", threshold),
            ("leaf_probability", leaf),
        ):
            buffer = cast(torch.Tensor, getattr(self, name))
            buffer.copy_(torch.as_tensor(values).to(buffer.device, buffer.dtype))
        cast(torch.Tensor, self.fitted).fill_(True)

    def check_loaded(self) -> None:
        """Check tensors read from a file: split features index existing features,
        the level count is within the depth, leaf probabilities lie in [0, 1].

        Raises
        ------
        ValueError
            Naming the tensor that is out of range.
        """
        feature = cast(torch.Tensor, self.split_feature)
        count = self.features.out_channels
        if feature.numel() and (int(feature.min()) < 0 or int(feature.max()) >= count):
            raise ValueError(f"split_feature holds indices outside 0..{count - 1}")
        levels = int(cast(torch.Tensor, self.levels))
        if not 0 <= levels <= self.depth:
            raise ValueError(f"levels is {levels}, not between 0 and the depth {self.depth}")
        leaves = cast(torch.Tensor, self.leaf_probability)
        if bool((leaves < 0).any()) or bool((leaves > 1).any()):
            raise ValueError("leaf_probability holds values outside [0, 1]")

    @property
    def trees(self) -> int:
        """Number of trees."""
        return int(cast(torch.Tensor, self.split_feature).shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes of the leaves' probabilities."""
        return int(cast(torch.Tensor, self.leaf_probability).shape[-1])

    def classify_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """Class probabilities of feature vectors ``(n, features)`` -> ``(n, classes)``.

        Parameters
        ----------
        vectors : torch.Tensor

        Returns
        -------
        torch.Tensor
        """
        feature = cast(torch.Tensor, self.split_feature)
        threshold = cast(torch.Tensor, self.split_threshold)
        leaves = cast(torch.Tensor, self.leaf_probability)
        trees, splits = feature.shape
        tree = torch.arange(trees, device=vectors.device).view(1, trees)
        offsets = tree * splits
        flat_feature, flat_threshold = feature.reshape(-1), threshold.reshape(-1)
        # Nodes numbered across the trees (tree * splits + k): one lookup per table.
        node = offsets.expand(vectors.shape[0], trees).clone()
        levels = min(int(cast(torch.Tensor, self.levels)), self.depth)
        for _ in range(levels):
            right = vectors.gather(1, flat_feature.take(node)) > flat_threshold.take(node)
            node.mul_(2).add_(1 - offsets).add_(right)  # k -> 2k + 1 + right
        # Leftmost descendant on the last level (all of a leaf's descendants repeat it).
        node = (node - offsets + 1) * 2 ** (self.depth - levels) - 1
        leaf = tree * (splits + 1) + node - splits  # leaves: 2**depth = splits + 1 per tree
        return leaves.reshape(-1, leaves.shape[-1])[leaf].mean(dim=1)

    def classify_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(C, n)`` of feature columns ``(F, n)``, chunk by chunk
        (no transposed copy of all the features).

        Parameters
        ----------
        feats : torch.Tensor

        Returns
        -------
        torch.Tensor
        """
        out = torch.empty(self.num_classes, feats.shape[-1], device=feats.device)
        for i in range(0, feats.shape[-1], CHUNK):
            out[:, i : i + CHUNK] = self.classify_vectors(feats[:, i : i + CHUNK].T.contiguous()).T
        return out

    def logits_of_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Class logits ``(C, n)`` of feature columns ``(F, n)``: the log of their
        probabilities, floored at :data:`MIN_PROBABILITY`.

        Parameters
        ----------
        feats : torch.Tensor

        Returns
        -------
        torch.Tensor
        """
        return self.classify_features(feats).clamp_min_(MIN_PROBABILITY).log_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (log-probabilities) of every pixel of ``x`` ``(N, C, *spatial)``.

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        torch.Tensor
        """
        # fp32 whatever the caller's autocast: the thresholds were fitted on fp32 features
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._log_probabilities(x.float()).to(x.dtype)

    def _log_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Slab by slab along the first spatial axis, so that the features held at
        once stay within :data:`FEATURE_BYTES` whatever the input's size."""
        spatial = tuple(x.shape[2:])
        out = x.new_empty((x.shape[0], self.num_classes, *spatial))
        coarse = self.features.coarse(x)
        per_slice = self.features.out_channels * 4 * math.prod(spatial[1:])
        step = max(1, FEATURE_BYTES // per_slice)
        for start in range(0, spatial[0], step):
            rows = slice(start, min(spatial[0], start + step))
            feats = self.features.region(x, (rows,) + (slice(None),) * (len(spatial) - 1), coarse)
            flat = feats.reshape(*feats.shape[:2], -1)
            logits = torch.stack([self.logits_of_features(flat[b]) for b in range(len(flat))])
            out[:, :, rows] = logits.reshape(feats.shape[0], -1, *feats.shape[2:])
        return out


def build_pixel_classifier(spec: ModelSpec, arch: Architecture) -> tuple[nn.Module, int]:
    """The registry's builder: an unfitted classifier for ``spec``.

    Parameters
    ----------
    spec : ModelSpec
    arch : Architecture

    Returns
    -------
    net : PixelClassifierNet
    size_multiple : int
        1: any input size works.
    """
    net = PixelClassifierNet(
        spec.in_channels,
        spec.num_classes,
        spec.spatial_dims,
        sigmas_for(arch.option(spec, "max_sigma")),
        arch.option(spec, "trees"),
        arch.option(spec, "depth"),
        spec.spacing,
    )
    return net, 1
