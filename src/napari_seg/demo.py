"""The demo pipeline, headless part (the GUI part lives in ``_widgets.demo``)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ._atomic import atomic_write
from .sample_data import CLASS_COLORS, CLASS_NAMES, cells_2d, cells_3d

DEMO_ARCHITECTURE = "unet"


def display_available() -> bool:
    """Whether a window can be opened (Linux needs an X11 or Wayland display)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def demo_spec():
    """The model the demo builds: a classic U-Net for the sample classes."""
    from .models import ModelSpec

    return ModelSpec(
        DEMO_ARCHITECTURE,
        in_channels=1,
        num_classes=len(CLASS_NAMES),
        class_names=CLASS_NAMES,
        class_colors=CLASS_COLORS,
    ).validate()


def run_headless(output: Path) -> dict[str, Any]:
    """Generate the samples, build the demo model, and write everything to ``output``.

    Writes ``cells2d.tif``, ``cells2d_labels.tif``, ``cells3d.tif``,
    ``cells3d_labels.tif``, ``model.safetensors`` and ``summary.json``.

    Returns
    -------
    dict
        The summary also written to ``summary.json``.
    """
    import tifffile

    from ._device import describe_device, resolve_device
    from .models import create_model, model_stats, save_model

    start = time.perf_counter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, (image, labels) in {"cells2d": cells_2d(), "cells3d": cells_3d()}.items():
        for suffix, array in (("", image), ("_labels", labels)):
            path = output / f"{name}{suffix}.tif"
            with atomic_write(path) as handle:
                tifffile.imwrite(handle, array)
            files[f"{name}{suffix}"] = path.name
    device = resolve_device("auto")
    model = create_model(demo_spec()).to(device)
    model_path = save_model(model, output / "model.safetensors", provenance={"created_by": "demo"})
    files["model"] = model_path.name
    stats = model_stats(model)
    summary = {
        "outputs": str(output),
        "files": files,
        "model": {
            "architecture": model.spec.architecture,
            "encoder": model.spec.encoder,
            "classes": list(model.spec.class_names),
            "parameters": stats.parameters,
            "gflops_per_megapixel": round(stats.gflops_per_megapixel, 2),
        },
        "device": describe_device(device),
        "seconds": round(time.perf_counter() - start, 2),
    }
    with atomic_write(output / "summary.json") as handle:
        handle.write(json.dumps(summary, indent=2).encode())
    return summary
