"""``napari-seg demo``: the GUI demo where there is a display, else the headless loop."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import display_available, run_headless

    if not args.headless and display_available():
        try:
            from .._widgets.demo import run_gui
        except ImportError as exc:
            print(
                f"napari-seg: the GUI needs napari and a Qt binding ({exc}); install "
                "'napari-seg[all]'. Running headless instead.",
                file=sys.stderr,
            )
        else:
            run_gui()
            return 0
    summary = run_headless(Path(args.output), minutes=args.minutes)
    print(json.dumps(summary, indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand to the parser's subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "demo",
        help="open napari with sample data and the widgets (headless without a display)",
    )
    p.add_argument("--headless", action="store_true", help="never open a window")
    p.add_argument(
        "--output", default="napari-seg-demo", help="folder for headless outputs (created)"
    )
    p.add_argument(
        "--minutes", type=float, default=0.5, help="training budget of the demo (default 0.5)"
    )
    p.set_defaults(func=_cmd_demo)
