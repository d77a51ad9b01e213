"""The pixel classifier: fitting from strokes, the torch forest against scikit-learn,
its model file (round trip and hostile tensors), the live loop's core, the deep
takeover, and the id-mismatch warning of Evaluate."""

import contextlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from napari_seg._generators import drain
from napari_seg.inference import predict
from napari_seg.metrics import evaluate
from napari_seg.models import ModelFileError, ModelSpec, create_model, load_model, save_model
from napari_seg.models.model_file import METADATA_KEY, read_model_card, tensors_digest
from napari_seg.sample_data import cells_2d
from napari_seg.training import TrainingConfig, train
from napari_seg.training.forest import FeatureSamples, fit_forest
from napari_seg.training.live import LiveClassifier
from napari_seg.training.pixel import pixel_net
from napari_seg.training.takeover import iter_takeover


def _strokes(truth, per_class=6, seed=0, classes=None):
    """Short horizontal strokes inside each class of ``truth`` (ids: class + 1)."""
    rng = np.random.default_rng(seed)
    strokes = np.zeros(truth.shape, np.uint8)
    for c in classes if classes is not None else np.unique(truth):
        inside = np.argwhere(truth == c)
        for y, x in inside[rng.choice(len(inside), min(per_class, len(inside)), replace=False)]:
            row = truth[y, max(0, x - 6) : x + 7] == c
            strokes[y, max(0, x - 6) : x + 7][row] = c + 1
    return strokes


def _iou(pred, truth):
    return (pred & truth).sum() / max(1, (pred | truth).sum())


@pytest.fixture(scope="module")
def cells():
    image, truth = cells_2d((192, 192), seed=4)
    return image, truth, _strokes(truth)


def test_fitted_from_strokes_it_segments_the_image(cells):
    image, truth, strokes = cells
    result = train((image, strokes), architecture="pixel-classifier", label0="unlabelled",
                   device="cpu", validation_fraction=0.0)  # fmt: skip
    assert result.stopped == "fitted"
    labels = predict(result.model, image).labels
    # ids are the painted ids: 1 = background class, 2 and 3 = the two cell classes
    assert set(np.unique(labels)) <= {1, 2, 3}
    assert _iou(labels >= 2, truth >= 1) > 0.8


def test_torch_forest_decides_exactly_as_scikit_learn():
    from sklearn.ensemble import RandomForestClassifier

    spec = ModelSpec("pixel-classifier", 1, 4, options={"trees": 5, "depth": 6})
    net = pixel_net(create_model(spec))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, net.features.out_channels)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 3] > 0.5) + 1  # classes 1..3; 0 never seen
    fit_forest(net, FeatureSamples(torch.from_numpy(x), torch.from_numpy(y)), seed=1, threads=1)
    reference = RandomForestClassifier(
        5, max_depth=6, class_weight="balanced", oob_score=True, random_state=1, n_jobs=1
    ).fit(x, y)
    z = rng.standard_normal((5000, x.shape[1])).astype(np.float32)
    ours = net.classify_vectors(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(ours[:, 1:], reference.predict_proba(z), atol=1e-6)
    assert np.all(ours[:, 0] == 0)


def test_the_fit_figure_is_the_out_of_bag_error_of_the_samples_some_tree_left_out(recwarn):
    """With 30 trees every sample is out of some bootstrap and the figure is
    scikit-learn's ``1 - oob_score_``. With 3 trees some samples are in every
    bootstrap: scikit-learn warns and scores them as its first class; the figure
    leaves them out, and nothing warns."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.standard_normal(600) > 0).astype(int) + 1
    samples = FeatureSamples(torch.from_numpy(x), torch.from_numpy(y))
    for trees in (30, 3):
        spec = ModelSpec("pixel-classifier", 1, 3, options={"trees": trees, "depth": 4})
        recwarn.clear()
        error = fit_forest(pixel_net(create_model(spec)), samples, seed=1, threads=1).error
        assert [str(w.message) for w in recwarn] == []
        with pytest.warns(UserWarning, match="OOB") if trees == 3 else contextlib.nullcontext():
            reference = RandomForestClassifier(
                trees, max_depth=4, class_weight="balanced", oob_score=True, random_state=1
            ).fit(x, y)
        votes = reference.oob_decision_function_
        covered = votes.sum(axis=1) > 0
        assert covered.all() == (trees == 30)
        wrong = reference.classes_[votes[covered].argmax(axis=1)] != y[covered]
        assert error == pytest.approx(wrong.mean())
        assert (error == pytest.approx(1 - reference.oob_score_)) == (trees == 30)


def test_file_round_trip_gives_the_same_labels(cells, tmp_path):
    image, _truth, strokes = cells
    model = train((image, strokes), architecture="pixel-classifier", label0="unlabelled",
                  device="cpu", validation_fraction=0.0).model  # fmt: skip
    path = save_model(model, tmp_path / "pc.safetensors")
    loaded = load_model(path)
    assert loaded.spec == model.spec
    np.testing.assert_array_equal(predict(loaded, image).labels, predict(model, image).labels)


def _tampered(source, path, name, change):
    """``source`` with tensor ``name`` changed and a valid checksum (as
    tests/models/test_hostile_files.py's ``craft`` does for cards and specs)."""
    data = load_file(str(source))
    key = next(k for k in data if k.endswith(name))
    data[key] = change(data[key])
    card = read_model_card(source)
    card["tensors_sha256"] = tensors_digest(data)
    save_file(data, str(path), metadata={METADATA_KEY: json.dumps(card)})
    return path


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("split_feature", lambda t: t + 10_000, "split_feature holds indices"),
        ("split_feature", lambda t: t - 10_000, "split_feature holds indices"),
        ("levels", lambda t: t + 50, "levels is"),
        ("leaf_probability", lambda t: t * 7, "leaf_probability holds values"),
    ],
)
def test_hostile_forest_tensors_are_refused(cells, tmp_path, name, change, message):
    image, _truth, strokes = cells
    model = train((image, strokes), architecture="pixel-classifier", label0="unlabelled",
                  device="cpu", validation_fraction=0.0).model  # fmt: skip
    good = save_model(model, tmp_path / "good.safetensors")
    bad = _tampered(good, tmp_path / "bad.safetensors", name, change)
    with pytest.raises(ModelFileError, match=message):
        load_model(bad)


def test_live_classifier_predicts_a_region_as_the_whole_image(cells):
    image, truth, strokes = cells
    live = LiveClassifier(image, device="cpu")
    whole = live.update(strokes)
    assert whole.labels.shape == image.shape
    part = live.predict(0, (slice(40, 120), slice(10, 90)))
    np.testing.assert_array_equal(part.labels, whole.labels[40:120, 10:90])
    assert part.uncertainty.min() >= 0
    assert part.uncertainty.max() <= 1
    # The fitted model predicts the same labels through the tiled predictor.
    np.testing.assert_array_equal(predict(whole.model, image).labels, whole.labels)
    # Refits reuse the features: the cache holds the image's window.
    assert len(live.cache._items) == 1
    more = strokes.copy()
    more[truth == 0] = np.where(np.random.default_rng(1).random((truth == 0).sum()) < 0.02, 1, 0)
    refit = live.update(more)
    assert len(live.cache._items) == 1
    assert refit.fit_seconds > 0
    assert refit.model is not whole.model
    # The same strokes again (a refreshed view, an undo redone) keep the fit.
    again = live.update(more.copy(), 0, (slice(40, 120), slice(10, 90)))
    assert again.fit_seconds == 0
    assert again.model is refit.model
    np.testing.assert_array_equal(again.labels, refit.labels[40:120, 10:90])
    # Strokes painted in place into the array of the last fit (a layer's data) are new
    # strokes: the fit kept a reference and compared them with themselves (no refit).
    more[5:9, 5:60] = 2
    painted = live.update(more)
    assert painted.fit_seconds > 0
    assert painted.model is not refit.model


def test_live_classifier_refuses_a_gradient_trained_architecture(cells):
    with pytest.raises(ValueError, match="trained by gradient descent"):
        LiveClassifier(cells[0], architecture="unet")


def test_live_classifier_messages_name_the_strokes_not_a_pair(cells):
    """A Python user of the live classifier has no pairs: its refusals said "the labels
    of pair 0 have no annotated pixel" and "pair 0: labels shape ..."."""
    image = cells[0]
    live = LiveClassifier(image, device="cpu")
    with pytest.raises(ValueError, match=r"^the labels of the strokes have no annotated pixel"):
        live.update(np.zeros(image.shape, np.uint8))
    with pytest.raises(ValueError, match=r"^the strokes: labels shape"):
        live.update(np.zeros((image.shape[0] - 1, image.shape[1]), np.uint8))
    named = LiveClassifier(image, device="cpu", names=["cells"])
    with pytest.raises(ValueError, match=r"^the labels of cells have no annotated pixel"):
        named.update(np.zeros(image.shape, np.uint8))


def test_live_classifier_settings_are_read_as_every_job_s():
    """A misspelt keyword raised dataclasses' "unexpected keyword argument" and a dict
    of settings an AttributeError: both are read as the other jobs read them."""
    image = np.zeros((16, 16), np.float32)
    with pytest.raises(TypeError, match=r"\(tres: did you mean threads\?\)"):
        LiveClassifier(image, tres=8)
    live = LiveClassifier(image, {"architecture": "pixel-classifier", "threads": 1})
    assert (live.config.threads, live.config.label0) == (1, "unlabelled")


def test_many_small_classes_are_not_swallowed_by_the_majority():
    """Six classes, five of them small: every class is predicted, and most pixels of
    each small class are found (a collapse to the majority would score 0 on them)."""
    rng = np.random.default_rng(0)
    truth = np.zeros((160, 160), np.uint8)
    image = rng.normal(0.0, 0.05, truth.shape)
    for c in range(1, 6):
        y, x = 20 + 25 * c, 30 + 20 * c
        truth[y - 6 : y + 6, x - 6 : x + 6] = c
        image[truth == c] += 0.2 * c
    strokes = _strokes(truth, per_class=3)
    live = LiveClassifier(image.astype(np.float32), device="cpu")
    labels = live.update(strokes).labels.astype(int) - 1
    for c in range(1, 6):
        assert np.mean(labels[truth == c] == c) > 0.8, c


def test_deep_takeover_trains_scores_both_and_keeps_every_class():
    image, truth = cells_2d((128, 128), seed=5)
    strokes = _strokes(truth, per_class=8, seed=2)
    config = TrainingConfig(architecture="unet", encoder="classic",
                            options={"depth": 2, "base_width": 8}, epochs=2,
                            minutes=None, steps_per_epoch=5, batch_size=2, patch_size=64,
                            device="cpu")  # fmt: skip
    events = []
    run = iter_takeover(image, strokes, config)
    try:
        while True:
            events.append(next(run))
    except StopIteration as end:
        result = end.value
    assert result.training.steps == 10
    assert 0.0 <= result.pixel_score <= 1.0
    assert 0.0 <= result.deep_score <= 1.0
    assert result.replaced == (result.deep_score > result.pixel_score)
    assert result.deep.spec.num_classes == int(strokes.max()) + 1
    assert result.pixel.spec.architecture == "pixel-classifier"
    assert any(type(e).__name__ == "StepProgress" for e in events)


def test_takeover_needs_two_classes():
    image, truth = cells_2d((64, 64), seed=1)
    strokes = _strokes(truth, classes=[0])
    with pytest.raises(ValueError, match="at least two classes"):
        drain(iter_takeover(image, strokes, TrainingConfig(device="cpu")))


def test_evaluate_warns_when_ids_are_shifted():
    truth = np.zeros((40, 40), np.uint8)
    truth[10:30, 10:30] = 1
    shifted = truth + 1  # strokes painted 1/2 scored against masks in 0/1
    result = evaluate(shifted, truth)
    assert len(result.warnings) == 1
    assert "barely overlap" in result.warnings[0]
    assert evaluate(truth, truth).warnings == []
    # A poor prediction with the right ids is no reason for the warning.
    poor = truth.copy()
    poor[10:20, 10:30] = 0
    assert evaluate(poor, truth).warnings == []


def test_mean_without_background_drops_the_background_class_not_id_0():
    from napari_seg.metrics import EvaluateConfig

    truth = np.ones((20, 20), np.uint8)
    truth[5:15, 5:15] = 2  # ids 1 (background) and 2
    pred = truth.copy()
    pred[5:10, 5:15] = 1
    scores = evaluate(pred, truth, EvaluateConfig(background=1)).scores
    assert scores.mean_iou_foreground == pytest.approx(0.5)


def test_scribble_unet_fits_its_classifier_then_trains_and_round_trips(cells, tmp_path):
    """``train --arch scribble-unet`` fits the inner pixel classifier on the
    annotations first (it would otherwise feed the U-Net constant probabilities),
    trains the U-Net, and the file holds both."""
    image, _truth, strokes = cells
    config = TrainingConfig(architecture="scribble-unet", options={"depth": 2, "base_width": 8},
                            label0="unlabelled", epochs=1, minutes=None, steps_per_epoch=3,
                            batch_size=2, patch_size=64, device="cpu",
                            validation_fraction=0.0)  # fmt: skip
    model = train((image, strokes), config).model
    inner = pixel_net(model)
    assert bool(inner.fitted)
    assert inner.split_threshold.abs().sum() > 0
    path = save_model(model, tmp_path / "stacked.safetensors")
    loaded = load_model(path)
    np.testing.assert_array_equal(predict(loaded, image).labels, predict(model, image).labels)
    bad = _tampered(path, tmp_path / "bad.safetensors", "split_feature", lambda t: t + 10_000)
    with pytest.raises(ModelFileError, match="split_feature holds indices"):
        load_model(bad)


def test_the_live_classifier_leaves_ignored_strokes_out(cells):
    """Strokes painted with an id left out (``ignore_labels``) are no class of the live
    model: the Train dock's legend leaves them out, and so does the live update."""
    image, _, strokes = cells
    void = strokes.copy()
    void[:6, :40] = 255
    live = LiveClassifier(image, device="cpu", ignore_labels=(255,))
    result = live.update(void)
    assert result.model.spec.num_classes == int(strokes.max()) + 1
    assert 255 not in np.unique(result.labels)
    plain = LiveClassifier(image, device="cpu").update(void)
    assert plain.model.spec.num_classes == 256  # painted ids are classes, 255 too
