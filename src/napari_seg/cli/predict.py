"""``napari-seg predict``: segment image files in batch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .._paths import user_path
from ._common import (
    add_channel_argument,
    add_spacing_unit_argument,
    axes_argument,
    check_output_folder,
    check_outputs,
    drive,
    for_each_input,
    pick_channel,
    pixels_argument,
    read_config,
    size_argument,
)
from .predict_blocks import add_scale_out_arguments

#: The ``--output-format`` choices written as a DICOM file of the input series, and
#: what that file is.
DICOM_OUTPUTS = {"dicom-seg": "SEG", "rtstruct": "RT structure set"}

if TYPE_CHECKING:
    from ..inference import PredictConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand to the parser's subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "predict",
        help="segment image files into labels TIFFs",
        description=(
            "Segment TIFF, PNG/JPEG, NumPy (.npy) or zarr images tile by tile. Writes "
            "NAME_labels.tif (and NAME_probabilities.tif with --probabilities) per input; "
            "medical volumes keep their format and grid: NIfTI gives NAME_labels.nii.gz, "
            "NRRD NAME_labels.nrrd, MetaImage NAME_labels.mha, and a DICOM series (a "
            "folder, or one file of a series, which picks that series of a folder of "
            "several) NAME_labels.nii.gz with the series' affine."
        ),
    )
    p.add_argument(
        "inputs", nargs="+", type=user_path, metavar="INPUT",
        help="image files, zarr stores, or folders of image files",
    )  # fmt: skip
    p.add_argument(
        "--model",
        required=True,
        type=user_path,
        action="append",
        help="model file (.safetensors); several (--model A --model B) predict as an "
        "ensemble: their softmax probabilities averaged, as nnU-Net's folds",
    )
    p.add_argument(
        "--output", "--out", type=user_path, help="output folder (created; --out for short)"
    )
    p.add_argument("--config", type=user_path, help="JSON or YAML file of prediction settings")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    _add_tiling_arguments(p)
    p.add_argument("--channel-axis", type=int, help="channel axis of the inputs (detected)")
    add_channel_argument(p)
    p.add_argument(
        "--axis",
        type=axes_argument,
        help="axis of a stack to segment slice by slice along, e.g. 0 (several: 0,1)",
    )
    p.add_argument(
        "--spacing",
        type=size_argument,
        nargs="+",
        metavar="SIZE",
        help="pixel/voxel size of the inputs along the axes the model sees (default: a "
        "NIfTI/DICOM input's own, an OME-Zarr image's scale unless it is 1 everywhere, or a "
        "calibrated TIFF's pixel size: ImageJ hyperstack or OME-TIFF); "
        "resampled to the model's spacing when it differs",
    )
    add_spacing_unit_argument(p)
    _add_output_arguments(p)
    add_scale_out_arguments(p)
    p.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _add_tiling_arguments(p: argparse.ArgumentParser) -> None:
    """Tiles, batches, precision and blending, with the config's defaults."""
    from ..arrays import PRECISIONS
    from ..inference import PredictConfig
    from ..inference.tiling import BLENDING_MODES

    p.add_argument("--tile", type=int, help="tile side in pixels (default: automatic)")
    p.add_argument(
        "--overlap", type=pixels_argument, help="overlap between tiles in pixels (default: tile/4)"
    )
    p.add_argument("--batch", type=int, dest="batch_size", help="tiles per forward pass")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto: bf16 on CUDA (fp16 before Ampere) and on CPUs with native bf16, else "
        f"fp32 (default: {PredictConfig.precision})",
    )
    p.add_argument(
        "--blending",
        choices=BLENDING_MODES,
        help=f"window that blends overlapping tiles (default: {PredictConfig.blending})",
    )


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    """What a run writes besides the labels, and how hard it tries."""
    p.add_argument("--probabilities", action="store_true", default=None, help="also write them")
    p.add_argument(
        "--objects",
        action="store_true",
        help="also write NAME_objects.tif, each object its own id: objects from boundaries "
        "for a model trained on instance labels with boundaries, else the connected "
        "components of every class but the background; a stack segmented slice by slice "
        "gets the objects of each slice (a time series' objects never span two frames)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time augmentation by mirroring, as nnU-Net: each tile also runs flipped "
        "along every combination of its axes (4 passes in 2D, 8 in 3D) and the "
        "probabilities are averaged (slower by that factor)",
    )


def build_config(args: argparse.Namespace) -> PredictConfig:
    """The job's PredictConfig: the --config file (JSON or YAML), then the flags given.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    PredictConfig

    Raises
    ------
    ValueError, TypeError
        For invalid settings (the message names them).
    """
    from ..inference import PredictConfig

    config = read_config(PredictConfig, args.config)
    changes = {
        name: getattr(args, name)
        for name in (
            "device",
            "tile",
            "overlap",
            "batch_size",
            "precision",
            "blending",
            "channel_axis",
            "probabilities",
            "threads",
            "tta",
        )
        if getattr(args, name) is not None
    }
    if args.axis is not None:
        changes["axis"] = args.axis
    if args.spacing is not None:
        changes["spacing"] = tuple(args.spacing)
    if args.spacing_unit is not None:
        changes["spacing_unit"] = args.spacing_unit
    return config.with_(**changes)


def run(args: argparse.Namespace) -> int:
    """Run ``napari-seg predict`` with parsed ``args``; the exit status.

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
    from .._device import resolve_device
    from .._io import output_stem
    from ..medical import OUTPUT_TAILS, check_seg_numbers, label_path
    from ..models import load_models
    from ..refine import objects_job

    config = build_config(args)
    args.inputs = _inputs(args.inputs)
    _settle_output_format(args)
    if args.output is None and not args.into_source:
        raise ValueError("give --output (a folder), or --into-source for OME-Zarr inputs")
    stems = [output_stem(p) for p in args.inputs]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise ValueError(f"several inputs would write the same outputs: {', '.join(clashes)}")
    if args.output is not None:
        check_output_folder(args.output)
    if args.output_format == "ome-zarr":
        return _run_blocks(args, config, stems)
    wanted = ["labels", *(["probabilities"] if config.probabilities else []),
              *(["objects"] if args.objects else [])]  # fmt: skip
    outputs = [
        {what: label_path(args.output, stem, path, what) for what in wanted}
        for stem, path in zip(stems, args.inputs, strict=True)
    ]
    if args.output_format in DICOM_OUTPUTS:  # the labels as a SEG or RTSTRUCT; others as ever
        for stem, out in zip(stems, outputs, strict=True):
            out["labels"] = args.output / f"{stem}{OUTPUT_TAILS['labels']}.dcm"
    check_outputs([p for out in outputs for p in out.values()], args.inputs, args.overwrite)
    resolve_device(config.device)  # once, not as each input's failure (a run's workers: theirs)
    model = load_models(args.model)
    if len(args.model) > 1:
        _say_ensemble(len(args.model))
    if args.output_format == "dicom-seg":  # before any work: classes a SEG can number
        check_seg_numbers(_segments(model.spec))
    if args.objects:  # before any work: a model without a background is refused
        objects_job(model.spec.class_names, background=model.spec.background)
    args.output.mkdir(parents=True, exist_ok=True)

    def work(item: tuple[Path, dict[str, Path]]) -> str:
        _predict_one(model, item[0], item[1], config, args)
        return f"{item[0]} -> {', '.join(str(w) for w in item[1].values())}"

    items = list(zip(args.inputs, outputs, strict=True))
    return for_each_input("predict", items, work, lambda item: item[0])


def _settle_output_format(args: argparse.Namespace) -> None:
    """The block-wise options imply OME-Zarr (refused with a DICOM SEG or RTSTRUCT,
    written whole); those need DICOM series inputs of one volume (they reference each
    slice's image): others refused before any work."""
    from .._datasets import few_names
    from ..medical import dicom_slices, is_dicom

    blocks = args.cluster or args.cluster_config or args.block is not None or args.into_source
    kind = args.output_format
    if blocks and kind in DICOM_OUTPUTS:
        raise ValueError(
            f"--output-format {kind} writes each {DICOM_OUTPUTS[kind]} whole, not block by "
            "block: leave out --cluster, --cluster-config, --block and --into-source"
        )
    if blocks:
        args.output_format = "ome-zarr"
    if kind not in DICOM_OUTPUTS:
        return
    others = [p for p in args.inputs if not is_dicom(p)]
    if others:
        raise ValueError(
            f"--output-format {kind} writes the {DICOM_OUTPUTS[kind]} of a DICOM series; these "
            f"inputs are none: {few_names(others)}"
        )
    for path in args.inputs:  # several echoes or time points: refused
        dicom_slices(path)


def _segments(spec) -> dict:
    """A model's classes as the segments of its labels (all but the background)."""
    from ..medical import class_segments

    return class_segments(spec.class_names, spec.class_colors, spec.background)


def _say_ensemble(n: int) -> None:
    print(f"napari-seg predict: an ensemble of {n} models (their probabilities averaged)",
          file=sys.stderr)  # fmt: skip


def _inputs(paths: list[Path]) -> list[Path]:
    """The image files of ``paths``: a folder's files without the label files that lie
    beside their images there (``a_labels.tif`` beside ``a.tif``: a dataset's folder,
    or one ``predict`` already wrote into), and without an nnU-Net case's second,
    third... channel files, which its first reads. Files named on the command line
    stay, but for the files of one DICOM series (``ct/*.dcm``): its first stands for
    it."""
    from .._dataset_json import later_channel_files
    from .._datasets import few_names, outputs_beside_images
    from .._io import expand_inputs, one_file_per_series
    from ..medical import is_segmentation

    inputs: list[Path] = []
    beside: list[Path] = []
    for path in paths:
        files = expand_inputs([path])
        if files != [path]:
            outputs = outputs_beside_images(files)
            beside += outputs
            skipped = {*outputs, *later_channel_files(files)}
            files = [p for p in files if p not in skipped]
        inputs += files
    if beside:
        print(
            f"napari-seg predict: {len(beside)} label file(s) beside their images are not "
            f"inputs: {few_names(beside)}",
            file=sys.stderr,
        )
    inputs = one_file_per_series(inputs)
    segs = [p for p in inputs if is_segmentation(p)]  # a SEG or an RT structure set
    images = [p for p in inputs if p not in segs]
    if segs and not images:
        raise ValueError(
            f"{few_names(segs)}: DICOM segmentations, no images to segment; give the "
            "image series (its folder, or one of its files)"
        )
    if segs:  # a study's segmentation, named with its slices (ct/*.dcm)
        print(f"napari-seg predict: DICOM SEG and RTSTRUCT files are labels, not inputs: "
              f"{few_names(segs)}",
              file=sys.stderr)  # fmt: skip
    return images


def _run_blocks(args: argparse.Namespace, config, stems: list[str]) -> int:
    """Predict into OME-Zarr block by block (``predict_blocks.run_blocks``), after the
    checks that need no block: the ensemble's members agree; no option that needs a
    whole image in memory."""
    from ..models import check_members, read_model_spec
    from .predict_blocks import run_blocks

    if len(args.model) > 1:  # the members' headers are checked before any block runs
        check_members([read_model_spec(path) for path in args.model])
        _say_ensemble(len(args.model))
    if args.channel is not None:
        raise ValueError(
            "--channel picks a channel in memory, not block by block (OME-Zarr): save "
            "the channel as an image of its own"
        )
    if args.objects:
        raise ValueError(
            "--objects needs each whole prediction in memory; it is not written block "
            "by block (OME-Zarr): run napari-seg refine on TIFF or NIfTI labels instead"
        )
    return run_blocks(args, config, stems)


def _predict_one(model, path: Path, outputs: dict[str, Path], config, args) -> None:
    from .._dataset_json import named_channels
    from .._headers import file_header, source_transform
    from .._io import read_with_geometry
    from ..inference import PredictProgress, PredictStarted, SettingsAdjusted, iter_predict
    from ..inference.blocks import layout_of
    from ..inference.file_settings import with_file_layout, with_volume_geometry

    def show(event, bar) -> None:
        if isinstance(event, PredictStarted):
            where = f"{event.device}, {event.precision}"
            if event.mirrors > 1:
                where += f", mirrored x{event.mirrors}"
            if event.resampled is not None:
                where += f", at the model's voxel size: {'x'.join(map(str, event.resampled))}"
            bar.start(event.tiles_total, f"{path.name} ({where})")
            bar.update(0)
        elif isinstance(event, PredictProgress):
            bar.update(event.tiles_done, event.tiles_total)
        elif isinstance(event, SettingsAdjusted):
            bar.note(f"napari-seg predict: {event.reason}")
        else:
            bar.note(f"napari-seg predict: warning: {path}: {event.message}")

    image, geometry = read_with_geometry(path)
    config = with_volume_geometry(model, image, config, geometry, named_channels(path))
    header = file_header(path)  # a TIFF's or OME-Zarr's axes and pixel size, read once
    transform = source_transform(path, header)
    if args.channel is not None:  # one channel, read lazily; the labels lose that axis
        image, header, transform = pick_channel(
            image, args.channel, config.channel_axis, header, transform
        )
        config = config.with_(channel_axis=None)
    config = with_file_layout(model, image, config, path, header, transform)
    layout = layout_of(model, tuple(image.shape), config)
    try:
        result = drive(iter_predict(model, image, config), show, quiet=args.quiet)
    except MemoryError as exc:
        # The whole output is built in memory here; the block-wise path is not.
        raise MemoryError(f"{exc}; --output-format ome-zarr writes block by block") from exc
    keep = {"geometry": geometry, "overwrite": args.overwrite, **_labels_header(header, layout)}
    _write_outputs(outputs, result, model.spec, layout, keep, source=path,
                   kind=args.output_format)  # fmt: skip


def _labels_header(header, layout) -> dict:
    """The labels are on the image's grid: a TIFF's pixel size (its calibration) and
    axis letters go with them, less the channel axis the model consumed."""
    if header is None:
        return {}
    header = header.without(layout.channel_axis)
    return {"calibration": header.calibration, "axes": header.axes}


def _write_outputs(
    outputs: dict[str, Path], result, spec, layout, keep: dict, source: Path, kind: str
) -> None:
    """Write the labels (a DICOM SEG or RT structure set of ``source`` for the
    ``kind`` of output that says so), and the probabilities and objects when asked,
    with ``keep`` (the source's geometry or calibration, and whether to overwrite)."""
    from .._io_write import write_labels, write_probabilities
    from ..medical import write_dicom_seg, write_rtstruct
    from ..refine import number_objects

    metadata = {"classes": list(spec.class_names), "model": spec.architecture}
    segments = _segments(spec)
    if kind in DICOM_OUTPUTS:
        writer = write_rtstruct if kind == "rtstruct" else write_dicom_seg
        writer(outputs["labels"], result.labels, source, segments,
               algorithm=spec.architecture, overwrite=keep["overwrite"])  # fmt: skip
    else:
        write_labels(outputs["labels"], result.labels, metadata=metadata, segments=segments,
                     **keep)  # fmt: skip
    if result.probabilities is not None:
        write_probabilities(outputs["probabilities"], result.probabilities,
                            class_names=spec.class_names, **keep)  # fmt: skip
    if "objects" in outputs:
        objects = number_objects(
            result.labels,
            spec.class_names,
            background=spec.background,
            slice_axes=layout.output_slice_axes,
        )
        write_labels(outputs["objects"], objects, metadata={"model": spec.architecture}, **keep)
