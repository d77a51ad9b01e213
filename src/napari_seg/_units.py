"""The units of OME-Zarr axes (NGFF 0.4 and 0.5), and one length unit for a voxel size.

An OME-Zarr image may give each spatial axis its own unit (z in micrometres, y and
x in nanometres). A voxel size compared with a model's, resampled to it or
measured on, must use one unit along every axis: :func:`common_length_unit` says
by how much to multiply each axis's scale to express it in one.
"""

from __future__ import annotations

from collections.abc import Sequence

#: NGFF's units of a ``space`` axis, in metres.
LENGTH_UNITS: dict[str, float] = {
    "yoctometer": 1e-24, "zeptometer": 1e-21, "attometer": 1e-18, "femtometer": 1e-15,
    "picometer": 1e-12, "angstrom": 1e-10, "nanometer": 1e-9, "micrometer": 1e-6,
    "millimeter": 1e-3, "centimeter": 1e-2, "decimeter": 1e-1, "meter": 1.0,
    "hectometer": 1e2, "kilometer": 1e3, "megameter": 1e6, "gigameter": 1e9,
    "terameter": 1e12, "petameter": 1e15, "exameter": 1e18, "zettameter": 1e21,
    "yottameter": 1e24, "inch": 0.0254, "foot": 0.3048, "yard": 0.9144,
    "mile": 1609.344, "parsec": 3.0857e16,
}  # fmt: skip

#: NGFF's units of a ``time`` axis (kept as they are; a voxel size is spatial).
TIME_UNITS = frozenset({
    "attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond",
    "gigasecond", "hectosecond", "hour", "kilosecond", "megasecond", "microsecond",
    "millisecond", "minute", "nanosecond", "petasecond", "picosecond", "second",
    "terasecond", "yoctosecond", "yottasecond", "zeptosecond", "zettasecond",
})  # fmt: skip


#: Short names of the common length units, for tables (others are shown by name).
SYMBOLS = {
    "nanometer": "nm", "micrometer": "µm", "millimeter": "mm", "centimeter": "cm",
    "meter": "m",
}  # fmt: skip


def unit_symbol(name: str) -> str:
    """The short name of the NGFF length unit ``name`` (``"mm"`` for ``"millimeter"``,
    which Evaluate shows volumes of in mL), else ``name`` itself.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
    """
    return SYMBOLS.get(name, name)


def known_unit(kind: str, unit: object) -> str | None:
    """``unit`` when NGFF lists it for an axis of ``kind`` (``"space"``: a length,
    ``"time"``: a duration), else None.

    Parameters
    ----------
    kind : str
    unit : object

    Returns
    -------
    str or None
    """
    known = LENGTH_UNITS if kind == "space" else TIME_UNITS if kind == "time" else ()
    return unit if isinstance(unit, str) and unit in known else None


def axis_units(axes, ndim: int) -> tuple[tuple[str, str | None], ...] | None:
    """Each axis's kind (``"space"``, ``"time"``, ``"channel"`` or ``""``) and unit,
    from an NGFF ``axes`` list; None when it gives none that can be read.

    Units are optional in NGFF: an axes list that is missing, of another length than
    the array's axes or not made of objects (NGFF 0.3 names only) gives None, and a
    unit NGFF does not list reads as None.

    Parameters
    ----------
    axes : object
        ``multiscales[0].axes`` as stored.
    ndim : int
        The full-resolution array's number of axes.

    Returns
    -------
    tuple of (str, str or None), or None
    """
    if not isinstance(axes, list) or len(axes) != ndim:
        return None
    if not all(isinstance(axis, dict) for axis in axes):
        return None
    out = []
    for axis in axes:
        kind, name, unit = axis.get("type"), axis.get("name"), axis.get("unit")
        if not isinstance(kind, str):
            kind = "space" if name in ("z", "y", "x") else ""
        out.append((kind, known_unit(kind, unit)))
    return tuple(out)


def common_length_unit(
    units: Sequence[tuple[str, str | None]],
) -> tuple[tuple[float, ...], tuple[str | None, ...]]:
    """Factors that express every spatial axis in one unit, and each axis's unit then.

    The unit is that of the last spatial axis (x: the in-plane unit). When the
    spatial axes already share it, or when one of them declares no unit (its size
    cannot be converted), every factor is 1 and the units stay as declared.

    Parameters
    ----------
    units : sequence of (kind, unit)
        From :func:`axis_units`.

    Returns
    -------
    factors : tuple of float
        Multiply an axis's scale and translation by its factor.
    units : tuple of str or None
    """
    declared = tuple(unit for _kind, unit in units)
    spatial = [unit for kind, unit in units if kind == "space"]
    known = [unit for unit in spatial if unit is not None]
    if not spatial or len(known) < len(spatial) or len(set(known)) == 1:
        return (1.0,) * len(units), declared
    metres = LENGTH_UNITS[known[-1]]
    # 15 significant digits: 1e-3 / 1e-6 is 1000, not 1000.0000000000001
    factors = tuple(
        float(f"{LENGTH_UNITS[unit] / metres:.15g}") if kind == "space" and unit else 1.0
        for kind, unit in units
    )
    target = known[-1]
    return factors, tuple(target if kind == "space" else unit for kind, unit in units)


def in_one_unit(
    scale: Sequence[float], names: Sequence[str | None]
) -> tuple[tuple[float, ...], tuple[str | None, ...]]:
    """``scale`` along spatial axes whose units are ``names`` (napari layer units), in
    one length unit when they differ (:func:`common_length_unit`).

    Parameters
    ----------
    scale : sequence of float
    names : sequence of str
        One unit name per value; a name NGFF does not list (napari's default
        ``"pixel"``) counts as unknown.

    Returns
    -------
    scale : tuple of float
    units : tuple of str or None
    """
    factors, units = common_length_unit([("space", known_unit("space", n)) for n in names])
    return tuple(float(s) * f for s, f in zip(scale, factors, strict=True)), units


def length_unit(names: Sequence[str | None]) -> str | None:
    """The one length unit that :func:`in_one_unit` expresses axes of unit ``names``
    in, or None when one of them is no length (napari's ``"pixel"``) or unknown.

    Parameters
    ----------
    names : sequence of str or None

    Returns
    -------
    str or None
    """
    _, units = common_length_unit([("space", known_unit("space", n)) for n in names])
    return units[0] if units and units[0] is not None and len(set(units)) == 1 else None


def convert_lengths(values: Sequence[float], unit: str, to: str) -> tuple[float, ...]:
    """``values`` in length unit ``unit`` expressed in unit ``to`` (NGFF names).

    Parameters
    ----------
    values : sequence of float
    unit, to : str

    Returns
    -------
    tuple of float
        Rounded to 15 significant digits (0.5 mm is 500 µm, not 500.00000000000006).
    """
    factor = LENGTH_UNITS[unit] / LENGTH_UNITS[to]
    return tuple(float(f"{float(v) * factor:.15g}") for v in values)


def parse_length_unit(text: str) -> str:
    """The NGFF name of the length unit ``text`` names: an NGFF name
    (``"micrometer"``, or ``"micrometre"``) or a common symbol (``"um"``, ``"µm"``,
    ``"mm"``, ``"nm"``, ``"cm"``, ``"m"``).

    Parameters
    ----------
    text : str

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For anything else, naming what is accepted.
    """
    word = text.strip()
    by_symbol = {symbol: name for name, symbol in SYMBOLS.items()}
    by_symbol.update({"um": "micrometer", "μm": "micrometer", "micron": "micrometer"})
    name = by_symbol.get(word, word.lower())
    if name.endswith("metre"):  # British spelling: "micrometre"
        name = name[: -len("metre")] + "meter"
    if name not in LENGTH_UNITS:
        raise ValueError(
            f"unknown length unit {text!r}: use nm, um, mm, cm, m or an NGFF name "
            "such as 'micrometer'"
        )
    return name


def format_spacing(spacing: Sequence[float], unit: str | None = None) -> str:
    """A voxel size as people write it: ``"5 x 0.5 x 0.5 mm"`` (no unit when None).

    Parameters
    ----------
    spacing : sequence of float
    unit : str, optional
        NGFF name, shown by its symbol (:func:`unit_symbol`).

    Returns
    -------
    str
    """
    text = " x ".join(f"{float(v):g}" for v in spacing)
    return text if unit is None else f"{text} {unit_symbol(unit)}"
