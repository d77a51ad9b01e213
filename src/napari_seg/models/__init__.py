"""Model zoo: architectures, the model file format and devices (Qt-free).

Importing this package is cheap; torch is imported when a model is built.
"""

from .architecture import CLASSIC, Architecture, OptionRange
from .registry import SMP_ENCODERS, create_model, get_architecture, list_architectures
from .spec import ModelSpec, Normalization, default_class_colors

__all__ = [
    "CLASSIC",
    "SMP_ENCODERS",
    "Architecture",
    "ModelFileError",
    "ModelSpec",
    "Normalization",
    "OptionRange",
    "SegmentationModel",
    "WeightsUnavailableError",
    "check_members",
    "create_model",
    "default_class_colors",
    "ensemble",
    "get_architecture",
    "list_architectures",
    "load_model",
    "load_models",
    "model_stats",
    "pad_to_multiple",
    "read_model_card",
    "read_model_spec",
    "save_model",
]

_LAZY = {
    "ModelFileError": ".model_file",
    "load_model": ".model_file",
    "read_model_card": ".model_file",
    "read_model_spec": ".model_file",
    "save_model": ".model_file",
    "SegmentationModel": ".wrapper",
    "ensemble": "._ensemble",
    "check_members": "._ensemble",
    "load_models": "._ensemble",
    "pad_to_multiple": ".wrapper",
    "WeightsUnavailableError": ".weights",
    "model_stats": ".stats",
}


def __getattr__(name: str):
    # Names whose modules import torch are loaded on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
