"""Responsiveness benchmark: how long napari's main thread stalls while a dock works.

A 10 ms QTimer on the main thread records when it fires while the Train,
Segment or Refine dock runs a job in a real viewer (opened from the plugin's
manifest, as a user opens it). Gaps between ticks above 10 ms are time the
main thread could not serve the user. Prints one JSON line per case and run:
number of gaps, p50 / p99 / max in ms, the five worst gaps (``worst_ms``) and when
each began (``worst_at_s``, seconds from the start), and the job's wall time. Targets
(issue 13): p99 < 20 ms and max < 100 ms.

With ``--why``, a watchdog thread samples the main thread's Python stack
whenever it has not ticked for 30 ms (``--why-ms``) and prints the most frequent
stacks: where the stalls come from.

Usage (needs a display; on a headless machine run it under Xvfb):
    xvfb-run -a -s "-screen 0 1600x1000x24" python bench/responsiveness.py
        [--cases train,segment,refine] [--runs 3] [--why [--why-ms 30]]
    xvfb-run -a -s "-screen 0 1600x1000x24" python bench/responsiveness.py --cases train-at-once
    xvfb-run -a -s "-screen 0 1600x1000x24" python bench/responsiveness.py --cases open --runs 1

Each line also counts the garbage collector's full passes in the measured time and
its longest pass (any generation): the GIL is held for the whole pass.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import sys
import threading
import time
import traceback

import numpy as np

#: How long the main thread must not tick before ``--why`` samples the stacks (``--why-ms``).
WHY_S = 0.03


class Heartbeat:
    """A 10 ms timer on the main thread, and optionally a stall sampler."""

    def __init__(self, why: bool) -> None:
        from qtpy.QtCore import QTimer

        self.stamps: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.why = why
        self.stalls: collections.Counter = collections.Counter()
        self._main = threading.get_ident()
        self._done = threading.Event()
        self.collections: list[tuple[int, float]] = []  # (generation, ms) of each GC pass
        self._gc_start = 0.0

    def _gc(self, phase: str, info: dict) -> None:
        # Python's cyclic garbage collector holds the GIL for the whole pass, whichever
        # thread runs it: a full pass over napari + torch's heap stalls the main thread.
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            ms = (time.perf_counter() - self._gc_start) * 1000
            self.collections.append((info["generation"], ms))

    def _tick(self) -> None:
        self.stamps.append(time.perf_counter())

    def _watch(self) -> None:
        me = threading.get_ident()
        while not self._done.wait(0.005):
            if self.stamps and time.perf_counter() - self.stamps[-1] > WHY_S:
                # The main thread's stack, and the others' (one of them may hold the GIL).
                for ident, frame in sys._current_frames().items():
                    if ident == me:
                        continue
                    stack = traceback.extract_stack(frame)[-5:][::-1]
                    where = "main" if ident == self._main else "other"
                    key = f"[{where}] " + " <- ".join(
                        f"{f.name}@{f.filename.split('/')[-1]}:{f.lineno}" for f in stack
                    )
                    self.stalls[key] += 1

    def __enter__(self) -> Heartbeat:
        gc.callbacks.append(self._gc)
        self.timer.start()
        if self.why:
            threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.stop()
        self._done.set()
        gc.callbacks.remove(self._gc)

    def summary(self) -> dict:
        gaps = np.diff(self.stamps) * 1000
        worst = np.argsort(gaps)[::-1][:5]
        return {
            "gaps": int(gaps.size),
            "p50_ms": round(float(np.percentile(gaps, 50)), 1),
            "p99_ms": round(float(np.percentile(gaps, 99)), 1),
            "max_ms": round(float(gaps.max()), 1),
            "worst_ms": [round(float(gaps[i]), 1) for i in worst],
            # when each of those gaps began, in seconds from the start of the measurement
            "worst_at_s": [round(self.stamps[i] - self.stamps[0], 2) for i in worst],
            "gc_full_passes": sum(1 for g, _ in self.collections if g == 2),
            "gc_longest_ms": round(max((ms for _, ms in self.collections), default=0.0), 1),
        }


def _wait(app, widget) -> None:
    """Run Qt's event loop until the dock's job has finished, then 0.5 s more (the
    result's layer appears and draws)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    if widget.runner.worker is not None:
        widget.runner.worker.finished.connect(loop.quit)
        loop.exec()
    QTimer.singleShot(500, loop.quit)
    loop.exec()


def _model():
    import torch

    from napari_seg.models import ModelSpec, create_model
    from napari_seg.sample_data import CLASS_NAMES

    torch.manual_seed(0)
    spec = ModelSpec("unet", 1, 3, class_names=CLASS_NAMES, options={"depth": 3, "base_width": 8})
    return create_model(spec).eval()


def case_train(viewer, app, why: bool, *, at_once: bool = False) -> dict:
    """Train from the Train dock; ``at_once``: Start as soon as the dock opens, while
    the training process still imports (the ``train-at-once`` case)."""
    from napari_seg.sample_data import cells_2d

    if at_once:  # a training process left by an earlier run would be ready already
        from napari_seg.training.process import shutdown_idle

        shutdown_idle()
    image, labels = cells_2d((512, 512), seed=2)
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="truth")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-seg", "Train")
    w.current.set(_model(), path=None, dirty=True)
    w.reset_choices()
    w._image.value, w._labels.value = viewer.layers["cells"], viewer.layers["truth"]
    w._label0.value = "background"
    w._budget_unit.value = "epochs"
    w._budget.value = 10
    w._batch.value = 4
    w._patch.value = 128
    # As a user does (choosing layers and settings takes seconds), start once the dock's
    # background imports are done and its training process is ready.
    from napari_seg._widgets._shared import warm_training

    if not at_once:
        warm_training().result().wait(timeout=300)
    with Heartbeat(why) as beat:
        start = time.perf_counter()
        w.start()
        _wait(app, w)
        seconds = time.perf_counter() - start
    return {**beat.summary(), "seconds": round(seconds, 1), "why": beat.stalls.most_common(8)}


def case_segment(viewer, app, why: bool) -> dict:
    """Segment a 3072^2 image twice: the first run adds the labels layer, the second
    updates it (one undoable write). The figures are the first run's; ``second_*`` the
    second's."""
    from napari_seg.sample_data import cells_2d

    layer = viewer.add_image(cells_2d((3072, 3072))[0], name="cells")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-seg", "Segment")
    w.current.set(_model(), path=None, dirty=True)
    w.reset_choices()
    w._image.value = layer
    w._tile.value = 512
    w._precision.value = "fp32"
    # As for train: the dock's one-time background imports (the ``open`` case) are
    # done, as they are while a user picks an image and settings.
    from napari_seg._widgets._shared import warm_labels

    warm_labels().result()
    results = []
    for _ in range(2):
        with Heartbeat(why) as beat:
            start = time.perf_counter()
            w.run()
            _wait(app, w)
            seconds = time.perf_counter() - start
        results.append(
            {**beat.summary(), "seconds": round(seconds, 1), "why": beat.stalls.most_common(8)}
        )
    second = {f"second_{k}": v for k, v in results[1].items()}
    return {**results[0], **second}


def case_refine(viewer, app, why: bool) -> dict:
    from napari_seg.sample_data import cells_3d

    _, labels = cells_3d((64, 512, 512), seed=1)
    layer = viewer.add_labels(labels, name="labels")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-seg", "Refine")
    w.reset_choices()
    w._labels.value = layer
    w._op.value = "majority"
    w._scope.value = "each"
    for field in w._params:
        if field.name == "radius":
            field.value = 2
    with Heartbeat(why) as beat:
        start = time.perf_counter()
        w.apply()
        _wait(app, w)
        seconds = time.perf_counter() - start
    return {**beat.summary(), "seconds": round(seconds, 1), "why": beat.stalls.most_common(8)}


def case_open(viewer, app, why: bool) -> dict:
    """Open the Train dock, then the Segment dock, 3 s each: what the docks' one-time
    background imports (torch._dynamo, pandas) cost the main thread. Meaningful in
    a fresh process only (``--cases open --runs 1``): the imports happen once."""
    from qtpy.QtCore import QEventLoop, QTimer

    from napari_seg.sample_data import cells_2d

    _model()  # torch imported, as when a user has loaded a model
    viewer.add_image(cells_2d((3072, 3072))[0], name="cells")
    for _ in range(20):
        app.processEvents()
    with Heartbeat(why) as beat:
        start = time.perf_counter()
        for name in ("Train", "Segment"):
            viewer.window.add_plugin_dock_widget("napari-seg", name)
            loop = QEventLoop()
            QTimer.singleShot(3000, loop.quit)
            loop.exec()
        seconds = time.perf_counter() - start
    return {**beat.summary(), "seconds": round(seconds, 1), "why": beat.stalls.most_common(8)}


CASES = {
    "open": case_open,
    "train": case_train,
    "train-at-once": lambda viewer, app, why: case_train(viewer, app, why, at_once=True),
    "segment": case_segment,
    "refine": case_refine,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="train,segment,refine")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--why", action="store_true", help="sample the main thread's stalls")
    parser.add_argument("--why-ms", type=float, default=30.0, help="a stall, for --why")
    args = parser.parse_args()
    global WHY_S
    WHY_S = args.why_ms / 1000
    import napari
    from qtpy.QtWidgets import QApplication

    for name in args.cases.split(","):
        for run in range(args.runs):
            viewer = napari.Viewer(show=True)
            viewer.window._qt_window.resize(1600, 1000)
            app = QApplication.instance()
            for _ in range(20):
                app.processEvents()
            result = CASES[name](viewer, app, args.why)
            whys = {key: result.pop(key) for key in [k for k in result if k.endswith("why")]}
            print(json.dumps({"case": name, "run": run + 1, **result}), flush=True)
            if args.why:
                for key, why in whys.items():
                    print(f"  {key}:", flush=True)
                    for stack, count in why:
                        print(f"    {count:4d}  {stack}", flush=True)
            viewer.close()


if __name__ == "__main__":
    main()
