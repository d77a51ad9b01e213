"""napari widgets: the only package that imports napari, magicgui or qtpy.

Importing it blocks ``triton`` unless it is already loaded (or
``NAPARI_SEG_ALLOW_TRITON=1``): with Mesa OpenGL (Xvfb, remote desktops,
llvmpipe) triton's LLVM crashes the process when torch imports it after
napari's canvas exists, which creating an optimizer does. torch runs eagerly
without triton; only ``torch.compile`` on GPU needs it.
"""

import os
import sys

if "triton" not in sys.modules and os.environ.get("NAPARI_SEG_ALLOW_TRITON") != "1":
    sys.modules["triton"] = None  # makes `import triton` raise ImportError

from ._evaluate import EvaluateWidget, evaluate_widget
from ._model import ModelWidget, model_widget
from ._refine import RefineWidget, refine_widget
from ._segment import SegmentWidget, segment_widget
from ._shared import current_model_for
from ._train import TrainWidget, train_widget

__all__ = [
    "EvaluateWidget",
    "ModelWidget",
    "RefineWidget",
    "SegmentWidget",
    "TrainWidget",
    "current_model_for",
    "evaluate_widget",
    "model_widget",
    "refine_widget",
    "segment_widget",
    "train_widget",
]
