"""Training data from (volume, labels) pairs for 3D networks: patches and held-out slabs.

The 3D counterpart of :class:`~napari_seg.training.data.TrainingData`, with the
same interface for the training loop. Labels are scanned once, slab by slab
along the first axis (never a whole int64 copy of the volume), to count classes,
find which slices hold annotation and keep a sample of annotated positions per
class; images are read patch by patch.

Validation holds out whole slabs: with sparse labels (``label0="unlabelled"``:
a few annotated slices, or scribbles) a share of the annotated slices along the
axis the user drew (:func:`napari_seg.refine.slices.choose_slice_axis`), each
scored against its own annotation; with dense labels, slabs one patch thick along
the first axis. Held-out voxels give no gradient until
:meth:`VolumeData.release_held_out`.

With ``fill=True`` (sparse labels), the voxels nobody painted get the classes
:func:`napari_seg.refine.interpolate_slices` (shape-based) fills in from the
training slices (held-out slices left out, so validation stays honest), coded
as ``FILLED + class`` so that the loss can weigh them lower than painted voxels.

A 3D pixel classifier is fitted on :meth:`VolumeData.window_pairs` instead of
patches: the boxes of the painted voxels, with the image context its filters need.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from .._types import RegionArray
from ..arrays.chunk_cache import cached_images
from ..arrays.layout import ImageLayout, resolve_layout
from ..arrays.normalize import IntensityStats, compute_stats
from ..limits import MAX_UNSTATED_CLASSES
from ..models.spec import Normalization
from ._boxes import Slab, annotated_box, blocks_over, cubes, within
from ._shared import (
    FILLED,
    IGNORE_INDEX,
    LabelMode,
    Window,
    as_pairs,
    batches,
    check_annotations,
    check_labels_shape,
    class_ids_of,
    class_limit,
    intensity_notes,
    pad_patch,
    pair_names,
)
from ._slabs import Scan, by_class, hold_out_slabs, scan_labels

logger = logging.getLogger(__name__)

#: At most this many patch-sized blocks are predicted per validation.
MAX_VALIDATION_BLOCKS = 48


@dataclass
class _Volume:
    """One (image, labels) pair with its layout and statistics."""

    name: str
    image: RegionArray
    labels: RegionArray
    layout: ImageLayout
    stats: IntensityStats


class VolumeData(LabelMode):
    """Patches and held-out slabs drawn from labelled volumes (3D networks).

    Parameters
    ----------
    pairs : sequence of (image, labels)
        Images ``(Z, Y, X)`` or with a channel axis; labels ``(Z, Y, X)`` of
        integer ids >= 0.
    in_channels : int
    normalization : Normalization
    label0 : {"unlabelled", "background"}
    patch : sequence of 3 int
        Patch size along each axis.
    validation_fraction : float
        Share of the annotated slices (sparse) or of the slabs (dense) held out.
    channel_axis : int, optional
    seed : int
        Seed of the choice of held-out slabs.
    names : sequence of str, optional
    max_classes : int
        Label ids must be below it (``_shared.check_class_ids``).

    Raises
    ------
    ValueError, TypeError
        Naming the pair and the problem (not a volume, shapes that differ,
        float labels, nothing annotated...).
    """

    def __init__(
        self,
        pairs,
        *,
        in_channels: int,
        normalization: Normalization,
        label0: str,
        patch: Sequence[int],
        validation_fraction: float = 0.2,
        channel_axis: int | None = None,
        seed: int = 0,
        names: Sequence[str] | None = None,
        max_classes: int = MAX_UNSTATED_CLASSES,
        fill: bool = False,
    ) -> None:
        pairs = cached_images(as_pairs(pairs))
        self.label0 = label0
        self.max_classes = class_limit(max_classes)
        self.patch = tuple(int(p) for p in patch)
        self.warnings: list[str] = []
        names = pair_names(names, len(pairs))
        self.sources = [
            _volume(name, image, labels, in_channels, normalization, channel_axis)
            for name, (image, labels) in zip(names, pairs, strict=True)
        ]
        self.warnings += intensity_notes(self.sources)
        read = [partial(self._read_labels, v) for v in self.sources]
        scans = [
            scan_labels(v.name, r, v.layout.spatial_shape, self, self.max_classes)
            for v, r in zip(self.sources, read, strict=True)
        ]
        k = max(scan.counts[0].shape[1] for scan in scans)
        self.max_label = k - 1
        rng = np.random.default_rng(seed)
        self.regions: list[Slab] = []
        for s, scan in enumerate(scans):
            thick = None if self.sparse else self.patch[0]
            slabs, warnings = hold_out_slabs(
                s, self.sources[s].name, scan, rng, validation_fraction, thick
            )
            self.regions += slabs
            self.warnings += warnings
        self._all_positions = by_class(scans)
        self._positions = self._training_positions(self._all_positions)
        self.class_counts = self._training_counts(scans, k)
        self.annotated_pixels = int(self.class_counts.sum())
        sizes = [np.prod(v.layout.spatial_shape) for v in self.sources]
        self._source_weights = np.asarray(sizes, float) / np.sum(sizes)
        check_annotations(self.class_counts, label0, names, self.warnings)
        self._filled = [self._fill(s) for s in range(len(self.sources))] if fill else []

    # -- holding out -----------------------------------------------------------------------
    def _slabs(self, s: int) -> list[Slab]:
        """The held-out slabs of pair ``s``."""
        return [r for r in self.regions if r.source == s]

    def _training_positions(self, every: dict[int, list]) -> dict[int, list]:
        """``every`` (class -> [(pair, positions)]) without the positions in held-out slabs."""
        out: dict[int, list] = {}
        for c, groups in every.items():
            for s, where in groups:
                keep = np.ones(len(where), bool)
                for slab in self._slabs(s):
                    along = where[:, slab.axis]
                    keep &= (along < slab.start) | (along >= slab.stop)
                if keep.any():
                    out.setdefault(c, []).append((s, where[keep]))
        return out

    def _training_counts(self, scans: list[Scan], k: int) -> np.ndarray:
        counts = np.zeros(k, np.int64)
        for s, scan in enumerate(scans):
            counts[: scan.counts[0].shape[1]] += scan.counts[0].sum(axis=0)
            for slab in self._slabs(s):
                held = scan.counts[slab.axis][slab.start : slab.stop].sum(axis=0)
                counts[: len(held)] -= held
        return counts

    def _fill(self, s: int) -> np.ndarray | None:
        """The training slices filled in between (held-out slabs cleared first), or
        None when there is nothing between slices to fill."""
        from ..refine.slices import interpolate_slices

        if not self.sparse:
            return None
        labels = self._read_labels(self.sources[s])
        labels = np.maximum(labels, 0, out=labels)  # ignored voxels: not painted
        labels = labels.astype(np.uint8 if self.max_label < 256 else np.int32)
        for slab in self._slabs(s):
            labels[slab.index()] = 0
        try:
            return interpolate_slices(labels, method="shape")
        except ValueError as exc:  # fewer than two annotated slices: nothing to fill
            self.warnings.append(f"{self.sources[s].name}: no targets filled in ({exc})")
            return None

    def release_held_out(self) -> None:
        """Let the held-out slabs train too (after validation); no regions remain."""
        self.regions = []
        self._positions = self._all_positions

    # -- reading --------------------------------------------------------------------------
    def _read_labels(self, volume: _Volume, *region: slice) -> np.ndarray:
        """A copy of a region's labels as int64, which the caller may change (an int64
        array in memory would otherwise be a view of the user's labels)."""
        full = [*region, *(slice(None),) * (3 - len(region))]
        index = volume.layout.output_index(volume.layout.plane_at(0), *full)
        return np.array(volume.labels[index], dtype=np.int64)

    def _read_image(self, volume: _Volume, region: Sequence[slice]) -> np.ndarray:
        return volume.stats.apply(
            volume.layout.read(volume.image, volume.layout.plane_at(0), *region)
        )

    def _target(self, s: int, region: Sequence[slice], lab: np.ndarray | None = None) -> np.ndarray:
        """Targets of a region: ids, with unannotated and held-out voxels ignored
        (from its labels ``lab`` when already read, which stay as they are)."""
        lab = self._read_labels(self.sources[s], *region) if lab is None else lab.copy()
        if self.sparse:
            filled = self._filled[s] if self._filled else None
            if filled is not None:
                guess = filled[tuple(region)].astype(np.int64)
                lab = np.where((lab == 0) & (guess > 0), guess + FILLED, lab)
            lab[lab == 0] = IGNORE_INDEX
        for slab in self._slabs(s):
            inside = within(slab, region)
            if inside is not None:
                lab[inside] = IGNORE_INDEX
        return lab

    def _held_target(self, s: int, region: Sequence[slice], lab: np.ndarray) -> np.ndarray:
        """Targets of a region scored by validation: the held-out slabs' annotated
        voxels of its labels ``lab``; everything else ignored."""
        target = np.full(lab.shape, IGNORE_INDEX, np.int64)
        for slab in self._slabs(s):
            inside = within(slab, region)
            if inside is not None:
                target[inside] = lab[inside]
        if self.sparse:
            target[target == 0] = IGNORE_INDEX
        return target

    def window_pairs(
        self, size: int, margin: int | Sequence[int]
    ) -> Iterator[tuple[int, int, Window | None, np.ndarray | None]]:
        """Every block of up to ``size`` voxels a side, cut to the box of its painted
        voxels (training and held-out: a few annotated slices give thin boxes) and
        read with ``margin`` voxels of image context.

        Parameters
        ----------
        size : int
        margin : int or sequence of int
            One for every axis, or one per axis.

        Yields
        ------
        done, total : int
            Blocks visited so far (this one included), and in all.
        window : Window or None
            Its target is the training annotation of the box; None for a block
            without painted voxels. Keyed by the pair and the outer box.
        held : ndarray or None
            The held-out annotation of the same box, which validation scores.
        """
        blocks = [
            (s, block)
            for s, volume in enumerate(self.sources)
            for block in cubes(volume.layout.spatial_shape, size)
        ]
        for done, (s, block) in enumerate(blocks, start=1):
            lab = self._read_labels(self.sources[s], *block)  # read once for both
            held = self._held_target(s, block, lab)
            target = self._target(s, block, lab)
            target[target >= FILLED] = IGNORE_INDEX  # painted voxels only
            box = annotated_box((target != IGNORE_INDEX) | (held != IGNORE_INDEX))
            if box is None:
                yield done, len(blocks), None, None
                continue
            yield done, len(blocks), self._window(s, block, box, margin, target[box]), held[box]

    def _window(
        self,
        s: int,
        block: list[slice],
        box: tuple[slice, ...],
        margin: int | Sequence[int],
        target: np.ndarray,
    ) -> Window:
        """The window of ``box`` (in ``block``'s coordinates) with its image context."""
        shape = self.sources[s].layout.spatial_shape
        inner = [
            slice(b.start + i.start, b.start + i.stop) for b, i in zip(block, box, strict=True)
        ]
        margins = [margin] * len(shape) if isinstance(margin, int) else list(margin)
        outer = [
            slice(max(0, i.start - m), min(n, i.stop + m))
            for i, n, m in zip(inner, shape, margins, strict=True)
        ]
        within = tuple(
            slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True)
        )
        key = (s, *((o.start, o.stop) for o in outer))
        return Window(key, self._read_image(self.sources[s], outer), target, within)

    def patch_at(self, s: int, centre: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The patch centred on ``centre``; parts outside the volume are padded
        (image mirrored, targets ignored).

        Patches are not moved inside the volume: a network that pools is not
        shift-invariant, and with a few annotated slices, moving patches inside
        would show it those slices at a few positions within the patch only
        (it then fails between them).

        Parameters
        ----------
        s : int
            The pair.
        centre : sequence of 3 int

        Returns
        -------
        image : ndarray of float32, ``(C, *patch)``
        target : ndarray of int64, ``patch``
        """
        shape = self.sources[s].layout.spatial_shape
        region, before = [], []
        for c, p, n in zip(centre, self.patch, shape, strict=True):
            start = int(np.clip(c, 0, n - 1)) - p // 2
            region.append(slice(max(0, start), min(n, start + p)))
            before.append(max(0, -start))
        image = self._read_image(self.sources[s], region)
        target = self._target(s, region)
        if any(before):
            widths = [(b, 0) for b in before]
            fits = all(b < n for b, n in zip(before, target.shape, strict=True))
            image = np.pad(image, [(0, 0), *widths], mode="reflect" if fits else "edge")
            target = np.pad(target, widths, constant_values=IGNORE_INDEX)
        return pad_patch(image, target, self.patch)

    # -- sampling --------------------------------------------------------------------
    def sample(
        self, rng: np.random.Generator, batch_size: int, sample_annotated: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """A batch of patches: centred on an annotated voxel of a class drawn uniformly
        with probability ``sample_annotated``, anywhere otherwise.

        Parameters
        ----------
        rng : numpy.random.Generator
        batch_size : int
        sample_annotated : float

        Returns
        -------
        images : ndarray of float32, ``(B, C, D, H, W)``
        targets : ndarray of int64, ``(B, D, H, W)``
        """
        images, targets = [], []
        classes = sorted(self._positions)
        for _ in range(batch_size):
            if classes and rng.random() < sample_annotated:
                groups = self._positions[classes[int(rng.integers(len(classes)))]]
                sizes = np.array([len(w) for _, w in groups], float)
                s, where = groups[int(rng.choice(len(groups), p=sizes / sizes.sum()))]
                jitter = [int(rng.integers(-(p // 4), p // 4 + 1)) for p in self.patch]
                centre = [
                    int(v) + j for v, j in zip(where[rng.integers(len(where))], jitter, strict=True)
                ]
            else:
                s = int(rng.choice(len(self.sources), p=self._source_weights))
                centre = [int(rng.integers(n)) for n in self.sources[s].layout.spatial_shape]
            image, target = self.patch_at(s, centre)
            images.append(image)
            targets.append(target)
        return np.stack(images), np.stack(targets)

    # -- validation --------------------------------------------------------------------
    def validation_batches(self, batch_size: int) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
        """Patch-sized blocks covering the held-out slabs, with the image around them;
        targets are ignored outside the slab.

        Parameters
        ----------
        batch_size : int

        Yields
        ------
        list of (image, target)
        """
        yield from batches(self._validation_items(), batch_size)

    def _validation_items(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        made = 0
        for slab in self.regions:
            volume = self.sources[slab.source]
            shape = volume.layout.spatial_shape
            for region in blocks_over(slab, shape, self.patch):
                if made >= MAX_VALIDATION_BLOCKS:
                    return
                lab = self._read_labels(volume, *region)
                target = np.full(lab.shape, IGNORE_INDEX, np.int64)
                inside = within(slab, region)
                if inside is not None:
                    target[inside] = lab[inside]
                if self.sparse:
                    target[target == 0] = IGNORE_INDEX
                if not (target != IGNORE_INDEX).any():
                    continue
                made += 1
                yield pad_patch(self._read_image(volume, region), target, self.patch)


def _volume(name, image, labels, in_channels, normalization, channel_axis) -> _Volume:
    try:
        layout = resolve_layout(
            image.shape, in_channels=in_channels, channel_axis=channel_axis, spatial_dims=3
        )
    except ValueError as exc:
        raise ValueError(f"{name}: {exc} (a 3D model trains on volumes)") from None
    if layout.n_planes != 1:
        raise ValueError(
            f"{name}: image of shape {tuple(image.shape)} holds {layout.n_planes} volumes; "
            "train a 3D model on one volume per pair (split a time series into pairs)"
        )
    check_labels_shape(name, labels, image, layout.output_shape)
    labels = class_ids_of(name, labels)
    return _Volume(name, image, labels, layout, compute_stats(image, layout, normalization))
