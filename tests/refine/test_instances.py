"""Semantic to instances and back; watershed splitting of touching objects."""

import numpy as np
import pytest

from napari_seg import refine
from napari_seg.metrics import match_instances


def discs(shape, centres, radius):
    grid = np.indices(shape)
    out = np.zeros(shape, bool)
    for c in centres:
        out |= sum((g - x) ** 2 for g, x in zip(grid, c, strict=True)) <= radius**2
    return out


def test_connected_components_numbers_objects_class_after_class(unchanged):
    labels = np.array(
        [
            [1, 1, 0, 2],
            [0, 0, 0, 2],
            [1, 0, 2, 0],
        ],
        np.uint8,
    )
    expected = np.array(
        [
            [1, 1, 0, 3],
            [0, 0, 0, 3],
            [2, 0, 4, 0],
        ]
    )
    out = unchanged(refine.connected_components, labels)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.int32
    assert refine.connected_components(labels, connectivity=2).max() == 3  # 2s join diagonally


def test_connected_components_3d():
    labels = np.zeros((3, 3, 3), np.uint8)
    labels[0, 0, 0] = labels[1, 1, 1] = 1  # corner neighbours
    assert refine.connected_components(labels).max() == 2
    assert refine.connected_components(labels, connectivity=3).max() == 1


def test_watershed_splits_two_touching_discs(unchanged):
    mask = discs((40, 60), [(20, 20), (20, 37)], 10)
    labels = mask.astype(np.uint8)
    assert refine.connected_components(labels).max() == 1  # touching: one component
    out = unchanged(refine.watershed_split, labels)
    assert out.max() == 2
    assert out[20, 20] != out[20, 37]
    assert set(np.unique(out[mask])) == {1, 2}
    assert not out[~mask].any()
    # Each disc keeps (almost) all of its own pixels.
    left = discs((40, 60), [(20, 20)], 10)
    assert (out[left] == out[20, 20]).mean() > 0.9


def test_watershed_splits_touching_balls_in_3d():
    mask = discs((24, 24, 40), [(12, 12, 11), (12, 12, 27)], 8)
    out = refine.watershed_split(mask.astype(np.uint8), min_distance=4)
    assert out.max() == 2
    assert out[12, 12, 11] != out[12, 12, 27]


def test_watershed_seeds_from_probabilities():
    mask = discs((40, 60), [(20, 20), (20, 37)], 10)
    prob = np.zeros((2, 40, 60), np.float32)
    # Confident cores, a dip where the discs touch.
    prob[1] = 0.5 * mask + 0.5 * discs((40, 60), [(20, 20), (20, 37)], 6)
    prob[0] = 1 - prob[1]
    out = refine.watershed_split(mask.astype(np.uint8), probabilities=prob, seed_threshold=0.9)
    assert out.max() == 2
    assert out[20, 20] != out[20, 37]
    # A threshold no pixel reaches still gives every object one seed: nothing is lost.
    whole = refine.watershed_split(mask.astype(np.uint8), probabilities=prob * 0.5)
    assert whole.max() == 1
    assert (whole > 0).sum() == mask.sum()


def test_watershed_keeps_small_objects_without_a_peak():
    labels = np.zeros((20, 20), np.uint8)
    labels[2, 2] = 1
    labels[10:15, 10:15] = 1
    out = refine.watershed_split(labels, min_distance=5)
    assert out.max() == 2
    assert out[2, 2] > 0


def test_instances_to_semantic(unchanged):
    instances = np.array([[1, 1, 0], [2, 2, 3]], np.int32)
    np.testing.assert_array_equal(
        unchanged(refine.instances_to_semantic, instances, foreground=4),
        [[4, 4, 0], [4, 4, 4]],
    )
    reference = np.array([[2, 0, 0], [1, 2, 0]], np.uint8)
    # Instance 1 covers class 2 (background votes ignored); instance 2 ties 1-2 -> the smaller
    # class; instance 3 covers only background.
    np.testing.assert_array_equal(
        refine.instances_to_semantic(instances, reference=reference), [[2, 2, 0], [1, 1, 0]]
    )


def test_bad_probabilities_shape_is_named():
    with pytest.raises(ValueError, match="probabilities must have shape"):
        refine.watershed_split(np.ones((4, 4), np.uint8), probabilities=np.ones((2, 3, 3)))


def test_objects_from_boundaries_gives_back_touching_objects(unchanged):
    """Touching squares, one id each, turned into object/boundary classes as training
    sees them, come back as the same objects: the interiors' components grown over
    the one-pixel rim (all but each square's four corners)."""
    from napari_seg.training.instances import InstanceClasses

    truth = np.kron(np.arange(1, 13).reshape(3, 4), np.ones((8, 8), int))  # 12 squares
    truth[:, -8:] = 0  # and some background
    classes = np.asarray(InstanceClasses(truth, "boundaries"))
    found = unchanged(refine.objects_from_boundaries, classes)
    scores = match_instances(found, truth, thresholds=(0.9,))
    assert (scores.n_pred, scores.tp[0]) == (9, 9)  # none split, none merged
    assert np.all(np.bincount(found.ravel())[1:] >= 64 - 4)  # the image edge has no rim
    interiors = unchanged(refine.objects_from_boundaries, classes, distance=0)
    assert np.array_equal(interiors > 0, classes == 1)  # interiors only
    assert np.all(unchanged(refine.objects_from_boundaries, classes, distance=3)[truth == 0] == 0)
    with pytest.raises(ValueError, match="distance must be at most"):
        refine.objects_from_boundaries(classes, distance=10**6)


def test_number_objects_follows_the_model_s_classes_and_its_slices(make_instances):
    _, objects = make_instances((64, 80), n=14, seed=3)
    from skimage.segmentation import find_boundaries

    rim = find_boundaries(objects, mode="inner")
    boundaries_pred = np.where(rim, 2, objects > 0).astype(np.uint8)
    names = ("background", "object", "boundary")
    found = refine.number_objects(boundaries_pred, names, background=0)
    expected = refine.objects_from_boundaries(boundaries_pred, objects=1, boundaries=2)
    np.testing.assert_array_equal(found, expected)
    # the classes found by name, wherever they are
    moved = np.choose(boundaries_pred, [0, 2, 1]).astype(np.uint8)
    found = refine.number_objects(moved, ("background", "boundary", "object"), background=0)
    np.testing.assert_array_equal(found, expected)
    # any other model: the connected components of its classes but the background
    classes = np.where(objects > 0, objects % 2 + 1, 0).astype(np.uint8)
    found = refine.number_objects(classes, ("bg", "a", "b"), background=0)
    np.testing.assert_array_equal(found, refine.connected_components(classes, background=0))
    with pytest.raises(ValueError, match="no background class"):
        refine.number_objects(classes, ("x", "a", "b"), background=None)


def test_number_objects_of_a_time_series_never_spans_two_frames(make_instances):
    frame = (make_instances((48, 64), n=10, seed=1)[1] > 0).astype(np.uint8)
    series = np.stack([frame] * 3)  # the same objects in every frame: connected in 3D
    names = ("background", "object")
    whole = refine.number_objects(series, names, background=0)
    apart = refine.number_objects(series, names, background=0, slice_axes=(0,))
    assert whole.max() == refine.connected_components(frame).max()
    assert apart.max() == 3 * whole.max()
    for ids in (set(np.unique(apart[t])) - {0} for t in range(3)):
        assert len(ids) == whole.max()  # every frame its own ids, never shared
    assert not set(np.unique(apart[0])) & set(np.unique(apart[1])) - {0}
    # two slice axes (a time series of z-stacks for a 2D model): each plane apart
    both = refine.number_objects(np.stack([series, series]), names, background=0,
                                 slice_axes=(0, 1))  # fmt: skip
    assert both.shape == (2, 3, 48, 64)
    assert both.max() == 6 * whole.max()
    assert both.dtype == np.int32
