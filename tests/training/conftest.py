"""Small data and settings shared by the training tests."""

import numpy as np
import pytest

from napari_seg.training import TrainingConfig


def blobs(shape=(128, 128), seed=0):
    """A noisy image of bright discs and its 0/1 labels."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    yy, xx = np.indices(shape)
    for _ in range(max(3, shape[0] * shape[1] // 1500)):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(5, 11)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
    image = ndi.gaussian_filter(labels.astype(np.float32), 1.0) + rng.normal(0, 0.25, shape)
    return image.astype(np.float32), labels


@pytest.fixture
def make_blobs():
    return blobs


@pytest.fixture
def tiny():
    """Settings of a fast run: a 3-level U-Net of width 8 on the CPU, fp32."""
    return TrainingConfig(
        options={"depth": 3, "base_width": 8},
        label0="background",
        epochs=2,
        minutes=None,
        steps_per_epoch=4,
        batch_size=2,
        patch_size=64,
        device="cpu",
        precision="fp32",
        seed=0,
    )
