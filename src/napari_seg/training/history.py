"""A training run's records: one epoch's history entry, the run's summary figures, and
the summary written beside the model file (plain JSON types throughout)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .validation import METRIC_NAMES, Validation

if TYPE_CHECKING:
    from .checkpoint import RunState
    from .config import TrainingConfig


def _num(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def metric_key(metric: str) -> str:
    """The history key of a validation metric: ``val_iou`` or ``val_agreement``.

    Parameters
    ----------
    metric : {"iou", "agreement"}

    Returns
    -------
    str
    """
    return f"val_{metric}"


def history_entry(
    state: RunState, train_loss: float, val: Validation, lr: float, elapsed: float
) -> dict[str, Any]:
    """One epoch's entry of the run's history (plain JSON types).

    Parameters
    ----------
    state : RunState
    train_loss : float
    val : Validation
    lr : float
    elapsed : float

    Returns
    -------
    dict
    """
    key = metric_key(val.metric)
    return {
        "epoch": state.epoch,
        "steps": state.steps,
        "train_loss": train_loss,
        "val_loss": _num(val.loss),
        key: _num(val.score),
        f"val_class_{val.metric}": {str(k): _num(v) for k, v in val.class_scores.items()},
        "lr": lr,
        "elapsed_s": round(elapsed, 3),
    }


def run_metrics(state: RunState, metric: str) -> dict[str, Any]:
    """The run's summary figures: best epoch and score, last values.

    Parameters
    ----------
    state : RunState
    metric : {"iou", "agreement"}

    Returns
    -------
    dict
        ``metric`` (``"iou"`` or ``"agreement"``), ``validation_metric`` (its name as
        users read it), ``best_epoch``, ``best_score`` and the same as
        ``best_val_<metric>``, ``best_val_class_<metric>``, ``last_train_loss``,
        ``last_val_<metric>``, ``epochs``, ``steps``, ``training_seconds``.
    """
    key = metric_key(metric)
    best = next((h for h in state.history if h["epoch"] == state.best_epoch), None)
    last = state.history[-1] if state.history else None
    return {
        "metric": metric,
        "validation_metric": METRIC_NAMES[metric],
        "best_epoch": state.best_epoch,
        "best_score": state.best_score,
        f"best_{key}": state.best_score,
        f"best_val_class_{metric}": best.get(f"val_class_{metric}") if best else None,
        "last_train_loss": last["train_loss"] if last else None,
        f"last_{key}": last.get(key) if last else None,
        "epochs": state.epoch,
        "steps": state.steps,
        "training_seconds": round(state.elapsed_s, 2),
    }


def run_summary(
    status: str, config: TrainingConfig, loss: str, metrics: dict, source: Any, data: Any
) -> dict[str, Any]:
    """The run for a model card or the summary file.

    Parameters
    ----------
    status : str
        How the run ended ("budget", "early stopping", "stopped", "fitted") or, for a
        file written while it ran, "checkpoint": its metrics are the run's up to that
        file's epoch.
    config : TrainingConfig
    loss : str
        The loss's name (what "auto" chose).
    metrics : dict
        :func:`run_metrics`.
    source : object
        Where the model came from (plain JSON types).
    data : TrainingData or VolumeData

    Returns
    -------
    dict
    """
    return {
        "status": status,
        "config": config.to_dict(),
        "loss": loss,
        "metrics": metrics,
        "source": source,
        "data": {
            "pairs": [s.name for s in data.sources],
            "annotated_pixels": data.annotated_pixels,
            "class_pixels": data.class_counts.tolist(),
            "validation_regions": len(data.regions),
        },
    }


def write_summary(out: Path, summary: dict, history: list) -> Path:
    """Write a run's summary, its history and its files' names beside its model file
    ``out`` (atomically; the run's own file, replaced).

    Parameters
    ----------
    out : Path
        The run's best-model file.
    summary : dict
        :func:`run_summary`.
    history : list of dict

    Returns
    -------
    Path
        The summary file written.
    """
    import json

    from .._atomic import atomic_write
    from .files import companion_paths

    last, path = companion_paths(out)
    record = {**summary, "history": history}
    record["files"] = {"best": out.name, "last": last.name if last.is_file() else None}
    with atomic_write(path, overwrite=True) as handle:  # the run's own file (checked)
        handle.write(json.dumps(record, indent=2, allow_nan=False).encode())
    return path
