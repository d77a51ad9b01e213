"""The ``napari-seg`` command line: one module per command, shared helpers in ``_common``.

Building the parser imports no scientific library (torch, scipy, scikit-image):
each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from . import demo, evaluate, models, predict, refine, train
from ._common import EXIT_ERROR, EXIT_INTERRUPTED

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "build_parser", "log_to_stderr", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``napari-seg`` subcommand.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="napari-seg",
        description="Deep-learning semantic segmentation for napari, headless.",
    )
    parser.add_argument("--version", action="version", version=f"napari-seg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    models.add_parsers(sub)
    demo.add_parser(sub)
    predict.add_parser(sub)
    evaluate.add_parser(sub)
    train.add_parser(sub)
    refine.add_parser(sub)
    for command in sub.choices.values():  # the options spelled apart from their fields
        command.set_defaults(flags=_renamed_options(command), parser=command)
    return parser


def _unknown_options(extra: list[str], command: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments", with the command's closest option for each
    unknown one (``train --model`` is ``--from-model``; argparse names neither the
    command nor an option)."""
    from .._validate import closest_names

    known = [o for action in command._actions for o in action.option_strings]
    options = [word.partition("=")[0] for word in extra if word.startswith("--")]
    hints = closest_names(options, known)
    return f"unrecognized arguments: {' '.join(extra)}" + (f" ({hints})" if hints else "")


def _renamed_options(command: argparse.ArgumentParser) -> dict[str, str]:
    """``{config field: option}`` for a command's options not named as the field they
    set (``--batch`` sets ``batch_size``)."""
    flags = {}
    for action in command._actions:  # argparse lists a parser's actions nowhere public
        options = [o for o in action.option_strings if o.startswith("--")]
        if options and options[0] != "--" + action.dest.replace("_", "-"):
            flags[action.dest] = options[0]
    return flags


def _as_flag(message: str, flags: dict[str, str]) -> str:
    """A message that begins with a config field (the one validation's words, shared
    with the widgets) naming the option that set it too: "--batch (batch_size) must
    be >= 1"."""
    field, _, rest = message.partition(" ")
    if field not in flags or not rest:
        return message
    return f"{flags[field]} ({field}) {rest}"


def log_to_stderr(*, verbose: bool) -> None:
    """Log to stderr at INFO with ``--verbose``, else at WARNING, whatever the library.

    The level is the handler's, not only the root logger's: libraries that set
    their own loggers' levels (distributed logs at INFO, with tracebacks of the
    connections a cluster closes when a run is interrupted) are held to it too.
    Nothing is changed when the root logger already has handlers (an embedding
    application or a test runner configured logging).

    Parameters
    ----------
    verbose : bool
        Show INFO messages.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    level = logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-seg`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0, 1 for an error (one line on stderr), 130 when interrupted.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's parser: its usage and name, and a guess
        args.parser.error(_unknown_options(extra, args.parser))
    log_to_stderr(verbose=args.verbose)
    from .._device import DeviceError
    from .._extras import MissingExtraError
    from ..limits import one_line

    # User errors are reported in one line; RuntimeError covers WeightsUnavailableError.
    known = (ValueError, TypeError, OSError, RuntimeError, MemoryError, DeviceError,
             MissingExtraError)  # fmt: skip
    try:
        return args.func(args)
    except known as exc:
        message = _as_flag(one_line(exc), args.flags)
        print(f"napari-seg {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"napari-seg {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
