"""What a file's axis letters say (tifffile's ``"TZCYX"``, as Fiji and OME-TIFF name
them): its time axis, the axes to segment slice by slice along, its channel axis."""

from __future__ import annotations

from collections.abc import Sequence


def named_time_axis(axes: str | None) -> int | None:
    """The time axis of a stack whose file names its axes: its one ``T`` (a Fiji
    time-lapse's ``"TYX"``, ``"TZYX"``), along which refine and evaluate take the
    frames apart; None for no axis names, no ``T``, several, or a single plane.

    Parameters
    ----------
    axes : str or None
        One letter per axis (tifffile's), or None when the file names none.

    Returns
    -------
    int or None
    """
    if not axes or len(axes) < 3 or axes.count("T") != 1:
        return None
    return axes.index("T")


def is_time_label(label: object) -> bool:
    """Whether an axis name says time: a napari layer's ``axis_labels`` entry, as
    napari-ome-zarr sets from an OME-Zarr image's axes (``"t"``), or a letter ``T``.

    Parameters
    ----------
    label : object

    Returns
    -------
    bool
    """
    return str(label).strip().lower() in ("t", "time")


def named_slice_axes(
    axes: str | None, spatial_dims: int, channel_axis: int | None = None
) -> tuple[int, ...] | None:
    """The axes to segment slice by slice along, from the axis letters a file gives
    (tifffile's: ``"TYX"``, ``"TZCYX"``...): every axis before the model's spatial
    ones (``YX``, or ``ZYX`` for a 3D model) other than channels (``C``, ``S``, and
    ``channel_axis``, the user's: a z-stack that holds channels after all).

    A file that names all its axes leaves no doubt about a channel axis, so a time
    series or a z-stack needs no ``axis`` for a 2D model (as the GUI's slider axes).

    Parameters
    ----------
    axes : str or None
        One letter per axis of the image, or None when the file names none.
    spatial_dims : int
        2 or 3: what the model sees.
    channel_axis : int, optional
        The channel axis the user gave.

    Returns
    -------
    tuple of int or None
        None when the file names no axes, its last non-channel axes are not
        ``YX``/``ZYX``, an axis before them is neither ``T`` nor ``Z`` (tifffile's
        ``I`` or ``Q``: a page sequence of unknown meaning), or there is nothing to
        slice.
    """
    if not axes:
        return None
    given = None if channel_axis is None else channel_axis % len(axes)
    others = [i for i, letter in enumerate(axes) if letter not in "CS" and i != given]
    spatial = "".join(axes[i] for i in others[-spatial_dims:])
    leading = others[:-spatial_dims]
    if not leading or spatial != "ZYX"[-spatial_dims:]:
        return None
    if any(axes[i] not in "TZ" for i in leading):  # a generic axis ("I", "Q") says nothing
        return None
    return tuple(leading)


def named_channel_axis(
    given: int | None, in_channels: int | None, named: Sequence[int | None]
) -> int | None:
    """The channel axis of images whose files name the axes ``named`` (a TIFF's ``C``
    axis, as Fiji and OME-TIFF name it; None for a file that names none), read by a
    model of ``in_channels`` (None: any number, or not decided yet).

    ``given`` when set; else, unless the model reads one channel, the axis every file
    names alike; else None, and :func:`.channels.channel_axis_of`'s size rule decides (which
    would take the time axis of a two-timepoint, two-channel stack).

    Parameters
    ----------
    given : int or None
        The user's ``channel_axis``.
    in_channels : int or None
    named : sequence of int or None
        One entry per file.

    Returns
    -------
    int or None
    """
    if given is not None or in_channels == 1:
        return given
    found = set(named)
    return found.pop() if len(found) == 1 else None


def refuse_named_channels(
    shape: Sequence[int],
    named: int | None,
    in_channels: int | None,
    given: int | None,
    axes: str | None = None,
) -> None:
    """Refuse a model whose channels the image's file contradicts (``given``, the
    user's channel axis, settles it): a one-channel model on a file naming a ``C``
    axis of several channels (they would be taken for a stack axis, and the error
    would speak of that), or a model of several on a file whose axis letters say it
    holds one (:func:`names_one_channel`: an axis of the model's count, a z-stack of 3
    for an RGB model, would be taken for channels).

    Parameters
    ----------
    shape : sequence of int
        The image's shape.
    named : int or None
        The channel axis its file names (a TIFF's ``C``), or None.
    in_channels : int or None
        What the model reads (None: a new model, which takes the file's channels).
    given : int or None
    axes : str, optional
        The file's axis letters (tifffile's), or None.

    Raises
    ------
    ValueError
        Saying what to do.
    """
    if given is not None or in_channels is None:
        return
    if in_channels == 1 and named is not None and shape[named] > 1:
        raise ValueError(
            f"the image holds {shape[named]} channels (its C axis, axis {named}) and the "
            "model reads 1: pick one (--channel N in napari-seg predict and train), save it "
            "alone (Fiji: Image > Color > Split Channels), or use a model of "
            f"{shape[named]} channels"
        )
    if in_channels > 1 and names_one_channel(axes):
        raise ValueError(
            f"the file names its axes {axes}, none of them channels, so the image holds one "
            f"channel and the model reads {in_channels}: use a model of 1 channel, or, if "
            "an axis holds the channels after all, give it (--channel-axis N, channel_axis=N)"
        )


def names_one_channel(axes: str | None) -> bool:
    """Whether a file's axis letters name every axis as space or time (``T``, ``Z``,
    ``Y``, ``X``: an OME-TIFF of one channel, whose ``C`` tifffile drops, a Fiji
    z-stack or time-lapse), so that its image holds one channel. A letter of unknown
    meaning (tifffile's ``Q``, ``I``) or a channel or sample axis (``C``, ``S``)
    says no such thing.

    Parameters
    ----------
    axes : str or None
        One letter per axis (tifffile's), or None when the file names none.

    Returns
    -------
    bool
    """
    if not axes:
        return False
    return set(axes) <= set("TZYX") and axes.endswith("YX")
