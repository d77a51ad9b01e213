"""The validated settings of one training run, shared by the widget and the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from .._config_file import JobConfig
from .._validate import (
    as_names,
    check_axes,
    check_axis,
    check_bool,
    check_choice,
    check_ids,
    check_int,
    check_length_unit,
    check_number,
    check_spacing,
    check_str,
)
from ..arrays import PRECISIONS
from ..arrays.layout import size_rule, too_small
from ..limits import (
    MAX_BATCH,
    MAX_CLASSES,
    MAX_EPOCHS,
    MAX_IN_CHANNELS,
    MAX_MINUTES,
    MAX_PATCH,
    MAX_SEED,
    MAX_STEP_PIXELS,
    MAX_STEPS_PER_EPOCH,
    MAX_THREADS,
    brief,
)
from ..models.spec import Normalization
from .instances import INSTANCE_MODES

LOSSES = (
    "auto",
    "ce",
    "weighted-ce",
    "dice",
    "focal",
    "weighted-focal",
    "ce+dice",
    "weighted-ce+dice",
)
LABEL0_CHOICES = ("unlabelled", "background")


def named_classes(
    named: dict[int, str], label0: str, ignore: Iterable[int] = ()
) -> tuple[str, ...]:
    """A new model's class names from the names its labels give some ids (a Labels
    layer's features, a 3D Slicer segmentation's segments), from id 0.

    Ids without a name are called "class N"; with ``label0="unlabelled"`` id 0 is
    "unlabelled" (never trained). Ids in ``ignore`` (left out of training) are no
    class. Empty when no id above 0 is named.

    Parameters
    ----------
    named : dict
        ``{id: name}``.
    label0 : {"unlabelled", "background"}
    ignore : iterable of int

    Returns
    -------
    tuple of str
    """
    left_out = set(ignore)
    names = {i: n for i, n in named.items() if i not in left_out and i >= 0}
    if not names or max(names) < 1:
        return ()
    listed = [names.get(i, f"class {i}") for i in range(max(names) + 1)]
    if label0 == "unlabelled":
        listed[0] = "unlabelled"
    return tuple(listed)


SCHEDULES = ("cosine", "onecycle", "constant")
#: Smallest patch side accepted for training.
MIN_PATCH = 32
#: The time budget, in minutes, of a run given neither epochs nor minutes.
DEFAULT_MINUTES = 2.0


@dataclass(frozen=True)
class TrainingConfig(JobConfig):
    """Everything that defines a training run (the data and output file aside).

    Parameters
    ----------
    architecture, encoder, options :
        The network built for a new model (see ``napari-seg models``); a model
        fine-tuned (``from_model`` or one handed to the job) keeps its own, and
        the run warns when these ask for another.
    from_model : str, optional
        Model file to fine-tune (weights, classes and normalisation come from it).
    in_channels : int, optional
        Image channels of a new model; detected from the first image when None.
    num_classes : int, optional
        Classes of a new model, background included; by default the largest
        label id + 1, or the number of ``class_names`` if that is more.
    class_names : tuple of str
        Names of a new model's classes, from id 0; the model has at least as
        many classes, and ids beyond the names are called "class N" (defaults:
        "background" or, with ``label0="unlabelled"``, "unlabelled", then "class 1"...).
    class_colors : tuple of RGBA tuples
        Colours of a new model's classes, from id 0 (defaults: the model's
        palette with the background transparent).
    background : int, optional
        The class id of a new model that is background (shown transparent, left
        out of "without background" means, Refine's default). None: 0 with
        ``label0="background"``, no background class with strokes.
    grow_classes : bool
        When fine-tuning, let labels use ids the model does not have: the
        output head is widened and the new classes start untrained.
    label0 : {"unlabelled", "background"}
        ``unlabelled``: pixels with label 0 were not annotated and give no
        gradient (sparse scribbles; each painted id is a class).
        ``background``: label 0 is the background class (dense masks).
    ignore_labels : tuple of int
        Label ids that mark pixels to leave out (a dataset's "void" or "ignore" id,
        e.g. 255 in Pascal VOC and Cityscapes): they give no gradient, are not scored
        by validation and are no class of the model. Negative ids too (-1 as some
        tools write "not annotated"); with ``label0="unlabelled"`` 0 is left out
        already.
    instances : {"foreground", "boundaries"}, optional
        The labels are instance labels (0: background, one id per object) and train
        a new model's classes ``("background", "object")``, or ``("background",
        "object", "boundary")`` with each object's inner boundary as a class of its
        own (touching objects stay apart); see :mod:`napari_seg.training.instances`.
        Needs ``label0="background"``. None: the ids are class ids; labels that look
        like instance labels are then refused unless ``num_classes`` or
        ``class_names`` confirm that many classes.
    normalization : str
        Intensity normalisation of a new model (stored in its card and used
        again by inference): see :class:`~napari_seg.models.Normalization`.
    normalization_window : tuple of float, optional
        ``(lowest, highest)`` intensity of normalisation ``"window"`` (mapped to 0
        and 1, the rest clipped: a CT's Hounsfield units), needed by it alone.
    loss : {"auto", "ce", "weighted-ce", "dice", "focal", "weighted-focal", "ce+dice", \
            "weighted-ce+dice"}
        Weighted variants use ``w_c = (N - N_c) / N`` over the annotated pixels.
        ``auto`` (default): ``weighted-ce+dice`` for sparse labels with three or more
        classes, where the plain loss lets the majority class win, ``weighted-ce``
        with ``instances="boundaries"`` (Dice does poorly on a one-pixel class), else
        ``ce+dice``
        (:func:`~napari_seg.training.losses.resolve_loss`).
    epochs : int, optional
        Budget in epochs.
    minutes : float, optional
        Budget in wall-clock minutes. With both, training stops at the first reached;
        with neither, the budget is :data:`DEFAULT_MINUTES` (``time_budget``).
    steps_per_epoch : int
        Optimizer steps between validations.
    batch_size, patch_size : int
        Patches per step and their side in pixels.
    learning_rate, weight_decay : float
        AdamW settings (peak learning rate).
    schedule : {"cosine", "onecycle", "constant"}
        Learning-rate schedule over the budget; ``warmup`` is the fraction of
        the budget spent ramping up (cosine and constant).
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``auto``: bf16 on CUDA (fp16 on cards before Ampere, which only emulate
        bf16), fp32 on CPU and MPS.
    channels_last : bool, optional
        Memory format; None uses it on CUDA only.
    flips, rotations, intensity, noise, elastic : bool
        Augmentations: random flips, 90-degree rotations, intensity
        scale/shift/gamma, Gaussian noise, elastic deformation.
    validation_fraction : float
        Fraction of the annotated regions held out for validation.
    patience : int, optional
        Stop after this many epochs without a better validation IoU; None: never.
    sample_annotated : float
        Probability that a patch is centred on an annotated pixel of a class
        drawn uniformly (the rest are placed uniformly at random).
    seed : int
        Seed of the weights, the patch sampling and the augmentations.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    threads : int, optional
        torch CPU threads during a run on the CPU (None: leave as is).
    axis : int or tuple of int, optional
        Axis of stacks to train on slice by slice (as 2D planes), or several (a
        TZYX stack's ``(0, 1)``: every plane of every frame).
    channel_axis : int, optional
        Channel axis of the images; detected when None.
    spacing : tuple of float, optional
        The pixel size of the images along the planes' two axes, recorded in a new
        model's card as the spacing it was trained for (prediction then resamples
        images of another spacing to it); a 3D run has three sizes and also
        plans its patch and pooling from them. None: not recorded.
    spacing_unit : str, optional
        The length unit of ``spacing`` by its NGFF name (``"micrometer"``),
        recorded with it in a new model's card; None: not known.
    dims : {2, 3}, optional
        2: planes (stacks slice by slice); 3: volumes, with a 3D network. None:
        the model's when fine-tuning, else 2.
    patch_3d : tuple of 3 int, optional
        A 3D run's patch size; None: planned from the spacing and the memory
        budget (:mod:`napari_seg.training.planning`), which may also lower
        ``batch_size``.
    memory_gb : float, optional
        A 3D run's memory budget for planning; None: 80% of a GPU's free memory,
        40% of the host's available memory on a CPU.
    scaling : bool
        3D runs: a random zoom (0.85 to 1.15) of a fifth of the patches.
    filled_weight : float
        3D runs on sparse labels: voxels nobody painted take the classes
        shape-based interpolation fills in between the painted slices
        (``napari_seg.refine.interpolate_slices``), with this weight in the
        cross-entropy (painted voxels weigh 1); 0: unpainted voxels give no gradient.
    """

    architecture: str = "unet"
    encoder: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    from_model: str | None = None
    in_channels: int | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    class_colors: tuple[tuple[float, ...], ...] = ()
    background: int | None = None
    grow_classes: bool = False
    label0: str = "background"
    ignore_labels: tuple[int, ...] = ()
    instances: str | None = None
    normalization: str = "percentile"
    normalization_window: tuple[float, float] | None = None
    loss: str = "auto"
    epochs: int | None = None
    minutes: float | None = None
    steps_per_epoch: int = 25
    batch_size: int = 4
    patch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup: float = 0.05
    precision: str = "auto"
    channels_last: bool | None = None
    flips: bool = True
    rotations: bool = True
    intensity: bool = True
    noise: bool = True
    elastic: bool = False
    validation_fraction: float = 0.2
    patience: int | None = 10
    sample_annotated: float = 0.8
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    axis: int | tuple[int, ...] | None = None
    channel_axis: int | None = None
    spacing: tuple[float, ...] | None = None
    spacing_unit: str | None = None
    dims: int | None = None
    patch_3d: tuple[int, ...] | None = None
    memory_gb: float | None = None
    scaling: bool = True
    filled_weight: float = 0.0

    KIND: ClassVar[str] = "training"

    def __post_init__(self) -> None:
        super().__post_init__()  # lists as tuples
        if isinstance(self.options, dict):
            object.__setattr__(self, "options", dict(self.options))
        if isinstance(self.class_colors, tuple):
            colors = tuple(tuple(c) if isinstance(c, list) else c for c in self.class_colors)
            object.__setattr__(self, "class_colors", colors)

    def validate(self) -> TrainingConfig:
        """Return ``self`` if every field is valid.

        Every number has an upper bound (see :mod:`napari_seg.limits`) tied to
        the memory or time it implies.

        Returns
        -------
        TrainingConfig

        Raises
        ------
        ValueError, TypeError
            Naming the field, its bound and the value.
        """
        check_choice("loss", self.loss, LOSSES)
        self._check_labels()
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("precision", self.precision, PRECISIONS)
        self.intensity_normalization().validate()
        check_str("architecture", self.architecture)
        check_str("device", self.device)
        check_str("encoder", self.encoder, optional=True)
        check_str("from_model", self.from_model, optional=True)
        check_int("in_channels", self.in_channels, 1, MAX_IN_CHANNELS, optional=True)
        check_int("num_classes", self.num_classes, 2, MAX_CLASSES, optional=True)
        check_int("epochs", self.epochs, 1, MAX_EPOCHS, optional=True)
        check_int("steps_per_epoch", self.steps_per_epoch, 1, MAX_STEPS_PER_EPOCH)
        check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        check_int("patch_size", self.patch_size, MIN_PATCH, MAX_PATCH)
        pixels = self.batch_size * self.patch_size**2
        if pixels > MAX_STEP_PIXELS:
            raise ValueError(
                f"batch_size x patch_size^2 must be at most {MAX_STEP_PIXELS} pixels per step "
                f"(the network's activations grow with it), got {self.batch_size} x "
                f"{self.patch_size}^2 = {pixels}"
            )
        check_int("patience", self.patience, 1, MAX_EPOCHS, optional=True)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_int("threads", self.threads, 1, MAX_THREADS, optional=True)
        check_axes("axis", self.axis)
        check_axis("channel_axis", self.channel_axis)
        if self.minutes is not None:
            check_number("minutes", self.minutes, low=0.0, high=MAX_MINUTES, low_open=True)
        check_number("learning_rate", self.learning_rate, low=0.0, high=10.0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0, high=10.0)
        check_number("warmup", self.warmup, low=0.0, high=0.5)
        check_number("validation_fraction", self.validation_fraction, low=0.0, high=0.5)
        check_number("sample_annotated", self.sample_annotated, low=0.0, high=1.0)
        for name in (
            "grow_classes",
            "flips",
            "rotations",
            "intensity",
            "noise",
            "elastic",
            "scaling",
        ):
            check_bool(name, getattr(self, name))
        check_bool("channels_last", self.channels_last, optional=True)
        as_names("class_names", self.class_names, max_count=MAX_CLASSES)
        check_int("background", self.background, 0, MAX_CLASSES - 1, optional=True)
        if not isinstance(self.class_colors, tuple) or len(self.class_colors) > MAX_CLASSES:
            raise TypeError(
                f"class_colors must be a sequence of at most {MAX_CLASSES} RGBA colours, got "
                f"{brief(self.class_colors)}"
            )
        if not isinstance(self.options, dict):
            raise TypeError(f"options must be a mapping, got {brief(self.options)}")
        self._check_3d()
        return self

    @property
    def time_budget(self) -> float | None:
        """The run's budget in minutes: ``minutes``, else :data:`DEFAULT_MINUTES` when
        ``epochs`` is not given either, else None (the epochs are the budget, as
        ``napari-seg train --epochs`` and the Train dock's epochs are).

        Returns
        -------
        float or None
        """
        if self.minutes is not None:
            return self.minutes
        return DEFAULT_MINUTES if self.epochs is None else None

    def intensity_normalization(self) -> Normalization:
        """The normalisation a new model trained with this config records.

        Returns
        -------
        Normalization
        """
        return Normalization(self.normalization, window=self.normalization_window)

    def _check_labels(self) -> None:
        check_choice("label0", self.label0, LABEL0_CHOICES)
        check_ids("ignore_labels", self.ignore_labels, negative=True)
        if self.instances is None:
            return
        check_choice("instances", self.instances, INSTANCE_MODES)
        if self.label0 != "background":
            raise ValueError(
                "instances needs label0='background': instance labels are dense masks "
                "whose 0 is the background"
            )

    def _check_3d(self) -> None:
        check_int("dims", self.dims, 2, 3, optional=True)
        check_spacing("spacing", self.spacing, (3,) if self.dims == 3 else (2, 3))
        check_length_unit("spacing_unit", self.spacing_unit, self.spacing)
        check_number("filled_weight", self.filled_weight, low=0.0, high=1.0)
        if self.memory_gb is not None:
            check_number("memory_gb", self.memory_gb, low=0.0, high=4096.0, low_open=True)
        if self.patch_3d is None:
            return
        if not isinstance(self.patch_3d, tuple) or len(self.patch_3d) != 3:
            raise ValueError(f"patch_3d must hold 3 sizes, got {brief(self.patch_3d)}")
        for side in self.patch_3d:
            check_int("patch_3d", side, 1, MAX_PATCH)
        if too_small(self.patch_3d):  # thin along one axis, as a stack of a few slices
            raise ValueError(f"patch_3d {self.patch_3d} is too small: {size_rule(3)}")
        voxels = self.batch_size * self.patch_3d[0] * self.patch_3d[1] * self.patch_3d[2]
        if voxels > MAX_STEP_PIXELS:
            raise ValueError(
                f"batch_size x patch_3d voxels must be at most {MAX_STEP_PIXELS} per step, got "
                f"{voxels}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON types.

        Returns
        -------
        dict
        """
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["class_colors"] = [list(c) for c in self.class_colors]
        d["spacing"] = None if self.spacing is None else list(self.spacing)
        d["patch_3d"] = None if self.patch_3d is None else list(self.patch_3d)
        window = self.normalization_window
        d["normalization_window"] = None if window is None else list(window)
        if isinstance(self.axis, tuple):
            d["axis"] = list(self.axis)
        d["ignore_labels"] = list(self.ignore_labels)
        for name in ("spacing_unit", "instances", "ignore_labels", "normalization_window"):
            if d[name] in (None, []):
                del d[name]
        return d

    @classmethod
    def from_dict(cls, data: Any) -> TrainingConfig:
        """Build and validate a config; a run summary's ``{"config": ...}`` is accepted too.

        Parameters
        ----------
        data : dict
            Field names to values, or a ``.training.json`` summary.

        Returns
        -------
        TrainingConfig

        Raises
        ------
        ValueError, TypeError
            For a non-mapping, unknown settings or invalid values (named).
        """
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            data = data["config"]
        return super().from_dict(data)

    @classmethod
    def _from_mapping(cls, data: dict[str, Any]) -> TrainingConfig:
        if isinstance(data.get("class_names"), list):
            data["class_names"] = tuple(data["class_names"])
        elif data.get("class_names") is None:
            data.pop("class_names", None)
        for name in ("spacing", "patch_3d", "axis", "normalization_window"):
            if isinstance(data.get(name), list):
                data[name] = tuple(data[name])
        return cls(**data)
