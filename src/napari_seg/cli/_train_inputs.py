"""What ``napari-seg train``'s input files say: the image and labels pairs (folders
paired by name, labels on their image's voxel grid) and the settings the files
imply when none were given (class names from a ``dataset.json`` or 3D Slicer
segments, the voxel size, the channel and slice axes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import shared_segment_names, with_dataset_ignore


def labels_on_grid(image_path: Path, geometry, labels_path: Path):
    """The labels of ``labels_path`` on the image's voxel grid: medical labels covering
    a window of it (a cropped 3D Slicer segmentation, a DICOM SEG of some slices)
    placed on it with 0 elsewhere, and those of a volume the image is cropped from cut
    to it, with a note; refused on another grid
    (:func:`napari_seg.medical.place_on_grid`)."""
    import numpy as np

    from .._io import read_labels
    from ..medical import place_on_grid

    labels, grid = read_labels(labels_path)
    if geometry is None or grid is None:
        return labels
    names = (labels_path.name, image_path.name)
    placed = place_on_grid(labels, grid, geometry, names, drop_outside=True)
    if placed is labels:
        return labels
    left_out = np.count_nonzero(labels) - np.count_nonzero(placed)
    if left_out or np.size(labels) > np.size(placed):  # an image cropped from their volume
        note = (f"{names[1]} covers part of the grid of {names[0]}: trained on the labels "
                f"under it ({left_out} labelled voxels outside it left out)")  # fmt: skip
    else:
        note = f"{names[0]} covers part of the grid of {names[1]}: placed on it, 0 elsewhere"
    print(f"napari-seg train: {note}", file=sys.stderr)
    return placed


def pair_inputs(images: list[Path], labels: list[Path], suffix: str) -> tuple[list, list]:
    """The (image, labels) files of each --image/--labels pair, folders paired by name."""
    from .._datasets import pair_files

    found = [pair_files(i, lab, suffix=suffix) for i, lab in zip(images, labels, strict=True)]
    for message in (m for f in found for m in f.left_out()):
        print(f"napari-seg train: warning: {message}", file=sys.stderr)
    pairs = [pair for f in found for pair in f.pairs]
    return [i for i, _ in pairs], [lab for _, lab in pairs]


def with_dataset_names(config, folders: list[Path], args: argparse.Namespace):
    """A new model's class names from the ``dataset.json`` beside its label folder (the
    Decathlon's and nnU-Net's layout) when none were given, and its "ignore" label as
    the ids to leave out when none were given, with a note of each."""
    from .._dataset_json import dataset_class_names, dataset_ignore_label

    if args.resume is not None:
        return config
    found = {dataset_class_names(f) for f in folders}
    if len(found) != 1 or None in found:
        return config
    (names,) = found
    assert names is not None
    config = with_dataset_ignore(config, names, "train")
    ignore = dataset_ignore_label(names)
    if config.class_names or args.from_model is not None:
        return config
    names = names[:ignore]  # the "ignore" label is no class
    print(f"napari-seg train: class names from dataset.json: {', '.join(names)}", file=sys.stderr)
    return config.with_(class_names=names)


def with_segment_names(config, args: argparse.Namespace):
    """A new model's class names from 3D Slicer segmentations (``.seg.nrrd``) when none
    were given and every label file names the same segments, with a note."""
    from ..training.config import named_classes

    if args.resume is not None or args.from_model is not None or config.class_names:
        return config
    segments = shared_segment_names(args.labels)
    if segments is None:
        return config
    names = named_classes(dict(enumerate(segments)), config.label0, config.ignore_labels)
    if not names:
        return config
    print(f"napari-seg train: class names from the segments of {args.labels[0].name}: "
          f"{', '.join(names)}", file=sys.stderr)  # fmt: skip
    return config.with_(class_names=names)


def with_input_spacing(config, images, transforms):
    """The config with the inputs' voxel size and its unit when every one declares
    it, they all share one and none was given: a medical volume's (its header), an
    OME-Zarr image's (its scale, unless 1 everywhere), a calibrated TIFF's (ImageJ,
    OME-TIFF; ``transforms``: ``_headers.source_transform`` of each file). In-plane (the
    last two axes: axial planes, as a 2D model trains on them), or the last three for
    a 3D run. A unit only some inputs name is left out."""
    from .._headers import transform_spacing
    from ..training._model import run_dims

    if config.spacing is not None:
        return config
    dims = 3 if run_dims(config) == 3 else 2
    found: list[tuple[tuple[float, ...], str | None] | None] = []
    for (image, geometry), transform in zip(images, transforms, strict=True):
        if geometry is not None:
            found.append((tuple(geometry.spacing[-dims:]), geometry.unit))
        else:
            ndim = len(image.shape)
            found.append(transform_spacing(transform, range(ndim - dims, ndim)))
    declared = [item for item in found if item is not None]
    if len(declared) != len(found) or len({spacing for spacing, _unit in declared}) != 1:
        return config
    units = {unit for _spacing, unit in declared}
    unit = units.pop() if len(units) == 1 else None
    return config.with_(spacing=declared[0][0], spacing_unit=unit)


def model_channels(config) -> int | None:
    """The channels of the model a run trains: the fine-tuned model's (its card's
    count), else the config's (None: a new model takes the files' channels). The one
    answer :func:`with_input_channels` and :func:`input_axes` both go by, so that a 4D
    volume's first axis is channels (or time points) to both."""
    if config.from_model is None:
        return config.in_channels
    from ..models import read_model_spec

    return read_model_spec(config.from_model).in_channels


def with_input_channels(config, paths, pairs, images, headers, in_channels):
    """The config with the inputs' channel axis when none was given and every input
    is a file naming the same ``C`` axis (``_headers.file_channel_axis``: a Fiji
    hyperstack's) or a 4D medical volume (``medical.volume_channel_axis``: a 4D
    NIfTI, an nnU-Net case's channel files; time points when its labels have that
    axis or ``axis`` names it), for a model of several channels, new
    or fine-tuned (its card's count), so that it reads the channels ``predict``
    will feed it (``arrays.named.named_channel_axis``); a one-channel model on
    several named channels is refused, and so is a model of several on a file whose
    axis letters name none (``arrays.named.refuse_named_channels``).
    ``in_channels``: :func:`model_channels`."""
    from ..arrays.named import named_channel_axis, refuse_named_channels

    shapes = [tuple(image.shape) for image, _ in images]
    named = [
        _declared_channel_axis(h, g, s, lab, config.axis, in_channels, _volumes(p, s))
        for p, h, (_, g), s, (_, lab) in zip(paths, headers, images, shapes, pairs, strict=True)
    ]
    for path, shape, axis, header in zip(paths, shapes, named, headers, strict=True):
        try:
            letters = None if header is None else header.axes
            refuse_named_channels(shape, axis, in_channels, config.channel_axis, letters)
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None
    found = named_channel_axis(config.channel_axis, in_channels, named)
    return config if found == config.channel_axis else config.with_(channel_axis=found)


def _declared_channel_axis(
    header, geometry, shape, labels, stack, in_channels, count
) -> int | None:
    """The channel axis a file declares: the ``C`` axis a TIFF or OME-Zarr image names
    (its ``header``), a 4D medical volume's first unless it holds time points
    (``medical.volume_channel_axis``: the ``stack`` axes name it, its ``labels``
    have it, or it holds more (``count``) volumes than a volume has channels and not
    the model's ``in_channels``); None for other files."""
    from ..medical import volume_channel_axis

    if header is not None:
        return header.channel_axis
    if geometry is None:
        return None
    return volume_channel_axis(len(shape), stack=stack, labels_ndim=len(labels.shape),
                               count=count, in_channels=in_channels)  # fmt: skip


def _volumes(path: Path, shape: tuple[int, ...]) -> int | None:
    """How many volumes a 4D medical input holds, for the rule that many are time
    points (``medical.volume_channel_axis``); None for a case of channel files, which
    its ``dataset.json`` names channels whatever their number."""
    from .._dataset_json import named_channels

    return None if len(shape) != 4 or named_channels(path) else shape[0]


def input_axes(paths, headers, images, labels, in_channels) -> list[str | None]:
    """Each input's axes as letters, as ``predict`` reads them: a TIFF's or OME-Zarr
    image's (its header), a medical volume's (``medical.volume_axes``: a 4D one's
    ``CZYX`` or ``TZYX``; a 2D model takes its axial slices), None when unknown."""
    from .._headers import file_axes
    from ..medical import volume_axes

    return [
        file_axes(p, h, len(i.shape))
        if g is None
        else volume_axes(
            len(i.shape),
            labels_ndim=len(lab.shape),
            count=_volumes(p, tuple(i.shape)),
            in_channels=in_channels,
        )
        for p, h, (i, g), lab in zip(paths, headers, images, labels, strict=True)
    ]


def with_input_stack_axes(config, axes):
    """The config with the axes to train slice by slice along when none was given and
    every input names (``axes``: a TIFF's or an OME-Zarr image's letters, or None)
    the same ``T`` and ``Z`` axes before the model's spatial ones
    (``arrays.named.named_slice_axes``; a Fiji time-lapse, a TZYX hyperstack for a
    2D model), as ``predict`` reads them."""
    from ..arrays.named import named_slice_axes

    if config.axis is not None:
        return config
    dims = config.dims
    if dims is None and config.from_model is not None:
        from ..models import read_model_spec

        dims = read_model_spec(config.from_model).spatial_dims
    found = {named_slice_axes(letters, dims or 2, config.channel_axis) for letters in axes}
    axes = found.pop() if len(found) == 1 else None
    if axes is None:
        return config
    return config.with_(axis=axes[0] if len(axes) == 1 else axes)
