"""A new model's intensity normalisation, as fields: the Model dock's and the Train
dock's (its "new model" source)."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, LineEdit

from ..models import Normalization
from ..models.spec import NORMALIZATION_METHODS


class NormalizationFields:
    """The method and, for ``"window"``, its intensities, proposed from the selected
    image's contrast limits (a CT opened through napari-seg shows the window its files
    state); ``widgets`` go into a dock's body.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Whose selected layer the window is proposed from.
    """

    def __init__(self, viewer: Any) -> None:
        self._viewer = viewer
        self._shown = True
        self.method = ComboBox(
            label="normalisation", choices=NORMALIZATION_METHODS, value="percentile"
        )
        self.method.tooltip = (
            "how intensities reach the network: percentile (each image's 1st and 99.8th "
            "percentiles to 0 and 1), minmax, meanstd, window (fixed intensities, the rest "
            "clipped: a CT's Hounsfield units) or none"
        )
        self.window = LineEdit(label="intensity window", value="", visible=False)
        self.window.tooltip = (
            "lowest, highest: the intensities mapped to 0 and 1 (e.g. -175, 250 for soft "
            "tissue in a CT); proposed from the selected image's contrast limits"
        )
        self.widgets = [self.method, self.window]
        self.method.changed.connect(self._on_method_changed)

    def value(self) -> Normalization:
        """The normalisation the fields describe (not validated).

        Returns
        -------
        Normalization

        Raises
        ------
        ValueError
            For a window that is not two numbers.
        """
        method = self.method.value
        if method != "window":
            return Normalization(method)
        return Normalization(method, window=parse_window(self.window.value))

    def set_shown(self, shown: bool) -> None:
        """Show or hide the fields (the window only with ``"window"``).

        Parameters
        ----------
        shown : bool
        """
        self._shown = shown
        self.method.visible = shown
        self.window.visible = shown and self.method.value == "window"

    def _on_method_changed(self, *_args) -> None:
        from napari.layers import Image

        window = self.method.value == "window"
        self.window.visible = self._shown and window
        layer = self._viewer.layers.selection.active
        if window and not self.window.value.strip() and isinstance(layer, Image):
            low, high = (float(v) for v in layer.contrast_limits)
            self.window.value = f"{low:g}, {high:g}"


def parse_window(text: str) -> tuple[float, float]:
    """ "-175, 250" (or "-175 to 250", as a model card shows it) -> (-175.0, 250.0).

    Parameters
    ----------
    text : str

    Returns
    -------
    tuple of float

    Raises
    ------
    ValueError
        For anything but two numbers.
    """
    import re

    # "-175 to 250" (as a model card shows it) and "(-175, 250)" or "[-175, 250]" too
    parts = re.sub(r"[,()\[\]]|\bto\b", " ", text).split()
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"intensity window must be two numbers, lowest and highest, such as '-175, 250', "
            f"got {text!r}"
        ) from None
    return low, high
