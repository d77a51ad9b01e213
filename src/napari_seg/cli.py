"""The ``napari-seg`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, _cli_evaluate, _cli_predict, _cli_refine, _cli_train

EXIT_ERROR = 1
#: The shell's status for a process ended by Ctrl+C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_architectures

    archs = list_architectures()
    if args.json:
        rows = [
            {
                "name": a.name,
                "title": a.title,
                "description": a.description,
                "source": a.source,
                "encoders": list(a.encoders),
                "default_encoder": a.default_encoder,
                "options": {k: o.default for k, o in a.options.items()},
            }
            for a in archs
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for a in archs:
        print(f"{a.name:<15} {a.title}  [{a.source}]")
        print(f"{'':<15} {a.description}")
        if a.encoders:
            print(f"{'':<15} encoders: {', '.join(a.encoders)} (default {a.default_encoder})")
        if a.options:
            opts = ", ".join(f"{k}={o.default}" for k, o in a.options.items())
            print(f"{'':<15} options: {opts}")
        print()
    return 0


def _parse_options(items: Sequence[str]) -> dict:
    options = {}
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


def _cmd_create(args: argparse.Namespace) -> int:
    from .models import ModelSpec, Normalization, create_model, model_stats, save_model

    spec = ModelSpec(
        architecture=args.arch,
        encoder=args.encoder,
        in_channels=args.in_channels,
        num_classes=args.classes,
        class_names=tuple(args.class_names or ()),
        normalization=Normalization(method=args.normalization),
        options=_parse_options(args.option or []),
    ).validate()
    weights = None if args.encoder_weights in (None, "none") else args.encoder_weights
    model = create_model(spec, encoder_weights=weights)
    provenance = {"created_by": "napari-seg create", "encoder_weights": weights or "random"}
    save_model(model, args.out, overwrite=args.overwrite, provenance=provenance)
    stats = model_stats(model)
    print(f"wrote {args.out}: {model.spec.architecture} ({model.spec.encoder}), {stats.summary()}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .models import ModelSpec, read_model_card

    card = read_model_card(args.model)  # validated: header, card, spec, weights, checksum
    if args.json:
        print(json.dumps(card, indent=2, sort_keys=True))
        return 0
    spec = ModelSpec.from_dict(card["spec"])
    print(f"{args.model}")
    print(f"  architecture: {spec.architecture} (encoder {spec.resolved_encoder})")
    print(f"  input channels: {spec.in_channels}")
    print(f"  classes: {', '.join(spec.class_names)}")
    print(f"  normalization: {spec.normalization.method}")
    print(f"  provenance: {json.dumps(card.get('provenance', {}))}")
    print(f"  created: {card.get('created')} with {json.dumps(card.get('versions', {}))}")
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from ._device import list_devices, resolve_device

    devices = list_devices()
    auto = str(resolve_device("auto"))
    if args.json:
        print(json.dumps({"auto": auto, "devices": [d.__dict__ for d in devices]}, indent=2))
        return 0
    for d in devices:
        print(f"{d.description}{'   <- auto' if d.id == auto else ''}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import display_available, run_headless

    if not args.headless and display_available():
        try:
            from ._widgets.demo import run_gui
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-seg",
        description="Deep-learning semantic segmentation for napari, headless.",
    )
    parser.add_argument("--version", action="version", version=f"napari-seg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list architectures, encoders and options")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("create", help="write an untrained model file")
    p.add_argument("--arch", required=True, help="architecture (see 'napari-seg models')")
    p.add_argument("--encoder", help="encoder (default: the architecture's default)")
    p.add_argument("--in-channels", type=int, required=True, help="image channels")
    p.add_argument("--classes", type=int, required=True, help="classes, background included")
    p.add_argument("--class-names", nargs="+", metavar="NAME", help="one name per class")
    p.add_argument(
        "--encoder-weights",
        default="none",
        help="'none' (random, default), 'imagenet' (cache or download), or a weights file",
    )
    p.add_argument(
        "--normalization",
        default="percentile",
        choices=("percentile", "minmax", "meanstd", "none"),
        help="input normalisation recorded in the model card",
    )
    p.add_argument("--option", action="append", metavar="NAME=VALUE", help="architecture option")
    p.add_argument("--out", required=True, type=Path, help="model file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_cmd_create)

    p = sub.add_parser("info", help="show a model file's card")
    p.add_argument("model", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("devices", help="list compute devices")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_devices)

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

    _cli_predict.add_parser(sub)
    _cli_evaluate.add_parser(sub)
    _cli_train.add_parser(sub)
    _cli_refine.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-seg`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from ._device import DeviceError
    from .limits import one_line

    # User errors are reported in one line; RuntimeError covers WeightsUnavailableError.
    known = (ValueError, TypeError, OSError, RuntimeError, MemoryError, DeviceError)
    try:
        return args.func(args)
    except known as exc:
        print(f"napari-seg {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"napari-seg {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
