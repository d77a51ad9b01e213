"""What a block-wise run has finished: one record per block, written after its chunks.

A run writes into a hidden staging folder beside its output. The staging folder
holds the run's identity (``run.json``: model digest, input, shape, settings,
blocks) and one empty file per finished block, created (atomically) only after
every chunk of the block was written. A block cut short leaves no record and is
run again; its chunks are overwritten whole. Started again with the same
command, a run skips the recorded blocks; with other settings it refuses to mix
the two (``--overwrite`` starts over).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._atomic import atomic_write

RECORD_DIR = ".napari-seg-blocks"


def staging_path(output: Path) -> Path:
    """The hidden folder where ``output`` is built before it is renamed into place.

    Parameters
    ----------
    output : Path

    Returns
    -------
    Path
    """
    return output.parent / f".{output.name}.partial"


def model_digest(model: Path | Sequence[Path]) -> str | list[str]:
    """The digest of a model file, or the list of an ensemble's (one file: its digest
    alone, as runs recorded before ensembles ran block by block).

    Parameters
    ----------
    model : Path or sequence of Path

    Returns
    -------
    str or list of str
    """
    if isinstance(model, (str, os.PathLike)):
        return file_digest(Path(model))
    digests = [file_digest(Path(p)) for p in model]
    return digests[0] if len(digests) == 1 else digests


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB pieces (remembered while its size and
    modification time stay the same).

    Parameters
    ----------
    path : Path

    Returns
    -------
    str
    """
    stat = Path(path).stat()
    return _digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def request_key(
    model: Path | Sequence[Path], source: Path, config: dict[str, Any], block: int | None
) -> str:
    """What a run was asked for (model file, input, settings, block side), as a hash.

    A finished output carries it (``omezarr.mark_done``), so the same command run
    again, e.g. over a folder after Ctrl+C, skips the files it already finished.

    Parameters
    ----------
    model : Path or sequence of Path
        The model file, or the files of an ensemble (in order).
    source : Path
    config : dict
        The prediction settings as given.
    block : int or None

    Returns
    -------
    str
    """
    request = [model_digest(model), str(Path(source).resolve()), config, block]
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


@functools.lru_cache(maxsize=64)
def _digest(path: str, _size: int, _mtime: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def open_run(staging: Path, identity: dict[str, Any], *, overwrite: bool) -> set[int]:
    """Start or resume the run in ``staging``; the numbers of its finished blocks.

    Parameters
    ----------
    staging : Path
    identity : dict
        JSON-able description of the run; a resumed run must match it exactly.
    overwrite : bool
        Start over when ``staging`` holds a run with another identity.

    Returns
    -------
    set of int
        Empty for a new run.

    Raises
    ------
    ValueError
        When ``staging`` holds another run and ``overwrite`` is false.
    """
    run_file = staging / RECORD_DIR / "run.json"
    if staging.exists():
        previous = json.loads(run_file.read_text()) if run_file.is_file() else None
        if previous == json.loads(json.dumps(identity)):
            return finished_blocks(staging)
        if not overwrite:
            raise ValueError(
                f"{staging} holds an unfinished run with other settings (or another model "
                "or input); pass --overwrite to start over"
            )
        shutil.rmtree(staging)
    return set()


def start_run(staging: Path, identity: dict[str, Any]) -> None:
    """Record the run's identity in a new ``staging`` folder (already created).

    Parameters
    ----------
    staging : Path
    identity : dict
    """
    records = staging / RECORD_DIR
    records.mkdir(parents=True, exist_ok=True)
    _write(records / "run.json", json.dumps(identity, indent=1).encode())


def finished_blocks(staging: Path) -> set[int]:
    """Numbers of the blocks recorded as finished in ``staging``.

    Parameters
    ----------
    staging : Path

    Returns
    -------
    set of int
    """
    records = staging / RECORD_DIR
    if not records.is_dir():
        return set()
    return {int(p.stem) for p in records.glob("*.done") if p.stem.isdigit()}


def record_block(staging: Path, number: int) -> None:
    """Record block ``number`` as finished (call after its chunks are written).

    Parameters
    ----------
    staging : Path
    number : int
    """
    _write(staging / RECORD_DIR / f"{number}.done", b"")


def remove_records(staging: Path) -> None:
    """Drop the records once the output is complete.

    Parameters
    ----------
    staging : Path
    """
    shutil.rmtree(staging / RECORD_DIR, ignore_errors=True)


def publish(staging: Path, output: Path, *, overwrite: bool) -> None:
    """Move the finished ``staging`` folder to ``output`` (one rename).

    Parameters
    ----------
    staging, output : Path
    overwrite : bool
        Replace an existing ``output`` (it is moved aside first, then removed).

    Raises
    ------
    FileExistsError
        When ``output`` exists and ``overwrite`` is false.
    """
    if output.exists():
        if not overwrite:
            raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
        aside = output.parent / f".{output.name}.old-{os.getpid()}"
        os.replace(output, aside)
        os.replace(staging, output)
        shutil.rmtree(aside, ignore_errors=True)
        return
    os.replace(staging, output)


def _write(path: Path, data: bytes) -> None:
    with atomic_write(path, overwrite=True) as f:
        f.write(data)
