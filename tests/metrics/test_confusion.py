"""Confusion matrices: hand-computed cases, input checks, and a brute-force oracle."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_seg.metrics import _arrays, confusion_matrix, slice_confusion_matrices
from napari_seg.metrics._arrays import block_slices


def brute_force(pred, gt, ignore=()):
    """Count pairs one pixel at a time with a Counter (independent of bincount)."""
    pairs = Counter(
        (int(g), int(p)) for g, p in zip(gt.ravel(), pred.ravel(), strict=True) if g not in ignore
    )
    labels = sorted({i for pair in pairs for i in pair})
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for (g, p), n in pairs.items():
        counts[labels.index(g), labels.index(p)] = n
    return labels, counts


def test_hand_computed_counts():
    cm = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
    assert cm.labels == (0, 1, 2)
    np.testing.assert_array_equal(cm.counts, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    assert cm.ignored == 0


def test_labels_add_absent_classes_and_fix_the_order():
    cm = confusion_matrix(np.array([1, 0]), np.array([1, 1]), labels=[3, 1, 0])
    assert cm.labels == (3, 1, 0)
    np.testing.assert_array_equal(cm.counts, [[0, 0, 0], [0, 1, 1], [0, 0, 0]])


def test_ignore_labels_drop_ground_truth_pixels_only():
    gt = np.array([0, 0, 1, 1, 2])
    pred = np.array([1, 0, 0, 1, 2])
    cm = confusion_matrix(pred, gt, ignore_labels=[0])
    assert cm.ignored == 2
    # the prediction's 0 at a pixel of class 1 is still a miss of class 1
    assert cm.labels == (0, 1, 2)
    np.testing.assert_array_equal(cm.counts, [[0, 0, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(cm.scored, [False, True, True])


def test_mapping_merges_ids_before_ignoring():
    gt = np.array([255, 255, 7, 0], dtype=np.uint8)
    pred = np.array([1, 0, 0, 0], dtype=np.uint8)
    cm = confusion_matrix(pred, gt, mapping={255: 1, 7: 0}, ignore_labels=())
    assert cm.labels == (0, 1)
    np.testing.assert_array_equal(cm.counts, [[2, 0], [1, 1]])
    ignored = confusion_matrix(pred, gt, mapping={7: 9}, ignore_labels=[9])
    assert ignored.ignored == 1


def test_large_ids_any_integer_dtype():
    gt = np.array([[0, 65535], [70000, 65535]], dtype=np.uint32)
    pred = np.array([[0, 65535], [65535, 65535]], dtype=np.int64)
    cm = confusion_matrix(pred, gt)
    assert cm.labels == (0, 65535, 70000)
    np.testing.assert_array_equal(cm.counts, [[1, 0, 0], [0, 2, 0], [0, 1, 0]])
    big = np.array([2**40, 3], dtype=np.uint64)
    assert confusion_matrix(big, big).labels == (3, 2**40)


def test_nd_equals_flat():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 5, (3, 4, 5, 6), dtype=np.int16)
    pred = rng.integers(0, 5, (3, 4, 5, 6), dtype=np.uint16)
    a = confusion_matrix(pred, gt)
    b = confusion_matrix(pred.ravel(), gt.ravel())
    np.testing.assert_array_equal(a.counts, b.counts)


def test_dask_input_is_read_by_block(monkeypatch):
    da = pytest.importorskip("dask.array")
    monkeypatch.setattr(_arrays, "BLOCK_SIZE", 100)
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 3, (40, 50), dtype=np.uint8)
    pred = rng.integers(0, 3, (40, 50), dtype=np.uint8)
    lazy = confusion_matrix(da.from_array(pred, chunks=10), da.from_array(gt, chunks=10))
    np.testing.assert_array_equal(lazy.counts, confusion_matrix(pred, gt).counts)


@pytest.mark.parametrize(
    ("pred", "gt", "error", "match"),
    [
        (np.zeros((2, 3), int), np.zeros((3, 2), int), ValueError, "same shape"),
        (np.full(3, 0.5), np.zeros(3, int), TypeError, r"float64 values .* give their argmax"),
        (np.array([np.nan, 1.0]), np.zeros(2, int), TypeError, "pred must hold integer"),
        (np.zeros(0, int), np.zeros(0, int), ValueError, "pred is empty"),
        (np.array([0, -1]), np.array([0, 1]), ValueError, "negative"),
        (np.int64(3), np.int64(3), ValueError, "at least one axis"),
        ("abc", np.zeros(3, int), TypeError, "pred must be an array"),
    ],
)
def test_bad_inputs_are_named(pred, gt, error, match):
    with pytest.raises(error, match=match):
        confusion_matrix(pred, gt)


def test_bad_options_are_named():
    a = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"ids \[2\] that are not in labels"):
        confusion_matrix(a, a, labels=[0, 1])
    with pytest.raises(ValueError, match="must not repeat"):
        confusion_matrix(a, a, labels=[0, 1, 2, 1])
    with pytest.raises(ValueError, match="ignore_labels must be ids >= 0"):
        confusion_matrix(a, a, ignore_labels=[-1])
    with pytest.raises(TypeError, match="mapping keys must hold whole-number label ids"):
        confusion_matrix(a, a, mapping={1.5: 0})
    many = np.arange(5000)
    with pytest.raises(ValueError, match=r"too many classes.*instance"):
        confusion_matrix(many, many)


def test_slices_sum_to_the_whole_and_match_each_slice():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 4, (5, 7, 6), dtype=np.uint8)
    pred = rng.integers(0, 4, (5, 7, 6), dtype=np.uint8)
    gt[2] = 1  # one slice holds one class only
    stack = slice_confusion_matrices(pred, gt, axis=1, ignore_labels=[3])
    assert stack.counts.shape == (7, 4, 4)
    whole = confusion_matrix(pred, gt, ignore_labels=[3])
    np.testing.assert_array_equal(stack.counts.sum(axis=0), whole.counts)
    for i in range(7):
        one = confusion_matrix(pred[:, i], gt[:, i], labels=stack.labels, ignore_labels=[3])
        np.testing.assert_array_equal(stack.counts[i], one.counts)
        assert stack.ignored[i] == one.ignored
    with pytest.raises(ValueError, match="axis 3 is out of range for an image with 3 dimensions"):
        slice_confusion_matrices(pred, gt, axis=3)


@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=7),
    size=st.integers(1, 50),
    high=st.sampled_from([2, 5, 300, 70000]),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_matches_brute_force(shape, size, high, seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, high, shape)
    pred = np.where(rng.random(shape) < 0.5, gt, rng.integers(0, high, shape))
    ignore = (int(gt.flat[0]),) if seed % 2 else ()
    old = _arrays.BLOCK_SIZE
    _arrays.BLOCK_SIZE = size  # exercises block boundaries
    try:
        cm = confusion_matrix(pred, gt, ignore_labels=ignore)
    finally:
        _arrays.BLOCK_SIZE = old
    labels, counts = brute_force(pred, gt, ignore)
    assert list(cm.labels) == labels
    np.testing.assert_array_equal(cm.counts, counts)
    assert cm.ignored == int(np.isin(gt, ignore).sum())


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=9), size=st.integers(1, 100))
def test_blocks_cover_every_element_once(shape, size):
    seen = np.zeros(shape, dtype=np.int64)
    for index in block_slices(shape, size):
        block = seen[index]
        assert 0 < block.size <= max(size, shape[-1] if len(shape) else 1)
        seen[index] += 1
    np.testing.assert_array_equal(seen, 1)
