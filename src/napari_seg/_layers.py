"""Layer keyword arguments for class labels (plain dicts; no napari import)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The classes a model trained on instance labels gets, per conversion
#: (``TrainingConfig.instances``); ``predict --objects`` reads them back.
INSTANCE_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "foreground": ("background", "object"),
    "boundaries": ("background", "object", "boundary"),
}


def labels_layer_kwargs(
    name: str,
    class_names: Sequence[str],
    class_colors: Sequence[Sequence[float]],
    background: int | None = None,
    ignore: Sequence[int] = (),
) -> dict[str, Any]:
    """``add_labels`` keyword arguments naming and colouring classes.

    The colormap maps each class index to its RGBA colour (unknown ids and the
    background are transparent) and the layer features hold ``index`` and
    ``class`` columns, so napari shows the class name under the cursor. The
    background id, when given, is kept in the layer's metadata (``BACKGROUND_KEY``),
    where Refine and Evaluate read their default background; the ids a dataset
    leaves out (``ignore``: nnU-Net's "ignore" label) under ``IGNORE_KEY``, which
    Train and Evaluate leave out by default.
    """
    if len(class_names) != len(class_colors):
        raise ValueError(
            f"class_names and class_colors must be as long, got {len(class_names)} "
            f"and {len(class_colors)}"
        )
    colors: dict[Any, tuple[float, ...]] = {i: tuple(c) for i, c in enumerate(class_colors)}
    colors[None] = (0.0, 0.0, 0.0, 0.0)
    kwargs: dict[str, Any] = {
        "name": name,
        "colormap": colors,
        "features": {"index": list(range(len(class_names))), "class": list(class_names)},
        "metadata": {},
    }
    if background is not None:  # only a known background is recorded
        colors[background] = (0.0, 0.0, 0.0, 0.0)
        kwargs["metadata"] = {BACKGROUND_KEY: int(background)}
    if ignore:
        kwargs["metadata"][IGNORE_KEY] = [int(i) for i in ignore]
    return kwargs


#: Layer metadata key of the background class id (None: no background class).
BACKGROUND_KEY = "napari_seg_background"
#: Layer metadata key of the label ids the layer's dataset leaves out of training and
#: scoring (nnU-Net's "ignore" label): the default "ignore ids" of Train and Evaluate.
IGNORE_KEY = "napari_seg_ignore"
#: Layer metadata key of a medical volume's geometry (``VolumeGeometry.to_metadata``),
#: set by the reader and carried to the labels segmented from it, for the NIfTI writer.
GEOMETRY_KEY = "napari_seg_geometry"
#: Layer metadata key of the kind of DICOM segmentation a label map was read from
#: ("rtstruct"), which File > Save Layers writes back with a ``.dcm`` name.
DICOM_KIND_KEY = "napari_seg_dicom_kind"
#: Layer metadata key of an RT structure set's ROI types by label id (``{id: "PTV"}``),
#: which File > Save Layers writes back.
ROI_TYPES_KEY = "napari_seg_roi_types"


def background_of(*layers, default: int | None = 0) -> int | None:
    """The background id the first layer that records one gives, else ``default``.

    Parameters
    ----------
    *layers : napari layers or None
    default : int, optional

    Returns
    -------
    int or None
    """
    for layer in layers:
        metadata = getattr(layer, "metadata", None) or {}
        if metadata.get(BACKGROUND_KEY) is not None:
            return int(metadata[BACKGROUND_KEY])
    return default


def ignored_of(layer) -> tuple[int, ...]:
    """The label ids ``layer`` records as left out (``IGNORE_KEY``); none when it
    records none, or records something that is not a list of whole numbers.

    Parameters
    ----------
    layer : napari layer or None

    Returns
    -------
    tuple of int
    """
    metadata = getattr(layer, "metadata", None) or {}
    ids = metadata.get(IGNORE_KEY)
    if not isinstance(ids, (list, tuple)) or not all(type(i) is int for i in ids):
        return ()
    return tuple(ids)


def class_names_of(*layers) -> dict[int, str]:
    """Class names from the layers' features ("class" column, ids in "index" or row order).

    The first layer naming an id wins.
    """
    names: dict[int, str] = {}
    for layer in layers:
        features = getattr(layer, "features", None)
        if features is None or "class" not in features:
            continue
        ids = features["index"] if "index" in features else range(len(features))
        for i, name in zip(ids, features["class"], strict=True):
            names.setdefault(int(i), str(name))
    return names
