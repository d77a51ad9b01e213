"""Files of a training run: output checks, companion paths, resuming."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .config import TrainingConfig


def resumed_config(path: str | os.PathLike) -> TrainingConfig:
    """The config of the run that wrote the checkpoint at ``path``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    TrainingConfig

    Raises
    ------
    ValueError
        If the file holds no training run (or is not a valid model file).
    """
    from ..models import read_model_card

    training = (read_model_card(path).get("provenance") or {}).get("training") or {}
    if "config" not in training:
        raise ValueError(f"{path} holds no training run to resume (no training config in it)")
    return TrainingConfig.from_dict(training["config"])


def check_outputs(
    out: str | os.PathLike | None,
    *,
    overwrite: bool = False,
    resume: str | os.PathLike | None = None,
) -> Path | None:
    """Check that a run may write ``out`` and its companions, before it starts.

    The best model, the ``-last`` checkpoint and the ``.training.json`` summary
    replace existing files only with ``overwrite``, or when the run resumes from
    one of them (they are its own files).

    Parameters
    ----------
    out : path-like or None
        None: the run writes nothing.
    overwrite : bool
    resume : path-like, optional
        The checkpoint the run resumes from.

    Returns
    -------
    pathlib.Path or None

    Raises
    ------
    OutputExistsError, IsADirectoryError, FileNotFoundError, PermissionError
    """
    from .._atomic import check_target, same_file
    from ..models.model_file import check_model_target, model_file_path

    if out is None:
        return None
    out = model_file_path(out)  # "nuclei" is nuclei.safetensors, as save_model writes it
    if out.is_dir():  # "." has no name for its companions to share
        check_target(out)  # says it is a folder
    files = (out, *companion_paths(out))
    own = resume is not None and any(same_file(resume, f) for f in files)
    check_model_target(out, overwrite=overwrite or own)  # -last has its suffix
    for path in files[1:]:
        check_target(path, overwrite=overwrite or own)
    folder = out.parent if str(out.parent) else Path(".")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise PermissionError(f"cannot write to the output folder {folder}: {exc}") from None
    return out


def companion_paths(out: Path) -> tuple[Path, Path]:
    """The ``-last`` checkpoint and ``.training.json`` summary written beside ``out``.

    Parameters
    ----------
    out : pathlib.Path

    Returns
    -------
    last, summary : pathlib.Path
    """
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{stem}-last{out.suffix or '.safetensors'}"), out.with_name(
        f"{stem}.training.json"
    )


def best_from_file(path: Path, epoch: int) -> dict | None:
    """The best weights written by the run being resumed (if the file is that epoch's).

    Parameters
    ----------
    path : pathlib.Path
    epoch : int
        The best epoch the checkpoint recorded.

    Returns
    -------
    dict or None
        A state dict, or None when the file is missing, unreadable or of another epoch.
    """
    from ..models import load_model

    try:
        model = load_model(path)
    except ValueError:
        return None
    metrics = ((model.card or {}).get("provenance") or {}).get("training", {}).get("metrics", {})
    if metrics.get("best_epoch") != epoch:
        return None
    return model.state_dict()
