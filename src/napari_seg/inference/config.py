"""The validated settings of one prediction job, shared by the widget and the CLI."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

from .tiling import BLENDING_MODES

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Smallest tile side accepted; smaller tiles waste most of their pixels on context.
MIN_TILE = 32


@dataclass(frozen=True)
class PredictConfig:
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
        ``auto``: bf16 (or fp16 where bf16 is unsupported) on CUDA, bf16 on
        CPUs with native bf16, fp32 otherwise.
    blending : {"gaussian", "cosine", "constant"}
        Window used to blend overlapping tiles.
    probabilities : bool
        Also return per-class probabilities (float16).
    channel_axis : int, optional
        Channel axis of the input; detected when None.
    axis : int or tuple of int, optional
        Axis (axes) to segment slice by slice along for stacks and time series.
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

    def validate(self) -> PredictConfig:
        """Return ``self`` if every field is valid, else raise ``ValueError``/``TypeError``."""
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a string, got {self.device!r}")
        _check_int("tile", self.tile, MIN_TILE)
        _check_int("overlap", self.overlap, 0)
        _check_int("batch_size", self.batch_size, 1)
        if self.tile is not None and self.overlap is not None and self.overlap >= self.tile:
            raise ValueError(
                f"overlap must be smaller than the tile, got overlap={self.overlap}, "
                f"tile={self.tile}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.blending not in BLENDING_MODES:
            raise ValueError(f"blending must be one of {BLENDING_MODES}, got {self.blending!r}")
        _check_int("channel_axis", self.channel_axis, None)
        axes = (self.axis,) if isinstance(self.axis, int) else (self.axis or ())
        for a in axes:
            _check_int("axis", a, None)
        return self

    def with_(self, **changes) -> PredictConfig:
        """A copy with ``changes`` applied and validated."""
        return replace(self, **changes).validate()

    def to_dict(self) -> dict:
        d = asdict(self)
        if isinstance(self.axis, tuple):
            d["axis"] = list(self.axis)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> PredictConfig:
        from .._config_file import reject_unknown

        reject_unknown(data, [f.name for f in fields(cls)], "prediction")
        data = dict(data)
        if isinstance(data.get("axis"), list):
            data["axis"] = tuple(data["axis"])
        return cls(**data).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> PredictConfig:
        return cls.from_dict(json.loads(text))


def _check_int(name: str, value, minimum: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer or None, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
