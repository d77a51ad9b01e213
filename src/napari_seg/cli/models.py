"""``napari-seg models``, ``create``, ``info`` and ``devices``: the model zoo and devices."""

from __future__ import annotations

import argparse
import json

from .._paths import user_path
from .._units import format_spacing
from ._common import (
    add_normalization_arguments,
    add_spacing_unit_argument,
    implied_normalization,
    parse_options,
    size_argument,
)


def _cmd_models(args: argparse.Namespace) -> int:
    from ..models import list_architectures

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
                "dims": list(a.dims),
            }
            for a in archs
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for a in archs:
        dims = "/".join(f"{d}D" for d in a.dims)
        print(f"{a.name:<15} {a.title}  [{a.source}] ({dims})")
        print(f"{'':<15} {a.description}")
        if a.encoders:
            print(f"{'':<15} encoders: {', '.join(a.encoders)} (default {a.default_encoder})")
        if a.options:
            opts = ", ".join(f"{k}={o.default}" for k, o in a.options.items())
            print(f"{'':<15} options: {opts}")
        print()
    return 0


def _cmd_create(args: argparse.Namespace) -> int:
    from ..models import ModelSpec, Normalization, create_model, model_stats, save_model

    spec = ModelSpec(
        architecture=args.arch,
        encoder=args.encoder,
        in_channels=args.in_channels,
        num_classes=args.classes,
        class_names=tuple(args.class_names or ()),
        normalization=Normalization(
            method=implied_normalization(args) or "percentile",
            window=None if args.normalization_window is None else tuple(args.normalization_window),
        ),
        options=parse_options(args.option or []),
        spatial_dims=args.dims,
        spacing=None if args.spacing is None else tuple(args.spacing),
        spacing_unit=args.spacing_unit,
    ).validate()
    weights = None if args.encoder_weights in (None, "none") else args.encoder_weights
    model = create_model(spec, encoder_weights=weights)
    provenance = {"created_by": "napari-seg create", "encoder_weights": weights or "random"}
    args.out = save_model(model, args.out, overwrite=args.overwrite, provenance=provenance)
    stats = model_stats(model)
    print(f"wrote {args.out}: {model.spec.network}, {stats.summary()}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ..models import ModelSpec, read_model_card

    card = read_model_card(args.model)  # validated: header, card, spec, weights, checksum
    if args.json:
        print(json.dumps(card, indent=2, sort_keys=True))
        return 0
    spec = ModelSpec.from_dict(card["spec"])
    print(f"{args.model}")
    print(f"  architecture: {spec.architecture} (encoder {spec.resolved_encoder})")
    spacing = (
        "not recorded" if spec.spacing is None else format_spacing(spec.spacing, spec.spacing_unit)
    )
    print(f"  dimensionality: {spec.spatial_dims}D (spacing {spacing})")
    print(f"  input channels: {spec.in_channels}")
    print(f"  classes: {', '.join(spec.class_names)}")
    print(f"  normalization: {spec.normalization.summary()}")
    provenance = card.get("provenance")
    for line in _provenance_lines(provenance if isinstance(provenance, dict) else {}):
        print(f"  {line}")
    print(f"  created: {card.get('created')} with {json.dumps(card.get('versions', {}))}")
    print("  (--json shows the whole card: every setting of the run, per-class scores)")
    return 0


def _provenance_lines(provenance: dict) -> list[str]:
    """The card's provenance as a few readable lines (a training run's resumable state,
    kilobytes of optimizer settings and history, is left to ``--json``)."""
    lines = []
    if "created_by" in provenance:
        lines.append(f"made by: {provenance['created_by']}")
    if "encoder_weights" in provenance:
        lines.append(f"encoder weights: {provenance['encoder_weights']}")
    training = provenance.get("training")
    if isinstance(training, dict):
        lines += _training_lines(training)
    for key in sorted(set(provenance) - {"created_by", "encoder_weights", "training"}):
        text = json.dumps(provenance[key])
        lines.append(f"{key}: {text if len(text) <= 200 else text[:200] + '...'}")
    return lines


def _training_lines(training: dict) -> list[str]:
    def part(key: str) -> dict:
        value = training.get(key)
        return value if isinstance(value, dict) else {}

    pairs = part("data").get("pairs")
    names = [str(n) for n in pairs] if isinstance(pairs, list) else []
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    start = "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in part("source").items())
    fitted = training.get("status") == "fitted"  # a pixel classifier: no loss, no epochs
    if fitted:
        line = f"fitted on {len(names)} pair(s) ({shown})"
    else:
        line = f"trained on {len(names)} pair(s) ({shown}), loss {training.get('loss', '?')}"
    lines = [line + (f"; {start}" if start and not fitted else "")]
    m = part("metrics")
    best, epoch = m.get("best_score"), m.get("best_epoch")
    if isinstance(best, (int, float)) and epoch is not None:
        what = m.get("validation_metric", "validation score")
        seconds = m.get("training_seconds")
        took = f"{seconds:.0f} s" if isinstance(seconds, (int, float)) else ""
        if fitted:
            lines.append(f"{what} {best:.3f}" + (f" (fitted in {took})" if took else ""))
        else:
            steps = f"{m.get('steps', '?')} steps" + (f", {took}" if took else "")
            lines.append(f"best {what} {best:.3f} at epoch {epoch} ({steps})")
    return lines


def _cmd_devices(args: argparse.Namespace) -> int:
    from .._device import list_devices, resolve_device

    devices = list_devices()
    auto = str(resolve_device("auto"))
    if args.json:
        print(json.dumps({"auto": auto, "devices": [d.__dict__ for d in devices]}, indent=2))
        return 0
    for d in devices:
        print(f"{d.description}{'   <- auto' if d.id == auto else ''}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``models``, ``create``, ``info`` and ``devices`` subcommands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
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
    add_normalization_arguments(p, default=None)
    p.add_argument("--option", action="append", metavar="NAME=VALUE", help="architecture option")
    p.add_argument(
        "--dims", type=int, choices=(2, 3), default=2, help="2D images or 3D volumes (default 2)"
    )
    p.add_argument(
        "--spacing",
        type=size_argument,
        nargs="+",
        metavar="SIZE",
        help="voxel size per axis the model is made for (z y x); 3D U-Nets plan pooling from it",
    )
    add_spacing_unit_argument(p)
    p.add_argument("--out", required=True, type=user_path, help="model file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_cmd_create)

    p = sub.add_parser("info", help="show a model file's card")
    p.add_argument("model", type=user_path, help="model file (.safetensors)")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("devices", help="list compute devices")
    p.add_argument("--json", action="store_true", help="print the devices as JSON")
    p.set_defaults(func=_cmd_devices)
