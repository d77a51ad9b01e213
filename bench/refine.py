"""Refine operations and the mean-field CRF: speed, and what the CRF gains.

Prints one JSON line per case:

- ``op``: each refine operation (default parameters, radius 2 for the
  morphology) on the 1024x1024 three-class sample cells (2D) and on a
  32x256x256 sample stack (3D); median of ``--repeats`` runs after a warm-up.
- ``crf``: the CRF (5 iterations, window radius 5) on 512x512 to 3072x3072
  images, per device: by default (tiles where the image is large), and the two
  largest in one piece.
- ``undo``: writing a refine result into a napari Labels layer as one undo
  step (``write_undoable``: changed pixels through ``data_setitem`` in
  ``block_history``), and undoing it, for a 20x1024x1024 uint8 stack with 5% of
  the pixels changed (the main-thread part of Apply). Needs napari.
- ``crf_quality``: boundary IoU (2-pixel band) and IoU of a degraded
  prediction of the sample cells (labels blurred, shifted by 2 pixels, noisy
  probabilities) before and after the CRF, over 5 seeds.

Usage: python bench/refine.py [--repeats 5] [--device cpu|cuda] [--case op|crf|undo|crf_quality]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import ndimage as ndi

from models import time_ms
from napari_seg import refine
from napari_seg.sample_data import cells_2d, cells_3d

OP_PARAMS = {
    "opening": {"radius": 2},
    "closing": {"radius": 2},
    "dilation": {"radius": 2},
    "erosion": {"radius": 2},
    "majority": {"radius": 2},
    "merge_classes": {"sources": [2], "target": 1},
    "relabel": {"mapping": {1: 2, 2: 1}},
}
SKIP = ("crf", "set_class", "instances_to_semantic", "interpolate_slices")  # sparse3d.py


def bench_ops(repeats: int) -> None:
    cases = {"2d": cells_2d((1024, 1024), seed=0)[1], "3d": cells_3d((32, 256, 256), seed=0)[1]}
    for dims, labels in cases.items():
        labels = labels.astype(np.uint8)
        for name in refine.OPERATIONS:
            if name in SKIP:
                continue
            config = refine.RefineConfig(steps=(refine.RefineStep(name, OP_PARAMS.get(name, {})),))
            ms = time_ms(lambda c=config, x=labels: refine.refine(x, c), repeats)
            print(
                json.dumps(
                    {
                        "case": "op",
                        "op": name,
                        "dims": dims,
                        "shape": labels.shape,
                        "ms": round(ms, 1),
                    }
                )
            )


def degraded(seed: int, shape=(512, 512)):
    """The sample cells, and class probabilities of a blurred, shifted, noisy prediction."""
    rng = np.random.default_rng(seed)
    image, truth = cells_2d(shape, seed=seed)
    onehot = np.stack([truth == c for c in range(3)]).astype(np.float32)
    soft = np.stack([ndi.shift(ndi.gaussian_filter(p, 3), (2, -2), order=1) for p in onehot])
    soft = np.clip(soft + rng.normal(0, 0.1, soft.shape), 0.01, None)
    return image, truth, (soft / soft.sum(axis=0)).astype(np.float32)


def boundary_iou(pred, truth, classes=(1, 2), width=2) -> float:
    values = []
    for c in classes:
        a, b = pred == c, truth == c
        ba = a & ~ndi.binary_erosion(a, iterations=width)
        bb = b & ~ndi.binary_erosion(b, iterations=width)
        values.append((ba & bb).sum() / max((ba | bb).sum(), 1))
    return float(np.mean(values))


def iou(pred, truth, classes=(1, 2)) -> float:
    return float(
        np.mean(
            [
                ((pred == c) & (truth == c)).sum() / ((pred == c) | (truth == c)).sum()
                for c in classes
            ]
        )
    )


def bench_crf(repeats: int, device: str) -> None:
    from napari_seg.refine import crf

    one_piece = 1 << 40  # tile_pixels larger than any image: never cut into tiles
    cases = [(size, "default", None) for size in (512, 1024, 2048, 3072)]
    # In one piece: the weights are cached up to 1 GiB (40 offsets: 6.7 Mpixels),
    # so the 3072x3072 image recomputes them at every iteration.
    cases += [(size, "one piece", one_piece) for size in (2048, 3072)]
    for size, how, tile_pixels in cases:
        image, _truth, probs = degraded(0, (size, size))
        events = list(crf.iter_crf(probs, image, device=device, tile_pixels=tile_pixels))
        ms = time_ms(
            lambda p=probs, i=image, t=tile_pixels: refine.crf_refine(
                p, i, device=device, tile_pixels=t
            ),
            repeats,
        )
        row = {"case": "crf", "size": size, "device": device, "how": how}
        row |= {"tiles": events[-1].tiles, "iterations": 5, "radius": 5, "ms": round(ms, 1)}
        print(json.dumps(row))


def bench_quality(device: str) -> None:
    rows = []
    for seed in range(5):
        image, truth, probs = degraded(seed)
        before = probs.argmax(axis=0)
        after = refine.crf_refine(probs, image, device=device)
        rows.append(
            (
                boundary_iou(before, truth),
                boundary_iou(after, truth),
                iou(before, truth),
                iou(after, truth),
            )
        )
    mean = np.mean(rows, axis=0)
    print(
        json.dumps(
            {
                "case": "crf_quality",
                "images": len(rows),
                "size": 512,
                "boundary_iou_before": round(mean[0], 4),
                "boundary_iou_after": round(mean[1], 4),
                "iou_before": round(mean[2], 4),
                "iou_after": round(mean[3], 4),
            }
        )
    )


def bench_undo() -> None:
    import time

    from napari.layers import Labels

    from napari_seg._widgets._history import write_undoable

    rng = np.random.default_rng(0)
    data = rng.integers(0, 3, (20, 1024, 1024)).astype(np.uint8)
    new = data.copy()
    changed = rng.random(data.shape) < 0.05
    new[changed] = (new[changed] + 1) % 3
    layer = Labels(data.copy())
    start = time.perf_counter()
    count = write_undoable(layer, (slice(None),) * 3, new)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    layer.undo()
    undo_s = time.perf_counter() - start
    exact = bool(np.array_equal(layer.data, data))
    print(
        json.dumps(
            {
                "case": "undo",
                "shape": data.shape,
                "changed": count,
                "write_s": round(write_s, 3),
                "undo_s": round(undo_s, 3),
                "exact": exact,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--case", choices=("op", "crf", "undo", "crf_quality"))
    args = parser.parse_args()
    if args.case in (None, "op"):
        bench_ops(args.repeats)
    if args.case in (None, "crf"):
        bench_crf(args.repeats, args.device)
    if args.case in (None, "undo"):
        bench_undo()
    if args.case in (None, "crf_quality"):
        bench_quality(args.device)


if __name__ == "__main__":
    main()
