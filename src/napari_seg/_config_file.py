"""Reading and writing job configs as JSON or YAML (by suffix), atomically.

Files are read in bounded memory: at most ``MAX_CONFIG_BYTES``, YAML without
anchors or aliases (so a "billion laughs" file cannot expand), no YAML tags
that build Python objects (``safe_load`` rules), and nesting deep enough to
exhaust the parser's stack is an error naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ._paths import user_path
from ._validate import reject_unknown
from .limits import MAX_CONFIG_BYTES

YAML_SUFFIXES = (".yaml", ".yml")


def _safe_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses anchors and aliases."""

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    "YAML anchors and aliases (&name, *name) are not accepted in napari-seg files",
                    event.start_mark,
                )
            return super().compose_node(parent, index)

    return NoAliasLoader


def parse_text(text: str, *, yaml_format: bool, source: str = "config") -> Any:
    """The parsed content of JSON or YAML ``text`` (``source`` names it in errors).

    Raises
    ------
    ValueError
        If the text cannot be parsed, uses YAML aliases, or nests too deeply.
    """
    import yaml

    kind = "YAML" if yaml_format else "JSON"
    try:
        if yaml_format:
            return yaml.load(text, Loader=_safe_loader())
        return json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{source} is not valid {kind}: {_where(exc)}") from None
    except RecursionError:
        raise ValueError(f"{source} nests too deeply to be a napari-seg {kind} file") from None


def _where(exc: Exception) -> str:
    """A parser's error as one line: the problem and its line and column."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:  # PyYAML's MarkedYAMLError
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def read_mapping(path: str | Path, *, yaml_format: bool | None = None) -> Any:
    """The parsed content of a ``.json`` or ``.yaml``/``.yml`` file.

    ``yaml_format`` overrides the choice by suffix (YAML is also JSON's superset).

    Raises
    ------
    ValueError
        If the file is larger than ``MAX_CONFIG_BYTES`` or cannot be parsed.
    OSError
        If it cannot be read.
    """
    path = user_path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a JSON or YAML file")
    if not path.exists():  # Python's own words name neither the file's role nor its kind
        raise FileNotFoundError(f"file not found: {path}")
    with open(path, "rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(
            f"{path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; it is not a napari-seg config"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file (not UTF-8)") from None
    if yaml_format is None:
        yaml_format = path.suffix.lower() in YAML_SUFFIXES
    return parse_text(text, yaml_format=yaml_format, source=str(path))


def write_mapping(path: str | Path, data: Any, *, overwrite: bool = False) -> Path:
    """Write ``data`` atomically as JSON, or YAML when the suffix says so.

    An existing file is replaced only with ``overwrite=True``.
    """
    from ._atomic import atomic_write

    path = user_path(path)
    if path.suffix.lower() in YAML_SUFFIXES:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2)
    with atomic_write(path, overwrite=overwrite) as handle:
        handle.write(text.encode())
    return path


C = TypeVar("C", bound="JobConfig")


class JobConfig:
    """What every job's settings share: validation, copies, JSON/YAML files.

    Subclasses are frozen dataclasses that define ``validate()`` (return self or
    raise, naming the field), ``to_dict()`` (plain JSON types) and
    ``_from_mapping(data)`` (build from such a dict); ``KIND`` names the job in
    messages ("prediction", "training"...).
    """

    KIND: ClassVar[str] = "job"

    def __post_init__(self) -> None:
        """Lists given for fields (``ignore_labels=[0]``, ``spacing=[1.0, 1.0]``, as
        Python and JSON users write them) as the tuples the fields hold; anything else
        stays as given, for ``validate()`` to name."""
        from dataclasses import fields

        for f in fields(self):  # type: ignore[arg-type]  # subclasses are dataclasses
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))

    def validate(self: C) -> C:  # pragma: no cover - every subclass defines it
        """Return ``self`` if every field is valid.

        Returns
        -------
        JobConfig

        Raises
        ------
        NotImplementedError
            Always, here; subclasses check their fields.
        """
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines it
        """The settings as plain JSON types.

        Returns
        -------
        dict

        Raises
        ------
        NotImplementedError
            Always, here; subclasses list their fields.
        """
        raise NotImplementedError

    @classmethod
    def _from_mapping(cls: type[C], data: dict[str, Any]) -> C:  # pragma: no cover
        raise NotImplementedError

    def with_(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied, validated.

        Parameters
        ----------
        **changes
            New values of fields.

        Returns
        -------
        JobConfig
            Of the same class.

        Raises
        ------
        TypeError
            For a name that is not a field (with the closest field's name), as
            Python says of an unknown keyword argument.
        """
        from dataclasses import fields, replace

        names = [f.name for f in fields(self)]  # type: ignore[arg-type]
        reject_unknown(changes, names, self.KIND, error=TypeError)
        return replace(self, **changes).validate()  # type: ignore[type-var]

    @classmethod
    def given(cls: type[C], config: Any, **changes: Any) -> C:
        """The settings a job function was called with: its defaults for None, a
        config of this class as it is, a mapping of settings as :meth:`from_dict`
        reads it; then ``changes`` (the function's keyword arguments) applied, and
        validated either way.

        Parameters
        ----------
        config : JobConfig, dict or None
        **changes
            Fields that override ``config``'s.

        Returns
        -------
        JobConfig
            Of the class this is called on.

        Raises
        ------
        TypeError
            For a config of another kind (naming what was given and what is taken),
            or an unknown keyword.
        ValueError
            For a mapping's unknown settings or invalid values.
        """
        if config is None:
            config = cls()
        elif isinstance(config, dict):
            config = cls.from_dict(config)
        elif not isinstance(config, cls):
            raise TypeError(
                f"config must be a {cls.__name__} or a dict of its settings, got "
                f"{type(config).__name__}"
            )
        return config.with_(**changes) if changes else config.validate()

    @classmethod
    def from_dict(cls: type[C], data: Any) -> C:
        """Build and validate settings from :meth:`to_dict` output (or a file's).

        Parameters
        ----------
        data : dict
            Field names to values; unknown names are an error.

        Returns
        -------
        JobConfig
            Of the class this is called on.

        Raises
        ------
        ValueError, TypeError
            For a non-mapping, unknown settings or invalid values (named).
        """
        from dataclasses import fields

        if not isinstance(data, dict):
            raise ValueError(f"a {cls.KIND} config must be a mapping, got {type(data).__name__}")
        reject_unknown(data, [f.name for f in fields(cls)], cls.KIND)  # type: ignore[arg-type]
        return cls._from_mapping(dict(data)).validate()

    def to_json(self) -> str:
        """The settings as indented JSON text.

        Returns
        -------
        str
        """
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        """Settings from JSON text (bounded as files are; see :func:`parse_text`).

        Parameters
        ----------
        text : str

        Returns
        -------
        JobConfig
        """
        return cls.from_dict(parse_text(text, yaml_format=False, source=f"{cls.KIND} config"))

    def to_yaml(self) -> str:
        """The settings as YAML text.

        Returns
        -------
        str
        """
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls: type[C], text: str) -> C:
        """Settings from YAML text (no anchors, aliases or Python tags).

        Parameters
        ----------
        text : str

        Returns
        -------
        JobConfig
        """
        return cls.from_dict(parse_text(text, yaml_format=True, source=f"{cls.KIND} config"))

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a ``.json`` or ``.yaml``/``.yml`` file.

        Parameters
        ----------
        path : path-like

        Returns
        -------
        JobConfig

        Raises
        ------
        ValueError
            If the file cannot be parsed or holds invalid settings.
        """
        return cls.from_dict(read_mapping(path))

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the settings atomically as JSON or YAML (by suffix).

        Parameters
        ----------
        path : path-like
        overwrite : bool
            Replace ``path`` if it exists.

        Returns
        -------
        pathlib.Path
        """
        return write_mapping(path, self.to_dict(), overwrite=overwrite)
