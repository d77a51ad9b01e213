"""The validated settings of one prediction job, shared by the widget and the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from .._config_file import JobConfig
from .._validate import (
    check_axes,
    check_axis,
    check_bool,
    check_choice,
    check_int,
    check_length_unit,
    check_spacing,
    check_str,
    pixels_hint,
)
from ..arrays import PRECISIONS
from ..limits import MAX_BATCH_PIXELS, MAX_THREADS, MAX_TILE, MAX_TILE_BATCH, brief
from .tiling import BLENDING_MODES

#: Smallest tile side accepted; smaller tiles waste most of their pixels on context.
MIN_TILE = 32


@dataclass(frozen=True)
class PredictConfig(JobConfig):
    """Settings of a prediction job.

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    tile : int, optional
        Tile side in pixels; None picks one for the device (512 on CPU, up to
        1024 on a GPU with room), rounded to the model's size multiple.
    overlap : int, optional
        Overlap between tiles; None gives a quarter of the tile.
    batch_size : int, optional
        Tiles per forward pass; None picks one for the device.
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``auto``: bf16 on CUDA (fp16 on cards before Ampere, which only emulate
        bf16), bf16 on CPUs with native bf16, fp32 otherwise.
    blending : {"gaussian", "cosine", "constant"}
        Window used to blend overlapping tiles.
    probabilities : bool
        Also return per-class probabilities (float16).
    channel_axis : int, optional
        Channel axis of the input; detected when None.
    axis : int or tuple of int, optional
        Axis (axes) to segment slice by slice along for stacks and time series.
    spacing : tuple of float, optional
        The image's pixel (voxel) size along the axes the model sees (2 for a 2D
        model, 3 for a 3D one), e.g. a layer's scale or a NIfTI header's voxel
        size. When the model records a different spacing, the image is resampled
        to the model's and the result brought back to the image's grid.
    spacing_unit : str, optional
        The length unit of ``spacing`` by its NGFF name (``"millimeter"``); when
        the model records its own, the spacing is converted to it before the two
        are compared. None: compared as plain numbers.
    threads : int, optional
        torch CPU threads during a run on the CPU (None: leave torch's setting).
        The last bits of a network's output depend on it: block-wise runs
        reproduce a single-process run bit for bit with the same count.
    tta : bool
        Test-time augmentation by mirroring, as nnU-Net predicts: every tile also
        runs flipped along each combination of its spatial axes (4 forward passes
        in 2D, 8 in 3D) and the softmax probabilities, flipped back, are averaged.
        Slower by that factor; usually a little more accurate and smoother.
    """

    device: str = "auto"
    tile: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    precision: str = "auto"
    blending: str = "gaussian"
    probabilities: bool = False
    channel_axis: int | None = None
    axis: int | tuple[int, ...] | None = None
    spacing: tuple[float, ...] | None = None
    spacing_unit: str | None = None
    threads: int | None = None
    tta: bool = False

    KIND: ClassVar[str] = "prediction"

    def validate(self) -> PredictConfig:
        """Return ``self`` if every field is valid.

        Returns
        -------
        PredictConfig

        Raises
        ------
        ValueError, TypeError
            Naming the field, its bound and the value.
        """
        check_str("device", self.device)
        check_int("tile", self.tile, MIN_TILE, MAX_TILE, optional=True)
        if isinstance(self.overlap, float):  # overlap=0.25, as MONAI takes it
            raise TypeError(
                f"overlap must be a whole number of pixels or None, got "
                f"{brief(self.overlap)}{pixels_hint(self.overlap)}"
            )
        check_int("overlap", self.overlap, 0, MAX_TILE, optional=True)
        check_int("batch_size", self.batch_size, 1, MAX_TILE_BATCH, optional=True)
        if self.tile is not None:
            check_overlap(self.overlap, self.tile)
        if self.tile is not None and self.batch_size is not None:
            pixels = self.batch_size * self.tile**2
            if pixels > MAX_BATCH_PIXELS:
                raise ValueError(
                    f"batch_size x tile^2 must be at most {MAX_BATCH_PIXELS} pixels per forward "
                    f"pass, got {self.batch_size} x {self.tile}^2 = {pixels}"
                )
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("blending", self.blending, BLENDING_MODES)
        check_bool("probabilities", self.probabilities)
        check_axis("channel_axis", self.channel_axis)
        check_axes("axis", self.axis)
        check_spacing("spacing", self.spacing, (2, 3))
        check_length_unit("spacing_unit", self.spacing_unit, self.spacing)
        check_int("threads", self.threads, 1, MAX_THREADS, optional=True)
        check_bool("tta", self.tta)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON types (``axis`` tuples as lists).

        Returns
        -------
        dict
        """
        d = asdict(self)
        for key in ("axis", "spacing"):
            if isinstance(d[key], tuple):
                d[key] = list(d[key])
        # As before these fields existed: a resumed block run compares the settings.
        if d["spacing_unit"] is None:
            del d["spacing_unit"]
        if not d["tta"]:
            del d["tta"]
        return d

    @classmethod
    def _from_mapping(cls, data: dict[str, Any]) -> PredictConfig:
        for key in ("axis", "spacing"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)


def check_overlap(overlap: int | None, tile: int, chosen: str | None = None) -> None:
    """Refuse an overlap of at least the tile: the tiles would step by one pixel, or
    not at all (once clipped silently to ``tile - 1``: a million tiles for a
    1500 x 1500 image).

    Parameters
    ----------
    overlap : int or None
        The overlap asked for (None: the network's or the default, always below).
    tile : int
        The tile, given or chosen.
    chosen : str, optional
        What chose the tile when the user did not (e.g. "for cpu"), for the message.

    Raises
    ------
    ValueError
        Naming both figures, and the setting to change.
    """
    if overlap is None or overlap < tile:
        return
    if chosen is None:
        raise ValueError(
            f"overlap must be smaller than the tile, got overlap={overlap}, tile={tile}"
        )
    raise ValueError(
        f"overlap must be smaller than the tile, got overlap={overlap} and the {tile}-pixel "
        f"tile chosen {chosen}: give a smaller overlap, or a larger tile (tile=, --tile)"
    )
