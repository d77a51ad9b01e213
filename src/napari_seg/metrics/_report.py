"""Scores as table rows, JSON-ready dicts and readable text (shared by CLI and widget)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._instance import InstanceScores
from ._semantic import SemanticScores

SEMANTIC_COLUMNS = ("class", "id", "IoU", "Dice", "precision", "recall", "gt pixels", "pred pixels")
INSTANCE_COLUMNS = (
    "IoU threshold",
    "TP",
    "FP",
    "FN",
    "precision",
    "recall",
    "F1",
    "accuracy",
    "mean matched IoU",
    "PQ",
)
SUMMARY_KEYS = (
    ("mean_iou", "mean IoU"),
    ("mean_iou_foreground", "mean IoU (no background)"),
    ("frequency_weighted_iou", "frequency-weighted IoU"),
    ("mean_dice", "mean Dice"),
    ("mean_dice_foreground", "mean Dice (no background)"),
    ("mean_precision", "mean precision"),
    ("mean_recall", "mean recall"),
    ("pixel_accuracy", "pixel accuracy"),
)


def class_name(label: int, names: Sequence[str] | None) -> str:
    """The name of class ``label`` from ``names`` (indexed by id), else the id."""
    if names is not None and 0 <= label < len(names) and names[label]:
        return str(names[label])
    return str(label)


def semantic_rows(s: SemanticScores, names: Sequence[str] | None = None) -> list[dict]:
    """One table row per class, then the means.

    Parameters
    ----------
    s : SemanticScores
    names : sequence of str, optional
        Class names indexed by id.

    Returns
    -------
    list of dict
    """
    rows = [
        {
            "class": class_name(lab, names),
            "id": lab,
            "IoU": _num(s.iou[i]),
            "Dice": _num(s.dice[i]),
            "precision": _num(s.precision[i]),
            "recall": _num(s.recall[i]),
            "gt pixels": int(s.support[i]),
            "pred pixels": int(s.predicted[i]),
        }
        for i, lab in enumerate(s.labels)
    ]
    for head, iou, dice in (
        ("mean", s.mean_iou, s.mean_dice),
        ("mean (no background)", s.mean_iou_foreground, s.mean_dice_foreground),
    ):
        rows.append(
            {
                "class": head,
                "id": None,
                "IoU": _num(iou),
                "Dice": _num(dice),
                "precision": _num(s.mean_precision) if head == "mean" else None,
                "recall": _num(s.mean_recall) if head == "mean" else None,
                "gt pixels": int(s.support.sum()),
                "pred pixels": int(s.predicted.sum()),
            }
        )
    return rows


def instance_rows(s: InstanceScores) -> list[dict]:
    """One table row per IoU threshold.

    Parameters
    ----------
    s : InstanceScores

    Returns
    -------
    list of dict
    """
    return [
        {
            "IoU threshold": t,
            "TP": int(s.tp[i]),
            "FP": int(s.fp[i]),
            "FN": int(s.fn[i]),
            "precision": _num(s.precision[i]),
            "recall": _num(s.recall[i]),
            "F1": _num(s.f1[i]),
            "accuracy": _num(s.accuracy[i]),
            "mean matched IoU": _num(s.mean_matched_iou[i]),
            "PQ": _num(s.panoptic_quality[i]),
        }
        for i, t in enumerate(s.thresholds)
    ]


def to_dict(s: SemanticScores | InstanceScores, names: Sequence[str] | None = None) -> dict:
    """Every score in plain JSON types (NaN as None).

    Parameters
    ----------
    s : SemanticScores or InstanceScores
    names : sequence of str, optional
        Class names indexed by id (semantic scores).

    Returns
    -------
    dict
    """
    if isinstance(s, InstanceScores):
        return {
            "mode": "instance",
            "n_true": s.n_true,
            "n_pred": s.n_pred,
            "mean_accuracy": _num(s.mean_accuracy),
            "seg": _num(s.seg),
            "thresholds": instance_rows(s),
        }
    summary = {key: _num(getattr(s, key)) for key, _ in SUMMARY_KEYS}
    return {"mode": "semantic", **summary, "classes": semantic_rows(s, names)[: len(s.labels)]}


def format_table(rows: list[dict], columns: Sequence[str]) -> str:
    """Rows as an aligned plain-text table (NaN and None shown as "-")."""
    cells = [[_text(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def format_csv(rows: list[dict]) -> str:
    """Rows as CSV text, the first row's keys as the header (None and NaN empty, as
    spreadsheets and ``pandas.read_csv`` read a missing value); "" for no rows.

    Parameters
    ----------
    rows : list of dict

    Returns
    -------
    str
    """
    import csv
    import io

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if _missing(v) else v for k, v in r.items()} for r in rows)
    return buffer.getvalue()


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_scores(s: SemanticScores | InstanceScores, names: Sequence[str] | None = None) -> str:
    """The scores as a text table (the command line prints it).

    Parameters
    ----------
    s : SemanticScores or InstanceScores
    names : sequence of str, optional

    Returns
    -------
    str
    """
    if isinstance(s, InstanceScores):
        head = f"{s.n_true} true objects, {s.n_pred} predicted objects"
        tail = f"accuracy averaged over thresholds: {_text(_num(s.mean_accuracy))}"
        seg = f"SEG (Cell Tracking Challenge): {_text(_num(s.seg))}"
        return "\n".join((head, format_table(instance_rows(s), INSTANCE_COLUMNS), tail, seg))
    table = format_table(semantic_rows(s, names), SEMANTIC_COLUMNS)
    summary = [f"{label}: {_text(_num(getattr(s, key)))}" for key, label in SUMMARY_KEYS]
    return "\n".join((table, "", *summary))


def _num(value) -> float | None:
    value = float(np.asarray(value))
    return None if math.isnan(value) else value


def _text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def merge_rows(
    rows_a: list[dict], rows_b: list[dict], key: str, *, suffix: str = " [B]"
) -> list[dict]:
    """Two tables side by side: the second's values as extra columns, with deltas.

    Parameters
    ----------
    rows_a, rows_b : list of dict
        Rows of the same shape (say, two predictions scored against one truth).
    key : str
        The column that identifies a row (class or threshold).
    suffix : str
        Appended to the names of the second table's columns.

    Returns
    -------
    list of dict
    """
    head = "IoU" if rows_a and "IoU" in rows_a[0] else "accuracy"
    by_key = {r[key]: r for r in rows_b}
    keys = [r[key] for r in rows_a] + [k for k in by_key if k not in {r[key] for r in rows_a}]
    by_a = {r[key]: r for r in rows_a}
    columns = [c for c in (rows_a or rows_b)[0] if c not in (key, "id")]
    out = []
    for k in keys:
        a, b = by_a.get(k, {}), by_key.get(k, {})
        row = {key: k, **{c: a.get(c) for c in columns}}
        row.update({f"{c}{suffix}": b.get(c) for c in columns})
        va, vb = a.get(head), b.get(head)
        row[f"delta {head}"] = None if va is None or vb is None else vb - va
        out.append(row)
    return out
