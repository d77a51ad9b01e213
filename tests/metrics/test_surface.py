"""Surface distances: MONAI's metrics as the oracle, anisotropic spacing, edge cases."""

import json
import math

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)
from scipy import ndimage

from napari_seg.metrics import EvaluateConfig, evaluate, surface_scores


def random_labels(rng, shape, classes):
    """Smooth random regions: ``classes`` ids (0 the largest), touching the border too."""
    field = ndimage.gaussian_filter(rng.random(shape), 2.0)
    cuts = np.quantile(field, np.linspace(0.45, 0.9, classes - 1))
    return np.digitize(field, cuts).astype(np.uint8)


def monai_scores(pred, gt, classes, spacing, tolerance):
    def onehot(x):
        t = torch.nn.functional.one_hot(torch.from_numpy(x).long(), classes)
        return t.movedim(-1, 0)[None]

    p, g = onehot(pred), onehot(gt)
    hd = compute_hausdorff_distance(p, g, percentile=95, spacing=spacing)[0]
    assd = compute_average_surface_distance(p, g, symmetric=True, spacing=spacing)[0]
    nsd = compute_surface_dice(p, g, [tolerance] * (classes - 1), spacing=spacing)[0]
    return hd.numpy(), assd.numpy(), nsd.numpy()


@pytest.mark.parametrize(
    ("shape", "spacing", "tolerance", "seed"),
    [
        ((18, 29, 25), (2.5, 0.7, 1.1), 1.5, 0),
        ((24, 24, 24), (1.0, 1.0, 1.0), 1.0, 1),
        ((9, 40, 33), (5.0, 0.5, 0.5), 2.0, 2),
        ((61, 47), (0.3, 1.7), 0.9, 3),
    ],
)
def test_matches_monai_on_random_shapes(shape, spacing, tolerance, seed):
    rng = np.random.default_rng(seed)
    gt, pred = random_labels(rng, shape, 4), random_labels(rng, shape, 4)
    ours = surface_scores(pred, gt, spacing=spacing, tolerance=tolerance)
    assert ours.labels == (1, 2, 3)
    hd, assd, nsd = monai_scores(pred, gt, 4, spacing, tolerance)
    # MONAI computes in float32: agreement to its precision
    np.testing.assert_allclose(ours.hausdorff, hd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.assd, assd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.surface_dice, nsd, rtol=1e-5, atol=1e-5)
    assert 0 < ours.surface_dice.min() < 1  # the shapes differ: a test that can fail


def test_spacing_changes_distances_and_volumes():
    gt = np.zeros((10, 20, 20), np.uint8)
    gt[2:8, 5:15, 5:15] = 1
    pred = np.zeros_like(gt)
    pred[2:8, 5:15, 7:17] = 1  # shifted by 2 voxels along the last axis
    iso = surface_scores(pred, gt)
    aniso = surface_scores(pred, gt, spacing=(3.0, 1.0, 0.5), unit="mm")
    assert iso.hausdorff[0] == pytest.approx(2.0)
    assert aniso.hausdorff[0] == pytest.approx(1.0)  # 2 voxels of 0.5 mm
    assert aniso.volume_gt[0] == pytest.approx(600 * 1.5)  # mm^3
    factor, unit = aniso.volume_unit()
    assert (factor, unit) == (1e-3, "mL")
    assert surface_scores(pred, gt, spacing=(1, 1, 1), tolerance=2.0).surface_dice[0] == 1.0
    assert surface_scores(pred, gt, spacing=(1, 1, 1), tolerance=0.5).surface_dice[0] < 1.0


def test_identical_arrays_and_missing_classes():
    rng = np.random.default_rng(4)
    gt = random_labels(rng, (12, 20, 22), 3)
    same = surface_scores(gt, gt, labels=(1, 2, 7))
    np.testing.assert_array_equal(same.hausdorff[:2], 0.0)
    np.testing.assert_array_equal(same.surface_dice[:2], 1.0)
    assert math.isnan(same.hausdorff[2])
    assert math.isnan(same.surface_dice[2])
    assert same.volume_gt[2] == 0.0
    pred = gt.copy()
    pred[pred == 2] = 0  # class 2 missed entirely
    missed = surface_scores(pred, gt)
    assert missed.labels == (1, 2)
    assert math.isinf(missed.hausdorff[1])
    assert math.isinf(missed.assd[1])
    assert missed.surface_dice[1] == 0.0
    assert missed.volume_pred[1] == 0.0


def test_large_ids_are_scored_as_small_ones():
    # Ids of 2^31 and 10^12 once sized tables by the largest id (a 14.6 TiB
    # bincount); codes like FreeSurfer's (up to 2035) use the one-pass table.
    rng = np.random.default_rng(6)
    gt, pred = random_labels(rng, (8, 24, 24), 4), random_labels(rng, (8, 24, 24), 4)
    small = surface_scores(pred, gt, spacing=(2.0, 1.0, 1.0), labels=(0, 1, 2, 3, 4))
    assert math.isnan(small.hausdorff[4])  # 4 is in neither array
    for codes in ((0, 2035, 17, 99, 100), (0, 2**31, 7, 10**12, 10**12 + 1)):
        lut = np.array(codes[:4], np.int64)
        big = surface_scores(lut[pred], lut[gt], spacing=(2.0, 1.0, 1.0), labels=codes)
        for name in ("hausdorff", "assd", "surface_dice", "volume_gt", "volume_pred"):
            np.testing.assert_array_equal(getattr(big, name), getattr(small, name))
    via_evaluate = evaluate(lut[pred], lut[gt], surface=True, spacing=(2.0, 1.0, 1.0))
    assert via_evaluate.surface.labels == (7, 2**31, 10**12)
    np.testing.assert_array_equal(via_evaluate.surface.hausdorff, small.hausdorff[[2, 1, 3]])


def test_bad_inputs_are_named():
    a = np.zeros((5, 5, 5), np.uint8)
    with pytest.raises(ValueError, match="spacing has 2 values"):
        surface_scores(a, a, spacing=(1, 1))
    with pytest.raises(ValueError, match="spacing must be > 0"):
        surface_scores(a, a, spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="spacing must be a finite number, got nan"):
        surface_scores(a, a, spacing=(1, float("nan"), 1))
    # 1e200^3 overflowed a voxel's volume: inf volumes and a NaN HD95 before
    with pytest.raises(ValueError, match=r"spacing must be from 1e-12 to 1e\+12 along each axis"):
        surface_scores(a, a, spacing=(1e200,) * 3)
    with pytest.raises(ValueError, match="tolerance"):
        surface_scores(a, a, tolerance=-1)
    with pytest.raises(ValueError, match="2D or larger"):
        surface_scores(a[0, 0], a[0, 0])
    with pytest.raises(ValueError, match="shape"):
        surface_scores(a, a[0])
    big = a.astype(np.int32)
    big[0, 0, 0] = 100_000
    with pytest.raises(ValueError, match="instance image"):
        surface_scores(big, big)


def test_evaluate_adds_surface_columns_and_json():
    rng = np.random.default_rng(5)
    gt, pred = random_labels(rng, (10, 30, 30), 3), random_labels(rng, (10, 30, 30), 3)
    config = EvaluateConfig(surface=True, spacing=(2.0, 0.5, 0.5), tolerance=1.0, unit="mm")
    result = evaluate(pred, gt, config)
    direct = surface_scores(pred, gt, spacing=(2.0, 0.5, 0.5), labels=(1, 2), unit="mm")
    rows = {r["id"]: r for r in result.rows()}
    assert rows[1]["HD95 (mm)"] == pytest.approx(direct.hausdorff[0])
    assert rows[2]["gt volume (mL)"] == pytest.approx(direct.volume_gt[1] / 1000)
    assert rows[0]["HD95 (mm)"] is None  # background: not a surface of interest
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["surface"]["volume_unit"] == "mL"
    assert [c["id"] for c in data["surface"]["classes"]] == [1, 2]
    assert data["config"]["spacing"] == [2.0, 0.5, 0.5]
    assert EvaluateConfig.from_json(json.dumps(data["config"])) == config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"surface": True, "mode": "instance"}, "semantic mode"),
        ({"surface": True, "ignore_labels": (0,)}, "dense ground truth"),
        ({"spacing": (1.0, -2.0)}, "spacing must be > 0"),
        ({"tolerance": float("nan")}, "tolerance must be a finite number"),
        ({"surface": "yes"}, "surface must be true or false"),
    ],
)
def test_config_checks(changes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        EvaluateConfig(**changes).validate()


@pytest.mark.parametrize(
    ("shape", "spacing", "unit", "expected"),
    [
        ((6, 20, 20), None, None, "voxels"),
        ((20, 20), None, None, "pixels"),
        ((6, 20, 20), (2.0, 1.0, 1.0), None, "units^3"),
        ((6, 20, 20), (2.0, 1.0, 1.0), "um", "um^3"),
        ((6, 20, 20), (2.0, 1.0, 1.0), "mm", "mL"),
    ],
)
def test_volumes_are_named_by_what_they_count(shape, spacing, unit, expected):
    """Without a unit a volume at a spacing of 1 is a voxel count ("voxel^3" was
    printed), and one at another spacing is in the spacing's (unnamed) units."""
    labels = np.zeros(shape, np.uint8)
    labels[..., 5:15, 5:15] = 1
    scores = surface_scores(labels, labels, spacing=spacing, unit=unit)
    factor, name = scores.volume_unit()
    assert name == expected
    voxel = np.prod(spacing) if spacing is not None else 1.0
    assert scores.volume_gt[0] * factor == pytest.approx(
        (labels == 1).sum() * voxel * (1e-3 if unit == "mm" else 1.0)
    )


def test_a_series_of_volumes_is_scored_volume_by_volume():
    """A (t, z, y, x) series: surface distances were measured in 4D (across time, as if
    it were a fourth spatial axis) or refused ("spacing has 3 values for a 4D array");
    each volume is scored alone and the figures averaged, and without a series axis
    the error says how to give one."""
    rng = np.random.default_rng(7)
    gt = np.stack([random_labels(rng, (8, 24, 24), 3) for _ in range(3)])
    pred = np.stack([random_labels(rng, (8, 24, 24), 3) for _ in range(3)])
    spacing = (2.0, 0.5, 0.5)
    config = EvaluateConfig(surface=True, slice_axis=0, spacing=spacing, unit="mm")
    surface = evaluate(pred, gt, config).surface
    frames = [
        surface_scores(p, g, spacing=spacing, labels=(1, 2)) for p, g in zip(pred, gt, strict=True)
    ]
    for name in ("hausdorff", "assd", "surface_dice", "volume_gt", "volume_pred"):
        expected = np.mean([getattr(f, name) for f in frames], axis=0)
        np.testing.assert_allclose(getattr(surface, name), expected)
    assert surface.series == 3
    with pytest.raises(ValueError, match="these labels have 4 axes: score them volume by volume"):
        evaluate(pred, gt, EvaluateConfig(surface=True, spacing=spacing))


def test_a_time_lapse_of_planes_is_scored_frame_by_frame():
    """series=True (the per-slice axis is time): 2D distances within each frame and
    areas, not 3D ones across frames; a spacing given for every axis loses time's."""
    rng = np.random.default_rng(8)
    gt = np.stack([random_labels(rng, (24, 24), 3) for _ in range(4)])
    pred = np.stack([random_labels(rng, (24, 24), 3) for _ in range(4)])
    config = EvaluateConfig(surface=True, slice_axis=0, series=True, spacing=(5.0, 0.5, 0.5))
    surface = evaluate(pred, gt, config).surface
    frames = [
        surface_scores(p, g, spacing=(0.5, 0.5), labels=(1, 2))
        for p, g in zip(pred, gt, strict=True)
    ]
    expected = np.mean([f.hausdorff for f in frames], axis=0)
    np.testing.assert_allclose(surface.hausdorff, expected)
    assert surface.spacing == (0.5, 0.5)
    assert surface.series == 4
    whole = evaluate(pred, gt, config.with_(series=False)).surface  # a z-stack: 3D
    assert whole.spacing == (5.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="series needs slice_axis"):
        EvaluateConfig(surface=True, series=True).validate()
