"""Lazy views of the arrays jobs read region by region."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._types import RegionArray


def host_array(array: Any) -> Any:
    """A torch tensor (MONAI's ``MetaTensor`` too) as a NumPy array on the host;
    any other array as it is (numpy, dask and zarr arrays are read region by region).

    PyTorch and MONAI users hold their images and labels as tensors; numpy cannot
    read a tensor's dtype, so the jobs take them through here. A CPU tensor shares
    its memory; a GPU one is copied; bfloat16 (which NumPy lacks) becomes float32.

    Parameters
    ----------
    array : array-like or torch.Tensor

    Returns
    -------
    array-like

    Raises
    ------
    ValueError
        For an array whose shape is not known yet (a dask array of unknown chunk sizes).
    """
    import sys

    torch = sys.modules.get("torch")  # a tensor exists only where torch is imported
    if torch is None or not isinstance(array, torch.Tensor):
        shape = getattr(array, "shape", ())
        if isinstance(shape, tuple) and any(n != n for n in shape):  # NaN: not yet known
            raise ValueError(
                f"the array's shape {tuple(shape)} is not known yet (a dask array with "
                "unknown chunk sizes, as boolean indexing makes): call "
                "array.compute_chunk_sizes() first"
            )
        return array
    tensor = array.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.as_subclass(torch.Tensor).numpy()


def as_array(array: Any, name: str) -> Any:
    """``array`` as the jobs read it: a tensor through :func:`host_array`, a (nested)
    list or tuple as a numpy array (as scikit-image's functions take one), a napari
    multiscale layer's data as its finest level, numpy, dask and zarr arrays as they
    are, anything else numpy's array or buffer protocols convert (a PIL image, a
    memoryview) as ``numpy.asarray`` reads it; a masked array with nothing masked as
    its data.

    Parameters
    ----------
    array : array-like, nested list or torch.Tensor
    name : str
        What it is, for messages ("image", "pred", "pair 0: labels").

    Returns
    -------
    array-like
        With ``shape``, ``dtype`` and region reads.

    Raises
    ------
    TypeError
        For anything else (a napari layer: give its ``.data``; a file name), lists of
        different lengths, or arrays of different shapes (a pyramid: give its finest
        level).
    ValueError
        For a masked array with masked pixels (napari-seg reads no masks: named with
        the way to fill them).
    """
    if type(array).__name__ == "MultiScaleData" and type(array).__module__.startswith("napari"):
        array = array[0]  # a multiscale layer's data: its finest level, as the docks read it
    array = host_array(array)
    if isinstance(array, np.ma.MaskedArray):
        array = _unmasked(array, name)
    if isinstance(array, (list, tuple)):
        shapes = {tuple(a.shape) for a in array if hasattr(a, "shape")}
        if len(shapes) > 1:
            raise TypeError(
                f"{name} is a list of arrays of {len(shapes)} shapes: a multiscale pyramid? "
                f"give its finest level ({name}[0]); several images: one call each"
            )
        try:
            array = np.asarray(array)
        except ValueError:  # "inhomogeneous shape"
            raise TypeError(
                f"{name} must be an array; nested lists must all have one length each level"
            ) from None
    if not all(hasattr(array, a) for a in ("shape", "dtype", "__getitem__")):
        if not _numpy_converts(array):
            raise TypeError(
                f"{name} must be an array (numpy, dask or zarr), got {what_was_given(array)}"
            )
        array = np.asarray(array)  # a PIL image, a memoryview: read whole, as numpy does
    return array


def _unmasked(array: np.ma.MaskedArray, name: str) -> np.ndarray:
    """A masked array's data when nothing is masked (as some readers hand any array);
    else a refusal: every job would read the masked pixels' values as real ones,
    segmenting, scoring or training on them."""
    masked = int(np.ma.count_masked(array))
    if masked:
        variable = name.rsplit(": ", 1)[-1]  # "pair 0: labels" -> labels.filled(...)
        raise ValueError(
            f"{name} is a masked array with {masked} masked pixel(s), and napari-seg reads "
            f"no masks: give {variable}.filled(value) with the value they should have (for a "
            "ground truth, an id named in ignore_labels: scored and trained on nowhere)"
        )
    return np.asarray(array.data)


def _numpy_converts(array: Any) -> bool:
    """Whether ``array`` hands numpy its pixels through one of numpy's array protocols
    (a PIL image's ``__array_interface__``, ``__array__``) or the buffer protocol (a
    memoryview), as ``numpy.asarray`` and so scikit-image's functions take it. Strings
    and bytes, which numpy would read as one text value, are not."""
    if isinstance(array, memoryview):
        return True
    protocols = ("__array__", "__array_interface__", "__array_struct__")
    return not isinstance(array, (str, bytes)) and any(hasattr(array, p) for p in protocols)


class ChannelView:
    """One channel of an image, read region by region (numpy, memmap, dask, zarr).

    Parameters
    ----------
    array : RegionArray
    axis : int
        The channel axis of ``array``.
    index : int
        The channel (negative counts from the end).

    Raises
    ------
    ValueError
        For an axis or channel out of range.
    """

    def __init__(self, array: RegionArray, axis: int, index: int) -> None:
        ndim = len(array.shape)
        if not -ndim <= axis < ndim:
            raise ValueError(f"channel axis {axis} is out of range for {ndim} axes")
        axis %= ndim
        count = int(array.shape[axis])
        if not -count <= index < count:
            raise ValueError(
                f"channel {index} is out of range: the image has {count} channel(s) along "
                f"axis {axis}"
            )
        self.array, self.axis, self.index = array, axis, index % count

    @property
    def shape(self) -> tuple[int, ...]:
        """The image's shape without the channel axis."""
        shape = tuple(int(n) for n in self.array.shape)
        return shape[: self.axis] + shape[self.axis + 1 :]

    @property
    def dtype(self) -> Any:
        """The image's dtype."""
        return self.array.dtype

    @property
    def ndim(self) -> int:
        """The number of axes (one fewer than the image's)."""
        return len(self.shape)

    def __getitem__(self, index: Any) -> Any:
        index = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis for i in index):
            at = next(k for k, i in enumerate(index) if i is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(index) + 1)
            index = index[:at] + fill + index[at + 1 :]
        index = index + (slice(None),) * (self.ndim - len(index))
        full = (*index[: self.axis], self.index, *index[self.axis :])
        return self.array[full]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.asarray(self[(slice(None),) * self.ndim])
        return out if dtype is None else out.astype(dtype, copy=False)


def what_was_given(obj: Any) -> str:
    """The type of something given where an array belongs, for a message; a napari
    layer (from napari's console: ``evaluate(viewer.layers["pred"], ...)``) with the
    advice to give its data.

    Parameters
    ----------
    obj : object

    Returns
    -------
    str

    Examples
    --------
    >>> what_was_given([1, 2])
    'list'
    """
    name = type(obj).__name__
    if type(obj).__module__.startswith("napari.layers") and hasattr(obj, "data"):
        return f"{name} (a napari layer: give its .data)"
    return name


def is_read_only(array: Any) -> bool:
    """Whether ``array`` refuses writes: a numpy array (or memory map) not writeable,
    or a zarr array opened read-only.

    Parameters
    ----------
    array : array-like

    Returns
    -------
    bool
    """
    if isinstance(array, np.ndarray):
        return not array.flags.writeable
    return bool(getattr(array, "read_only", False))


def check_output_array(array: Any, name: str) -> None:
    """Refuse, before any work, an output that cannot take the results: not an array
    with a shape, a dtype and item assignment, or read-only.

    Parameters
    ----------
    array : array-like
    name : str
        The argument, for messages.

    Raises
    ------
    TypeError, ValueError
    """
    if not all(hasattr(array, a) for a in ("shape", "dtype", "__setitem__")):
        raise TypeError(
            f"{name} must be an array that takes writes (numpy, zarr), got {type(array).__name__}"
        )
    if is_read_only(array):
        raise ValueError(f"{name} is read-only; give an array that takes writes")
