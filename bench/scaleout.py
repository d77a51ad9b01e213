"""Block-wise prediction on a Dask LocalCluster against single-process predict.

Input: a synthetic 8192 x 8192 uint16 image of cells (``sample_data.cells_2d``
tiles) stored as a zarr array (chunks 1024^2); model: a classic 2D U-Net (depth 3,
width 16, untrained weights: the cost of a forward does not depend on them), fp32,
tile 512, overlap 128, batch 2. Prints one JSON line per case:

- ``single``: ``predict`` in this process into a numpy array (``threads`` torch threads);
- ``blocks-here``: the same, block by block into OME-Zarr, no cluster;
- ``WxT``: ``scaleout.cluster.local_cluster``: W process workers, one Dask thread
  each, torch (and OpenMP) using T threads per worker, into OME-Zarr.

Worker processes import torch and the networks before the clock starts (this
process has them imported too). Each line gives seconds, megapixels per second,
the ratio to ``single``, the peak RSS of this process and (cluster) of each
worker, and whether the labels are
identical to ``single``'s (same thread count only: the last bits of a forward depend
on it).

Usage: python bench/scaleout.py [--size 8192] [--block 4096] [--cases single,blocks-here,1x2,2x1]
       (``WxT``: W workers, T torch threads each)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def make_input(folder: Path, size: int) -> Path:
    import zarr

    from napari_seg.sample_data import cells_2d

    tile, _ = cells_2d((1024, 1024), seed=0)
    path = folder / "big.zarr"
    array = zarr.open_array(str(path), mode="w", shape=(size, size), chunks=(1024, 1024),
                            dtype=tile.dtype)  # fmt: skip
    for y in range(0, size, 1024):
        for x in range(0, size, 1024):
            array[y : y + 1024, x : x + 1024] = np.roll(tile, (y // 7, x // 5), axis=(0, 1))
    return path


def make_model(folder: Path) -> Path:
    import torch

    from napari_seg.models import ModelSpec, create_model, save_model

    torch.manual_seed(0)
    spec = ModelSpec("unet", 1, 3, encoder="classic", options={"depth": 3, "base_width": 16})
    path = folder / "m.safetensors"
    save_model(create_model(spec), path)
    return path


def rss_mib() -> int:
    """Peak resident memory of this process (VmHWM: ru_maxrss survives exec, so a
    spawned worker would report its parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--cases", default="single,blocks-here,1x2,2x1")
    args = parser.parse_args()

    from napari_seg._generators import drain
    from napari_seg._io import read_image
    from napari_seg.inference import PredictConfig, predict
    from napari_seg.models import load_model
    from napari_seg.scaleout.run import iter_predict_blocks
    from napari_seg.scaleout.worker import prepare_worker

    folder = Path(tempfile.mkdtemp(prefix="napari-seg-bench-"))
    try:
        source, model_path = make_input(folder, args.size), make_model(folder)
        config = PredictConfig(device="cpu", precision="fp32", tile=512, overlap=128,
                               batch_size=2)  # fmt: skip
        megapixels = args.size**2 / 1e6
        reference: dict[int, np.ndarray] = {}
        base = None
        for case in args.cases.split(","):
            threads = 2 if case in ("single", "blocks-here") else int(case.split("x")[1])
            cfg = config.with_(threads=threads)
            out = folder / f"{case}.ome.zarr"
            record = {"case": case, "size": args.size, "block": args.block, "threads": threads}
            start = time.perf_counter()
            if case == "single":
                labels = predict(load_model(model_path), read_image(source), cfg).labels
            elif case == "blocks-here":
                drain(iter_predict_blocks(model_path, source, out, cfg, block=args.block))
            else:
                from distributed import Client

                from napari_seg.scaleout.cluster import local_cluster

                workers = int(case.split("x")[0])
                record["workers"] = workers
                cluster = local_cluster(workers, threads=threads, dashboard_address=":0")
                with cluster, Client(cluster) as client:
                    client.run(prepare_worker)  # imports, as the single process has them
                    start = time.perf_counter()
                    drain(iter_predict_blocks(model_path, source, out, cfg, block=args.block,
                                              client=client))  # fmt: skip
                    seconds = time.perf_counter() - start
                    peaks = client.run(rss_mib)
                record["worker_peak_rss_mib"] = sorted(peaks.values())
            seconds = time.perf_counter() - start if "workers" not in record else seconds
            if case != "single":
                import zarr

                labels = zarr.open_group(str(out), mode="r")["0"][:]
            if threads not in reference:
                reference[threads] = (
                    labels
                    if case == "single"
                    else predict(load_model(model_path), read_image(source), cfg).labels
                )
            base = base or (seconds if case == "single" else None)
            record.update(
                seconds=round(seconds, 1),
                megapixels_per_s=round(megapixels / seconds, 3),
                vs_single=None if base is None else round(base / seconds, 3),
                identical_to_single_process=bool(np.array_equal(labels, reference[threads])),
                peak_rss_mib=rss_mib(),
            )
            print(json.dumps(record), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
