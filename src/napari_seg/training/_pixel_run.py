"""A pixel classifier's run: fitted in seconds on the annotations, validated on the
held-out strokes or blocks, fitted again on all of them, saved (the part of
:class:`~napari_seg.training.loop._Trainer` that is not gradient descent)."""

from __future__ import annotations

import threading

from .._generators import Returning
from ..arrays.runtime import Runtime
from ._records import RunRecords
from ._runtime import Clock
from .data import TrainingData
from .events import EpochEnd, FitProgress, ModelSaved, StepProgress, TrainResult, TrainWarning
from .history import history_entry
from .validation import Validation, validate
from .volume import VolumeData


class PixelRun(RunRecords):
    """The pixel-classifier steps of a run; mixed into the trainer, whose attributes
    and bookkeeping (:class:`~napari_seg.training._records.RunRecords`) they use."""

    runtime: Runtime

    def _fit_inner_classifier(self) -> None:
        """An auto-context network's pixel classifier is fitted on the training
        annotations before its U-Net trains (unless it comes fitted)."""
        from ..models._stacked import StackedNet
        from .pixel import fit_pixel_classifier

        net = self.model.net
        if isinstance(net, StackedNet) and not bool(net.pixel.fitted):
            assert isinstance(self.data, TrainingData)  # the auto-context network is 2D only
            fit_pixel_classifier(
                self.model, self.data, seed=self.config.seed, threads=self.config.threads
            )

    def fit_pixel(self, stop: threading.Event):
        """A pixel classifier's run: fit, validate on held-out strokes or blocks, fit
        again on every annotation (the figure is then a slightly pessimistic one), save."""
        st, clock = self.state, Clock()
        if isinstance(self.data, VolumeData):
            error, val = yield from self._fit_volume(stop, clock)
        else:
            error, val = yield from self._fit_planes(stop, clock)
        if stop.is_set():
            yield TrainWarning(
                "stopped: the pixel classifier is fitted on the annotations read before the "
                "stop, without validation"
            )
        st.epoch, st.elapsed_s = 1, clock.elapsed()
        self._track_best(val.score)
        st.history.append(history_entry(st, error, val, 0.0, clock.elapsed()))
        event = EpochEnd(1, error, val.loss, val.score, val.class_scores, 0.0, clock.elapsed(),
                         True, val.metric)  # fmt: skip
        yield from clock.outside(event)
        return (yield from self._finish_pixel(clock, val))

    def _fit_planes(self, stop: threading.Event, clock: Clock):
        """Fit on the planes' training annotations, validate, fit again on all."""
        from .pixel import FeatureCache, fit_pixel_classifier

        data, seed, threads = self.data, self.config.seed, self.config.threads
        assert isinstance(data, TrainingData)
        cache = FeatureCache()  # the refit reuses the windows' features
        error = fit_pixel_classifier(self.model, data, seed=seed, cache=cache, threads=threads,
                                     stop=stop).error  # fmt: skip
        self.state.steps = 1
        yield from clock.outside(StepProgress(1, 1, 1, error, 0.0, clock.elapsed(), 1.0))
        self.model.eval()
        if stop.is_set():
            return error, Validation(float("nan"), float("nan"), {}, data.validation_metric)
        val = validate(self.model, data, self.loss, self.runtime, self.config.batch_size)
        if data.regions:
            data.release_held_out()
            fit_pixel_classifier(self.model, data, seed=seed, cache=cache, threads=threads)
        return error, val

    def _fit_volume(self, stop: threading.Event, clock: Clock):
        """Read the volumes' blocks once (progress after each), fit, validate, fit
        again on all (:func:`~napari_seg.training.pixel.iter_fit_volume`)."""
        from .pixel import iter_fit_volume

        assert isinstance(self.data, VolumeData)
        fitting = Returning(iter_fit_volume(self.model, self.data, self.loss,
                                            seed=self.config.seed, threads=self.config.threads,
                                            stop=stop))  # fmt: skip
        for done, total in fitting:
            yield from clock.outside(FitProgress(done, total, clock.elapsed()))
        fit, val = fitting.value
        self.state.steps = 1
        yield from clock.outside(StepProgress(1, 1, 1, fit.error, 0.0, clock.elapsed(), 1.0))
        if self.data.regions and not stop.is_set():
            self.data.release_held_out()
        self.model.eval()
        return fit.error, val

    def _finish_pixel(self, clock: Clock, val: Validation):
        from ..models import save_model

        self.model.card = {"provenance": {"training": self._summary("fitted")}}
        if self.out is not None:
            provenance = {"created_by": "napari-seg train", "training": self._summary("fitted")}
            save_model(self.model, self.out, overwrite=True, provenance=provenance)
            yield from clock.outside(ModelSaved(self.out, "best", 1, val.score, val.metric))
        st = self.state
        return TrainResult(
            model=self.model,
            config=self.config,
            best_path=self.out,
            last_path=None,
            summary_path=self._write_summary("fitted"),
            stopped="fitted",
            epochs=1,
            steps=st.steps,
            seconds=clock.elapsed(),
            history=list(st.history),
            metrics=self._metrics(),
            losses=list(st.losses),
        )
