"""What runs on a Dask worker (or in this process) for a block-wise run: one block
of the job (:func:`run_block`), with the model and the input read once per worker
process and kept while they are unchanged on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..inference import PredictConfig
from ..inference.blocks import Block
from . import records

#: Where the probabilities are built inside the labels' staging folder.
PROBABILITIES = ".probabilities"


@dataclass(frozen=True)
class BlockTask:
    """What a worker needs to run any block of the job (small, pickled to workers)."""

    model: tuple[str, ...]  # one file, or an ensemble's
    digest: tuple[str, ...]
    source: str
    staging: str
    config: dict
    stats: Any
    probabilities: bool = False


def run_block(task: BlockTask, block: Block) -> int:
    """Run one block on this worker, write its chunks, then record it; its number.

    Parameters
    ----------
    task : BlockTask
    block : Block

    Returns
    -------
    int
    """
    import zarr

    from .._generators import drain
    from ..inference.blocks import iter_predict_block

    model = _worker_model(task.model, task.digest)
    image = _worker_source(task.source)
    staging = Path(task.staging)
    out = zarr.open_array(str(staging / "0"), mode="r+", zarr_format=2)
    probs = None
    if task.probabilities:
        probs = zarr.open_array(str(staging / PROBABILITIES / "0"), mode="r+", zarr_format=2)
    config = PredictConfig.from_dict(task.config)
    drain(iter_predict_block(model, image, block, config, out=out, stats=task.stats,
                             probabilities_out=probs))  # fmt: skip
    records.record_block(Path(task.staging), block.number)
    return block.number


def prepare_worker() -> None:
    """Import what a block needs (torch, the networks, zarr): about 10 s in a new
    worker process, run on every worker while the client plans the blocks."""
    import zarr  # noqa: F401

    from ..inference import blocks  # noqa: F401
    from ..models import registry  # noqa: F401


_MODELS: dict[tuple, Any] = {}


def _worker_model(paths: tuple[str, ...], digests: tuple[str, ...]):
    """The model (an ensemble for several files), loaded once per worker process
    (each file checked against the run's digest)."""
    key = (paths, digests)
    if key not in _MODELS:
        for path, digest in zip(paths, digests, strict=True):
            if records.file_digest(Path(path)) != digest:
                raise ValueError(f"{path} changed since the run started")
        _MODELS.clear()
        from ..models import load_models

        _MODELS[key] = load_models(paths)
    return _MODELS[key]


_SOURCES: dict[tuple, Any] = {}


def _worker_source(path: str):
    """The image file, read once per worker process while it is unchanged on disk.

    A ``.nii.gz`` or a DICOM series is read whole (decompressed and reoriented), so
    reading it for every block cost a whole read per block (0.3-0.6 s for a
    160 x 256 x 256 ``.nii.gz`` or series here, small beside a block's prediction,
    but every worker's memory held the volume for each block anyway); other
    formats are read by region and keep only their handle.
    """
    from .._io import read_image

    key = (path, *_stamp(path))
    image = _SOURCES.get(key)
    if image is None:
        image = read_image(path)
        _SOURCES.clear()  # one source per worker: the last run's is dropped
        _SOURCES[key] = image
    return image


def _stamp(path: str) -> tuple[int, ...]:
    """When ``path`` last changed and its size; for a folder (a DICOM series, a zarr
    store) its files' newest change, count and sizes too: a series exported again into
    the same folder under the same names leaves the folder's own time unchanged."""
    stat = os.stat(path)
    if not os.path.isdir(path):
        return (stat.st_mtime_ns, stat.st_size)
    files = [entry.stat() for entry in os.scandir(path) if entry.is_file()]
    newest = max((f.st_mtime_ns for f in files), default=0)
    return (stat.st_mtime_ns, newest, len(files), sum(f.st_size for f in files))


def release_sources() -> None:
    """Drop the input this process keeps (after a run in this process, which is no
    worker: it keeps no volume after the run)."""
    _SOURCES.clear()


__all__ = ["PROBABILITIES", "BlockTask", "prepare_worker", "release_sources", "run_block"]
