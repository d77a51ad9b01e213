"""What the registry says of an architecture: :class:`Architecture` (its builder,
encoders, dimensionalities and options) and :class:`OptionRange` (one option's
default and allowed values). No torch at import."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._validate import closest_names, did_you_mean
from .spec import ModelSpec

#: The encoder name of the architectures' own (non-pretrained) encoders.
CLASSIC = "classic"


@dataclass(frozen=True)
class OptionRange:
    """An integer or boolean option with its default and allowed values."""

    default: int | bool
    low: int | None = None
    high: int | None = None
    choices: tuple[int, ...] | None = None
    help: str = ""

    def check(self, name: str, value: Any) -> None:
        """Raise if ``value`` is not a valid value of option ``name``.

        Parameters
        ----------
        name : str
        value : int or bool

        Raises
        ------
        TypeError
            For a value of the wrong kind.
        ValueError
            For a value out of range or not among the choices.
        """
        if isinstance(self.default, bool):
            if not isinstance(value, bool):
                raise TypeError(f"option {name!r} must be true or false, got {value!r}")
            return
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"option {name!r} must be an integer, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"option {name!r} must be one of {self.choices}, got {value}")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ValueError(
                f"option {name!r} must be between {self.low} and {self.high}, got {value}"
            )


@dataclass(frozen=True)
class Architecture:
    """One registered architecture.

    Attributes
    ----------
    name : str
        Registry key (lowercase).
    title : str
        Display name.
    description : str
        One line the GUI and ``napari-seg models`` show.
    source : str
        Where the implementation comes from (library or "napari-seg").
    builder : str
        ``"module:function"`` building the network from a spec (imported lazily).
    encoders : tuple of str
        Valid encoders; empty when the architecture has none.
    default_encoder : str or None
    options : mapping of str to OptionRange
        Architecture options with their defaults and ranges.
    encoder_options : mapping of str to OptionRange, optional
        Options that replace ``options`` when a pretrainable encoder (anything
        but ``"classic"``) is chosen; ``None`` means ``options`` always apply.
    dims : tuple of int
        The spatial dimensionalities it offers (``ModelSpec.spatial_dims``).
    encoders_3d : tuple of str or None
        The encoders that work in 3D when only some do (None: every encoder).
    fitted : {"gradient", "forest"}
        How it learns: by gradient descent (the training loop), or by fitting a
        random forest on filter features in one pass (``training.pixel``).
    intensity_augmentation : bool
        Whether intensity and noise augmentations suit it. Not for a network fed
        a fitted classifier's output: the classifier's thresholds were fitted on
        the real intensities, and augmented ones would make its output noise.
    """

    name: str
    title: str
    description: str
    source: str
    builder: str
    encoders: tuple[str, ...] = ()
    default_encoder: str | None = None
    options: Mapping[str, OptionRange] = field(default_factory=dict)
    encoder_options: Mapping[str, OptionRange] | None = None
    dims: tuple[int, ...] = (2,)
    encoders_3d: tuple[str, ...] | None = None
    fitted: str = "gradient"
    intensity_augmentation: bool = True

    def options_for(self, encoder: str | None) -> Mapping[str, OptionRange]:
        """The options that apply with ``encoder``.

        Parameters
        ----------
        encoder : str or None

        Returns
        -------
        mapping of str to OptionRange
        """
        if self.encoder_options is not None and self.resolve_encoder(encoder) != CLASSIC:
            return self.encoder_options
        return self.options

    def resolve_encoder(self, encoder: str | None, dims: int = 2) -> str | None:
        """The encoder used for ``encoder`` (for None: the default, or in 3D the
        first encoder the architecture offers in 3D).

        Parameters
        ----------
        encoder : str or None
        dims : {2, 3}

        Returns
        -------
        str or None
        """
        if encoder is not None:
            return encoder
        if dims == 3 and self.encoders_3d:
            return self.encoders_3d[0]
        return self.default_encoder

    def check_encoder(self, encoder: str | None) -> None:
        """Raise if ``encoder`` is not one of this architecture's.

        Parameters
        ----------
        encoder : str or None

        Raises
        ------
        ValueError
            For an encoder on an architecture without any, or an unknown one (the
            message lists the valid ones).
        """
        if not self.encoders:
            if encoder not in (None, ""):
                raise ValueError(
                    f"architecture {self.name!r} has no encoder choice, got encoder={encoder!r}"
                )
            return
        if encoder is not None and encoder not in self.encoders:
            raise ValueError(
                f"unknown encoder {encoder!r}{did_you_mean(str(encoder), self.encoders)} for "
                f"architecture {self.name!r}; valid encoders: {', '.join(self.encoders)}"
            )

    def check_options(self, options: Mapping[str, Any], encoder: str | None = None) -> None:
        """Raise if an option is unknown for this architecture (and encoder) or out of range.

        Parameters
        ----------
        options : mapping of str to value
        encoder : str or None

        Raises
        ------
        ValueError, TypeError
            Naming the option and the valid ones or range.
        """
        allowed = self.options_for(encoder)
        unknown = set(options) - set(allowed)
        if unknown:
            valid = ", ".join(allowed) or "none"
            with_encoder = (
                f" with encoder {self.resolve_encoder(encoder)!r}" if self.encoders else ""
            )
            hints = closest_names(sorted(unknown), list(allowed))
            raise ValueError(
                f"unknown option(s) {sorted(unknown)}{f' ({hints})' if hints else ''} for "
                f"architecture {self.name!r}{with_encoder}; valid options: {valid}"
            )
        for key, value in options.items():
            allowed[key].check(key, value)

    def option(self, spec: ModelSpec, key: str) -> Any:
        """The value of option ``key`` in ``spec``, or its default.

        Parameters
        ----------
        spec : ModelSpec
        key : str

        Returns
        -------
        int or bool
        """
        encoder = self.resolve_encoder(spec.encoder, spec.spatial_dims)
        return spec.options.get(key, self.options_for(encoder)[key].default)

    def build(self, spec: ModelSpec) -> tuple[Any, int]:
        """Build the network for ``spec`` (imports its library on first use).

        Parameters
        ----------
        spec : ModelSpec

        Returns
        -------
        net : torch.nn.Module
        size_multiple : int
            The network's input sides must be multiples of it.
        """
        module_name, func = self.builder.split(":")
        module = importlib.import_module(module_name, package=__package__)
        return getattr(module, func)(spec, self)


__all__ = ["CLASSIC", "Architecture", "OptionRange"]
