"""Endurance: how the writes of a schedule wear the cells, and the lifetime that leaves.

A ReRAM cell survives a limited number of programming events (its endurance).  Over one
inference a schedule rewrites crossbars; :func:`accumulate_wear` adds up, per cell, the
pulses (or the writes that change the cell) of every write.  At ``inference_rate_hz``
inferences per second the most-worn cell reaches an endurance of ``endurance`` events
after :func:`lifetime_s` ``= endurance / (max wear per inference * rate)`` seconds.
Counting pulses is the conservative choice (every pulse stresses the cell); counting
writes matches endurance figures quoted in set/reset cycles.
"""

from __future__ import annotations

from typing import Iterable, Literal

import numpy as np

from .cost import WriteCost

__all__ = ["WearCount", "accumulate_wear", "lifetime_s", "SECONDS_PER_YEAR"]

WearCount = Literal["pulses", "writes"]
SECONDS_PER_YEAR = 365.25 * 24 * 3600.0


def accumulate_wear(writes: Iterable[tuple[int, WriteCost]], n_crossbars: int, shape: tuple[int, int],
                    count: WearCount = "pulses") -> np.ndarray:
    """Wear per cell, shape ``(n_crossbars, rows, cols)``, from ``(crossbar, cost)`` pairs.

    A cost smaller than the crossbar (a tile in its top-left corner) wears only its cells.
    """
    if count not in ("pulses", "writes"):
        raise ValueError(f"count must be 'pulses' or 'writes'; got {count!r}")
    wear = np.zeros((int(n_crossbars), *shape), dtype=np.int64)
    for x, cost in writes:
        if not 0 <= x < n_crossbars:
            raise ValueError(f"crossbar index {x} out of range 0..{n_crossbars - 1}")
        r, c = cost.pulses.shape
        if r > shape[0] or c > shape[1]:
            raise ValueError(f"a write of {r}x{c} cells does not fit a {shape[0]}x{shape[1]} crossbar")
        wear[x, :r, :c] += cost.pulses if count == "pulses" else cost.changed
    return wear


def lifetime_s(wear_per_inference: np.ndarray | float, inference_rate_hz: float, endurance: float) -> float:
    """Seconds until the most-worn cell reaches ``endurance`` events.

    Parameters
    ----------
    wear_per_inference : array_like or float
        Wear per cell over one inference (:func:`accumulate_wear`), or its maximum.
    inference_rate_hz : float
        Inferences per second, > 0.
    endurance : float
        Programming events a cell survives, > 0.

    Returns
    -------
    float
        ``inf`` when no cell is written.
    """
    if not inference_rate_hz > 0:
        raise ValueError(f"inference_rate_hz must be > 0; got {inference_rate_hz!r}")
    if not endurance > 0:
        raise ValueError(f"endurance must be > 0; got {endurance!r}")
    worst = float(np.max(wear_per_inference)) if np.size(wear_per_inference) else 0.0
    if worst < 0:
        raise ValueError(f"wear must be >= 0; got {worst!r}")
    return float("inf") if worst == 0 else float(endurance) / (worst * float(inference_rate_hz))
