"""A network together with its spec: input checks, padding, deep-supervision outputs."""

from __future__ import annotations

from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from .spec import ModelSpec


class _DeepSupervised(Protocol):
    """A network with deep-supervision outputs."""

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]: ...


def pad_to_multiple(
    x: torch.Tensor, multiple: int, *, mode: str = "reflect"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two axes of ``x`` up to a multiple of ``multiple``.

    Padding is added at the bottom and right so that cropping back is a plain
    slice. Reflection is used where the image is large enough, replication
    otherwise (reflection needs more pixels than the pad width).

    Parameters
    ----------
    x : torch.Tensor
        Array of shape ``(N, C, H, W)``.
    multiple : int
        Required size multiple (>= 1).
    mode : {"reflect", "replicate", "constant"}
        Padding mode.

    Returns
    -------
    padded : torch.Tensor
    original_size : tuple of int
        ``(H, W)`` to crop back to with ``out[..., :H, :W]``.

    Raises
    ------
    ValueError
        If ``multiple`` is below 1.

    Examples
    --------
    >>> y, (h, w) = pad_to_multiple(torch.zeros(1, 1, 67, 93), 32)
    >>> tuple(y.shape[-2:]), (h, w)
    ((96, 96), (67, 93))
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    if mode == "reflect" and (pad_h >= h or pad_w >= w):
        mode = "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def mask_untrained(logits: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """Logits with the spec's untrained classes set to -inf (never predicted).

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, classes, ...)``.
    spec : ModelSpec

    Returns
    -------
    torch.Tensor
        ``logits`` itself when nothing is masked, else a copy.
    """
    if not spec.untrained_classes:
        return logits
    logits = logits.clone()
    logits[:, list(spec.untrained_classes)] = float("-inf")
    return logits


def padded_size(size: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``size``.

    Parameters
    ----------
    size, multiple : int

    Returns
    -------
    int
    """
    return -(-size // multiple) * multiple


class SegmentationModel(nn.Module):
    """A segmentation network with its :class:`ModelSpec`.

    Calling the model returns class logits of shape ``(N, num_classes, H, W)``
    for any input of shape ``(N, in_channels, H, W)``: inputs are padded to the
    network's size multiple and the output is cropped back.

    Parameters
    ----------
    net : torch.nn.Module
        The network; it maps ``(N, C, H', W')`` to logits when ``H'`` and ``W'``
        are multiples of ``size_multiple``. It may define
        ``forward_aux(x) -> (logits, [aux_logits, ...])`` for deep supervision.
    spec : ModelSpec
    size_multiple : int
    """

    def __init__(self, net: nn.Module, spec: ModelSpec, *, size_multiple: int) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.size_multiple = int(size_multiple)
        #: The model card when loaded from a file (see ``load_model``), else None.
        self.card: dict | None = None
        #: Non-model tensors stored in the file (e.g. optimizer state).
        self.extra_tensors: dict[str, torch.Tensor] = {}

    @property
    def has_aux_outputs(self) -> bool:
        """Whether :meth:`forward_with_aux` returns deep-supervision outputs."""
        return hasattr(self.net, "forward_aux") and bool(getattr(self.net, "aux_enabled", True))

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters.

        Returns
        -------
        torch.device
        """
        return next(self.parameters()).device

    def check_input(self, x: torch.Tensor) -> None:
        """Raise, naming the problem, if ``x`` is not a valid input batch.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, in_channels, H, W)``, floating point.

        Raises
        ------
        TypeError
            For a non-tensor or an integer tensor.
        ValueError
            For a wrong number of dimensions or channels, or an empty input.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(
                f"input must have shape (N, C, H, W), got {x.ndim} dimensions {tuple(x.shape)}"
            )
        if x.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"this model expects {self.spec.in_channels} input channel(s), "
                f"got {x.shape[1]} (input shape {tuple(x.shape)})"
            )
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"input must not be empty, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got {x.dtype}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch, padded to the size multiple and cropped back.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, in_channels, H, W)``.

        Returns
        -------
        torch.Tensor
            ``(N, num_classes, H, W)``.
        """
        self.check_input(x)
        padded, (h, w) = pad_to_multiple(x, self.size_multiple)
        return self.net(padded)[..., :h, :w]

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits plus deep-supervision logits (same size as the input).

        Architectures without deep supervision return an empty list.

        Parameters
        ----------
        x : torch.Tensor

        Returns
        -------
        logits : torch.Tensor
        aux : list of torch.Tensor
        """
        self.check_input(x)
        padded, (h, w) = pad_to_multiple(x, self.size_multiple)
        if not self.has_aux_outputs:
            return self.net(padded)[..., :h, :w], []
        out, aux = cast(_DeepSupervised, self.net).forward_aux(padded)
        return out[..., :h, :w], [a[..., :h, :w] for a in aux]

    def extra_repr(self) -> str:
        """The spec's main fields, for ``repr(model)``.

        Returns
        -------
        str
        """
        s = self.spec
        return (
            f"architecture={s.architecture!r}, encoder={s.encoder!r}, "
            f"in_channels={s.in_channels}, num_classes={s.num_classes}, "
            f"size_multiple={self.size_multiple}"
        )
