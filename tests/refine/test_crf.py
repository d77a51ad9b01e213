"""The mean-field CRF improves boundaries of a noisy prediction of a synthetic image."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_seg import refine
from napari_seg._generators import Returning, drain


def synthetic(seed=0, shape=(96, 128)):
    """Discs on a noisy image, and a prediction whose boundaries are blurred and shifted."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape)
    truth = np.zeros(shape, np.int32)
    for cy, cx, r in [(30, 35, 18), (62, 85, 22), (20, 100, 10)]:
        truth[(grid[0] - cy) ** 2 + (grid[1] - cx) ** 2 < r * r] = 1
    image = truth + rng.normal(0, 0.2, shape)
    soft = ndi.shift(ndi.gaussian_filter(truth.astype(float), 4), (2, -2), order=1)
    p1 = np.clip(soft + rng.normal(0, 0.15, shape), 0.01, 0.99)
    return truth, image.astype(np.float32), np.stack([1 - p1, p1]).astype(np.float32)


def boundary_iou(a, b, width=2):
    """IoU of the bands of ``width`` pixels inside each mask's boundary (Cheng et al. 2021)."""

    def band(mask):
        return mask & ~ndi.binary_erosion(mask, iterations=width)

    ba, bb = band(a), band(b)
    return (ba & bb).sum() / (ba | bb).sum()


@pytest.mark.parametrize("seed", [0, 1])
def test_crf_improves_boundary_iou(seed):
    truth, image, probs = synthetic(seed)
    before = boundary_iou(probs.argmax(0) == 1, truth == 1)
    image_copy, probs_copy = image.copy(), probs.copy()
    labels = refine.crf_refine(probs, image, device="cpu")
    np.testing.assert_array_equal(image, image_copy)
    np.testing.assert_array_equal(probs, probs_copy)
    after = boundary_iou(labels == 1, truth == 1)
    assert before < 0.5
    assert after > before + 0.3


def test_without_the_bilateral_kernel_the_crf_only_smooths():
    """The appearance kernel is what finds the image's edges."""
    truth, image, probs = synthetic(0)
    smooth = refine.crf_refine(probs, image, w_bilateral=0.0, device="cpu")
    full = refine.crf_refine(probs, image, device="cpu")
    assert boundary_iou(full == 1, truth == 1) > boundary_iou(smooth == 1, truth == 1) + 0.2


def test_crf_progress_and_result():
    _truth, image, probs = synthetic(0, shape=(32, 32))
    run = Returning(refine.iter_crf(probs, image, iterations=3, device="cpu"))
    seen = list(run)
    result = run.value
    assert [e.iteration for e in seen] == [1, 2, 3]
    assert result.labels.shape == (32, 32)
    np.testing.assert_allclose(result.probabilities.sum(axis=0), 1.0, rtol=1e-5)


def test_crf_3d_and_rgb():
    _truth, image, probs = synthetic(0, shape=(32, 32))
    volume_probs = np.stack([probs] * 4, axis=1)  # (C, Z, Y, X)
    volume = np.stack([image] * 4)
    labels = refine.crf_refine(volume_probs, volume, radius=2, device="cpu")
    assert labels.shape == (4, 32, 32)
    # Three equal channels triple the squared intensity distance: a sqrt(3) wider
    # appearance kernel gives the single-channel result.
    rgb = np.stack([image] * 3, axis=-1)
    np.testing.assert_array_equal(
        refine.crf_refine(probs, rgb, channel_axis=-1, theta_beta=0.1 * 3**0.5, device="cpu"),
        refine.crf_refine(probs, image, device="cpu"),
    )


def test_crf_kernel_cache_gives_the_same_result(monkeypatch):
    from napari_seg.refine import crf

    _truth, image, probs = synthetic(1, shape=(40, 40))
    cached = refine.crf_refine(probs, image, device="cpu")
    monkeypatch.setattr(crf, "CACHE_BYTES", 0)  # one tile, weights recomputed each iteration
    np.testing.assert_array_equal(
        refine.crf_refine(probs, image, device="cpu", tile_pixels=40 * 40), cached
    )


def test_tiles_give_the_result_of_the_whole_image():
    _truth, image, probs = synthetic(0)
    whole = drain(refine.iter_crf(probs, image, device="cpu"))
    run = Returning(refine.iter_crf(probs, image, device="cpu", tile_pixels=60 * 60))
    events = list(run)
    tiled = run.value
    # 96x128 in tiles of 16x16 (60 - 2 * margin of 25 is less than the 16 minimum)
    assert events[-1].tiles == 6 * 8
    assert len(events) == 6 * 8 * 5
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    np.testing.assert_allclose(tiled.probabilities, whole.probabilities, atol=1e-5)
    np.testing.assert_array_equal(tiled.labels, whole.labels)


def test_tiles_in_3d_take_short_axes_whole():
    _truth, image, probs = synthetic(2, shape=(40, 40))
    volume_probs = np.stack([probs] * 6, axis=1)  # (C, 6, 40, 40)
    volume = np.stack([image + 0.1 * z for z in range(6)])
    kwargs = {"radius": 2, "iterations": 3, "device": "cpu"}  # margin 6
    whole = drain(refine.iter_crf(volume_probs, volume, **kwargs))
    run = Returning(refine.iter_crf(volume_probs, volume, tile_pixels=6 * 20 * 20, **kwargs))
    events = list(run)
    # The 6 planes are taken whole; 20 - 2 * 6 is less than 16, so 16x16 tiles in-plane.
    assert events[-1].tiles == 3 * 3
    np.testing.assert_allclose(run.value.probabilities, whole.probabilities, atol=1e-5)
    np.testing.assert_array_equal(run.value.labels, whole.labels)


@pytest.mark.parametrize(
    ("probs", "image", "words"),
    [
        (np.ones((2, 8)), np.ones(8), "probabilities must be"),
        (np.ones((1, 8, 8)), np.ones((8, 8)), "at least 2 classes"),
        (np.ones((2, 8, 8), int), np.ones((8, 8)), "floats"),
        (np.ones((2, 8, 8)), np.ones((7, 8)), "image must cover"),
    ],
)
def test_bad_input_is_named(probs, image, words):
    with pytest.raises((ValueError, TypeError), match=words):
        refine.crf_refine(probs, image, device="cpu")


@pytest.mark.gpu
def test_crf_on_cuda_matches_cpu():
    _truth, image, probs = synthetic(0)
    cpu = refine.crf_refine(probs, image, device="cpu")
    gpu = refine.crf_refine(probs, image, device="cuda")
    assert (cpu == gpu).mean() > 0.999


def test_bad_tile_size_is_named():
    _truth, image, probs = synthetic(0, shape=(16, 16))
    with pytest.raises(ValueError, match="tile_pixels"):
        refine.crf_refine(probs, image, device="cpu", tile_pixels=0)


def test_class_last_probabilities_are_named_with_the_transpose_to_give():
    """Probabilities stacked class-last (H, W, C), as numpy users stack maps, were
    refused by the CRF as "image must cover the probabilities' pixels (32, 2)", a shape
    that exists nowhere in the user's code."""
    rng = np.random.default_rng(0)
    probabilities = rng.random((2, 16, 16)).astype(np.float32)
    probabilities /= probabilities.sum(0)
    image = rng.random((16, 16)).astype(np.float32)
    labels = (probabilities.argmax(0) == 1).astype(np.uint8)
    advice = r"they look class-last; .* give probabilities\.transpose\(2, 0, 1\)"
    with pytest.raises(ValueError, match=advice):
        refine.crf_refine(probabilities.transpose(1, 2, 0), image, iterations=1)
    with pytest.raises(ValueError, match=advice):
        refine.watershed_split(labels, probabilities=probabilities.transpose(1, 2, 0))
    assert refine.crf_refine(probabilities, image, iterations=1).shape == (16, 16)
