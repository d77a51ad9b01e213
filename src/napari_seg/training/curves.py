"""Training curves with matplotlib (no Qt): loss per step, validation IoU per epoch.

The Train widget draws them on a Qt canvas, the headless demo saves them as PNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

LOSS_COLOR = "#1f77b4"
IOU_COLOR = "#ff7f0e"


def draw_curves(figure, losses: Sequence[float], history: Sequence[dict], steps_per_epoch: int):
    """Draw on ``figure`` (cleared): training loss against steps and validation IoU against epochs.

    Returns
    -------
    (loss_axes, iou_axes)
    """
    figure.clear()
    loss_ax, iou_ax = figure.subplots(2, 1, sharex=False)
    steps = range(1, len(losses) + 1)
    if losses:
        loss_ax.plot(steps, losses, color=LOSS_COLOR, lw=0.8, alpha=0.45, label="step")
        smooth = _running_mean(losses, max(1, steps_per_epoch // 2))
        loss_ax.plot(steps, smooth, color=LOSS_COLOR, lw=1.6, label="smoothed")
        loss_ax.legend(fontsize=7, loc="upper right")
    if history:
        train = [h["train_loss"] for h in history]
        ends = [h.get("steps", h["epoch"] * steps_per_epoch) for h in history]
        loss_ax.plot(ends, train, "o", ms=3, color="#333333")
    loss_ax.set_ylabel("training loss", fontsize=8)
    loss_ax.set_xlabel("step", fontsize=8)
    epochs = [h["epoch"] for h in history]
    ious = [_nan(h.get("val_iou")) for h in history]
    iou_ax.plot(epochs, ious, "o-", ms=3, color=IOU_COLOR)
    iou_ax.set_ylim(0, 1)
    iou_ax.set_ylabel("validation mean IoU", fontsize=8)
    iou_ax.set_xlabel("epoch", fontsize=8)
    if history and all(math.isnan(v) for v in ious):
        iou_ax.set_title("no held-out region: no validation IoU", fontsize=8)
    for ax in (loss_ax, iou_ax):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return loss_ax, iou_ax


def save_curves(
    path: str | Path, losses: Sequence[float], history: Sequence[dict], steps_per_epoch: int
) -> Path:
    """Write the curves to a PNG file (atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .._atomic import atomic_write

    figure = Figure(figsize=(5, 5), layout="constrained")
    FigureCanvasAgg(figure)
    draw_curves(figure, losses, history, steps_per_epoch)
    path = Path(path)
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=100)
    return path


def _running_mean(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _nan(value) -> float:
    return float("nan") if value is None else float(value)
