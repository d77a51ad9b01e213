"""Semantic and instance metrics: speed and memory.

Prints one JSON line per case:

- ``semantic``: confusion matrix + every semantic score of a 4096x4096 uint8
  pair with 4 classes (``napari_seg.metrics``), next to the floor it builds on
  (``np.bincount`` of a uint8 combined index, whole array at once) and, when
  installed, torchmetrics' multiclass Jaccard index and MONAI's IoU on one-hot
  tensors. Median of ``--repeats`` runs after a warm-up; ``peak_mib`` is the
  tracemalloc peak of one of our runs.
- ``instance``: matching at the 10 thresholds 0.5..0.95 of a 2048x2048 pair
  with about 4,000 (and about 1,000) objects: time and tracemalloc peak, with
  what a dense objects x objects float64 overlap matrix alone would take.
- ``surface``: HD95, average symmetric surface distance and surface Dice of a
  256^3 pair with 13 ellipsoid structures and anisotropic spacing
  (``napari_seg.metrics.surface_scores``, all three at once) against MONAI's
  three functions on boolean one-hot tensors (the cheapest input they take),
  with the largest difference between the two; ``peak_mib`` is the peak RSS
  growth of each, measured in a forked process, for 13 and for 3 classes.

Usage: python bench/metrics.py [--repeats 7] [--case semantic|instance|surface]
"""

from __future__ import annotations

import argparse
import json
import tracemalloc

import numpy as np

from models import time_ms as median_ms  # median of repeats after a warm-up
from napari_seg.metrics import confusion_matrix, match_instances, semantic_scores


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def semantic_pair(size: int, classes: int, seed: int = 0):
    """A blocky label image and a prediction that differs on about 10% of pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, (size // 64, size // 64), dtype=np.uint8)
    gt = np.kron(coarse, np.ones((64, 64), np.uint8))
    pred = gt.copy()
    noisy = rng.random(gt.shape) < 0.1
    pred[noisy] = rng.integers(0, classes, int(noisy.sum()), dtype=np.uint8)
    return pred, gt


def bench_semantic(repeats: int) -> dict:
    size, classes = 4096, 4
    pred, gt = semantic_pair(size, classes)

    def ours():
        return semantic_scores(confusion_matrix(pred, gt))

    def floor():
        combined = gt * np.uint8(classes) + pred
        return np.bincount(combined.ravel(), minlength=classes * classes)

    counts = floor().reshape(classes, classes)
    np.testing.assert_array_equal(ours().support, counts.sum(1))  # same numbers
    out = {
        "case": "semantic",
        "shape": [size, size],
        "classes": classes,
        "ms": round(median_ms(ours, repeats), 1),
        "bincount_floor_ms": round(median_ms(floor, repeats), 1),
        "peak_mib": round(peak_mib(ours), 1),
    }
    out.update(_torchmetrics_ms(pred, gt, classes, repeats))
    out.update(_monai_ms(pred, gt, classes, max(1, repeats // 3)))
    return out


def _torchmetrics_ms(pred, gt, classes, repeats) -> dict:
    try:
        import torch
        from torchmetrics.functional.classification import multiclass_jaccard_index
    except ImportError:
        return {"torchmetrics_ms": None}
    p, g = torch.from_numpy(pred).long(), torch.from_numpy(gt).long()

    def run():
        return multiclass_jaccard_index(p, g, num_classes=classes, average=None)

    return {"torchmetrics_ms": round(median_ms(run, repeats), 1)}


def _monai_ms(pred, gt, classes, repeats) -> dict:
    try:
        import torch
        from monai.metrics import compute_iou
    except ImportError:
        return {"monai_ms": None}
    p, g = torch.from_numpy(pred).long(), torch.from_numpy(gt).long()

    def run():
        one_p = torch.nn.functional.one_hot(p, classes).permute(2, 0, 1)[None]
        one_g = torch.nn.functional.one_hot(g, classes).permute(2, 0, 1)[None]
        return compute_iou(one_p, one_g, include_background=True)

    return {"monai_ms": round(median_ms(run, repeats), 1)}


def instance_pair(size: int, objects: int, seed: int = 0):
    """Random discs (later ones overwrite) and a jittered, imperfect prediction."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((size, size), np.uint32)
    yy, xx = np.mgrid[-16:17, -16:17]
    for label in range(1, objects + 1):
        r = rng.uniform(6, 14)
        y, x = rng.integers(16, size - 16, 2)
        disc = yy**2 + xx**2 <= r * r
        gt[y - 16 : y + 17, x - 16 : x + 17][disc] = label
    pred = np.roll(gt, (1, 2), axis=(0, 1))  # shifted boundaries
    lost = rng.choice(objects, objects // 20, replace=False) + 1
    pred[np.isin(pred, lost)] = 0  # 5% missed
    pred = np.where(pred > 0, pred + 100_000, 0).astype(np.uint32)  # unrelated ids
    return pred, gt


def bench_instance(repeats: int, objects: int) -> dict:
    size = 2048
    pred, gt = instance_pair(size, objects)

    def run():
        return match_instances(pred, gt)

    s = run()
    return {
        "case": "instance",
        "shape": [size, size],
        "objects_true": s.n_true,
        "objects_pred": s.n_pred,
        "ms": round(median_ms(run, repeats), 1),
        "peak_mib": round(peak_mib(run), 1),
        "dense_matrix_mib": round(s.n_true * s.n_pred * 8 / 2**20, 1),
        "accuracy_at_0.5": round(float(s.accuracy[0]), 3),
    }


def surface_pair(size: int, classes: int, seed: int = 0):
    """Ellipsoids of radius 6-30 voxels (ids 1..classes-1) and a prediction shifted
    by a voxel with a wrong blob in each structure."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((size,) * 3, np.uint8)
    zz, yy, xx = np.ogrid[:size, :size, :size]
    for label in range(1, classes):
        r = rng.uniform(6, 30, 3)
        c = rng.uniform(r + 2, size - r - 2)
        inside = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip((zz, yy, xx), c, r, strict=True))
        gt[inside <= 1] = label
    pred = np.roll(gt, (1, 0, -1), axis=(0, 1, 2))
    for label in range(1, classes):
        z, y, x = np.argwhere(gt == label)[0]
        pred[z : z + 4, y : y + 4, x : x + 4] = (label % (classes - 1)) + 1
    return pred, gt


def peak_rss_mib(what: str) -> float:
    """Peak RSS growth of one surface computation (``what``: ours, ours-2, monai), run in
    a fresh interpreter so that torch's allocations count and nothing else does."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, __file__, "--surface-peak", what],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def _surface_peak(what: str) -> None:
    """Print the peak RSS above the RSS once the inputs exist (Linux: the high-water
    mark is reset through /proc/self/clear_refs after building them)."""
    import gc

    run = _surface_runs()[what]
    gc.collect()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = _status_kib("VmRSS")
    run()
    print(round((_status_kib("VmHWM") - before) / 1024, 1))


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


SURFACE = {"size": 256, "classes": 14, "spacing": (1.0, 0.8, 0.8), "tolerance": 1.0}


def _surface_runs() -> dict:
    """The computations compared: ours (all structures, or 2) and MONAI's three functions."""
    from napari_seg.metrics import surface_scores

    classes, spacing, tolerance = SURFACE["classes"], SURFACE["spacing"], SURFACE["tolerance"]
    pred, gt = surface_pair(SURFACE["size"], classes)
    few_pred, few_gt = np.where(pred < 3, pred, 0), np.where(gt < 3, gt, 0)

    def monai():
        import torch
        from monai.metrics import (
            compute_average_surface_distance,
            compute_hausdorff_distance,
            compute_surface_dice,
        )

        p, g = torch.from_numpy(pred), torch.from_numpy(gt)
        one_p = torch.stack([p == c for c in range(classes)])[None]
        one_g = torch.stack([g == c for c in range(classes)])[None]
        hd = compute_hausdorff_distance(one_p, one_g, percentile=95, spacing=spacing)
        assd = compute_average_surface_distance(one_p, one_g, symmetric=True, spacing=spacing)
        nsd = compute_surface_dice(one_p, one_g, [tolerance] * (classes - 1), spacing=spacing)
        return hd[0].numpy(), assd[0].numpy(), nsd[0].numpy()

    return {
        "ours": lambda: surface_scores(pred, gt, spacing=spacing, tolerance=tolerance),
        "ours-2": lambda: surface_scores(few_pred, few_gt, spacing=spacing, tolerance=tolerance),
        "monai": monai,
    }


def bench_surface(repeats: int) -> dict:
    import time

    runs = _surface_runs()
    out = {
        "case": "surface",
        "shape": [SURFACE["size"]] * 3,
        "structures": SURFACE["classes"] - 1,
        "spacing": list(SURFACE["spacing"]),
        "ms": round(median_ms(runs["ours"], repeats), 1),
        "peak_mib": peak_rss_mib("ours"),
        "peak_mib_2_structures": peak_rss_mib("ours-2"),
    }
    try:
        import monai  # noqa: F401
    except ImportError:
        return {**out, "monai_ms": None}
    start = time.perf_counter()
    theirs = runs["monai"]()  # one run: it takes long
    out["monai_ms"] = round(1000 * (time.perf_counter() - start), 1)
    mine = runs["ours"]()
    out["max_abs_difference"] = float(
        max(
            np.abs(mine.hausdorff - theirs[0]).max(),
            np.abs(mine.assd - theirs[1]).max(),
            np.abs(mine.surface_dice - theirs[2]).max(),
        )
    )
    out["speedup"] = round(out["monai_ms"] / out["ms"], 1)
    out["monai_peak_mib"] = peak_rss_mib("monai")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--case", choices=["semantic", "instance", "surface"], action="append")
    parser.add_argument("--surface-peak", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.surface_peak:
        return _surface_peak(args.surface_peak)
    cases = args.case or ["semantic", "instance", "surface"]
    if "semantic" in cases:
        print(json.dumps(bench_semantic(args.repeats)), flush=True)
    if "instance" in cases:
        for objects in (4500, 1100):
            print(json.dumps(bench_instance(max(1, args.repeats // 2), objects)), flush=True)
    if "surface" in cases:
        print(json.dumps(bench_surface(max(1, args.repeats // 3))), flush=True)


if __name__ == "__main__":
    main()
