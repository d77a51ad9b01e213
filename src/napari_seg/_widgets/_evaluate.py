"""The "Evaluate" dock widget: scores of Labels layers against ground truth, error overlays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
    LineEdit,
    PushButton,
    Table,
    create_widget,
)
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info, show_warning

from .._atomic import atomic_write
from .._layers import GEOMETRY_KEY, background_of, class_names_of, labels_layer_kwargs
from .._units import format_spacing, in_one_unit, unit_symbol
from ..arrays.screen import view_axes
from ..medical import recorded_unit
from ..metrics import (
    DEFAULT_TOLERANCE,
    ERROR_COLORS,
    ERROR_NAMES,
    MODES,
    EvaluateConfig,
    Evaluation,
    format_csv,
    merge_rows,
)
from ._dock import Dock
from ._evaluate_jobs import Scored, errors_job, evaluate_job, suggest_pair
from ._fields import LayerDefault, SaveTarget, declared_ignore_ids, parse_ids
from ._layers import add_labels, file_scale, is_time_axis, unit_names
from ._layers import full_resolution as _data
from ._place import Place, placed_apart, window_grids
from ._plots import ScorePlots
from ._runner import JobRunner, RunnerFields
from ._shared import current_model_for

if TYPE_CHECKING:
    import napari.viewer


class EvaluateWidget(RunnerFields, Dock):
    """Score a prediction Labels layer (and optionally a second one) against ground truth.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)
        self.current = current_model_for(viewer)  # its background is the default one
        self._run_info: Scored | None = None
        self.result: Evaluation | None = None
        self.compared: Evaluation | None = None
        self._pred = create_widget(annotation="napari.layers.Labels", label="prediction")
        self._compare = create_widget(
            annotation=napari.layers.Labels | None,
            label="compare with",
        )
        self._gt = create_widget(annotation="napari.layers.Labels", label="ground truth")
        self._mode = ComboBox(label="mode", choices=list(MODES), value="semantic")
        self._ignore = LineEdit(label="ignore ids", value="")
        self._ignore.tooltip = (
            "ground-truth ids left out, e.g. 0 where 0 means 'not annotated'; a ground "
            "truth of an nnU-Net dataset fills in its 'ignore' label"
        )
        self._declared = LayerDefault(self._ignore, declared_ignore_ids)
        self._background = LineEdit(label="background id", value="auto")
        self._background.tooltip = (
            "class left out of the 'without background' means: a number, 'none', or 'auto' "
            "(the prediction's recorded background, else the current model's, else 0)"
        )
        self._per_slice = CheckBox(text="score each slice of a stack", value=True)
        self._surface = CheckBox(text="surface distances and volumes", value=False)
        self._surface.tooltip = (
            "per class: 95th-percentile Hausdorff distance, average symmetric surface "
            "distance, surface Dice within the tolerance, and volumes, in the ground "
            "truth's scale units (mm and mL for medical volumes)"
        )
        self._tolerance = FloatSpinBox(
            label="surface tolerance", value=DEFAULT_TOLERANCE, min=0.0, max=1e6, step=0.5
        )
        self._tolerance.tooltip = "surface Dice tolerance, in the ground truth's scale units"
        self._tolerance.enabled = False  # used only with the surface distances
        self._run = PushButton(text="Evaluate")
        self._errors = PushButton(text="Show errors", enabled=False)
        self._errors.tooltip = "add a Labels layer: true positive, false positive, false negative"
        self._export_path = SaveTarget("export to", filter="*.csv *.json")
        self._export = PushButton(text="Export CSV / JSON", enabled=False)
        self.runner = JobRunner(
            "Evaluate",
            busy=[self._run, self._errors, self._export],
            cancel=False,
            notify_error=lambda message: show_error(message),
            notify_warning=lambda message: show_warning(message),
        )
        self._table = Table(value={"data": [], "index": [], "columns": []})
        self._table.read_only = True
        self._table.min_height = 190
        self.plots = ScorePlots()
        self.body.extend(
            [
                self._pred,
                self._compare,
                self._gt,
                self._mode,
                self._ignore,
                self._background,
                self._per_slice,
                self._surface,
                self._tolerance,
                self._run,
                self._errors,
                self._export_path,
                self._export,
                self.runner.status,
                self._table,
            ]
        )
        self.add_native(self.plots.canvas)
        self._connect()

    def reset_choices(self, *args) -> None:
        """Refresh the layer pickers; while prediction and ground truth are the same
        layer (as at first), guess a pair from the layer names (see :func:`suggest_pair`)."""
        super().reset_choices(*args)
        if self._pred.value is None or self._pred.value is not self._gt.value:
            return
        labels = [layer for layer in self._viewer.layers if isinstance(layer, Labels)]
        pred, gt = suggest_pair(labels)
        if pred is not None:
            self._pred.value, self._gt.value = pred, gt

    def _connect(self) -> None:
        self._run.clicked.connect(self.run)
        self._gt.changed.connect(self._declared.follow)
        self._surface.changed.connect(lambda on: setattr(self._tolerance, "enabled", bool(on)))
        self._declared.follow(self._gt.value)
        self._errors.clicked.connect(self.show_errors)
        self._export.clicked.connect(self._on_export_clicked)
        self.plots.canvas.mpl_connect("button_press_event", self._on_plot_click)
        self.native.destroyed.connect(self._on_destroyed)

    # -- mapping fields to a config ------------------------------------------------
    def config(self, pred_layer=None, gt_layer=None) -> EvaluateConfig:
        """The :class:`EvaluateConfig` the fields describe (validated)."""
        pred_layer = pred_layer or self._pred.value
        gt_layer = gt_layer or self._gt.value
        axis = self._slice_axis(gt_layer) if self._per_slice.value else None
        surface = bool(self._surface.value)
        spacing, unit = _physical_spacing(gt_layer) if surface else (None, None)
        series = axis is not None and is_time_axis(gt_layer, axis[0])
        return EvaluateConfig(
            mode=self._mode.value,
            ignore_labels=parse_ids(self._ignore.value),
            slice_axis=None if axis is None else axis[0],
            series=series,
            class_names=class_names_of(gt_layer, pred_layer),
            background=self._background_id(pred_layer, gt_layer),
            surface=surface,
            spacing=spacing,
            tolerance=float(self._tolerance.value) if surface else DEFAULT_TOLERANCE,
            unit=unit,
        ).validate()

    def _background_id(self, pred_layer, gt_layer) -> int | None:
        text = self._background.value.strip().lower()
        if text in ("", "auto"):
            model = self.current.model
            fallback = model.spec.background if model is not None else 0
            return background_of(pred_layer, gt_layer, default=fallback)
        if text == "none":
            return None
        try:
            return int(text)  # a negative one is refused with the config's words
        except ValueError:
            raise ValueError(
                f"background id must be a whole number, 'none' or 'auto', got {text!r}"
            ) from None

    def _slice_axis(self, layer) -> tuple[int, int] | None:
        """(layer axis, world axis) the viewer steps through, for a 3D+ layer (in
        napari's 3D view, which shows a volume's every axis, the depth shown)."""
        if layer is None or layer.ndim < 3:
            return None
        offset = self._viewer.dims.ndim - layer.ndim
        hidden = [d for d in self._viewer.dims.not_displayed if d >= offset]
        if not hidden:  # the 3D view: the depth on screen, if any
            _, depth = view_axes([d for d in self._viewer.dims.displayed if d >= offset])
            hidden = [] if depth is None else [depth]
        return (hidden[0] - offset, hidden[0]) if hidden else None

    def _check_layers(self):
        """The chosen (prediction, ground truth, second prediction) and, for each
        prediction, the grids to pair it with the ground truth by (the jobs do) when
        both are medical volumes and one covers a window of the other's grid (a cropped
        segmentation), else None."""
        pred, gt, compare = self._pred.value, self._gt.value, self._compare.value
        if pred is None or gt is None:
            raise ValueError("choose a prediction and a ground-truth Labels layer")
        grids = []
        for layer in (pred, compare):
            if layer is None:
                grids.append(None)
                continue
            if layer is gt:
                raise ValueError(f"{layer.name} is the ground truth itself")
            grid = window_grids(layer, gt)
            grids.append(None if grid is None else (*grid, (layer.name, gt.name)))
            if grid is None and _data(layer).shape != _data(gt).shape:
                raise ValueError(
                    f"{layer.name} has shape {_data(layer).shape} but {gt.name} has "
                    f"{_data(gt).shape}; evaluate layers of the same shape"
                )
            if not np.allclose(layer.scale, gt.scale):
                raise ValueError(
                    f"{layer.name} has scale {format_spacing(layer.scale)} but {gt.name} "
                    f"has {format_spacing(gt.scale)}; the pixels would not correspond"
                )
        return pred, gt, compare, tuple(grids)

    # -- actions ---------------------------------------------------------------------
    def run(self) -> None:
        """Score the chosen layers in a worker; results fill the table and the plots."""
        if self.runner.running:
            show_warning("Evaluate is already running")
            return
        try:
            pred, gt, compare, grids = self._check_layers()
            config = self.config(pred, gt)
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot evaluate: {exc}")
            return
        axis = self._slice_axis(gt) if config.slice_axis is not None else None
        self._run_info = Scored(
            pred.name,
            None if compare is None else compare.name,
            gt.name,
            None if axis is None else axis[1],
            grids,
        )
        for layer, grid in zip((pred, compare), grids, strict=True):
            note = None if layer is None or grid else placed_apart(layer, gt, "compared")
            if note:
                show_warning(note)
        self.runner.start(
            evaluate_job,
            _data(pred),
            _data(gt),
            None if compare is None else _data(compare),
            config,
            grids,
            on_result=self._on_returned,
            on_finished=self._on_finished,
            status="evaluating...",
        )

    def show_errors(self) -> None:
        """Add (or update) Labels layers marking true/false positives and false negatives:
        one for the prediction and, when comparing, one for the second prediction."""
        if self.result is None or self._run_info is None:
            show_error("Evaluate first, then show the errors")
            return
        layers = self._viewer.layers
        info = self._run_info
        if info.pred_name not in layers or info.gt_name not in layers:
            show_error("The evaluated layers are gone; evaluate again")
            return
        names = [info.pred_name, info.compare_name]
        predictions = [
            (name, _data(layers[name]), grid)
            for name, grid in zip(names, info.grids, strict=True)
            if name is not None and name in layers
        ]
        gt = _data(layers[info.gt_name])
        self.runner.start(
            errors_job,
            predictions,
            gt,
            self.result.config,
            on_result=self._on_error_maps,
            on_finished=self._on_finished,
            status="computing the error map...",
        )

    def export(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the last scores to ``path``: CSV (the table) or JSON (everything), atomically.

        An existing file is replaced only with ``overwrite=True``.
        """
        if self.result is None:
            raise ValueError("nothing to export yet: evaluate first")
        path = Path(path)
        if path.suffix.lower() == ".json":
            body = {
                "prediction": self._run_info.pred_name,
                "ground_truth": self._run_info.gt_name,
                **self.result.to_dict(),
            }
            if self.compared is not None:
                body["compare"] = {
                    "prediction": self._run_info.compare_name,
                    **self.compared.to_dict(),
                }
            text = json.dumps(body, indent=2, allow_nan=False)
        elif path.suffix.lower() == ".csv":
            text = format_csv(self.table_rows())
        else:
            raise ValueError(f"export to a .csv or .json file, got {path.name!r}")
        with atomic_write(path, overwrite=overwrite) as handle:
            handle.write(text.encode())
        return path

    def table_rows(self) -> list[dict]:
        """The rows shown in the table (both predictions side by side when comparing)."""
        if self.result is None:
            return []
        rows = self.result.rows()
        if self.compared is not None:
            rows = merge_rows(rows, self.compared.rows(), self.result.row_key)
        return rows

    def jump_to_slice(self, index: int) -> None:
        """Move the viewer to slice ``index`` of the evaluated stack."""
        axis = None if self._run_info is None else self._run_info.slice_axis_world
        if axis is not None:
            self._viewer.dims.set_current_step(axis, index)

    # -- helpers -----------------------------------------------------------------------
    def _on_finished(self) -> None:
        has_result = self.result is not None
        self._errors.enabled = self._export.enabled = has_result

    def _show_table(self) -> None:
        rows = self.table_rows()
        columns = list(rows[0]) if rows else []
        data = [[_cell(r[c], c) for c in columns] for r in rows]
        self._table.value = {"data": data, "index": [""] * len(data), "columns": columns}

    def _show_plots(self) -> None:
        a, b, info = self.result, self.compared, self._run_info
        runs = {info.pred_name: a} if b is None else {info.pred_name: a, info.compare_name: b}
        if a.config.mode == "semantic":
            all_names = a.names()  # indexed by id; built once, not per label
            names = [all_names[i] for i in a.scores.labels]
            bars = {n: _per_class(r, a.scores.labels) for n, r in runs.items()}
            bar_label, slice_label = "IoU", "mean IoU (no background)"
        else:
            names = [f"{t:.2f}" for t in a.scores.thresholds]
            bars = {n: r.scores.accuracy for n, r in runs.items()}
            bar_label = "accuracy TP/(TP+FP+FN)"
            slice_label = f"accuracy at IoU {a.scores.thresholds[0]:.2f}"
        slices = None if a.slices is None else {n: r.slice_summary() for n, r in runs.items()}
        self.plots.show(names, bars, bar_label, slices, slice_label)

    # -- callbacks (main thread) ----------------------------------------------------
    def _on_returned(self, results) -> None:
        self.result, self.compared = results
        for message in self.result.warnings:
            show_warning(f"napari-seg Evaluate: {message}")
        self._show_table()
        self._show_plots()
        s = self.result.scores
        if self.result.config.mode == "semantic":
            self._status.value = (
                f"mIoU {_cell(s.mean_iou)}, without background {_cell(s.mean_iou_foreground)}\n"
                f"pixel accuracy {_cell(s.pixel_accuracy)}, "
                f"FW-IoU {_cell(s.frequency_weighted_iou)}"
            )
        else:
            text = (
                f"{s.n_true} true, {s.n_pred} predicted objects; "
                f"accuracy over thresholds {_cell(s.mean_accuracy)}, SEG {_cell(s.seg)}"
            )
            planes = self.result.pooled_slices
            if planes is not None:  # a time series: objects matched in each plane
                text = (
                    f"{s.n_true} true, {s.n_pred} predicted objects; mean accuracy "
                    f"{_cell(s.mean_accuracy)}\nslice by slice: {planes.n_true} true, "
                    f"{planes.n_pred} predicted; mean accuracy {_cell(planes.mean_accuracy)}, "
                    f"SEG {_cell(planes.seg)}"
                )
            self._status.value = text

    def _on_error_maps(self, maps: list[tuple[str, np.ndarray, bool]]) -> None:
        layers = self._viewer.layers
        gt_name = None if self._run_info is None else self._run_info.gt_name
        for pred_name, errors, on_truth in maps:
            name = f"{pred_name} errors"
            on = gt_name if on_truth else pred_name  # the layer whose grid the map is on
            source = layers[on] if on in layers else None  # noqa: SIM401
            if name in layers:
                layers[name].data = errors
                if source is not None:  # where the map now lies
                    Place.of(source).apply(layers[name])
                continue
            kwargs = labels_layer_kwargs(name, ["", *ERROR_NAMES[1:]], ERROR_COLORS)
            placement = {} if source is None else Place.of(source).kwargs()
            add_labels(self._viewer, errors, window=self.native, opacity=0.6, **placement, **kwargs)
        self._status.value = "error overlay: " + "; ".join(
            f"{pred_name}: "
            + ", ".join(f"{n} {int(np.sum(errors == i))}" for i, n in enumerate(ERROR_NAMES) if i)
            for pred_name, errors, _ in maps
        )

    def _on_export_clicked(self) -> None:
        try:
            path = self.export(self._export_path.value, overwrite=self._export_path.overwrite)
        except (ValueError, OSError) as exc:
            show_error(f"Cannot export: {exc}")
            return
        show_info(f"Scores written to {path}")

    def _on_plot_click(self, event) -> None:
        index = self.plots.slice_at(event)
        if index is not None:
            self.jump_to_slice(index)

    def _on_destroyed(self, *_args) -> None:
        self.runner.close()
        self.plots.figure.clear()


def _physical_spacing(layer) -> tuple[tuple[float, ...], str | None]:
    """The layer's voxel size and its length unit: napari's ``units`` when set (axes in
    different length units expressed in the last one's, ``_units.in_one_unit``), a
    medical volume's (its file's, recorded under ``GEOMETRY_KEY``), else None. A layer
    at napari's default scale takes its TIFF's calibration (``_layers.file_scale``),
    as ``napari-seg evaluate`` on that file does."""
    scale, names = layer.scale, unit_names(layer) or ["pixel"] * layer.ndim
    declared = file_scale(layer)
    if declared is not None:
        scale, names = declared[0], [u or "pixel" for u in declared[1]]
    spacing, units = in_one_unit(scale, names)
    if len(set(units)) == 1 and units[0] is not None:
        return spacing, unit_symbol(units[0])
    geometry = layer.metadata.get(GEOMETRY_KEY)
    if not isinstance(geometry, dict):
        return spacing, None
    unit = recorded_unit(geometry)
    return spacing, unit_symbol(unit) if isinstance(unit, str) else None


def _per_class(result: Evaluation, labels) -> list[float]:
    where = {lab: i for i, lab in enumerate(result.scores.labels)}
    return [result.scores.iou[where[lab]] if lab in where else np.nan for lab in labels]


def _cell(value, column: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        digits = 2 if column == "IoU threshold" else 4
        return "-" if np.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def evaluate_widget(viewer: napari.viewer.Viewer) -> EvaluateWidget:
    """The Evaluate widget."""
    return EvaluateWidget(viewer)
