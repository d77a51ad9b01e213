"""Predicting at the model's spacing: resample the image, predict, bring the result back.

The image is resampled linearly to the model's voxel size along the axes the
model sees; the class probabilities are resampled linearly back to the image's
grid and the labels are their argmax there (smoother than nearest-neighbour
labels, and the same ids).

Neither grid is ever held whole. The tiled prediction reads its tiles from
:class:`ResampledImage`, which resamples each region it is asked for from the
part of the image that region needs. The prediction writes its probabilities
band by band (:mod:`._bands`) into :class:`ResampleBack`, which keeps the last
band rows it was given, resamples every image row they determine and writes its
labels (and probabilities) at once. Memory is bounded by the tiles and one band,
as without resampling, never by the image's length along the band axis.

Linear interpolation is separable: along each axis, output ``j`` of ``n_out``
reads inputs ``i0 = floor(s)`` and ``i1 = min(i0 + 1, n_in - 1)`` with
``s = max((j + 0.5) n_in / n_out - 0.5, 0)``, weighted ``1 - (s - i0)`` and
``s - i0`` (the grids share their outer edges, as ``torch.nn.functional.interpolate``
with ``align_corners=False``). A voxel's value therefore does not depend on which
region it was computed in: a region is exactly the same voxels of the whole.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._units import unit_symbol
from ..arrays.layout import ImageLayout, size_rule, too_small
from ..arrays.normalize import IntensityStats
from ..limits import MAX_UPSAMPLE
from ._bands import WRITE_VOXELS
from .config import PredictConfig
from .events import PredictEvent, PredictResult, PredictStarted
from .tiling import band_axis_for

#: Spacings closer than this (relative) are taken as equal: no resampling.
SPACING_TOLERANCE = 1e-3


def resampled_sizes(
    sizes: Sequence[int],
    spacing: Sequence[float],
    target: Sequence[float],
    unit: str | None = None,
) -> tuple[int, ...] | None:
    """The sizes of the spatial axes at the ``target`` spacing, or None when the two
    spacings agree (within :data:`SPACING_TOLERANCE`).

    Parameters
    ----------
    sizes : sequence of int
    spacing, target : sequence of float
    unit : str, optional
        The length unit both spacings are in, when it is known (the image's
        converted to the model's): named in errors instead of asking whether the
        two share one.

    Returns
    -------
    tuple of int or None

    Raises
    ------
    ValueError
        When the spacings do not fit the axes, when an axis would be resampled more
        than ``limits.MAX_UPSAMPLE`` times finer, or would become shorter than
        the size ``arrays.layout.too_small`` refuses (both usually a unit mix-up).
    """
    if len(spacing) != len(target) or len(sizes) != len(target):
        raise ValueError(
            f"the image spacing {tuple(spacing)} and the model's {tuple(target)} must have "
            f"one value per axis the model sees ({len(sizes)})"
        )
    ratios = [s / t for s, t in zip(spacing, target, strict=True)]
    if all(abs(r - 1) <= SPACING_TOLERANCE for r in ratios):
        return None
    pair = f"the image's spacing {_brief(spacing)} and the model's {_brief(target)}"
    if unit is not None:
        pair += f" (both in {unit_symbol(unit)})"
        hint = "is the image's spacing right? (--spacing, its file's header or its layer's scale)"
    else:
        hint = (
            "are both in the same unit? (the image's is --spacing, its file's header or its "
            "layer's scale)"
        )
    for k, r in enumerate(ratios):
        if r > MAX_UPSAMPLE:  # also an overflow to inf
            raise ValueError(
                f"{pair} differ {r:.4g}x along axis {k}; resampling the image more than "
                f"{MAX_UPSAMPLE}x finer is refused: {hint}"
            )
    resampled = tuple(max(1, round(n * r)) for n, r in zip(sizes, ratios, strict=True))
    if too_small(resampled):
        raise ValueError(
            f"at the model's spacing the image would be {'x'.join(map(str, resampled))} "
            f"voxels, too few ({size_rule(len(resampled))}; {pair}): {hint}"
        )
    return resampled


def _brief(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


@dataclass(frozen=True)
class LinearAxis:
    """Linear interpolation from ``n_in`` samples to ``n_out`` along one axis."""

    n_in: int
    n_out: int

    def taps(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inputs ``i0``, ``i1`` and the weight ``w`` of ``i1`` for outputs ``[start, stop)``.

        Parameters
        ----------
        start, stop : int

        Returns
        -------
        i0, i1 : ndarray of int64
        w : ndarray of float32
        """
        j = np.arange(start, stop, dtype=np.float64)
        source = np.maximum((j + 0.5) * (self.n_in / self.n_out) - 0.5, 0.0)
        i0 = np.minimum(np.floor(source).astype(np.int64), self.n_in - 1)
        i1 = np.minimum(i0 + 1, self.n_in - 1)
        return i0, i1, (source - i0).astype(np.float32)

    def source(self, start: int, stop: int) -> tuple[int, int]:
        """The inputs ``[lo, hi)`` that outputs ``[start, stop)`` read."""
        if stop <= start:
            return 0, 0
        i0, _, _ = self.taps(start, start + 1)
        _, i1, _ = self.taps(stop - 1, stop)
        return int(i0[0]), int(i1[0]) + 1

    def apply(self, array: np.ndarray, axis: int, start: int, stop: int, offset: int) -> np.ndarray:
        """Outputs ``[start, stop)`` along ``axis`` of ``array``, whose first entry
        along ``axis`` is input ``offset``.

        Parameters
        ----------
        array : ndarray (float32)
        axis : int
        start, stop : int
        offset : int

        Returns
        -------
        ndarray (float32)
        """
        i0, i1, w = self.taps(start, stop)
        shape = [1] * array.ndim
        shape[axis] = len(w)
        w = w.reshape(shape)
        low = np.take(array, i0 - offset, axis=axis)
        high = np.take(array, i1 - offset, axis=axis)
        low *= 1 - w
        high *= w
        low += high
        return low


class ResampledImage:
    """``image`` at other sizes along ``layout.spatial_axes``, resampled region by region.

    A read-only array (float32) of the image's shape with the spatial sizes
    replaced: indexing it with ints and unit-step slices reads only the part of
    ``image`` the region needs (one voxel beyond it where interpolation reaches).

    Parameters
    ----------
    image : array-like
        numpy, dask or zarr array laid out as ``layout``.
    layout : ImageLayout
    sizes : sequence of int
        The new sizes of ``layout.spatial_axes``.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, image: Any, layout: ImageLayout, sizes: Sequence[int]) -> None:
        self.image = image
        shape = list(layout.shape)
        self.axes: dict[int, LinearAxis] = {}
        for a, n in zip(layout.spatial_axes, sizes, strict=True):
            self.axes[a] = LinearAxis(layout.shape[a], int(n))
            shape[a] = int(n)
        self.shape = tuple(shape)
        self.ndim = len(shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        if len(index) > self.ndim or any(part is Ellipsis or part is None for part in index):
            raise IndexError("a resampled image takes one int or slice per axis")
        index = index + (slice(None),) * (self.ndim - len(index))
        source = list(index)
        steps = []
        for a, axis in self.axes.items():
            part = index[a]
            if isinstance(part, (int, np.integer)):
                i = int(part) + axis.n_out if part < 0 else int(part)
                if not 0 <= i < axis.n_out:
                    raise IndexError(f"index {part} is out of bounds for size {axis.n_out}")
                part = slice(i, i + 1)  # read as a slice, dropped below
            start, stop, step = part.indices(axis.n_out)
            if step != 1:
                raise IndexError("a resampled image takes unit-step slices along its spatial axes")
            stop = max(start, stop)
            lo, hi = axis.source(start, stop)
            source[a] = slice(lo, hi)
            steps.append((a, axis, start, stop, lo))
        block = np.asarray(self.image[tuple(source)], dtype=np.float32)
        dropped = [a for a, part in enumerate(index) if isinstance(part, (int, np.integer))]
        for a, axis, start, stop, lo in steps:
            position = a - sum(d < a for d in dropped if d not in self.axes)
            block = axis.apply(block, position, start, stop, lo)
        picks = tuple(
            0 if a in self.axes and a in dropped else slice(None)
            for a in range(self.ndim)
            if a not in dropped or a in self.axes
        )
        return block[picks]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[tuple(slice(None) for _ in self.shape)]
        return whole if dtype is None else whole.astype(dtype, copy=False)


class ResampleBack:
    """The probabilities output of a prediction on a :class:`ResampledImage`.

    It takes the band writes of :class:`._bands.BandAccumulator` (class axis
    first, then the resampled labels' axes; bands in order along the band axis of
    each plane), resamples them to the image's grid and writes the labels (the
    argmax) and, when given, the probabilities of every image row they settle.
    It holds only the band rows still needed.

    Parameters
    ----------
    inner, outer : ImageLayout
        The resampled image's layout and the image's.
    num_classes : int
    labels_out : array-like
        The image's labels.
    probabilities_out : array-like or None
        The image's probabilities, when asked for.
    box : tuple of (int, int), optional
        Only this box of the image (``[start, stop)`` per spatial axis), for a block
        of a block-wise run: the prediction then runs on :attr:`inner_box`.
    """

    dtype = np.dtype(np.float16)

    def __init__(
        self,
        inner: ImageLayout,
        outer: ImageLayout,
        num_classes: int,
        labels_out: Any,
        probabilities_out: Any = None,
        box: tuple[tuple[int, int], ...] | None = None,
    ) -> None:
        if list(inner.spatial_axes) != sorted(inner.spatial_axes):
            raise ValueError("the spatial axes must be in the array's order")
        self.outer = outer
        self.labels_out, self.probabilities_out = labels_out, probabilities_out
        self.shape = (num_classes, *inner.output_shape)
        channel = inner.channel_axis
        #: Where each spatial axis lies among the labels' axes.
        self.positions = [a - (channel is not None and channel < a) for a in inner.spatial_axes]
        self.band = band_axis_for(inner.spatial_shape)
        self.axes = [
            LinearAxis(n_in, n_out)
            for n_in, n_out in zip(inner.spatial_shape, outer.spatial_shape, strict=True)
        ]
        #: The image's box written, and the resampled grid's box it reads (all of
        #: it for the whole image, also where the outermost rows weigh nothing).
        if box is None:
            self.box = tuple((0, n) for n in outer.spatial_shape)
            self.inner_box = tuple((0, n) for n in inner.spatial_shape)
        else:
            self.box = tuple(box)
            self.inner_box = tuple(
                axis.source(a, b) for axis, (a, b) in zip(self.axes, self.box, strict=True)
            )
        self._reset(None)

    def _reset(self, plane: tuple | None) -> None:
        self.plane = plane
        self.rows: np.ndarray | None = None  # band rows kept, resampled across the band
        self.first = self.received = self.inner_box[self.band][0]  # rows[0]; next expected
        self.written = self.box[self.band][0]  # the next image row to write

    def __setitem__(self, where: tuple, values: np.ndarray) -> None:
        index = (*where[1:], *(slice(None),) * (len(self.shape) - len(where)))
        plane = tuple(
            part for p, part in enumerate(index) if p not in self.positions
        )  # ints: the position along the stack axes
        band = self.axes[self.band]
        y0, y1, _ = index[self.positions[self.band]].indices(band.n_in)
        if y0 == self.inner_box[self.band][0]:  # a new plane, or again after a back-off
            self._reset(plane)
        elif plane != self.plane or y0 != self.received:
            raise RuntimeError(
                f"band rows {y0}-{y1} of plane {plane} arrived out of order "
                f"(expected {self.received} of {self.plane})"
            )
        rows = np.asarray(values, dtype=np.float32)
        for k, axis in enumerate(self.axes):
            if k != self.band:
                start, stop, _ = index[self.positions[k]].indices(axis.n_in)
                if (start, stop) != self.inner_box[k]:
                    raise RuntimeError("a band write must span the axes across the band")
                rows = axis.apply(rows, 1 + k, *self.box[k], start)
        self.rows = (
            rows if self.rows is None else np.concatenate([self.rows, rows], axis=1 + self.band)
        )
        self.received = y1
        self._write_settled()

    def _write_settled(self) -> None:
        """Write the image rows whose inputs have all arrived; drop the rows no longer read."""
        band = self.axes[self.band]
        end = self.box[self.band][1]
        if self.received >= self.inner_box[self.band][1]:
            settled = end
        else:
            _, i1, _ = band.taps(self.written, end)
            settled = self.written + int(np.searchsorted(i1, self.received))
        across = [b - a for k, (a, b) in enumerate(self.box) if k != self.band]
        step = max(1, WRITE_VOXELS // max(1, math.prod(across)))
        assert self.rows is not None
        for start in range(self.written, settled, step):
            stop = min(settled, start + step)
            self._write_rows(
                band.apply(self.rows, 1 + self.band, start, stop, self.first), start, stop
            )
        self.written = settled
        if settled < end:
            keep, _ = band.source(settled, settled + 1)
            axis = 1 + self.band
            kept = np.arange(keep - self.first, self.rows.shape[axis])
            self.rows = np.take(self.rows, kept, axis=axis)
            self.first = keep

    def _write_rows(self, probs: np.ndarray, start: int, stop: int) -> None:
        region = [slice(a, b) for a, b in self.box]
        region[self.band] = slice(start, stop)
        assert self.plane is not None
        index = self.outer.output_index(self.plane, *region)
        labels_dtype = np.dtype(self.labels_out.dtype)
        self.labels_out[index] = probs.argmax(axis=0).astype(labels_dtype)
        if self.probabilities_out is not None:
            every_class = (slice(None), *index)
            self.probabilities_out[every_class] = probs


class _Discard:
    """An output that drops what is written to it (the resampled grid's labels)."""

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape, self.dtype = shape, np.dtype(dtype)

    def __setitem__(self, where: Any, value: Any) -> None:
        pass


def run_resampled(
    predictor_class: Any,
    model: Any,
    image: Any,
    config: PredictConfig,
    layout: ImageLayout,
    sizes: tuple[int, ...],
    out: Any,
    probabilities_out: Any,
    stats: IntensityStats,
    *,
    box: tuple[tuple[int, int], ...] | None = None,
    planes: range | None = None,
) -> Generator[PredictEvent, None, PredictResult]:
    """Predict ``image`` resampled to ``sizes`` and return the result on its own grid.

    Parameters
    ----------
    predictor_class : type
        The predictor that runs the tiled prediction.
    model, image, config
        As for ``iter_predict``; ``config.spacing`` is ignored from here on.
    layout : ImageLayout
        The layout of ``image``.
    sizes : tuple of int
        The resampled sizes of ``layout.spatial_axes``.
    out : array-like
        The labels array to fill (of the image's grid).
    probabilities_out : array-like or None
        The probabilities array to fill, when asked for.
    stats : IntensityStats
        The image's normalisation statistics (resampling keeps its intensities).
    box, planes : optional
        One block of the image (:mod:`.blocks`): its box on the image's grid and
        its planes. The prediction then runs the resampled grid's tiles over the
        box's source region, bit-identical to a run on the whole image.

    Yields
    ------
    PredictEvent

    Returns
    -------
    PredictResult
    """
    resampled = ResampledImage(image, layout, sizes)
    inner = replace(layout, shape=resampled.shape)
    num_classes = model.spec.num_classes
    sink = ResampleBack(inner, layout, num_classes, out, probabilities_out, box=box)
    discard = _Discard(inner.output_shape, out.dtype)
    settings = config.with_(spacing=None, spacing_unit=None, probabilities=True)
    predictor = predictor_class(
        model, resampled, settings, discard, sink,
        box=None if box is None else sink.inner_box, planes=planes, stats=stats,
    )  # fmt: skip
    result = yield from _announcing(predictor.run(), tuple(sizes))
    return replace(result, labels=out, probabilities=probabilities_out)


def _announcing(run, sizes: tuple[int, ...]) -> Generator[PredictEvent, None, PredictResult]:
    """``run``'s events, its start saying the sizes it resamples to; closing this
    closes ``run`` (a cancel reaches the tile loop at once)."""
    try:
        while True:
            try:
                event = next(run)
            except StopIteration as stop:
                return stop.value
            yield replace(event, resampled=sizes) if isinstance(event, PredictStarted) else event
    finally:
        run.close()
