"""Dask images are read through a cache of computed chunks (``arrays.chunk_cache``)."""

import numpy as np
import pytest

from napari_seg.arrays.chunk_cache import ChunkCache, cached_chunks
from napari_seg.inference import predict
from napari_seg.models import ModelSpec, create_model

da = pytest.importorskip("dask.array", reason="dask is in the test and cluster extras")


@pytest.mark.parametrize("budget", [10**9, 1000])  # the second keeps no chunk at all
def test_region_reads_are_the_array_s(budget):
    rng = np.random.default_rng(0)
    data = rng.random((7, 40, 33)).astype(np.float32)
    cache = ChunkCache(da.from_array(data, chunks=(3, 16, 10)), budget)
    indices = [
        (slice(None),),
        (2, slice(5, 37), slice(0, 33, 4)),
        (-1, slice(39, 40), 32),
        (slice(1, 6, 2), slice(None, None, 3), slice(10, 30)),
        (slice(3, 3), slice(None), slice(None)),
        (Ellipsis, 0),  # not a plain region: dask's own indexing
        (np.int64(4), 17),
    ]
    for index in indices:
        np.testing.assert_array_equal(cache[index], data[index])
    np.testing.assert_array_equal(np.asarray(cache), data)
    with pytest.raises(IndexError, match="out of bounds for axis 0"):
        cache[7]
    assert cache.shape == data.shape
    assert cache.dtype == data.dtype
    assert cached_chunks(data) is data  # numpy stays as it is


def test_a_costly_chunk_is_computed_once_per_prediction():
    """A 768 x 768 image in one chunk behind a filter was filtered once for every tile
    and normalisation sample that touched it (128 times for a 3072^2 image: 36 s
    against 2.5 s in memory); with the cache, once."""
    from scipy import ndimage as ndi

    calls = []

    def smooth(block):
        calls.append(block.shape)
        return ndi.gaussian_filter(block, 1)

    image = np.random.default_rng(1).random((768, 768)).astype(np.float32)
    lazy = da.from_array(image, chunks=-1).map_blocks(smooth, dtype=np.float32)
    calls.clear()  # dask called it once on an empty block to learn its output type
    model = create_model(ModelSpec("unet", 1, 2, options={"depth": 2, "base_width": 4}))
    found = predict(model, lazy, tile=128, device="cpu")
    assert len(calls) == 1
    expected = predict(model, ndi.gaussian_filter(image, 1), tile=128, device="cpu")
    np.testing.assert_array_equal(found.labels, expected.labels)


@pytest.mark.parametrize("dims", [2, 3])
def test_training_computes_a_costly_chunk_once(dims):
    """Training read a random patch, a validation tile or an intensity sample of a dask
    image by computing its chunks anew: a 2048^2 image in one chunk behind a Gaussian
    filter was filtered 197 times in 2 epochs of 10 steps (33 s; 6 s with the cache)."""
    from scipy import ndimage as ndi

    from napari_seg.training import train

    calls = []

    def smooth(block):
        calls.append(block.shape)
        return ndi.gaussian_filter(block, 1)

    shape = (160, 160) if dims == 2 else (40, 72, 72)
    rng = np.random.default_rng(2)
    image = rng.random(shape).astype(np.float32)
    labels = (ndi.gaussian_filter(image, 3) > 0.5).astype(np.uint8)
    lazy = da.from_array(image, chunks=-1).map_blocks(smooth, dtype=np.float32)
    calls.clear()
    patch = 32
    result = train(
        (lazy, labels), architecture="unet", dims=dims, options={"depth": 2, "base_width": 4},
        epochs=1, steps_per_epoch=3, minutes=None, patch_size=patch, batch_size=2,
        validation_fraction=0.25, device="cpu",
    )  # fmt: skip
    assert result.history  # it trained, reading the image
    assert len(calls) == 1
