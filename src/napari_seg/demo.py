"""The demo pipeline, headless part (the GUI part lives in ``_widgets.demo``)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._atomic import atomic_write
from .sample_data import CLASS_COLORS, CLASS_NAMES, cells_2d

if TYPE_CHECKING:
    from .models import ModelSpec
    from .training import TrainingConfig

DEMO_ARCHITECTURE = "unet"


def display_available() -> bool:
    """Whether a window can be opened (Linux needs an X11 or Wayland display).

    Returns
    -------
    bool
    """
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def demo_spec() -> ModelSpec:
    """The model the demo builds: a classic U-Net for the sample classes.

    Returns
    -------
    ModelSpec
    """
    from .models import ModelSpec

    return ModelSpec(
        DEMO_ARCHITECTURE,
        in_channels=1,
        num_classes=len(CLASS_NAMES),
        class_names=CLASS_NAMES,
        class_colors=CLASS_COLORS,
    ).validate()


#: Rows of the 2D sample used for training; the rest is only segmented and scored.
TRAIN_ROWS = 256


def demo_config(minutes: float) -> TrainingConfig:
    """The demo's training settings: a small classic U-Net on dense labels.

    Parameters
    ----------
    minutes : float
        Training budget.

    Returns
    -------
    TrainingConfig
    """
    from .training import TrainingConfig

    return TrainingConfig(
        architecture=DEMO_ARCHITECTURE,
        options={"base_width": 16},
        class_names=CLASS_NAMES,
        label0="background",
        minutes=minutes,
        steps_per_epoch=10,
        batch_size=4,
        patch_size=128,
        learning_rate=2e-3,
        seed=0,
    ).validate()


def run_headless(output: Path, *, minutes: float = 0.5) -> dict[str, Any]:
    """The whole loop on the 2D sample, written to ``output``.

    Trains briefly on the top rows of the image (dense labels), segments all
    of it, evaluates against the ground truth (the whole image and the rows
    not trained on), and writes ``cells2d.tif``, ``cells2d_labels.tif``
    (ground truth), ``model.safetensors`` (+ ``model-last.safetensors`` and
    ``model.training.json``), ``cells2d_prediction.tif``, ``cells2d_errors.tif``,
    ``metrics.json``, ``curves.png`` and ``summary.json``, replacing those of an
    earlier run.

    Parameters
    ----------
    output : path-like
        The demo's folder (created).
    minutes : float
        Training budget.

    Returns
    -------
    dict
        The summary also written to ``summary.json``.
    """
    from ._device import describe_device, resolve_device
    from ._io_write import write_tiff
    from .inference import predict
    from .metrics import EvaluateConfig, error_map, evaluate
    from .training import train
    from .training.curves import save_curves

    start = time.perf_counter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    image, truth = cells_2d()
    files = {"image": "cells2d.tif", "ground_truth": "cells2d_labels.tif"}
    # The demo's folder is its own: running it again replaces what it wrote before.
    write_tiff(output / files["image"], image, overwrite=True)
    write_tiff(output / files["ground_truth"], truth, overwrite=True)
    config = demo_config(minutes)
    part = (image[:TRAIN_ROWS], truth[:TRAIN_ROWS])
    out = output / "model.safetensors"
    result = train(part, config, out=out, names=["cells2d top rows"], overwrite=True)
    files.update(model="model.safetensors", last="model-last.safetensors")
    files["training"] = "model.training.json"
    labels = predict(result.model, image).labels
    write_tiff(output / "cells2d_prediction.tif", labels, overwrite=True)
    names = dict(enumerate(CLASS_NAMES))
    scores = {
        "whole image": evaluate(labels, truth, EvaluateConfig(class_names=names)).to_dict(),
        "rows not trained on": evaluate(
            labels[TRAIN_ROWS:], truth[TRAIN_ROWS:], EvaluateConfig(class_names=names)
        ).to_dict(),
    }
    write_tiff(output / "cells2d_errors.tif", error_map(labels, truth), overwrite=True)
    _write_json(output / "metrics.json", scores)
    curves = output / "curves.png"
    save_curves(curves, result.losses, result.history, config.steps_per_epoch, overwrite=True)
    files.update(
        prediction="cells2d_prediction.tif",
        errors="cells2d_errors.tif",
        metrics="metrics.json",
        curves="curves.png",
    )
    held_out = scores["rows not trained on"]
    summary = {
        "outputs": str(output),
        "files": files,
        "model": {"architecture": result.model.spec.architecture, "classes": list(CLASS_NAMES)},
        "training": {
            "epochs": result.epochs,
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
            "best_val_iou": result.metrics.get("best_val_iou"),
        },
        "mean_iou_rows_not_trained_on": held_out["mean_iou"],
        "device": describe_device(resolve_device("auto")),
        "seconds": round(time.perf_counter() - start, 2),
    }
    _write_json(output / "summary.json", summary)
    return summary


def _write_json(path: Path, data: Any) -> None:
    with atomic_write(path, overwrite=True) as handle:
        handle.write(json.dumps(data, indent=2, allow_nan=False).encode())
