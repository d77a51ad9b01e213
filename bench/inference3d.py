"""Volumetric inference benchmark: a 3D U-Net on a 256^3 volume and a 128x1024x1024 zarr.

Every case runs in its own child process so that its peak memory is its own.
Prints one JSON line per case:

- ``raw``: the model alone on the pre-cut, pre-normalised 96^3 patches of the
  256^3 volume's grid (same precision and batch as predict): voxels of the volume
  per second, i.e. the volume's voxel count over the time of those patches, and
  the peak extra RSS of a forward pass (the model's working memory).
- ``predict``: ``napari_seg.inference.predict`` on the 256^3 uint16 volume, from the
  raw array to uint8 labels (normalisation, 3D Gaussian blending, argmax included);
  voxels per second and peak extra RSS during the call.
- ``monai``: MONAI ``sliding_window_inference`` on the same volume with the same
  model, patch, overlap (0.25), Gaussian blending (sigma patch/8), precision and
  softmax blending; normalisation and argmax included.
- ``zarr``: predict on a 128x1024x1024 uint16 zarr into a zarr labels store; peak
  RSS of the whole process (target < 2 GB).
- ``monai_zarr``: MONAI on the same volume, read into memory first (MONAI's
  sliding window takes a tensor): time and peak RSS.
- ``zarr_resampled``: the ``zarr`` case for a model made for 1 x 1 x 1 on a volume
  of 1 x 0.8 x 0.8 (``spacing``): the volume is resampled to the model's grid
  (128 x 819 x 819) tile by tile and the probabilities back band by band; peak RSS
  of the whole process (target < 2 GB, as without resampling).

The volume is synthetic (blurred random blobs, uint16). The model is a classic 3D
U-Net (depth 3, width 16, random weights: speed does not depend on them).

Usage: python bench/inference3d.py [--cases raw,predict,monai,zarr,monai_zarr,zarr_resampled]
       [--device cpu]
       [--size 256] [--big 128,1024,1024] [--batch N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from inference import PeakRSS  # the same RSS sampler as the 2D benchmark
from napari_seg.arrays.layout import resolve_layout
from napari_seg.arrays.normalize import compute_stats
from napari_seg.arrays.runtime import Runtime
from napari_seg.inference import TileGrid, predict
from napari_seg.models import ModelSpec, create_model

SPEC = ModelSpec(
    "unet", in_channels=1, num_classes=3, spatial_dims=3, options={"depth": 3, "base_width": 16}
)
PATCH, OVERLAP = 96, 24


def volume(shape, seed: int = 0) -> np.ndarray:
    """Blurred random blobs as uint16, built from a 64^3 block tiled to ``shape``."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    block = ndimage.gaussian_filter(rng.random((64, 64, 64)), 3)
    block = ((block - block.min()) / np.ptp(block) * 60000).astype(np.uint16)
    reps = [-(-n // 64) for n in shape]
    return np.tile(block, reps)[tuple(slice(0, n) for n in shape)]


def model_for(device: str):
    torch.manual_seed(0)
    return create_model(SPEC).eval().to(device)


def batch_for(args) -> int:
    """``--batch``, else the batch predict picks for a PATCH^3 patch on the device (1 on
    a CPU); every case runs it, so that all of them run the same batches."""
    from napari_seg.inference import PredictConfig
    from napari_seg.inference._sizes import default_batch

    config = PredictConfig(tile=PATCH, batch_size=args.batch)
    return default_batch(config, torch.device(args.device), PATCH, 3)


def normalised(model, image) -> torch.Tensor:
    layout = resolve_layout(image.shape, in_channels=1, spatial_dims=3)
    stats = compute_stats(image, layout, model.spec.normalization)
    return torch.from_numpy(stats.apply(layout.read(image, (), *(slice(None),) * 3)))


def case_raw(args) -> dict:
    runtime = Runtime.resolve(args.device, "auto")
    model = model_for(args.device)
    image = volume((args.size,) * 3)
    x = normalised(model, image)
    grid = TileGrid.build(image.shape, PATCH, OVERLAP)
    patches = [x[:, z : z + PATCH, y : y + PATCH, w : w + PATCH] for _r, z, y, w in grid]
    batch = batch_for(args)
    batches = [torch.stack(patches[i : i + batch]) for i in range(0, len(patches), batch)]

    def run(patches):
        with torch.inference_mode(), runtime.autocast():
            return torch.softmax(model(patches.to(runtime.device)).float(), 1)

    with PeakRSS() as rss:
        run(batches[0])  # warm-up, inside: its allocations are the model's working memory
        start = time.perf_counter()
        for patches_in in batches:
            run(patches_in)
        if runtime.device.type == "cuda":
            torch.cuda.synchronize(runtime.device)
        seconds = time.perf_counter() - start
    return {
        "patches": len(patches),
        "batch": batch,
        "seconds": seconds,
        "voxels_per_s": image.size / seconds,
        "extra_rss_mib": rss.extra_mib,  # the model's own working memory for one patch
        "cuda_extra_mib": rss.cuda_extra_mib,
        "precision": runtime.precision,
    }


def case_predict(args) -> dict:
    model = model_for(args.device)
    image = volume((args.size,) * 3)
    options = {"tile": PATCH, "batch_size": batch_for(args), "device": args.device}
    predict(model, image[:100, :100, :100], **options)  # warm-up
    with PeakRSS() as rss:
        result = predict(model, image, overlap=OVERLAP, **options)
    return {
        "shape": list(image.shape),
        "seconds": result.seconds,
        "voxels_per_s": image.size / result.seconds,
        "extra_rss_mib": rss.extra_mib,
        "cuda_extra_mib": rss.cuda_extra_mib,
        "precision": result.precision,
        "batch": result.batch_size,
    }


def monai_labels(model, runtime, image, batch: int) -> np.ndarray:
    """MONAI's sliding window over a whole in-memory volume: normalised, softmax
    blended with napari-seg's patch, overlap and Gaussian, argmax to uint8."""
    from monai.inferers import sliding_window_inference

    def predictor(x):
        with runtime.autocast():
            return torch.softmax(model(x).float(), 1)

    with torch.inference_mode():
        x = normalised(model, image)[None].to(runtime.device)
        probs = sliding_window_inference(
            x,
            (PATCH,) * 3,
            batch,
            predictor,
            overlap=OVERLAP / PATCH,
            mode="gaussian",
            sigma_scale=0.125,
        )
        return probs[0].argmax(0).to(torch.uint8).cpu().numpy()


def case_monai(args) -> dict:
    runtime = Runtime.resolve(args.device, "auto")
    model = model_for(args.device)
    image = volume((args.size,) * 3)
    monai_labels(model, runtime, image[:100, :100, :100], batch_for(args))
    with PeakRSS() as rss:
        start = time.perf_counter()
        monai_labels(model, runtime, image, batch_for(args))
        seconds = time.perf_counter() - start
    return {
        "shape": list(image.shape),
        "seconds": seconds,
        "voxels_per_s": image.size / seconds,
        "extra_rss_mib": rss.extra_mib,
        "cuda_extra_mib": rss.cuda_extra_mib,
        "precision": runtime.precision,
        "batch": batch_for(args),
    }


def case_monai_zarr(args) -> dict:
    """MONAI on the 128x1024x1024 volume, read into memory as its users would."""
    import zarr

    runtime = Runtime.resolve(args.device, "auto")
    model = model_for(args.device)
    with PeakRSS() as rss:
        start = time.perf_counter()
        image = np.asarray(zarr.open(str(Path(args.workdir) / "image.zarr"), mode="r"))
        labels = monai_labels(model, runtime, image, batch_for(args))
        seconds = time.perf_counter() - start
    return {
        "shape": list(labels.shape),
        "seconds": seconds,
        "voxels_per_s": labels.size / seconds,
        "peak_rss_mib": rss.peak / 2**20,
        "extra_rss_mib": rss.extra_mib,
        "cuda_extra_mib": rss.cuda_extra_mib,
        "precision": runtime.precision,
        "batch": batch_for(args),
    }


def case_zarr(args, spacing=None) -> dict:
    import psutil
    import zarr

    folder = Path(args.workdir)
    image = zarr.open(str(folder / "image.zarr"), mode="r")
    out = zarr.open(
        str(folder / "labels.zarr"),
        mode="w",
        shape=image.shape,
        chunks=(64, 256, 256),
        dtype="uint8",
    )
    model = model_for(args.device)
    options = {"tile": PATCH, "overlap": OVERLAP, "device": args.device, "out": out}
    options["batch_size"] = batch_for(args)
    if spacing is not None:
        model.spec = replace(model.spec, spacing=(1.0, 1.0, 1.0))
        options["spacing"] = spacing
    with PeakRSS() as rss:
        result = predict(model, image, **options)
    voxels = int(np.prod(image.shape))
    return {
        "shape": list(image.shape),
        "seconds": result.seconds,
        "voxels_per_s": voxels / result.seconds,
        "peak_rss_mib": max(rss.peak, psutil.Process().memory_info().rss) / 2**20,
        "extra_rss_mib": rss.extra_mib,
        "cuda_extra_mib": rss.cuda_extra_mib,
        "precision": result.precision,
        "spacing": spacing,
    }


def case_zarr_resampled(args) -> dict:
    return case_zarr(args, spacing=(1.0, 0.8, 0.8))


def write_big(folder: Path, shape) -> None:
    import zarr

    z = zarr.open(str(folder / "image.zarr"), mode="w", shape=shape, chunks=(64, 256, 256),
                  dtype="uint16")  # fmt: skip
    block = volume((64, 256, 256))
    for z0 in range(0, shape[0], 64):
        for y0 in range(0, shape[1], 256):
            for x0 in range(0, shape[2], 256):
                part = block[: shape[0] - z0, : shape[1] - y0, : shape[2] - x0]
                z[z0 : z0 + 64, y0 : y0 + 256, x0 : x0 + 256] = part


CASES = {
    "raw": case_raw,
    "predict": case_predict,
    "monai": case_monai,
    "zarr": case_zarr,
    "monai_zarr": case_monai_zarr,
    "zarr_resampled": case_zarr_resampled,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="raw,predict,monai,zarr,monai_zarr")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, help="patches per batch (default: predict's choice)")
    parser.add_argument("--big", default="128,1024,1024")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"case": args.child, **CASES[args.child](args)}), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        cases = args.cases.split(",")
        if any("zarr" in c for c in cases):
            write_big(Path(tmp), tuple(int(n) for n in args.big.split(",")))
        for case in cases:
            command = [sys.executable, __file__, "--child", case, "--device", args.device]
            command += ["--size", str(args.size), "--big", args.big, "--workdir", tmp]
            command += ["--batch", str(args.batch)] if args.batch else []
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
