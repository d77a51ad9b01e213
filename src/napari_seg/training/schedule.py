"""Learning-rate schedules as functions of the fraction of the budget used.

torch's schedulers count steps to a known total; a wall-clock budget has no
known total, so the factor is computed from the budget fraction (steps done /
steps planned, or seconds trained / seconds allowed). Stateless: resuming a run
only needs the fraction.
"""

from __future__ import annotations

import math

#: Final learning rate of the cosine schedule, relative to the peak.
COSINE_FINAL = 0.01
#: One-cycle settings (torch.optim.lr_scheduler.OneCycleLR defaults).
ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4


def lr_factor(schedule: str, fraction: float, *, warmup: float = 0.05) -> float:
    """Multiplier of the peak learning rate at ``fraction`` (0 to 1) of the budget.

    Parameters
    ----------
    schedule : {"cosine", "onecycle", "constant"}
        ``cosine``: linear warm-up from 10% over ``warmup``, then cosine decay
        to 1%. ``constant``: the same warm-up, then flat. ``onecycle``: cosine
        ramp from 1/25 to 1 over the first 30%, then cosine decay to 1/250000
        (Smith & Topin 2019, as torch's OneCycleLR).
    fraction : float
    warmup : float
        Fraction of the budget used to warm up.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For an unknown schedule.

    Examples
    --------
    >>> lr_factor("cosine", 1.0)
    0.01
    """
    f = min(max(float(fraction), 0.0), 1.0)
    if schedule == "onecycle":
        start, end = 1.0 / ONECYCLE_DIV, 1.0 / (ONECYCLE_DIV * ONECYCLE_FINAL_DIV)
        if f < ONECYCLE_PCT_START:
            return _cos(start, 1.0, f / ONECYCLE_PCT_START)
        return _cos(1.0, end, (f - ONECYCLE_PCT_START) / (1.0 - ONECYCLE_PCT_START))
    if warmup > 0 and f < warmup:
        return 0.1 + 0.9 * f / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return _cos(1.0, COSINE_FINAL, (f - warmup) / (1.0 - warmup))
    raise ValueError(f"unknown schedule {schedule!r}")


def _cos(start: float, end: float, t: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))
