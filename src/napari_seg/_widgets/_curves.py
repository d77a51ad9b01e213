"""Live training curves in a dock (matplotlib on a Qt canvas)."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from ..training.curves import CurvesArtist


class TrainingCurves:
    """Training loss per step and validation IoU per epoch, redrawn after each epoch."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(4, 3.6))
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(260)
        self.artist = CurvesArtist(self.figure)
        self.losses: list[float] = []
        self.history: list[dict] = []
        self.steps_per_epoch = 1

    def reset(self, steps_per_epoch: int) -> None:
        self.losses, self.history, self.steps_per_epoch = [], [], steps_per_epoch
        self.redraw()

    def add_loss(self, loss: float) -> None:
        self.losses.append(loss)

    def add_epoch(self, entry: dict) -> None:
        self.history.append(entry)
        self.redraw()

    def redraw(self) -> None:
        self.artist.update(self.losses, self.history, self.steps_per_epoch)
        self.canvas.draw_idle()
