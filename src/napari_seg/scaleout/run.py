"""Block-wise prediction of one image file into an OME-Zarr label image, on a Dask
cluster or in this process.

The client plans the blocks and fixes the settings a single-process run would
choose (tile, overlap, batch, normalisation statistics); each task runs one
block (:func:`napari_seg.inference.blocks.iter_predict_block`) on its worker,
which loads the model once and opens the input and output itself, writes the
block's chunks and then its record. The labels are bit-identical to
single-process ``predict`` with the same settings and CPU thread count.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._paths import user_path
from ..inference import PredictConfig
from ..inference.blocks import small_block_warning
from ..inference.events import PredictWarning
from . import omezarr, records
from .worker import PROBABILITIES, BlockTask, prepare_worker, release_sources, run_block

#: Retries of a block whose task raised (a worker that dies is handled by Dask).
RETRIES = 2


def probabilities_path(output: str | os.PathLike) -> Path:
    """The probability image that goes with the label image ``output``.

    Parameters
    ----------
    output : path
        ``NAME_labels.ome.zarr`` (or any ``.ome.zarr`` folder).

    Returns
    -------
    Path
        ``NAME_probabilities.ome.zarr`` beside it.
    """
    from ..medical import OUTPUT_TAILS

    output = Path(output)
    stem = output.name.removesuffix(".ome.zarr").removesuffix(OUTPUT_TAILS["labels"])
    return output.with_name(f"{stem}{OUTPUT_TAILS['probabilities']}.ome.zarr")


@dataclass(frozen=True)
class BlocksStarted:
    """The run is planned: ``total`` blocks, ``skipped`` of them finished before."""

    total: int
    skipped: int
    workers: int
    dashboard: str | None


@dataclass(frozen=True)
class BlockDone:
    """One more block is written and recorded."""

    done: int
    total: int
    pixels_per_second: float
    eta_seconds: float | None


@dataclass(frozen=True)
class BlocksFinished:
    """The output is complete, validated and in place."""

    output: Path
    levels: int
    seconds: float
    skipped: bool = False


def iter_predict_blocks(
    model_path: str | os.PathLike | Sequence[str | os.PathLike],
    source: str | os.PathLike,
    output: str | os.PathLike,
    config: PredictConfig | None = None,
    *,
    block: int | None = None,
    client: Any = None,
    overwrite: bool = False,
) -> Generator[PredictWarning | BlocksStarted | BlockDone, None, BlocksFinished]:
    """Segment the image file ``source`` block by block into the OME-Zarr ``output``.

    Parameters
    ----------
    model_path : path or sequence of paths
        Model file (loaded safely on every worker), or the files of an ensemble
        (:func:`napari_seg.models.ensemble`: their probabilities averaged).
    source : path
        Image file or zarr array (read by region).
    output : path
        The ``.ome.zarr`` folder to create; :func:`source_labels_path` gives the
        place of a label image inside an OME-Zarr source (``labels/NAME``).
    config : PredictConfig, optional
    block : int, optional
        Block side in pixels (see :func:`~napari_seg.inference.blocks.plan_blocks`).
    client : distributed.Client, optional
        Runs the blocks on its cluster; None runs them here, one after another.
    overwrite : bool
        Replace an existing ``output``, or an unfinished run with other settings.

    Yields
    ------
    PredictWarning, BlocksStarted, BlockDone
        Warnings first: the image's intensities (NaN pixels, an image outside the model's
        intensity window), blocks smaller than the tile, or an oblique medical volume
        (OME-Zarr keeps no rotation).

    Returns
    -------
    BlocksFinished

    Raises
    ------
    ValueError
        For an input or settings a block-wise run cannot take (named).
    """
    # absolute paths: workers elsewhere need them (and may run in another folder)
    models = model_files(model_path)
    config = PredictConfig.given(config)  # a dict of settings too, as predict takes
    image_file, out = (user_path(p).resolve() for p in (source, output))
    if not overwrite and is_done(models, image_file, out, config, block):
        return BlocksFinished(out, len(open_levels(out)), 0.0, skipped=True)
    warming = []  # workers import torch while the client plans (held until the end)
    if client is not None:
        for address in client.scheduler_info()["workers"]:
            warming.append(client.submit(prepare_worker, workers=[address], pure=False))
    job = _Job.plan(models, image_file, out, config, block, overwrite)
    if (note := job.task.stats.note) is not None:  # as a single-process run says it
        yield PredictWarning(note)
    if (waste := small_block_warning(job.blocks, job.task.config["tile"])) is not None:
        yield PredictWarning(waste)
    if job.geometry["oblique"]:
        yield PredictWarning(
            "the volume is oblique (its axes are rotated from the patient's); OME-Zarr "
            "keeps a voxel size and a position, not a rotation, so the labels lie on its "
            "voxel grid, unrotated, as napari shows it: write NIfTI (without "
            "--output-format ome-zarr) to keep its affine"
        )
    start = time.perf_counter()
    pending = [b for b in job.blocks if b.number not in job.finished]
    workers = len(client.scheduler_info()["workers"]) if client is not None else 1
    dashboard = getattr(client, "dashboard_link", None) if client is not None else None
    yield BlocksStarted(len(job.blocks), len(job.blocks) - len(pending), workers, dashboard)
    done, pixels, to_do = len(job.blocks) - len(pending), 0, sum(b.pixels for b in pending)
    for number in _run(job, pending, client):
        done += 1
        pixels += job.blocks[number].pixels
        rate = pixels / max(time.perf_counter() - start, 1e-9)
        yield BlockDone(done, len(job.blocks), rate, (to_do - pixels) / rate if rate else None)
    levels = job.finish()
    del warming
    if (
        job.output.parent.name == "labels"
        and job.output.parent.parent.resolve() == Path(source).resolve()
    ):
        omezarr.list_label(job.output.parent, job.output.name)
    return BlocksFinished(job.output, levels, time.perf_counter() - start)


def is_done(
    model_path: str | os.PathLike | Sequence[str | os.PathLike],
    source: str | os.PathLike,
    output: str | os.PathLike,
    config: PredictConfig | None = None,
    block: int | None = None,
) -> bool:
    """Whether ``output`` (and its probabilities, when asked for) is the finished
    result of this very request, so that running it again can skip it.

    Parameters
    ----------
    model_path : path or sequence of paths
        As :func:`iter_predict_blocks` takes it.
    source, output : path
    config : PredictConfig, optional
    block : int, optional

    Returns
    -------
    bool
    """
    config = config or PredictConfig()
    key = _request_key(model_path, source, config, block)
    outputs = [Path(output)]
    if config.probabilities:
        outputs.append(probabilities_path(output))
    return all(omezarr.done_request(p) == key for p in outputs)


def _request_key(model_path, source, config: PredictConfig | None, block: int | None) -> str:
    """The key a finished output records and a new run compares (one rule for both)."""
    settings = (config or PredictConfig()).to_dict()
    return records.request_key(model_files(model_path), Path(source), settings, block)


def model_files(
    model_path: str | os.PathLike | Sequence[str | os.PathLike],
) -> tuple[Path, ...]:
    """A model file, or an ensemble's files, as absolute paths.

    Parameters
    ----------
    model_path : path or sequence of paths

    Returns
    -------
    tuple of Path

    Raises
    ------
    ValueError
        For an empty sequence.
    """
    if isinstance(model_path, (str, os.PathLike)):
        paths: tuple[str | os.PathLike, ...] = (model_path,)
    else:
        paths = tuple(model_path)
    if not paths:
        raise ValueError("give a model file")
    return tuple(user_path(p).resolve() for p in paths)


def open_levels(path: Path) -> list[str]:
    """The resolution levels of an OME-Zarr image (their paths, finest first).

    Parameters
    ----------
    path : Path

    Returns
    -------
    list of str
    """
    import zarr

    from .._ome_zarr import ome_zarr_datasets

    return ome_zarr_datasets(zarr.open_group(str(path), mode="r"))


def _run(job: _Job, pending: list, client: Any):
    """Numbers of the blocks as they finish (here, or as the cluster's futures complete)."""
    if client is None:
        try:
            for b in pending:
                yield run_block(job.task, b)
        finally:
            release_sources()
        return
    from distributed import as_completed

    futures = client.map(
        run_block, [job.task] * len(pending), pending,
        key=[f"{job.token}-{b.number}" for b in pending], retries=RETRIES,
    )  # fmt: skip
    try:
        for future in as_completed(futures, loop=client.loop):  # not the default client's
            yield future.result()
    finally:  # Ctrl+C or an error: stop what has not run; records stay as written
        client.cancel([f for f in futures if not f.done()])


@dataclass
class _Job:
    output: Path
    staging: Path
    blocks: list
    finished: set
    task: BlockTask
    token: str
    spec: Any
    geometry: dict
    overwrite: bool

    @classmethod
    def plan(cls, model_path: tuple[Path, ...], source, output, config, block, overwrite) -> _Job:
        from .._dataset_json import named_channels
        from .._headers import file_header, source_transform
        from .._io import read_with_geometry
        from ..inference.blocks import fixed_settings, layout_of, output_chunks, plan_blocks
        from ..inference.file_settings import with_file_layout, with_volume_geometry
        from ..models import load_models

        omezarr.check_available()
        want = bool(config and config.probabilities)
        for path in (output, probabilities_path(output)) if want else (output,):
            if path.exists() and not overwrite:
                raise ValueError(f"{path} exists; pass --overwrite to replace it")
        model = load_models(model_path)
        image, volume = read_with_geometry(source)  # a NIfTI's or DICOM series' geometry
        # The request (what resuming compares) is what was asked; the source's own
        # spacing is part of the source.
        header = file_header(source)  # a TIFF's or OME-Zarr's axes and pixel size
        # a medical volume's voxel size, origin and unit (as predict's NIfTI keeps them),
        # else what an OME-Zarr image or a calibrated TIFF declares
        transform = (
            source_transform(source, header)
            if volume is None
            else volume.placement(len(image.shape))
        )
        settings = with_volume_geometry(
            model, image, config or PredictConfig(), volume, named_channels(source)
        )
        settings = with_file_layout(model, image, settings, source, header, transform)
        fixed, stats = fixed_settings(model, image, settings)
        layout = layout_of(model, tuple(image.shape), fixed)
        omezarr.axes_for(len(layout.output_shape) + want, channels=want)
        blocks = plan_blocks(layout, block)
        digests = tuple(records.file_digest(path) for path in model_path)
        identity = {
            "model": records.model_digest(model_path), "source": str(source.resolve()),
            "shape": list(image.shape),
            "config": fixed.to_dict(), "blocks": len(blocks), "block": block,
        }  # fmt: skip
        staging = records.staging_path(output)
        finished = records.open_run(staging, identity, overwrite=overwrite)
        if not staging.exists():
            chunks = output_chunks(layout, block)
            _create(staging, layout.output_shape, chunks, model.spec.num_classes, want)
            records.start_run(staging, identity)
        task = BlockTask(tuple(str(p) for p in model_path), digests, str(source), str(staging),
                         fixed.to_dict(), stats, want)  # fmt: skip
        geometry = _transform(layout, fixed, transform)
        geometry["request"] = _request_key(model_path, source, config, block)
        geometry["oblique"] = volume is not None and volume.oblique
        token = _task_token(output)
        return cls(output, staging, blocks, finished, task, token, model.spec, geometry,
                   overwrite)  # fmt: skip

    def finish(self) -> int:
        levels = omezarr.finish_labels(
            self.staging, scale=self.geometry["scale"], translation=self.geometry["translation"],
            units=self.geometry["units"], class_names=self.spec.class_names,
            colors=self.spec.class_colors,
        )  # fmt: skip
        omezarr.mark_done(self.staging, self.geometry["request"])
        if self.task.probabilities:
            probs = self.staging / PROBABILITIES
            omezarr.finish_image(probs, scale=self.geometry["scale"],
                                 translation=self.geometry["translation"],
                                 units=self.geometry["units"])  # fmt: skip
            omezarr.mark_done(probs, self.geometry["request"])
            records.publish(probs, probabilities_path(self.output), overwrite=self.overwrite)
        records.remove_records(self.staging)
        records.publish(self.staging, self.output, overwrite=self.overwrite)
        return levels


def _task_token(output: Path) -> str:
    """A prefix for this run's task keys, unique to it: Dask treats tasks with equal
    keys as one, so two runs (two files at once, or a run and its resumption) that
    shared keys would share results."""
    import uuid

    return f"napari-seg-{output.name}-{uuid.uuid4().hex[:8]}"


def _create(staging: Path, shape, chunks, classes: int, probabilities: bool) -> None:
    """The empty outputs: labels, and float16 probabilities (classes first) if asked."""
    dtype = "uint8" if classes <= 255 else "uint16"
    omezarr.create_level0(staging, shape, chunks=chunks, dtype=dtype)
    if probabilities:
        where, shape, chunks = staging / PROBABILITIES, (classes, *shape), (classes, *chunks)
        omezarr.create_level0(where, shape, chunks=chunks, dtype="float16", channels=True)


def _transform(layout, config: PredictConfig, source) -> dict[str, Any]:
    """The output's ``scale``, ``translation`` and ``units`` along each of its axes: the
    source's (an OME-Zarr image's or a calibrated TIFF's, without its channel axis),
    with ``config.spacing`` along the spatial axes when given, in
    ``config.spacing_unit`` (without one, where it differs from the source's, the
    axis's unit is left out); None where nothing is known."""
    keep = [a for a in range(len(layout.shape)) if a != layout.channel_axis]
    scale = None if source is None else [source[0][a] for a in keep]
    translation = None if source is None else [source[1][a] for a in keep]
    units = None if source is None else [source[2][a] for a in keep]
    if config.spacing is not None:
        scale = scale or [1.0] * len(keep)
        if units is None and config.spacing_unit is not None:
            units = [None] * len(keep)
        for a, s in zip(layout.spatial_axes, config.spacing, strict=True):
            i = keep.index(a)
            if units is not None and config.spacing_unit is not None:
                units[i] = config.spacing_unit
            elif units is not None and scale[i] != float(s):
                units[i] = None
            scale[i] = float(s)
    return {"scale": scale, "translation": translation, "units": units}


def source_labels_path(source: str | os.PathLike, name: str) -> Path:
    """Where a label image ``name`` goes inside the OME-Zarr image ``source``.

    Parameters
    ----------
    source : path
        An NGFF 0.4 image (zarr format 2).
    name : str

    Returns
    -------
    Path
        ``source/labels/name``.

    Raises
    ------
    ValueError
        When ``source`` is not an OME-Zarr 0.4 image, ``name`` is not a plain name, or
        the source's ``labels`` group cannot take another label image.
    """
    import zarr

    from .._ome_zarr import ome_zarr_datasets

    source = Path(source)
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"a label image name must be a plain name, got {name!r}")
    try:
        group = zarr.open_group(str(source), mode="r")
    except Exception as exc:
        raise ValueError(f"--into-source needs an OME-Zarr image; {source} is not one") from exc
    if not ome_zarr_datasets(group):
        raise ValueError(f"--into-source needs an OME-Zarr image; {source} has no multiscales")
    if group.metadata.zarr_format != 2:
        raise ValueError(
            f"{source} is OME-Zarr 0.5 (zarr format 3); --into-source writes NGFF 0.4 labels "
            "and would mix the formats: write a separate output instead"
        )
    _check_labels_group(source / "labels")
    return source / "labels" / name


def _check_labels_group(labels: Path) -> None:
    """Refuse, before any work, a source's ``labels`` group whose list of label images
    could not be extended (not a group, or its ``labels`` attribute not a list of names)."""
    import zarr

    from ..limits import brief

    if not labels.exists():
        return
    try:
        names = zarr.open_group(str(labels), mode="r").attrs.get("labels", [])
    except Exception as exc:
        raise ValueError(f"{labels} is not a zarr group; cannot add label images to it") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{labels} lists its label images as {brief(names)}, not a list of names; "
            "fix or remove its 'labels' attribute"
        )


def remove_unfinished(output: str | os.PathLike) -> None:
    """Delete an unfinished run's staging folder for ``output`` (if any).

    Parameters
    ----------
    output : path
    """
    shutil.rmtree(records.staging_path(Path(output)), ignore_errors=True)


__all__ = ["BlockDone", "BlocksFinished", "BlocksStarted", "iter_predict_blocks"]
