"""Strokes: the connected pieces of sparse annotations, and which of them to hold out.

With sparse annotations (label 0 means "not annotated") a user paints strokes.
Validation then holds out whole strokes, never blocks of the image: a block may
hold no stroke of a class, or half of one whose other half trains the model (and
scores 1.0 on it). What is scored on held-out strokes is the agreement of the
prediction with those strokes (balanced over classes), which says how well the
model generalises to places it was not shown; it is not the image's IoU, which
nothing but a full ground truth can measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Strokes are 8-connected in 2D (a brush stroke's discs touch at least diagonally).
STRUCTURE_2D = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Stroke:
    """One connected piece of one class in one plane of one pair.

    Attributes
    ----------
    source, plane, cls : int
        The pair, the plane number in it, and the class id.
    ys, xs : slice
        The stroke's bounding box in the plane.
    mask : numpy.ndarray of bool
        The stroke's pixels within the box.
    """

    source: int
    plane: int
    cls: int
    ys: slice
    xs: slice
    mask: np.ndarray

    @property
    def pixels(self) -> int:
        """Number of pixels of the stroke."""
        return int(self.mask.sum())


def find_strokes(labels: np.ndarray, source: int, plane: int) -> list[Stroke]:
    """The strokes of one annotated plane (ids > 0; 0 is "not annotated").

    Parameters
    ----------
    labels : (M, N) ndarray of int
    source, plane : int
        Recorded in each stroke.

    Returns
    -------
    list of Stroke
    """
    strokes = []
    for cls in np.unique(labels):
        if cls <= 0:
            continue
        components, _count = ndi.label(labels == cls, structure=STRUCTURE_2D)
        for number, box in enumerate(ndi.find_objects(components), start=1):
            if box is None:
                continue
            mask = components[box] == number
            strokes.append(Stroke(source, plane, int(cls), box[0], box[1], mask))
    return strokes


def choose_held_out(
    strokes: list[Stroke], fraction: float, rng: np.random.Generator
) -> tuple[list[Stroke], list[str]]:
    """Whole strokes to hold out: about ``fraction`` of each class's strokes.

    Every class keeps at least one stroke (and most of its pixels) for
    training; a class with a single stroke holds nothing out.

    Parameters
    ----------
    strokes : list of Stroke
    fraction : float
        Share of each class's strokes to hold out (0 holds out nothing).
    rng : numpy.random.Generator

    Returns
    -------
    held : list of Stroke
    warnings : list of str
        Classes that could not be validated, for the user.
    """
    if fraction <= 0:
        return [], []
    by_class: dict[int, list[Stroke]] = {}
    for stroke in strokes:
        by_class.setdefault(stroke.cls, []).append(stroke)
    held: list[Stroke] = []
    single = []
    for cls, group in sorted(by_class.items()):
        if len(group) < 2:
            single.append(cls)
            continue
        total = sum(s.pixels for s in group)
        wanted = min(len(group) - 1, max(1, round(fraction * len(group))))
        taken, count = 0, 0
        for i in rng.permutation(len(group)):
            stroke = group[int(i)]
            # At most half of the class's pixels: the smallest stroke always fits,
            # so every class with two strokes or more is validated.
            if count == wanted:
                break
            if taken + stroke.pixels <= total / 2:
                held.append(stroke)
                taken, count = taken + stroke.pixels, count + 1
    warnings = []
    if single:
        names = ", ".join(str(c) for c in single)
        warnings.append(
            f"class(es) {names} have a single stroke, so none of it could be held out: the "
            "held-out stroke agreement does not cover them (paint a second stroke to check them)"
        )
    return held, warnings


def stroke_mask(strokes: list[Stroke], shape: tuple[int, ...]) -> np.ndarray:
    """The pixels of ``strokes`` (all in one plane) as a boolean plane of ``shape``.

    Parameters
    ----------
    strokes : list of Stroke
    shape : tuple of int

    Returns
    -------
    numpy.ndarray of bool
    """
    mask = np.zeros(shape, dtype=bool)
    for stroke in strokes:
        mask[stroke.ys, stroke.xs] |= stroke.mask
    return mask
