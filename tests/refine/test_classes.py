"""Relabel, merge and set a class in a region."""

import numpy as np
import pytest

from napari_seg import refine


def test_relabel_swaps_and_keeps_unmapped_values(unchanged):
    labels = np.array([[0, 1, 2, 3]], np.uint8)
    out = unchanged(refine.relabel, labels, {1: 2, 2: 1})
    np.testing.assert_array_equal(out, [[0, 2, 1, 3]])
    assert out.dtype == np.uint8


def test_relabel_3d_and_bad_values():
    labels = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    np.testing.assert_array_equal(refine.relabel(labels, {7: 0}), np.where(labels == 7, 0, labels))
    with pytest.raises(ValueError, match="does not fit"):
        refine.relabel(labels, {1: 300})
    with pytest.raises(TypeError, match="mapping"):
        refine.relabel(labels, [1, 2])


def test_new_ids_widen_a_float_map_or_a_mask_but_never_given_integers():
    """Float labels and masks have no integer type of their own: the one napari-seg
    reads them as (uint8 here) widens to hold a new id, instead of refusing 300 as
    "does not fit in labels of dtype uint8" for a float32 map."""
    floats = np.array([[0, 1, 2, 1]], np.float32)
    out = refine.relabel(floats, {1: 300})
    np.testing.assert_array_equal(out, [[0, 300, 2, 300]])
    assert out.dtype == np.uint16
    assert refine.merge_classes(floats, [1, 2], 70000).dtype == np.uint32
    mask = floats > 0
    out = refine.set_class_in_region(mask, mask, 300)
    np.testing.assert_array_equal(out, [[0, 300, 300, 300]])
    assert refine.set_class_in_region(mask, mask, -1).dtype == np.int16
    assert refine.relabel(floats, {1: 3}).dtype == np.uint8  # fits: the smallest type
    with pytest.raises(ValueError, match="mapping value=300 does not fit in labels of dtype uint8"):
        refine.relabel(floats.astype(np.uint8), {1: 300})  # the caller's own type is kept
    with pytest.raises(ValueError, match="value=300 does not fit"):
        refine.set_class_in_region(floats.astype(np.uint8), mask, 300)


def test_merge_classes(unchanged):
    labels = np.array([[0, 1, 2, 3]], np.uint8)
    np.testing.assert_array_equal(
        unchanged(refine.merge_classes, labels, [2, 3], 1), [[0, 1, 1, 1]]
    )


def test_set_class_in_region(unchanged):
    labels = np.array([[0, 1], [2, 0]], np.uint8)
    region = np.array([[True, True], [True, False]])
    np.testing.assert_array_equal(
        unchanged(refine.set_class_in_region, labels, region, 3), [[3, 3], [3, 0]]
    )
    np.testing.assert_array_equal(
        refine.set_class_in_region(labels, region, 3, only=[0]), [[3, 1], [2, 0]]
    )
    volume = np.zeros((2, 2, 2), np.uint8)
    region3 = np.zeros((2, 2, 2), bool)
    region3[1] = True
    assert refine.set_class_in_region(volume, region3, 5).sum() == 20
    with pytest.raises(ValueError, match="region must have the labels' shape"):
        refine.set_class_in_region(labels, np.ones((3, 3), bool), 1)


@pytest.mark.parametrize(
    ("call", "name", "given"),
    [
        (lambda a: refine.relabel(a, {1.5: 2}), "mapping keys", r"1\.5"),
        (lambda a: refine.relabel(a, {"1": 2}), "mapping keys", "'1'"),
        (lambda a: refine.relabel(a, {True: 2}), "mapping keys", "True"),
        (lambda a: refine.relabel(a, {1: 2.7}), "mapping values", r"2\.7"),
        (lambda a: refine.merge_classes(a, [1], 2.7), "target", r"2\.7"),
        (lambda a: refine.set_class_in_region(a, a > 0, 2.7), "value", r"2\.7"),
        (lambda a: refine.erosion(a, 1, classes=["1"]), "classes", "'1'"),
    ],
)
def test_ids_given_as_floats_or_strings_are_refused_not_truncated(call, name, given):
    """``int()`` turned 1.5 into 1 and "1" into 1: ``relabel(a, {1.5: 2})`` relabelled
    class 1, and ``merge_classes(a, [1], 2.7)`` wrote 2, without a word."""
    labels = np.array([[0, 1, 2, 3]], np.uint8)
    with pytest.raises(TypeError, match=f"{name} must hold whole-number label ids, got {given}"):
        call(labels)


def test_class_edits_of_a_boolean_mask_give_room_for_new_ids():
    mask = np.array([[False, True, True]])
    out = refine.merge_classes(mask, [1], 5)
    np.testing.assert_array_equal(out, [[0, 5, 5]])
    assert out.dtype == np.uint8
