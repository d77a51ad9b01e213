"""Training and fine-tuning from (image, labels) arrays (Qt-free).

:func:`iter_train` is a generator of typed events (:mod:`.events`) that the
widget runs in a worker and the CLI behind a progress bar; :func:`train`
drains it. One :class:`TrainingConfig` describes a run, GUI or headless.
Importing this package is cheap; torch is imported by the loop's module.
"""

from .config import LABEL0_CHOICES, LOSSES, SCHEDULES, TrainingConfig

__all__ = [
    "LABEL0_CHOICES",
    "LOSSES",
    "SCHEDULES",
    "EpochEnd",
    "FitProgress",
    "ModelSaved",
    "PreviewReady",
    "StepProgress",
    "TrainResult",
    "TrainStarted",
    "TrainWarning",
    "TrainingConfig",
    "TrainingData",
    "class_weights",
    "companion_paths",
    "iter_train",
    "train",
]

_LAZY = {
    "EpochEnd": ".events",
    "ModelSaved": ".events",
    "PreviewReady": ".events",
    "FitProgress": ".events",
    "StepProgress": ".events",
    "TrainResult": ".events",
    "TrainStarted": ".events",
    "TrainWarning": ".events",
    "TrainingData": ".data",
    "class_weights": ".losses",
    "companion_paths": ".files",
    "iter_train": ".loop",
    "train": ".loop",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
