"""Reading and writing job configs as JSON or YAML (by suffix), atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

YAML_SUFFIXES = (".yaml", ".yml")


def reject_unknown(data, known, what: str) -> None:
    """Raise a ValueError naming the keys of ``data`` not in ``known`` (and the known ones)."""
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {sorted(unknown)}; known: {sorted(known)}")


def read_mapping(path: str | Path) -> Any:
    """The parsed content of a ``.json`` or ``.yaml``/``.yml`` file.

    Raises
    ------
    ValueError
        If the file cannot be parsed.
    OSError
        If it cannot be read.
    """
    import yaml

    path = Path(path)
    text = path.read_text()
    try:
        if path.suffix.lower() in YAML_SUFFIXES:
            return yaml.safe_load(text)
        return json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path} is not valid {path.suffix[1:].upper()}: {exc}") from None


def write_mapping(path: str | Path, data: Any) -> Path:
    """Write ``data`` atomically as JSON, or YAML when the suffix says so."""
    from ._atomic import atomic_write

    path = Path(path)
    if path.suffix.lower() in YAML_SUFFIXES:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2)
    with atomic_write(path) as handle:
        handle.write(text.encode())
    return path
