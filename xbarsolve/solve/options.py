"""Options of the Newton solver: :class:`NewtonOptions`, validated once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

__all__ = ["NewtonOptions", "Iteration", "Rebuild", "OnFailure"]

Iteration = Literal["auto", "lines", "chord", "newton"]
Rebuild = Literal["auto", "once", "never"]
OnFailure = Literal["raise", "flag"]


def _real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _positive(value) -> bool:
    return _real(value) and bool(np.isfinite(value)) and value > 0


@dataclass(frozen=True)
class NewtonOptions:
    """How :func:`xbarsolve.solve.newton.solve_newton` iterates (validated on construction).

    Every field is also a keyword argument of ``xs.solve`` and ``solve_newton``, which
    build a ``NewtonOptions`` from them; or pass one as ``options=``.

    Parameters
    ----------
    iteration : {"auto", "lines", "chord", "newton"}
        ``"lines"``: nonlinear line relaxation (Newton on one wire family at a time,
        ``O(m n)`` per sweep, no factorization; fast where the wires couple the families
        weakly, as in 64 x 64 tiles); ``"chord"``: shared factorization for the batch
        (linear convergence at the rate of the cells' conductance spread); ``"newton"``:
        exact Newton per vector (quadratic convergence, one factorization per iteration
        and vector); ``"auto"``: lines, then the chord iteration for the vectors whose
        line relaxation stalls or does not converge within ``lines_iterations`` sweeps,
        then exact Newton for those the chord iteration has not converged in
        ``chord_iterations`` steps.
    rtol : float
        Relative tolerance (> 0); the default ``vtol`` is ``rtol * max(max|V|, 1 mV)``
        for each vector.
    vtol : float, optional
        Voltage tolerance (V).  A vector has converged when (1) the KCL residual of
        every node divided by the node's total small-signal conductance (the correction
        that node alone would need) and (2) the largest update computed at that point
        (chord; for exact Newton the last update taken) are both at most ``vtol``.
    itol : float, optional
        Also require the largest KCL residual (A) at any node to be at most ``itol``.
    max_iterations : int
        Iteration limit of exact Newton (per vector, >= 1).
    lines_iterations : int
        Sweep limit of the line relaxation (>= 1).
    chord_iterations : int
        Iteration limit of the chord iteration (>= 0).
    rebuild : {"auto", "once", "never"}
        The chord iteration starts with the factorization at 0 V; ``"once"`` replaces it
        after the warm start by one built from the batch-averaged cell Jacobian (shared
        by all chunks), ``"auto"`` does so when a cost model (operation counts, measured
        contraction rates; no wall-clock timings, so results are reproducible) predicts
        a saving, ``"never"`` keeps the 0 V one.
    chunk_size : int, optional
        Vectors iterated together (>= 1); bounds memory to about
        ``16 * chunk_size * m * n`` doubles.  The default is 32 (64 for cells with a
        middle node, a transistor that is not a short, on arrays of up to 65536 cells:
        their residual kernel's fixed cost per cell is amortised over more vectors,
        0.82-0.95x the time on 576 x 64, 288 x 32 and 128 x 128), or more for small
        arrays (``2**18 / (m n)`` vectors, ~260k cells; measured 13 % faster than
        ``2**17`` and ``2**19`` on the MNIST CNN's tiles): 32 keeps a chunk's arrays near the size of the L3 cache for
        two-terminal cells (64 was 1.08-1.10x slower on 128 x 128 and 256 x 256) and the
        block GEMMs (q x q times q x 32) below OpenBLAS's threading threshold; on small
        arrays (a 25 x 21 tile) the per-chunk Python overhead of a few hundred
        microseconds would dominate.
    on_failure : {"raise", "flag"}
        ``"raise"``: raise :class:`~xbarsolve.errors.ConvergenceError` naming the first
        vector that did not converge; ``"flag"``: return with ``converged`` False for it
        (its currents are the last iterate).
    callback : callable, optional
        ``callback(vectors, residuals)`` after each residual evaluation, with the batch
        indices of the vectors iterated and their largest KCL residual (A).  Exact
        Newton calls it once per iteration per vector (residual history).
    threads : int, optional
        Threads of the compiled kernels and of BLAS (>= 1).  Default: Numba's setting,
        except 1 when the machine is oversubscribed (1-minute load average above the
        number of CPUs): there a parallel region waits for descheduled workers, ~30 ms
        per kernel call on a busy 2-core machine, far more than it saves.

    Examples
    --------
    >>> from xbarsolve.solve import NewtonOptions
    >>> NewtonOptions(iteration="chord", rtol=1e-10).chord_iterations
    25
    >>> NewtonOptions(rebuild="sometimes")
    Traceback (most recent call last):
    ...
    ValueError: rebuild must be 'auto', 'once' or 'never'; got 'sometimes'
    """

    iteration: Iteration = "auto"
    rtol: float = 1e-8
    vtol: float | None = None
    itol: float | None = None
    max_iterations: int = 50
    lines_iterations: int = 30
    chord_iterations: int = 25
    rebuild: Rebuild = "auto"
    chunk_size: int | None = None
    on_failure: OnFailure = "raise"
    callback: Callable[[np.ndarray, np.ndarray], None] | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("iteration", ("auto", "lines", "chord", "newton")), ("rebuild", ("auto", "once", "never")),
                              ("on_failure", ("raise", "flag"))):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be {', '.join(map(repr, allowed[:-1]))} or {allowed[-1]!r}; got {value!r}")
        if not _positive(self.rtol):
            raise ValueError(f"rtol must be > 0; got {self.rtol!r}")
        for name, lo, optional in (("max_iterations", 1, False), ("lines_iterations", 1, False),
                                   ("chord_iterations", 0, False), ("chunk_size", 1, True), ("threads", 1, True)):
            value = getattr(self, name)
            if optional and value is None:
                continue
            if not _real(value) or not np.isfinite(value) or int(value) != value or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}{' or None' if optional else ''}; got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("vtol", "itol"):
            value = getattr(self, name)
            if value is not None and not _positive(value):
                raise ValueError(f"{name} must be > 0 (or None for the default); got {value!r}")
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable or None; got {self.callback!r}")

    def replace(self, **changes) -> "NewtonOptions":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def tolerances(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-vector voltage (V) and KCL-current (A) tolerances for inputs ``V`` (k, m)."""
        k = V.shape[0]
        vtol = self.rtol * np.maximum(np.abs(V).max(axis=1), 1e-3) if self.vtol is None else np.full(k, float(self.vtol))
        itol = np.full(k, np.inf if self.itol is None else float(self.itol))
        return vtol, itol
