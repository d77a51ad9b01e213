"""Train dock, part 2: which model a run starts from."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, FileEdit

from .._paths import user_path
from ..models import get_architecture, list_architectures
from ..training.config import MAX_CLASSES
from ._fields import AutoInt, model_file_problem
from ._normalization import NormalizationFields
from ._shared import NO_ENCODER, encoder_choices

MODEL_SOURCES = (("current model", "current"), ("model file", "file"), ("new model", "new"))


class ModelSourcePanel:
    """The current model, a model file, or a new architecture (with its encoder and
    normalisation); ``widgets`` go into the dock's body."""

    def __init__(self, current, viewer) -> None:
        self._current = current
        self.source = ComboBox(label="model", choices=MODEL_SOURCES, value="current")
        self.model_file = FileEdit(label="model file", mode="r", filter="*.safetensors")
        archs = [(a.title, a.name) for a in list_architectures()]
        self.arch = ComboBox(label="architecture", choices=archs, value="unet")
        # choices as a function of the architecture (napari resets them on a new layer)
        self.encoder = ComboBox(label="encoder", choices=self._encoder_choices)
        self.grow = CheckBox(text="allow new classes (wider output head)", value=False)
        self.classes = AutoInt(
            "class count",
            min=2,
            max=MAX_CLASSES,
            start=2,
            tooltip="classes of the new model, background included; auto: from the "
            "labels (their largest id + 1). A number confirms labels that look like "
            "something else, e.g. many classes of one region each",
        )
        self.normalization = NormalizationFields(viewer)
        self.widgets = [
            self.source, self.model_file, self.arch, self.encoder, *self.normalization.widgets,
            self.classes, self.grow,
        ]  # fmt: skip
        self.source.changed.connect(self._on_source_changed)
        self.arch.changed.connect(self._on_arch_changed)
        self._on_source_changed()
        self._on_arch_changed()

    @property
    def is_new(self) -> bool:
        return self.source.value == "new"

    @property
    def num_classes(self) -> int | None:
        """The classes of a new model, or None: from the labels (or the model's own)."""
        return self.classes.value if self.is_new else None

    @property
    def encoder_value(self) -> str | None:
        return self.encoder.value if self.encoder.enabled else None

    def new_model_fields(self, dims: int | None = None) -> dict:
        """A new model's network and normalisation as :class:`TrainingConfig` fields
        (none when fine-tuning: the model keeps its own).

        Parameters
        ----------
        dims : int, optional
            The new model's dimensions: a 3D one takes the encoder field's value
            only where the architecture offers it in 3D (the field lists 2D
            encoders; else the registry picks a 3D one).

        Returns
        -------
        dict

        Raises
        ------
        ValueError
            For a window that is not two numbers.
        """
        if not self.is_new:
            return {}
        encoder = self.encoder_value
        offered = get_architecture(self.arch.value).encoders_3d
        if dims == 3 and offered and encoder not in offered:
            encoder = None
        normalization = self.normalization.value()
        return {
            "architecture": self.arch.value,
            "encoder": encoder,
            "normalization": normalization.method,
            "normalization_window": normalization.window,
        }

    def model_for_job(self) -> tuple[object, str | None]:
        """The model object to fine-tune, or the file to fine-tune from (or neither: new).

        Raises
        ------
        ValueError
            If the chosen source has no model.
        """
        source = self.source.value
        if source == "current":
            if self._current.model is None:
                raise ValueError("no current model: create or load one in Model, or pick 'new'")
            return self._current.model, None
        if source == "file":
            problem = model_file_problem(self.model_file.value)
            if problem:
                raise ValueError(f"model file: {problem}")
            return None, str(user_path(self.model_file.value))
        return None, None

    def _on_source_changed(self, *_args) -> None:
        source = self.source.value
        self.model_file.visible = source == "file"
        self.arch.visible = self.encoder.visible = self.classes.visible = source == "new"
        self.normalization.set_shown(source == "new")
        self.grow.visible = source != "new"

    def _encoder_choices(self, *_args) -> list[str]:
        return encoder_choices(self.arch.value)

    def _on_arch_changed(self, *_args) -> None:
        arch = get_architecture(self.arch.value)
        self.encoder.reset_choices()
        self.encoder.value = arch.default_encoder or NO_ENCODER
        self.encoder.enabled = bool(arch.encoders)
