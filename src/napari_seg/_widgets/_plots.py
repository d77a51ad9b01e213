"""A matplotlib figure in a dock: score bars and a clickable per-slice curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

SERIES_COLORS = ("#1f77b4", "#ff7f0e")


class ScorePlots:
    """Two stacked axes: grouped bars (top) and per-slice scores (bottom)."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(4, 4.2), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(320)
        self.bars, self.slices = self.figure.subplots(2, 1)
        self.clear()

    def clear(self) -> None:
        for ax in (self.bars, self.slices):
            ax.clear()
        self.bars.set_title("no scores yet", fontsize=9)
        self.slices.set_visible(False)
        self.canvas.draw_idle()

    def show_bars(
        self, names: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str
    ) -> None:
        """Grouped bars of one score per name, one group member per series."""
        ax = self.bars
        ax.clear()
        x = np.arange(len(names))
        width = 0.8 / max(len(series), 1)
        for i, (label, values) in enumerate(series.items()):
            values = np.asarray(values, dtype=float)
            ax.bar(
                x + (i - (len(series) - 1) / 2) * width,
                np.nan_to_num(values),
                width,
                label=label,
                color=SERIES_COLORS[i % len(SERIES_COLORS)],
            )
        ax.set_xticks(x, list(names), rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=8)
        if len(series) > 1:
            ax.legend(fontsize=7)
        self.canvas.draw_idle()

    def show_slices(self, series: Mapping[str, Sequence[float]] | None, ylabel: str) -> None:
        """One curve per series over the slice index; hidden when ``series`` is None."""
        ax = self.slices
        ax.clear()
        ax.set_visible(series is not None)
        if series is not None:
            for i, (label, values) in enumerate(series.items()):
                ax.plot(
                    np.asarray(values, dtype=float),
                    "o-",
                    ms=3,
                    label=label,
                    color=SERIES_COLORS[i % len(SERIES_COLORS)],
                )
            ax.set_xlabel("slice (click to go there)", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_ylim(0, 1.02)
            ax.tick_params(labelsize=8)
            if len(series) > 1:
                ax.legend(fontsize=7)
        self.canvas.draw_idle()

    def slice_at(self, event) -> int | None:
        """The slice index nearest a mouse event on the per-slice axes, else None."""
        if event.inaxes is not self.slices or event.xdata is None:
            return None
        lines = self.slices.get_lines()
        if not lines:
            return None
        n = len(lines[0].get_xdata())
        return int(np.clip(round(event.xdata), 0, n - 1))
