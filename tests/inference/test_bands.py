"""The band accumulator against a plain whole-image blend of the same tiles."""

import numpy as np
import pytest
import torch

from napari_seg.arrays.layout import resolve_layout
from napari_seg.inference._bands import BandAccumulator
from napari_seg.inference.tiling import TileGrid, band_axis_for, blending_window


def _run(shape, tile, overlap, classes, *, seed=0, mode="gaussian"):
    """Softmax tiles blended by the accumulator, and by a plain sum over every class
    and the whole image (the reference)."""
    rng = np.random.default_rng(seed)
    grid = TileGrid.build(shape, tile, overlap, band_axis=band_axis_for(shape))
    window = blending_window(grid.tile_shape, mode=mode, overlap=grid.overlap)
    layout = resolve_layout(shape, in_channels=1, spatial_dims=len(shape))
    labels = np.zeros(shape, np.uint8)
    probabilities = np.zeros((classes, *shape), np.float16)
    bands = BandAccumulator(
        grid, layout, classes, torch.device("cpu"), labels, probabilities,
        window=torch.from_numpy(window),
    )  # fmt: skip
    acc = np.zeros((classes, *shape), np.float64)
    weights = np.zeros(shape, np.float64)
    for row, *origin in grid:
        logits = torch.from_numpy(rng.normal(0, 3, (classes, *grid.tile_shape)))
        probs = torch.softmax(logits, 0).float()
        bands.add((), row, tuple(origin), probs)
        where = tuple(slice(o, o + n) for o, n in zip(origin, grid.tile_shape, strict=True))
        acc[(slice(None), *where)] += probs.numpy() * window
        weights[where] += window
    bands.finish()
    return labels, probabilities, acc, weights, bands


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "classes"),
    [
        ((70, 90), 32, 8, 3),
        ((70, 90), 32, 8, 2),
        ((90, 40), 24, 6, 5),  # the band axis is the longer one, y
        ((20, 37, 29), 16, 4, 3),
        ((37, 20, 29), 16, 4, 2),
    ],
)
def test_the_last_class_from_the_total_weight_matches_a_plain_blend(shape, tile, overlap, classes):
    labels, probabilities, acc, weights, bands = _run(shape, tile, overlap, classes)
    assert bands.acc.shape[0] == classes - 1  # the last class is not stored
    expected = acc.argmax(0)
    # Ties closer than float32 rounding are the only possible differences.
    close = np.sort(acc, axis=0)
    margin = (close[-1] - close[-2]) / weights
    agree = labels == expected
    assert agree[margin > 1e-5].all()
    assert agree.mean() > 0.999
    np.testing.assert_allclose(probabilities, acc / weights, atol=2e-3)
    np.testing.assert_allclose(probabilities.astype(np.float32).sum(0), 1.0, atol=4e-3)


def test_total_weight_is_the_sum_of_the_windows():
    _labels, _probs, _acc, weights, bands = _run((50, 61), 24, 8, 2, mode="cosine")
    np.testing.assert_allclose(bands.total_weight(0, 50).numpy(), weights, rtol=1e-6)
    np.testing.assert_allclose(bands.total_weight(17, 30).numpy(), weights[17:30], rtol=1e-6)


def test_a_one_class_model_stores_its_class():
    labels, probabilities, _acc, _weights, bands = _run((40, 40), 16, 4, 1)
    assert bands.acc.shape[0] == 1
    assert not labels.any()
    np.testing.assert_allclose(probabilities, 1.0, atol=1e-3)
