"""Resampling region by region (inference._resample): the same voxels as done whole."""

import numpy as np
import pytest
import torch

from napari_seg.arrays.layout import resolve_layout
from napari_seg.inference._resample import LinearAxis, ResampleBack, ResampledImage


def torch_resize(array, sizes):
    mode = "bilinear" if len(sizes) == 2 else "trilinear"
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    return torch.nn.functional.interpolate(x, size=sizes, mode=mode, align_corners=False)[0].numpy()


@pytest.mark.parametrize(("n_in", "n_out"), [(17, 40), (40, 17), (9, 1), (1, 6), (30, 30)])
def test_one_axis_matches_torch(n_in, n_out):
    x = np.random.default_rng(0).random((2, n_in)).astype(np.float32)
    ours = LinearAxis(n_in, n_out).apply(x, 1, 0, n_out, 0)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=n_out, mode="linear")
    np.testing.assert_allclose(ours, expected[0].numpy(), atol=5e-6)  # torch: float32 indices


def test_a_region_is_the_same_voxels_as_the_whole():
    rng = np.random.default_rng(1)
    series = rng.random((2, 17, 23, 3)).astype(np.float32)  # t, y, x, channels
    layout = resolve_layout(series.shape, in_channels=3, channel_axis=3, axis=0, spatial_dims=2)
    view = ResampledImage(series, layout, (40, 9))
    assert view.shape == (2, 40, 9, 3)
    assert view.dtype == np.float32
    whole = np.asarray(view)
    for t in range(2):
        expected = torch_resize(np.moveaxis(series[t], -1, 0), (40, 9))
        np.testing.assert_allclose(np.moveaxis(whole[t], -1, 0), expected, atol=2e-6)
    np.testing.assert_array_equal(view[1, 5:20, 2:7], whole[1, 5:20, 2:7])
    np.testing.assert_array_equal(view[:, 3, :, 1:2], whole[:, 3, :, 1:2])
    np.testing.assert_array_equal(view[0, 39, 8, 2], whole[0, 39, 8, 2])
    np.testing.assert_array_equal(view[-1, -2, -3:], whole[-1, -2, -3:])
    assert view[0, 7:7].shape == (0, 9, 3)
    volume = rng.random((11, 13, 9)).astype(np.float32)
    view = ResampledImage(
        volume, resolve_layout(volume.shape, in_channels=1, spatial_dims=3), (25, 5, 14)
    )
    whole = np.asarray(view)
    np.testing.assert_allclose(whole, torch_resize(volume[None], (25, 5, 14))[0], atol=2e-6)
    np.testing.assert_array_equal(view[4:9, 1:3, 5:14], whole[4:9, 1:3, 5:14])


def test_only_the_region_and_its_margin_are_read():
    reads = []

    class Spy(np.ndarray):
        def __getitem__(self, index):
            reads.append(index)
            return np.asarray(self)[index]

    volume = np.arange(40 * 10 * 10, dtype=np.float32).reshape(40, 10, 10).view(Spy)
    view = ResampledImage(
        volume, resolve_layout(volume.shape, in_channels=1, spatial_dims=3), (80, 10, 10)
    )
    view[20:30, 2:4, :]
    # z: outputs 20-29 of 80 read inputs 9-15 of 40; y (not resized): 2-3 and the next
    assert reads == [(slice(9, 16), slice(2, 5), slice(0, 10))]


def test_bad_indices_are_refused():
    volume = np.zeros((10, 10, 10), np.float32)
    view = ResampledImage(
        volume, resolve_layout(volume.shape, in_channels=1, spatial_dims=3), (5, 5, 5)
    )
    with pytest.raises(IndexError, match="unit-step"):
        view[::2]
    with pytest.raises(IndexError, match="one int or slice per axis"):
        view[..., 0]
    with pytest.raises(IndexError, match="index 5 is out of bounds for size 5"):
        view[5]


def test_bands_out_of_order_are_an_error():
    shape = (12, 20, 16)
    inner = resolve_layout((24, 20, 16), in_channels=1, spatial_dims=3)
    outer = resolve_layout(shape, in_channels=1, spatial_dims=3)
    labels = np.zeros(shape, np.uint8)
    sink = ResampleBack(inner, outer, 2, labels)
    assert sink.shape == (2, 24, 20, 16)
    sink[:, 0:8] = np.zeros((2, 8, 20, 16), np.float16)
    with pytest.raises(RuntimeError, match="out of order"):
        sink[:, 10:14] = np.zeros((2, 4, 20, 16), np.float16)
    with pytest.raises(RuntimeError, match="span the axes across the band"):
        sink[:, 8:10, 0:5] = np.zeros((2, 2, 5, 16), np.float16)
