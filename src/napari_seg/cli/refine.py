"""``napari-seg refine``: post-process label files with one operation or a pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._paths import user_path
from ._common import (
    axes_argument,
    check_output_folder,
    check_outputs,
    drive,
    for_each_input,
    read_config,
)

if TYPE_CHECKING:
    from ..refine import RefineConfig

INPUT_NAMES = ("image", "probabilities", "region", "reference")
LABEL_SUFFIXES = (
    ".tif",
    ".tiff",
    ".npy",
    ".png",
    ".zarr",
    ".nii",
    ".nii.gz",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
)


def _all_params():
    """Every operation parameter, once (the same name means the same thing everywhere)."""
    from ..refine import OPERATIONS

    seen: dict[str, list[str]] = {}
    for op in OPERATIONS.values():
        for param in op.params:
            seen.setdefault(param.name, []).append(op.name)
    return seen


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``refine`` subcommand to the parser's subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "refine",
        help="post-process label files (morphology, instances, classes, CRF)",
        description=(
            "Apply one refine operation (--op NAME with its --PARAM VALUE options) or a "
            "pipeline file (--pipeline, JSON or YAML) to a label file, or to every label "
            "file of a folder. 'napari-seg refine --list' lists the operations."
        ),
    )
    p.add_argument("input", nargs="?", type=user_path, metavar="INPUT", help="label file or folder")
    p.add_argument("output", nargs="?", type=user_path, metavar="OUTPUT", help="file or folder")
    p.add_argument("--op", help="operation name (see --list)")
    p.add_argument(
        "--pipeline",
        "--config",
        dest="pipeline",
        type=user_path,
        help="JSON/YAML file of steps (instead of --op); --config is the same option",
    )
    p.add_argument("--list", action="store_true", help="list operations and their parameters")
    p.add_argument(
        "--per-slice",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="3D input: each plane in 2D (default for a TIFF time-lapse: each frame, along "
        "its T axis; --no-per-slice refines it as one volume)",
    )
    p.add_argument(
        "--axis",
        type=axes_argument,
        help="slice axis, refined slice by slice (implies --per-slice); several separated "
        "by commas (0,1: each 2D plane of a TZYX stack)",
    )
    p.add_argument("--image", type=user_path, help="image file (or folder) for crf")
    p.add_argument(
        "--probabilities", type=user_path, help="class-first probabilities (crf, watershed)"
    )
    p.add_argument(
        "--region", type=user_path, help="mask file: nonzero pixels are the region (set_class)"
    )
    p.add_argument("--reference", type=user_path, help="semantic labels (instances_to_semantic)")
    p.add_argument(
        "--channel-axis", type=int, help="channel axis of --image (default: a TIFF's C axis)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that exist (OUTPUT may then be INPUT itself)",
    )
    params = p.add_argument_group("operation parameters (each applies to the operations named)")
    for name, ops in _all_params().items():
        params.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"param_{name}",
            metavar="VALUE",
            help=", ".join(ops),
        )
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> RefineConfig:
    """The job's RefineConfig: the --pipeline file or --op with its parameters, then flags.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    RefineConfig

    Raises
    ------
    ValueError, TypeError
        For a missing or doubled operation, parameters the operation does not take,
        or invalid values.
    """
    from ..refine import RefineConfig, RefineStep, get_operation

    given = {
        key[len("param_") :]: value
        for key, value in vars(args).items()
        if key.startswith("param_") and value is not None
    }
    if (args.op is None) == (args.pipeline is None):
        raise ValueError("give either --op NAME or --pipeline FILE")
    if args.pipeline is not None:
        if given:
            raise ValueError(
                f"--{next(iter(given)).replace('_', '-')} needs --op; a pipeline file holds "
                "its own parameters"
            )
        config = read_config(RefineConfig, args.pipeline, flag="--pipeline")
    else:
        op = get_operation(args.op)
        unknown = sorted(set(given) - set(op.param_map))
        if unknown:
            flags = ", ".join(f"--{u.replace('_', '-')}" for u in unknown)
            raise ValueError(f"{op.name} does not take {flags}; it takes {_flags(op)}")
        params = {k: op.param_map[k].parse(v) for k, v in given.items()}
        config = RefineConfig(steps=(RefineStep(op.name, params),))
    changes = {}
    if args.per_slice is not None:
        changes["per_slice"] = args.per_slice
    if args.axis is not None:  # an axis to refine along: plane by plane
        if args.per_slice is False:
            raise ValueError("--axis names the axis to refine plane by plane: drop --no-per-slice")
        changes["axis"], changes["per_slice"] = args.axis, True
    return config.with_(**changes)


def _flags(op) -> str:
    return ", ".join(f"--{p.name.replace('_', '-')}" for p in op.params) or "no parameters"


def list_operations() -> str:
    """Every operation with its parameters, as ``napari-seg refine --list`` prints it.

    Returns
    -------
    str
    """
    from ..refine import OPERATIONS

    lines = []
    for op in OPERATIONS.values():
        inputs = [f"needs --{n}" for n in op.needs] + [f"optional --{n}" for n in op.optional]
        lines.append(f"{op.name}: {op.description}" + (f" ({', '.join(inputs)})" if inputs else ""))
        for p in op.params:
            default = "required" if p.required else f"default {p.default}"
            lines.append(f"    --{p.name.replace('_', '-'):<16} {p.help} [{default}]")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``napari-seg refine`` with parsed ``args``; the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0 on success, 1 when an input failed (each is reported on stderr).

    Raises
    ------
    ValueError, OSError
        For a usage error; ``main`` prints it in one line.
    """
    if args.list:
        print(list_operations())
        return 0
    if args.input is None or args.output is None:
        raise ValueError("give INPUT and OUTPUT (label file or folder)")
    config = build_config(args)
    _check_needs(config, args)

    pairs = _pairs(args.input, args.output)
    targets = [target for _, target in pairs]
    clashes = sorted({str(t) for t in targets if targets.count(t) > 1})
    if clashes:
        raise ValueError(f"several inputs would write the same output: {', '.join(clashes)}")
    extra = [getattr(args, name) for name in INPUT_NAMES if getattr(args, name) is not None]
    for source, target in pairs:
        if _output_kind(target) == "seg":
            _check_seg_source(source, target)
        # An output may replace its own input (with --overwrite: it is read whole first),
        # never another input of the batch.
        others = [s for s, _ in pairs if s != source] + extra
        check_outputs([target], others, args.overwrite)
    if not args.output.exists() and args.input.is_dir() and args.input.suffix != ".zarr":
        args.output.mkdir(parents=True)

    def work(pair: tuple[Path, Path]) -> str:
        changed = _refine_one(*pair, config, args)
        return f"{pair[0]} -> {pair[1]} ({changed} pixels changed)"

    return for_each_input("refine", pairs, work, lambda p: p[0])


#: What to give for each input an operation needs, named as the options are.
_NEEDS_HINT = {
    "image": "--image FILE (the image the labels were segmented from)",
    "probabilities": "--probabilities FILE (napari-seg predict --probabilities writes "
    "NAME_probabilities.tif beside NAME_labels.tif)",
    "region": "--region FILE (a mask: nonzero pixels are the region)",
    "reference": "--reference FILE (semantic labels)",
}


def _check_needs(config, args: argparse.Namespace) -> None:
    """ValueError naming the options a step needs and the command line lacks, and
    DeviceError for a step's device that is not here, before any input is read."""
    from ..refine import get_operation

    missing = [name for name in INPUT_NAMES if name in config.needs and getattr(args, name) is None]
    if missing:
        ops = sorted({s.op for s in config.steps if set(get_operation(s.op).needs) & set(missing)})
        raise ValueError(f"{', '.join(ops)} needs {' and '.join(_NEEDS_HINT[n] for n in missing)}")
    devices = {s.params["device"] for s in config.steps if "device" in s.params}
    if devices:  # torch: only for a step on a device (crf)
        from .._device import resolve_device

        for device in devices:
            resolve_device(device)  # once, not as each input's failure


def _pairs(source: Path, target: Path) -> list[tuple[Path, Path]]:
    from .._datasets import (
        PROBABILITIES_SUFFIX,
        few_names,
        images_beside_labels,
        outputs_beside_images,
    )
    from .._io import output_stem
    from ..medical import label_path

    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    if not source.is_dir() or source.suffix.lower() == ".zarr":
        if target.is_dir():
            raise ValueError(f"OUTPUT {target} is a folder; give a file name for one input")
        return [(source, target)]
    files = sorted(
        p
        for p in source.iterdir()
        if p.name.lower().endswith(LABEL_SUFFIXES) and not p.name.startswith(".")
    )
    # Not labels: predict's NAME_probabilities beside NAME_labels, and a dataset's
    # images beside their NAME_labels (the intensities would be refined as class ids).
    images = images_beside_labels(files)
    if images:
        print(f"napari-seg refine: {len(images)} image(s) beside their label files are not "
              f"inputs: {few_names(images)}", file=sys.stderr)  # fmt: skip
    probabilities = {
        p for p in outputs_beside_images(files) if output_stem(p).endswith(PROBABILITIES_SUFFIX)
    }
    files = [p for p in files if p not in probabilities and p not in images]
    if not files:
        raise ValueError(f"no label files ({', '.join(LABEL_SUFFIXES)}) in {source}")
    check_output_folder(target, "OUTPUT")  # an existing file, or a name ending as one
    return [(p, label_path(target, output_stem(p), p, what="")) for p in files]


def _refine_one(source: Path, target: Path, config, args) -> int:
    from .._headers import file_axes, file_channel_axis, file_header
    from .._io import read_labels
    from ..arrays.named import named_channel_axis
    from ..medical import label_segments
    from ..refine import iter_refine

    image, geometry = read_labels(source)  # a DICOM SEG on its series' grid, when found
    series = None if geometry is None else geometry.series_file
    if _output_kind(target) == "seg" and series is None:  # before any refining
        raise ValueError(
            f"{target.name}: the series {source.name} was segmented from is not in its folder "
            "or the folders beside it, or its frames do not lie on that series' grid; a SEG "
            "references its series' slices: put the SEG beside them, or write .nii.gz instead"
        )
    header = file_header(source)  # the refined labels keep the pixel size and axes
    labels = np.array(image)  # a copy: OUTPUT may replace INPUT
    if args.per_slice is None and args.axis is None:
        config = _frame_by_frame(config, file_axes(source, header, labels.ndim), source)
    paths = {
        name: _input_path(getattr(args, name), source, name)
        for name in INPUT_NAMES
        if getattr(args, name) is not None
    }
    inputs = {name: _input_on_grid(path, source, geometry) for name, path in paths.items()}
    channel_axis = args.channel_axis
    if "image" in paths:  # a Fiji hyperstack's C axis: the CRF takes any channel count
        channel_axis = named_channel_axis(channel_axis, None, [file_channel_axis(paths["image"])])
    if "region" in inputs:
        inputs["region"] = inputs["region"] != 0

    def show(event, bar) -> None:
        if not bar.started:
            bar.start(event.total, source.name, unit="step")
        bar.update(event.done, event.total)

    events = iter_refine(labels, config, channel_axis=channel_axis, **inputs)
    result = drive(events, show, quiet=args.quiet)
    for message in result.warnings:  # a class or background the file does not hold
        print(f"napari-seg refine: warning: {source.name}: {message}", file=sys.stderr)
    # a segmentation's segments (3D Slicer's, a DICOM SEG's) name the refined classes
    # too (not objects)
    segments = {} if config.makes_instances else label_segments(source)
    if series is not None and _output_kind(target) == "seg":  # the same kind, same series
        from ..medical import is_rtstruct, rtstruct_roi_types, write_dicom_seg, write_rtstruct

        options = {"algorithm": "napari-seg refine", "overwrite": args.overwrite}
        if not is_rtstruct(source):
            write_dicom_seg(target, result.labels, series, segments, **options)
        else:  # what each ROI is (PTV, ORGAN...) kept for the planning system
            types = {} if config.makes_instances else rtstruct_roi_types(source)
            write_rtstruct(target, result.labels, series, segments, roi_types=types, **options)
    else:
        _write(target, result.labels, args.overwrite, geometry, header, segments)
    return result.changed


def _input_on_grid(path: Path, source: Path, geometry) -> np.ndarray:
    """An input image of the labels ``source``: when both are medical volumes, its
    voxels under the labels (a 3D Slicer segmentation cropped to its segments covers a
    window of its image's grid: :func:`napari_seg.medical.crop_to_grid`), refused on
    different voxel grids."""
    from .._io import read_with_geometry
    from ..medical import crop_to_grid

    array, grid = read_with_geometry(path)
    if grid is not None and geometry is not None:
        array = crop_to_grid(array, grid, geometry, (path.name, source.name))
    return np.asarray(array)


def _frame_by_frame(config: RefineConfig, axes: str | None, source: Path) -> RefineConfig:
    """``config`` refining each frame of a time-lapse apart, along the one ``T`` axis
    the file names (objects do not join across time); unchanged for other files, a
    config already per slice, or a step that needs the whole volume."""
    from ..arrays.named import named_time_axis

    axis = named_time_axis(axes)
    if config.per_slice or axis is None or config.volume_steps:
        return config
    print(f"napari-seg refine: {source.name}: a time-lapse ({axes}): each frame apart "
          "(--no-per-slice refines it as one volume)", file=sys.stderr)  # fmt: skip
    return config.with_(per_slice=True, axis=axis)


def _input_path(path: Path, source: Path, name: str) -> Path:
    """The input file, or in a folder the file that goes with ``source`` (by name)."""
    from .._datasets import LABELS_SUFFIX, PROBABILITIES_SUFFIX, name_key
    from .._io import output_stem

    if path.is_dir() and path.suffix.lower() != ".zarr":
        base = name_key(source, LABELS_SUFFIX)
        wanted = (base + PROBABILITIES_SUFFIX, base) if name == "probabilities" else (base,)
        matches = [p for w in wanted for p in sorted(path.iterdir()) if output_stem(p) == w]
        if not matches:
            raise FileNotFoundError(f"no {name} file named {' or '.join(wanted)}.* in {path}")
        path = matches[0]
    return path


def _write(
    target: Path, labels: np.ndarray, overwrite: bool, geometry=None, header=None, segments=None
) -> None:
    from .._atomic import atomic_write
    from .._io_write import write_labels

    tiff = {} if header is None else {"calibration": header.calibration, "axes": header.axes}
    if _output_kind(target) == "npy":
        with atomic_write(target, overwrite=overwrite) as handle:
            np.save(handle, labels, allow_pickle=False)
    else:
        write_labels(target, labels, geometry, overwrite=overwrite, segments=segments, **tiff)


def _output_kind(target: Path) -> str:
    """How ``target`` is written ("npy", "seg": a DICOM SEG or RT structure set, as its
    input is, or "labels": TIFF or a medical volume), or a ValueError naming the names
    refine writes: checked for every output before any input is refined, so a wrong
    name is not found after the work."""
    from ..medical import VOLUME_WRITTEN, is_volume_output

    if target.suffix.lower() == ".npy":
        return "npy"
    if target.suffix.lower() == ".dcm":
        return "seg"
    if target.name.lower().endswith((".tif", ".tiff")) or is_volume_output(target):
        return "labels"
    raise ValueError(
        f"OUTPUT must end in .tif, .tiff, .npy or {', '.join(VOLUME_WRITTEN)} (or .dcm: a "
        f"DICOM SEG or RTSTRUCT input refined into the same kind of file of its series), "
        f"got {target.name}"
    )


def _check_seg_source(source: Path, target: Path) -> None:
    """A ValueError, before any input is read, unless ``source`` is a DICOM
    segmentation (a SEG or an RT structure set): the SEG or RT structure set written to
    ``target`` references the series it was made on (found when it is read:
    :func:`_refine_one`)."""
    from ..medical import is_segmentation

    if not is_segmentation(source):
        raise ValueError(
            f"{target.name}: a .dcm OUTPUT is a DICOM SEG or RTSTRUCT (as its INPUT is) of "
            f"the series that INPUT was made on; {source.name} is neither (write .nii.gz "
            "instead)"
        )
