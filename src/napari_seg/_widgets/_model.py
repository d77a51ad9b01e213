"""The "Model" dock widget: choose an architecture, create, load and save models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton, SpinBox
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from ..models import ModelSpec, get_architecture, list_architectures
from ..models.current import CurrentModel
from ._shared import current_model_for, fill_device_choices

if TYPE_CHECKING:
    import napari

NO_ENCODER = "(none)"
WEIGHT_CHOICES = (("random initialisation", "none"), ("ImageNet", "imagenet"), ("file", "file"))


def _create_job(spec: ModelSpec, weights: str | None, device: str):
    """Build, place and measure a model (runs in a worker thread)."""
    from .._device import resolve_device
    from ..models import create_model, model_stats

    model = create_model(spec, encoder_weights=weights).to(resolve_device(device))
    return model, model_stats(model), None


def _load_job(path: Path, device: str):
    from .._device import resolve_device
    from ..models import load_model, model_stats

    model = load_model(path, device=resolve_device(device))
    return model, model_stats(model), path


def _save_job(model, path: Path) -> Path:
    from ..models import save_model

    return save_model(model, path, provenance=(model.card or {}).get("provenance"))


class ModelWidget(Container):
    """Pick an architecture and encoder, create / load / save the shared model.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    current : CurrentModel, optional
        The model holder shared with the other widgets of ``viewer``.
    """

    def __init__(self, viewer: napari.viewer.Viewer, current: CurrentModel | None = None):
        super().__init__(labels=True)
        self._viewer = viewer
        self.current = current if current is not None else current_model_for(viewer)
        self._worker = None
        archs = [(a.title, a.name) for a in list_architectures()]
        self._arch = ComboBox(label="architecture", choices=archs, value="unet")
        self._description = Label(label="")
        self._description.native.setWordWrap(True)
        self._encoder = ComboBox(label="encoder", choices=["classic"])
        self._in_channels = SpinBox(label="input channels", min=1, max=64, value=1)
        self._classes = SpinBox(label="classes", min=2, max=65535, value=2)
        self._class_names = LineEdit(label="class names")
        self._class_names.tooltip = "comma-separated, background first; empty for defaults"
        self._weights = ComboBox(label="encoder weights", choices=WEIGHT_CHOICES, value="none")
        self._weights_file = FileEdit(label="weights file", mode="r", visible=False)
        self._device = ComboBox(label="device", choices=[("auto", "auto")], value="auto")
        self._create = PushButton(text="Create model")
        self._load_path = FileEdit(label="model file", mode="r", filter="*.safetensors")
        self._load = PushButton(text="Load")
        self._save_path = FileEdit(label="save as", mode="w", filter="*.safetensors")
        self._save = PushButton(text="Save")
        self._info = Label(label="current")
        self.extend(
            [
                self._arch,
                self._description,
                self._encoder,
                self._in_channels,
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
            ]
        )
        self._connect()
        self._on_arch_changed()
        self._on_model_changed(self.current)
        fill_device_choices(self._device)

    def _connect(self) -> None:
        self._arch.changed.connect(self._on_arch_changed)
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
        return ModelSpec(
            architecture=self._arch.value,
            encoder=None if self._encoder.value == NO_ENCODER else self._encoder.value,
            in_channels=int(self._in_channels.value),
            num_classes=int(self._classes.value),
            class_names=names,
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
    def _on_arch_changed(self, *_args) -> None:
        arch = get_architecture(self._arch.value)
        self._description.value = arch.description
        has_encoder = bool(arch.encoders)
        self._encoder.choices = list(arch.encoders) or [NO_ENCODER]
        self._encoder.value = arch.default_encoder or NO_ENCODER
        self._encoder.enabled = has_encoder
        self._on_encoder_changed()

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
        self._info.value = (
            f"{get_architecture(s.architecture).title} ({s.encoder or 'no encoder'}), "
            f"{s.in_channels} channel(s) -> {s.num_classes} classes\n"
            f"{size}on {model.device}; {where}"
        )
        self._save.enabled = True

    def _on_destroyed(self, *_args) -> None:
        self.current.disconnect(self._on_model_changed)
        if self._worker is not None:
            self._worker.quit()

    # -- actions -----------------------------------------------------------------
    def create_model(self) -> None:
        """Create a model from the fields, in a worker."""
        try:
            spec, weights = self.spec(), self._weights_value()
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot create model: {exc}")
            return
        self._start(self._on_model_ready, _create_job, spec, weights, self._device.value)

    def load_model(self) -> None:
        """Load the model file named in the "model file" field, in a worker."""
        path = Path(self._load_path.value)
        if not path.is_file():
            show_error(f"Cannot load model: no file at {str(path)!r}")
            return
        self._start(self._on_model_ready, _load_job, path, self._device.value)

    def save_model(self) -> None:
        """Save the current model to the "save as" path, in a worker."""
        model = self.current.model
        path = Path(self._save_path.value)
        if model is None:
            show_error("Cannot save: no model yet")
            return
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        if path.is_dir() or not path.parent.is_dir():
            show_error(f"Cannot save model: {str(path)!r} is not a file in an existing folder")
            return
        self._start(self._on_saved, _save_job, model, path)

    def _start(self, on_returned, job, *args) -> None:
        """Run ``job(*args)`` in a worker thread; errors become notifications."""
        self._set_busy(True)
        self._worker = create_worker(
            job,
            *args,
            _connect={
                "returned": on_returned,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )

    def _set_busy(self, busy: bool) -> None:
        for button in (self._create, self._load, self._save):
            button.enabled = not busy
        if not busy:
            self._save.enabled = self.current.model is not None

    def _on_finished(self) -> None:
        self._set_busy(False)

    def _on_error(self, exc: BaseException) -> None:
        show_error(f"napari-seg Model: {exc}")

    def _on_model_ready(self, result) -> None:
        model, stats, path = result
        self.current.set(model, path=path, dirty=path is None, stats=stats)
        show_info(f"Model ready: {model.spec.architecture} ({stats.summary()})")

    def _on_saved(self, path: Path) -> None:
        self.current.mark_saved(path)
        show_info(f"Model saved to {path}")


def model_widget(viewer: napari.viewer.Viewer) -> ModelWidget:
    """npe2 widget factory: the Model widget, sharing the viewer's current model."""
    return ModelWidget(viewer, current_model_for(viewer))
