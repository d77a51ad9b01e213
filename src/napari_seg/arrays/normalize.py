"""Intensity normalisation as recorded in the model card (numpy only).

Statistics are computed once per input (not per tile, which would make tiles
disagree) from the whole image when it is a small in-memory array, otherwise
from blocks sampled across it, so that lazy inputs are never read whole.
Non-finite pixels are left out of the statistics and mapped to 0 (NaN, -inf)
or 1 (+inf) after normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._types import RegionArray
from ..models.spec import Normalization
from .layout import ImageLayout

#: In-memory inputs up to this many pixels are used whole for the statistics
#: (a 2048 x 2048 image); larger ones are sampled, which saves a float copy of
#: the whole image and its sort.
EXACT_LIMIT = 1 << 22
#: Pixels of each block sampled from larger or lazy inputs (256 x 256 in 2D, 40^3 in 3D).
SAMPLE_BLOCK_PIXELS = 256 * 256
#: Number of blocks sampled (64 blocks of 256 x 256 = 4.2 Mpixel).
SAMPLE_BLOCKS = 64
#: Share of an image's examined pixels on one side of a fixed intensity window above
#: which a job warns (a CT's air outside the body is far less; an MRI given a CT's
#: Hounsfield window is all of it).
OUTSIDE_WINDOW_NOTE = 0.99


@dataclass(frozen=True)
class IntensityStats:
    """Per-channel ``offset`` and ``scale``: ``x_norm = (x - offset) * scale``.

    Attributes
    ----------
    offset, scale : numpy.ndarray
        float32 arrays of length C.
    nonfinite_fraction : float
        Fraction of the examined pixels that were NaN or infinite.
    sampled : bool
        Whether the statistics come from sampled blocks rather than every pixel.
    clip : bool
        Whether normalised values are clipped to ``[0, 1]`` (a fixed intensity window).
    outside : tuple of float
        With a fixed window, the shares of the examined finite pixels below and above it.
    """

    offset: np.ndarray
    scale: np.ndarray
    nonfinite_fraction: float = 0.0
    sampled: bool = False
    clip: bool = False
    outside: tuple[float, float] = (0.0, 0.0)

    @property
    def note(self) -> str | None:
        """What a job says of the image's intensities (None: nothing to say): its NaN or
        infinite pixels, and an image almost wholly outside a fixed intensity window
        (``outside``: the shares of finite pixels below and above it), which the network
        then sees as one constant. Prediction and training give it as a warning event.

        Returns
        -------
        str or None
        """
        notes = []
        if self.nonfinite_fraction:
            notes.append(
                f"{100 * self.nonfinite_fraction:.2g}% of the examined pixels are NaN or "
                "infinite; they are treated as background intensity"
            )
        for share, side, value in zip(self.outside, ("below", "above"), (0, 1), strict=True):
            if share >= OUTSIDE_WINDOW_NOTE:
                low = float(self.offset[0])
                high = low + 1.0 / float(self.scale[0])
                notes.append(
                    f"{100 * share:.3g}% of the examined pixels lie {side} the model's "
                    f"intensity window ({low:g} to {high:g}) and all become {value}: is the "
                    "image in the units the model was made for (a CT's Hounsfield units)?"
                )
        return "; ".join(notes) or None

    def apply(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Normalise a ``(C, ...)`` block, in place or into ``out``, and return it.

        Parameters
        ----------
        block : numpy.ndarray
            Channels first. Without ``out`` it must be float32 and is changed
            in place (as :meth:`ImageLayout.read` gives it); with ``out`` it is
            only read and may have any real dtype (as
            :meth:`ImageLayout.read_raw` gives it).
        out : numpy.ndarray, optional
            float32 of ``block``'s shape: the result is written there, with the
            same values as converting ``block`` to float32 first (one pass less).

        Returns
        -------
        numpy.ndarray
            ``out``, else ``block``; NaN and -inf become 0, +inf 1; clipped to
            ``[0, 1]`` when :attr:`clip`.

        Raises
        ------
        TypeError
            Without ``out``, for a block that is not float32.
        """
        if out is None:
            if block.dtype != np.float32:
                raise TypeError(f"normalising in place needs a float32 block, got {block.dtype}")
            out = block
        extra = (slice(None),) + (np.newaxis,) * (block.ndim - 1)
        np.subtract(block, self.offset[extra], out=out, dtype=np.float32, casting="unsafe")
        out *= self.scale[extra]
        if block.dtype.kind == "f" or not self._finite:
            np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        if self.clip:
            np.clip(out, 0.0, 1.0, out=out)
        return out

    @property
    def _finite(self) -> bool:
        return bool(np.isfinite(self.offset).all() and np.isfinite(self.scale).all())


def compute_stats(
    image: RegionArray, layout: ImageLayout, normalization: Normalization
) -> IntensityStats:
    """Statistics for ``normalization`` of ``image`` laid out as ``layout``.

    Parameters
    ----------
    image : array-like
        numpy, dask or zarr array.
    layout : ImageLayout
    normalization : Normalization

    Returns
    -------
    IntensityStats

    Raises
    ------
    ValueError
        If no examined pixel is finite (an all-NaN image, for example).
    """
    c = layout.channels
    if normalization.method == "none":
        return IntensityStats(np.zeros(c, np.float32), np.ones(c, np.float32))
    if normalization.method == "window" and normalization.window is not None:
        return _window_stats(image, layout, normalization.window)
    if normalization.method == "meanstd" and normalization.mean is not None:
        mean, std = np.asarray(normalization.mean), np.asarray(normalization.std)
        if len(mean) != c:
            raise ValueError(
                f"the model card's mean/std have {len(mean)} values but the image gives {c} "
                "channels"
            )
        return IntensityStats(mean.astype(np.float32), (1.0 / std).astype(np.float32))
    sample, sampled = _sample(image, layout)
    finite = np.isfinite(sample)
    nonfinite = 1.0 - float(finite.mean())
    offsets, scales = [], []
    for ch in range(c):
        values = sample[ch][finite[ch]]
        if values.size == 0:
            where = "the sampled part of the image" if sampled else "the image"
            raise ValueError(
                f"{where} has no finite value in channel {ch} (all NaN or infinite); "
                "nothing to normalise"
            )
        offset, scale = _offset_scale(values, normalization)
        offsets.append(offset)
        scales.append(scale)
    return IntensityStats(
        np.asarray(offsets, np.float32), np.asarray(scales, np.float32), nonfinite, sampled
    )


def _window_stats(
    image: RegionArray, layout: ImageLayout, window: tuple[float, float]
) -> IntensityStats:
    """A fixed window's mapping (the same for every image), and how much of this image
    (sampled as for the other methods) falls outside it, for :attr:`IntensityStats.note`."""
    c, (low, high) = layout.channels, window
    sample, sampled = _sample(image, layout)
    finite = sample[np.isfinite(sample)]
    shares = (0.0, 0.0)
    if finite.size:
        shares = (float((finite < low).mean()), float((finite > high).mean()))
    return IntensityStats(
        np.full(c, low, np.float32),
        np.full(c, 1.0 / (high - low), np.float32),
        1.0 - finite.size / max(sample.size, 1),
        sampled,
        clip=True,
        outside=shares,
    )


def _offset_scale(values: np.ndarray, normalization: Normalization) -> tuple[float, float]:
    """``(offset, scale)`` with ``x_norm = (x - offset) * scale``, finite for any input.

    A constant image (or one whose range vanishes next to its magnitude, such as
    a uint64 image of 2**64 - 1) maps to 0 with scale 1 rather than dividing by zero.
    """
    if normalization.method == "meanstd":
        offset, span = float(values.mean()), float(values.std())
    else:
        if normalization.method == "minmax":
            lo, hi = float(values.min()), float(values.max())
        else:
            lo, hi = (
                float(v) for v in np.percentile(values, [normalization.low, normalization.high])
            )
        offset, span = lo, hi - lo
    scale = 1.0 / span if span > 0 and np.isfinite(1.0 / span) else 1.0
    return offset, scale


def _sample(image: RegionArray, layout: ImageLayout) -> tuple[np.ndarray, bool]:
    """A float32 ``(C, N)`` array of pixels, and whether it is a sample."""
    spatial = layout.spatial_shape
    total = layout.n_planes * int(np.prod(spatial, dtype=np.int64))
    whole = (slice(None),) * len(spatial)
    if isinstance(image, np.ndarray) and total <= EXACT_LIMIT:
        blocks = [layout.read(image, plane, *whole) for plane in layout.planes()]
        return np.concatenate([b.reshape(b.shape[0], -1) for b in blocks], axis=1), False
    side = round(SAMPLE_BLOCK_PIXELS ** (1 / len(spatial)))
    sizes = [min(side, n) for n in spatial]
    rng = np.random.default_rng(0)
    count = min(SAMPLE_BLOCKS, max(1, total // int(np.prod(sizes))))
    blocks = []
    for _ in range(count):
        plane = layout.plane_at(int(rng.integers(layout.n_planes)))
        starts = [int(rng.integers(n - b + 1)) for n, b in zip(spatial, sizes, strict=True)]
        region = [slice(a, a + b) for a, b in zip(starts, sizes, strict=True)]
        block = layout.read(image, plane, *region)
        blocks.append(block.reshape(block.shape[0], -1))
    return np.concatenate(blocks, axis=1), True
