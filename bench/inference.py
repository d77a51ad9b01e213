"""Inference benchmark: raw model throughput, tiled predict, MONAI, a 16384^2 zarr, precision.

Every case runs in its own child process so that its peak memory is its own.
Prints one JSON line per case and model:

- ``raw``: the model alone on pre-cut, pre-normalised 512x512 tiles in memory
  (same precision, channels_last and batch as predict): tiles per second.
- ``predict``: ``napari_seg.inference.predict`` on a 4096x4096 uint16 image, from
  the raw array to uint8 labels (normalisation included); tiles per second
  and peak extra RSS during the call.
- ``monai``: MONAI ``sliding_window_inference`` on the same image with the same
  model, tile, overlap (0.25), Gaussian blending (sigma tile/8), precision and
  softmax blending; normalisation and argmax included.
- ``zarr``: predict on a 16384x16384 zarr image into a zarr labels store;
  peak RSS of the whole process.
- ``precision``: on a U-Net trained here for a few minutes, fp32 NCHW versus
  the default CPU mode per tile, and label agreement of the two predictions
  on an image it was not trained on.
- ``gpu`` (with ``--device cuda``): megapixels per second over a sweep of
  batch and tile, and the fraction of the card's bf16 peak that the model's
  FLOPs reach.

Usage: python bench/inference.py [--cases raw,predict,monai,zarr,precision]
       [--models unet,unet-resnet34] [--size 4096] [--big 16384] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from napari_seg.arrays.layout import resolve_layout
from napari_seg.arrays.normalize import compute_stats
from napari_seg.arrays.runtime import Runtime
from napari_seg.inference import predict
from napari_seg.models import ModelSpec, create_model, model_stats
from napari_seg.sample_data import cells_2d

MODELS = {
    "unet": ModelSpec("unet", encoder="classic", in_channels=1, num_classes=3),
    "unet-resnet34": ModelSpec("unet", encoder="resnet34", in_channels=1, num_classes=3),
}
TILE, OVERLAP = 512, 128
#: Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets.
BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L4": 121.0, "L40S": 362.0}


class PeakRSS:
    """Samples this process's resident memory every few milliseconds.

    Where CUDA is in use it also reads the peak of the tensors allocated on the
    current GPU during the block (``cuda_extra_mib``: the peak minus what was
    allocated at the start; None on the CPU).
    """

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        self.cuda_start = self.cuda_peak = 0
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.cuda_start = torch.cuda.memory_allocated()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        if self.cuda:
            torch.cuda.synchronize()
            self.cuda_peak = torch.cuda.max_memory_allocated()

    @property
    def extra_mib(self) -> float:
        return (self.peak - self.start) / 2**20

    @property
    def cuda_extra_mib(self) -> float | None:
        return (self.cuda_peak - self.cuda_start) / 2**20 if self.cuda else None


def big_image(size: int, seed: int = 0) -> np.ndarray:
    """A size x size uint16 image built from 1024x1024 synthetic cell tiles."""
    block = cells_2d((1024, 1024), seed=seed)[0]
    reps = -(-size // 1024)
    return np.tile(block, (reps, reps))[:size, :size]


def model_for(name: str, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(MODELS[name]).eval().to(device)


def normalised(model, image) -> torch.Tensor:
    layout = resolve_layout(image.shape, in_channels=1)
    stats = compute_stats(image, layout, model.spec.normalization)
    return torch.from_numpy(stats.apply(layout.read(image, (), slice(None), slice(None))))


def case_raw(args) -> dict:
    runtime = Runtime.resolve(args.device, "auto")  # what predict resolves
    device, precision = runtime.device, runtime.precision
    model = model_for(args.model, args.device).to(memory_format=torch.channels_last)
    x = normalised(model, big_image(2048))
    tiles = [x[:, y : y + TILE, xx : xx + TILE] for y in (0, 512, 1024) for xx in (0, 512)]
    batch = torch.stack(tiles[: args.batch]).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode(), runtime.autocast():
            return torch.softmax(model(batch.to(device)).float(), 1)

    run()
    n, start = 0, time.perf_counter()
    while n < args.raw_tiles:
        run()
        n += batch.shape[0]
    _sync(device)
    seconds = time.perf_counter() - start
    return {"tiles": n, "seconds": seconds, "tiles_per_s": n / seconds, "precision": precision}


def case_predict(args) -> dict:
    model = model_for(args.model, args.device)
    image = big_image(args.size)
    options = {"tile": TILE, "batch_size": args.batch, "device": args.device}
    # Warm-up with the same tile and batch: on CUDA the first batch of a new shape
    # also picks cuDNN's algorithms (0.6 s on an H200), which belongs to no image.
    predict(model, image[:600, :600], **options)
    with PeakRSS() as rss:
        result = predict(model, image, overlap=OVERLAP, **options)
    tiles = _tiles(args.size)
    return {
        "size": args.size,
        "tiles": tiles,
        "seconds": result.seconds,
        "tiles_per_s": tiles / result.seconds,
        "megapixels_per_s": args.size**2 / 1e6 / result.seconds,
        "extra_rss_mib": rss.extra_mib,
        "cuda_extra_mib": rss.cuda_extra_mib,
        "precision": result.precision,
    }


def case_monai(args) -> dict:
    from monai.inferers import sliding_window_inference

    runtime = Runtime.resolve(args.device, "auto")
    device, precision = runtime.device, runtime.precision
    model = model_for(args.model, args.device).to(memory_format=torch.channels_last)
    image = big_image(args.size)

    def predictor(x):
        x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast():
            return torch.softmax(model(x).float(), 1)

    def run(img):
        with torch.inference_mode():
            x = normalised(model, img)[None].to(device)
            probs = sliding_window_inference(
                x,
                (TILE, TILE),
                args.batch,
                predictor,
                overlap=OVERLAP / TILE,
                mode="gaussian",
                sigma_scale=0.125,
            )
            return probs[0].argmax(0).to(torch.uint8).cpu().numpy()

    run(image[:600, :600])
    with PeakRSS() as rss:
        start = time.perf_counter()
        labels = run(image)
        seconds = time.perf_counter() - start
    return {
        "size": args.size,
        "tiles": _tiles(args.size),
        "seconds": seconds,
        "tiles_per_s": _tiles(args.size) / seconds,
        "megapixels_per_s": args.size**2 / 1e6 / seconds,
        "extra_rss_mib": rss.extra_mib,
        "cuda_extra_mib": rss.cuda_extra_mib,
        "precision": precision,
        "labels_shape": list(labels.shape),
    }


def case_zarr(args) -> dict:
    import psutil
    import zarr

    folder = Path(args.workdir)
    image = zarr.open(str(folder / "image.zarr"), mode="r")
    out = zarr.open(
        str(folder / "labels.zarr"), mode="w", shape=image.shape, chunks=(1024, 1024), dtype="uint8"
    )
    model = model_for(args.model, args.device)
    with PeakRSS() as rss:
        result = predict(model, image, out=out, tile=TILE, overlap=OVERLAP, device=args.device)
    import resource

    return {
        "size": image.shape[0],
        "tiles": _tiles(image.shape[0]),
        "seconds": result.seconds,
        "megapixels_per_s": image.shape[0] ** 2 / 1e6 / result.seconds,
        "peak_rss_mib": max(rss.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        / 2**20,
        "rss_before_mib": rss.start / 2**20,
        "total_ram_gib": psutil.virtual_memory().total / 2**30,
        "class_counts_sampled": np.bincount(np.asarray(out[::256, ::256]).ravel()).tolist(),
    }


def train_briefly(model, seconds: float) -> float:
    """A short supervised run on synthetic cells; returns the final loss."""
    image, labels = cells_2d((1024, 1024), seed=11)
    x = normalised(model, image)
    y = torch.from_numpy(labels.astype(np.int64))
    rng = np.random.default_rng(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    start, loss = time.perf_counter(), torch.tensor(0.0)
    while time.perf_counter() - start < seconds:
        ys, xs = rng.integers(0, 1024 - 256, 2), rng.integers(0, 1024 - 256, 2)
        xb = torch.stack([x[:, a : a + 256, b : b + 256] for a, b in zip(ys, xs, strict=True)])
        yb = torch.stack([y[a : a + 256, b : b + 256] for a, b in zip(ys, xs, strict=True)])
        with torch.autocast("cpu", torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(xb).float(), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss)


def case_precision(args) -> dict:
    model = model_for(args.model, "cpu")
    loss = train_briefly(model, args.train_seconds)
    image, truth = cells_2d((2048, 2048), seed=99)
    fast = predict(model, image, tile=TILE, overlap=OVERLAP)
    fp32 = predict(model, image, tile=TILE, overlap=OVERLAP, precision="fp32")
    iou = [
        float(
            ((fast.labels == c) & (truth == c)).sum()
            / max(1, ((fast.labels == c) | (truth == c)).sum())
        )
        for c in (1, 2)
    ]
    x = normalised(model, image)[None, :, :TILE, :TILE].contiguous()
    nchw = create_model(model.spec).eval()
    nchw.load_state_dict(model.state_dict())

    def time_it(fn, repeats=5):
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return 1000 * (time.perf_counter() - start) / repeats

    def fp32_nchw():
        with torch.inference_mode():
            return nchw(x)

    cl_model = model.to(memory_format=torch.channels_last)
    xcl = x.contiguous(memory_format=torch.channels_last)

    def default():
        with torch.inference_mode(), Runtime.resolve("cpu", fast.precision).autocast():
            return cl_model(xcl)

    ms32, msfast = time_it(fp32_nchw), time_it(default)
    return {
        "train_seconds": args.train_seconds,
        "final_loss": loss,
        "iou_classes_1_2": iou,
        "default_precision": fast.precision,
        "ms_per_tile_fp32_nchw": ms32,
        "ms_per_tile_default": msfast,
        "speedup": ms32 / msfast,
        "label_agreement": float((fast.labels == fp32.labels).mean()),
    }


def case_gpu(args) -> dict:
    device = torch.device(args.device)
    model = model_for(args.model, args.device)
    image = big_image(8192)
    rows = []
    for tile in (512, 1024, 2048):
        for batch in (4, 8, 16, 32):
            if batch * tile * tile > 32 * 1024 * 1024:
                continue
            predict(
                model,
                image[:2048, :2048],
                tile=tile,
                batch_size=batch,
                device=args.device,
                precision="bf16",
            )
            result = predict(
                model,
                image,
                tile=tile,
                overlap=tile // 8,
                batch_size=batch,
                device=args.device,
                precision="bf16",
            )
            rows.append((image.size / 1e6 / result.seconds, tile, batch, result.batch_size))
    best = max(rows)
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    gflop_mp = model_stats(model).gflops_per_megapixel
    # Pixels computed include the overlap: (tile / (tile - overlap))^2 more than the image.
    overhead = (best[1] / (best[1] - best[1] // 8)) ** 2
    achieved = best[0] * overhead * gflop_mp / 1e3  # TFLOP/s
    return {
        "device": name,
        "megapixels_per_s": best[0],
        "tile": best[1],
        "batch": best[2],
        "sweep": rows,
        "gflop_per_megapixel": gflop_mp,
        "achieved_tflops": achieved,
        "bf16_peak_tflops": peak,
        "percent_of_peak": 100 * achieved / peak if peak else None,
    }


def _tiles(size: int) -> int:
    from napari_seg.inference import tile_starts

    return len(tile_starts(size, TILE, OVERLAP)) ** 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CASES = {
    "raw": case_raw,
    "predict": case_predict,
    "monai": case_monai,
    "zarr": case_zarr,
    "precision": case_precision,
    "gpu": case_gpu,
}


def write_big_zarr(folder: Path, size: int) -> None:
    import zarr

    store = zarr.open(
        str(folder / "image.zarr"),
        mode="w",
        shape=(size, size),
        chunks=(1024, 1024),
        dtype="uint16",
    )
    block = big_image(2048, seed=3)
    for y in range(0, size, 2048):
        for x in range(0, size, 2048):
            store[y : y + 2048, x : x + 2048] = block


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="raw,predict,monai,zarr,precision")
    p.add_argument("--models", default="unet,unet-resnet34")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--big", type=int, default=16384)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=1, help="tiles per batch (raw, predict, monai)")
    p.add_argument("--raw-tiles", type=int, default=24)
    p.add_argument("--train-seconds", type=float, default=240)
    p.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main() -> None:
    args = parse()
    if args.child:
        row = {
            "bench": "inference",
            "case": args.child,
            "model": args.model,
            "device": args.device,
            "batch": args.batch,
            "tile": TILE,
            "overlap": OVERLAP,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }
        row.update(CASES[args.child](args))
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
        return
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory(prefix="napari-seg-bench-") as workdir:
        if "zarr" in cases:
            write_big_zarr(Path(workdir), args.big)
        for case in cases:
            models = ["unet"] if case in ("zarr", "precision") else args.models.split(",")
            for name in models:
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    case,
                    "--model",
                    name,
                    "--workdir",
                    workdir,
                    *sys.argv[1:],
                ]
                done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
                if done.returncode:
                    print(
                        json.dumps(
                            {
                                "bench": "inference",
                                "case": case,
                                "model": name,
                                "error": done.stderr.strip().splitlines()[-1:],
                            }
                        )
                    )
                else:
                    print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
