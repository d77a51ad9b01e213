"""Error maps: each pixel's kind of agreement, semantic and instance."""

import numpy as np

from napari_seg.metrics import ERROR_COLORS, ERROR_NAMES, error_map, instance_error_map


def test_semantic_error_kinds():
    gt = np.array([[0, 0, 1, 1, 2, 3]])
    pred = np.array([[0, 1, 1, 0, 1, 3]])
    np.testing.assert_array_equal(error_map(pred, gt), [[0, 2, 1, 3, 4, 1]])
    # ignored ground truth is blank; without background every mismatch is a wrong class
    np.testing.assert_array_equal(error_map(pred, gt, ignore_labels=[0]), [[0, 0, 1, 3, 4, 1]])
    np.testing.assert_array_equal(error_map(pred, gt, background=None), [[1, 4, 1, 4, 4, 1]])
    assert len(ERROR_NAMES) == len(ERROR_COLORS) == 5
    assert gt.tolist() == [[0, 0, 1, 1, 2, 3]]  # inputs unchanged


def test_instance_error_objects():
    gt = np.array([[1, 1, 1, 0, 2, 2, 2, 0, 0]])
    pred = np.array([[5, 5, 5, 0, 0, 0, 7, 0, 8]])  # 5 matches 1; 7 too small for 2; 8 spurious
    out = instance_error_map(pred, gt, threshold=0.5)
    np.testing.assert_array_equal(out, [[1, 1, 1, 0, 3, 3, 2, 0, 2]])
