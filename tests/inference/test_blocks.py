"""Block-wise prediction gives the single-process result bit for bit."""

import dataclasses

import numpy as np
import pytest
import torch

from napari_seg._generators import drain
from napari_seg.inference import PredictConfig, predict
from napari_seg.inference.blocks import (
    fixed_settings,
    iter_predict_block,
    layout_of,
    output_chunks,
    plan_blocks,
)
from napari_seg.inference.tiling import TileGrid
from napari_seg.models import ModelSpec, create_model
from napari_seg.sample_data import cells_2d, cells_3d


def _model(dims=2, classes=4):
    torch.manual_seed(0)
    options = {"depth": 2, "base_width": 4}
    model = create_model(ModelSpec("unet", 1, classes, spatial_dims=dims, options=options))
    with torch.no_grad():  # an untrained net answers one class everywhere: make it vary
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.eval()


def _blockwise(model, image, config, block):
    fixed, stats = fixed_settings(model, image, config)
    layout = layout_of(model, image.shape, fixed)
    out = np.full(layout.output_shape, 255, np.uint8)
    probs = np.full((model.spec.num_classes, *layout.output_shape), np.nan, np.float16)
    blocks = plan_blocks(layout, block)
    for b in blocks[::-1]:  # any order
        drain(iter_predict_block(model, image, b, fixed, out=out, stats=stats,
                                 probabilities_out=probs))  # fmt: skip
    return out, probs, blocks


@pytest.mark.parametrize(
    ("dims", "shape", "axis", "block", "tile", "tta"),
    [
        (2, (300, 410), None, 96, 64, False),  # a plane: 4 x 5 blocks, tiles cross every boundary
        (2, (3, 150, 130), 0, 64, 48, False),  # a stack: per plane and box
        (3, (60, 70, 76), None, 48, 32, False),  # a volume: 2 x 2 x 2 blocks
        (2, (300, 410), None, 96, 64, True),  # test-time mirroring
    ],
)
def test_blocks_reproduce_the_whole_image_bit_for_bit(dims, shape, axis, block, tile, tta):
    if dims == 2:
        image = np.stack([cells_2d(shape[-2:], seed=s)[0] for s in range(3)])
        image = image[0] if len(shape) == 2 else image[: shape[0]]
    else:
        image = cells_3d(shape, seed=2)[0]
    model = _model(dims)
    config = PredictConfig(device="cpu", tile=tile, overlap=tile // 3, batch_size=3,
                           axis=axis, probabilities=True, tta=tta)  # fmt: skip
    whole = predict(model, image, config)
    labels, probs, blocks = _blockwise(model, image, config, block)
    assert len(blocks) > 3  # blocks really are smaller than the image
    # a non-trivial result (the mean of a random net's mirror images is one class)
    assert len(np.unique(whole.labels)) > 1 or tta
    assert np.ptp(whole.probabilities.astype(np.float32)) > 0.1
    np.testing.assert_array_equal(labels, whole.labels)
    np.testing.assert_array_equal(probs, whole.probabilities)


@pytest.mark.parametrize(
    ("dims", "shape", "axis", "spacing", "model_spacing", "block"),
    [
        (2, (300, 410), None, (0.7, 1.3), (1.0, 1.0), 96),  # up in y, down in x
        (2, (2, 150, 130), 0, (1.6, 1.6), (1.0, 1.0), 64),  # a stack, plane by plane
        (3, (40, 70, 76), None, (3.0, 0.6, 0.5), (1.5, 1.0, 1.0), 48),  # anisotropic
    ],
)
def test_resampled_blocks_reproduce_the_whole_image_bit_for_bit(
    dims, shape, axis, spacing, model_spacing, block
):
    """At another spacing than the model's, each block runs the resampled grid's tiles
    over its box's source and resamples them back: the single-process result exactly."""
    if dims == 2:
        image = np.stack([cells_2d(shape[-2:], seed=s)[0] for s in range(2)])
        image = image[0] if len(shape) == 2 else image
    else:
        image = cells_3d(shape, seed=2)[0]
    model = _model(dims)
    model.spec = dataclasses.replace(model.spec, spacing=model_spacing)
    config = PredictConfig(device="cpu", axis=axis, spacing=spacing, probabilities=True,
                           overlap=12, batch_size=2)  # fmt: skip
    whole = predict(model, image, config)
    labels, probs, blocks = _blockwise(model, image, config, block)
    assert len(blocks) > 3
    assert len(np.unique(whole.labels)) > 1
    np.testing.assert_array_equal(labels, whole.labels)
    np.testing.assert_array_equal(probs, whole.probabilities)


def test_blocks_tile_the_image_in_whole_chunks():
    layout = layout_of(_model(), (3, 1100, 700), PredictConfig(axis=0))
    chunks = output_chunks(layout, 600)
    assert chunks == (1, 512, 512)
    blocks = plan_blocks(layout, 600)  # rounded up to 2 chunks: 1024
    assert len(blocks) == 3 * 2 * 1
    covered = np.zeros(layout.output_shape, np.int32)
    for b in blocks:
        (y0, y1), (x0, x1) = b.box
        assert y0 % 512 == 0
        assert x0 % 512 == 0
        covered[b.planes[0] : b.planes[1], y0:y1, x0:x1] += 1
    assert (covered == 1).all()
    for side in (8, 0, 65537):
        with pytest.raises(ValueError, match="from 16 to 65536"):
            plan_blocks(layout, side)


def test_a_restricted_grid_keeps_the_tiles_over_its_box():
    grid = TileGrid.build((1000, 700), 256, 64)
    sub, origin = grid.restrict(((300, 500), (0, 700)))
    assert origin[0] == 192
    assert origin[1] == 0
    kept = [s + origin[0] for s in sub.starts[0]]
    assert kept == [s for s in grid.starts[0] if s < 500 and s + 256 > 300]
    assert sub.shape[0] == kept[-1] + 256 - origin[0]
    with pytest.raises(ValueError, match="leaves the grid"):
        grid.restrict(((900, 1100), (0, 10)))


def test_a_block_needs_fixed_settings_and_the_model_spacing():
    model = _model()
    image = cells_2d((64, 64))[0]
    layout = layout_of(model, image.shape, PredictConfig())
    block = plan_blocks(layout)[0]
    fixed, stats = fixed_settings(model, image, PredictConfig(device="cpu"))
    with pytest.raises(ValueError, match="fixed tile, overlap, batch_size"):
        drain(iter_predict_block(model, image, block, PredictConfig(), out=np.zeros((64, 64),
              np.uint8), stats=stats))  # fmt: skip
    assert fixed.tile is not None
    assert fixed.batch_size is not None


def test_a_block_out_of_memory_fails_instead_of_changing_its_tiles(monkeypatch):
    """A single run halves its batch or tile on out-of-memory; a block must not (its
    values would differ from its neighbours'): it raises, and its task is retried."""
    model = _model()
    image = cells_2d((128, 128))[0]
    forward = model.forward

    def limited(x):
        if x.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(x)

    monkeypatch.setattr(model, "forward", limited)
    config = PredictConfig(device="cpu", tile=64, overlap=16, batch_size=2)
    fixed, stats = fixed_settings(model, image, config)
    block = plan_blocks(layout_of(model, image.shape, fixed), 64)[0]
    out = np.zeros(image.shape, np.uint8)
    with pytest.raises(MemoryError, match="block 0 ran out of memory"):
        drain(iter_predict_block(model, image, block, fixed, out=out, stats=stats))
    assert not out.any()  # nothing written
