"""The "Segment" dock widget: tiled prediction of an Image layer into a Labels layer."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, PushButton
from napari.utils.notifications import show_error, show_info, show_warning

from .._layers import GEOMETRY_KEY, labels_layer_kwargs
from .._paths import user_path
from ..inference.config import PredictConfig
from ..inference.events import (
    PredictProgress,
    PredictStarted,
    PredictWarning,
    SettingsAdjusted,
)
from ..inference.scope import ScopePlan, plan_scope
from ..scaleout.run import BlockDone, BlocksStarted
from ._current import CurrentModel
from ._dock import Dock
from ._fields import model_file_problem
from ._layers import (
    add_labels,
    file_spacing_note,
    layer_spacing,
    level_data,
    level_factors,
    viewer_position,
)
from ._model import load_job
from ._place import Place
from ._runner import JobRunner, RunnerFields
from ._segment_cluster import check_cluster_job, cluster_job, open_lazily
from ._segment_fields import SegmentFields
from ._segment_output import (
    Placement,
    Segmented,
    layer_to_update,
    predict_job,
    write_labels,
    write_objects,
    write_probabilities,
)
from ._shared import (
    current_model_for,
    device_choices,
    fill_device_choices,
    job_threads,
    same_layer,
    warm_labels,
)

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)


class SegmentWidget(SegmentFields, RunnerFields, Dock):
    """Segment an Image layer with the current model, tile by tile, in a worker.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    current : CurrentModel, optional
        The model holder shared with the Model widget of ``viewer``.
    """

    def __init__(self, viewer: napari.viewer.Viewer, current: CurrentModel | None = None):
        super().__init__(viewer)
        self.current = current if current is not None else current_model_for(viewer)
        self._placement: Placement | None = None
        self._image_layer = None
        self._held = None  # the model the running job uses (CurrentModel.hold)
        self._head = ""
        self._resampled = ""  # "; at the model's voxel size (...)" of a resampled run
        self._ensemble = 0  # the run's "average with" files
        self._make_model_fields()
        self._load = PushButton(text="Load model file")
        self._device = ComboBox(label="device", choices=device_choices, value="auto")
        self._make_tiling_fields()
        self._make_output_fields()
        self._run = PushButton(text="Segment")
        self.runner = JobRunner(
            "Segment",
            busy=[self._run],
            notify_error=lambda message: show_error(message),
            notify_warning=lambda message: show_warning(message),
        )
        self._loader = JobRunner(
            "Segment",
            busy=[self._load],
            cancel=False,
            notify_error=lambda message: show_error(message),
        )
        self.body.extend(
            [
                self._image,
                self._model_info,
                self._model_path,
                self._load,
                self._members,
                self._device,
                self._tile,
                self._overlap,
                self._batch,
                self._threads,
                self._precision,
                self._scope,
                self._level,
                self._tta,
                self._probabilities,
                self._objects,
                self._update,
                self.cluster.container,
                *self.runner.widgets,
            ]
        )
        self._connect()
        self._on_model_changed(self.current)
        fill_device_choices(self._device)
        self._on_image_changed(self._image.value)
        warm_labels()  # the result's Labels layer then appears without a stall

    def _connect(self) -> None:
        self._run.clicked.connect(self.run)
        self._load.clicked.connect(self.load_model)
        self._image.changed.connect(self._on_image_changed)
        self.current.connect(self._on_model_changed)
        self.native.destroyed.connect(self._on_destroyed)

    # -- mapping fields to a config ------------------------------------------------
    def config(self, plan: ScopePlan | None = None, layer=None) -> PredictConfig:
        """The :class:`PredictConfig` the fields describe (validated); with a plan and
        its layer, the layer's scale along the model's axes is the image's spacing
        (unless it is napari's default of 1 everywhere, which says nothing; then the
        pixel size the layer's TIFF declares, with a note)."""
        spacing = unit = None
        if plan is not None and layer is not None and plan.spatial:
            spacing, unit, source = layer_spacing(layer, plan.spatial)
            if source is not None and spacing is not None:
                show_info(file_spacing_note(layer.name, source, spacing, unit, "segmenting"))
        return PredictConfig(
            device=self._device.value,
            tile=self._tile.value,
            overlap=self._overlap.value,
            batch_size=self._batch.value,
            threads=self._threads.value,
            precision=self._precision.value,
            probabilities=self._probabilities.value,
            tta=self._tta.value,
            channel_axis=None if plan is None else plan.channel_axis,
            axis=None if plan is None else plan.axis,
            spacing=spacing,
            spacing_unit=unit,
        ).validate()

    def _plan(self, layer, model) -> ScopePlan:
        """Describe the viewer's state for :func:`plan_scope` (main thread)."""
        displayed, step = viewer_position(self._viewer, layer)
        level = self._chosen_level(layer)
        factors = level_factors(layer, level)
        step = [int(s // f) for s, f in zip(step, factors[: len(step)], strict=True)]  # RGB: 1 less
        visible = None
        if self._scope.value == "visible":
            if level:
                raise ValueError("the visible-region scope runs at level 0; choose another scope")
            corners = np.asarray(layer.corner_pixels)
            visible = [(int(lo), int(hi) + 1) for lo, hi in corners.T]
        return plan_scope(
            level_data(layer, level).shape,
            in_channels=model.spec.in_channels,
            rgb=bool(layer.rgb),
            displayed=displayed,
            step=step,
            scope=self._scope.value,
            visible=visible,
            spatial_dims=model.spec.spatial_dims,
        )

    # -- actions ---------------------------------------------------------------------
    def run(self) -> None:
        """Segment the chosen image with the current model in a worker."""
        model, layer = self.current.model, self._image.value
        if self.runner.running:
            show_warning("Segment is already running; cancel it first")
            return
        if model is None:
            show_error("Cannot segment: no model yet (create or load one)")
            return
        if layer is None:
            show_error("Cannot segment: choose an Image layer")
            return
        try:
            plan = self._plan(layer, model)
            config = self.config(plan, layer)
            members = self._member_files()
            # A cluster's workers keep their own thread counts ("CPU threads" is this process's).
            remote = None
            if self.cluster.remote:
                remote = self._cluster_args(layer, plan, config.with_(threads=None), members)
            objects = self._objects_axes(model, plan, remote is not None)
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot segment {layer.name}: {exc}")
            return
        self._ensemble = len(members)  # models averaged with the current one
        self._placement = self._describe_run(layer, plan, model)
        if self._placement.place.note:
            show_warning(self._placement.place.note)
        self._image_layer = layer
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        self._held = model
        self.current.hold(model)  # replaced during the run, it stays where it runs
        if remote is not None:
            self.runner.start(cluster_job, *remote, on_event=self._on_event,
                              on_result=self._on_cluster_returned, on_error=self._on_error,
                              on_finished=self._on_finished)  # fmt: skip
            return
        updated = layer_to_update(
            self._viewer, self._placement.labels_name, plan, self._update.value
        )
        self.runner.start(
            predict_job,
            model,
            level_data(layer, self._chosen_level(layer))[plan.data_index],
            config.with_(threads=config.threads or job_threads("segment")),  # beside the window
            None if updated is None else (updated.data, plan.labels_index),
            objects,
            members,
            on_event=self._on_event,
            on_result=self._on_returned,
            on_error=self._on_error,
            on_finished=self._on_finished,
        )

    def _objects_axes(self, model, plan: ScopePlan, remote: bool) -> tuple[int, ...] | None:
        """The labels' slice axes when objects are asked for, else None; ValueError for
        a model whose objects cannot be told, or a cluster run (main thread)."""
        from ..arrays.axes import output_axes
        from ..refine import objects_job

        if not self._objects.value:
            return None
        if remote:
            raise ValueError("objects need the whole result here; untick 'also output objects' "
                             "for a cluster run and use Refine on its labels")  # fmt: skip
        objects_job(model.spec.class_names, background=model.spec.background)
        return output_axes(plan.axis or (), plan.channel_axis)

    def _member_files(self) -> tuple[Path, ...]:
        """The "average with" files (checked to exist), or ValueError (main thread)."""
        paths = tuple(user_path(p) for p in self._members.value or ())
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ValueError(f"average with: no model file at {', '.join(missing)}")
        return paths

    def cancel(self) -> None:
        """Stop the running job at its next batch; no layer is changed."""
        self.runner.cancel()

    def load_model(self) -> None:
        """Load the "model file" into the current model (shared with Model), in a worker."""
        problem = model_file_problem(self._model_path.value)
        if problem:
            show_error(f"Cannot load model: {problem}")
            return
        path = user_path(self._model_path.value)
        device = "cpu" if self._device.value == "auto" else self._device.value
        self._loader.start(load_job, path, device, on_result=self._on_model_loaded)

    # -- helpers -----------------------------------------------------------------
    def _describe_run(self, layer, plan: ScopePlan, model) -> Placement:
        spec = model.spec
        keep = list(range(layer.ndim))
        if not layer.rgb and plan.channel_axis is not None:
            # A channel axis among the layer's axes has no place in the labels' scale/translate.
            kept = [i for i, a in enumerate(plan.data_index) if not isinstance(a, int)]
            keep.remove(kept[plan.channel_axis])
        if self.current.path is not None:
            tag = self.current.path.stem
        else:
            tag = "-".join(p for p in (spec.architecture, spec.encoder) if p)
        if self._ensemble:  # an ensemble's outputs are not the model's alone
            tag += f" + {self._ensemble}"
        factors = level_factors(layer, self._chosen_level(layer))
        return Placement(
            image_name=layer.name,
            plan=plan,
            place=Place.of(layer, keep, [factors[a] for a in keep]),
            labels_name=f"{layer.name} labels [{tag}]",
            probabilities_name=f"{layer.name} probabilities [{tag}]",
            objects_name=f"{layer.name} objects [{tag}]",
            class_names=spec.class_names,
            class_colors=spec.class_colors,
            background=spec.background,
            geometry=layer.metadata.get(GEOMETRY_KEY),
        )

    # -- callbacks (main thread) ----------------------------------------------------
    def _on_event(self, event) -> None:
        if isinstance(event, PredictStarted):
            self._head = (
                (f"an ensemble of {self._ensemble + 1} models " if self._ensemble else "")
                + f"running on {event.device_description}; {event.precision}, tile "
                f"{event.tile}, overlap {event.overlap}, batch {event.batch_size}"
                + (f", mirrored x{event.mirrors}" if event.mirrors > 1 else "")
            )
            self._resampled = ""
            if event.resampled is not None:
                sizes = "x".join(map(str, event.resampled))
                self._resampled = f"; at the model's voxel size ({sizes})"
            self._head += self._resampled
            self.runner.report(0.0, self._head)
            # What "auto" chose for this model and image, in the fields themselves.
            self._tile.show_chosen(event.tile)
            self._overlap.show_chosen(event.overlap)
            self._batch.show_chosen(event.batch_size)
        elif isinstance(event, PredictProgress):
            eta = "" if event.eta_s is None else f", about {event.eta_s:.0f} s left"
            text = f"{self._head}\n{event.tiles_done}/{event.tiles_total} tiles{eta}"
            self.runner.report(event.fraction, text)
        elif isinstance(event, BlocksStarted):
            where = event.dashboard or f"{event.workers} worker(s)"
            self._head = f"on the cluster ({where}): {event.total} blocks"
            self.runner.report(event.skipped / max(event.total, 1), self._head)
        elif isinstance(event, BlockDone):
            eta = "" if event.eta_seconds is None else f", about {event.eta_seconds:.0f} s left"
            text = f"{self._head}\n{event.done}/{event.total} blocks{eta}"
            self.runner.report(event.done / event.total, text)
        elif isinstance(event, SettingsAdjusted):
            show_warning(f"napari-seg Segment: {event.reason}")
        elif isinstance(event, PredictWarning):
            show_warning(f"napari-seg Segment: {event.message}")

    def _on_layer_removed(self, event) -> None:
        if self.runner.running and same_layer(event.value, self._image_layer):
            message = f"the image layer {event.value.name!r} was removed; nothing written"
            self.runner.cancel(message)
            self._placement = None
            show_info(f"napari-seg Segment: {message}")

    def _on_returned(self, done: Segmented | None) -> None:
        placement, self._placement = self._placement, None
        if done is None or placement is None:
            self.runner.set_status(self.runner.cancel_reason or "cancelled; no layer was changed")
            return
        result = done.result
        layer = write_labels(self._viewer, self.native, placement, done, self._update.value)
        if result.probabilities is not None:
            write_probabilities(self._viewer, placement, result)
        if done.objects is not None:
            write_objects(self._viewer, self.native, placement, done.objects)
        self.runner.set_progress(1.0)
        ensemble = f"; an ensemble of {self._ensemble + 1} models" if self._ensemble else ""
        self.runner.set_status(
            f"done in {result.seconds:.1f} s on {result.device} ({result.precision})"
            + ensemble
            + self._resampled
        )
        # The status line says it: a notification's animation repaints the window for a
        # second (see _runner.REFRESH_S).
        logger.info("segmented %s into %s", placement.image_name, layer.name)

    def _cluster_args(
        self, layer, plan: ScopePlan, config: PredictConfig, members: tuple[Path, ...]
    ) -> tuple:
        """The cluster job's arguments (main thread); ValueError naming what is missing.
        The workers read the current model's file and the "average with" ones."""
        if self._chosen_level(layer) or any(isinstance(i, int) for i in plan.data_index):
            raise ValueError("a cluster job segments the whole image at full resolution")
        output = self.cluster.output_path()
        path, dirty = self.current.path, self.current.dirty
        source = check_cluster_job(layer, path, dirty, output)
        block = self.cluster.block.value or None
        models = (path, *members)
        return models, source, output, config, self.cluster.cluster_spec(), block

    def _on_cluster_returned(self, result) -> None:
        placement, self._placement = self._placement, None
        if result is None or placement is None:
            self.runner.set_status(self.runner.cancel_reason or "cancelled; no layer was changed")
            return
        kwargs = labels_layer_kwargs(
            placement.labels_name, placement.class_names, placement.class_colors,
            placement.background,
        )  # fmt: skip
        levels = open_lazily(result.output)
        add_labels(self._viewer, levels, window=self.native, multiscale=len(levels) > 1,
                   **placement.place.kwargs(), **kwargs)  # fmt: skip
        self.runner.set_progress(1.0)
        self.runner.set_status(f"done in {result.seconds:.1f} s; written to {result.output}")

    def _on_image_changed(self, _layer=None) -> None:
        self._level.reset_choices()
        self._level.value = 0
        self._level.enabled = len(self._level.choices) > 1

    def _on_error(self, _exc: BaseException) -> None:
        self._placement = None

    def _on_finished(self) -> None:
        self._viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self._image_layer = None
        if self._held is not None:
            self.current.let_go(self._held)
            self._held = None

    def _on_model_loaded(self, result) -> None:
        model, stats, path = result
        self.current.set(model, path=path, dirty=False, stats=stats)
        show_info(f"Model loaded from {path}")

    def _on_model_changed(self, current: CurrentModel) -> None:
        model = current.model
        if model is None:
            self._model_info.value = "none: create one in Model or load a file"
            return
        s = model.spec
        where = current.path.name if current.path else "unsaved"
        self._model_info.value = (
            f"{s.network}, {s.in_channels} ch -> {s.num_classes} classes [{where}]"
        )

    def _on_destroyed(self, *_args) -> None:
        self.current.disconnect(self._on_model_changed)
        self.runner.close()
        self._loader.close()


def segment_widget(viewer: napari.viewer.Viewer) -> SegmentWidget:
    """The Segment widget, sharing the viewer's current model."""
    return SegmentWidget(viewer, current_model_for(viewer))
