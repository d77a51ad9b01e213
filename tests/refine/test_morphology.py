"""Per-class morphology against hand-made expected arrays (2D and 3D)."""

import numpy as np
import pytest

from napari_seg import refine


def test_remove_small_objects_removes_components_below_min_size(unchanged):
    labels = np.zeros((7, 7), np.uint8)
    labels[0, 0] = 1  # 1 pixel
    labels[0, 4:7] = 1  # 3 pixels
    labels[3:6, 3:6] = 1  # 9 pixels
    labels[6, 0:2] = 2  # 2 pixels of another class
    expected = labels.copy()
    expected[0, 0] = 0
    expected[6, 0:2] = 0
    out = unchanged(refine.remove_small_objects, labels, 3)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == labels.dtype
    # Only class 2 cleaned: the 1-pixel object of class 1 stays.
    only2 = refine.remove_small_objects(labels, 3, classes=[2])
    assert only2[0, 0] == 1
    assert not only2[6, 0:2].any()


def test_connectivity_decides_what_an_object_is():
    labels = np.zeros((4, 4), np.uint8)
    labels[1, 1] = labels[2, 2] = 1  # diagonal neighbours
    assert not refine.remove_small_objects(labels, 2, connectivity=1).any()
    np.testing.assert_array_equal(refine.remove_small_objects(labels, 2, connectivity=2), labels)


def test_removed_speck_can_join_the_class_around_it():
    labels = np.ones((5, 5), np.uint8)
    labels[2, 2] = 2
    np.testing.assert_array_equal(
        refine.remove_small_objects(labels, 2, replace_with="nearest"), np.ones((5, 5))
    )
    background = refine.remove_small_objects(labels, 2)
    assert background[2, 2] == 0
    assert background.sum() == 24


def test_remove_small_objects_3d(unchanged):
    labels = np.zeros((4, 6, 6), np.uint16)
    labels[0:2, 0:2, 0:2] = 3  # 8 voxels
    labels[3, 5, 5] = 3  # 1 voxel
    expected = labels.copy()
    expected[3, 5, 5] = 0
    np.testing.assert_array_equal(unchanged(refine.remove_small_objects, labels, 8), expected)
    assert not refine.remove_small_objects(labels, 9).any()


def test_fill_holes_fills_enclosed_small_holes_only(unchanged):
    labels = np.zeros((9, 12), np.uint8)
    labels[1:4, 1:4] = 1
    labels[2, 2] = 0  # 1-pixel hole
    labels[1:8, 5:11] = 1
    labels[3:6, 7:9] = 0  # 6-pixel hole
    expected = labels.copy()
    expected[2, 2] = 1
    np.testing.assert_array_equal(unchanged(refine.fill_holes, labels, 2), expected)
    filled = refine.fill_holes(labels, 7)
    assert filled[3:6, 7:9].all()
    # The background touching the border is not a hole, however small the threshold.
    assert (refine.fill_holes(labels, 1000)[0] == 0).all()


def test_fill_holes_keeps_other_classes_unless_over_classes():
    labels = np.ones((5, 5), np.uint8)
    labels[2, 2] = 2
    labels[2, 3] = 0
    kept = refine.fill_holes(labels, 5, classes=[1])
    assert kept[2, 2] == 2
    assert kept[2, 3] == 1
    assert (refine.fill_holes(labels, 5, classes=[1], over_classes=True) == 1).all()


def test_fill_holes_3d():
    labels = np.ones((3, 3, 3), np.uint8)
    labels[1, 1, 1] = 0
    assert (refine.fill_holes(labels, 2) == 1).all()
    # In 2D slices the void is also a hole, but a 3D hole needs enclosing in 3D.
    labels[0, 1, 1] = 0  # now it reaches the border through the top face
    assert refine.fill_holes(labels, 5)[1, 1, 1] == 0


def test_dilation_grows_into_background_only_unless_over_classes(unchanged):
    labels = np.zeros((5, 5), np.uint8)
    labels[2, 2] = 1
    labels[2, 3] = 2
    out = unchanged(refine.dilation, labels, 1, classes=[1])
    expected = labels.copy()
    expected[1, 2] = expected[3, 2] = expected[2, 1] = 1  # disk(1) is a cross; (2, 3) is class 2
    np.testing.assert_array_equal(out, expected)
    over = refine.dilation(labels, 1, classes=[1], over_classes=True)
    assert over[2, 3] == 1


def test_erosion_shrinks_but_not_from_the_array_border(unchanged):
    labels = np.zeros((6, 6), np.uint8)
    labels[0:3, 0:3] = 1
    expected = np.zeros_like(labels)
    expected[0:2, 0:2] = 1
    np.testing.assert_array_equal(unchanged(refine.erosion, labels, 1), expected)
    assert (refine.erosion(labels, 0) == labels).all()


def test_opening_removes_a_spur_and_closing_fills_a_gap():
    labels = np.zeros((7, 9), np.uint8)
    labels[2:5, 1:4] = 1
    labels[3, 4:7] = 1  # one-pixel-wide spur
    # Erosion by the cross keeps (3, 2) and (3, 3); dilating them back gives this.
    expected = np.zeros_like(labels)
    expected[3, 1:5] = 1
    expected[2, 2:4] = expected[4, 2:4] = 1
    np.testing.assert_array_equal(refine.opening(labels, 1), expected)
    gap = np.zeros((7, 9), np.uint8)
    gap[2:5, 1:4] = 1
    gap[2:5, 5:8] = 1  # a one-pixel gap at column 4
    closed = refine.closing(gap, 1)
    assert closed[3, 4] == 1
    assert (closed[gap == 1] == 1).all()


def test_dilation_and_erosion_3d_use_a_ball():
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[2, 2, 2] = 1
    grown = refine.dilation(labels, 1)
    assert grown.sum() == 7  # the voxel and its 6 face neighbours
    np.testing.assert_array_equal(refine.erosion(grown, 1), labels)


def test_keep_largest_component_per_class(unchanged):
    labels = np.zeros((6, 8), np.uint8)
    labels[0:2, 0:2] = 1  # 4
    labels[4, 0:2] = 1  # 2
    labels[0, 5:8] = 2  # 3
    labels[3:6, 5:8] = 2  # 9
    expected = labels.copy()
    expected[4, 0:2] = 0
    expected[0, 5:8] = 0
    np.testing.assert_array_equal(unchanged(refine.keep_largest, labels), expected)


def test_keep_largest_3d():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0, 0, 0] = 1
    labels[2:4, 2:4, 2:4] = 1
    out = refine.keep_largest(labels)
    assert out.sum() == 8
    assert out[0, 0, 0] == 0


def test_majority_takes_the_most_common_label_in_the_disk(unchanged):
    labels = np.zeros((6, 6), np.uint8)
    labels[:, 3:] = 1
    labels[2, 2] = 1  # a one-pixel bump into class 0
    labels[4, 4] = 0  # a one-pixel dent in class 1
    expected = np.zeros_like(labels)
    expected[:, 3:] = 1
    np.testing.assert_array_equal(unchanged(refine.majority, labels, 1), expected)


def test_majority_3d_removes_an_isolated_voxel():
    labels = np.full((5, 5, 5), 2, np.uint8)
    labels[2, 2, 2] = 1
    assert (refine.majority(labels, 1) == 2).all()


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (
            lambda: refine.remove_small_objects(np.full((3, 3), 0.5), 2),
            TypeError,
            "labels must hold integer labels, got float64 values that are not all whole",
        ),
        (
            lambda: refine.remove_small_objects(np.zeros((2, 2, 2, 2), int), 2),
            ValueError,
            "2D or 3D",
        ),
        (lambda: refine.remove_small_objects(np.zeros((3, 3), int), -1), ValueError, "min_size"),
        (lambda: refine.dilation(np.zeros((3, 3), int), -2), ValueError, "radius"),
        (
            lambda: refine.fill_holes(np.zeros((3, 3), int), 2, classes=[0]),
            ValueError,
            "background",
        ),
        (
            lambda: refine.keep_largest(np.zeros((3, 3), int), connectivity=3),
            ValueError,
            "connectivity",
        ),
        (lambda: refine.majority(np.full((3, 3), 70000), 1), ValueError, "65535"),
        (
            lambda: refine.remove_small_objects(np.ones((3, 3), int), 2, replace_with="x"),
            ValueError,
            "replace_with",
        ),
    ],
)
def test_bad_input_is_named(call, error, words):
    with pytest.raises(error, match=words):
        call()


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("erosion", (1,)), ("dilation", (1,)), ("opening", (1,)), ("closing", (1,)),
        ("fill_holes", (4,)), ("remove_small_objects", (3,)), ("keep_largest", ()),
        ("majority", (1,)),
    ],
)  # fmt: skip
def test_a_boolean_mask_gives_a_boolean_mask(name, args):
    """As scikit-image's binary operations do. The result was uint8, against the
    docstrings' "same dtype": ``image[erosion(mask, 1)]`` then indexed rows 0 and 1
    of the image instead of masking it."""
    mask = np.zeros((12, 12), bool)
    mask[2:9, 2:9] = True
    mask[5, 5] = False
    mask[10, 10] = True
    out = getattr(refine, name)(mask, *args)
    assert out.dtype == bool
    expected = getattr(refine, name)(mask.astype(np.uint8), *args)
    np.testing.assert_array_equal(out, expected.astype(bool))
    assert expected.dtype == np.uint8
    image = np.arange(144.0).reshape(12, 12)
    assert image[out].shape == (int(expected.sum()),)  # a boolean index


def test_float_labels_of_whole_numbers_give_float_labels():
    labels = np.zeros((12, 12), np.float32)
    labels[2:9, 2:9] = 2.0
    out = refine.erosion(labels, 1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, refine.erosion(labels.astype(np.uint8), 1))
