"""Node voltages of a linear crossbar for its read power: the cheaper exact full solve.

:func:`full_solution` returns what ``solve(xbar, V, full=True)`` returns (node voltages and
cell currents), by one of two exact solvers:

- a few vectors: the column-node voltages by the preconditioned conjugate gradients of
  :mod:`xbarsolve.solve.iterative` (row chains eliminated exactly, the column Schur system
  iterated until its error estimate stops decreasing, i.e. to round-off), then the row-node
  voltages by one tridiagonal solve per row chain.  ``O(iterations x m n)`` per vector and
  no factorization: 0.6 s instead of 18 s for 5 vectors on 800 x 501 (measured, loaded
  2-core machine), 2 ms instead of 20-48 ms on 64 x 64;
- many vectors: the block factorization (:class:`xbarsolve.solve.linear.Factorization`),
  ``O(max(m, n) min(m, n)^3)`` once and ``O(max(m, n) min(m, n)^2)`` per vector.

Zero resistances take the sparse path (``solve(..., method="sparse")``).
"""

from __future__ import annotations

import numpy as np

from ..crossbar import Crossbar
from ..results import SolveResult

__all__ = ["full_solution", "prefer_iteration"]


def prefer_iteration(m: int, n: int, batch: int) -> bool:
    """Whether the iteration (:func:`full_solution`'s first solver) beats the block
    factorization for a full solve of ``batch`` vectors on a fresh m x n array.

    Measured (``benchmarks/bench_cost.py --fields``, loaded 2-core machine, 1 ohm wires,
    4-17 iterations): the two cost the same at about ``min(m, n)`` vectors on 64 x 64 and
    500 x 51; the iteration count grows with the wire resistance, hence half of that.
    """
    return batch <= max(1, min(m, n) // 2)


def full_solution(xbar: Crossbar, V: np.ndarray, *, method: str = "auto") -> SolveResult:
    """Node voltages and cell currents of a linear crossbar for the inputs ``V`` (V),
    shape (batch, m), exact to round-off.

    Parameters
    ----------
    xbar : Crossbar
        A linear array.
    V : ndarray, shape (batch, m)
        Source voltages (V).
    method : {"auto", "iterative", "block"}
        ``"auto"``: the iteration for at most :func:`prefer_iteration` vectors, otherwise
        the block factorization.  Zero resistances always take the sparse path.
    """
    from ..solve import solve
    from ..topology import topology

    if method not in ("auto", "iterative", "block"):
        raise ValueError(f"method must be 'auto', 'iterative' or 'block'; got {method!r}")
    V = np.asarray(V, dtype=np.float64)
    topo = topology(xbar)
    if topo.has_zero_resistance or not topo.is_ladder:
        return solve(xbar, V, full=True, method="sparse")
    if method == "iterative" or (method == "auto" and prefer_iteration(xbar.m, xbar.n, V.shape[0])):
        res = _iterative_full(xbar, V)
        if res is not None:
            return res
    return solve(xbar, V, full=True, method="block")


def _iterative_full(xbar: Crossbar, V: np.ndarray) -> SolveResult | None:
    """:func:`full_solution` by conjugate gradients; None if some vector did not converge
    in :data:`xbarsolve.solve.iterative.MAXITER` iterations (the caller factors instead)."""
    from ..solve import _iterative_kernels as kernels
    from ..solve.iterative import _TOL_FACTOR, MAXITER, chain_factors
    from ..solve.linear import _with_cells, cell_ladder

    lad = cell_ladder(xbar, rows_first=True)  # P = rows (top nodes), S = columns (bottom nodes)
    p, q = lad.p, lad.q
    pinv, pf, sinv, sf = chain_factors(lad)
    s_term = np.zeros((p, q))
    s_term[0] += lad.ts0
    s_term[-1] += lad.ts1
    k = V.shape[0]
    rhs = np.empty((k, p, q))
    f = np.zeros((p, q))
    for t in range(k):  # G A_P^{-1} f_P: the sources inject through the row terminals
        f[:, 0] = lad.tp0 * V[t]
        f[:, -1] += lad.tp1 * V[t]
        kernels.solve_p_chains(pinv, pf, f, rhs[t])
        rhs[t] *= lad.g
        f[:, -1] = 0.0
    # The smallest tolerance solve_small_batch takes: the iteration stops when its error
    # estimate stops decreasing (round-off).
    U, its = kernels.pcg_schur(lad.g, lad.c, s_term, pinv, pf, sinv, sf, rhs, _TOL_FACTOR * 1e-15, MAXITER)
    if (its >= MAXITER).any():
        return None
    X = rhs  # reused: row-node voltages A_P^{-1} (G u + f_P)
    for t in range(k):
        f = lad.g * U[t]
        f[:, 0] += lad.tp0 * V[t]
        f[:, -1] += lad.tp1 * V[t]
        kernels.solve_p_chains(pinv, pf, f, X[t])
    currents = lad.ts0 * U[:, 0, :] + lad.ts1 * U[:, -1, :]
    return _with_cells(xbar, V, currents, X, U, "iterative")
