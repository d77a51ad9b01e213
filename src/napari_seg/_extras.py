"""The one home of "this needs an optional extra": the error, and its wording.

Optional parts (a cluster, OME-Zarr output, ITK's contour interpolation) live in
extras of the package. Using one without its extra raises
:class:`MissingExtraError`, an ``ImportError`` whose message names what to
install; the command line reports it in one line and the widgets as a
notification, as any other user error.
"""

from __future__ import annotations


class MissingExtraError(ImportError):
    """An optional part of napari-seg was used without the extra that installs it.

    Parameters
    ----------
    what : str
        What was asked for (``"running on a cluster"``).
    needs : str
        The missing libraries, as users know them (``"distributed"``).
    extra : str
        The napari-seg extra that installs them (``"cluster"``).
    instead : str, optional
        What to do without installing anything, appended to the message.
    """

    def __init__(self, what: str, needs: str, extra: str, instead: str = "") -> None:
        self.parts = (what, needs, extra, instead)
        self.extra = extra
        tail = f" ({instead})" if instead else ""
        super().__init__(f"{what} needs {needs}: pip install 'napari-seg[{extra}]'{tail}")

    def __reduce__(self) -> tuple:
        # Raised in a child process (the contour method runs in one), it is pickled
        # back: rebuilt from its parts, not from the message alone.
        return (type(self), self.parts)
