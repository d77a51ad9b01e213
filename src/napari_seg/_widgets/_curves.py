"""Live training curves in a dock, drawn off the main thread.

matplotlib takes about 35 ms to draw the two axes with Agg; doing it on the
main thread once per epoch stalls napari's window. The curves' data are set on
the main thread (under a lock, about 1 ms), the figure is drawn into an RGBA
buffer by one background thread, and the main thread only shows the finished
picture (a QPixmap on a QLabel).
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy

from ..training.curves import CurvesArtist

#: Height of the curves in the dock, in pixels.
HEIGHT = 280
DPI = 100


class _Delivery(QObject):
    """Carries a drawn picture from the drawing thread to the main thread (queued)."""

    drawn = Signal(object)


class TrainingCurves:
    """Training loss per step and validation IoU per epoch, redrawn after each epoch.

    Parameters
    ----------
    present : callable, optional
        ``present(key, update)`` applies a finished picture (the dock's job runner
        batches it with the other updates into one repaint); default: at once.
    """

    def __init__(self, present=None) -> None:
        self._present = present or (lambda _key, update: update())
        self.figure = Figure(figsize=(4, HEIGHT / DPI), dpi=DPI)
        self._agg = FigureCanvasAgg(self.figure)
        self.artist = CurvesArtist(self.figure)
        self.widget = QLabel()
        self.widget.setMinimumHeight(HEIGHT)
        self.widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.widget.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.losses: list[float] = []
        self.history: list[dict] = []
        self.steps_per_epoch = 1
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-seg-curves")
        self._delivery = _Delivery()
        self._delivery.drawn.connect(self._show)
        self._queued = False

    def reset(self, steps_per_epoch: int) -> None:
        self.losses, self.history, self.steps_per_epoch = [], [], steps_per_epoch
        self.redraw()

    def add_loss(self, loss: float) -> None:
        self.losses.append(loss)

    def add_epoch(self, entry: dict) -> None:
        self.history.append(entry)
        self.redraw()

    def redraw(self) -> None:
        """Set the curves' data now; draw them in the background thread."""
        width = max(200, self.widget.width())
        with self._lock:
            self.artist.update(self.losses, self.history, self.steps_per_epoch)
            self.figure.set_size_inches(width / DPI, HEIGHT / DPI)
        if not self._queued:  # one drawing at a time: it always draws the latest data
            self._queued = True
            self._pool.submit(self._draw)

    def _draw(self) -> None:
        self._queued = False
        with self._lock:
            self._agg.draw()
            buffer = bytes(self._agg.buffer_rgba())
            width, height = self._agg.get_width_height()
        with contextlib.suppress(RuntimeError):  # the dock was closed meanwhile
            self._delivery.drawn.emit((buffer, width, height))

    def _show(self, picture) -> None:
        buffer, width, height = picture
        image = QImage(buffer, width, height, 4 * width, QImage.Format.Format_RGBA8888)
        pixmap = QPixmap.fromImage(image)

        def update() -> None:
            with contextlib.suppress(RuntimeError):  # the label was deleted with the dock
                self.widget.setPixmap(pixmap)

        self._present("curves", update)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
