"""Training data from (image, labels) pairs: checks, held-out regions, balanced patches.

Images may be numpy, dask or zarr arrays of different sizes: 2D (with or
without channels) or stacks used as 2D planes along an axis. Images are read
patch by patch, never whole. Labels are scanned once, plane by plane, to count
classes, choose held-out validation regions and keep a sample of annotated
pixel positions per class, from which patch centres are drawn so that a few
strokes on a large image, and rare classes, are seen often.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np

from ..arrays.chunk_cache import cached_images
from ..arrays.layout import resolve_layout
from ..arrays.normalize import compute_stats
from ..limits import MAX_UNSTATED_CLASSES
from ..models.spec import Normalization
from ._held_out import Region, Source, block_counts, hold_out_blocks, hold_out_strokes
from ._shared import (
    FILLED,
    IGNORE_INDEX,
    POSITIONS_PER_CLASS,
    LabelMode,
    Window,
    as_pairs,
    batches,
    check_annotations,
    check_class_ids,
    check_labels_shape,
    class_ids_of,
    class_limit,
    intensity_notes,
    pad_patch,
    pair_names,
)
from .strokes import Stroke, find_strokes

__all__ = ["FILLED", "IGNORE_INDEX", "POSITIONS_PER_CLASS", "TrainingData", "Window", "as_pairs"]

logger = logging.getLogger(__name__)

#: Image context read around a validation region (pixels on each side).
VALIDATION_MARGIN = 16


class TrainingData(LabelMode):
    """Patches and validation regions drawn from labelled images.

    Parameters
    ----------
    pairs : sequence of (image, labels)
        Labels have the image's shape without its channel axis, integer ids >= 0.
    in_channels : int
        Channels the model reads.
    normalization : Normalization
        The model's input normalisation (statistics per image, as in inference).
    label0 : {"unlabelled", "background"}
    patch_size : int
    validation_fraction : float
        Share held out for validation: of the patch-sized blocks with dense labels,
        of the strokes (whole ones, per class) with sparse labels.
    axis : int or tuple of int, optional
        Stack axis (or axes) of the images.
    channel_axis : int, optional
        Channel axis of the images.
    seed : int
        Seed of the choice of held-out regions.
    names : sequence of str, optional
        Names of the pairs for messages (e.g. layer names).
    max_classes : int
        Label ids must be below it (``_shared.check_class_ids``).

    Raises
    ------
    ValueError, TypeError
        Naming the pair and the problem: shapes that differ, float or negative
        labels, no annotated pixel...
    """

    def __init__(
        self,
        pairs,
        *,
        in_channels: int,
        normalization: Normalization,
        label0: str,
        patch_size: int,
        validation_fraction: float = 0.2,
        axis: int | tuple[int, ...] | None = None,
        channel_axis: int | None = None,
        seed: int = 0,
        names: Sequence[str] | None = None,
        max_classes: int = MAX_UNSTATED_CLASSES,
    ) -> None:
        pairs = cached_images(as_pairs(pairs))
        self.label0 = label0
        self.max_classes = class_limit(max_classes)
        self.patch = int(patch_size)
        self.warnings: list[str] = []
        names = pair_names(names, len(pairs))
        self.sources = [
            self._source(name, image, labels, in_channels, normalization, axis, channel_axis)
            for name, (image, labels) in zip(names, pairs, strict=True)
        ]
        self.warnings += intensity_notes(self.sources)
        self._strokes: list[Stroke] = []
        self._held: dict[tuple[int, int], np.ndarray] = {}  # (pair, plane): held-out pixels
        positions, counts = self._scan()
        self.max_label = len(counts) - 1
        rng = np.random.default_rng(seed)
        if self.sparse:
            held_out = hold_out_strokes(
                self._strokes, self.sources, self.patch, rng, validation_fraction
            )
            self.regions, self._held = held_out.regions, held_out.pixels
        else:
            held_out = hold_out_blocks(self.sources, self.patch, rng, validation_fraction, counts)
            self.regions = held_out.regions
        self.warnings += held_out.warnings
        self._strokes = []  # their pixels live on in self._held
        self._positions = self._training_positions(positions)
        self.class_counts = self._training_counts(len(counts))
        self.annotated_pixels = int(self.class_counts.sum())
        sizes = [src.layout.n_planes * np.prod(src.layout.plane_shape) for src in self.sources]
        self._source_weights = np.asarray(sizes, float) / np.sum(sizes)
        self._check_annotations()

    # -- checks and scanning ---------------------------------------------------------
    def _source(self, name, image, labels, in_channels, normalization, axis, channel_axis):
        # The stack axis applies to stacks only, so 2D pairs can train beside stacks.
        n_other = len(image.shape) - (channel_axis is not None or in_channels > 1)
        try:
            layout = resolve_layout(
                image.shape,
                in_channels=in_channels,
                channel_axis=channel_axis,
                axis=axis if n_other > 2 else None,
            )
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        check_labels_shape(name, labels, image, layout.output_shape)
        labels = class_ids_of(name, labels)
        stats = compute_stats(image, layout, normalization)
        h, w = layout.plane_shape
        grid = (-(-h // self.patch), -(-w // self.patch))
        held_out = np.zeros((layout.n_planes, *grid), dtype=bool)
        return Source(name, image, labels, layout, stats, grid, held_out)

    def _scan(self) -> tuple[list, np.ndarray]:
        """Count labels per block and keep a sample of annotated positions per class."""
        rng = np.random.default_rng(12345)
        positions: list[tuple[int, int, int, np.ndarray, np.ndarray]] = []
        total = np.zeros(1, dtype=np.int64)
        for s, src in enumerate(self.sources):
            for number, plane in enumerate(src.layout.planes()):
                lab = self._read_labels(src, plane, slice(None), slice(None))
                check_class_ids(src.name, lab, self.max_classes)
                annotated = self.annotated(lab)
                counts = block_counts(lab, annotated, self.patch, src.grid)
                src.block_counts.append(counts)
                if self.sparse:
                    self._strokes.extend(find_strokes(lab, s, number))
                if counts.shape[1] > total.size:
                    total = np.pad(total, (0, counts.shape[1] - total.size))
                total[: counts.shape[1]] += counts.sum(axis=0)
                for c in np.flatnonzero(counts.sum(axis=0)):
                    ys, xs = np.nonzero((lab == c) & annotated)
                    if ys.size > POSITIONS_PER_CLASS:
                        keep = rng.choice(ys.size, POSITIONS_PER_CLASS, replace=False)
                        ys, xs = ys[keep], xs[keep]
                    positions.append((int(c), s, number, ys.astype(np.int32), xs.astype(np.int32)))
        return positions, total

    def release_held_out(self) -> None:
        """Let the held-out annotations train too (after validation); no regions remain."""
        self._held = {}
        for src in self.sources:
            src.held_out[:] = False
        self.regions = []

    def _held_pixels(self, s: int, number: int, ys: slice, xs: slice) -> np.ndarray | None:
        """Held-out stroke pixels of a region (None when the plane has none)."""
        mask = self._held.get((s, number))
        return None if mask is None else mask[ys, xs]

    def _training_positions(self, positions) -> dict[int, list]:
        """Annotated positions outside held-out blocks or strokes, grouped by class."""
        out: dict[int, list] = {}
        for c, s, number, ys, xs in positions:
            src = self.sources[s]
            if self.sparse:
                mask = self._held.get((s, number))
                keep = np.ones(ys.shape, bool) if mask is None else ~mask[ys, xs]
            else:
                keep = ~src.held_out[number, ys // self.patch, xs // self.patch]
            if keep.any():
                out.setdefault(c, []).append((s, number, ys[keep], xs[keep]))
        return out

    def _training_counts(self, k: int) -> np.ndarray:
        counts = np.zeros(k, dtype=np.int64)
        for src in self.sources:
            for number, block in enumerate(src.block_counts):
                train = ~src.held_out[number].reshape(-1)
                counts[: block.shape[1]] += block[train].sum(axis=0)
        for (s, number), mask in self._held.items():
            src = self.sources[s]
            lab = self._read_labels(src, src.layout.plane_at(number), slice(None), slice(None))
            counts -= np.bincount(lab[mask], minlength=k)[:k]
        return counts

    def _check_annotations(self) -> None:
        check_annotations(
            self.class_counts, self.label0, [s.name for s in self.sources], self.warnings
        )

    # -- reading ---------------------------------------------------------------------
    def _read_labels(self, src: Source, plane, ys: slice, xs: slice) -> np.ndarray:
        """A copy of a region's labels as int64, which the caller may change (an int64
        array in memory would otherwise be a view of the user's labels)."""
        return np.array(src.labels[src.layout.output_index(plane, ys, xs)], dtype=np.int64)

    def _read_image(self, src: Source, plane, ys: slice, xs: slice) -> np.ndarray:
        return src.stats.apply(src.layout.read(src.image, plane, ys, xs))

    def _target(self, s: int, number: int, plane, ys: slice, xs: slice) -> np.ndarray:
        """Training targets of a region: ids, with unannotated and held-out pixels ignored."""
        src = self.sources[s]
        lab = self._read_labels(src, plane, ys, xs)
        if self.sparse:
            lab[lab == 0] = IGNORE_INDEX
            held = self._held_pixels(s, number, ys, xs)
            if held is not None:
                lab[held] = IGNORE_INDEX
            return lab
        rows = np.arange(ys.start, ys.stop) // self.patch
        cols = np.arange(xs.start, xs.stop) // self.patch
        held = src.held_out[number][np.ix_(rows, cols)]
        lab[held] = IGNORE_INDEX
        return lab

    # -- sampling --------------------------------------------------------------------
    def sample(
        self, rng: np.random.Generator, batch_size: int, sample_annotated: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """A batch of patches.

        Parameters
        ----------
        rng : numpy.random.Generator
        batch_size : int
        sample_annotated : float
            Probability that a patch is centred on an annotated pixel of a class drawn
            uniformly (the rest are placed anywhere).

        Returns
        -------
        images : ndarray of float32, ``(B, C, P, P)``
        targets : ndarray of int64, ``(B, P, P)``
        """
        images, targets = [], []
        classes = sorted(self._positions)
        for _ in range(batch_size):
            if classes and rng.random() < sample_annotated:
                s, number, cy, cx = self._annotated_centre(rng, classes)
            else:
                s, number, cy, cx = self._random_centre(rng)
            image, target = self.patch_at(s, number, cy, cx)
            images.append(image)
            targets.append(target)
        return np.stack(images), np.stack(targets)

    def _annotated_centre(self, rng, classes):
        groups = self._positions[classes[int(rng.integers(len(classes)))]]
        sizes = np.array([g[2].size for g in groups])
        g = int(rng.choice(len(groups), p=sizes / sizes.sum()))
        s, number, ys, xs = groups[g]
        i = int(rng.integers(ys.size))
        jitter = rng.integers(-self.patch // 4, self.patch // 4 + 1, size=2)
        return s, number, int(ys[i] + jitter[0]), int(xs[i] + jitter[1])

    def _random_centre(self, rng):
        s = int(rng.choice(len(self.sources), p=self._source_weights))
        src = self.sources[s]
        number = int(rng.integers(src.layout.n_planes))
        h, w = src.layout.plane_shape
        return s, number, int(rng.integers(h)), int(rng.integers(w))

    def patch_at(self, s: int, number: int, cy: int, cx: int) -> tuple[np.ndarray, np.ndarray]:
        """The patch centred near ``(cy, cx)`` (moved inside the plane; padded if it is small).

        Parameters
        ----------
        s : int
            The pair.
        number : int
            The plane of that pair.
        cy, cx : int
            The centre.

        Returns
        -------
        image : ndarray of float32, ``(C, P, P)``
        target : ndarray of int64, ``(P, P)``
        """
        src = self.sources[s]
        plane = src.layout.plane_at(number)
        h, w = src.layout.plane_shape
        p = self.patch
        y0 = int(np.clip(cy - p // 2, 0, max(0, h - p)))
        x0 = int(np.clip(cx - p // 2, 0, max(0, w - p)))
        ys, xs = slice(y0, min(h, y0 + p)), slice(x0, min(w, x0 + p))
        image = self._read_image(src, plane, ys, xs)
        target = self._target(s, number, plane, ys, xs)
        return pad_patch(image, target, p)

    def windows(self, size: int, margin: int) -> Iterator[Window]:
        """The regions holding training annotations, with ``margin`` pixels of context.

        Planes up to ``size`` x ``size`` pixels come whole; larger ones in
        ``size``-sided blocks (those with annotations that train).

        Parameters
        ----------
        size : int
        margin : int

        Yields
        ------
        Window
        """
        for s, src in enumerate(self.sources):
            h, w = src.layout.plane_shape
            for number, counts in enumerate(src.block_counts):
                if not self._trains_in_plane(s, number, counts):
                    continue
                plane = src.layout.plane_at(number)
                for ys, xs in _blocks((h, w), size):
                    target = self._target(s, number, plane, ys, xs)
                    if (target != IGNORE_INDEX).any():
                        yield self._window(s, number, ys, xs, margin, target)

    def image_windows(
        self, pair: int, number: int, size: int, margin: int, region: tuple[slice, slice]
    ) -> Iterator[Window]:
        """The windows of ``windows`` (same blocks, same keys) that meet ``region``
        of a plane, whether annotated or not; their targets are empty.

        Parameters
        ----------
        pair, number : int
            The pair and the plane number in it.
        size, margin : int
            As for ``windows``.
        region : tuple of slice
            Rows and columns of the plane (clipped to it).

        Yields
        ------
        Window
        """
        h, w = self.sources[pair].layout.plane_shape
        ry, rx = (slice(*r.indices(n)[:2]) for r, n in zip(region, (h, w), strict=True))
        for ys, xs in _blocks((h, w), size):
            if (
                ys.start < ry.stop
                and ry.start < ys.stop
                and xs.start < rx.stop
                and rx.start < xs.stop
            ):
                yield self._window(pair, number, ys, xs, margin, np.empty((0, 0), np.int64))

    def _window(
        self, s: int, number: int, ys: slice, xs: slice, margin: int, target: np.ndarray
    ) -> Window:
        src = self.sources[s]
        h, w = src.layout.plane_shape
        outer_y = slice(max(0, ys.start - margin), min(h, ys.stop + margin))
        outer_x = slice(max(0, xs.start - margin), min(w, xs.stop + margin))
        inner = (
            slice(ys.start - outer_y.start, ys.stop - outer_y.start),
            slice(xs.start - outer_x.start, xs.stop - outer_x.start),
        )
        image = self._read_image(src, src.layout.plane_at(number), outer_y, outer_x)
        key = (s, number, outer_y.start, outer_y.stop, outer_x.start, outer_x.stop)
        return Window(key, image, target, inner)

    def _trains_in_plane(self, s: int, number: int, counts: np.ndarray) -> bool:
        if not counts.any():
            return False
        if self.sparse:
            return True  # held-out strokes are masked in the targets
        train = ~self.sources[s].held_out[number].reshape(-1)
        return bool(counts[train].any())

    def validation_batches(self, batch_size: int) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
        """Held-out regions with image context: lists of (image, target) of equal size.

        Each image has ``VALIDATION_MARGIN`` pixels of context on every side
        where the plane has them; the target covers the image and is
        ``IGNORE_INDEX`` outside the region.

        Parameters
        ----------
        batch_size : int

        Yields
        ------
        list of (image, target)
        """
        yield from batches((self._validation_item(r) for r in self.regions), batch_size)

    def _validation_item(self, region: Region) -> tuple[np.ndarray, np.ndarray]:
        src = self.sources[region.source]
        plane = src.layout.plane_at(region.plane)
        h, w = src.layout.plane_shape
        m = VALIDATION_MARGIN
        ys = slice(max(0, region.ys.start - m), min(h, region.ys.stop + m))
        xs = slice(max(0, region.xs.start - m), min(w, region.xs.stop + m))
        image = self._read_image(src, plane, ys, xs)
        target = np.full(image.shape[1:], IGNORE_INDEX, dtype=np.int64)
        lab = self._read_labels(src, plane, region.ys, region.xs)
        if self.sparse:  # only the held-out strokes are scored
            held = self._held_pixels(region.source, region.plane, region.ys, region.xs)
            scored = (lab > 0) & held if held is not None else np.zeros(lab.shape, bool)
            lab[~scored] = IGNORE_INDEX
        inner = (
            slice(region.ys.start - ys.start, region.ys.stop - ys.start),
            slice(region.xs.start - xs.start, region.xs.stop - xs.start),
        )
        target[inner] = lab
        return pad_patch(image, target, self.patch + 2 * m)


def _blocks(shape: tuple[int, int], size: int) -> Iterator[tuple[slice, slice]]:
    """``size``-sided blocks covering a plane of ``shape`` (the last ones smaller)."""
    h, w = shape
    for y in range(0, h, size):
        for x in range(0, w, size):
            yield slice(y, min(h, y + size)), slice(x, min(w, x + size))
