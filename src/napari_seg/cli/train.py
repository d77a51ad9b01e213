"""``napari-seg train``: train or fine-tune a model from image and label files."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    add_channel_argument,
    add_labels_suffix_argument,
    add_spacing_unit_argument,
    axes_argument,
    drive,
    parse_options,
    pick_channel,
    read_config,
    shared_segment_names,
    with_dataset_ignore,
)

if TYPE_CHECKING:
    from ..training import TrainingConfig

#: Flags copied onto the config when given (argparse dest -> config field).
_FIELDS = {
    "arch": "architecture",
    "encoder": "encoder",
    "from_model": "from_model",
    "loss": "loss",
    "label0": "label0",
    "instances": "instances",
    "ignore_labels": "ignore_labels",
    "device": "device",
    "batch_size": "batch_size",
    "patch_size": "patch_size",
    "learning_rate": "learning_rate",
    "schedule": "schedule",
    "precision": "precision",
    "steps_per_epoch": "steps_per_epoch",
    "patience": "patience",
    "seed": "seed",
    "axis": "axis",
    "channel_axis": "channel_axis",
    "num_classes": "num_classes",
    "class_names": "class_names",
    "validation_fraction": "validation_fraction",
    "threads": "threads",
    "dims": "dims",
    "memory_gb": "memory_gb",
}


SPACING_HELP = (
    "pixel size of the planes (Y X), or voxel size of volumes (Z Y X) with --dims 3, "
    "for a new model's card and a 3D run's planning (default: a NIfTI's, an "
    "OME-Zarr image's or a calibrated TIFF's own)"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand to the parser's subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "train",
        help="train or fine-tune a model on image/label files",
        description=(
            "Train a new model (--arch) or fine-tune one (--from-model) on pairs of image and "
            "label files (TIFF, PNG, NumPy .npy, zarr or NIfTI), or on folders of them paired "
            "by name (NAME.tif with NAME_labels.tif). Writes the best model to --out, the "
            "last state to OUT-last.safetensors and the settings with the reached metrics to "
            "OUT.training.json. Ctrl+C stops after the current step and keeps the results; "
            "a second Ctrl+C aborts."
        ),
    )
    _add_data_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="model file to write (.safetensors)")
    p.add_argument("--config", type=Path, help="JSON or YAML training settings")
    p.add_argument("--arch", help="architecture of a new model (see 'napari-seg models')")
    p.add_argument("--encoder", help="encoder of a new model")
    p.add_argument("--option", action="append", metavar="NAME=VALUE", help="architecture option")
    p.add_argument("--from-model", help="model file to fine-tune")
    p.add_argument("--resume", type=Path, help="continue the run that wrote this checkpoint")
    _add_class_arguments(p)
    _add_schedule_arguments(p)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--axis",
        type=axes_argument,
        help="stack axis to train on slice by slice, e.g. 0 (several: 0,1 for a TZYX stack)",
    )
    p.add_argument("--channel-axis", type=int, help="channel axis of the images (detected)")
    add_channel_argument(p)
    p.add_argument("--spacing", type=float, nargs="+", metavar="SIZE", help=SPACING_HELP)
    add_spacing_unit_argument(p)
    _add_3d_arguments(p)
    p.add_argument("--no-augment", action="store_true", help="switch every augmentation off")
    p.add_argument("--elastic", action="store_true", default=None, help="elastic deformation")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out and its -last/.training.json files if they exist",
    )
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _add_schedule_arguments(p: argparse.ArgumentParser) -> None:
    """The loss, the budget and the optimisation settings, with the config's defaults."""
    from ..arrays import PRECISIONS
    from ..training import LOSSES, SCHEDULES, TrainingConfig

    p.add_argument(
        "--loss",
        choices=LOSSES,
        help="auto: weighted-ce+dice for strokes of 3 or more classes, weighted-ce with "
        f"--instances boundaries, else ce+dice (default: {TrainingConfig.loss})",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="budget in minutes of training")
    budget.add_argument("--epochs", type=int, help="budget in epochs")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--batch", type=int, dest="batch_size", help="patches per step")
    p.add_argument("--patch", type=int, dest="patch_size", help="patch side in pixels")
    p.add_argument("--lr", type=float, dest="learning_rate", help="peak learning rate")
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help=f"learning-rate schedule (default: {TrainingConfig.schedule})",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto: bf16 on CUDA (fp16 before Ampere), fp32 on CPU and MPS (default: "
        f"{TrainingConfig.precision})",
    )
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        help=f"optimizer steps between validations (default: {TrainingConfig.steps_per_epoch})",
    )
    p.add_argument("--patience", type=int, help="early stopping patience in epochs")
    p.add_argument(
        "--val-fraction",
        type=float,
        dest="validation_fraction",
        help="fraction of the annotated regions held out for validation (default: "
        f"{TrainingConfig.validation_fraction})",
    )
    p.add_argument(
        "--seed",
        type=int,
        help=f"seed of the weights, patches and augmentations (default: {TrainingConfig.seed})",
    )


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image",
        action="append",
        required=True,
        type=Path,
        help="image file, or a folder of images (repeat --image and --labels for several)",
    )
    p.add_argument(
        "--labels",
        action="append",
        required=True,
        type=Path,
        help="its labels, or a folder of label files paired with the images by name (it may "
        "be the images' folder)",
    )
    add_labels_suffix_argument(p, "label")


def _add_class_arguments(p: argparse.ArgumentParser) -> None:
    from ..training import LABEL0_CHOICES, TrainingConfig
    from ..training.instances import INSTANCE_MODES

    p.add_argument("--grow-classes", action="store_true", default=None, help="allow new classes")
    p.add_argument("--num-classes", type=int, help="classes of a new model (default: from labels)")
    p.add_argument("--class-names", nargs="+", metavar="NAME", help="one name per class")
    p.add_argument(
        "--label0",
        choices=LABEL0_CHOICES,
        help="background: label 0 is a class (dense masks); unlabelled: 0 was not "
        "annotated and gives no gradient (strokes; each painted id is a class) "
        f"(default: {TrainingConfig.label0})",
    )
    p.add_argument(
        "--ignore",
        dest="ignore_labels",
        nargs="+",
        type=int,
        metavar="ID",
        help="label ids that mark pixels to leave out (a dataset's void or ignore id, "
        "e.g. 255 in Pascal VOC): no gradient, not scored, no class of the model",
    )
    p.add_argument(
        "--instances",
        choices=INSTANCE_MODES,
        help="the labels are instance labels (one id per object): train the classes "
        "background and object (foreground), or background, object and boundary "
        "(boundaries: keeps touching objects apart)",
    )


def _add_3d_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dims",
        type=int,
        choices=(2, 3),
        help="2: planes (stacks slice by slice); 3: volumes with a 3D network "
        "(default: the --from-model's, else 2)",
    )
    p.add_argument(
        "--patch-3d",
        type=int,
        nargs=3,
        metavar=("D", "H", "W"),
        help="3D patch size (default: planned from the spacing and --memory-gb)",
    )
    p.add_argument(
        "--memory-gb",
        type=float,
        help="memory budget of a 3D run's planning (default: 80%% of a GPU's free memory, "
        "40%% of the available RAM)",
    )


def build_config(args: argparse.Namespace) -> TrainingConfig:
    """The job's TrainingConfig: the --config file (JSON or YAML), then the flags given.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    TrainingConfig

    Raises
    ------
    ValueError, TypeError
        For invalid settings (the message names them).
    """
    from ..training import TrainingConfig
    from ..training.files import resumed_config

    if args.config is not None:
        config = read_config(TrainingConfig, args.config)
    elif args.resume is not None:
        config = resumed_config(args.resume)
    else:
        config = TrainingConfig()
    changes = {f: getattr(args, a) for a, f in _FIELDS.items() if getattr(args, a) is not None}
    if args.class_names:
        changes["class_names"] = tuple(args.class_names)
    if args.option:
        changes["options"] = parse_options(args.option)
    if args.minutes is not None:
        changes.update(minutes=args.minutes, epochs=None)
    if args.epochs is not None:
        changes.update(epochs=args.epochs, minutes=None)
    if args.grow_classes:
        changes["grow_classes"] = True
    if args.no_augment:
        changes.update(flips=False, rotations=False, intensity=False, noise=False, elastic=False)
    if args.elastic:
        changes["elastic"] = True
    if args.spacing is not None:
        changes["spacing"] = tuple(args.spacing)
    if args.spacing_unit is not None:
        changes["spacing_unit"] = args.spacing_unit
    if args.patch_3d is not None:
        changes["patch_3d"] = tuple(args.patch_3d)
    return config.with_(**changes)


def run(args: argparse.Namespace) -> int:
    """Run ``napari-seg train`` with parsed ``args``; the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0 when a model was written; 1 when training ended before its first
        validation; 130 when Ctrl+C stopped it before a model was written.

    Raises
    ------
    ValueError, OSError
        For a usage error; ``main`` prints it in one line.
    """
    from .._atomic import check_target
    from .._headers import file_axes, file_header, source_transform
    from .._io import read_with_geometry
    from ..medical import volume_axes

    if len(args.image) != len(args.labels):
        raise ValueError(
            f"give one --labels per --image: got {len(args.image)} image(s) and "
            f"{len(args.labels)} label file(s)"
        )
    folders = list(args.labels)
    args.image, args.labels = _pairs(args.image, args.labels, args.labels_suffix)
    config = _with_dataset_names(build_config(args), folders, args)
    config = _with_segment_names(config, args)
    # The model file must not replace an image or labels file, whatever --overwrite says.
    check_target(args.out, overwrite=True, inputs=[*args.image, *args.labels])
    images = [read_with_geometry(i) for i in args.image]
    headers = [file_header(path) for path in args.image]  # a TIFF's or OME-Zarr's axes
    transforms = [source_transform(p, h) for p, h in zip(args.image, headers, strict=True)]
    if args.channel is not None:  # one channel of each image, read lazily
        for k, ((image, geometry), header) in enumerate(zip(images, headers, strict=True)):
            try:
                view, headers[k], transforms[k] = pick_channel(
                    image, args.channel, config.channel_axis, header, transforms[k]
                )
            except ValueError as exc:
                raise ValueError(f"{args.image[k].name}: {exc}") from None
            images[k] = (view, geometry)
        config = config.with_(channel_axis=None)
    labels = [
        _labels_on_grid(image_path, geometry, labels_path)
        for image_path, (_, geometry), labels_path in zip(
            args.image, images, args.labels, strict=True
        )
    ]
    pairs = [(image, lab) for (image, _), lab in zip(images, labels, strict=True)]
    config = _with_input_spacing(config, images, transforms)
    config = _with_input_channels(config, args.image, pairs, images, headers)
    # a medical volume's axes as predict reads them: a 2D model takes its axial slices
    axes = [
        file_axes(p, h, len(i.shape))
        if g is None
        else volume_axes(len(i.shape), labels_ndim=len(lab.shape))
        for p, h, (i, g), lab in zip(args.image, headers, images, labels, strict=True)
    ]
    config = _with_input_stack_axes(config, axes)
    names = [p.name for p in args.image]
    stop = threading.Event()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = _install_interrupt(stop) if main_thread else None
    try:
        result = _run(pairs, config, args, names, stop)
        return _report(result, args)
    finally:  # a second Ctrl+C while reporting is still a clean interruption
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _labels_on_grid(image_path: Path, geometry, labels_path: Path):
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


def _pairs(images: list[Path], labels: list[Path], suffix: str) -> tuple[list, list]:
    """The (image, labels) files of each --image/--labels pair, folders paired by name."""
    from .._datasets import pair_files

    found = [pair_files(i, lab, suffix=suffix) for i, lab in zip(images, labels, strict=True)]
    for message in (m for f in found for m in f.left_out()):
        print(f"napari-seg train: warning: {message}", file=sys.stderr)
    pairs = [pair for f in found for pair in f.pairs]
    return [i for i, _ in pairs], [lab for _, lab in pairs]


def _with_dataset_names(config, folders: list[Path], args: argparse.Namespace):
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


def _with_segment_names(config, args: argparse.Namespace):
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


def _with_input_spacing(config, images, transforms):
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


def _with_input_channels(config, paths, pairs, images, headers):
    """The config with the inputs' channel axis when none was given and every input
    is a file naming the same ``C`` axis (``_headers.file_channel_axis``: a Fiji
    hyperstack's) or a 4D medical volume (``medical.volume_channel_axis``: a 4D
    NIfTI, an nnU-Net case's channel files; time points when its labels have that
    axis or ``axis`` names it), for a model of several channels, new
    or fine-tuned (its card's count), so that it reads the channels ``predict``
    will feed it (``arrays.named.named_channel_axis``); a one-channel model on
    several named channels is refused (``arrays.named.refuse_named_channels``)."""
    from ..arrays.named import named_channel_axis, refuse_named_channels

    in_channels = config.in_channels
    if config.from_model is not None and config.channel_axis is None:
        from ..models import read_model_spec

        in_channels = read_model_spec(config.from_model).in_channels
    shapes = [tuple(image.shape) for image, _ in images]
    named = [
        _declared_channel_axis(h, g, s, lab, config.axis)
        for h, (_, g), s, (_, lab) in zip(headers, images, shapes, pairs, strict=True)
    ]
    for path, shape, axis in zip(paths, shapes, named, strict=True):
        try:
            refuse_named_channels(shape, axis, in_channels, config.channel_axis)
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None
    found = named_channel_axis(config.channel_axis, in_channels, named)
    return config if found == config.channel_axis else config.with_(channel_axis=found)


def _declared_channel_axis(header, geometry, shape, labels, stack) -> int | None:
    """The channel axis a file declares: the ``C`` axis a TIFF or OME-Zarr image names
    (its ``header``), a 4D medical volume's first unless it holds time points
    (``medical.volume_channel_axis``: the ``stack`` axes name it, or its ``labels``
    have it); None for other files."""
    from ..medical import volume_channel_axis

    if header is not None:
        return header.channel_axis
    if geometry is None:
        return None
    return volume_channel_axis(len(shape), stack=stack, labels_ndim=len(labels.shape))


def _with_input_stack_axes(config, axes):
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
    found = {named_slice_axes(letters, dims or 2) for letters in axes}
    axes = found.pop() if len(found) == 1 else None
    if axes is None:
        return config
    return config.with_(axis=axes[0] if len(axes) == 1 else axes)


def _run(pairs, config, args, names, stop):
    from ..training import (
        EpochEnd,
        FitProgress,
        StepProgress,
        TrainStarted,
        TrainWarning,
        iter_train,
    )

    last = "val -"

    def show(event, bar) -> None:
        nonlocal last
        if isinstance(event, TrainStarted):
            bar_format = "{l_bar}{bar}| {elapsed}<{remaining}{postfix}"
            bar.start(1000, f"train ({event.device}, {event.precision})", bar_format=bar_format)
        elif isinstance(event, FitProgress):  # a 3D pixel classifier reading its blocks
            reading = f"reading block {event.blocks_done}/{event.blocks_total}"
            bar.update(int(1000 * event.fraction), postfix=reading)
        elif isinstance(event, StepProgress):
            loss = f"epoch {event.epoch} loss {event.loss:.3f} {last}"
            bar.update(int(1000 * event.fraction), postfix=loss)
        elif isinstance(event, EpochEnd):
            short = "val IoU" if event.val_metric == "iou" else "held-out strokes"
            score = "-" if math.isnan(event.val_score) else f"{event.val_score:.3f}"
            last = f"{short} {score}"
        elif isinstance(event, TrainWarning):
            bar.note(f"napari-seg train: warning: {event.message}")

    events = iter_train(
        pairs,
        config,
        out=args.out,
        resume=args.resume,
        stop=stop,
        names=names,
        overwrite=args.overwrite,
    )
    return drive(events, show, quiet=args.quiet)


def _install_interrupt(stop: threading.Event):
    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nnapari-seg train: stopping after this step (Ctrl+C again aborts)", file=sys.stderr)

    return signal.signal(signal.SIGINT, handler)


def _report(result, args) -> int:
    """Print the result (JSON or text); the exit status: non-zero when no model was written."""
    payload = {
        "stopped": result.stopped,
        "epochs": result.epochs,
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
        "metrics": result.metrics,
        "files": {
            "best": str(result.best_path) if result.best_path else None,
            "last": str(result.last_path) if result.last_path else None,
            "summary": str(result.summary_path) if result.summary_path else None,
        },
        "classes": list(result.model.spec.class_names),
    }
    if args.json:
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        _print_text(result, payload)
    if result.best_path is None:
        last = f"; the last state is in {result.last_path}" if result.last_path else ""
        print(
            f"napari-seg train: no model was written to {args.out}: training ended "
            f"({result.stopped}) before its first epoch was validated{last}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED if result.stopped == "stopped" else EXIT_ERROR
    return 0


def _print_text(result, payload: dict) -> None:
    from ..training.validation import score_text

    m = result.metrics
    best = score_text(m["metric"], m["best_score"])
    at = "" if result.stopped == "fitted" else f" at epoch {m['best_epoch']}"
    if m["best_score"] is None or math.isnan(m["best_score"]):  # nothing held out
        print(f"{result.describe()}; {best} (nothing held out): the model is the last epoch's")
    else:
        print(f"{result.describe()}; best {best}{at}")
    for kind, path in payload["files"].items():
        if path:
            print(f"  {kind}: {path}")
