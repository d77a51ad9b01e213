"""What the ``napari-seg`` subcommands share: exit codes, option parsing, config files,
the output check, the batch loop and the progress-bar driver for job events."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Collection, Generator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .._config_file import JobConfig

T = TypeVar("T")
R = TypeVar("R")
C = TypeVar("C", bound=JobConfig)

#: Exit status of a command that failed (one line on stderr says why).
EXIT_ERROR = 1
#: The shell's status for a process ended by Ctrl+C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: Errors of one input that should not stop a batch (the others are still processed).
INPUT_ERRORS = (ValueError, TypeError, OSError, MemoryError)


def axes_argument(text: str) -> int | tuple[int, ...]:
    """An ``--axis`` value: one axis (``0``) or several separated by commas (``0,1``).

    Parameters
    ----------
    text : str

    Returns
    -------
    int or tuple of int

    Raises
    ------
    argparse.ArgumentTypeError
        For anything but integers separated by commas.
    """
    try:
        axes = tuple(int(a) for a in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}"
        ) from None
    return axes[0] if len(axes) == 1 else axes


def size_argument(text: str) -> float:
    """One ``--spacing`` size: a number. It takes a size per axis, so an input file
    given after it is read as one more size; the message says how to separate them.

    Parameters
    ----------
    text : str

    Returns
    -------
    float

    Raises
    ------
    argparse.ArgumentTypeError
        Naming the value, and ``--`` to end the sizes before file names.
    """
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size (a number), got {text!r}; files after the sizes need -- "
            "before them (--spacing 1 1 -- FILE), or give them first"
        ) from None


def pixels_argument(text: str) -> int:
    """A length in pixels (``--overlap``): a whole number; a fraction below 1 (MONAI's
    ``overlap=0.25``) is refused with a message saying the option is in pixels.

    Parameters
    ----------
    text : str

    Returns
    -------
    int

    Raises
    ------
    argparse.ArgumentTypeError
    """
    try:
        return int(text)
    except ValueError:
        message = f"expected pixels (a whole number), got {text!r}"
    from .._validate import pixels_hint

    with contextlib.suppress(ValueError):  # not a number at all: no hint
        message += pixels_hint(float(text))
    raise argparse.ArgumentTypeError(message)


def add_channel_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--channel N``: one channel of a multi-channel image for a model of one.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.add_argument(
        "--channel",
        type=int,
        metavar="N",
        help="read channel N (from 0) of multi-channel images, along their C axis (a Fiji "
        "or OME-TIFF hyperstack's), --channel-axis, or an RGB(A) image's colours, for a "
        "model of one channel",
    )


def pick_channel(image: Any, channel: int | None, axis: int | None, header: Any, transform: Any):
    """``image`` reduced to ``channel`` along ``axis`` (else its TIFF's ``C`` axis, else
    the colours of an RGB(A) image: a last axis of 3 or 4 after two others), with its
    header and ``(scale, translation, units)`` transform less that axis.

    Parameters
    ----------
    image : RegionArray
    channel : int or None
        None: everything comes back unchanged.
    axis : int or None
        The channel axis given (``--channel-axis``, a medical volume's channels).
    header : TiffHeader or None
    transform : tuple or None

    Returns
    -------
    tuple
        ``(image, header, transform)``: a lazy :class:`~napari_seg.arrays.views.ChannelView`.

    Raises
    ------
    ValueError
        When there is no channel axis, or the channel is out of range.
    """
    if channel is None:
        return image, header, transform
    from ..arrays.channels import detect_in_channels
    from ..arrays.views import ChannelView

    if axis is None:
        axis = None if header is None else header.channel_axis
    if axis is None and detect_in_channels(image.shape, channel_axis=None, axis=None) == 3:
        axis = len(image.shape) - 1  # an RGB(A) image's colours (a PNG, a TIFF's samples)
    if axis is None:
        raise ValueError(
            "--channel needs a channel axis: the file names none (a TIFF's C axis); give "
            "--channel-axis"
        )
    view = ChannelView(image, axis, channel)
    if transform is not None:
        transform = tuple(
            tuple(v for k, v in enumerate(values) if k != view.axis) for values in transform
        )
    return view, None if header is None else header.without(view.axis), transform


def length_unit_argument(text: str) -> str:
    """A length unit option's value (nm, um, mm, m or an NGFF name) as its NGFF name;
    anything else is a usage error naming the units known.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
    """
    from .._units import parse_length_unit

    try:
        return parse_length_unit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_spacing_unit_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--spacing-unit``, the length unit of ``--spacing``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.add_argument(
        "--spacing-unit",
        type=length_unit_argument,
        metavar="UNIT",
        help="length unit of --spacing: nm, um, mm, m or an NGFF name; with it, a model's and "
        "an image's spacings in different units are compared after conversion (default: "
        "none given; a file's own voxel size comes with its file's unit)",
    )


def add_normalization_arguments(parser: argparse.ArgumentParser, default: str | None) -> None:
    """Add ``--normalization`` and ``--window``, a new model's input normalisation
    (:class:`napari_seg.models.Normalization`; ``dest`` ``normalization`` and
    ``normalization_window``).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    default : str or None
        The method when the flag is not given (None: the config's).
    """
    from ..models.spec import NORMALIZATION_METHODS

    parser.add_argument(
        "--normalization",
        default=default,
        choices=NORMALIZATION_METHODS,
        help="input normalisation of a new model, recorded in its card (default: percentile: "
        "each image's 1st and 99.8th percentiles to 0 and 1; window: --window's intensities)",
    )
    parser.add_argument(
        "--window",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        dest="normalization_window",
        help="window normalisation (--normalization window, implied): the intensities "
        "mapped to 0 and 1, the rest clipped (a CT's Hounsfield units, e.g. -175 250 for "
        "abdominal soft tissue)",
    )


def implied_normalization(args: argparse.Namespace) -> str | None:
    """``--normalization`` as given, or "window" when only ``--window`` is: a window
    asks for window normalisation (it was refused as "used by 'window', not
    'percentile'").

    Parameters
    ----------
    args : argparse.Namespace
        With ``normalization`` and ``normalization_window``.

    Returns
    -------
    str or None
        None when neither flag is given.
    """
    if args.normalization is None and args.normalization_window is not None:
        return "window"
    return args.normalization


def add_labels_suffix_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--labels-suffix``, the name tail of the label files in a folder.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    what : str
        What the label files are called in the help ("label", "ground-truth").
    """
    from .._datasets import LABELS_SUFFIX

    parser.add_argument(
        "--labels-suffix",
        default=LABELS_SUFFIX,
        metavar="TEXT",
        help=f"with folders: the name tail of the {what} files, so that NAME.tif pairs with "
        f"NAMETEXT.tif (or NAME.tif in a folder of its own; default {LABELS_SUFFIX!r}, '' "
        "for equal names)",
    )


def shared_segment_names(paths: Sequence[Path]) -> tuple[str, ...] | None:
    """The class names of the 3D Slicer segmentations or DICOM SEG files ``paths``
    (label files) when every one is a segmentation and all name the same segments
    (:func:`~napari_seg.medical.segment_class_names`); None otherwise.

    Parameters
    ----------
    paths : sequence of Path

    Returns
    -------
    tuple of str or None
    """
    from ..medical import label_segments, segment_class_names

    found = {segment_class_names(label_segments(path)) for path in paths}
    return found.pop() if len(found) == 1 else None


def with_dataset_ignore(config: C, names: Sequence[str] | None, command: str) -> C:
    """``config`` also leaving out the id of the "ignore" label that a dataset.json's
    class ``names`` declare (nnU-Net's), with a note on stderr; unchanged without one,
    or when it is left out already.

    Parameters
    ----------
    config : JobConfig
        A config with ``ignore_labels`` (training or evaluation).
    names : sequence of str or None
        The dataset's class names by id (:func:`~napari_seg._dataset_json.dataset_class_names`).
    command : str
        The command the note names.

    Returns
    -------
    JobConfig
    """
    from .._dataset_json import dataset_ignore_label

    ignore = None if names is None else dataset_ignore_label(tuple(names))
    ignored = tuple(getattr(config, "ignore_labels", ()))
    if ignore is None or ignore in ignored:
        return config
    print(f"napari-seg {command}: id {ignore} left out, as dataset.json's 'ignore' label says",
          file=sys.stderr)  # fmt: skip
    return config.with_(ignore_labels=(*ignored, ignore))


def parse_options(items: Sequence[str]) -> dict[str, int | bool]:
    """``--option NAME=VALUE`` flags as a dict (integers or true/false).

    Raises
    ------
    ValueError
        For an item that is not ``NAME=VALUE`` or a value that is neither.
    """
    options: dict[str, int | bool] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option must look like NAME=VALUE, got {item!r}")
        low = value.strip().lower()
        if low in ("true", "false"):
            options[key] = low == "true"
        else:
            try:
                options[key] = int(value)
            except ValueError:
                raise ValueError(f"--option {key} must be an integer or true/false") from None
    return options


def read_config(cls: type[C], path: Path | None, flag: str = "--config") -> C:
    """The job config in the JSON or YAML file at ``path`` (``cls()`` when None).

    Every command reads its config file here, so errors name the flag and the file.

    Parameters
    ----------
    cls : type of JobConfig
    path : pathlib.Path or None
    flag : str
        The option that named the file, for messages.

    Returns
    -------
    JobConfig
        An instance of ``cls``.

    Raises
    ------
    ValueError, TypeError
        If the file is not valid JSON/YAML or its settings are invalid (a
        value of the wrong type is a TypeError, as in the widgets).
    OSError
        If the file cannot be read.
    """
    if path is None:
        return cls()
    try:
        return cls.load(path)
    except (ValueError, TypeError) as exc:  # a value of the wrong type is a TypeError
        raise type(exc)(f"{flag} {path}: {exc}") from None
    except FileNotFoundError:
        raise FileNotFoundError(f"{flag} file not found: {path}") from None


def check_output_folder(path: Path, flag: str = "--output") -> None:
    """Refuse, before any work, an output folder that is a file or whose name ends as a
    file's does (``--output seg.tif``: a folder of that name was made for the outputs).

    Parameters
    ----------
    path : Path
        The folder the outputs go in (created when missing).
    flag : str
        The option that gave it, for the message.

    Raises
    ------
    ValueError
        Naming the folder and what to give instead.
    """
    from .._io import file_suffix

    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder")
    suffix = file_suffix(path)
    if not path.exists() and suffix:
        raise ValueError(
            f"{flag} {path.name} ends as a {suffix} file does, but it names the folder the "
            f"outputs are written in: give a folder name, e.g. {path.name[: -len(suffix)]}"
        )


def check_outputs(
    outputs: Sequence[Path],
    inputs: Sequence[Path],
    overwrite: bool,
    *,
    keep: Collection[Path] = (),
    folders: bool = False,
) -> None:
    """Refuse, before any work, outputs that would replace an input of the batch (always)
    or an existing file (unless ``overwrite``); the message lists them all.

    Parameters
    ----------
    outputs, inputs : sequences of Path
    overwrite : bool
    keep : collection of Path
        Existing outputs that this same request finished before: they are skipped,
        not replaced, so they are not refused.
    folders : bool
        Whether the outputs are folders (OME-Zarr stores).

    Raises
    ------
    ValueError
        Naming the outputs that may not be written.
    """
    from .._atomic import OutputExistsError, check_target

    inputs_hit, existing = [], []
    for path in outputs:
        if not path.parent.is_dir():
            continue  # a folder still to be created replaces nothing
        try:
            check_target(path, overwrite=overwrite or path in keep, inputs=inputs, folder=folders)
        except OutputExistsError:
            existing.append(str(path))
        except ValueError:
            inputs_hit.append(str(path))
    if inputs_hit:
        raise ValueError(
            f"output(s) {', '.join(inputs_hit[:5])} would replace input(s) of this batch; "
            "choose another output folder"
        )
    if existing:
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise ValueError(
            f"output(s) {', '.join(existing[:5])}{more} already exist; pass --overwrite to "
            "replace them, or choose another output folder"
        )


def for_each_input(
    command: str,
    items: Sequence[T],
    work: Callable[[T], str],
    name: Callable[[T], object],
    *,
    parallel: int = 1,
) -> int:
    """Run ``work`` on every item, print its message, report failures by ``name``.

    With ``parallel`` > 1, up to that many items run at once in threads (their
    messages in the order they finish; Ctrl+C then stops waiting, and the caller
    stops what the threads drive, e.g. by closing the cluster). Otherwise they run
    one after another in this thread.

    Returns the exit status: 0, or 1 when any item failed (the others still ran).
    """
    failed = 0
    for item, outcome in _outcomes(items, work, parallel):
        if isinstance(outcome, BaseException):
            failed += 1
            text, what = str(outcome), str(name(item))
            named = text if text.startswith(what) else f"{what}: {text}"  # named once
            print(f"napari-seg {command}: error: {named}", file=sys.stderr)
        else:
            print(outcome, flush=True)
    if failed:
        print(f"napari-seg {command}: {failed} of {len(items)} input(s) failed", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _outcomes(items: Sequence[T], work: Callable[[T], str], parallel: int):
    """``(item, message or input error)`` for every item, as each finishes."""
    if parallel <= 1:
        for item in items:
            try:
                yield item, work(item)
            except INPUT_ERRORS as exc:
                yield item, exc
        return
    from concurrent.futures import ThreadPoolExecutor, as_completed

    pool = ThreadPoolExecutor(max_workers=parallel)
    futures = {pool.submit(work, item): item for item in items}
    try:
        for future in as_completed(futures):
            error = future.exception()
            if error is not None and not isinstance(error, INPUT_ERRORS):
                raise error
            yield futures[future], error if error is not None else future.result()
    finally:  # Ctrl+C: do not wait for the running items (the caller stops their work)
        pool.shutdown(wait=False, cancel_futures=True)


class Bar:
    """A tqdm bar on stderr, created when a job says how much work it has.

    Parameters
    ----------
    quiet : bool
        No bar at all (messages are still printed).
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._bar: Any = None

    @property
    def started(self) -> bool:
        return self._bar is not None

    def start(self, total: int, desc: str, **kwargs: Any) -> None:
        """Open the bar for ``total`` units of work."""
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=desc, disable=self.quiet, file=sys.stderr, **kwargs)

    def update(self, done: float, total: int | None = None, postfix: str | None = None) -> None:
        """Show ``done`` units of work (of ``total``, when it changed)."""
        if self._bar is None:
            return
        if total is not None:
            self._bar.total = total
        self._bar.n = done
        if postfix is not None:
            self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.refresh()

    def note(self, message: str) -> None:
        """Print a line above the bar (stderr)."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def drive(events: Generator[Any, None, R], handle: Callable[[Any, Bar], None], *, quiet: bool) -> R:
    """Run a job's event generator to its end, showing its progress on a bar.

    ``handle(event, bar)`` turns each event into bar updates and messages. The
    generator is closed and the bar too, whatever happens (Ctrl+C included).

    Returns
    -------
    The generator's return value.
    """
    from .._generators import Returning

    run: Returning[Any, R] = Returning(events)
    bar = Bar(quiet)
    try:
        for event in run:
            handle(event, bar)
        return run.value
    finally:
        events.close()
        bar.close()
