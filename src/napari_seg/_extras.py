"""The one home of "this needs an optional extra": the error, and its wording.

Optional parts (a cluster, OME-Zarr output, ITK's contour interpolation) live in
extras of the package. Using one without its extra raises
:class:`MissingExtraError`, an ``ImportError`` whose message names what to
install; the command line reports it in one line and the widgets as a
notification, as any other user error. Readers whose callers go on with the next
file (NIfTI, NRRD and DICOM without the ``medical`` extra) raise a ``ValueError``
with the same sentence (:func:`import_for_reading`).
"""

from __future__ import annotations

from typing import Any


def extra_message(what: str, needs: str, extra: str, instead: str = "") -> str:
    """The sentence that says which extra installs what ``what`` needs.

    Parameters
    ----------
    what, needs, extra, instead : str
        As :class:`MissingExtraError` takes them.

    Returns
    -------
    str
    """
    tail = f" ({instead})" if instead else ""
    return f"{what} needs {needs}: pip install 'napari-seg[{extra}]'{tail}"


def import_for_reading(module: str, what: str, needs: str, extra: str) -> Any:
    """Import ``module``, a reader's library, or raise a ``ValueError`` saying which
    extra installs it (:func:`extra_message`): the reader's callers name the file and
    go on with the next.

    Parameters
    ----------
    module : str
        What to import (``"nibabel"``).
    what, needs, extra : str
        As :func:`extra_message` takes them.

    Returns
    -------
    module
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(extra_message(what, needs, extra)) from None


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
        super().__init__(extra_message(what, needs, extra, instead))

    def __reduce__(self) -> tuple:
        # Raised in a child process (the contour method runs in one), it is pickled
        # back: rebuilt from its parts, not from the message alone.
        return (type(self), self.parts)
