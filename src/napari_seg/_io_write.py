"""Writing label and probability files atomically: TIFF (an ImageJ hyperstack with its
pixel size and axes when known), NumPy, or a medical volume on its source's grid."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np

from ._atomic import atomic_write

if TYPE_CHECKING:
    from ._calibration import Calibration
    from .medical import VolumeGeometry


def write_tiff(path: str | os.PathLike, array, *, overwrite: bool = False, **kwargs) -> None:
    """Write ``array`` as a TIFF atomically (BigTIFF when large), zlib-compressed.

    Greyscale planes (``photometric="minisblack"``) unless told otherwise: left to
    guess, tifffile stores an array whose first or last axis has 3 or 4 entries (a
    stack of 3 label slices) as an RGB image, which Fiji then opens as colours.
    An existing file is replaced only with ``overwrite=True``.
    """
    import tifffile

    kwargs.setdefault("photometric", "minisblack")
    with atomic_write(path, overwrite=overwrite) as handle:
        tifffile.imwrite(handle, np.asarray(array), compression="zlib", **kwargs)


def write_labels(
    path: str | os.PathLike,
    array,
    geometry: VolumeGeometry | None = None,
    *,
    overwrite: bool = False,
    metadata: dict | None = None,
    calibration: Calibration | None = None,
    axes: str | None = None,
    segments: dict[int, tuple[str, tuple[float, ...]]] | None = None,
) -> None:
    """Write labels (or probabilities) atomically: NIfTI, NRRD or MetaImage with
    ``geometry``'s grid when ``path`` ends in ``.nii``/``.nii.gz``, ``.nrrd`` or
    ``.mha`` (:func:`~napari_seg.medical.write_volume`, an NRRD label map with its
    ``segments``: :func:`~napari_seg.medical.class_segments`), else TIFF (with
    ``metadata``; the labels of a medical volume, ``geometry`` without a
    ``calibration``, keep its voxel size there).

    Integer ids are stored as uint8 or uint16 when they fit
    (``arrays.ids.compact_ids``). A TIFF with a ``calibration`` (its source's:
    :func:`~napari_seg._headers.tiff_calibration`) is an ImageJ hyperstack with that pixel size,
    ``metadata`` then being its ImageJ properties; without one, the source's
    ``axes`` (an uncalibrated Fiji time-lapse's ``"TYX"``: :func:`~napari_seg._headers.tiff_header`)
    make it a hyperstack with those axes alone. Otherwise, or where ImageJ cannot
    hold the array (ids over 65535, axes ImageJ does not have), ``metadata`` is
    tifffile's JSON description, with the ``axes`` (which tifffile reads back),
    and the TIFF is uncalibrated.

    Raises
    ------
    ValueError
        For a medical path without the geometry of a medical source.
    """
    from ._calibration import Calibration, imagej_options
    from .arrays.ids import compact_ids
    from .medical import is_volume_output, write_volume

    array = np.asarray(array)
    if is_volume_output(path):
        if geometry is None:
            raise ValueError(
                f"{path}: NIfTI, NRRD or MetaImage output needs a medical input (its grid)"
            )
        write_volume(path, array, geometry, overwrite=overwrite, segments=segments)
        return
    array = compact_ids(array)  # uint8/16 when the ids fit: ImageJ holds those
    if calibration is None and geometry is not None and array.ndim in (3, 4):
        scale = geometry.placement(array.ndim)[0]  # a medical source's voxel size
        calibration = Calibration("TZYX"[4 - array.ndim :], scale, geometry.unit)
    options = imagej_options(calibration, array.shape, array.dtype, axes=axes)
    if options is None:
        axes = axes or (calibration.axes if calibration is not None else None)
        if axes and len(axes) == array.ndim:  # tifffile keeps them in its description
            metadata = {**(metadata or {}), "axes": axes}
        # metadata={} still writes tifffile's description of the shape (None would not:
        # 4D labels then read back as a stack of pages)
        write_tiff(path, array, overwrite=overwrite, metadata=metadata or {})
        return
    if metadata:  # ImageJ's properties are strings
        options["metadata"]["Properties"] = {
            str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()
        }
    write_tiff(path, array, overwrite=overwrite, **options)


#: ImageJ's hyperstack axis order; class planes are its channels.
_IMAGEJ_AXES = {3: "CYX", 4: "ZCYX", 5: "TZCYX"}


def write_probabilities(
    path: str | os.PathLike,
    probabilities,
    geometry: VolumeGeometry | None = None,
    *,
    class_names: tuple[str, ...] = (),
    overwrite: bool = False,
    calibration: Calibration | None = None,
    axes: str | None = None,
) -> None:
    """Write ``(num_classes, *shape)`` probabilities atomically, one plane per class.

    TIFF: an ImageJ hyperstack of float32 (ImageJ has no float16) with the classes
    as its channels, named after the classes, so Fiji opens a channel per class and
    napari a class axis (never an RGB image, which tifffile would guess for three
    classes). NIfTI, NRRD, MetaImage (medical sources): as :func:`write_labels`.

    Parameters
    ----------
    path : path-like
    probabilities : array-like
        Classes first.
    geometry : VolumeGeometry, optional
    class_names : tuple of str
    overwrite : bool
    calibration : Calibration, optional
        The labels' pixel size (:func:`write_labels`), stored when the planes of the
        hyperstack are the labels' (ImageJ's axis order).
    axes : str, optional
        The labels' axis letters (:func:`write_labels`): the classes go in as
        ImageJ's channels (``"TYX"`` gives ``"TCYX"``); by default the axes before
        the planes are slices (``"ZCYX"``) and frames (``"TZCYX"``).

    Raises
    ------
    ValueError
        For a medical path without a medical source's geometry.
    """
    from ._calibration import imagej_axes, imagej_options
    from .medical import is_volume_output

    probs = np.asarray(probabilities)
    if is_volume_output(path) or probs.ndim not in _IMAGEJ_AXES:
        write_labels(path, probs, geometry, overwrite=overwrite,
                     metadata={"axes": "C" + "Q" * (probs.ndim - 1)})  # fmt: skip
        return
    import tifffile

    labels_axes = calibration.axes if calibration is not None else axes
    axes = _IMAGEJ_AXES[probs.ndim]
    named = imagej_axes(labels_axes, probs.shape[1:], np.float32)
    if named is not None and "C" not in named:
        axes = named[:-2] + "CYX"
    if probs.ndim > 3:  # classes go after the stack axes, where ImageJ expects channels
        probs = np.moveaxis(probs, 0, axes.index("C"))
    metadata: dict = {"axes": axes}
    if class_names:
        pages = int(np.prod(probs.shape[:-2]))  # slice labels: one per page, classes inner
        metadata["Labels"] = [str(name) for name in class_names] * (pages // len(class_names))
    options = imagej_options(calibration, probs.shape[:-3] + probs.shape[-2:], np.float32)
    if options is not None and options["metadata"]["axes"] == axes.replace("C", ""):
        del options["metadata"]["axes"]
        metadata.update(options["metadata"])
        options = {"resolution": options["resolution"]}
    else:
        options = {}
    with atomic_write(path, overwrite=overwrite) as handle:
        tifffile.imwrite(handle, probs.astype(np.float32), imagej=True, metadata=metadata,
                         **options)  # fmt: skip
