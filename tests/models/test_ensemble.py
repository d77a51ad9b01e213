"""Several models predicting as one (``napari_seg.models.ensemble``)."""

import numpy as np
import pytest
import torch

from napari_seg.inference import predict
from napari_seg.models import ModelSpec, create_model, ensemble, save_model
from napari_seg.sample_data import cells_2d

NAMES = ("background", "cytoplasm", "nucleus")


def _model(seed, arch="unet", **options):
    torch.manual_seed(seed)
    spec = ModelSpec(arch, 1, 3, class_names=NAMES, options=options)
    model = create_model(spec).eval()
    with torch.no_grad():  # far-apart logits: the members disagree clearly
        for p in model.parameters():
            p.mul_(3)
    return model


@pytest.fixture(scope="module")
def members():
    # two architectures with different size multiples (8 and 4)
    return [_model(0, depth=3, base_width=8), _model(1, depth=2, base_width=4)]


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities(members):
    image = cells_2d((96, 128), seed=2)[0]
    run = {"tile": 128, "probabilities": True, "precision": "fp32"}
    together = predict(ensemble(members), image, **run)
    alone = [predict(m, image, **run).probabilities.astype(np.float32) for m in members]
    mean = np.mean(alone, axis=0)
    np.testing.assert_allclose(together.probabilities.astype(np.float32), mean, atol=1e-3)
    # the same labels but at near-ties (the members' probabilities are stored as float16)
    assert (together.labels == mean.argmax(0)).mean() > 0.995
    assert np.abs(alone[0] - alone[1]).max() > 0.1  # the members do disagree
    # with test-time mirroring too: each member's mirror images, all averaged
    mirrored = predict(ensemble(members), image, tta=True, **run).probabilities
    each = [predict(m, image, tta=True, **run).probabilities.astype(np.float32) for m in members]
    np.testing.assert_allclose(mirrored.astype(np.float32), np.mean(each, axis=0), atol=1e-3)


def test_an_ensemble_takes_the_members_spec_and_size_multiple(members):
    model = ensemble(members)
    assert model.spec.class_names == NAMES
    assert model.size_multiple == 8
    assert len(model.card["provenance"]["ensemble"]) == 2
    shifted = _model(2, depth=2, base_width=4)
    shifted.spec = shifted.spec.with_(untrained_classes=(2,))
    both = members[0]
    both.spec = both.spec.with_(untrained_classes=(2,))
    try:  # a class is left out only where no member trained on it
        assert ensemble([both, shifted]).spec.untrained_classes == (2,)
        assert ensemble([members[1], shifted]).spec.untrained_classes == ()
    finally:
        both.spec = both.spec.with_(untrained_classes=())


def test_members_must_read_and_predict_the_same_things(members, tmp_path):
    with pytest.raises(ValueError, match="at least two models"):
        ensemble(members[:1])
    other = _model(3, depth=2, base_width=4)
    other.spec = other.spec.with_(class_names=("background", "cell", "nucleus"))
    with pytest.raises(ValueError, match="model 2 differs from model 1 in its class names"):
        ensemble([members[0], other])
    other.spec = other.spec.with_(class_names=NAMES, spacing=(0.5, 0.5))
    with pytest.raises(ValueError, match="in its voxel size"):
        ensemble([members[0], other])
    with pytest.raises(ValueError, match="save each of its models"):
        save_model(ensemble(members), tmp_path / "both.safetensors")
    assert not (tmp_path / "both.safetensors").exists()
