"""Scores of several images taken together (``pool_evaluations``)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_seg.metrics import EvaluateConfig, evaluate, headline, pool_evaluations


def blobs(shape, seed, classes=3):
    """Smooth random class labels (regions, not salt and pepper)."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=(classes, *shape)), 3)
    return field.argmax(axis=0).astype(np.uint8)


def objects(shape, seed):
    rng = np.random.default_rng(seed)
    mask = ndi.gaussian_filter(rng.normal(size=shape), 2) > 0.3
    return ndi.label(mask)[0]


def noisy(labels, seed, share=0.05):
    """``labels`` with a few blocks overwritten (so scores are neither 0 nor 1)."""
    rng = np.random.default_rng(seed)
    out = labels.copy()
    for y, x in rng.integers(0, min(labels.shape) - 8, size=(int(share * 100), 2)):
        out[y : y + 8, x : x + 8] = rng.integers(0, labels.max() + 1)
    return out


def side_by_side(arrays):
    """Images of different widths next to each other (one image, same pixels)."""
    height = max(a.shape[0] for a in arrays)
    return np.concatenate([np.pad(a, ((0, height - a.shape[0]), (0, 0))) for a in arrays], axis=1)


def test_pooled_semantic_scores_are_those_of_all_pixels_together():
    gts = [blobs((40, 50), 0), blobs((40, 30), 1, classes=2), blobs((40, 64), 2, classes=4)]
    preds = [noisy(g, 10 + i) for i, g in enumerate(gts)]
    config = EvaluateConfig(class_names={0: "bg", 1: "a", 2: "b", 3: "c", 4: "never"})
    results = [evaluate(p, g, config) for p, g in zip(preds, gts, strict=True)]
    dataset = pool_evaluations(["x", "y", "z"], results)
    whole = evaluate(side_by_side(preds), side_by_side(gts), config)
    assert dataset.pooled.to_dict() == whole.to_dict()
    # the pooled figure weighs pixels, the mean weighs images: here they differ
    mean = dataset.mean_over_images()
    per_image = [headline(r)["mean IoU (no background)"] for r in results]
    assert mean["mean IoU (no background)"] == pytest.approx(np.mean(per_image))
    assert mean["mean IoU (no background)"] != pytest.approx(whole.scores.mean_iou_foreground)
    rows = dataset.rows()
    assert [r["image"] for r in rows] == ["x", "y", "z", "mean over images"]
    assert rows[1]["pixel accuracy"] == pytest.approx(float(results[1].scores.pixel_accuracy))
    out = dataset.to_dict()
    assert [i["name"] for i in out["images"]] == ["x", "y", "z"]
    assert out["images"][2]["mean_iou"] == results[2].to_dict()["mean_iou"]


def test_pooled_instance_scores_sum_the_matches():
    gts = [objects((48, 48), s) for s in (0, 1, 2)]
    grown = ndi.label(ndi.binary_dilation(gts[1] > 0))[0]
    preds = [gts[0], grown, ndi.label(ndi.binary_erosion(gts[2] > 0))[0]]
    config = EvaluateConfig(mode="instance")
    results = [evaluate(p, g, config) for p, g in zip(preds, gts, strict=True)]
    dataset = pool_evaluations(["a", "b", "c"], results)

    def apart(arrays):  # ids made unique across images, as one image
        offsets = np.cumsum([0, *(int(a.max()) for a in arrays[:-1])])
        return side_by_side(
            [np.where(a > 0, a + o, 0) for a, o in zip(arrays, offsets, strict=True)]
        )

    whole = evaluate(apart(preds), apart(gts), config)
    pooled, together = dataset.pooled.to_dict(), whole.to_dict()
    assert pooled.pop("seg") == pytest.approx(together.pop("seg"))  # summed in another order
    assert pooled == together
    assert dataset.pooled.scores.n_true == sum(r.scores.n_true for r in results)
    assert 0 < dataset.pooled.scores.f1[-1] < dataset.pooled.scores.f1[0] < 1
    assert dataset.rows()[0]["true objects"] == results[0].scores.n_true


def test_pooled_surfaces_are_means_over_the_images_with_the_class():
    gt1, gt2 = np.zeros((2, 32, 32), np.uint8)
    gt1[4:20, 4:20], gt1[22:30, 22:30] = 1, 2
    gt2[8:28, 8:28] = 1  # no class 2
    pred1, pred2 = np.roll(gt1, 2, axis=0), np.roll(gt2, 3, axis=1)
    config = EvaluateConfig(surface=True, spacing=(0.5, 0.5), unit="mm")
    one, two = evaluate(pred1, gt1, config), evaluate(pred2, gt2, config)
    pooled = pool_evaluations(["1", "2"], [one, two]).pooled.surface
    assert pooled.labels == (1, 2)
    assert pooled.hausdorff[0] == pytest.approx(
        (one.surface.hausdorff[0] + two.surface.hausdorff[0]) / 2
    )
    assert pooled.hausdorff[1] == pytest.approx(one.surface.hausdorff[1])
    assert pooled.volume_gt[1] == pytest.approx(one.surface.volume_gt[1])
    other_unit = evaluate(pred2, gt2, config.with_(unit="um"))
    with pytest.raises(ValueError, match="different units"):
        pool_evaluations(["1", "2"], [one, other_unit])


def test_an_image_with_every_pixel_ignored_pools_with_the_others():
    gt = blobs((16, 16), 0)
    empty = np.zeros((8, 8), np.uint8)
    config = EvaluateConfig(ignore_labels=(0,), slice_axis=0)
    nothing = evaluate(empty, empty, config)  # raised a numpy reshape error before
    assert nothing.scores.labels == ()
    assert np.isnan(nothing.scores.pixel_accuracy)
    alone = evaluate(gt, gt, config)
    dataset = pool_evaluations(["empty", "gt"], [nothing, alone])
    assert dataset.pooled.to_dict()["classes"] == alone.to_dict()["classes"]
    assert pool_evaluations(["e"], [nothing]).pooled.scores.labels == ()


def test_what_cannot_be_pooled():
    gt = objects((48, 48), 0)
    semantic = evaluate(gt.clip(0, 1), gt.clip(0, 1))
    instance = evaluate(gt, gt, EvaluateConfig(mode="instance"))
    with pytest.raises(ValueError, match="different modes"):
        pool_evaluations(["a", "b"], [semantic, instance])
    with pytest.raises(ValueError, match="one name per evaluation"):
        pool_evaluations(["a"], [])
    other = evaluate(gt, gt, EvaluateConfig(mode="instance", thresholds=(0.7,)))
    with pytest.raises(ValueError, match="different IoU thresholds"):
        pool_evaluations(["a", "b"], [instance, other])
    ignoring = evaluate(gt.clip(0, 1), gt.clip(0, 1), EvaluateConfig(ignore_labels=(0,)))
    with pytest.raises(ValueError, match="ignore different ids"):
        pool_evaluations(["a", "b"], [semantic, ignoring])


def test_a_folder_of_time_series_pools_the_objects_of_every_plane(make_instances):
    from napari_seg.metrics import match_instances, pool_instance_scores

    def series(seed):  # track ids: every frame reuses ids 1..n
        return np.stack([make_instances((48, 64), n=8, seed=seed + t)[1] for t in range(3)])

    gts = [series(0), series(10)]
    preds = [g.copy() for g in gts]
    preds[1][1, :20] = 0
    config = EvaluateConfig(mode="instance", slice_axis=0)
    dataset = pool_evaluations(
        ["a", "b"], [evaluate(p, g, config) for p, g in zip(preds, gts, strict=True)]
    )
    planes = [
        match_instances(p[t], g[t]) for p, g in zip(preds, gts, strict=True) for t in range(3)
    ]
    expect = pool_instance_scores(planes)
    np.testing.assert_array_equal(dataset.pooled_slices.tp, expect.tp)
    assert dataset.pooled_slices.n_true == expect.n_true
    assert dataset.to_dict()["pooled_slices"]["n_true"] == expect.n_true
    row = dataset.rows()[1]
    by_slice = dataset.images[1].pooled_slices
    assert row["F1 @0.5 by slice"] == pytest.approx(float(by_slice.f1[0]))
    assert 0 < row["F1 @0.5 by slice"] < 1
    semantic = pool_evaluations(
        ["a"], [evaluate(preds[0].clip(0, 1).astype(np.uint8), gts[0].clip(0, 1).astype(np.uint8))]
    )
    assert semantic.pooled_slices is None
    assert "pooled_slices" not in semantic.to_dict()
