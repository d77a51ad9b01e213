"""The demo, GUI part: napari with the sample, the widgets docked, and the whole loop run.

The loop: the Model widget creates a U-Net; Train fine-tunes it briefly on the
top rows of the sample (a cropped pair of layers); Segment segments the whole
image; Evaluate scores it against the ground truth and shows the error
overlay. Each step starts when the previous one's worker has returned, so
the window stays responsive throughout, and the user can take over at any
point.
"""

from __future__ import annotations

import napari
from qtpy.QtCore import QTimer

from ..demo import TRAIN_ROWS
from ..sample_data import CLASS_NAMES, label_layer_kwargs
from ._evaluate import EvaluateWidget, evaluate_widget
from ._model import ModelWidget, model_widget
from ._segment import SegmentWidget, segment_widget
from ._train import TrainWidget, train_widget

#: Training budget of the GUI demo, in minutes.
DEMO_MINUTES = 0.5


class DemoLoop:
    """Chains train -> segment -> evaluate once the demo model exists."""

    def __init__(
        self,
        viewer: napari.Viewer,
        model: ModelWidget,
        train: TrainWidget,
        segment: SegmentWidget,
        evaluate: EvaluateWidget,
    ) -> None:
        self.viewer, self.model, self.train = viewer, model, train
        self.segment, self.evaluate = segment, evaluate
        self.stage = "creating model"
        self._trained = None  # the training job's result, once it has returned
        model.current.connect(self._on_model)

    def _on_model(self, current) -> None:
        if self.stage != "creating model" or current.model is None:
            return
        self.stage = "training"
        self.train.start()
        if self.train._worker is None:  # it could not start; the notification says why
            self.stage = "stopped"
            return
        # The Train dock applies its result (the trained model becomes the current
        # one) when the worker finishes; this loop's handler, connected after the
        # dock's, runs after it, so Segment gets the trained model.
        self.train._worker.returned.connect(self._keep_trained)
        self.train._worker.finished.connect(self._on_trained)

    def _keep_trained(self, result) -> None:
        self._trained = result

    def _on_trained(self) -> None:
        if self._trained is None:
            self.stage = "stopped"
            return
        self.stage = "segmenting"
        self.segment.reset_choices()
        self.segment._image.value = self.viewer.layers["cells2d"]
        self.segment.run()
        if self.segment._worker is not None:
            self.segment._worker.finished.connect(self._on_segmented)

    def _on_segmented(self) -> None:
        predictions = [
            layer for layer in self.viewer.layers if layer.name.startswith("cells2d labels")
        ]
        if not predictions:
            self.stage = "stopped"
            return
        self.stage = "evaluating"
        self.evaluate.reset_choices()
        self.evaluate._pred.value = predictions[-1]
        self.evaluate._gt.value = self.viewer.layers["cells2d ground truth"]
        self.evaluate.run()
        if self.evaluate._worker is not None:
            self.evaluate._worker.finished.connect(self._on_evaluated)

    def _on_evaluated(self) -> None:
        self.stage = "showing errors"
        self.evaluate.show_errors()
        if self.evaluate._worker is None:
            self.stage = "stopped"
            return
        self.evaluate._worker.finished.connect(self._on_errors_shown)

    def _on_errors_shown(self) -> None:
        self.stage = "done"


def open_demo_viewer(*, show: bool = True, minutes: float = DEMO_MINUTES):
    """A viewer with the 2D sample, the four widgets, and the demo loop started.

    Returns
    -------
    viewer : napari.Viewer
    loop : DemoLoop
        Its ``stage`` says how far the loop is ("done" at the end).
    """
    viewer = napari.Viewer(title="napari-seg demo", show=show)
    viewer.open_sample("napari-seg", "cells2d")
    image = viewer.layers["cells2d"].data
    truth = viewer.layers["cells2d ground truth"].data
    viewer.add_image(image[:TRAIN_ROWS], name="cells2d top rows", colormap="gray", visible=False)
    viewer.add_labels(
        truth[:TRAIN_ROWS], **label_layer_kwargs("cells2d top rows labels"), visible=False
    )
    model = model_widget(viewer)
    viewer.window.add_dock_widget(model, name="Model", area="right")
    model._classes.value = len(CLASS_NAMES)
    model._class_names.value = ", ".join(CLASS_NAMES)
    train = _demo_train_widget(viewer, minutes)
    segment = segment_widget(viewer)
    evaluate = evaluate_widget(viewer)
    viewer.window.add_dock_widget(train, name="Train", area="right", tabify=True)
    segment_dock = viewer.window.add_dock_widget(segment, name="Segment", area="right")
    viewer.window.add_dock_widget(evaluate, name="Evaluate", area="right", tabify=True)
    loop = DemoLoop(viewer, model, train, segment, evaluate)
    model.create_model()  # runs in a worker; the loop starts when the model is ready
    QTimer.singleShot(0, segment_dock.raise_)
    return viewer, loop


def _demo_train_widget(viewer: napari.Viewer, minutes: float) -> TrainWidget:
    train = train_widget(viewer)
    train.reset_choices()
    train._image.value = viewer.layers["cells2d top rows"]
    train._labels.value = viewer.layers["cells2d top rows labels"]
    train._label0.value = "background"
    train._budget_unit.value = "minutes"
    train._budget.value = minutes
    train.settings.lr.value = 2e-3
    return train


def run_gui() -> None:
    """Open the demo viewer and run napari's event loop until it is closed."""
    open_demo_viewer()
    napari.run()
