import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_seg.inference import TileGrid, blending_window, tile_starts
from napari_seg.inference.tiling import WEIGHT_FLOOR


def test_tile_starts_examples():
    assert tile_starts(1000, 512, 128) == [0, 384, 488]
    assert tile_starts(512, 512, 128) == [0]
    assert tile_starts(100, 512, 0) == [0]
    assert tile_starts(10, 4, 0) == [0, 4, 6]


@pytest.mark.parametrize(
    ("length", "tile", "overlap"), [(0, 4, 0), (10, 0, 0), (10, 4, 4), (10, 4, -1)]
)
def test_tile_starts_rejects_bad_arguments(length, tile, overlap):
    with pytest.raises(ValueError, match="must"):
        tile_starts(length, tile, overlap)


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(1, 3000),
    tile=st.integers(1, 700),
    overlap_fraction=st.floats(0, 0.99),
)
def test_tiles_cover_every_pixel_with_the_requested_overlap(length, tile, overlap_fraction):
    overlap = int(overlap_fraction * tile)
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    covered = np.zeros(length, dtype=int)
    for s in starts:
        assert 0 <= s <= length - size
        covered[s : s + size] += 1
    assert covered.min() >= 1
    assert starts == sorted(set(starts))
    for a, b in itertools.pairwise(starts):
        assert a + size - b >= overlap  # neighbours overlap by at least what was asked


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 400),
    w=st.integers(1, 400),
    tile=st.integers(2, 160),
    overlap_fraction=st.floats(0, 0.9),
    mode=st.sampled_from(["gaussian", "cosine", "constant"]),
)
def test_blended_weights_are_positive_everywhere(h, w, tile, overlap_fraction, mode):
    overlap = int(overlap_fraction * tile)
    grid = TileGrid.build((h, w), tile, overlap)
    window = blending_window(grid.tile_shape, mode=mode, overlap=grid.overlap)
    assert window.shape == grid.tile_shape
    assert window.dtype == np.float32
    assert window.min() >= WEIGHT_FLOOR
    assert window.max() == pytest.approx(1.0)
    total = np.zeros((h, w), np.float32)
    count = 0
    for _r, y0, x0 in grid:
        th, tw = grid.tile_shape
        assert y0 + th <= h
        assert x0 + tw <= w
        total[y0 : y0 + th, x0 : x0 + tw] += window
        count += 1
    assert count == len(grid)
    assert total.min() >= WEIGHT_FLOOR  # every pixel covered with positive weight


def test_cosine_ramps_of_neighbours_sum_to_one():
    tile, overlap = 64, 16
    window = blending_window((1, tile), mode="cosine", overlap=overlap)[0]
    left_tail, right_head = window[tile - overlap :], window[:overlap]
    np.testing.assert_allclose(left_tail + right_head, 1.0, atol=1e-6)
    assert np.all(window[overlap : tile - overlap] == 1.0)


def test_gaussian_window_peaks_in_the_centre():
    window = blending_window((65, 65), mode="gaussian")
    assert np.unravel_index(window.argmax(), window.shape) == (32, 32)
    assert window[0, 0] < window[16, 16] < window[32, 32]


def test_unknown_blending_mode_is_named():
    with pytest.raises(ValueError, match="blending must be one of"):
        blending_window((8, 8), mode="hann")
