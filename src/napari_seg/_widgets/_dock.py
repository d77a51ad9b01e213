"""The frame of every napari-seg dock: fields that scroll, status text that wraps.

napari docks a magicgui widget's ``native`` QWidget; magicgui's own
``scrollable=True`` puts the scroll area *outside* ``native``, where napari never
sees it. A :class:`Dock` therefore holds one QScrollArea in ``native`` and the
fields in ``body`` inside it, so a dock taller than the screen scrolls instead of
stretching the window, and text that changes never resizes the window.
"""

from __future__ import annotations

from magicgui.widgets import Container, Label
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy

#: Width the docks ask for; the dock can be made wider or narrower by the user.
DOCK_WIDTH = 360


class Dock(Container):
    """A container whose ``body`` scrolls inside the dock.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Kept as ``self._viewer`` for the subclasses.
    """

    def __init__(self, viewer) -> None:
        super().__init__(labels=False)
        self._viewer = viewer
        self.margins = (0, 0, 0, 0)
        self.body = Container(labels=True)
        # Fields stay at the top; the stretch below them takes the rest of the column.
        # (magicgui inserts its widgets by position, so they always go above it.)
        self.body.native.layout().addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.body.native)
        self.body.native.setMinimumWidth(DOCK_WIDTH - 40)
        self.native.layout().addWidget(scroll)
        # The scroll area takes the dock's height, so napari adds no stretch below it.
        self.native.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.scroll_area = scroll

    def reset_choices(self, *args) -> None:
        """Refresh every layer picker in the body (napari calls this when layers change)."""
        self.body.reset_choices(*args)

    def add_native(self, qwidget) -> None:
        """Append a plain Qt widget (a plot) to the body, above the closing stretch."""
        layout = self.body.native.layout()
        layout.insertWidget(layout.count() - 1, qwidget)


class _CutLabel(Label):
    """A Label of fixed height whose whole text is also its tooltip (magicgui's Label
    emits no ``changed`` when its value is set, so the setter does it)."""

    @property
    def value(self):  # type: ignore[override]
        return Label.value.fget(self)  # type: ignore[attr-defined]

    @value.setter
    def value(self, text) -> None:
        Label.value.fset(self, text)  # type: ignore[attr-defined]
        self.native.setToolTip(str(text))


def wrapping_label(label: str = "", value: str = "", lines: int = 0) -> Label:
    """A Label whose text wraps and never widens the dock.

    With ``lines`` > 0 its height is fixed to that many lines, so changing its
    text never changes the dock's layout (each relayout of napari's window
    costs milliseconds on the main thread); a longer text is cut there and shown
    whole as the label's tooltip.
    """
    widget = (_CutLabel if lines else Label)(label=label, value=value)
    native = widget.native
    native.setWordWrap(True)
    native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    vertical = QSizePolicy.Policy.Fixed if lines else QSizePolicy.Policy.Preferred
    native.setSizePolicy(QSizePolicy.Policy.Ignored, vertical)
    if lines:
        native.setFixedHeight(native.fontMetrics().lineSpacing() * lines + 4)
        native.setToolTip(str(value))
    native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    return widget
