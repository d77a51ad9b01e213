"""Instance matching: hand-computed scores, a dense assignment oracle, 20,000 objects."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from napari_seg.metrics import format_scores, instance_overlaps, match_instances, to_dict


def test_hand_computed_scores():
    gt = np.zeros((10, 10), np.uint16)
    gt[0:4, 0:4] = 1  # 16 px
    gt[6:10, 6:10] = 2  # 16 px
    gt[0:2, 7:9] = 3  # 4 px, missed
    pred = np.zeros((10, 10), np.int32)
    pred[0:4, 0:3] = 7  # 12 px inside object 1: IoU 12/16
    pred[6:10, 6:10] = 9  # exact: IoU 1
    pred[8:10, 0:2] = 5  # spurious
    s = match_instances(pred, gt, thresholds=(0.5, 0.8))
    assert (s.n_true, s.n_pred) == (3, 3)
    np.testing.assert_array_equal(s.tp, [2, 1])
    np.testing.assert_array_equal(s.fp, [1, 2])
    np.testing.assert_array_equal(s.fn, [1, 2])
    np.testing.assert_allclose(s.precision, [2 / 3, 1 / 3])
    np.testing.assert_allclose(s.f1, [2 / 3, 1 / 3])
    np.testing.assert_allclose(s.accuracy, [2 / 4, 1 / 5])
    np.testing.assert_allclose(s.mean_matched_iou, [(0.75 + 1) / 2, 1])
    np.testing.assert_allclose(s.panoptic_quality, [1.75 / 3, 1 / 3])
    true_ids, pred_ids, _iou = s.matches[0]
    assert sorted(zip(true_ids.tolist(), pred_ids.tolist(), strict=True)) == [(1, 7), (2, 9)]
    assert s.mean_accuracy == pytest.approx((0.5 + 0.2) / 2)


def test_overlaps_are_sparse_pairs_with_areas():
    gt = np.array([[1, 1, 2, 2, 0]])
    pred = np.array([[4, 4, 4, 0, 6]])
    ov = instance_overlaps(pred, gt)
    assert ov.true_ids.tolist() == [1, 2]
    assert ov.true_area.tolist() == [2, 2]
    assert ov.pred_ids.tolist() == [4, 6]
    assert ov.pred_area.tolist() == [3, 1]
    pairs = dict(
        zip(
            zip(ov.pairs_true.tolist(), ov.pairs_pred.tolist(), strict=False),
            ov.iou.tolist(),
            strict=False,
        )
    )
    assert pairs == {(1, 4): pytest.approx(2 / 3), (2, 4): pytest.approx(1 / 4)}


def test_empty_images_give_nan_not_errors():
    empty = np.zeros((5, 5), np.uint8)
    s = match_instances(empty, empty)
    assert s.n_true == s.n_pred == 0
    assert np.isnan(s.accuracy).all()
    assert np.isnan(s.precision).all()
    one = empty.copy()
    one[1:3, 1:3] = 1
    s = match_instances(empty, one, thresholds=(0.5,))
    assert s.recall[0] == 0
    assert np.isnan(s.precision[0])
    assert s.accuracy[0] == 0
    assert to_dict(s)["thresholds"][0]["precision"] is None
    assert "1 true objects, 0 predicted objects" in format_scores(s)


def test_bad_thresholds_and_inputs():
    a = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match=r"thresholds must be in \(0, 1\]"):
        match_instances(a, a, thresholds=(0.5, 1.5))
    with pytest.raises(ValueError, match="at least one"):
        match_instances(a, a, thresholds=())
    with pytest.raises(ValueError, match=r"thresholds must differ; \[0\.5\] given more"):
        match_instances(a, a, thresholds=(0.5, 0.75, 0.5))  # a table row twice, unasked
    with pytest.raises(TypeError, match="gt must hold integer label ids, got float64 values"):
        match_instances(a, a + 0.5)  # probabilities, not ids
    assert match_instances(a, a.astype(float)).n_true == 0  # whole numbers: ids


def test_ties_at_one_half_are_resolved_by_assignment():
    gt = np.array([[1, 1, 1, 1]])
    pred = np.array([[2, 2, 3, 3]])  # both halves have IoU exactly 0.5 with object 1
    s = match_instances(pred, gt, thresholds=(0.5,))
    assert s.tp[0] == 1
    assert s.fp[0] == 1
    assert s.fn[0] == 0


def test_twenty_thousand_objects_without_a_dense_matrix():
    rows, cols = 200, 100  # 20,000 objects of 3x3 pixels
    gt = np.kron(np.arange(1, rows * cols + 1).reshape(rows, cols), np.ones((3, 3), int))
    perm = np.random.default_rng(0).permutation(rows * cols) + 1
    pred = np.where(gt > 0, perm[gt - 1], 0).astype(np.uint32)
    pred[::3] = 0  # every object loses a row: IoU 6/9
    tracemalloc.start()
    s = match_instances(pred, gt.astype(np.uint32), thresholds=(0.5, 0.7))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(s.tp, [20000, 0])
    np.testing.assert_allclose(s.mean_matched_iou[0], 2 / 3)
    # a dense 20,000 x 20,000 overlap matrix would need 3.2 GB
    assert peak < 100 * 2**20


def dense_oracle(pred, gt, threshold):
    """Max matching on the full IoU matrix (most matches, then highest IoU)."""
    t_ids = [i for i in np.unique(gt) if i]
    p_ids = [i for i in np.unique(pred) if i]
    iou = np.zeros((len(t_ids), len(p_ids)))
    for a, t in enumerate(t_ids):
        for b, p in enumerate(p_ids):
            inter = np.sum((gt == t) & (pred == p))
            iou[a, b] = inter / np.sum((gt == t) | (pred == p))
    if not iou.size:
        return 0, 0.0
    ok = iou >= threshold
    weight = np.where(ok, 1.0 + iou / (2 * min(iou.shape)), 0.0)
    r, c = linear_sum_assignment(weight, maximize=True)
    r, c = r[ok[r, c]], c[ok[r, c]]
    return len(r), float(iou[r, c].sum())


@st.composite
def blob_image(draw):
    """A small instance image painted with a few random rectangles (overlaps overwrite)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = np.zeros((12, 12), np.int32)
    for _i in range(draw(st.integers(0, 7))):
        y, x = rng.integers(0, 10, 2)
        h, w = rng.integers(1, 6, 2)
        image[y : y + h, x : x + w] = rng.integers(1, 50)
    return image


@given(gt=blob_image(), pred=blob_image(), t=st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.95]))
@settings(max_examples=80, deadline=None)
def test_matches_dense_assignment(gt, pred, t):
    s = match_instances(pred, gt, thresholds=(t,))
    tp, iou_sum = dense_oracle(pred, gt, t)
    assert s.tp[0] == tp
    assert s.matches[0][2].sum() == pytest.approx(iou_sum)
    assert s.n_true == len(np.unique(gt[gt > 0]))
    assert s.fp[0] == s.n_pred - tp
    assert s.fn[0] == s.n_true - tp


def _seg_by_definition(pred, gt):
    """The Cell Tracking Challenge's SEG, object by object as its definition reads."""
    values = []
    for r in np.unique(gt[gt > 0]):
        true = gt == r
        j = 0.0
        for s in np.unique(pred[true & (pred > 0)]):
            found = pred == s
            if (true & found).sum() > 0.5 * true.sum():
                j = (true & found).sum() / (true | found).sum()
        values.append(j)
    return float(np.mean(values)) if values else float("nan")


def test_seg_follows_the_cell_tracking_challenge(make_instances):
    gt = np.zeros((4, 8), np.uint8)
    gt[:, :4] = 1  # 16 px
    gt[:2, 5:7] = 2  # 4 px
    pred = np.zeros((4, 8), np.uint8)
    pred[:, :3] = 3  # covers 12 of its 16 px: IoU 12/16
    pred[:2, 5] = 4  # covers exactly half of object 2: no match (more than half needed)
    s = match_instances(pred, gt, thresholds=(0.5,))
    assert s.seg == pytest.approx((12 / 16 + 0) / 2)
    assert "SEG (Cell Tracking Challenge): 0.3750" in format_scores(s)
    assert to_dict(s)["seg"] == pytest.approx(0.375)
    images = [make_instances((96, 96), n=25, seed=k) for k in range(3)]
    preds = [np.roll(lab, (k + 1, 2), axis=(0, 1)) for k, (_, lab) in enumerate(images)]
    scores = []
    for pred, (_, lab) in zip(preds, images, strict=True):
        scores.append(match_instances(pred, lab))
        assert scores[-1].seg == pytest.approx(_seg_by_definition(pred, lab))
    from napari_seg.metrics import pool_instance_scores

    pooled = pool_instance_scores(scores)  # all frames' true objects, as the challenge
    expected = sum(s.seg * s.n_true for s in scores) / sum(s.n_true for s in scores)
    assert pooled.seg == pytest.approx(expected)
    assert np.isnan(match_instances(pred, np.zeros_like(pred)).seg)
