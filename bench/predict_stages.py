"""Where ``predict``'s time goes: wall time of a call and the time spent in each stage.

Wraps the predictor's stages (tile loading in the loader thread, the forward pass,
the band accumulator's adds and writes, the release of device memory at the end) with
timers and prints one JSON line per call: 2D (the 4096^2 image and U-Net of
``bench/inference.py``, tile 512, overlap 128, batch 6) and 3D (the 256^3 volume and
3D U-Net of ``bench/inference3d.py``, patch 96, overlap 24). Each is run three times
as ``predict`` ends, then three times with a full ``gc.collect()`` added to the
release at the end (what it did before 2026-12-04; on the CPU nothing is released
either way). On a GPU most stages only queue
work, so a stage's time is where the host waits, not where the card works.

``--cudnn-benchmark on`` turns cuDNN's algorithm search on for the process
(``predict`` leaves the setting as it finds it; it turned the search on for CUDA
until 2026-12-04). Run each setting in its own process: the search's results are
kept per process. The first timed call of the 2D case is the first at its tile
shape, so with the search on it includes the search.

``--loaders N`` runs N tile-loading threads instead of ``predict``'s one (and
prefetches N + 1 batches): on the H200 the one loader thread spent 0.14 s of a 0.25 s
2D call, the likely limit of 2D ``predict`` there.

Usage: python bench/predict_stages.py [--device cuda] [--cases 2d,3d] [--repeats 3]
       [--cudnn-benchmark on|off] [--loaders 1]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import torch

import inference
import inference3d
import napari_seg._device as device_module
from napari_seg.inference import _bands, predict
from napari_seg.inference import predictor as predictor_module

STAGES = [
    (predictor_module._Predictor, "_load"),
    (predictor_module._Predictor, "_forward"),
    (predictor_module._Predictor, "_prepare_model"),
    (_bands.BandAccumulator, "add"),
    (_bands.BandAccumulator, "_write"),
]


#: Tile-loading threads (``--loaders``).
LOADERS = [1]


class Loaders(ThreadPoolExecutor):
    """``predict``'s loader pool with ``--loaders`` threads."""

    def __init__(self, max_workers=None, **kwargs):
        super().__init__(max_workers=LOADERS[0], **kwargs)


def timed(times: dict, name: str, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times[name] = times.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(label: str, model, image, device: str, repeats: int, **options) -> None:
    times: dict[str, float] = {}
    for owner, name in STAGES:
        setattr(owner, name, timed(times, name, getattr(owner, name)))
    predict(model, image[tuple(slice(0, 100) for _ in image.shape)], device=device, **options)
    for collect in (False, True):

        def release(where, collect_: bool = False, collect=collect):
            device_module.release_memory(where, collect=collect or collect_)

        predictor_module.release_memory = timed(times, "release", release)
        for _ in range(repeats):
            times.clear()
            sync(device)
            start = time.perf_counter()
            result = predict(model, image, device=device, **options)
            sync(device)
            row = {"case": label, "device": device, "gc_collect_at_end": collect}
            row["cudnn_benchmark"] = torch.backends.cudnn.benchmark
            row["loaders"] = LOADERS[0]
            row |= {"wall_s": time.perf_counter() - start, "seconds": result.seconds}
            row |= {f"{k}_s": round(v, 4) for k, v in times.items()}
            print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", default="2d,3d")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cudnn-benchmark", choices=("on", "off"), default="off")
    parser.add_argument("--loaders", type=int, default=1, help="tile-loading threads")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = args.cudnn_benchmark == "on"
    if args.loaders != 1:
        LOADERS[0] = args.loaders
        predictor_module.ThreadPoolExecutor = Loaders
        predictor_module.PREFETCH = max(predictor_module.PREFETCH, args.loaders + 1)
    cases = args.cases.split(",")
    if "2d" in cases:
        model = inference.model_for("unet", args.device)
        image = inference.big_image(4096)
        options = {"tile": 512, "overlap": 128, "batch_size": 6}
        run("2d", model, image, args.device, args.repeats, **options)
    if "3d" in cases:
        model = inference3d.model_for(args.device)
        image = inference3d.volume((256,) * 3)
        options = {"tile": inference3d.PATCH, "overlap": inference3d.OVERLAP}
        run("3d", model, image, args.device, args.repeats, **options)


if __name__ == "__main__":
    main()
