"""``napari-seg train``: train or fine-tune a model from image and label files."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from typing import TYPE_CHECKING

from .._paths import user_path
from ._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    add_channel_argument,
    add_labels_suffix_argument,
    add_normalization_arguments,
    add_spacing_unit_argument,
    axes_argument,
    drive,
    implied_normalization,
    parse_options,
    pick_channel,
    read_config,
    size_argument,
)
from ._train_inputs import (
    input_axes,
    labels_on_grid,
    model_channels,
    pair_inputs,
    with_dataset_names,
    with_input_channels,
    with_input_spacing,
    with_input_stack_axes,
    with_segment_names,
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
    "normalization": "normalization",
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
    p.add_argument(
        "--out", required=True, type=user_path, help="model file to write (.safetensors)"
    )
    p.add_argument("--config", type=user_path, help="JSON or YAML training settings")
    p.add_argument("--arch", help="architecture of a new model (see 'napari-seg models')")
    p.add_argument("--encoder", help="encoder of a new model (a --from-model keeps its own)")
    p.add_argument("--option", action="append", metavar="NAME=VALUE", help="architecture option")
    add_normalization_arguments(p, default=None)
    p.add_argument("--from-model", help="model file to fine-tune")
    p.add_argument("--resume", type=user_path, help="continue the run that wrote this checkpoint")
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
    p.add_argument("--spacing", type=size_argument, nargs="+", metavar="SIZE", help=SPACING_HELP)
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
    from ..training.config import DEFAULT_MINUTES

    p.add_argument(
        "--loss",
        choices=LOSSES,
        help="auto: weighted-ce+dice for strokes of 3 or more classes, weighted-ce with "
        f"--instances boundaries, else ce+dice (default: {TrainingConfig.loss})",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes", type=float, help=f"budget in minutes of training (default {DEFAULT_MINUTES:g})"
    )
    budget.add_argument("--epochs", type=int, help="budget in epochs (instead of minutes)")
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
        type=user_path,
        help="image file, or a folder of images (repeat --image and --labels for several)",
    )
    p.add_argument(
        "--labels",
        action="append",
        required=True,
        type=user_path,
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
    args.normalization = implied_normalization(args)
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
    if args.normalization_window is not None:
        changes["normalization_window"] = tuple(args.normalization_window)
    config = config.with_(**changes)
    if args.patience is not None and config.validation_fraction == 0:
        print("napari-seg train: warning: --patience has no effect without validation "
              "(--val-fraction 0): no score to stop on; training runs its whole budget",
              file=sys.stderr)  # fmt: skip
    return config


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
    from .._headers import file_header, source_transform
    from .._io import read_with_geometry
    from ..models.model_file import check_model_target

    if len(args.image) != len(args.labels):
        raise ValueError(
            f"give one --labels per --image: got {len(args.image)} image(s) and "
            f"{len(args.labels)} label file(s)"
        )
    folders = list(args.labels)
    args.image, args.labels = pair_inputs(args.image, args.labels, args.labels_suffix)
    config = with_dataset_names(build_config(args), folders, args)
    config = with_segment_names(config, args)
    # The model file must not replace an image or labels file, whatever --overwrite says.
    args.out = check_model_target(args.out, overwrite=True, inputs=[*args.image, *args.labels])
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
        labels_on_grid(image_path, geometry, labels_path)
        for image_path, (_, geometry), labels_path in zip(
            args.image, images, args.labels, strict=True
        )
    ]
    pairs = [(image, lab) for (image, _), lab in zip(images, labels, strict=True)]
    config = with_input_spacing(config, images, transforms)
    channels = model_channels(config)
    config = with_input_channels(config, args.image, pairs, images, headers, channels)
    axes = input_axes(args.image, headers, images, labels, channels)
    config = with_input_stack_axes(config, axes)
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
