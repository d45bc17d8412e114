"""What one crossbar write costs: pulses per cell, cells written, energy and latency.

Model (the ARAS accelerator's, Sabri, Riera, Gonzalez 2024): multi-level cells are
updated *incrementally*, so the pulses a cell needs grow with its level change, and a
crossbar is written *row by row*: the rows one after another, the cells of one row in
parallel.  A row therefore takes as long as its slowest cell, and a row with no change
is skipped:

* ``pulses[i, j] = |new[i, j] - old[i, j]|`` (``model="incremental"``: one pulse moves a
  cell by one level), or, with ``model="write_verify"``, each one-level step takes a
  random number of pulse-and-verify rounds, geometric with success probability
  ``verify_success_probability`` (so a step of ``d`` levels takes ``d`` plus a negative
  binomial number of extra pulses), drawn from a seeded generator;
* ``row_latency[i] = max_j pulses[i, j] * pulse_duration_s``, ``latency = sum_i row_latency[i]``;
* ``energy = sum_ij pulses[i, j] * pulse_energy_j``.

Defaults: ARAS quotes 768,000 cycles at 1 GHz to write a 128 x 128 crossbar of 2-bit
cells row by row; with at most 3 level steps per cell that is
``768 us / (128 rows * 3 pulses) = 2 us`` per pulse (our reading, so that a full-swing
write of every row costs ARAS's figure).  The pulse energy is not in our ARAS notes:
10 pJ is our assumption, the order of published ReRAM set/reset pulse energies; energy
*ratios* between schedules do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["WriteParams", "WriteCost", "write_cost", "ARAS_PULSE_DURATION_S", "DEFAULT_PULSE_ENERGY_J"]

#: ARAS: 768,000 cycles at 1 GHz for 128 rows of at most 3 one-level pulses each.
ARAS_PULSE_DURATION_S = 768_000 / 1e9 / (128 * 3)
#: Our assumption (module docstring).
DEFAULT_PULSE_ENERGY_J = 10e-12

WriteModel = Literal["incremental", "write_verify"]


@dataclass(frozen=True)
class WriteParams:
    """Per-pulse programming parameters (SI units).

    Parameters
    ----------
    pulse_duration_s : float
        Time of one programming pulse (with its verify read, if any), s.
    pulse_energy_j : float
        Energy of one pulse, J.
    model : {"incremental", "write_verify"}
        One pulse per level step, or a seeded random number of pulses per step.
    verify_success_probability : float
        Write-verify model: probability that one pulse completes a one-level step, in (0, 1].
    seed : int
        Seed of the write-verify pulse counts.
    """

    pulse_duration_s: float = ARAS_PULSE_DURATION_S
    pulse_energy_j: float = DEFAULT_PULSE_ENERGY_J
    model: WriteModel = "incremental"
    verify_success_probability: float = 0.8
    seed: int = 0

    def __post_init__(self):
        for name in ("pulse_duration_s", "pulse_energy_j"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
        if self.model not in ("incremental", "write_verify"):
            raise ValueError(f"model must be 'incremental' or 'write_verify'; got {self.model!r}")
        p = self.verify_success_probability
        if not 0 < p <= 1:
            raise ValueError(f"verify_success_probability must be in (0, 1]; got {p!r}")


@dataclass(frozen=True, eq=False)
class WriteCost:
    """The cost of one crossbar write (:func:`write_cost`).

    Attributes
    ----------
    pulses : ndarray of int64, shape (rows, cols)
        Pulses per cell.
    changed : ndarray of bool, shape (rows, cols)
        Cells whose level changes.
    row_latency_s : ndarray, shape (rows,)
        Time of each row (s): its largest pulse count times the pulse duration.
    energy_j : float
        Total pulse energy (J).
    """

    pulses: np.ndarray
    changed: np.ndarray
    row_latency_s: np.ndarray
    energy_j: float

    @property
    def n_pulses(self) -> int:
        """Total pulses."""
        return int(self.pulses.sum())

    @property
    def cells_written(self) -> int:
        """Cells whose level changes."""
        return int(self.changed.sum())

    @property
    def rows_written(self) -> int:
        """Rows with at least one pulse."""
        return int(np.count_nonzero(self.row_latency_s))

    @property
    def latency_s(self) -> float:
        """Write time of the crossbar (s): the rows one after another."""
        return float(self.row_latency_s.sum())


def _levels(name: str, a) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, cols) array of cell levels; got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold integer cell levels")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold levels >= 0; got {arr.min()}")
    return arr


def pulse_counts(steps: np.ndarray, params: WriteParams, rng: np.random.Generator | None) -> np.ndarray:
    """Pulses for level changes of ``steps`` (>= 0) levels under ``params.model``."""
    if params.model == "incremental" or params.verify_success_probability == 1:
        return steps
    if rng is None:
        rng = np.random.default_rng(params.seed)
    extra = np.zeros_like(steps)
    nz = steps > 0
    extra[nz] = rng.negative_binomial(steps[nz], params.verify_success_probability)
    return steps + extra


def write_cost(old_levels: np.ndarray, new_levels: np.ndarray, params: WriteParams = WriteParams(), *,
               rng: np.random.Generator | None = None) -> WriteCost:
    """Pulses, cells written, energy and row-by-row latency of rewriting a crossbar.

    Parameters
    ----------
    old_levels, new_levels : array_like of int, shape (rows, cols)
        Cell levels before and after the write.
    params : WriteParams
        Per-pulse parameters and the pulse-count model.
    rng : numpy.random.Generator or None
        Stream of the write-verify pulse counts (default: seeded with ``params.seed``).

    Examples
    --------
    >>> c = write_cost([[0, 3, 1], [2, 2, 0]], [[0, 1, 3], [2, 0, 3]])
    >>> c.n_pulses, c.cells_written
    (9, 4)
    """
    old = _levels("old_levels", old_levels)
    new = _levels("new_levels", new_levels)
    if old.shape != new.shape:
        raise ValueError(f"old_levels {old.shape} and new_levels {new.shape} must have the same shape")
    steps = np.abs(new - old)
    pulses = pulse_counts(steps, params, rng)
    row_max = pulses.max(axis=1) if pulses.shape[1] else np.zeros(pulses.shape[0], dtype=np.int64)
    row_lat = row_max * params.pulse_duration_s
    changed = steps > 0
    for a in (pulses, changed, row_lat):
        a.setflags(write=False)
    return WriteCost(pulses, changed, row_lat, float(pulses.sum()) * params.pulse_energy_j)
