"""Semantic scores: hand-computed values, the zero-division policy, per-class oracle."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_seg.metrics import (
    confusion_matrix,
    format_scores,
    semantic_scores,
    slice_confusion_matrices,
    to_dict,
)

nan = float("nan")


def scores_of(pred, gt, **kwargs):
    return semantic_scores(confusion_matrix(np.asarray(pred), np.asarray(gt), **kwargs))


def test_hand_computed_three_classes():
    s = scores_of([0, 1, 1, 2], [0, 1, 2, 2])
    np.testing.assert_allclose(s.iou, [1, 0.5, 0.5])
    np.testing.assert_allclose(s.dice, [1, 2 / 3, 2 / 3])
    np.testing.assert_allclose(s.precision, [1, 0.5, 1])
    np.testing.assert_allclose(s.recall, [1, 1, 0.5])
    assert s.mean_iou == pytest.approx(2 / 3)
    assert s.mean_iou_foreground == pytest.approx(0.5)
    assert s.frequency_weighted_iou == pytest.approx((1 * 1 + 1 * 0.5 + 2 * 0.5) / 4)
    assert s.pixel_accuracy == pytest.approx(0.75)
    assert s.mean_dice == pytest.approx((1 + 4 / 3) / 3)
    np.testing.assert_array_equal(s.support, [1, 1, 2])
    np.testing.assert_array_equal(s.predicted, [1, 2, 1])


def test_absent_class_is_nan_and_left_out_of_means():
    s = scores_of([0, 1, 1, 2], [0, 1, 2, 2], labels=range(4))
    assert s.labels == (0, 1, 2, 3)
    assert all(math.isnan(v[3]) for v in (s.iou, s.dice, s.precision, s.recall))
    assert s.mean_iou == pytest.approx(2 / 3)  # same as without class 3
    assert s.mean_recall == pytest.approx(2.5 / 3)


def test_class_only_predicted_or_only_true_scores_zero():
    s = scores_of([0, 1, 0, 0], [0, 0, 2, 0])
    # class 1 only predicted: IoU 0, precision 0, recall undefined
    assert s.iou[1] == 0
    assert s.precision[1] == 0
    assert math.isnan(s.recall[1])
    # class 2 only true: IoU 0, recall 0, precision undefined
    assert s.iou[2] == 0
    assert s.recall[2] == 0
    assert math.isnan(s.precision[2])
    assert s.mean_iou == pytest.approx((2 / 4 + 0 + 0) / 3)


def test_all_background():
    s = scores_of(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    assert s.labels == (0,)
    assert s.mean_iou == 1
    assert s.pixel_accuracy == 1
    assert math.isnan(s.mean_iou_foreground)  # no foreground class at all
    one_wrong = np.zeros((4, 4), np.uint8)
    one_wrong[0, 0] = 1
    s = scores_of(one_wrong, np.zeros((4, 4), np.uint8))
    np.testing.assert_allclose(s.iou, [15 / 16, 0])
    assert s.mean_iou_foreground == 0


def test_ignored_ids_are_not_scored_but_their_predictions_count_as_misses():
    s = scores_of([0, 0, 1, 1], [0, 1, 1, 1], ignore_labels=[0])
    assert s.labels == (1,)
    np.testing.assert_allclose(s.iou, [2 / 3])
    np.testing.assert_allclose(s.recall, [2 / 3])
    assert s.pixel_accuracy == pytest.approx(2 / 3)
    assert s.mean_iou_foreground == pytest.approx(2 / 3)


def test_background_none_keeps_every_class_in_foreground_means():
    cm = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
    assert semantic_scores(cm, background=None).mean_iou_foreground == pytest.approx(2 / 3)
    with pytest.raises(TypeError, match="ConfusionMatrix"):
        semantic_scores(np.eye(2))


def test_per_slice_scores_have_a_leading_axis():
    gt = np.zeros((3, 4, 4), np.uint8)
    gt[:, :2] = 1
    pred = gt.copy()
    pred[1, :, :] = 0  # slice 1 misses everything
    s = semantic_scores(slice_confusion_matrices(pred, gt))
    assert s.iou.shape == (3, 2)
    np.testing.assert_allclose(s.iou[:, 1], [1, 0, 1])
    np.testing.assert_allclose(s.pixel_accuracy, [1, 0.5, 1])
    np.testing.assert_allclose(s.mean_iou_foreground, [1, 0, 1])


def test_json_and_text_reports():
    s = scores_of([0, 1, 1, 2], [0, 1, 2, 2], labels=range(4))
    d = to_dict(s, ["background", "cell", "membrane"])
    text = json.dumps(d, allow_nan=False)  # NaN became null
    assert json.loads(text)["classes"][3]["IoU"] is None
    assert d["classes"][1]["class"] == "cell"
    assert d["classes"][3]["class"] == "3"
    assert d["mean_iou"] == pytest.approx(2 / 3)
    report = format_scores(s, ["background", "cell"])
    assert "mean IoU (no background): 0.5000" in report
    assert "cell" in report


@given(k=st.integers(1, 6), n=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=50, deadline=None)
def test_matches_per_class_definitions(k, n, seed):
    rng = np.random.default_rng(seed)
    gt, pred = rng.integers(0, k, n), rng.integers(0, k, n)
    s = scores_of(pred, gt, labels=range(k))
    for c in range(k):
        tp = np.sum((gt == c) & (pred == c))
        fp = np.sum((gt != c) & (pred == c))
        fn = np.sum((gt == c) & (pred != c))
        expect = tp / (tp + fp + fn) if tp + fp + fn else nan
        np.testing.assert_allclose(s.iou[c], expect)
        dice = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan
        np.testing.assert_allclose(s.dice[c], dice)
    assert s.pixel_accuracy == pytest.approx(np.mean(gt == pred))
    assert s.mean_iou == pytest.approx(np.nanmean(s.iou))


def test_everything_ignored_gives_nan_not_an_error():
    gt = np.zeros((3, 3), np.uint8)
    s = scores_of(np.ones((3, 3), np.uint8), gt, ignore_labels=[0])
    assert s.labels == ()  # the prediction at ignored pixels is not scored either
    assert math.isnan(s.pixel_accuracy)
    assert math.isnan(s.mean_iou)
    cm = confusion_matrix(gt, gt, ignore_labels=[0])
    assert cm.labels == ()
    assert cm.ignored == 9
    assert math.isnan(semantic_scores(cm).mean_iou)


def test_a_mask_with_a_channel_axis_of_one_is_told_to_drop_it():
    from napari_seg.metrics import evaluate

    gt = np.zeros((12, 14), np.uint8)
    gt[3:8, 2:9] = 1
    with pytest.raises(
        ValueError, match=r"gt's last axis of 1 is a channel axis: give gt\[\.\.\., 0\]"
    ):
        evaluate(gt, gt[..., None])
    with pytest.raises(ValueError, match=r"pred's last axis of 1"):
        evaluate(gt[..., None], gt)
    with pytest.raises(ValueError, match=r"same shape, got \(12, 14\) and \(12, 13\)$"):
        evaluate(gt, gt[:, :13])
