"""The evaluation job: settings round trip, named absent classes, per-slice scores."""

import json
import math

import numpy as np
import pytest

from napari_seg.metrics import EvaluateConfig, evaluate


def test_config_round_trip_and_validation():
    config = EvaluateConfig(
        mode="instance",
        ignore_labels=(0, 9),
        thresholds=(0.5, 0.9),
        slice_axis=0,
        class_names={0: "background", 3: "cell"},
    ).validate()
    assert EvaluateConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="mode must be one of"):
        EvaluateConfig(mode="panoptic").validate()
    with pytest.raises(ValueError, match="ignore_labels must be ids >= 0"):
        EvaluateConfig(ignore_labels=(-1,)).validate()
    with pytest.raises(ValueError, match="instance mode needs a background"):
        EvaluateConfig(mode="instance", background=None).validate()
    # A label id is >= 0: background -1 was taken, and dropped no class from the means
    # (the dock said "-1" was not "a whole number").
    with pytest.raises(ValueError, match="background must be >= 0, got -1"):
        EvaluateConfig(background=-1).validate()
    with pytest.raises(TypeError, match="background must be an integer or None"):
        EvaluateConfig(background=True).validate()
    with pytest.raises(ValueError, match=r"unknown evaluation setting\(s\) \[.mod.\]"):
        EvaluateConfig.from_json('{"mod": "semantic"}')


def test_a_spacing_without_the_surface_scores_is_refused_not_ignored(tmp_path, capsys):
    """``evaluate(pred, gt, spacing=(2, 2))`` and ``napari-seg evaluate --spacing 2 2``
    scored as without it, silently: only the surface scores use a spacing."""
    from napari_seg.cli import main

    gt = np.zeros((40, 40), np.uint8)
    gt[5:20, 5:20] = 1
    message = r"spacing is used only by the surface distances .* surface=True \(--surface\)"
    with pytest.raises(ValueError, match=message):
        evaluate(np.roll(gt, 1, 0), gt, spacing=(2, 2))
    assert evaluate(np.roll(gt, 1, 0), gt, spacing=(2, 2), surface=True).surface is not None
    np.save(tmp_path / "gt.npy", gt)
    argv = ["evaluate", "--pred", str(tmp_path / "gt.npy"), "--gt", str(tmp_path / "gt.npy")]
    assert main([*argv, "--spacing", "2", "2"]) == 1
    assert "spacing is used only by the surface distances" in capsys.readouterr().err
    assert main([*argv, "--spacing", "2", "2", "--surface"]) == 0


def test_a_tolerance_without_the_surface_scores_is_refused_not_ignored(tmp_path, capsys):
    """``napari-seg evaluate --tolerance 2`` without ``--surface`` scored as without it."""
    from napari_seg.cli import main
    from napari_seg.metrics import DEFAULT_TOLERANCE

    gt = np.zeros((40, 40), np.uint8)
    gt[5:20, 5:20] = 1
    with pytest.raises(ValueError, match=r"^tolerance is used only by the surface distances"):
        evaluate(np.roll(gt, 1, 0), gt, tolerance=2.0)
    with pytest.raises(ValueError, match=r"^spacing and tolerance are used only .* leave spac"):
        evaluate(gt, gt, spacing=(2, 2), tolerance=0.5)
    assert evaluate(gt, gt, tolerance=DEFAULT_TOLERANCE).surface is None  # the default: fine
    assert evaluate(np.roll(gt, 1, 0), gt, tolerance=2.0, surface=True).surface is not None
    np.save(tmp_path / "gt.npy", gt)
    argv = ["evaluate", "--pred", str(tmp_path / "gt.npy"), "--gt", str(tmp_path / "gt.npy")]
    assert main([*argv, "--tolerance", "2"]) == 1
    assert "tolerance is used only by the surface distances" in capsys.readouterr().err
    assert main([*argv, "--tolerance", "2", "--surface"]) == 0


def test_named_absent_classes_are_listed_with_nan():
    gt = np.array([[0, 1], [0, 1]])
    pred = np.array([[0, 1], [1, 1]])
    names = {0: "background", 1: "cell", 2: "membrane"}
    r = evaluate(pred, gt, EvaluateConfig(class_names=names))
    assert r.scores.labels == (0, 1, 2)
    assert math.isnan(r.scores.iou[2])
    assert r.scores.mean_iou == pytest.approx((0.5 + 2 / 3) / 2)
    assert r.names() == ["background", "cell", "membrane"]
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["classes"][2] == {**d["classes"][2], "class": "membrane", "IoU": None}


def test_per_slice_semantic_and_instance():
    gt = np.zeros((3, 8, 8), np.uint8)
    gt[:, 2:6, 2:6] = 1
    pred = gt.copy()
    pred[2] = 0
    r = evaluate(pred, gt, EvaluateConfig(slice_axis=0, class_names={0: "bg", 1: "a", 2: "b"}))
    np.testing.assert_allclose(r.slice_summary(), [1, 1, 0])
    whole = evaluate(pred, gt)
    np.testing.assert_allclose(r.scores.iou[:2], whole.scores.iou)
    inst = evaluate(pred, gt, EvaluateConfig(mode="instance", slice_axis=-3))
    np.testing.assert_allclose(inst.slice_summary(), [1, 1, 0])
    assert inst.to_dict()["per_slice"]["score"] == "accuracy"


def test_instance_scores_of_class_labels_come_with_a_warning(make_instances):
    from skimage.measure import label

    from napari_seg.metrics import id_regions

    _, objects = make_instances((96, 128), n=30)
    classes = (objects > 0).astype(np.uint8)  # a semantic prediction: one class
    assert id_regions(objects) == (len(np.unique(objects)) - 1, len(np.unique(objects)) - 1)
    assert id_regions(classes)[0] == 1
    assert id_regions(classes)[1] == label(classes, connectivity=2).max()
    result = evaluate(classes, objects, EvaluateConfig(mode="instance"))
    assert len(result.warnings) == 1
    assert "the prediction has 1 id(s) in" in result.warnings[0]
    assert "connected components" in result.warnings[0]
    assert evaluate(objects, objects, EvaluateConfig(mode="instance")).warnings == []
    flipped = evaluate(objects, classes, EvaluateConfig(mode="instance")).warnings
    assert len(flipped) == 1
    assert flipped[0].startswith("the ground truth has 1 id(s)")
    assert evaluate(classes, classes).warnings == []  # semantic mode: classes are right


def test_a_time_series_of_objects_is_matched_plane_by_plane(make_instances):
    """Track ids (one id per object over time, as the Cell Tracking Challenge's ground
    truth) against per-frame objects: whole-array matching is meaningless and says so;
    per-slice scores give each frame's matching and all frames pooled."""
    from napari_seg.metrics import match_instances, pool_instance_scores

    frames = [make_instances((64, 80), n=12, seed=s)[1] for s in range(5)]
    tracks = np.stack(frames)  # ids 1..n reused in every frame, at other places
    offsets = np.cumsum([0, *(int(f.max()) for f in frames[:-1])])
    per_frame = np.stack([np.where(f > 0, f + o, 0) for f, o in zip(frames, offsets, strict=True)])
    pred = per_frame.copy()
    pred[2, :20] = 0  # part of frame 2 missed
    whole = evaluate(pred, tracks, EvaluateConfig(mode="instance"))
    assert len(whole.warnings) == 1
    assert "recur in" in whole.warnings[0]
    assert "along axis 0" in whole.warnings[0]
    assert "--per-slice 0" in whole.warnings[0]
    assert whole.pooled_slices is None
    config = EvaluateConfig(mode="instance", slice_axis=0)
    sliced = evaluate(pred, tracks, config)
    assert sliced.warnings == []  # each plane holds objects: nothing to warn about
    expect = pool_instance_scores(
        [match_instances(p, t) for p, t in zip(pred, tracks, strict=True)]
    )
    pooled = sliced.pooled_slices
    assert pooled.n_true == sum(len(np.unique(f)) - 1 for f in frames)
    np.testing.assert_array_equal(pooled.tp, expect.tp)
    assert 0.5 < pooled.f1[0] < 1
    assert whole.scores.f1[0] < 0.5 < pooled.f1[0]
    assert sliced.to_dict()["per_slice"]["pooled"]["thresholds"][0]["TP"] == int(pooled.tp[0])
    # class labels (two ids, many regions in every plane) keep the class warning
    classes = (per_frame > 0).astype(np.uint8) + (per_frame % 2).astype(np.uint8)
    [message] = evaluate(classes, per_frame, config.with_(slice_axis=None)).warnings
    assert message.startswith("the prediction has 2 id(s)")


def test_id_regions_of_a_large_array_reads_its_middle_plane_s_centre():
    from napari_seg.metrics import _arrays

    class Recorder:
        shape, dtype = (3, 5000, 5000), np.dtype(np.uint16)

        def __getitem__(self, index):
            self.index = index
            return np.ones((4096, 4096), np.uint16)

    array = Recorder()
    assert _arrays.id_regions(array) == (1, 1)
    assert array.index == (1, slice(452, 4548), slice(452, 4548))
    assert _arrays.id_regions(np.zeros((4, 4), np.float32)) == (0, 0)


def test_semantic_scores_against_instance_labels_come_with_a_warning(make_instances):
    _, objects = make_instances((96, 128), n=30)
    classes = (objects > 0).astype(np.uint8)
    warnings = evaluate(classes, objects).warnings
    assert len(warnings) == 1  # this one, not the "ids barely overlap" advice
    assert "looks like instance labels" in warnings[0]
    assert "instance mode (mode: instance; --instance on the command line)" in warnings[0]
    assert evaluate(classes, classes).warnings == []
    assert evaluate(objects, objects, EvaluateConfig(mode="instance")).warnings == []


def test_one_class_under_two_ids_is_flagged():
    """A prediction in 0/1 against a mask saved as 0/255: the foreground is small, so
    the share rule stays quiet; the two ids covering the same pixels do not."""
    gt = np.zeros((64, 64), np.uint8)
    gt[10:30, 10:30] = 255  # 10% of the image
    pred = (gt > 0).astype(np.uint8)
    pred[10:14, 10:30] = 0
    [message] = evaluate(pred, gt).warnings
    assert "predicted id 1 covers the ground truth's id 255 (IoU 0.80)" in message
    assert evaluate(gt, gt).warnings == []
    other = gt.copy()
    other[40:50, 40:50] = 2  # a predicted class elsewhere: no claim of a renamed class
    assert evaluate(np.where(other == 255, 0, other).astype(np.uint8), gt).warnings == []


def test_an_image_given_as_ground_truth_is_named_in_a_few_ids():
    """An intensity image scored as ground truth listed all its thousands of values in
    the "ids barely overlap" warning (a wall of text in the dock's notification); the
    warning lists a few, counts them, and asks whether it is an image."""
    rng = np.random.default_rng(0)
    image = rng.integers(100, 3000, (64, 64)).astype(np.uint16)
    labels = (image > 1500).astype(np.uint8) + 1
    (warning,) = evaluate(labels, image).warnings
    assert "the prediction's ids [1, 2] and the ground truth's [" in warning
    count = len(np.unique(image))
    assert f", ...] ({count:,} ids: an image rather than labels?) barely overlap" in warning
    assert len(warning) < 600
    few = evaluate(labels, labels + 3).warnings[0]  # a few ids: all listed, no count
    assert "the ground truth's [4, 5] barely overlap" in few


def test_a_background_id_neither_array_uses_is_warned_of():
    """background=7 where the background is 0 left no class out of the means "without
    background", without a word; one id only (a crop inside an object) is no sign."""
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (32, 32))
    pred = np.where(rng.random(gt.shape) < 0.9, gt, 0)
    result = evaluate(pred, gt, background=7)
    (warning,) = result.warnings
    assert "the background id 7 is in neither array (ids [0, 1, 2])" in warning
    assert result.scores.mean_iou_foreground == pytest.approx(result.scores.mean_iou)
    assert evaluate(pred, gt).warnings == []
    assert evaluate(pred, gt, background=None).warnings == []
    assert evaluate(pred, gt, background=2).warnings == []  # present: the user's choice
    ones = np.ones((8, 8), int)
    assert evaluate(ones, ones).warnings == []
    # sparse annotations, 0 "not annotated": ignored, so no background to miss
    assert evaluate(np.maximum(pred, 1), gt, ignore_labels=(0,)).warnings == []


def test_a_ground_truth_ignored_whole_is_said_to_score_nothing():
    """--ignore 0 1 2 on labels of ids 0 to 2 printed a table of dashes, unexplained."""
    gt = np.random.default_rng(0).integers(0, 3, (16, 16))
    (warning,) = evaluate(gt, gt, ignore_labels=(0, 1, 2)).warnings
    assert warning.startswith("every ground-truth pixel carries an id left out (ignore")
    assert "[0, 1, 2]): nothing was scored" in warning
    assert evaluate(gt, gt, ignore_labels=(1, 2)).warnings == []


def test_one_hot_arrays_as_monai_s_metrics_take_them_are_named():
    """MONAI's metrics take one-hot ``(C, H, W)`` or ``(B, C, H, W)`` arrays. A one-hot
    integer pair was scored as a stack of C planes of ids 0/1 without a word (Dice
    0.93 for a pair whose class scores are 0.96 and 0.80); a float one was refused as
    "must hold integer label ids". Both now say what the array looks like and what to
    give instead."""
    import torch

    gt = np.zeros((64, 64), np.int64)
    gt[10:40, 10:40] = 1
    pred = gt.copy()
    pred[10:20] = 0

    def one_hot(labels):
        return torch.nn.functional.one_hot(torch.from_numpy(labels), 2).permute(2, 0, 1)

    with pytest.raises(
        TypeError, match=r"float32: it looks one-hot along axis 0, .*pred\.argmax\(0\)"
    ):
        evaluate(one_hot(pred).float(), one_hot(gt).float())
    with pytest.raises(TypeError, match=r"along axis 1, .*pred\.argmax\(1\)"):
        evaluate(one_hot(pred).float()[None], one_hot(gt).float()[None])
    for mode in ("semantic", "instance"):
        warned = evaluate(one_hot(pred), one_hot(gt), mode=mode).warnings
        assert warned[:2] == [
            f"{name} of shape (2, 64, 64) is scored as label ids: it looks one-hot along "
            f"axis 0, as MONAI's metrics take it; napari-seg scores label ids: give "
            f"{name}.argmax(0)"
            for name in ("pred", "gt")
        ]
    assert evaluate(pred, gt).warnings == []
    right = evaluate(one_hot(pred).argmax(0), one_hot(gt).argmax(0))
    np.testing.assert_allclose(right.scores.dice, evaluate(pred, gt).scores.dice)
    stack = np.stack([gt, pred, gt])  # a label stack: its corner is background on every plane
    assert evaluate(stack, stack).warnings == []


def test_boolean_masks_are_scored_as_background_0_and_foreground_1():
    """Refused before ("convert a mask with .astype(np.uint8)"), where scikit-learn's
    scores and MONAI's take masks as they are; a zarr mask is read block by block."""
    zarr = pytest.importorskip("zarr")
    from napari_seg.metrics import match_instances, surface_scores

    gt = np.zeros((40, 40), bool)
    gt[5:20, 5:20] = True
    pred = np.roll(gt, 1, axis=0)
    ids = evaluate(pred.astype(np.uint8), gt.astype(np.uint8))
    as_masks = evaluate(pred, gt)
    assert as_masks.scores.labels == (0, 1)
    np.testing.assert_allclose(as_masks.scores.iou, ids.scores.iou)
    assert as_masks.scores.iou[1] == pytest.approx(14 / 16)
    stored = zarr.zeros((40, 40), dtype=bool, chunks=(10, 10))
    stored[:] = gt
    np.testing.assert_allclose(evaluate(pred.tolist(), stored).scores.iou, ids.scores.iou)
    assert match_instances(pred, stored).tp[0] == 1
    assert surface_scores(pred, stored, spacing=(1, 1)).hausdorff[0] == pytest.approx(1.0)
