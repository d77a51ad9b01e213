"""Pixel classifier speed against the issue's targets (CPU): fit + predict of a
1-megapixel image under 2 s, and a refit + prediction of a 512x512 view under 0.5 s.

The image is scikit-image's ``coins`` tiled to 1024x1024, with the strokes the
scribble benchmark's annotator paints in its first round (bench/scribbles.py).
Prints one JSON line per repetition:

- ``train+predict``: ``napari_seg.training.train`` (architecture
  ``pixel-classifier``, features computed from scratch) then ``predict`` of the
  whole image;
- ``live``: ``LiveClassifier.update`` after one more stroke, predicting the 512x512
  view in the middle (the features are kept from the first fit, as in the dock).

Usage: ``python bench/pixel_classifier.py [--repeats 3] [--threads 2] [--device cuda]``
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    import scribbles
    from napari_seg.inference import predict
    from napari_seg.training import train
    from napari_seg.training.live import LiveClassifier

    image, reference = scribbles.load("coins")
    image = np.tile(image, (4, 3))[:1024, :1024]
    reference = np.tile(reference, (4, 3))[:1024, :1024]
    annotator = scribbles.Annotator(reference, 0)
    annotator.first_round()
    strokes = annotator.strokes
    options = {"architecture": "pixel-classifier", "label0": "unlabelled",
               "validation_fraction": 0.0, "device": args.device}  # fmt: skip
    train((image, strokes), **options)  # imports and first calls, not timed
    for _ in range(args.repeats):
        start = time.perf_counter()
        model = train((image, strokes), **options).model
        fitted = time.perf_counter()
        predict(model, image, device=args.device)
        sync(args.device)
        done = time.perf_counter()
        row = {"bench": "pixel-classifier", "case": "train+predict", "device": args.device,
               "pixels": image.size,
               "fit_s": round(fitted - start, 3), "predict_s": round(done - fitted, 3),
               "total_s": round(done - start, 3), "target_s": 2.0}  # fmt: skip
        print(json.dumps(row), flush=True)
    live = LiveClassifier(image, device=args.device)
    view = (slice(256, 768), slice(256, 768))
    live.update(strokes, 0, view)
    for k in range(args.repeats):
        strokes[300 + 10 * k, 300:340] = 1  # one more stroke
        result = live.update(strokes, 0, view)
        row = {"bench": "pixel-classifier", "case": "live", "device": args.device,
               "view": [512, 512],
               "fit_s": round(result.fit_seconds, 3),
               "predict_s": round(result.predict_seconds, 3),
               "total_s": round(result.fit_seconds + result.predict_seconds, 3),
               "target_s": 0.5}  # fmt: skip
        print(json.dumps(row), flush=True)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
