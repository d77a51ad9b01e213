"""A matplotlib figure in a dock: score bars and a clickable per-slice curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

SERIES_COLORS = ("#1f77b4", "#ff7f0e")


class ScorePlots:
    """Grouped score bars and, for stacks, a per-slice curve below them."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(4, 4.2), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(300)
        self.bars = self.figure.add_subplot()
        self.slices = None
        self.bars.set_title("no scores yet", fontsize=9)

    def show(
        self,
        names: Sequence[str],
        bars: Mapping[str, Sequence[float]],
        bar_label: str,
        slices: Mapping[str, Sequence[float]] | None = None,
        slice_label: str = "",
    ) -> None:
        """Bars of one score per name (one colour per series); a curve per series per slice."""
        self.figure.clear()
        if slices is None:
            self.bars, self.slices = self.figure.add_subplot(), None
        else:
            self.bars, self.slices = self.figure.subplots(2, 1)
        self._bars(names, bars, bar_label)
        if slices is not None:
            self._slices(slices, slice_label)
        self.canvas.draw_idle()

    def _bars(self, names, series, ylabel) -> None:
        ax = self.bars
        x = np.arange(len(names))
        width = 0.8 / max(len(series), 1)
        for i, (label, values) in enumerate(series.items()):
            values = np.nan_to_num(np.asarray(values, dtype=float))
            offset = (i - (len(series) - 1) / 2) * width
            ax.bar(x + offset, values, width, label=label, color=_color(i))
        ax.set_xticks(x, list(names), rotation=30, ha="right", fontsize=8)
        _finish(ax, ylabel, legend=len(series) > 1)

    def _slices(self, series, ylabel) -> None:
        ax = self.slices
        for i, (label, values) in enumerate(series.items()):
            ax.plot(np.asarray(values, dtype=float), "o-", ms=3, label=label, color=_color(i))
        ax.set_xlabel("slice (click to go there)", fontsize=8)
        _finish(ax, ylabel, legend=len(series) > 1)

    def slice_at(self, event) -> int | None:
        """The slice index nearest a mouse event on the per-slice axes, else None."""
        if self.slices is None or event.inaxes is not self.slices or event.xdata is None:
            return None
        n = len(self.slices.get_lines()[0].get_xdata())
        return int(np.clip(round(event.xdata), 0, n - 1))


def _color(i: int) -> str:
    return SERIES_COLORS[i % len(SERIES_COLORS)]


def _finish(ax, ylabel: str, *, legend: bool) -> None:
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=8)
    if legend:
        ax.legend(fontsize=7)
