"""Filling between annotated slices (interpolate_slices)."""

import sys

import numpy as np
import pytest

from napari_seg import refine
from napari_seg.refine.slices import annotated_slices, find_slice_axis, interpolate_slices


def ball(shape=(40, 48, 48), centre=(20, 24, 24), radius=14.0, value=1):
    z, y, x = np.indices(shape)
    inside = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 < radius**2
    return (inside * value).astype(np.uint8)


def every(labels, k, axis=0):
    sparse = np.zeros_like(labels)
    index = [slice(None)] * 3
    index[axis] = slice(None, None, k)
    sparse[tuple(index)] = labels[tuple(index)]
    return sparse


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("method", ["nearest", "shape"])
def test_annotated_slices_are_kept_and_nothing_is_extrapolated(method, unchanged):
    truth = ball(centre=(20, 24, 24), radius=17.0)
    sparse = every(truth, 6)
    sparse[:6] = 0  # the first annotated slice is then 6, the last 36
    out = unchanged(interpolate_slices, sparse, method=method)
    assert out.dtype == sparse.dtype
    assert out.shape == sparse.shape
    np.testing.assert_array_equal(out[6::6], sparse[6::6])
    assert not out[:6].any()
    assert not out[37:].any()
    assert out[7:36].any(axis=(1, 2)).all()  # every gap slice inside the ball is filled


def test_nearest_copies_the_nearer_slice_ties_to_the_earlier():
    labels = np.zeros((5, 4, 4), np.uint8)
    labels[0, 0, 0] = 1
    labels[4, 3, 3] = 2
    out = interpolate_slices(labels, method="nearest")
    np.testing.assert_array_equal(out[1], labels[0])
    np.testing.assert_array_equal(out[2], labels[0])  # halfway: the earlier slice
    np.testing.assert_array_equal(out[3], labels[4])


def test_shape_interpolates_a_moving_growing_disc():
    """A disc moving and growing between two slices: shape-based filling places it
    in between, as the truth does; copying the nearer slice cannot."""
    z, y, x = np.indices((9, 64, 64))
    centre, radius = 24 + 2 * z, 8 + z
    truth = ((y - 32) ** 2 + (x - centre) ** 2 < radius**2).astype(np.uint8)
    sparse = every(truth, 8)
    shape = interpolate_slices(sparse, method="shape")
    nearest = interpolate_slices(sparse, method="nearest")
    assert dice(shape[4] == 1, truth[4] == 1) > 0.8
    assert dice(shape[1:8] == 1, truth[1:8] == 1) > dice(nearest[1:8] == 1, truth[1:8] == 1)


def test_shape_beats_nearest_on_a_ball_with_an_inner_class():
    truth = ball()
    truth[ball(centre=(20, 20, 28), radius=6.0) > 0] = 2
    sparse = every(truth, 5)
    results = {m: interpolate_slices(sparse, method=m) for m in ("shape", "nearest")}
    gaps = np.ones(40, bool)
    gaps[::5] = False
    gaps[36:] = False
    for c in (1, 2):
        scores = {m: dice(r[gaps] == c, truth[gaps] == c) for m, r in results.items()}
        assert scores["shape"] > 0.85
        assert scores["shape"] > scores["nearest"]


def test_a_structure_on_one_slice_tapers_and_ends_halfway():
    labels = np.zeros((9, 32, 32), np.uint8)
    labels[0, 8:24, 8:24] = 1
    labels[8, 0, 0] = 2  # slice 8 is annotated, without class 1
    out = interpolate_slices(labels, method="shape")
    area = [(out[k] == 1).sum() for k in range(9)]
    assert area[0] > area[1] > area[2] > area[3] > 0
    assert area[5] == area[6] == area[7] == 0
    nearest = interpolate_slices(labels, method="nearest")
    assert [(nearest[k] == 1).sum() for k in range(1, 5)] == [256] * 4


def test_six_small_classes_all_survive():
    truth = np.zeros((25, 64, 64), np.uint8)
    for c in range(1, 7):
        row, col = divmod(c - 1, 3)
        truth[3:22, 8 + 24 * row : 16 + 24 * row, 6 + 20 * col : 14 + 20 * col] = c
    sparse = every(truth, 4)
    for method in ("shape", "nearest"):
        out = interpolate_slices(sparse, method=method)
        for k in (5, 10, 14):
            assert set(np.unique(out[k])) == set(range(7)), (method, k)
        np.testing.assert_array_equal(out[4:21], truth[4:21])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_the_axis_is_found(axis):
    truth = ball()
    sparse = every(truth, 4, axis=axis)
    assert find_slice_axis(sparse) == axis
    np.testing.assert_array_equal(interpolate_slices(sparse), interpolate_slices(sparse, axis=axis))
    assert annotated_slices(sparse, axis).sum() == np.unique(np.nonzero(sparse)[axis]).size


def test_only_the_chosen_classes_are_filled_and_background_may_be_any_id():
    labels = np.full((5, 8, 8), 9, np.uint8)  # 9: unlabelled
    labels[0, 2:5, 2:5] = labels[4, 2:5, 2:5] = 1
    labels[0, 6, 6] = labels[4, 6, 6] = 2
    out = interpolate_slices(labels, classes=[1], background=9, method="nearest")
    assert (out[2] == 1).sum() == 9
    assert not (out[1:4] == 2).any()
    assert (out[1:4] == 9).sum() == 3 * 64 - 3 * 9


def test_in_plane_spacing_is_used_for_the_distances():
    """Two squares offset diagonally: scaling every in-plane size alike changes no
    voxel (distances only scale); a wide pixel along x moves the filled shape."""
    labels = np.zeros((5, 32, 32), np.uint8)
    labels[0, 4:12, 4:12] = 1
    labels[4, 18:30, 14:22] = 1
    plain = interpolate_slices(labels)
    np.testing.assert_array_equal(plain, interpolate_slices(labels, spacing=(7.0, 2.0, 2.0)))
    assert not np.array_equal(plain, interpolate_slices(labels, spacing=(1.0, 1.0, 8.0)))
    with pytest.raises(ValueError, match="spacing"):
        interpolate_slices(labels, spacing=(1.0, -1.0, 1.0))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="3D volume"):
        interpolate_slices(np.ones((4, 4), np.uint8))
    one = np.zeros((4, 4, 4), np.uint8)
    one[1, 1, 1] = 1
    with pytest.raises(ValueError, match="at least two annotated slices along axis 0, found 1"):
        interpolate_slices(one, axis=0)
    with pytest.raises(ValueError, match="method must be one of"):
        interpolate_slices(ball(), method="spline")
    with pytest.raises(ValueError, match="axis must be 0, 1 or 2"):
        interpolate_slices(ball(), axis=3)


def test_contour_without_itk_says_what_to_install(monkeypatch):
    from napari_seg.refine.slices import itk_contour_interpolation

    monkeypatch.setitem(sys.modules, "itk", None)
    with pytest.raises(ImportError, match=r"napari-seg\[interpolation\]"):
        itk_contour_interpolation(every(ball(), 4))


def test_contour_interpolation_with_itk():
    pytest.importorskip("itk", reason="ITK's contour interpolation is an optional extra")
    truth = ball()
    truth[ball(centre=(20, 20, 28), radius=6.0) > 0] = 7
    sparse = every(truth, 4)
    out = interpolate_slices(sparse, method="contour", axis=0)
    np.testing.assert_array_equal(out[::4], sparse[::4])
    assert out.dtype == sparse.dtype
    for c in (1, 7):
        assert dice(out[1:36] == c, truth[1:36] == c) > 0.85
    assert not out[37:].any()


def test_the_operation_in_a_pipeline():
    sparse = every(ball(), 4)
    job = refine.RefineConfig(
        steps=(refine.RefineStep("interpolate_slices", {"method": "nearest"}),)
    )
    np.testing.assert_array_equal(
        refine.refine(sparse, job), interpolate_slices(sparse, method="nearest")
    )
    step = refine.RefineStep("interpolate_slices", {"slice_axis": "1"}).validate()
    assert step.params["slice_axis"] == "1"
    assert step.params["method"] == "shape"
    with pytest.raises(ValueError, match="whole volume, not per slice"):
        refine.RefineConfig(steps=(step,), per_slice=True).validate()
    with pytest.raises(ValueError, match="slice_axis must be one of"):
        refine.RefineStep("interpolate_slices", {"slice_axis": "3"}).validate()


def test_a_boolean_mask_is_filled_as_a_boolean_mask():
    sparse = every(ball(), 5).astype(bool)
    out = interpolate_slices(sparse, axis=0)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, interpolate_slices(sparse.astype(np.uint8), axis=0) > 0)
