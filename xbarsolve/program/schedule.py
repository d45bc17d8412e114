"""Offline schedules of a network on a limited accelerator: which crossbar is written
with which tile when, and when it computes.

A layer too big for the free crossbars is split into crossbar tiles
(:meth:`~xbarsolve.program.network.MappedLayer.tiles`).  A tile must be written into a
crossbar before that crossbar computes its input vectors, and the vectors of layer
``l`` exist only once every tile of layer ``l - 1`` has computed all of its own.  Writing
costs what :func:`~xbarsolve.program.cost.write_cost` says for the crossbar's previous
content, and at most :attr:`~xbarsolve.program.accelerator.Accelerator.parallel_writes`
crossbars are written at once.

Policies:

* ``"naive"``: write a layer (as many of its tiles as there are crossbars), compute it,
  then the next group or layer; writing and computing never overlap.
* ``"overlap"`` (ARAS): tiles are written in execution order into the crossbar that
  becomes free first, while earlier layers still compute, so upcoming layers are written
  during the current layer's computation.
* Replication (``replication="auto"`` or per-layer factors): a layer is written ``r``
  times and its input vectors split between the copies, which pays when computing the
  layer takes longer than writing it (early convolutions: large feature maps, few
  weights).  ``"auto"`` tries factors 2, 4, 8, ... on the layers where one copy's compute
  time exceeds a full crossbar write and keeps those that shorten the schedule.
* Partial weight reuse: schedule a re-encoded network (:mod:`xbarsolve.program.reuse`);
  :func:`compare` picks the centre.

Each schedule is for one inference of ``batch`` images in the steady state
(``initial="steady"``: the crossbars hold what the previous identical inference left;
``"empty"``: all cells at level 0).  A tile that is still on a crossbar from the previous
inference is used without writing.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from .accelerator import Accelerator
from .cost import write_cost
from .endurance import lifetime_s
from .network import MappedNetwork

__all__ = ["Policy", "Schedule", "schedule", "Comparison", "compare", "WRITE", "COMPUTE"]

Policy = Literal["naive", "overlap"]
WRITE, COMPUTE = 0, 1


@dataclass(frozen=True, eq=False)
class Schedule:
    """One inference on the accelerator: a timeline of writes and computations.

    Events are rows of the arrays ``kind`` (:data:`WRITE` or :data:`COMPUTE`),
    ``crossbar``, ``layer``, ``tile``, ``copy``, ``start_s``, ``end_s`` (s), ``pulses``
    (writes) and ``windows`` (input vectors of a computation).

    Attributes
    ----------
    wear : ndarray of int64, shape (n_crossbars, rows, cols)
        Pulses per cell during the inference (:mod:`xbarsolve.program.endurance`).
    naive_latency_s : float
        Latency of the naive schedule of the same network, accelerator and batch (s).
    """

    policy: str
    network: str
    layer_names: tuple[str, ...]
    accelerator: Accelerator
    batch: int
    replication: tuple[int, ...]
    kind: np.ndarray
    crossbar: np.ndarray
    layer: np.ndarray
    tile: np.ndarray
    copy: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    pulses: np.ndarray
    cells_written: np.ndarray
    windows: np.ndarray
    wear: np.ndarray = field(repr=False)
    naive_latency_s: float = float("nan")

    @property
    def latency_s(self) -> float:
        """End of the last event (s)."""
        return float(self.end_s.max())

    @property
    def n_pulses(self) -> int:
        return int(self.pulses.sum())

    @property
    def n_writes(self) -> int:
        """Crossbar writes."""
        return int(np.count_nonzero(self.kind == WRITE))

    @property
    def write_time_s(self) -> float:
        """Sum of all write durations (s)."""
        w = self.kind == WRITE
        return float((self.end_s[w] - self.start_s[w]).sum())

    @property
    def lower_bound_s(self) -> float:
        """Total write time over the write parallelism (s): no schedule of these writes is faster."""
        return self.write_time_s / self.accelerator.parallel_writes

    @property
    def write_energy_j(self) -> float:
        return self.n_pulses * self.accelerator.write.pulse_energy_j

    @property
    def compute_energy_j(self) -> float:
        return float(self.windows.sum()) * self.accelerator.compute_energy_j

    @property
    def static_energy_j(self) -> float:
        return self.accelerator.static_power_w * self.accelerator.n_crossbars * self.latency_s

    @property
    def energy_j(self) -> float:
        return self.write_energy_j + self.compute_energy_j + self.static_energy_j

    @property
    def energy_breakdown_j(self) -> dict[str, float]:
        """``{"write", "compute", "static"}`` energies (J)."""
        return {"write": self.write_energy_j, "compute": self.compute_energy_j, "static": self.static_energy_j}

    @property
    def speedup(self) -> float:
        """Naive latency over this schedule's latency."""
        return self.naive_latency_s / self.latency_s

    def lifetime_s(self, inference_rate_hz: float, endurance: float) -> float:
        """Seconds until the most-worn cell reaches ``endurance`` pulses, running this
        inference ``inference_rate_hz`` times per second."""
        return lifetime_s(self.wear, inference_rate_hz, endurance)

    def plot(self, ax=None):
        """The timeline (:func:`xbarsolve.program.plotting.plot_timeline`)."""
        from .plotting import plot_timeline

        return plot_timeline(self, ax=ax)


@dataclass
class _Job:
    layer: int
    tile: int
    copy: int
    levels: np.ndarray
    windows: int


class _Machine:
    """Crossbar contents and the event log of one simulated inference."""

    def __init__(self, acc: Accelerator, state: dict | None):
        self.acc = acc
        self.levels: dict[int, np.ndarray] = {} if state is None else {k: v.copy() for k, v in state["levels"].items()}
        self.content: dict[int, tuple[int, int]] = {} if state is None else dict(state["content"])
        self.fresh = set(self.content)  # contents left by the previous inference
        self.slots = [0.0] * acc.parallel_writes
        self.rng = np.random.default_rng(acc.write.seed)
        self.events: list[tuple] = []
        self.wear: dict[int, np.ndarray] = {}

    def resident(self, job: _Job, taken: set[int]) -> int | None:
        key = (job.layer, job.tile)
        for x in sorted(self.fresh - taken):
            if self.content.get(x) == key:
                return x
        return None

    def write(self, x: int, job: _Job, not_before: float) -> float:
        """Write ``job`` into crossbar ``x`` at the earliest write slot after ``not_before``; returns its end."""
        acc = self.acc
        cur = self.levels.setdefault(x, np.zeros((acc.rows, acc.cols), dtype=np.int64))
        r, c = job.levels.shape
        cost = write_cost(cur[:r, :c], job.levels, acc.write, rng=self.rng)
        slot = heapq.heappop(self.slots)
        start = max(slot, not_before)
        end = start + cost.latency_s
        heapq.heappush(self.slots, end)
        cur[:r, :c] = job.levels
        self.content[x] = (job.layer, job.tile)
        self.fresh.discard(x)
        self.wear.setdefault(x, np.zeros((acc.rows, acc.cols), dtype=np.int64))[:r, :c] += cost.pulses
        self.events.append((WRITE, x, job.layer, job.tile, job.copy, start, end, cost.n_pulses, cost.cells_written, 0))
        return end

    def claim(self, x: int) -> None:
        self.fresh.discard(x)

    def compute(self, x: int, job: _Job, start: float) -> float:
        end = start + job.windows * self.acc.compute_latency_s
        self.events.append((COMPUTE, x, job.layer, job.tile, job.copy, start, end, 0, 0, job.windows))
        return end

    def state(self) -> dict:
        return {"levels": self.levels, "content": self.content}


def _jobs(tile_levels: list[list[np.ndarray]], network: MappedNetwork, replication, batch) -> list[_Job]:
    jobs = []
    for li, (L, levels) in enumerate(zip(network.layers, tile_levels)):
        r = replication[li]
        total = L.windows * batch
        shares = [total // r + (1 if k < total % r else 0) for k in range(r)]
        for k in range(r):
            for t, lv in enumerate(levels):
                jobs.append(_Job(li, t, k, lv, shares[k]))
    return jobs


def _run_naive(jobs: list[_Job], acc: Accelerator, state) -> _Machine:
    m = _Machine(acc, state)
    C = acc.n_crossbars
    t = 0.0
    i = 0
    while i < len(jobs):
        layer = jobs[i].layer
        group = []
        while i < len(jobs) and jobs[i].layer == layer and len(group) < C:
            group.append(jobs[i])
            i += 1
        taken: set[int] = set()
        placed = []
        for job in group:  # tiles still resident from the previous inference first
            x = m.resident(job, taken)
            if x is not None:
                taken.add(x)
            placed.append(x)
        spare = iter(x for x in range(C) if x not in taken)
        ready = t
        for j, job in enumerate(group):
            if placed[j] is None:
                placed[j] = next(spare)
                ready = max(ready, m.write(placed[j], job, t))
            else:
                m.claim(placed[j])
        t = max(m.compute(x, job, ready) for x, job in zip(placed, group))
    return m


def _run_overlap(jobs: list[_Job], acc: Accelerator, state) -> _Machine:
    m = _Machine(acc, state)
    free_at = np.zeros(acc.n_crossbars)
    layer_end: dict[int, float] = {}
    taken: set[int] = set()
    for job in jobs:
        inputs_ready = layer_end.get(job.layer - 1, 0.0)
        x = m.resident(job, taken)
        if x is not None:
            m.claim(x)
            ready = free_at[x]
        else:
            x = int(np.argmin(free_at))
            ready = m.write(x, job, float(free_at[x]))
        taken.add(x)
        end = m.compute(x, job, max(ready, inputs_ready))
        free_at[x] = end
        layer_end[job.layer] = max(layer_end.get(job.layer, 0.0), end)
    return m


def _simulate(network, acc, policy, replication, batch, initial, tile_levels):
    jobs = _jobs(tile_levels, network, replication, batch)
    run = _run_naive if policy == "naive" else _run_overlap
    state = None
    if initial == "steady":
        state = run(jobs, acc, None).state()
    return run(jobs, acc, state)


def _validate(network, acc, policy, batch, initial):
    if not isinstance(network, MappedNetwork):
        raise TypeError(f"network must be a MappedNetwork (xbarsolve.program.map_model); got {type(network).__name__}")
    if not isinstance(acc, Accelerator):
        raise TypeError(f"accelerator must be an Accelerator; got {type(acc).__name__}")
    if policy not in ("naive", "overlap"):
        raise ValueError(f"policy must be 'naive' or 'overlap'; got {policy!r}")
    if isinstance(batch, bool) or int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer (images per inference); got {batch!r}")
    if initial not in ("steady", "empty"):
        raise ValueError(f"initial must be 'steady' or 'empty'; got {initial!r}")


def _replication(network, acc, policy, replication, batch, initial, tile_levels, base_latency):
    n = len(network.layers)
    if replication is None:
        return (1,) * n
    if isinstance(replication, str):
        if replication != "auto":
            raise ValueError(f"replication must be None, 'auto' or one factor per layer; got {replication!r}")
        if policy == "naive":
            raise ValueError("the naive schedule does not replicate layers; use policy='overlap'")
        return _auto_replication(network, acc, batch, initial, tile_levels, base_latency)
    reps = tuple(int(r) for r in replication)
    if len(reps) != n or min(reps) < 1:
        raise ValueError(f"replication needs {n} factors >= 1 (one per layer); got {replication!r}")
    if policy == "naive" and max(reps) > 1:
        raise ValueError("the naive schedule does not replicate layers; use policy='overlap'")
    return reps


def _auto_replication(network, acc, batch, initial, tile_levels, base_latency):
    reps = [1] * len(network.layers)
    best = base_latency
    full_write = acc.write_cycles / acc.clock_hz
    for li, L in enumerate(network.layers):
        T = len(tile_levels[li])
        if L.windows * batch * acc.compute_latency_s <= full_write:
            continue
        r = 2
        while r * T <= acc.n_crossbars and r <= L.windows * batch:
            trial = reps.copy()
            trial[li] = r
            lat = max(e[6] for e in _simulate(network, acc, "overlap", trial, batch, initial, tile_levels).events)
            if lat >= best:
                break
            best, reps = lat, trial
            r *= 2
    return tuple(reps)


def schedule(network: MappedNetwork, accelerator: Accelerator = Accelerator(), policy: Policy = "overlap", *,
             replication: None | Literal["auto"] | Sequence[int] = None, batch: int = 1,
             initial: Literal["steady", "empty"] = "steady") -> Schedule:
    """Schedule one inference of ``network`` on ``accelerator`` (module docstring).

    Parameters
    ----------
    network : MappedNetwork
        From :func:`~xbarsolve.program.network.map_model` (or re-encoded,
        :func:`~xbarsolve.program.reuse.reencode`).
    accelerator : Accelerator
    policy : {"naive", "overlap"}
    replication : None, "auto" or sequence of int
        Copies per layer (``"overlap"`` only).
    batch : int
        Images per inference: every layer computes ``windows * batch`` input vectors.
    initial : {"steady", "empty"}
        Crossbar contents at the start.

    Returns
    -------
    Schedule
    """
    _validate(network, accelerator, policy, batch, initial)
    tile_levels = [L.tile_levels(accelerator) for L in network.layers]
    ones = (1,) * len(network.layers)
    naive = _simulate(network, accelerator, "naive", ones, batch, initial, tile_levels)
    naive_latency = max(e[6] for e in naive.events)
    if policy == "naive":
        m, reps = naive, _replication(network, accelerator, policy, replication, batch, initial, tile_levels, naive_latency)
    else:
        base = _simulate(network, accelerator, "overlap", ones, batch, initial, tile_levels)
        reps = _replication(network, accelerator, policy, replication, batch, initial, tile_levels,
                            max(e[6] for e in base.events))
        m = base if reps == ones else _simulate(network, accelerator, "overlap", reps, batch, initial, tile_levels)
    ev = np.array(m.events, dtype=np.float64).reshape(-1, 10)
    ints = {name: ev[:, i].astype(np.int64) for i, name in
            ((0, "kind"), (1, "crossbar"), (2, "layer"), (3, "tile"), (4, "copy"), (7, "pulses"), (8, "cells_written"), (9, "windows"))}
    wear = np.zeros((accelerator.n_crossbars, accelerator.rows, accelerator.cols), dtype=np.int64) \
        if accelerator.n_crossbars * accelerator.rows * accelerator.cols <= 2 ** 24 else None
    if wear is None:  # large accelerators: keep only the crossbars that were written
        wear = np.zeros((max(m.wear, default=-1) + 1, accelerator.rows, accelerator.cols), dtype=np.int64)
    for x, w in m.wear.items():
        wear[x] = w
    arrays = dict(ints, start_s=ev[:, 5], end_s=ev[:, 6], wear=wear)
    for a in arrays.values():
        a.setflags(write=False)
    return Schedule(policy, network.name, tuple(L.name for L in network.layers), accelerator, int(batch), reps,
                    naive_latency_s=float(naive_latency), **arrays)


@dataclass(frozen=True, eq=False)
class Comparison:
    """The ARAS study of one network: naive, overlapped, overlapped + replication, and
    overlapped + replication + partial weight reuse at the best candidate centre.

    Attributes
    ----------
    centre : int
        The chosen common centre (fewest pulses among the candidates).
    n_clipped : int
        Weights the re-encoding clipped.
    pulses_by_centre : dict of int -> int
        Pulses of the reuse schedule for every candidate centre.
    """

    naive: Schedule
    overlap: Schedule
    replicated: Schedule
    reuse: Schedule
    centre: int
    n_clipped: int
    pulses_by_centre: dict

    @property
    def pulses_saved(self) -> float:
        """Fraction of write pulses saved by partial reuse (reuse vs replicated, same schedule policy)."""
        return 1.0 - self.reuse.n_pulses / self.replicated.n_pulses


def compare(network: MappedNetwork, accelerator: Accelerator = Accelerator(), *, batch: int = 1,
            centres: Sequence[int] | None = None, initial: Literal["steady", "empty"] = "steady") -> Comparison:
    """Schedule ``network`` with every ARAS remedy (see :class:`Comparison`).

    The replication factors found for the plain network are kept for the re-encoded one,
    so the reuse schedule differs from the replicated one only in the weight codes.
    """
    from .reuse import ARAS_CENTRES, n_clipped, reencode

    centres = ARAS_CENTRES if centres is None else tuple(centres)
    naive = schedule(network, accelerator, "naive", batch=batch, initial=initial)
    overlap = schedule(network, accelerator, "overlap", batch=batch, initial=initial)
    rep = schedule(network, accelerator, "overlap", replication="auto", batch=batch, initial=initial)
    by_centre, best = {}, None
    for c in centres:
        net_c = reencode(network, c, accelerator.weight_bits)
        s = schedule(net_c, accelerator, "overlap", replication=rep.replication, batch=batch, initial=initial)
        by_centre[int(c)] = s.n_pulses
        if best is None or s.n_pulses < best[1].n_pulses:
            best = (int(c), s, net_c)
    c, reuse_s, net_c = best
    return Comparison(naive, overlap, rep, reuse_s, c, n_clipped(network, net_c), by_centre)
