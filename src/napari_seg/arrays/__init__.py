"""How arrays meet the network, shared by inference, training, refine and evaluation.

- :mod:`.layout`: which axes are spatial (2 or 3) and stacked; region reads.
- :mod:`.channels`: which axis holds the channels. :mod:`.axes`: axis options.
- :mod:`.screen`: the axes napari's view shows, and what a model steps through there.
- :mod:`.normalize`: intensity statistics from the model card's normalisation.
- :mod:`.runtime`: device, precision, memory format and threads of one job
  (imports torch; the rest of this package does not).
"""

from .axes import normalise_axes
from .channels import channel_axis_of, detect_in_channels
from .layout import MIN_PLANE_SIZE, MIN_SPATIAL_SIZE, ImageLayout, resolve_layout
from .screen import stack_axes

#: Precisions a job accepts ("auto" is resolved by :func:`.runtime.resolve_precision`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

__all__ = [
    "MIN_PLANE_SIZE",
    "MIN_SPATIAL_SIZE",
    "PRECISIONS",
    "ImageLayout",
    "channel_axis_of",
    "detect_in_channels",
    "normalise_axes",
    "resolve_layout",
    "stack_axes",
]
