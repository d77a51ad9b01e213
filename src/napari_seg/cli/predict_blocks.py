"""``napari-seg predict --output-format ome-zarr [--cluster ...]``: block-wise runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .._paths import user_path
from ._common import check_outputs, drive, for_each_input

if TYPE_CHECKING:
    from ..inference import PredictConfig


def add_scale_out_arguments(p: argparse.ArgumentParser) -> None:
    """Add the block-wise, cluster and OME-Zarr options to ``predict``'s parser.

    Parameters
    ----------
    p : argparse.ArgumentParser
    """
    p.add_argument(
        "--output-format",
        choices=("auto", "ome-zarr", "dicom-seg", "rtstruct"),
        default="auto",
        help="auto: TIFF, or a medical input's own format (NIfTI, NRRD, MetaImage; NIfTI "
        "for DICOM); ome-zarr: NAME_labels.ome.zarr, an NGFF 0.4 label image with a "
        "pyramid, class colours and names, written block by block; dicom-seg (DICOM "
        "series inputs): NAME_labels.dcm, a DICOM SEG of the series, a segment per class "
        "but the background, which PACS and viewers load over it; rtstruct (DICOM series "
        "inputs): NAME_labels.dcm, an RT structure set of the series, an ROI of contours "
        "per class id but the background, as radiotherapy planning systems import them",
    )
    p.add_argument(
        "--cluster",
        help="run the blocks on a Dask cluster: 'local' (one worker per core), 'local:N' or "
        "a scheduler address (tcp://host:8786); implies --output-format ome-zarr",
    )
    p.add_argument(
        "--cluster-config",
        type=user_path,
        metavar="FILE",
        help="a dask-jobqueue YAML file (SLURM, PBS, LSF...); implies --output-format ome-zarr",
    )
    p.add_argument("--block", type=int, help="block side in pixels (default: 8192 2D, 512 3D)")
    p.add_argument(
        "--into-source",
        nargs="?",
        const="napari-seg",
        type=_labels_name,
        metavar="NAME",
        help="write the labels into each OME-Zarr input's labels/NAME (default NAME: "
        "napari-seg) instead of --output; implies --output-format ome-zarr",
    )


def _labels_name(text: str) -> str:
    """``--into-source``'s NAME, refused when it is a path (a zarr, or with a folder:
    a labels group's name has neither; or a file here): the option's value is
    optional, so ``--into-source plate.ome.zarr`` took the image for the name and left
    argparse to say only that INPUT is missing."""
    path_like = text.rstrip("/\\").lower().endswith(".zarr") or "/" in text or "\\" in text
    if path_like or Path(text).is_file():  # a folder of that name may be a name
        raise argparse.ArgumentTypeError(
            f"{text!r} is an input, not a labels name: give the name first "
            f"(--into-source NAME {text}) or put --into-source after the inputs"
        )
    return text


def run_blocks(args: argparse.Namespace, config: PredictConfig, stems: list[str]) -> int:
    """Segment every input block by block into ``NAME_labels.ome.zarr``; the exit status.

    Parameters
    ----------
    args : argparse.Namespace
    config : PredictConfig
    stems : list of str
        Output name stems of the inputs.

    Returns
    -------
    int
        0 on success, 1 when an input failed.

    Raises
    ------
    ValueError
        For settings a block-wise run cannot take.
    MissingExtraError
        Without the ``cluster`` extra, which writes and checks OME-Zarr.
    """
    from ..inference.blocks import check_block
    from ..medical import OUTPUT_TAILS
    from ..scaleout.omezarr import check_available

    check_block(args.block)  # before any file is read
    check_available()  # before a cluster starts or the output folder is made
    if config.probabilities and args.into_source:
        raise ValueError("--probabilities goes to NAME_probabilities.ome.zarr: give --output, "
                         "not --into-source")  # fmt: skip
    if args.into_source:
        from ..scaleout.run import source_labels_path

        outputs = [source_labels_path(p, args.into_source) for p in args.inputs]
    else:
        tail = OUTPUT_TAILS["labels"]
        outputs = [args.output / f"{stem}{tail}.ome.zarr" for stem in stems]
    from ..scaleout.run import is_done

    # An output this same command finished before (a folder run stopped and started
    # again) is skipped; any other existing output is never replaced.
    finished = [
        out
        for source, out in zip(args.inputs, outputs, strict=True)
        if out.exists() and is_done(args.model, source, out, config, args.block)
    ]
    check_outputs(outputs, args.inputs, args.overwrite, keep=finished, folders=True)
    client = None
    if args.cluster or args.cluster_config:
        from ..scaleout.cluster import connect

        # the cluster's own logs with --verbose
        client = connect(args.cluster, config_file=args.cluster_config, quiet=not args.verbose)
        print(f"napari-seg predict: cluster dashboard at {client.dashboard_link}", flush=True)
    if args.output is not None and not args.into_source:
        args.output.mkdir(parents=True, exist_ok=True)

    items = list(zip(args.inputs, outputs, strict=True))
    # Many files on a cluster: several at once, so small files keep every worker busy.
    parallel = 1 if client is None or len(items) == 1 else 2 * _workers(client)

    def work(item: tuple[Path, Path]) -> str:
        return _one(item[0], item[1], config, args, client, quiet=args.quiet or parallel > 1)

    try:
        return for_each_input("predict", items, work, lambda item: item[0], parallel=parallel)
    finally:
        if client is not None:
            made = client.cluster if not args.cluster or args.cluster.startswith("local") else None
            client.close()
            if made is not None:  # a LocalCluster or queue jobs started here
                made.close()


def _workers(client) -> int:
    return max(1, len(client.scheduler_info()["workers"]))


def _one(source: Path, output: Path, config, args, client, *, quiet: bool) -> str:
    from ..inference.events import PredictWarning
    from ..scaleout.run import BlockDone, BlocksStarted, iter_predict_blocks

    def show(event, bar) -> None:
        if isinstance(event, PredictWarning):
            bar.note(f"napari-seg predict: warning: {source}: {event.message}")
        elif isinstance(event, BlocksStarted):
            where = f"{event.workers} worker(s)" if client is not None else "this process"
            bar.start(event.total, f"{source.name} ({where})")
            if event.skipped:
                bar.note(f"napari-seg predict: {event.skipped} block(s) finished before, skipped")
            bar.update(event.skipped)
        elif isinstance(event, BlockDone):
            eta = f", ETA {event.eta_seconds:.0f} s" if event.eta_seconds is not None else ""
            bar.update(event.done, event.total, f"{event.pixels_per_second / 1e6:.2f} MPx/s{eta}")

    jobs = iter_predict_blocks(args.model, source, output, config, block=args.block,
                               client=client, overwrite=args.overwrite)  # fmt: skip
    result = drive(jobs, show, quiet=quiet)
    if result.skipped:
        return f"{source} -> {result.output} (finished by an earlier run of this command)"
    levels = "1 level" if result.levels == 1 else f"{result.levels} levels"
    return f"{source} -> {result.output} ({levels})"
