"""Training curves with matplotlib (no Qt): loss per step, validation score per epoch.

The score is the validation IoU with dense labels and the held-out stroke agreement
with sparse ones; the axis says which (never "IoU" for the latter).

The Train widget redraws them on a Qt canvas after every epoch, the headless
demo saves them as PNG. The artists are made once and only their data change,
with fixed margins (no layout engine): a redraw then costs about 35 ms instead
of about 130 ms, which keeps the napari window responsive while training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LOSS_COLOR = "#1f77b4"
IOU_COLOR = "#ff7f0e"


class CurvesArtist:
    """Two axes on ``figure``: training loss against steps, validation IoU against epochs."""

    def __init__(self, figure) -> None:
        self.figure = figure
        figure.subplots_adjust(left=0.16, right=0.97, top=0.95, bottom=0.11, hspace=0.5)
        self.loss_ax, self.iou_ax = figure.subplots(2, 1)
        (self.step_line,) = self.loss_ax.plot([], [], color=LOSS_COLOR, lw=0.8, alpha=0.45)
        (self.smooth_line,) = self.loss_ax.plot([], [], color=LOSS_COLOR, lw=1.6)
        (self.epoch_dots,) = self.loss_ax.plot([], [], "o", ms=3, color="#333333")
        (self.iou_line,) = self.iou_ax.plot([], [], "o-", ms=3, color=IOU_COLOR)
        self.loss_ax.set_ylabel("training loss", fontsize=8)
        self.loss_ax.set_xlabel("step", fontsize=8, labelpad=1)
        self.iou_ax.set_ylabel("validation mean IoU", fontsize=8)
        self.iou_ax.set_xlabel("epoch", fontsize=8, labelpad=1)
        self.iou_ax.set_ylim(0, 1)
        self.note = self.iou_ax.text(
            0.5, 0.5, "", ha="center", fontsize=8, transform=self.iou_ax.transAxes
        )
        for ax in (self.loss_ax, self.iou_ax):
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)

    def update(
        self, losses: Sequence[float], history: Sequence[dict], steps_per_epoch: int
    ) -> None:
        """Set the curves' data (the caller draws the canvas).

        Parameters
        ----------
        losses : sequence of float
            Training loss per step.
        history : sequence of dict
            One entry per epoch (``epoch``, ``steps``, ``train_loss``, ``val_iou`` or
            ``val_agreement``).
        steps_per_epoch : int
        """
        steps = np.arange(1, len(losses) + 1)
        self.step_line.set_data(steps, losses)
        self.smooth_line.set_data(steps, _running_mean(losses, max(1, steps_per_epoch // 2)))
        ends = [h.get("steps", h["epoch"] * steps_per_epoch) for h in history]
        self.epoch_dots.set_data(ends, [h["train_loss"] for h in history])
        strokes = any("val_agreement" in h for h in history)
        key = "val_agreement" if strokes else "val_iou"
        scores = [_nan(h.get(key)) for h in history]
        self.iou_line.set_data([h["epoch"] for h in history], scores)
        name = "held-out stroke agreement" if strokes else "validation mean IoU"
        self.iou_ax.set_ylabel(name, fontsize=8)
        none = bool(history) and all(math.isnan(v) for v in scores)
        what = "held-out stroke: no agreement" if strokes else "held-out region: no validation IoU"
        self.note.set_text(f"no {what}" if none else "")
        self.loss_ax.relim()
        self.loss_ax.autoscale_view()
        self.iou_ax.set_xlim(0.5, max(2, len(history)) + 0.5)


def save_curves(
    path: str | Path,
    losses: Sequence[float],
    history: Sequence[dict],
    steps_per_epoch: int,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the curves to a PNG file (atomically).

    Parameters
    ----------
    path : path-like
    losses : sequence of float
        Training loss per step.
    history : sequence of dict
        One entry per epoch (``epoch``, ``steps``, ``train_loss``, ``val_iou``).
    steps_per_epoch : int
    overwrite : bool
        Replace ``path`` if it exists.

    Returns
    -------
    pathlib.Path
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .._atomic import atomic_write

    figure = Figure(figsize=(5, 5))
    FigureCanvasAgg(figure)
    CurvesArtist(figure).update(losses, history, steps_per_epoch)
    path = Path(path)
    with atomic_write(path, overwrite=overwrite) as handle:
        figure.savefig(handle, format="png", dpi=100)
    return path


def _running_mean(values: Sequence[float], window: int) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return array
    sums = np.cumsum(array)
    sums[window:] = sums[window:] - sums[:-window]
    counts = np.minimum(np.arange(1, array.size + 1), window)
    return sums / counts


def _nan(value) -> float:
    return float("nan") if value is None else float(value)
