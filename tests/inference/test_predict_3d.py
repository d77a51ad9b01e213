"""Volumetric tiled inference: 3D patches, 3D blending, slab by slab along the first axis."""

import numpy as np
import pytest
import torch

from napari_seg._generators import Returning
from napari_seg.arrays.normalize import compute_stats
from napari_seg.inference import (
    PredictProgress,
    SettingsAdjusted,
    TileGrid,
    _bands,
    blending_window,
    iter_predict,
    predict,
    resolve_layout,
)
from napari_seg.models import ModelSpec, Normalization, create_model

FP32 = {"precision": "fp32"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    spec = ModelSpec("unet", 1, 3, spatial_dims=3, options={"depth": 2, "base_width": 4})
    return create_model(spec).eval()


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(0)
    from scipy import ndimage

    return ndimage.gaussian_filter(rng.random((45, 70, 66)), 2).astype(np.float32)


def whole(model, volume):
    """Probabilities of the whole volume in one forward pass (the oracle)."""
    layout = resolve_layout(volume.shape, in_channels=1, spatial_dims=3)
    stats = compute_stats(volume, layout, model.spec.normalization)
    x = torch.from_numpy(stats.apply(layout.read(volume, (), *(slice(None),) * 3)))
    with torch.no_grad():
        return torch.softmax(model(x[None]), 1)[0].numpy()


def test_one_patch_covering_the_volume_equals_the_whole_forward(model, volume):
    result = predict(model, volume, tile=80, probabilities=True, **FP32)
    expected = whole(model, volume)
    np.testing.assert_array_equal(result.labels, expected.argmax(0))
    np.testing.assert_allclose(result.probabilities, expected, atol=2e-3)  # float16


@pytest.mark.parametrize("shape", [(3, 40, 36), (40, 2, 36), (1, 16, 16)])
def test_a_stack_of_a_few_slices_is_segmented(model, shape):
    """A confocal stack of 3 slices (thin along any one axis) gets the labels of one
    forward pass of the network on the whole volume (which pads it to its size
    multiple). It was refused as "too small" below 8 voxels along any axis, where
    MONAI's sliding_window_inference and nnU-Net pad it."""
    volume = np.random.default_rng(1).random(shape).astype(np.float32)
    result = predict(model, volume, probabilities=True, **FP32)
    assert result.labels.shape == shape
    expected = whole(model, volume)
    np.testing.assert_array_equal(result.labels, expected.argmax(0))
    with pytest.raises(ValueError, match="too small: at least 8 along two of the three axes"):
        predict(model, volume[:, :5, :5] if shape[0] < 8 else volume[:5, :, :5], **FP32)


def test_tiled_volume_agrees_with_monai_sliding_window(model, volume):
    """MONAI's sliding_window_inference with the same patch, overlap and Gaussian
    (sigma = patch / 8): the same labels but where the two grids place patches
    differently (MONAI spreads them evenly, napari-seg ends the last at the border)."""
    from monai.inferers import sliding_window_inference

    result = predict(model, volume, tile=32, overlap=8, probabilities=True, **FP32)
    assert result.labels.shape == volume.shape
    np.testing.assert_allclose(result.probabilities.astype(np.float32).sum(0), 1, atol=5e-3)
    layout = resolve_layout(volume.shape, in_channels=1, spatial_dims=3)
    stats = compute_stats(volume, layout, model.spec.normalization)
    x = torch.from_numpy(stats.apply(layout.read(volume, (), *(slice(None),) * 3)))[None]
    with torch.no_grad():
        theirs = sliding_window_inference(
            x,
            (32, 32, 32),
            1,
            lambda t: torch.softmax(model(t), 1),
            overlap=0.25,
            mode="gaussian",
            sigma_scale=0.125,
        )
    agree = (theirs.argmax(1)[0].numpy() == result.labels).mean()
    assert agree > 0.99, agree


def test_memory_is_a_band_along_the_longest_axis(model, volume, monkeypatch):
    """The accumulator spans one patch along the longest axis (y, 70) by the other two,
    for all classes but the last (3 here), which the total weight gives."""
    shapes = []
    real = _bands.BandAccumulator

    class Recording(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            shapes.append(tuple(self.acc.shape))

    monkeypatch.setattr("napari_seg.inference.predictor.BandAccumulator", Recording)
    predict(model, volume, tile=32, overlap=8, **FP32)
    assert shapes == [(2, 32, 45, 66)]


def test_grid_and_window_are_3d():
    grid = TileGrid.build((37, 50, 45), 16, 4)
    assert grid.tile_shape == (16, 16, 16)
    assert len(grid) == len(grid.starts[0]) * len(grid.starts[1]) * len(grid.starts[2])
    assert all(len(t) == 4 for t in grid)  # (slab, z0, y0, x0)
    covered = np.zeros((37, 50, 45), bool)
    for _r, z0, y0, x0 in grid:
        covered[z0 : z0 + 16, y0 : y0 + 16, x0 : x0 + 16] = True
    assert covered.all()
    window = blending_window((16, 8, 12), mode="gaussian")
    assert window.shape == (16, 8, 12)
    assert window.max() == 1.0
    np.testing.assert_allclose(window, window[::-1, ::-1, ::-1])


def test_a_stack_of_volumes_and_channels(model):
    torch.manual_seed(1)
    spec = ModelSpec(
        "unet",
        2,
        3,
        spatial_dims=3,
        options={"depth": 2, "base_width": 4},
        normalization=Normalization(method="none"),  # the same input whatever the series
    )
    two = create_model(spec).eval()
    series = np.random.default_rng(2).random((3, 2, 12, 40, 36)).astype(np.float32)  # t, c, z, y, x
    result = predict(two, series, channel_axis=1, axis=0, tile=32, **FP32)
    assert result.labels.shape == (3, 12, 40, 36)
    alone = predict(two, series[1], channel_axis=0, tile=32, **FP32)
    np.testing.assert_array_equal(result.labels[1], alone.labels)


def test_cancel_and_out_of_memory_back_off(model, volume, monkeypatch):
    gen = iter_predict(model, volume, tile=32, overlap=8, batch_size=1, **FP32)
    event = next(gen)
    while not isinstance(event, PredictProgress):
        event = next(gen)
    gen.close()
    assert event.tiles_done == 1
    assert event.tiles_total >= 18
    forward = model.forward

    def limited(x):
        if x.shape[0] > 1 or x.shape[-1] > 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return forward(x)

    monkeypatch.setattr(model, "forward", limited)
    run = Returning(iter_predict(model, volume, tile=64, overlap=8, batch_size=2, **FP32))
    events = list(run)
    adjusted = [(e.batch_size, e.tile) for e in events if isinstance(e, SettingsAdjusted)]
    assert adjusted == [(1, 64), (1, 32)]
    assert run.value.labels.shape == volume.shape


def threshold_model(spacing):
    """A 3D "network" labelling voxels brighter than 0.5 as class 1 (no normalisation),
    recorded at ``spacing``: what it predicts is known anywhere."""
    spec = ModelSpec(
        "unet",
        1,
        3,
        spatial_dims=3,
        options={"depth": 2, "base_width": 4},
        spacing=spacing,
        normalization=Normalization(method="none"),
    )
    model = create_model(spec).eval()
    conv = torch.nn.Conv3d(1, 3, 1)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([-1.0, 1.0, 0.0]).reshape(3, 1, 1, 1, 1)
        conv.bias[:] = torch.tensor([0.5, -0.5, -10.0])
    model.net = conv
    return model


def resampled_oracle(model, plane, sizes):
    """The resampling path done whole, with torch: a ``(C, *spatial)`` plane to ``sizes``,
    predicted, its probabilities back to the plane's grid (argmax them for labels)."""

    def resize(array, shape):
        mode = "bilinear" if len(shape) == 2 else "trilinear"
        x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
        return torch.nn.functional.interpolate(x, size=shape, mode=mode, align_corners=False)[0]

    small = resize(plane, sizes).numpy()
    if len(small) == 1:
        result = predict(model, small[0], tile=32, probabilities=True, **FP32)
    else:
        result = predict(model, small, channel_axis=0, tile=32, probabilities=True, **FP32)
    return resize(result.probabilities, plane.shape[1:]).numpy()


def test_the_image_is_resampled_to_the_model_spacing_and_back(volume):
    from scipy import ndimage

    model = threshold_model((2.0, 1.0, 1.0))
    smooth = ndimage.gaussian_filter(np.random.default_rng(3).random(volume.shape), 4)
    image = ((smooth - smooth.min()) / np.ptp(smooth)).astype(np.float32)
    result = predict(model, image, tile=32, spacing=(4.0, 0.5, 0.5), probabilities=True, **FP32)
    assert result.labels.shape == image.shape
    assert result.probabilities.shape == (3, *image.shape)
    # z doubled (4 -> 2 mm), y and x halved (0.5 -> 1 mm), then back, done whole by torch
    expected = resampled_oracle(model, image[None], (90, 35, 33))
    np.testing.assert_allclose(result.probabilities, expected, atol=2e-3)  # float16
    matching = (result.labels == expected.argmax(0)).mean()
    assert matching > 0.9999, matching  # the rest: ties within float16 rounding
    agree = (result.labels == (image > 0.5)).mean()
    # The same thresholding through two resamplings (a resampling round trip of the
    # thresholded image alone agrees 97.3% here; a flipped or shifted grid ~50-80%).
    assert agree > 0.97, agree
    same = predict(model, image, tile=32, spacing=(2.0, 1.0, 1.0), **FP32)
    np.testing.assert_array_equal(same.labels, image > 0.5)  # equal spacings: no resampling


def test_a_resampled_run_says_so_and_cancels_at_once(volume):
    """Its start names the grid the tiles run on; closing it closes the tile loop."""
    model = threshold_model((2.0, 1.0, 1.0))
    gen = iter_predict(model, volume, tile=32, batch_size=1, spacing=(4.0, 0.5, 0.5), **FP32)
    started = next(gen)
    assert started.resampled == (90, 35, 33)
    progress = next(gen)
    assert isinstance(progress, PredictProgress)
    assert progress.tiles_done == 1
    gen.close()
    assert gen.gi_frame is None
    plain = next(iter_predict(model, volume, tile=32, spacing=(2.0, 1.0, 1.0), **FP32))
    assert plain.resampled is None


def test_a_stack_of_channel_planes_is_resampled_plane_by_plane():
    """A 2D model on a (t, y, x, c) series at another pixel size: each plane alone."""
    torch.manual_seed(0)
    spec = ModelSpec(
        "unet",
        2,
        3,
        options={"depth": 2, "base_width": 4},
        spacing=(1.0, 1.0),
        normalization=Normalization(method="none"),
    )
    model = create_model(spec).eval()
    series = np.random.default_rng(5).random((3, 40, 52, 2)).astype(np.float32)
    result = predict(
        model,
        series,
        axis=0,
        channel_axis=3,
        spacing=(0.6, 1.7),
        tile=32,
        probabilities=True,
        **FP32,
    )
    assert result.labels.shape == (3, 40, 52)
    for t in range(3):
        alone = resampled_oracle(model, np.moveaxis(series[t], -1, 0), (24, 88))
        np.testing.assert_allclose(result.probabilities[:, t], alone, atol=2e-3)
        assert (result.labels[t] == alone.argmax(0)).mean() > 0.999


class Recording:
    """An array that records the size of every region read from it or written to it."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.sizes = array, array.shape, array.dtype, []

    def __getitem__(self, index):
        part = self.array[index]
        self.sizes.append(part.size)
        return part

    def __setitem__(self, index, value):
        self.array[index] = value
        self.sizes.append(np.size(self.array[index]))


@pytest.mark.parametrize("factor", [2.0, 0.5, 0.25])
def test_resampling_memory_does_not_grow_with_depth(factor):
    """A volume at another spacing: reads of about one tile, writes of bands, and a
    peak (numpy's allocations) that stays the same for a volume 4x as deep; the
    result as if done whole."""
    import tracemalloc

    model = threshold_model((1.0, 1.0, 1.0))
    spacing = (1.0, factor, factor)
    peaks = []
    for depth in (300, 1200):
        image = np.random.default_rng(6).random((depth, 40, 32)).astype(np.float32)
        source, labels = Recording(image), Recording(np.zeros(image.shape, np.uint8))
        tracemalloc.start()
        try:
            predict(model, source, out=labels, tile=32, overlap=8, spacing=spacing, **FP32)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert max(source.sizes) <= 33 * 40 * 32, max(source.sizes)  # one tile's rows at most
        assert max(labels.sizes) <= 40 * 40 * 32, max(labels.sizes)  # bands of rows
    # Done whole, the peak would grow 4x with the depth.
    assert peaks[1] < 1.2 * peaks[0], peaks
    expected = resampled_oracle(model, image[None], (1200, round(40 * factor), round(32 * factor)))
    assert (labels.array == expected.argmax(0)).mean() > 0.9999


def test_out_of_memory_restarts_the_resampled_bands(monkeypatch):
    """A voxel-wise model gives the same result at any tile: after the back-off the
    image rows are written again from the first band, correctly."""
    model = threshold_model((1.0, 1.0, 1.0))
    image = np.random.default_rng(7).random((200, 30, 28)).astype(np.float32)
    expected = predict(model, image, tile=64, spacing=(1.0, 0.7, 0.7), **FP32).labels
    forward, calls = model.forward, []

    def failing(x):
        calls.append(1)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return forward(x)

    monkeypatch.setattr(model, "forward", failing)
    run = Returning(
        iter_predict(model, image, tile=64, batch_size=1, spacing=(1.0, 0.7, 0.7), **FP32)
    )
    events = list(run)
    assert [e.tile for e in events if isinstance(e, SettingsAdjusted)] == [32]
    np.testing.assert_array_equal(run.value.labels, expected)


def test_spacing_settings_are_checked(volume):
    model = threshold_model((2.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing has 2 values, but the model sees 3 axes"):
        predict(model, volume, spacing=(1.0, 1.0), **FP32)
    # the same for a model that records no spacing: it was taken, and unused, silently
    unstated = threshold_model(None)
    with pytest.raises(ValueError, match="spacing has 2 values, but the model sees 3 axes"):
        predict(unstated, volume, spacing=(1.0, 1.0), **FP32)
    with pytest.raises(ValueError, match="spacing must be > 0"):
        predict(model, volume, spacing=(1.0, -1.0, 1.0), **FP32)
    # a unit mix-up (micrometres for a model in millimetres) would make 10^9 x the voxels
    with pytest.raises(ValueError, match=r"differ 500x along axis 0; .* more than 16x finer"):
        iter_predict(model, volume, spacing=(1000.0, 1000.0, 1000.0), **FP32)
    with pytest.raises(ValueError, match=r"spacing must be from 1e-12 to 1e\+12"):  # overflowed
        iter_predict(model, volume, spacing=(1e308, 1.0, 1.0), **FP32)
    with pytest.raises(ValueError, match=r"would be 1x1x1 voxels, too few \(at least 8 along two"):
        iter_predict(model, volume, spacing=(0.002, 0.001, 0.001), **FP32)
    assert iter_predict(model, volume, spacing=(32.0, 16.0, 16.0), **FP32)  # 16x: runs


def test_spacings_in_stated_units_are_converted_before_they_are_compared(volume):
    """A model recorded at 2 x 1 x 1 mm: an image at 4000 x 500 x 500 µm is resampled
    as one at 4 x 0.5 x 0.5 mm is, and 2000 x 1000 x 1000 µm needs no resampling. Where
    either side states no unit the numbers are compared as they are (the error then
    asks about units; with both stated it names the one they are compared in)."""
    model = threshold_model((2.0, 1.0, 1.0))
    model.spec = model.spec.with_(spacing_unit="millimeter")
    image = np.random.default_rng(5).random(volume.shape).astype(np.float32)
    in_mm = predict(model, image, tile=32, spacing=(4.0, 0.5, 0.5), **FP32)
    um = {"spacing_unit": "micrometer", **FP32}
    in_um = predict(model, image, tile=32, spacing=(4000.0, 500.0, 500.0), **um)
    np.testing.assert_array_equal(in_um.labels, in_mm.labels)
    same = predict(model, image, tile=32, spacing=(2000.0, 1000.0, 1000.0), **um)
    np.testing.assert_array_equal(same.labels, image > 0.5)  # no resampling
    with pytest.raises(ValueError, match=r"\(both in mm\) differ 20x.*spacing right"):
        iter_predict(model, image, spacing=(40.0, 1.0, 1.0), spacing_unit="millimeter", **FP32)
    with pytest.raises(ValueError, match="same unit"):  # the image's unit is not known
        iter_predict(model, image, spacing=(2000.0, 1000.0, 1000.0), **FP32)
    with pytest.raises(ValueError, match="spacing_unit must be a length unit"):
        iter_predict(model, image, spacing=(2.0, 1.0, 1.0), spacing_unit="pixel", **FP32)


@pytest.mark.parametrize("shape", [(70, 40, 36), (40, 70, 36), (36, 40, 70)])
def test_every_band_axis_writes_in_place(shape):
    """With a voxel-wise "network" every patch predicts a voxel alike, so the tiled
    result is the voxel-wise one exactly, wherever the band runs."""
    model = threshold_model((1.0, 1.0, 1.0))
    image = np.random.default_rng(4).random(shape).astype(np.float32)
    result = predict(model, image, tile=32, overlap=8, probabilities=True, **FP32)
    np.testing.assert_array_equal(result.labels, image > 0.5)
    expected = torch.softmax(model.net(torch.from_numpy(image)[None, None]), 1)[0]
    np.testing.assert_allclose(result.probabilities, expected.detach().numpy(), atol=1e-3)
