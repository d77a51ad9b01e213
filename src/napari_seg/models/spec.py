"""The model specification: everything needed to rebuild a network."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Protocol

from .._validate import (
    as_names,
    check_int,
    check_length_unit,
    check_number,
    check_spacing,
    check_str,
    reject_unknown,
)
from ..limits import MAX_CLASSES, MAX_IN_CHANNELS, brief

NORMALIZATION_METHODS = ("percentile", "minmax", "meanstd", "window", "none")

# A qualitative palette for class colours (class 0 is transparent background).
_PALETTE = (
    (0.0, 0.0, 0.0, 0.0),
    (0.12, 0.47, 0.71, 1.0),
    (1.0, 0.5, 0.05, 1.0),
    (0.17, 0.63, 0.17, 1.0),
    (0.84, 0.15, 0.16, 1.0),
    (0.58, 0.4, 0.74, 1.0),
    (0.55, 0.34, 0.29, 1.0),
    (0.89, 0.47, 0.76, 1.0),
    (0.5, 0.5, 0.5, 1.0),
    (0.74, 0.74, 0.13, 1.0),
    (0.09, 0.75, 0.81, 1.0),
)


def default_class_colors(
    num_classes: int, background: int | None = 0
) -> tuple[tuple[float, float, float, float], ...]:
    """One RGBA colour per class; class 0 and the background class are transparent.

    Parameters
    ----------
    num_classes : int
    background : int, optional
        The background class id (0 by default; None: none beyond id 0).

    Returns
    -------
    tuple of (r, g, b, a) tuples
    """
    colors: list[tuple[float, float, float, float]] = []
    for i in range(num_classes):
        if i == background:
            colors.append(_PALETTE[0])
            continue
        if i < len(_PALETTE):
            colors.append(_PALETTE[i])
        else:  # golden-ratio hue walk for many classes
            import colorsys

            r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95)
            colors.append((round(r, 4), round(g, 4), round(b, 4), 1.0))
    return tuple(colors)


@dataclass(frozen=True)
class Normalization:
    """How raw image intensities are mapped before they reach the network.

    Parameters
    ----------
    method : {"percentile", "minmax", "meanstd", "window", "none"}
        ``percentile`` maps the ``low`` and ``high`` percentiles to 0 and 1;
        ``minmax`` maps the minimum and maximum to 0 and 1; ``meanstd``
        subtracts ``mean`` and divides by ``std`` (per channel, or computed
        from the image when they are not given); ``window`` maps the fixed
        intensities of ``window`` to 0 and 1 and clips the rest (a CT's
        Hounsfield units, as MONAI's ``ScaleIntensityRange(clip=True)``); ``none``
        passes values on.
    low, high : float
        Percentiles used by ``percentile``.
    mean, std : tuple of float, optional
        Per-channel statistics used by ``meanstd``.
    window : tuple of float, optional
        ``(lowest, highest)`` intensity of ``window``, in the image's units (e.g.
        ``(-175, 250)`` for abdominal soft tissue in a CT), the same for every channel.
    """

    method: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    window: tuple[float, float] | None = None

    def validate(self) -> Normalization:
        """Return ``self`` if every field is valid, else raise ``ValueError``/``TypeError``.

        Statistics must be finite: a NaN or infinite mean/std would silently turn
        every image into a constant.

        Returns
        -------
        Normalization

        Raises
        ------
        ValueError, TypeError
            Naming the field and the value.
        """
        if self.method not in NORMALIZATION_METHODS:
            raise ValueError(
                f"normalization method must be one of {NORMALIZATION_METHODS}, "
                f"got {brief(self.method)}"
            )
        for name in ("low", "high"):
            check_number(f"normalization {name}", getattr(self, name), low=0.0, high=100.0)
        if not self.low < self.high:
            raise ValueError(
                "normalization percentiles must satisfy 0 <= low < high <= 100, "
                f"got low={self.low}, high={self.high}"
            )
        self._validate_window()
        if (self.mean is None) != (self.std is None):
            raise ValueError("normalization mean and std must be given together")
        if self.mean is None or self.std is None:
            return self
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not 1 <= len(values) <= MAX_IN_CHANNELS:
                raise ValueError(
                    f"normalization {name} must be a list of 1 to {MAX_IN_CHANNELS} numbers, "
                    f"got {brief(values)}"
                )
            for v in values:
                check_number(f"normalization {name}", v, low=-math.inf)
        if len(self.std) != len(self.mean) or any(s <= 0 for s in self.std):
            raise ValueError(
                "normalization std must be positive and as long as mean, "
                f"got mean={brief(self.mean)}, std={brief(self.std)}"
            )
        return self

    def summary(self) -> str:
        """The method in a few words, for cards and docks: "window -175 to 250, clipped".

        Returns
        -------
        str
        """
        if self.method == "percentile":
            return f"percentile {self.low:g} to {self.high:g}"
        if self.method == "window" and self.window is not None:
            return f"window {self.window[0]:g} to {self.window[1]:g}, clipped"
        return self.method

    def _validate_window(self) -> None:
        """``window``: two finite intensities, lowest first, for ``window`` alone."""
        if self.method != "window":
            if self.window is not None:
                raise ValueError(
                    f"an intensity window is used by normalization 'window', not {self.method!r}"
                )
            return
        window = self.window
        if not isinstance(window, tuple) or len(window) != 2:
            raise ValueError(
                "normalization 'window' needs its window: the (lowest, highest) intensities "
                f"(--window LOW HIGH on the command line), got {brief(window)}"
            )
        for v in window:
            check_number("normalization window", v, low=-math.inf)
        span = window[1] - window[0]
        if not 0 < span < math.inf or 1.0 / span > 1e30:
            raise ValueError(
                "normalization window must be (lowest, highest) with lowest < highest, "
                f"neither too close nor too far apart, got {brief(window)}"
            )


@dataclass(frozen=True)
class ModelSpec:
    """A validated, JSON-serialisable description of a segmentation network.

    Parameters
    ----------
    architecture : str
        A name from :func:`napari_seg.models.list_architectures`.
    in_channels : int
        Number of image channels the network reads (1 for grayscale, 3 for RGB...).
    num_classes : int
        Number of output classes, background included (at least 2).
    encoder : str, optional
        Encoder (backbone) name for architectures that have one; ``None`` picks
        the architecture's default.
    class_names : tuple of str, optional
        One name per class; defaults to ``("background", "class 1", ...)``.
    class_colors : tuple of RGBA tuples, optional
        One colour per class; defaults to a qualitative palette.
    normalization : Normalization
        The input normalisation the model expects.
    options : dict
        Architecture options (e.g. ``depth``, ``base_width``, ``deep_supervision``).
    untrained_classes : tuple of int
        Class ids the model was never trained on (id 0 of a model trained on
        sparse scribbles, where 0 meant "not annotated"); inference never
        predicts them.
    spatial_dims : {2, 3}
        Whether the network reads 2D images or 3D volumes (its architecture's
        registry entry says which it offers).
    background : int or None
        The class id that is background: shown transparent, left out of the
        "without background" means, the default background of Refine. Default
        0; None when the model has no background class, and None when class 0
        is untrained and no other id was named.
    spacing : tuple of float or None
        The voxel (pixel) size, one value per spatial axis, the model was made or
        trained for (e.g. ``(5.0, 0.5, 0.5)`` mm for an anisotropic CT); None when
        it has none. A 3D U-Net or DynUNet plans its pooling from it.
    spacing_unit : str or None
        The length unit of ``spacing`` by its NGFF name (``"millimeter"``,
        ``"micrometer"``); None when it was not known (prediction then compares
        the image's spacing with the model's as plain numbers).

    Examples
    --------
    >>> spec = ModelSpec("unet", in_channels=1, num_classes=3)
    >>> spec.class_names
    ('background', 'class 1', 'class 2')
    """

    architecture: str
    in_channels: int
    num_classes: int
    encoder: str | None = None
    class_names: tuple[str, ...] = ()
    class_colors: tuple[tuple[float, float, float, float], ...] = ()
    normalization: Normalization = field(default_factory=Normalization)
    options: dict[str, Any] = field(default_factory=dict)
    untrained_classes: tuple[int, ...] = ()
    spatial_dims: int = 2
    background: int | None = 0
    spacing: tuple[float, ...] | None = None
    spacing_unit: str | None = None

    def __post_init__(self) -> None:
        # Fill derived defaults so that every spec is complete once built, but only
        # from sizes within the limits: validate() rejects the others before
        # anything is allocated from them.
        if isinstance(self.normalization, dict):
            norm = dict(self.normalization)
            for key in ("mean", "std", "window"):
                if isinstance(norm.get(key), list):
                    norm[key] = tuple(norm[key])
            object.__setattr__(self, "normalization", Normalization(**norm))
        sized = _is_int(self.num_classes) and 1 <= self.num_classes <= MAX_CLASSES
        if sized and not self.class_names:
            names = ("background", *tuple(f"class {i}" for i in range(1, self.num_classes)))
            object.__setattr__(self, "class_names", names)
        if sized and not self.class_colors:
            object.__setattr__(self, "class_colors", default_class_colors(self.num_classes))
        for name in ("class_names", "class_colors", "untrained_classes", "spacing"):
            value = getattr(self, name)
            if isinstance(value, list):  # a string or other value stays as is, for validate()
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.class_colors, tuple) and all(
            isinstance(c, (list, tuple)) and all(_is_real(v) for v in c) for c in self.class_colors
        ):
            colors = tuple(tuple(float(v) for v in c) for c in self.class_colors)
            object.__setattr__(self, "class_colors", colors)
        if isinstance(self.options, dict):
            object.__setattr__(self, "options", dict(self.options))
        untrained = self.untrained_classes
        if self.background == 0 and isinstance(untrained, tuple) and 0 in untrained:
            object.__setattr__(self, "background", None)  # class 0 was never learnt

    def validate(self) -> ModelSpec:
        """Check every field; return self or raise ``ValueError``/``TypeError``.

        Sizes are checked against :mod:`napari_seg.limits` first, so a spec read
        from a hostile file fails before anything is built from it.

        Returns
        -------
        ModelSpec
            The same, validated spec (so ``spec = ModelSpec(...).validate()`` reads well).

        Raises
        ------
        ValueError, TypeError
            Naming the field and the value; the architecture's own checks (known
            name, encoder, options) come from its registry entry.
        """
        if not _is_int(self.in_channels) or self.in_channels < 1:
            raise ValueError(f"in_channels must be an integer >= 1, got {brief(self.in_channels)}")
        check_int("in_channels", self.in_channels, 1, MAX_IN_CHANNELS)
        if not _is_int(self.num_classes) or self.num_classes < 2:
            raise ValueError(
                "num_classes must be an integer >= 2 (class 0 is background, so a "
                f"binary task has 2 classes), got {brief(self.num_classes)}"
            )
        check_int("num_classes", self.num_classes, 2, MAX_CLASSES)
        check_str("architecture", self.architecture)
        names = as_names("class_names", self.class_names, max_count=MAX_CLASSES)
        if len(names) != self.num_classes:
            raise ValueError(
                f"class_names must have one name per class ({self.num_classes}), "
                f"got {len(names)}: {brief(list(names))}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"class_names must be unique, got {brief(list(names))}")
        _check_colors(self.class_colors, self.num_classes)
        untrained = self.untrained_classes
        if (
            not isinstance(untrained, tuple)
            or any(not _is_int(c) or not 0 <= c < self.num_classes for c in untrained)
            or len(set(untrained)) > self.num_classes - 2
        ):
            raise ValueError(
                "untrained_classes must be distinct class ids, leaving at least two classes, "
                f"got {brief(untrained)}"
            )
        if self.spatial_dims not in (2, 3) or isinstance(self.spatial_dims, bool):
            raise ValueError(f"spatial_dims must be 2 or 3, got {brief(self.spatial_dims)}")
        check_spacing("spacing", self.spacing, (self.spatial_dims,))
        check_length_unit("spacing_unit", self.spacing_unit, self.spacing)
        if self.background is not None and (
            not _is_int(self.background)
            or not 0 <= self.background < self.num_classes
            or self.background in untrained
        ):
            raise ValueError(
                f"background must be None or a trained class id below {self.num_classes}, "
                f"got {brief(self.background)}"
            )
        if not isinstance(self.normalization, Normalization):
            raise TypeError(f"normalization must be a mapping, got {brief(self.normalization)}")
        self.normalization.validate()
        norm = self.normalization
        if norm.mean is not None and len(norm.mean) not in (1, self.in_channels):
            raise ValueError(
                f"normalization mean/std must have 1 or in_channels={self.in_channels} "
                f"values, got {len(norm.mean)}"
            )
        check_str("encoder", self.encoder, optional=True)
        if not isinstance(self.options, dict):
            raise TypeError(f"options must be a mapping, got {brief(self.options)}")
        _architecture_rules().check(self)
        return self

    @property
    def resolved_encoder(self) -> str | None:
        """The encoder actually used (the architecture default when ``encoder`` is None)."""
        return _architecture_rules().resolve_encoder(self)

    @property
    def network(self) -> str:
        """The architecture and encoder as messages name them: "unet (classic)",
        "swin-unetr (no encoder)"."""
        return f"{self.architecture} ({self.encoder or 'no encoder'})"

    def with_(self, **changes: Any) -> ModelSpec:
        """A copy with fields replaced (``dataclasses.replace``).

        Parameters
        ----------
        **changes
            New values of fields.

        Returns
        -------
        ModelSpec
        """
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON types.

        Returns
        -------
        dict
        """
        data = asdict(self)
        data["class_colors"] = [list(c) for c in self.class_colors]
        data["class_names"] = list(self.class_names)
        data["untrained_classes"] = list(self.untrained_classes)
        data["spacing"] = None if self.spacing is None else list(self.spacing)
        if self.spacing_unit is None:  # cards without one stay readable by older versions
            del data["spacing_unit"]
        if self.normalization.window is None:  # the same for a normalisation without one
            del data["normalization"]["window"]
        else:
            data["normalization"]["window"] = list(self.normalization.window)
        return data

    def to_json(self) -> str:
        """The spec as JSON text (keys sorted).

        Returns
        -------
        str
        """
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Build and validate a spec from :meth:`to_dict` output.

        Parameters
        ----------
        data : dict

        Returns
        -------
        ModelSpec

        Raises
        ------
        ValueError, TypeError
            If keys are missing or unknown, or a value is invalid.
        """
        if not isinstance(data, dict):
            raise TypeError(f"model spec must be a JSON object, got {type(data).__name__}")
        reject_unknown(data, [f.name for f in fields(cls)], "model spec")
        missing = {"architecture", "in_channels", "num_classes"} - set(data)
        if missing:
            raise ValueError(f"model spec is missing required keys: {sorted(missing)}")
        kwargs = dict(data)
        for key in ("class_names", "class_colors", "untrained_classes"):
            if kwargs.get(key) is None:
                kwargs.pop(key, None)
        if not isinstance(kwargs.get("normalization", {}), dict):
            raise TypeError(
                f"normalization must be a mapping, got {brief(kwargs['normalization'])}"
            )
        return cls(**kwargs).validate()

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """A spec from JSON text.

        Parameters
        ----------
        text : str

        Returns
        -------
        ModelSpec
        """
        return cls.from_dict(json.loads(text))


class ArchitectureRules(Protocol):
    """What a spec needs to know about its architecture; the registry provides it.

    The spec module imports nothing of the model zoo (it is the leaf every other
    module builds on); :mod:`napari_seg.models.registry` registers its rules here
    when it is imported, which importing :mod:`napari_seg.models` does.
    """

    def check(self, spec: ModelSpec) -> None:
        """Raise if the spec's architecture, encoder or options are not valid for it.

        Parameters
        ----------
        spec : ModelSpec
        """

    def resolve_encoder(self, spec: ModelSpec) -> str | None:
        """The encoder the architecture uses for ``spec.encoder`` (its default for None).

        Parameters
        ----------
        spec : ModelSpec

        Returns
        -------
        str or None
        """


_rules: ArchitectureRules | None = None


def register_architecture_rules(rules: ArchitectureRules) -> None:
    """Install the architecture rules the registry provides (called once, by it).

    Parameters
    ----------
    rules : ArchitectureRules
    """
    global _rules
    _rules = rules


def _architecture_rules() -> ArchitectureRules:
    if _rules is None:  # pragma: no cover - importing napari_seg.models installs them
        raise RuntimeError("the architecture registry is not loaded: import napari_seg.models")
    return _rules


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_colors(colors: Any, num_classes: int) -> None:
    ok = (
        isinstance(colors, tuple)
        and len(colors) == num_classes
        and all(
            isinstance(c, tuple)
            and len(c) == 4
            and all(_is_real(v) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in c)
            for c in colors
        )
    )
    if not ok:
        raise ValueError(f"class_colors must hold {num_classes} RGBA tuples with values in [0, 1]")
