"""A network together with its spec: input checks, padding, deep-supervision outputs."""

from __future__ import annotations

import itertools
import os
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from .spec import ModelSpec


class _DeepSupervised(Protocol):
    """A network with deep-supervision outputs."""

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]: ...


def pad_to_multiple(
    x: torch.Tensor, multiple: int, *, mode: str = "reflect", dims: int = 2
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Pad the last ``dims`` axes of ``x`` up to a multiple of ``multiple``.

    Padding is added at the end of each axis so that cropping back is a plain
    slice. Reflection is used where the image is large enough, replication
    otherwise (reflection needs more pixels than the pad width).

    Parameters
    ----------
    x : torch.Tensor
        Array of shape ``(N, C, H, W)`` (``dims=2``) or ``(N, C, D, H, W)`` (3).
    multiple : int
        Required size multiple (>= 1).
    mode : {"reflect", "replicate", "constant"}
        Padding mode.
    dims : {2, 3}
        Number of trailing spatial axes.

    Returns
    -------
    padded : torch.Tensor
    original_size : tuple of int
        The spatial size to crop back to (see :func:`crop_to`).

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
    size = tuple(int(n) for n in x.shape[-dims:])
    pads = [(-n) % multiple for n in size]
    if not any(pads):
        return x, size
    if mode == "reflect" and any(p >= n for p, n in zip(pads, size, strict=True)):
        mode = "replicate"
    flat = [v for p in reversed(pads) for v in (0, p)]  # F.pad counts from the last axis
    return F.pad(x, flat, mode=mode), size


def crop_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``x`` cropped to ``size`` on its trailing axes (undoes :func:`pad_to_multiple`).

    Parameters
    ----------
    x : torch.Tensor
    size : tuple of int

    Returns
    -------
    torch.Tensor
    """
    index: tuple[Any, ...] = (Ellipsis, *(slice(0, n) for n in size))
    return x[index]


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


def class_probabilities(logits: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """The softmax over classes of a model's ``(N, classes, ...)`` logits, in float32,
    with the spec's untrained classes at 0 (:func:`mask_untrained`).

    Parameters
    ----------
    logits : torch.Tensor
    spec : ModelSpec

    Returns
    -------
    torch.Tensor
    """
    return torch.softmax(mask_untrained(logits.float(), spec), dim=1)


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
    for any input of shape ``(N, in_channels, H, W)`` (``(N, C, D, H, W)`` for a
    model whose ``spec.spatial_dims`` is 3): inputs are padded to the network's
    size multiple and the output is cropped back.

    Parameters
    ----------
    net : torch.nn.Module
        The network; it maps ``(N, C, H', W')`` to logits when ``H'`` and ``W'``
        are multiples of ``size_multiple`` (likewise in 3D). It may define
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
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def check_input(self, x: torch.Tensor) -> None:
        """Raise, naming the problem, if ``x`` is not a valid input batch.

        Parameters
        ----------
        x : torch.Tensor
            ``(N, in_channels, H, W)`` (or ``(N, in_channels, D, H, W)`` for a 3D
            model), floating point.

        Raises
        ------
        TypeError
            For a non-tensor, an integer tensor, or float64 for a float32 model.
        ValueError
            For a wrong number of dimensions or channels, or an empty input.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        dims = self.spec.spatial_dims
        if x.ndim != 2 + dims:
            axes = "(N, C, H, W)" if dims == 2 else "(N, C, D, H, W)"
            raise ValueError(
                f"this {dims}D model needs input of shape {axes}, got {x.ndim} dimensions "
                f"{tuple(x.shape)}"
            )
        if x.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"this model expects {self.spec.in_channels} input channel(s), "
                f"got {x.shape[1]} (input shape {tuple(x.shape)})"
            )
        if 0 in x.shape:
            raise ValueError(f"input must not be empty, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got {x.dtype}")
        weight = next(self.parameters(), None)
        if x.dtype == torch.float64 and weight is not None and weight.dtype != torch.float64:
            # torch says only "expected scalar type Double but found Float"
            raise TypeError(
                f"input is float64 (NumPy's default) but the model's weights are "
                f"{weight.dtype}: give x.float() (or convert the model with model.double())"
            )

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
        padded, size = self._pad(x)
        return crop_to(self.net(padded), size)

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
        padded, size = self._pad(x)
        if not self.has_aux_outputs:
            return crop_to(self.net(padded), size), []
        out, aux = cast(_DeepSupervised, self.net).forward_aux(padded)
        return crop_to(out, size), [crop_to(a, size) for a in aux]

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """``x`` padded to the size multiple, and to two of them along its last axis
        when it would otherwise be one value per channel at the network's coarsest
        level, where instance normalisation (MONAI's networks) cannot run: an input
        of 16 x 24 x 24 for swin-unetr's 32."""
        dims, multiple = self.spec.spatial_dims, self.size_multiple
        padded, size = pad_to_multiple(x, multiple, dims=dims)
        if multiple > 1 and all(n == multiple for n in padded.shape[-dims:]):
            pads = (0, multiple) + (0, 0) * (dims - 1)  # the last axis; F.pad wants all
            padded = F.pad(padded, pads, mode="replicate")
        return padded, size

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


def check_model(model: Any, call: str, *, other: Any = None, path_hint: str = "") -> None:
    """Refuse what is not a model napari-seg made (a module with its ``spec``), naming
    what was given instead.

    Parameters
    ----------
    model : object
        What was given as the model.
    call : str
        The call's order, for arguments given the other way round
        (``"predict(model, image)"``).
    other : object, optional
        The argument the model may have been swapped with.
    path_hint : str, optional
        How this call takes a model file (default: load it first).

    Raises
    ------
    TypeError
        Naming the type given, and the arguments' order, a file's path or a plain
        torch module.
    """

    def is_model(obj: Any) -> bool:
        return isinstance(obj, nn.Module) and hasattr(obj, "spec")

    if is_model(model):
        return
    if is_model(other):
        hint = f" (the model comes first: {call})"
    elif isinstance(model, (str, os.PathLike)):
        hint = f" (a model file: {path_hint or 'napari_seg.models.load_model(path) first'})"
    elif isinstance(model, nn.Module):
        hint = " (a plain torch module: napari-seg runs the networks it builds, with their spec)"
    else:
        hint = ""
    raise TypeError(
        "model must be a napari_seg SegmentationModel (from create_model or load_model), "
        f"got {type(model).__name__}{hint}"
    )
