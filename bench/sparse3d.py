"""3D from a few annotated slices: fill between slices on a real brain MRI.

Data: the MNI ICBM152 2009a template (nilearn 0.14.1's bundled copy, BSD-3; MNI
copyright notice in docs/performance.md): T1 image and grey/white-matter
probability maps, 3 classes = argmax of [255 - GM - WM, GM, WM] (background/CSF,
grey matter, white matter), axial slices along the first axis (189x197x233).

Every k-th axial slice (k = 4, 8, 16) is given; Dice (mean over grey and white
matter) is measured on the slices in between (within the first and last given
slice). Prints one JSON line per (k, method):

- ``nearest``: ``interpolate_slices(method="nearest")``, copy of the nearer slice;
- ``shape``: ``interpolate_slices(method="shape")``, shape-based interpolation;
- ``contour``: ``interpolate_slices(method="contour")``, ITK's morphological
  contour interpolation (only with the ``interpolation`` extra installed).

A ``speed`` line times each method on a synthetic 256^3 volume of 13 classes
(smoothed random blobs) given every 8th slice.

``--learn`` adds learnt methods, each run in its own child process (peak RSS is
the child's), trained on the given slices only (label 0 = not painted; classes
1 = background/CSF, 2 = grey, 3 = white matter) with a CPU budget in minutes:

- ``2d``: a 2D classic U-Net (depth 3, width 16) trained slice by slice on the stack;
- ``3d``: a 3D classic U-Net (depth 3, width 16), patch and batch planned;
- ``3d+fill``: the same with the shape-based filling as extra targets of weight 0.5;
- ``pixel2d``, ``pixel``: the pixel classifier (random forest on filter features,
  default options), fitted on the given slices in 2D (slice by slice) or with 3D
  features (no time budget: it is fitted once).

``--thick F`` makes the volume of slices F times thicker than its pixels (the
mean of every F axial slices; the labels of their middle slice), as a CT or MRI
acquired in thick slices, and tells the learnt methods its voxel size (F, 1, 1)
(the 2D ones the in-plane (1, 1)); k then counts thick slices.

``--memory`` trains the 3D U-Net (default options) on a synthetic 256^3 volume given
every 8th slice for 3 epochs of 5 steps, with the filling, and reports the peak
RSS (target < 6 GB on the CPU); ``--memory-arch pixel-classifier`` fits the 3D pixel
classifier on the same slices instead and predicts the volume, with the peak RSS
after each.

Usage: python bench/sparse3d.py [--k 4,8,16] [--methods nearest,shape,contour]
       python bench/sparse3d.py --learn 2d,3d,3d+fill --k 8 --minutes 2,5 [--loss ce+dice]
       python bench/sparse3d.py --learn pixel,pixel2d --k 2,4 --minutes 0 --thick 4
       python bench/sparse3d.py --memory [--memory-arch pixel-classifier]
Needs: pip install nibabel; pip install --no-deps nilearn==0.14.1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

from napari_seg.refine import interpolate_slices

CLASSES = (1, 2)


def mni_folder() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "needs nilearn's bundled MNI template: pip install --no-deps nilearn==0.14.1"
        )
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def mni() -> tuple[np.ndarray, np.ndarray]:
    """T1 image and 3-class labels, (z, y, x) with axial slices first."""
    import nibabel as nib

    def read(kind: str) -> np.ndarray:
        path = mni_folder() / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
        return np.asarray(nib.load(path).dataobj, dtype=np.float32).transpose(2, 1, 0)

    gm, wm = read("gm"), read("wm")
    labels = np.argmax(np.stack([255 - gm - wm, gm, wm]), axis=0).astype(np.uint8)
    return read("t1"), labels


def thicken(image: np.ndarray, labels: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Slices ``f`` times thicker: the mean of every ``f`` slices, the middle one's labels."""
    n = image.shape[0] // f * f
    thick = image[:n].reshape(n // f, f, *image.shape[1:]).mean(axis=1)
    return thick, labels[f // 2 : n : f]


def given_slices(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The labels on every k-th slice (0 elsewhere), and the slices to score."""
    sparse = np.zeros_like(labels)
    sparse[::k] = labels[::k]
    scored = np.zeros(labels.shape[0], bool)
    last = (labels.shape[0] - 1) // k * k
    scored[:last] = True
    scored[::k] = False
    return sparse, scored


def dice(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    scores = {}
    for c in CLASSES:
        a, b = pred == c, truth == c
        scores[str(c)] = round(float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1)), 4)
    scores["mean"] = round(float(np.mean([scores[str(c)] for c in CLASSES])), 4)
    return scores


def fill(labels: np.ndarray, k: int, method: str) -> dict:
    sparse, scored = given_slices(labels, k)
    start = time.perf_counter()
    filled = interpolate_slices(sparse, axis=0, method=method)
    seconds = time.perf_counter() - start
    return {
        "case": "fill",
        "k": k,
        "method": method,
        "dice": dice(filled[scored], labels[scored]),
        "seconds": round(seconds, 3),
        "shape": list(labels.shape),
    }


def speed(method: str) -> dict:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    noise = ndi.gaussian_filter(rng.random((13, 64, 64, 64), dtype=np.float32), (0, 4, 4, 4))
    small = np.where(noise.max(0) > np.quantile(noise.max(0), 0.5), noise.argmax(0) + 1, 0)
    labels = np.kron(small, np.ones((4, 4, 4), np.uint8)).astype(np.uint8)
    sparse, _ = given_slices(labels, 8)
    start = time.perf_counter()
    interpolate_slices(sparse, axis=0, method=method)
    seconds = time.perf_counter() - start
    return {"case": "speed", "method": method, "shape": [256] * 3, "classes": 13,
            "k": 8, "seconds": round(seconds, 3)}  # fmt: skip


def learn(method: str, k: int, minutes: float, loss: str = "auto", thick: int = 1) -> dict:
    import resource

    from napari_seg.inference import PredictConfig, predict
    from napari_seg.training import train
    from napari_seg.training.losses import resolve_loss

    image, labels = thicken(*mni(), thick)
    sparse, scored = given_slices(labels + 1, k)
    options = {"depth": 3, "base_width": 16}
    settings = dict(label0="unlabelled", minutes=minutes, epochs=None, options=options,
                    device="cpu", patience=None, steps_per_epoch=20, seed=0, loss=loss)  # fmt: skip
    if method.startswith("pixel"):  # fitted once, with the classifier's own options
        settings.update(architecture="pixel-classifier", options={}, minutes=None, epochs=1)
    if method in ("2d", "pixel2d"):
        settings.update(axis=0, patch_size=128, batch_size=4, spacing=(1.0, 1.0))
    else:
        settings.update(dims=3, filled_weight=0.5 if method == "3d+fill" else 0.0,
                        spacing=(float(thick), 1.0, 1.0))  # fmt: skip
    start = time.perf_counter()
    result = train((image, sparse), **settings)
    trained = time.perf_counter() - start
    planes = method in ("2d", "pixel2d")  # a 2D model segments the stack slice by slice
    start = time.perf_counter()
    pred = predict(result.model, image, PredictConfig(axis=0 if planes else None)).labels
    predicted = time.perf_counter() - start
    pred = pred.astype(np.int16) - 1
    row = {
        "case": "learn",
        "k": k,
        "thick": thick,
        "method": method,
        "minutes": minutes,
        "loss": resolve_loss(loss, sparse=True, num_classes=result.model.spec.num_classes),
        "dice": dice(pred[scored], labels[scored]),
        "train_s": round(trained, 1),
        "predict_s": round(predicted, 1),
        "steps": result.steps,
        "patch": list(result.config.patch_3d or (result.config.patch_size,) * 2),
        "batch": result.config.batch_size,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if method.startswith("pixel"):  # no budget, loss, patch or batch: fitted once
        for key in ("minutes", "loss", "steps", "patch", "batch"):
            del row[key]
    return row


def memory(arch: str = "unet") -> dict:
    """Peak RSS of training ``arch`` on a synthetic 256^3 volume given every 8th slice,
    then (for the fitted pixel classifier) of predicting the volume."""
    import resource

    from napari_seg.inference import predict
    from napari_seg.training import train

    def peak() -> int:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    rng = np.random.default_rng(0)
    from scipy import ndimage as ndi

    image = ndi.gaussian_filter(rng.random((256, 256, 256), dtype=np.float32), 3)
    labels = np.digitize(image, np.quantile(image, [0.3, 0.6, 0.9])).astype(np.uint8) + 1
    sparse, _ = given_slices(labels, 8)
    settings = dict(dims=3, label0="unlabelled", epochs=3, steps_per_epoch=5, minutes=None,
                    device="cpu", filled_weight=0.5)  # fmt: skip
    if arch == "pixel-classifier":  # fitted once, with its own options
        settings.update(architecture=arch, options={}, epochs=1, filled_weight=0.0)
    before = peak()
    start = time.perf_counter()
    result = train((image, sparse), **settings)
    row = {
        "case": "memory",
        "arch": arch,
        "shape": [256] * 3,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_before_mib": before,
        "peak_rss_mib": peak(),
    }
    if arch == "pixel-classifier":
        start = time.perf_counter()
        predict(result.model, image)
        row.update(predict_s=round(time.perf_counter() - start, 1), peak_rss_predict_mib=peak())
    else:
        row.update(patch=list(result.config.patch_3d), batch=result.config.batch_size)
    return row


def child(*args: str) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(json.dumps({"case": args[0], "args": list(args), "error": out.stderr[-800:]}))
    else:
        print(lines[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="4,8,16")
    parser.add_argument("--methods", default="nearest,shape,contour")
    parser.add_argument("--learn", help="comma-separated: 2d, 3d, 3d+fill, pixel2d, pixel")
    parser.add_argument("--minutes", default="2,5")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--memory-arch", default="unet", help="unet or pixel-classifier")
    parser.add_argument("--loss", default="auto", help="training loss of --learn (default auto)")
    parser.add_argument("--thick", type=int, default=1, help="slices F times thicker (--learn)")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)  # a child's case
    args = parser.parse_args()
    if args.one:
        case = args.one
        result = (
            memory(case[1])
            if case[0] == "memory"
            else learn(case[1], int(case[2]), float(case[3]), case[4], int(case[5]))
        )
        print(json.dumps(result), flush=True)
        return
    if args.memory:
        child("--one", "memory", args.memory_arch)
        return
    if args.learn:
        for k in (int(v) for v in args.k.split(",")):
            for minutes in args.minutes.split(","):
                for method in args.learn.split(","):
                    child("--one", "learn", method, str(k), minutes, args.loss, str(args.thick))
        return
    _, labels = mni()
    methods = args.methods.split(",")
    if "contour" in methods and importlib.util.find_spec("itk") is None:
        methods.remove("contour")
        print(json.dumps({"case": "fill", "method": "contour", "skipped": "itk not installed"}))
    for k in (int(v) for v in args.k.split(",")):
        for method in methods:
            print(json.dumps(fill(labels, k, method)), flush=True)
    for method in methods:
        print(json.dumps(speed(method)), flush=True)


if __name__ == "__main__":
    main()
