"""Scanning labelled volumes, and the slabs held out of them for validation.

Labels are scanned slab by slab along the first axis (never a whole int64 copy
of the volume): annotated voxels per slice and class along each axis, and a
sample of annotated positions per class. Validation holds out whole slabs: with
sparse labels, single annotated slices along the axis the user drew; with dense
labels, slabs one patch thick along the first axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._boxes import Slab
from ._shared import POSITIONS_PER_CLASS, LabelMode, check_class_ids

#: Slices of labels read at once while scanning.
SCAN_SLICES = 16


@dataclass
class Scan:
    """What a scan of one volume's labels found."""

    counts: list[np.ndarray]  # per axis, (slices, k): annotated voxels per slice and class
    positions: dict[int, np.ndarray]  # class -> (n, 3) annotated positions


def scan_labels(
    name: str,
    read: Callable[[slice], np.ndarray],
    shape: tuple[int, ...],
    mode: LabelMode,
    max_classes: int,
) -> Scan:
    """Annotated voxels per slice and class along each axis, and a sample of
    annotated positions per class, of the labels ``read(z_slice)`` returns (int64)."""
    rng = np.random.default_rng(12345)
    counts = [np.zeros((n, 1), np.int64) for n in shape]
    found: dict[int, list[np.ndarray]] = {}
    for z0 in range(0, shape[0], SCAN_SLICES):
        lab = read(slice(z0, min(shape[0], z0 + SCAN_SLICES)))
        check_class_ids(name, lab, max_classes)
        annotated = mode.annotated(lab)
        k = max(int(lab.max()) + 1, 1) if lab.size else 1
        if k > counts[0].shape[1]:
            counts = [np.pad(c, ((0, 0), (0, k - c.shape[1]))) for c in counts]
        where = np.argwhere(annotated)
        ids = lab[annotated]
        where[:, 0] += z0
        for axis in range(3):
            flat = np.bincount(where[:, axis] * k + ids, minlength=shape[axis] * k)
            counts[axis][:, :k] += flat.reshape(shape[axis], k)
        for c in np.unique(ids):
            found.setdefault(int(c), []).append(_subsample(where[ids == c], rng))
    positions = {c: _subsample(np.concatenate(p), rng) for c, p in found.items()}
    return Scan(counts, positions)


def hold_out_slabs(
    s: int, name: str, scan: Scan, rng: np.random.Generator, fraction: float, thick: int | None
) -> tuple[list[Slab], list[str]]:
    """Held-out slabs of pair ``s`` (named ``name``), and what to tell the user.

    ``thick`` is the thickness of dense labels' slabs along the first axis (a patch);
    None holds out single annotated slices (sparse labels). A slab is held out only
    if every class keeps some training voxels without it (a structure painted on
    one slice only is never taken away from training).
    """
    if fraction <= 0:
        return [], []
    if thick is None:
        from ..refine.slices import choose_slice_axis

        along = [c.sum(axis=1) > 0 for c in scan.counts]
        axis = choose_slice_axis(along)
        units = [(int(i), int(i) + 1) for i in np.flatnonzero(along[axis])]
    else:
        axis = 0
        units = [(z, z + thick) for z in range(0, len(scan.counts[0]) - thick + 1, thick)]
    if len(units) < 3:
        if thick is not None:
            return [], []
        return [], [
            f"{name}: {len(units)} annotated slice(s) along axis {axis}; at least 3 are "
            "needed to hold one out, so nothing is validated"
        ]
    per_unit = np.stack([scan.counts[axis][a:b].sum(axis=0) for a, b in units])
    left = per_unit.sum(axis=0)
    wanted = max(1, round(fraction * len(units)))
    chosen: list[tuple[int, int]] = []
    for u in rng.permutation(len(units)):
        if len(chosen) == wanted:
            break
        if np.all((left - per_unit[u] > 0) | (left == 0)):
            left = left - per_unit[u]
            chosen.append(units[u])
    held = per_unit.sum(axis=0) - left
    if np.count_nonzero(held) < 2:
        # Scores on one class would pick the model that predicts only it.
        return [], [
            f"{name}: the slices that can be held out for validation show fewer than two "
            "classes, so nothing is validated and the last model is kept"
        ]
    return [Slab(s, axis, a, b) for a, b in sorted(chosen)], []


def by_class(scans: list[Scan]) -> dict[int, list]:
    """Every pair's sampled positions, grouped by class: class -> [(pair, positions)]."""
    out: dict[int, list] = {}
    for s, scan in enumerate(scans):
        for c, where in scan.positions.items():
            out.setdefault(c, []).append((s, where))
    return out


def _subsample(where: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """At most ``POSITIONS_PER_CLASS`` of the positions ``where``, drawn at random."""
    if len(where) > POSITIONS_PER_CLASS:
        where = where[rng.choice(len(where), POSITIONS_PER_CLASS, replace=False)]
    return where.astype(np.int32, copy=False)
