"""Per architecture: parameters, GFLOP per megapixel, CPU ms per 512x512 tile.

Prints one JSON line per architecture (default encoder, 1 input channel,
3 classes, batch 1, eval mode, torch.inference_mode):

- ``ms_fp32``: NCHW float32.
- ``ms_fast``: channels_last + bfloat16 autocast when the CPU has native bf16
  (AVX512-BF16 or AMX), else channels_last float32.
- ``agreement``: fraction of pixels whose argmax is the same in both modes
  (untrained weights, on the synthetic sample image; a trained-model figure
  comes with the inference benchmark).

Usage: python bench/models.py [--size 512] [--repeats 3] [--arch NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from napari_seg.arrays.runtime import cpu_has_native_bf16
from napari_seg.models import ModelSpec, create_model, list_architectures, model_stats
from napari_seg.sample_data import cells_2d


def time_ms(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, oneDNN kernel selection)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def bench(arch: str, size: int, repeats: int, image: torch.Tensor) -> dict:
    torch.manual_seed(0)
    model = create_model(ModelSpec(arch, in_channels=1, num_classes=3)).eval()
    stats = model_stats(model)
    bf16 = cpu_has_native_bf16()

    def fp32():
        with torch.inference_mode():
            return model(image)

    fast_model = create_model(model.spec).eval()
    fast_model.load_state_dict(model.state_dict())
    fast_model = fast_model.to(memory_format=torch.channels_last)
    fast_image = image.contiguous(memory_format=torch.channels_last)

    def fast():
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return fast_model(fast_image)

    ms32, msfast = time_ms(fp32, repeats), time_ms(fast, repeats)
    agreement = float((fp32().argmax(1) == fast().float().argmax(1)).float().mean())
    return {
        "bench": "models",
        "architecture": arch,
        "encoder": model.spec.encoder,
        "parameters": stats.parameters,
        "gflop_per_megapixel": round(stats.gflops_per_megapixel, 1),
        "tile": size,
        "ms_fp32": round(ms32, 1),
        "ms_fast": round(msfast, 1),
        "fast_mode": "channels_last+bf16" if bf16 else "channels_last+fp32",
        "speedup": round(ms32 / msfast, 2),
        "agreement": round(agreement, 4),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", nargs="*", default=[a.name for a in list_architectures()])
    args = parser.parse_args()
    raw, _ = cells_2d((args.size, args.size))
    lo, hi = np.percentile(raw, (1, 99.8))
    image = torch.from_numpy(((raw - lo) / (hi - lo)).astype(np.float32))[None, None]
    for arch in args.arch:
        print(json.dumps(bench(arch, args.size, args.repeats, image)), flush=True)


if __name__ == "__main__":
    main()
