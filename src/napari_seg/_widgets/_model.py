"""The "Model" dock widget: choose an architecture, create, load and save models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, FileEdit, LineEdit, PushButton, SpinBox
from napari.utils.notifications import show_error, show_info, show_warning

from .._units import format_spacing, parse_length_unit, unit_symbol
from ..limits import MAX_CLASSES, MAX_IN_CHANNELS
from ..models import ModelSpec, get_architecture, list_architectures
from ._current import CurrentModel
from ._dock import Dock, wrapping_label
from ._fields import SaveTarget, model_file_problem
from ._normalization import NormalizationFields
from ._runner import JobRunner, RunnerFields
from ._shared import (
    NO_ENCODER,
    current_model_for,
    device_choices,
    encoder_choices,
    fill_device_choices,
)

if TYPE_CHECKING:
    import napari

WEIGHT_CHOICES = (("random initialisation", "none"), ("ImageNet", "imagenet"), ("file", "file"))


def create_job(spec: ModelSpec, weights: str | None, device: str):
    """Build, place and measure a model (runs in a worker thread)."""
    from .._device import resolve_device
    from ..models import create_model, model_stats

    model = create_model(spec, encoder_weights=weights).to(resolve_device(device))
    return model, model_stats(model), None


def load_job(path: Path, device: str):
    """Load and measure a model file (runs in a worker thread)."""
    from .._device import resolve_device
    from ..models import load_model, model_stats

    model = load_model(path, device=resolve_device(device))
    return model, model_stats(model), path


def save_job(model, path: Path, overwrite: bool) -> Path:
    """Write the model file (runs in a worker thread)."""
    from ..models import save_model

    provenance = (model.card or {}).get("provenance")
    return save_model(model, path, overwrite=overwrite, provenance=provenance)


class ModelWidget(RunnerFields, Dock):
    """Pick an architecture and encoder, create / load / save the shared model.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    current : CurrentModel, optional
        The model holder shared with the other widgets of ``viewer``.
    """

    def __init__(self, viewer: napari.viewer.Viewer, current: CurrentModel | None = None):
        super().__init__(viewer)
        self.current = current if current is not None else current_model_for(viewer)
        archs = [(a.title, a.name) for a in list_architectures()]
        self._arch = ComboBox(label="architecture", choices=archs, value="unet")
        self._description = wrapping_label("")
        # choices as functions of the architecture: napari resets a dock's choices
        # whenever a layer is added, which set lists would undo (back to 2D, "classic")
        self._encoder = ComboBox(label="encoder", choices=self._encoder_choices)
        self._dims = ComboBox(label="dimensions", choices=self._dims_choices)
        self._dims.tooltip = "2D: images and slice by slice; 3D: volumes (3D patches)"
        self._spacing = LineEdit(label="voxel size", value="")
        self._spacing.tooltip = (
            "the pixel/voxel size the model is made for, e.g. '5, 0.5, 0.5 mm' (z, y, x) for "
            "an anisotropic CT, with its unit (nm, um, mm, m) or without; a 3D U-Net plans its "
            "pooling from it and Segment resamples images of another spacing (converting "
            "units when the model and the layer both state theirs). Empty: none"
        )
        self._in_channels = SpinBox(label="input channels", min=1, max=MAX_IN_CHANNELS, value=1)
        self.normalization = NormalizationFields(viewer)
        self._normalization, self._window = self.normalization.widgets
        self._classes = SpinBox(label="classes", min=2, max=MAX_CLASSES, value=2)
        self._class_names = LineEdit(label="class names")
        self._class_names.tooltip = "comma-separated, background first; empty for defaults"
        self._weights = ComboBox(label="encoder weights", choices=WEIGHT_CHOICES, value="none")
        self._weights_file = FileEdit(label="weights file", mode="r", visible=False)
        self._device = ComboBox(label="device", choices=device_choices, value="auto")
        self._create = PushButton(text="Create model")
        self._load_path = FileEdit(label="model file", mode="r", filter="*.safetensors")
        self._load = PushButton(text="Load")
        self._save_path = SaveTarget("save as", filter="*.safetensors", suffix=".safetensors")
        self._save = PushButton(text="Save")
        self._info = wrapping_label("current")
        self.runner = JobRunner(
            "Model",
            busy=[self._create, self._load, self._save],
            cancel=False,
            status_lines=2,
            notify_error=lambda message: show_error(message),
        )
        self.body.extend(
            [
                self._arch,
                self._description,
                self._encoder,
                self._dims,
                self._spacing,
                self._in_channels,
                *self.normalization.widgets,
                self._classes,
                self._class_names,
                self._weights,
                self._weights_file,
                self._device,
                self._create,
                self._load_path,
                self._load,
                self._save_path,
                self._save,
                self._info,
                self.runner.status,
            ]
        )
        self._connect()
        self._on_arch_changed()
        self._on_model_changed(self.current)
        fill_device_choices(self._device)

    def _connect(self) -> None:
        self._arch.changed.connect(self._on_arch_changed)
        self._dims.changed.connect(self._on_dims_changed)
        self._encoder.changed.connect(self._on_encoder_changed)
        self._weights.changed.connect(self._on_weights_changed)
        self._create.clicked.connect(self.create_model)
        self._load.clicked.connect(self.load_model)
        self._save.clicked.connect(self.save_model)
        self.current.connect(self._on_model_changed)
        self.native.destroyed.connect(self._on_destroyed)

    # -- mapping fields to a spec ------------------------------------------------
    def spec(self) -> ModelSpec:
        """The :class:`ModelSpec` the fields describe (validated)."""
        names = tuple(n.strip() for n in self._class_names.value.split(",") if n.strip())
        spacing, unit = parse_spacing(self._spacing.value)
        return ModelSpec(
            architecture=self._arch.value,
            encoder=None if self._encoder.value == NO_ENCODER else self._encoder.value,
            in_channels=int(self._in_channels.value),
            num_classes=int(self._classes.value),
            class_names=names,
            normalization=self.normalization.value(),
            spatial_dims=int(self._dims.value),
            spacing=spacing,
            spacing_unit=unit,
        ).validate()

    def _weights_value(self) -> str | None:
        choice = self._weights.value
        if choice == "file":
            path = Path(self._weights_file.value)
            if not path.is_file():
                raise ValueError(f"choose an encoder weights file (got {str(path)!r})")
            return str(path)
        return None if choice == "none" else choice

    # -- callbacks -----------------------------------------------------------------
    def _dims_choices(self, *_args) -> list[tuple[str, int]]:
        return [(f"{d}D", d) for d in get_architecture(self._arch.value).dims]

    def _encoder_choices(self, *_args) -> list[str]:
        return encoder_choices(self._arch.value)

    def _on_arch_changed(self, *_args) -> None:
        arch = get_architecture(self._arch.value)
        self._description.value = arch.description
        has_encoder = bool(arch.encoders)
        self._dims.reset_choices()
        self._dims.enabled = len(arch.dims) > 1
        self._encoder.reset_choices()
        self._encoder.value = arch.default_encoder or NO_ENCODER
        self._encoder.enabled = has_encoder
        self._on_encoder_changed()

    def _on_dims_changed(self, *_args) -> None:
        """For a 3D model with no voxel size given yet, propose the selected image's
        (a CT's 2.5 x 0.7 x 0.7 mm), which a 3D U-Net plans its pooling from."""
        from napari.layers import Image

        from ._layers import layer_spacing

        layer = self._viewer.layers.selection.active
        if self._dims.value != 3 or self._spacing.value.strip() or not isinstance(layer, Image):
            return
        if layer.ndim < 3:
            return
        spacing, unit, _source = layer_spacing(layer, tuple(range(layer.ndim - 3, layer.ndim)))
        if spacing is not None:
            numbers = ", ".join(f"{float(v):g}" for v in spacing)
            self._spacing.value = numbers if unit is None else f"{numbers} {unit_symbol(unit)}"

    def _on_encoder_changed(self, *_args) -> None:
        self._weights.enabled = self._encoder.value not in ("classic", NO_ENCODER)
        if not self._weights.enabled:
            self._weights.value = "none"

    def _on_weights_changed(self, *_args) -> None:
        self._weights_file.visible = self._weights.value == "file"

    def _on_model_changed(self, current: CurrentModel) -> None:
        model = current.model
        if model is None:
            self._info.value = "no model yet: create or load one"
            self._save.enabled = False
            return
        s = model.spec
        size = f"{current.stats.summary()}\n" if current.stats is not None else ""
        where = f"file: {current.path.name}" if current.path else "not saved"
        spacing = (
            "" if s.spacing is None else f", spacing {format_spacing(s.spacing, s.spacing_unit)}"
        )
        self._info.value = (
            f"{get_architecture(s.architecture).title} ({s.encoder or 'no encoder'}), "
            f"{s.spatial_dims}D{spacing}, "
            f"{s.in_channels} channel(s) -> {s.num_classes} classes, "
            f"normalisation {s.normalization.summary()}\n"
            f"{size}on {model.device}; {where}"
        )
        self._save.enabled = True

    def _on_destroyed(self, *_args) -> None:
        self.current.disconnect(self._on_model_changed)
        self.runner.close()

    # -- actions -----------------------------------------------------------------
    def create_model(self) -> None:
        """Create a model from the fields, in a worker."""
        try:
            spec, weights = self.spec(), self._weights_value()
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot create model: {exc}")
            return
        self.runner.start(
            create_job,
            spec,
            weights,
            self._device.value,
            on_result=self._on_model_ready,
            on_finished=self._on_finished,
            status="creating the model...",
        )

    def load_model(self) -> None:
        """Load the model file named in the "model file" field, in a worker."""
        problem = model_file_problem(self._load_path.value)
        if problem:
            show_error(f"Cannot load model: {problem}")
            return
        path = Path(self._load_path.value)
        self.runner.start(
            load_job,
            path,
            self._device.value,
            on_result=self._on_model_ready,
            on_finished=self._on_finished,
            status=f"loading {path.name}...",
        )

    def save_model(self) -> None:
        """Save the current model to the "save as" path, in a worker.

        An existing file is replaced only when "replace an existing file" is ticked.
        """
        from .._atomic import check_target

        model = self.current.model
        if model is None:
            show_error("Cannot save: no model yet")
            return
        path = self._save_path.path
        if path is None:
            show_error("Cannot save model: give a file name in 'save as'")
            return
        try:
            check_target(path, overwrite=self._save_path.overwrite)
        except (OSError, ValueError) as exc:
            show_error(f"Cannot save model: {exc}")
            return
        started = self.runner.start(
            save_job,
            model,
            path,
            self._save_path.overwrite,
            on_result=lambda saved: self._on_saved(saved, model),
            on_finished=lambda: self._on_save_finished(model),
            status=f"saving {path.name}...",
        )
        if started:  # replaced while it is written, it keeps its device until then
            self.current.hold(model)

    def _on_finished(self) -> None:
        self._save.enabled = self.current.model is not None

    def _on_save_finished(self, model) -> None:
        self.current.let_go(model)
        self._on_finished()

    def _on_model_ready(self, result) -> None:
        model, stats, path = result
        self.current.set(model, path=path, dirty=path is None, stats=stats)
        self.runner.set_status("")
        show_info(f"Model ready: {model.spec.architecture} ({stats.summary()})")

    def _on_saved(self, path: Path, model) -> None:
        self.current.mark_saved(path, model)
        if model is self.current.model:
            self.runner.set_status(f"saved to {path}")
            show_info(f"Model saved to {path}")
        else:  # replaced while it was written: the file holds the one it replaced
            self.runner.set_status(f"saved the previous model to {path}")
            show_warning(
                f"Saved the model that was current when Save was pressed to {path}; "
                "the model that replaced it meanwhile is not saved"
            )


def parse_spacing(text: str) -> tuple[tuple[float, ...] | None, str | None]:
    """ "5, 0.5, 0.5 mm" (or "5 x 0.5 x 0.5 mm", as napari-seg shows a spacing) ->
    ((5.0, 0.5, 0.5), "millimeter"); without a unit, None for it; empty -> (None, None);
    a ValueError names a bad entry."""
    import re

    numbers_apart = re.sub(r"(?<=[\d.])\s*[x×]\s*(?=[\d.+-])", " ", text)
    parts = numbers_apart.replace(",", " ").split()
    if not parts:
        return None, None
    numbers = parts[:-1] if len(parts) > 1 and not _is_number(parts[-1]) else parts
    if not all(_is_number(p) for p in numbers):
        raise ValueError(
            f"voxel size must be numbers such as '5, 0.5, 0.5', optionally with a unit "
            f"(nm, um, mm, m), got {text!r}"
        )
    unit = parse_length_unit(parts[-1]) if len(numbers) < len(parts) else None
    return tuple(float(p) for p in numbers), unit


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def model_widget(viewer: napari.viewer.Viewer) -> ModelWidget:
    """The Model widget, sharing the viewer's current model."""
    return ModelWidget(viewer, current_model_for(viewer))
