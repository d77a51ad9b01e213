"""``napari-seg evaluate``: score label files against ground-truth label files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .._paths import user_path
from ._common import (
    EXIT_ERROR,
    INPUT_ERRORS,
    add_labels_suffix_argument,
    length_unit_argument,
    read_config,
    shared_segment_names,
    size_argument,
    with_dataset_ignore,
)

if TYPE_CHECKING:
    from ..metrics import EvaluateConfig, Evaluation


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand to the parser's subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "evaluate",
        help="score predicted labels against ground truth (IoU, Dice, instance matching)",
        description=(
            "Compare a predicted label file with a ground-truth label file (TIFF, PNG, "
            "NumPy .npy, zarr or NIfTI, same shape) and print per-class and mean scores, "
            "or with --instance the object matching at IoU thresholds 0.5..0.95. Two "
            "folders are paired by name (NAME_labels.tif, as predict writes it, with "
            "NAME_labels.tif or NAME.tif): each pair's headline scores, their mean, and "
            "the scores of all pairs pooled."
        ),
    )
    _add_input_arguments(p)
    p.add_argument("--ignore", dest="ignore_labels", nargs="+", type=int, metavar="ID",
                   help="ground-truth ids to leave out (e.g. 0 for sparse strokes)")  # fmt: skip
    p.add_argument("--instance", action="store_true", default=None, help="score objects")
    p.add_argument(
        "--background",
        type=_background,
        default=argparse.SUPPRESS,
        help="background id (default 0; 'none': no background class)",
    )
    p.add_argument(
        "--thresholds", nargs="+", type=float, metavar="T", help="IoU thresholds (instance mode)"
    )
    p.add_argument(
        "--per-slice",
        type=int,
        metavar="AXIS",
        help="also score each slice (default for a time-lapse: each frame, along a TIFF's T "
        "axis or a 4D medical label map's first)",
    )
    p.add_argument("--class-names", nargs="+", metavar="NAME", help="names of ids 0, 1, ...")
    p.add_argument(
        "--surface",
        action="store_true",
        default=None,
        help="also per-class HD95, average surface distance, surface Dice and volumes",
    )
    p.add_argument(
        "--spacing",
        nargs="+",
        type=size_argument,
        metavar="SIZE",
        help="voxel size per axis for the surface distances and volumes "
        "(default: the ground truth file's, e.g. a NIfTI header or an OME-Zarr scale; else 1)",
    )
    p.add_argument(
        "--tolerance", type=float, metavar="D", help="surface Dice tolerance (spacing units)"
    )
    p.add_argument(
        "--unit",
        type=_unit_symbol,
        help="length unit of the spacing: nm, um, mm, m or an NGFF name (mm: volumes in mL)",
    )
    p.add_argument("--config", type=user_path, help="JSON or YAML file of evaluation settings")
    _add_output_arguments(p)
    p.set_defaults(func=run)


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--csv",
        type=user_path,
        metavar="FILE",
        help="also write the table as CSV (a row per class, or threshold; for folders a row "
        "per pair, then the means), as the Evaluate dock's export",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")


def _add_input_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pred", required=True, type=user_path, help="predicted labels file, or a folder of them"
    )
    p.add_argument(
        "--gt", required=True, type=user_path, help="ground-truth labels file, or a folder of them"
    )
    add_labels_suffix_argument(p, "ground-truth")


def _unit_symbol(text: str) -> str:
    """``--unit``'s length unit as the symbol the scores are shown in ("mm")."""
    from .._units import unit_symbol

    return unit_symbol(length_unit_argument(text))


def _background(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an id or 'none', got {text!r}") from None


def build_config(args: argparse.Namespace) -> EvaluateConfig:
    """The job's EvaluateConfig: the --config file (JSON or YAML), then the flags given.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    EvaluateConfig

    Raises
    ------
    ValueError, TypeError
        For invalid settings (the message names them).
    """
    from ..metrics import EvaluateConfig

    config = read_config(EvaluateConfig, args.config)
    changes = {
        "mode": "instance" if args.instance else None,
        "ignore_labels": None if args.ignore_labels is None else tuple(args.ignore_labels),
        "thresholds": None if args.thresholds is None else tuple(args.thresholds),
        "slice_axis": args.per_slice,
        "class_names": None if not args.class_names else dict(enumerate(args.class_names)),
        "surface": args.surface,
        "spacing": None if args.spacing is None else tuple(args.spacing),
        "tolerance": args.tolerance,
        "unit": args.unit,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if hasattr(args, "background"):  # given, possibly as 'none'
        changes["background"] = args.background
    return config.with_(**changes)


def _with_file_spacing(config, path, header, ndim: int):
    """``config`` with the voxel size (and its unit, when one) that the file at
    ``path`` declares: an OME-Zarr image's scale or a calibrated TIFF's pixel size
    (``header``: its ``_headers.file_header``, read once)."""
    from .._headers import source_transform
    from .._units import unit_symbol
    from ..arrays.spacing import spacing_from_scale

    transform = source_transform(path, header)
    spacing = None if transform is None else spacing_from_scale(transform[0], range(ndim))
    if transform is None or spacing is None:
        return config
    units = {unit for unit in transform[2] if unit is not None}
    unit = unit_symbol(units.pop()) if len(units) == 1 else None
    return config.with_(spacing=spacing, unit=config.unit or unit)


def run(args: argparse.Namespace) -> int:
    """Run ``napari-seg evaluate`` with parsed ``args``; the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0 on success, 1 when a pair of a folder failed (each is reported on
        stderr; the others are still scored and pooled).

    Raises
    ------
    ValueError, OSError
        For a usage error; ``main`` prints it in one line.
    """
    from .._dataset_json import dataset_class_names
    from .._datasets import PROBABILITIES_SUFFIX, name_key, pair_files, prediction_tail

    config = build_config(args)
    _check_csv(args)
    described = dataset_class_names(args.gt)  # a Decathlon or nnU-Net dataset's
    if described is not None and not config.class_names:
        config = config.with_(class_names=dict(enumerate(described)))
    config = with_dataset_ignore(config, described, "evaluate")  # nnU-Net's "ignore"
    found = pair_files(
        args.pred,
        args.gt,
        suffix=args.labels_suffix,
        image_suffix=prediction_tail(args.pred, objects=config.mode == "instance"),
        skip=(PROBABILITIES_SUFFIX,),
    )
    segments = None if config.class_names else shared_segment_names([g for _, g in found.pairs])
    if segments is not None:  # 3D Slicer segmentations as the ground truth
        config = config.with_(class_names=dict(enumerate(segments)))
    if found.pairs == [(args.pred, args.gt)]:  # two files
        result = _evaluate_files(args.pred, args.gt, config)
        _warn(result, "")
        if args.json:
            print(json.dumps(result.to_dict(), allow_nan=False))
        else:
            _print_one(result, f"{args.pred} against {args.gt} ({config.mode})")
        _write_csv(args, result.rows())
        return 0
    for message in found.left_out("prediction", "ground-truth file"):
        print(f"warning: {message}", file=sys.stderr)
    names, results, failed = [], [], 0
    for pred, gt in found.pairs:
        try:
            result = _evaluate_files(pred, gt, config)
        except INPUT_ERRORS as exc:
            failed += 1
            print(f"napari-seg evaluate: error: {pred} against {gt}: {exc}", file=sys.stderr)
            continue
        names.append(name_key(gt, args.labels_suffix))
        results.append(result)
        _warn(result, f"{names[-1]}: ")
    if failed:
        print(
            f"napari-seg evaluate: {failed} of {len(found.pairs)} pair(s) failed and are "
            "not in the pooled scores",
            file=sys.stderr,
        )
    if results:
        _print_dataset(names, results, args, config)
    return EXIT_ERROR if failed else 0


def _evaluate_files(pred_path: Path, gt_path: Path, config: EvaluateConfig) -> Evaluation:
    """Read a pair of label files and score them, with the files' spacing for surfaces."""
    from .._headers import file_header
    from .._units import unit_symbol
    from ..metrics import evaluate

    pred, pred_geometry = _read(pred_path, "--pred")
    gt, geometry = _read(gt_path, "--gt")
    pred, gt = _on_one_grid((pred, pred_geometry, pred_path), (gt, geometry, gt_path))
    needed = config.slice_axis is None or config.surface
    # each TIFF header read once, and only for what it is needed for
    files = [(path, file_header(path)) for path in (gt_path, pred_path)] if needed else []
    time = _time_axis(files, len(gt.shape), geometry)
    if config.slice_axis is None:  # a time-lapse is also scored frame by frame
        config = config.with_(slice_axis=time)
    if time is not None and config.slice_axis is not None:
        # surfaces frame by frame: no distance across time
        config = config.with_(series=config.slice_axis % len(gt.shape) == time)
    geometry = geometry if geometry is not None else pred_geometry  # the other's grid
    if config.surface and config.spacing is None and geometry is not None:
        unit = config.unit or unit_symbol(geometry.unit)
        config = config.with_(spacing=geometry.spacing, unit=unit)
    elif config.surface and config.spacing is None:  # an OME-Zarr or calibrated TIFF's
        # the ground truth's, else the prediction's (napari-seg's labels keep their image's)
        for path, header in files:
            if config.spacing is None:
                config = _with_file_spacing(config, path, header, len(gt.shape))
    return evaluate(pred, gt, config)


def _on_one_grid(pred: tuple, gt: tuple) -> tuple:
    """The prediction and ground truth (each ``(array, geometry, path)``) on one voxel
    grid (:func:`~napari_seg.medical.pair_on_grid`), with a note when one covers a
    window of the other's grid (a cropped 3D Slicer segmentation, a DICOM SEG of some
    slices) and is placed on it, or has no grid (a TIFF beside a NIfTI file); refused
    on different grids."""
    from ..medical import pair_on_grid

    if (pred[1] is None) != (gt[1] is None):
        grid, plain = (pred, gt) if gt[1] is None else (gt, pred)
        print(f"napari-seg evaluate: {plain[2].name} has no voxel grid: it is compared with "
              f"{grid[2].name} voxel by voxel, as napari-seg reads {grid[2].name} (axial "
              "slices along the first axis)", file=sys.stderr)  # fmt: skip
    if pred[1] is None or gt[1] is None:
        return pred[0], gt[0]
    paired = pair_on_grid(pred[0], pred[1], gt[0], gt[1], (pred[2].name, gt[2].name))
    if paired[0] is not pred[0] or paired[1] is not gt[0]:
        small, large = (pred[2], gt[2]) if paired[0] is not pred[0] else (gt[2], pred[2])
        print(f"napari-seg evaluate: {small.name} covers part of the grid of "
              f"{large.name}: scored on that grid, 0 elsewhere", file=sys.stderr)  # fmt: skip
    return paired


def _time_axis(files, ndim: int, geometry=None) -> int | None:
    """The one ``T`` axis of the label maps: a 4D medical volume's first (a cine MRI
    segmented frame by frame: label maps have no channels, ``medical.volume_axes``),
    else the one the first of ``files`` (path, TIFF header) naming its axes names (a
    TIFF time-lapse: Fiji's, or napari-seg's labels of one; an OME-Zarr image's time
    axis), or None."""
    from .._headers import file_axes
    from ..arrays.named import named_time_axis
    from ..medical import volume_axes

    if geometry is not None:
        return named_time_axis(volume_axes(ndim, labels_ndim=ndim))
    for path, header in files:
        axes = file_axes(path, header, ndim)
        if axes:
            return named_time_axis(axes)
    return None


def _warn(result: Evaluation, where: str) -> None:
    for message in result.warnings:
        print(f"warning: {where}{message}", file=sys.stderr)


def _print_one(result: Evaluation, title: str) -> None:
    from .._units import format_spacing
    from ..metrics import format_scores, surface_rows
    from ..metrics._report import format_table

    print(title)
    print(format_scores(result.scores, result.names()))
    if result.surface is not None:
        rows = surface_rows(result.surface, result.names())
        series = result.surface.series
        kind = "volumes" if len(result.surface.spacing) == 3 else "planes"
        each = f", the mean of {series} {kind}" if series > 1 else ""
        spacing = format_spacing(result.surface.spacing, result.surface.unit)
        print(f"\nsurfaces, spacing {spacing}{each}:")
        print(format_table(rows, list(rows[0]) if rows else ["class"]))
    summary = result.slice_summary()
    if summary is not None:
        what = "mean IoU (no background)" if result.config.mode == "semantic" else "accuracy"
        values = " ".join("-" if v != v else f"{v:.3f}" for v in summary)
        unit = "frame" if result.config.series else "slice"  # a time axis: frames
        print(f"\nper {unit} along axis {result.config.slice_axis}, {what}: {values}")
    pooled = result.pooled_slices
    if pooled is not None:
        planes = len(cast(tuple, result.slices))
        print(f"\nobjects matched plane by plane, all {planes} planes pooled:")
        print(format_scores(pooled))


def _print_dataset(names: list[str], results: list, args, config: EvaluateConfig) -> None:
    from ..metrics import format_scores, pool_evaluations, surface_rows
    from ..metrics._report import format_table

    dataset = pool_evaluations(names, results)
    _write_csv(args, dataset.rows())
    if args.json:
        print(json.dumps(dataset.to_dict(), allow_nan=False))
        return
    rows = dataset.rows()
    print(f"{len(names)} pairs, {args.pred} against {args.gt} ({config.mode})")
    print(format_table(rows, list(rows[0])))
    pooled = dataset.pooled
    print(f"\nall {len(names)} pairs pooled:")
    print(format_scores(pooled.scores, pooled.names()))
    if dataset.pooled_slices is not None:
        print("\nobjects matched plane by plane, all planes of all pairs pooled:")
        print(format_scores(dataset.pooled_slices))
    if pooled.surface is not None:
        rows = surface_rows(pooled.surface, pooled.names())
        print("\nsurfaces, per-class means over the pairs that hold the class:")
        print(format_table(rows, list(rows[0]) if rows else ["class"]))
    for message in pooled.warnings:
        print(f"warning: pooled: {message}", file=sys.stderr)


def _check_csv(args: argparse.Namespace) -> None:
    """Refuse, before any work, a --csv file that may not be written."""
    from .._atomic import check_target

    if args.csv is None:
        return
    if args.csv.suffix.lower() != ".csv":
        raise ValueError(f"--csv writes a .csv file, got {args.csv.name}")
    check_target(args.csv, overwrite=args.overwrite, inputs=(args.pred, args.gt))


def _write_csv(args: argparse.Namespace, rows: list[dict]) -> None:
    """The table's rows into --csv, written atomically."""
    from .._atomic import atomic_write
    from ..metrics import format_csv

    if args.csv is None:
        return
    with atomic_write(args.csv, overwrite=args.overwrite) as handle:
        handle.write(format_csv(rows).encode())
    print(f"napari-seg evaluate: wrote {args.csv}", file=sys.stderr)


def _read(path: Path, flag: str):
    from .._io import read_labels

    try:
        return read_labels(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{flag}: {exc}") from None
