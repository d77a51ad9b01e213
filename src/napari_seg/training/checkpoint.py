"""Training checkpoints: a model file that also holds the state needed to resume.

The file is an ordinary napari-seg model file (safetensors + JSON card, see
:mod:`napari_seg.models.model_file`), so it loads anywhere a model does.
Training adds tensors under ``optimizer.<param>.<name>`` and ``rng.torch``,
and a ``training`` entry in the card's provenance with the config, the
metrics reached and, under ``resume``, the counters, history, optimizer
settings and numpy generator state. Nothing is pickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..models.wrapper import SegmentationModel

OPTIMIZER_PREFIX = "optimizer."
RNG_KEY = "rng.torch"


@dataclass
class RunState:
    """Counters and history of a run, enough to continue it exactly."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0
    steps: int = 0  # optimizer steps done in total
    elapsed_s: float = 0.0  # training time (pauses excluded)
    epoch_loss_sum: float = 0.0
    best_score: float | None = None  # the run's validation metric (see RunState users)
    best_epoch: int | None = None
    epochs_since_best: int = 0
    history: list[dict] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    numpy_rng: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The counters and history as plain JSON types.

        Returns
        -------
        dict
        """
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        """Counters from :meth:`to_dict` output (unknown keys of newer versions ignored).

        Parameters
        ----------
        data : dict

        Returns
        -------
        RunState
        """
        known = set(cls.__dataclass_fields__)
        data = dict(data)
        if "best_val_iou" in data and "best_score" not in data:  # written before 0.2
            data["best_score"] = data.pop("best_val_iou")
        return cls(**{k: v for k, v in data.items() if k in known})


def save_checkpoint(
    path: Path,
    model: SegmentationModel,
    *,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    state: RunState,
    training: dict[str, Any],
) -> Path:
    """Write ``model`` with optimizer, scaler and RNG state to ``path``.

    Atomically, replacing the run's previous checkpoint (the run checked its
    output files before it started).

    Parameters
    ----------
    path : pathlib.Path
    model : SegmentationModel
    optimizer : torch.optim.Optimizer
    scaler : torch.amp.GradScaler or None
    state : RunState
    training : dict
        The run's summary (config, metrics, data) for the card's provenance.

    Returns
    -------
    pathlib.Path
    """
    from ..models import save_model

    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {RNG_KEY: torch.get_rng_state()}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in opt["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{OPTIMIZER_PREFIX}{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    resume = {
        "state": state.to_dict(),
        "param_groups": opt["param_groups"],
        "optimizer_scalars": scalars,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    }
    provenance = dict((model.card or {}).get("provenance") or {})
    provenance.update(
        {"created_by": "napari-seg train", "training": {**training, "resume": resume}}
    )
    # The run checked its output files before it started: they are its own to replace.
    return save_model(model, path, overwrite=True, provenance=provenance, extra_tensors=tensors)


def resume_info(model: SegmentationModel) -> dict[str, Any]:
    """The ``training`` entry of a loaded checkpoint's card, with its ``resume`` part.

    Parameters
    ----------
    model : SegmentationModel
        Loaded with :func:`napari_seg.models.load_model`.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        If the model file was not written by a training run.
    """
    training = ((model.card or {}).get("provenance") or {}).get("training") or {}
    if "resume" not in training or OPTIMIZER_PREFIX[:-1] not in _prefixes(model.extra_tensors):
        raise ValueError(
            "this model file holds no training state to resume from (it was not written by "
            "napari-seg train); fine-tune from it instead (from_model)"
        )
    return training


def restore(
    model: SegmentationModel, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> RunState:
    """Load optimizer, scaler and torch RNG state from a loaded checkpoint.

    Parameters
    ----------
    model : SegmentationModel
        Loaded from the checkpoint (its ``extra_tensors`` hold the state).
    optimizer : torch.optim.Optimizer
    scaler : torch.amp.GradScaler or None

    Returns
    -------
    RunState
        The run's counters and history.
    """
    training = resume_info(model)
    resume = training["resume"]
    state: dict[int, dict[str, Any]] = {}
    for key, value in model.extra_tensors.items():
        if key.startswith(OPTIMIZER_PREFIX):
            index, name = key[len(OPTIMIZER_PREFIX) :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    for index, values in resume["optimizer_scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": resume["param_groups"]})
    if scaler is not None and resume.get("scaler"):
        scaler.load_state_dict(resume["scaler"])
    if RNG_KEY in model.extra_tensors:
        torch.set_rng_state(model.extra_tensors[RNG_KEY].to(torch.uint8))
    return RunState.from_dict(resume["state"])


def _prefixes(tensors: dict[str, torch.Tensor]) -> set[str]:
    return {key.split(".", 1)[0] for key in tensors}
