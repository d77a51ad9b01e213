"""Train dock, parts 3 and 4: what is learnt and for how long; the augmentations."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox

from .._layers import background_of
from ..limits import MAX_BATCH, MAX_PATCH
from ..training.config import LABEL0_CHOICES, LOSSES, MIN_PATCH, TrainingConfig
from ..training.instances import INSTANCE_MODES
from ._fields import LayerDefault, declared_ignore_ids, parse_ids

LABEL0_TEXT = {"unlabelled": "unlabelled (scribbles)", "background": "background (dense masks)"}
AUGMENTATIONS = ("flips", "rotations", "intensity", "noise", "elastic")
DIMS_CHOICES = [("2D (planes)", 2), ("3D (volumes)", 3)]
#: The "labels are" choices: class ids, or instance labels and their conversion.
INSTANCES_TEXT = {"foreground": "objects (foreground)", "boundaries": "objects + boundaries"}
LABELS_ARE = [("class ids", "classes"), *((INSTANCES_TEXT[m], m) for m in INSTANCE_MODES)]


def _dense(layer) -> str | None:
    """The label 0 rule of a labels layer that records 0 as its background: "background"."""
    return "background" if background_of(layer, default=None) == 0 else None


class SettingsPanel:
    """What label 0 means, the loss, the budget (minutes or epochs), the optimiser's
    learning rate, batch and patch size; ``widgets`` go into the dock's body."""

    def __init__(self) -> None:
        label0 = [(LABEL0_TEXT[c], c) for c in LABEL0_CHOICES]
        self.label0 = ComboBox(label="label 0 is", choices=label0, value="unlabelled")
        self.labels_are = ComboBox(label="labels are", choices=LABELS_ARE, value="classes")
        self.labels_are.tooltip = (
            "class ids: each id is a class. objects: instance labels (one id per object, "
            "0 the background), trained as background and object, or with each object's "
            "boundary as a third class so that touching objects stay apart"
        )
        self.ignore = LineEdit(label="ignore ids", value="")
        self.ignore.tooltip = (
            "label ids that mark pixels to leave out (a dataset's void id, e.g. 255): they "
            "give no gradient, are not scored and are no class of the model; a labels "
            "layer of an nnU-Net dataset fills in its 'ignore' label"
        )
        self.loss = ComboBox(label="loss", choices=list(LOSSES), value=TrainingConfig.loss)
        self.budget_unit = ComboBox(label="budget in", choices=["minutes", "epochs"])
        self.budget = FloatSpinBox(label="budget", min=0.01, max=10000, step=0.5, value=2.0)
        self.lr = FloatSpinBox(label="learning rate", min=1e-5, max=1.0, step=1e-4, value=1e-3)
        self.batch = SpinBox(label="batch", min=1, max=MAX_BATCH, value=4)
        self.patch = SpinBox(label="patch", min=MIN_PATCH, max=MAX_PATCH, step=16, value=128)
        self.dims = ComboBox(label="network", choices=DIMS_CHOICES, value=2)
        self.dims.tooltip = (
            "2D: planes (a stack slice by slice); 3D: the stack as one volume, with a 3D "
            "network whose patch and batch are planned from the voxel size and memory"
        )
        self.filled = FloatSpinBox(label="filled weight", min=0.0, max=1.0, step=0.1, value=0.0)
        self.filled.tooltip = (
            "3D, scribbles: voxels between painted slices take the classes 'fill between "
            "slices' (shape-based) gives them, with this weight (0: they give no gradient)"
        )
        # What the chosen labels layer says of itself: its dataset's "ignore" ids, and
        # that it is a dense label map (it records 0 as its background: a dataset's
        # label map, napari-seg's own prediction), so 0 is background, not unpainted.
        self.declared = [
            LayerDefault(self.ignore, declared_ignore_ids),
            LayerDefault(self.label0, _dense),
        ]
        self.widgets = [
            self.dims,
            self.filled,
            self.labels_are,
            self.label0,
            self.ignore,
            self.loss,
            self.budget_unit,
            self.budget,
            self.lr,
            self.batch,
            self.patch,
        ]
        self.budget_unit.changed.connect(self._on_budget_unit_changed)
        self.dims.changed.connect(self._on_dims_changed)
        self.labels_are.changed.connect(self._on_labels_are_changed)
        self._on_dims_changed()

    def follow(self, layer) -> None:
        """Take what the chosen labels ``layer`` declares (:class:`LayerDefault`)."""
        for default in self.declared:
            default.follow(layer)

    @property
    def instances(self) -> str | None:
        """The config's ``instances``: None for class ids."""
        value = self.labels_are.value
        return None if value == "classes" else value

    @property
    def ignore_labels(self) -> tuple[int, ...]:
        """The config's ``ignore_labels`` (ValueError naming an entry that is no id)."""
        return parse_ids(self.ignore.value)

    def left_out(self) -> tuple[int, ...]:
        """The ids "ignore ids" leaves out as far as they read (none while it reads
        no ids; starting a run names the problem)."""
        try:
            return self.ignore_labels
        except ValueError:
            return ()

    def _on_labels_are_changed(self, *_args) -> None:
        # instance labels are dense masks: their 0 is the background
        if self.instances is not None:
            self.label0.value = "background"
        self.label0.enabled = self.instances is None

    def _on_dims_changed(self, *_args) -> None:
        volumes = self.dims.value == 3
        self.filled.enabled = volumes
        self.patch.enabled = not volumes  # a 3D run plans its patch

    def budget_fields(self) -> dict:
        """``epochs`` and ``minutes`` of a TrainingConfig (one of them None)."""
        budget = self.budget.value
        if self.budget_unit.value == "epochs":
            return {"epochs": max(1, round(budget)), "minutes": None}
        return {"epochs": None, "minutes": float(budget)}

    def _on_budget_unit_changed(self, *_args) -> None:
        epochs = self.budget_unit.value == "epochs"
        self.budget.step = 1.0 if epochs else 0.5
        self.budget.value = 20.0 if epochs else 2.0


class AugmentPanel(Container):
    """One checkbox per augmentation, in two rows (elastic off by default: it is slow
    on the CPU)."""

    def __init__(self) -> None:
        super().__init__(labels=False, label="augment")
        self.margins = (0, 0, 0, 0)
        self.boxes = {name: CheckBox(text=name, value=name != "elastic") for name in AUGMENTATIONS}
        for names in (AUGMENTATIONS[:3], AUGMENTATIONS[3:]):
            row = Container(layout="horizontal", labels=False)
            row.margins = (0, 0, 0, 0)
            row.extend([self.boxes[n] for n in names])
            self.append(row)

    def values(self) -> dict[str, bool]:
        return {name: box.value for name, box in self.boxes.items()}
