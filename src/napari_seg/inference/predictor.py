"""Tiled, blended, cancellable prediction of images of any size."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._device import release_memory
from .._generators import drain
from .._types import RegionArray
from .._units import convert_lengths
from ..arrays.chunk_cache import cached_chunks
from ..arrays.layout import ImageLayout, resolve_layout
from ..arrays.normalize import IntensityStats, compute_stats
from ..arrays.runtime import Runtime, is_out_of_memory
from ..arrays.views import as_array, check_output_array
from ..models.wrapper import check_model, class_probabilities
from ._bands import BandAccumulator, CroppedOutput
from ._resample import resampled_sizes, run_resampled
from ._sizes import default_batch, default_tile
from .config import MIN_TILE, PredictConfig, check_overlap
from .events import (
    PredictEvent,
    PredictProgress,
    PredictResult,
    PredictStarted,
    PredictWarning,
    SettingsAdjusted,
)
from .tiling import TileGrid, band_axis_for, blending_window

if TYPE_CHECKING:
    from ..models.wrapper import SegmentationModel


#: Batches prepared ahead by the loader thread while the device computes.
PREFETCH = 2


def iter_predict(
    model: SegmentationModel,
    image: RegionArray,
    config: PredictConfig | None = None,
    *,
    out: RegionArray | None = None,
    probabilities_out: RegionArray | None = None,
    **options: Any,
) -> Generator[PredictEvent, None, PredictResult]:
    """Segment ``image`` tile by tile, yielding progress events.

    Parameters
    ----------
    model : SegmentationModel
        The network; it is moved to the configured device and put in eval mode.
    image : array-like
        numpy, dask or zarr array (or a torch tensor, read as NumPy): 2D, RGB(A),
        multichannel, or a stack/time series (give ``axis``). Read region by
        region, never whole.
    config : PredictConfig, optional
        Settings; keyword ``options`` override its fields.
    out : array-like, optional
        Integer array (numpy or zarr) of the labels' shape to write into.
        When not given a numpy array is allocated.
    probabilities_out : array-like, optional
        Float array of shape ``(num_classes, *labels.shape)`` for the
        probabilities (implies ``probabilities=True``).
    **options
        Fields of :class:`PredictConfig` that override ``config``'s.

    Yields
    ------
    PredictStarted, PredictProgress, SettingsAdjusted, PredictWarning
        One ``PredictProgress`` per batch; closing the generator cancels the
        job at the next batch and releases device memory.

    Returns
    -------
    PredictResult
        As the generator's return value (``StopIteration.value``).

    Raises
    ------
    ValueError, TypeError
        For inputs that do not fit the model, naming the problem.

    Examples
    --------
    >>> events = iter_predict(model, image, tile=256)  # doctest: +SKIP
    >>> for event in events:  # doctest: +SKIP
    ...     print(event)
    """
    config = PredictConfig.given(config, **options)  # a dict of settings too
    # Everything is checked here, before the first ``next``, so errors surface at the call.
    predictor = _Predictor(model, image, config, out, probabilities_out)
    sizes = predictor.resampled_sizes()
    if sizes is None:
        return predictor.run()
    return run_resampled(
        _Predictor,
        model,
        predictor.image,  # a tensor or a nested list as an array
        config,
        predictor.layout,
        sizes,
        predictor.labels,
        predictor.probabilities,
        predictor.stats,
    )


def predict(
    model: SegmentationModel,
    image: RegionArray,
    config: PredictConfig | None = None,
    **kwargs: Any,
) -> PredictResult:
    """Run :func:`iter_predict` to the end and return its result.

    Parameters
    ----------
    model : SegmentationModel
    image : array-like
    config : PredictConfig, optional
    **kwargs
        ``out``, ``probabilities_out`` and :class:`PredictConfig` fields, as for
        :func:`iter_predict`.

    Returns
    -------
    PredictResult

    Examples
    --------
    >>> result = predict(model, image, tile=256, overlap=64)  # doctest: +SKIP
    >>> result.labels.shape == image.shape  # doctest: +SKIP
    True
    """
    return drain(iter_predict(model, image, config, **kwargs))


class _Predictor:
    """One prediction: checked inputs, the resolved runtime and the tile loop.

    ``box`` (one ``(start, stop)`` per spatial axis) and ``planes`` (a range of
    plane numbers) restrict it to one block of the image: only the tiles of the
    whole image's grid that overlap the box run, and only the box is written to
    ``out`` (the whole image's labels), bit-identical to a run on the whole image
    given the same ``stats`` (:mod:`napari_seg.inference.blocks`).
    """

    def __init__(
        self,
        model,
        image,
        config: PredictConfig,
        out,
        probabilities_out,
        *,
        box: tuple[tuple[int, int], ...] | None = None,
        planes: range | None = None,
        stats: IntensityStats | None = None,
    ) -> None:
        self._resolve(model, image, config)
        spec = model.spec
        self.num_classes = spec.num_classes
        self.labels = _labels_out(out, self.layout, self.num_classes)
        want = config.probabilities or probabilities_out is not None
        self.probabilities = (
            _probabilities_out(probabilities_out, self.layout, self.num_classes) if want else None
        )
        self.warnings: list[str] = []
        self.box = box
        self.plane_range = planes if planes is not None else range(self.layout.n_planes)
        self.planes_done = self.plane_range.start
        self.stats = stats or compute_stats(self.image, self.layout, spec.normalization)

    @classmethod
    def settings(cls, model, image, config: PredictConfig) -> _Predictor:
        """The layout, device, tile, overlap and batch a run would use; nothing allocated."""
        predictor = cls.__new__(cls)
        predictor._resolve(model, image, config)
        return predictor

    def _resolve(self, model, image, config: PredictConfig) -> None:
        check_model(model, "predict(model, image)", other=image)  # first: named if swapped
        image = _checked_image(image)
        spec = model.spec
        self.model, self.image, self.config = model, image, config
        self.layout: ImageLayout = resolve_layout(
            np.shape(image),
            in_channels=spec.in_channels,
            channel_axis=config.channel_axis,
            axis=config.axis,
            spatial_dims=spec.spatial_dims,
        )
        spacing, seen = config.spacing, len(self.layout.spatial_shape)
        if spacing is not None and len(spacing) != seen:  # also when the model has none
            raise ValueError(
                f"spacing has {len(spacing)} values, but the model sees {seen} axes of the "
                f"image (shape {tuple(np.shape(image))}): give one per axis it sees, in order"
            )
        self.runtime = Runtime.resolve(
            config.device, config.precision, purpose="inference", threads=config.threads
        )
        self.device, self.precision = self.runtime.device, self.runtime.precision
        base = getattr(model.net, "preferred_tile", None)
        self.tile = default_tile(
            config, self.device, model.size_multiple, self.layout.plane_shape, base
        )
        overlap = config.overlap
        # A chosen tile smaller than the image needs an overlap below it; an image that
        # fits in one tile runs whatever the overlap (clipped here: one tile anyway).
        if config.tile is None and max(self.layout.plane_shape) > self.tile:
            check_overlap(overlap, self.tile, f"for {self.device.type}")
        if overlap is None:  # a network may say how much context its outputs need
            overlap = int(getattr(model.net, "preferred_overlap", self.tile // 4))
        self.overlap = min(overlap, self.tile - 1)
        self.batch = default_batch(config, self.device, self.tile, self.layout.spatial_dims)

    def resampled_sizes(self) -> tuple[int, ...] | None:
        """The spatial sizes at the model's spacing, or None when no resampling is needed.

        When the image's spacing and the model's both state their length unit, the
        image's is converted to the model's first (a model made for 0.5 mm voxels
        on a stack of 500 µm ones needs no resampling); else they are compared as
        numbers.
        """
        spec, spacing, unit = self.model.spec, self.config.spacing, self.config.spacing_unit
        if spacing is None or spec.spacing is None:
            return None
        if unit is not None and spec.spacing_unit is not None and unit != spec.spacing_unit:
            spacing, unit = convert_lengths(spacing, unit, spec.spacing_unit), spec.spacing_unit
        known = unit if unit is not None and unit == spec.spacing_unit else None
        return resampled_sizes(self.layout.spatial_shape, spacing, spec.spacing, known)

    def run(self) -> Generator[PredictEvent, None, PredictResult]:
        start = time.perf_counter()
        if message := self.stats.note:
            self.warnings.append(message)
            yield PredictWarning(message)
        model = self._prepare_model()
        try:
            yield self._started()
            yield from self._loop(start)
        finally:
            model.to(memory_format=torch.contiguous_format)
            release_memory(self.device)
        return PredictResult(
            labels=self.labels,
            probabilities=self.probabilities,
            device=str(self.device),
            precision=self.precision,
            tile=self.tile,
            overlap=self.overlap,
            batch_size=self.batch,
            seconds=time.perf_counter() - start,
            warnings=tuple(self.warnings),
        )

    def _loop(self, start: float) -> Iterator[PredictEvent]:
        with self.runtime.cpu_threads():
            while self.planes_done < self.plane_range.stop:
                try:
                    yield from self._run_planes(start)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    yield self._shrink(exc)

    def _prepare_model(self):
        # cuDNN's algorithm search (torch.backends.cudnn.benchmark) is left as the
        # user set it: on an H200 it took 0.7 s per new tile shape (Segment's visible
        # region changes shape with a pan) and gained nothing measurable in 2D and
        # about 2.5% of a 256^3 volume's time (docs/performance.md, "GPU").
        model = self.model.to(self.device).eval()
        if self.runtime.channels_last and self.layout.spatial_dims == 2:
            model.to(memory_format=torch.channels_last)  # 4D weights; 3D keeps its own
        return model

    def _grid(self) -> tuple[TileGrid, tuple[int, ...]]:
        """The tiles to run and where the grid's first pixel lies in the image."""
        shape = self.layout.plane_shape
        grid = TileGrid.build(shape, self.tile, self.overlap, band_axis=band_axis_for(shape))
        if self.box is None:
            return grid, (0,) * len(shape)
        return grid.restrict(self.box)

    def _outputs(self, offset: tuple[int, ...], grid: TileGrid) -> tuple[Any, Any]:
        """Where the band accumulator writes: the outputs, cropped to the box for a block."""
        if self.box is None:
            return self.labels, self.probabilities
        labels = CroppedOutput(self.labels, self.layout, offset, grid.shape, self.box)
        if self.probabilities is None:
            return labels, None
        probs = CroppedOutput(self.probabilities, self.layout, offset, grid.shape, self.box, 1)
        return labels, probs

    def _started(self) -> PredictStarted:
        return PredictStarted(
            device=str(self.device),
            device_description=self.runtime.description,
            precision=self.precision,
            tile=self.tile,
            overlap=self.overlap,
            batch_size=self.batch,
            tiles_total=len(self._grid()[0]) * len(self.plane_range),
            planes=self.layout.n_planes,
            mirrors=len(mirror_dims(self.layout.spatial_dims)) if self.config.tta else 1,
        )

    def _shrink(self, exc: BaseException) -> SettingsAdjusted:
        """Halve the batch, else the tile, after running out of memory."""
        release_memory(self.device, collect=True)
        if self.batch > 1:
            self.batch //= 2
            what = f"batch halved to {self.batch}"
        elif self.tile // 2 >= MIN_TILE:
            multiple = self.model.size_multiple
            self.tile = max(MIN_TILE, (self.tile // 2) // multiple * multiple or multiple)
            self.overlap = min(self.overlap, self.tile // 2)
            what = f"tile halved to {self.tile}"
        else:
            raise MemoryError(
                f"{self.device} ran out of memory even with batch 1 and a {self.tile}-pixel "
                "tile; free device memory or use the CPU"
            ) from exc
        reason = f"{self.device} ran out of memory; {what}, continuing"
        self.warnings.append(reason)
        return SettingsAdjusted(batch_size=self.batch, tile=self.tile, reason=reason)

    def _run_planes(self, start: float) -> Iterator[PredictEvent]:
        """Predict every plane from ``planes_done`` on, yielding after each batch."""
        grid, offset = self._grid()
        per_plane = len(grid)
        total = per_plane * len(self.plane_range)
        window = torch.from_numpy(
            blending_window(grid.tile_shape, mode=self.config.blending, overlap=grid.overlap)
        ).to(self.device)
        first = self.planes_done
        tiles = (
            (self.layout.plane_at(p), p, r, origin)
            for p in range(first, self.plane_range.stop)
            for r, *origin in grid
        )
        bands = BandAccumulator(
            grid, self.layout, self.num_classes, self.device, *self._outputs(offset, grid),
            window=window,
        )  # fmt: skip
        done = (first - self.plane_range.start) * per_plane
        pin = self.device.type == "cuda"
        load = (grid, offset, pin, self.batch)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-seg-tiles") as pool:
            pending: deque = deque()
            try:
                for batch in _batches(tiles, self.batch, pool, pending, self._load, *load):
                    items, x = batch
                    probs = self._forward(x)
                    with torch.inference_mode():
                        for k, (plane, p, r, origin) in enumerate(items):
                            bands.add(plane, r, tuple(origin), probs[k])
                            if p > self.planes_done and bands.plane == plane:
                                self.planes_done = p
                    done += len(items)
                    yield PredictProgress(done, total, time.perf_counter() - start)
                with torch.inference_mode():
                    bands.finish()
                self.planes_done = self.plane_range.stop
            finally:
                for _items, future in pending:
                    future.cancel()

    def _load(self, items, grid: TileGrid, offset, pin: bool, batch: int) -> torch.Tensor:
        """The tiles of ``items``, normalised; a short last batch is padded with zeros
        to ``batch`` tiles, as the network's per-tile result depends (in the last
        bits) on the batch size, never on the other tiles' contents: a block of an
        image then gets exactly the values the whole image gets."""
        sizes = grid.tile_shape
        x = torch.zeros((max(batch, len(items)), self.layout.channels, *sizes), pin_memory=pin)
        buffer = x.numpy()
        for k, (plane, _p, _r, origin) in enumerate(items):
            starts = (o + d for o, d in zip(origin, offset, strict=True))
            region = (slice(s, s + n) for s, n in zip(starts, sizes, strict=True))
            self.stats.apply(self.layout.read_raw(self.image, plane, *region), out=buffer[k])
        return x

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities of a batch; with ``tta``, the mean over its mirror images."""
        with torch.inference_mode():
            x = x.to(self.device, non_blocking=True)
            mirrors = mirror_dims(x.ndim - 2) if self.config.tta else [()]
            total = None
            for dims in mirrors:
                seen = self.runtime.memory_format(x.flip(dims) if dims else x)
                with self.runtime.autocast():
                    logits = self.model(seen)
                probs = class_probabilities(logits, self.model.spec)
                probs = probs.flip(dims) if dims else probs
                total = probs if total is None else total.add_(probs)
                del logits, probs, seen
            assert total is not None
            return total if len(mirrors) == 1 else total.div_(len(mirrors))


def mirror_dims(spatial_dims: int) -> list[tuple[int, ...]]:
    """The flips of test-time mirroring for a ``(N, C, *spatial)`` batch: none, then
    every combination of the spatial axes (nnU-Net's mirroring: 4 in 2D, 8 in 3D).

    Parameters
    ----------
    spatial_dims : int

    Returns
    -------
    list of tuple of int
        Tensor dimensions to flip together, ``()`` first.
    """
    axes = range(2, 2 + spatial_dims)
    return [dims for n in range(spatial_dims + 1) for dims in itertools.combinations(axes, n)]


def _batches(tiles, size, pool, pending, load, *args):
    """Batches of ``(items, tensor)``, loaded ``PREFETCH`` batches ahead in ``pool``."""
    tiles = iter(tiles)

    def submit() -> bool:
        items = list(islice(tiles, size))
        if not items:
            return False
        pending.append((items, pool.submit(load, items, *args)))
        return True

    for _ in range(PREFETCH):
        submit()
    while pending:
        items, future = pending.popleft()
        x = future.result()
        submit()
        yield items, x


def _checked_image(image):
    """``image`` as an array (a torch or MONAI tensor, a nested list: ``as_array``) of
    numbers; a dask array read through a cache of its computed chunks (tiles, samples
    and resampled blocks overlap: ``arrays.chunk_cache``)."""
    image = as_array(image, "image")
    if np.dtype(image.dtype).kind not in "biuf":
        raise TypeError(f"image must have a numeric dtype, got {np.dtype(image.dtype)}")
    return cached_chunks(image)


def _labels_out(out, layout: ImageLayout, num_classes: int):
    dtype = np.dtype(np.uint8 if num_classes <= 255 else np.uint16)
    if out is None:
        return np.zeros(layout.output_shape, dtype=dtype)
    check_output_array(out, "out")
    shape = tuple(out.shape)
    if shape != layout.output_shape:
        raise ValueError(f"out must have shape {layout.output_shape}, got {shape}")
    kind = np.dtype(out.dtype)
    if kind.kind not in "iu" or np.iinfo(kind).max < num_classes - 1:
        raise ValueError(
            f"out must be an integer array that holds {num_classes} classes, got dtype {kind}"
        )
    return out


def _probabilities_out(out, layout: ImageLayout, num_classes: int):
    shape = (num_classes, *layout.output_shape)
    if out is None:
        return np.zeros(shape, dtype=np.float16)
    check_output_array(out, "probabilities_out")
    if tuple(out.shape) != shape:
        raise ValueError(f"probabilities_out must have shape {shape}, got {tuple(out.shape)}")
    if np.dtype(out.dtype).kind != "f":
        raise ValueError(f"probabilities_out must be a float array, got dtype {out.dtype}")
    return out
