"""Node voltages of a linear crossbar for its read power: the cheaper exact full solve.

:func:`full_power` returns the read power of a batch (what ``solution_power`` of
``solve(xbar, V, full=True)`` returns) and :func:`full_solution` the node voltages and cell
currents, by one of two exact solvers:

- a few vectors: the column-node voltages by the preconditioned conjugate gradients of
  :mod:`xbarsolve.solve.iterative` (row chains eliminated exactly, the column Schur system
  iterated until its error estimate stops decreasing, i.e. to round-off), then the row-node
  voltages by one tridiagonal solve per row chain.  ``O(iterations x m n)`` per vector and
  no factorization: 0.6 s instead of 18 s for 5 vectors on 800 x 501 (measured, loaded
  2-core machine), 1.6 ms instead of 11-17 ms for 4 vectors on 64 x 64;
- many vectors: the block factorization (:class:`xbarsolve.solve.linear.Factorization`),
  ``O(max(m, n) min(m, n)^3)`` once and ``O(max(m, n) min(m, n)^2)`` per vector.

Zero resistances take the sparse path (``solve(..., method="sparse")``).

:func:`full_power` reduces the node voltages in ladder order (:func:`ladder_power`:
``g * dv**2`` of the cells, the wire segments along both chain families and their
terminals) instead of building the node-numbered arrays of ``solution_power``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ..crossbar import Crossbar
from ..results import SolveResult
from ..topology import topology
from .power import TERMS, ReadPower

__all__ = ["full_power", "full_solution", "ladder_power", "prefer_iteration"]

Method = Literal["auto", "iterative", "block"]


def prefer_iteration(m: int, n: int, batch: int) -> bool:
    """Whether the iteration (the first solver above) beats the block factorization for a
    full solve of ``batch`` vectors on a fresh m x n array.

    Measured (``benchmarks/bench_cost.py --fields``, loaded 2-core machine, 1 and 2.5 ohm
    wires and drivers; ``q = min(m, n)``, ``p = max(m, n)``): the iteration is 3-20x faster
    for 4 vectors and breaks even at about ``q / 2`` to ``q`` vectors on 64 x 64 and
    128 x 128, but at 10-16 on 576 x 64 (the longer chains need more iterations while the
    factorization stays ``O(p q^3)``); hence ``batch <= (q / 2) sqrt(q / p)``.
    """
    q, p = min(m, n), max(m, n)
    return batch <= max(1, int(q / 2 * math.sqrt(q / p)))


def _check(method: str) -> None:
    if method not in ("auto", "iterative", "block"):
        raise ValueError(f"method must be 'auto', 'iterative' or 'block'; got {method!r}")


def _iterates(method: str, xbar: Crossbar, batch: int) -> bool:
    """Whether a full solve of ``batch`` vectors tries the iteration first."""
    return method == "iterative" or (method == "auto" and prefer_iteration(xbar.m, xbar.n, batch))


def _use_sparse(xbar: Crossbar) -> bool:
    topo = topology(xbar)
    return topo.has_zero_resistance or not topo.is_ladder


def full_solution(xbar: Crossbar, V: np.ndarray, *, method: Method = "auto") -> SolveResult:
    """Node voltages and cell currents of a linear crossbar for the inputs ``V`` (V),
    shape (batch, m), exact to round-off (as ``solve(xbar, V, full=True)``).

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
    from ..solve.linear import _with_cells

    _check(method)
    V = np.asarray(V, dtype=np.float64)
    if _use_sparse(xbar):
        return solve(xbar, V, full=True, method="sparse")
    if _iterates(method, xbar, V.shape[0]):
        fields = _iterative_fields(xbar, V)
        if fields is not None:
            lad, X, U = fields
            currents = lad.ts0 * U[:, 0, :] + lad.ts1 * U[:, -1, :]
            return _with_cells(xbar, V, currents, X, U, "iterative")
    return solve(xbar, V, full=True, method="block")


def full_power(xbar: Crossbar, V: np.ndarray, *, method: Method = "auto") -> ReadPower:
    """Read power (W) of a linear crossbar for the inputs ``V`` (V), shape (batch, m):
    ``solution_power(xbar, full_solution(xbar, V))`` to round-off, from the node voltages
    in ladder order (:func:`ladder_power`).  ``method`` as in :func:`full_solution`."""
    from ..solve.linear import factorize
    from .power import solution_power

    _check(method)
    V = np.asarray(V, dtype=np.float64)
    if _use_sparse(xbar):
        return solution_power(xbar, full_solution(xbar, V))
    topology(xbar).require_ladder("read_power")
    step = max(1, _CHUNK_DOUBLES // (5 * xbar.m * xbar.n))  # vectors per part: bounded temporaries
    parts = [V[s:s + step] for s in range(0, V.shape[0], step)] or [V]
    if _iterates(method, xbar, V.shape[0]):
        out = []
        for W in parts:
            fields = _iterative_fields(xbar, W)
            if fields is None:
                break
            lad, X, U = fields
            out.append(ladder_power(lad, W, X.transpose(1, 2, 0), U.transpose(1, 2, 0)))
        else:
            return _concatenate(out)
    f = factorize(xbar)
    return _concatenate([ladder_power(f.ladder, W, *f.node_voltages(W)) for W in parts])


#: Temporaries of one part of :func:`full_power`'s batch (doubles; 256 MB).
_CHUNK_DOUBLES = 1 << 25


def _concatenate(parts: list[ReadPower]) -> ReadPower:
    if len(parts) == 1:
        return parts[0]
    return ReadPower(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in ("total", *TERMS)})


def ladder_power(lad, V: np.ndarray, X: np.ndarray, U: np.ndarray) -> ReadPower:
    """Read power (W) from node voltages in ladder order.

    Parameters
    ----------
    lad : xbarsolve.solve.linear.CellLadder
        The crossbar's ladder with its cell conductances ``g`` (p, q).
    V : ndarray, shape (batch, m)
        Source voltages (V).
    X, U : ndarray, shape (p, q, batch)
        P-chain and S-chain node voltages (V).  Rows first: the P chains are the rows,
        driven from their terminals (potential ``V``), the S chains the columns, sensed at
        theirs (0 V); otherwise the other way round.
    """
    VT = V.T  # (m, batch)
    drive_p = lad.rows_first  # the P chains are the rows, driven from their terminals
    d = np.subtract(X, U) if drive_p else np.subtract(U, X)  # cell voltage, top minus bottom
    gd = d * lad.g[:, :, None]  # cell currents
    cells = np.einsum("pqk,pqk->k", gd, d)
    # Source power sum_i V_i sum_j I_ij: the cells' row currents times the row voltages.
    total = np.einsum("pk,pk->k", gd.sum(axis=1), VT) if drive_p else np.einsum("qk,qk->k", gd.sum(axis=0), VT)
    del d, gd
    dw = np.diff(X, axis=1)
    p_wires = np.einsum("pqk,pqk,pq->k", dw, dw, lad.wp)
    dw = np.diff(U, axis=0)
    s_wires = np.einsum("pqk,pqk,pq->k", dw, dw, lad.c)
    del dw
    p_src = VT if drive_p else 0.0  # the P terminals' far side: the sources, or the sense's 0 V
    s_src = 0.0 if drive_p else VT
    p_term = np.square(p_src - X[:, 0]).T @ lad.tp0 + np.square(p_src - X[:, -1]).T @ lad.tp1
    s_term = np.square(s_src - U[0]).T @ lad.ts0 + np.square(s_src - U[-1]).T @ lad.ts1
    if drive_p:
        return ReadPower(total=total, cells=cells, row_wires=p_wires, column_wires=s_wires, drivers=p_term, sense=s_term)
    return ReadPower(total=total, cells=cells, row_wires=s_wires, column_wires=p_wires, drivers=s_term, sense=p_term)


def _iterative_fields(xbar: Crossbar, V: np.ndarray):
    """``(ladder, X, U)``: the rows-first ladder and the row- and column-node voltages (V),
    (batch, m, n) each, by conjugate gradients; None if some vector did not converge in
    :data:`xbarsolve.solve.iterative.MAXITER` iterations (the caller factors instead)."""
    from ..solve import _iterative_kernels as kernels
    from ..solve.iterative import MAXITER, schur_cg

    # The smallest tolerance solve_small_batch takes: the iteration stops when its error
    # estimate stops decreasing (round-off).
    lad, pinv, pf, U, its, rhs = schur_cg(xbar, V, 1e-15)
    if (its >= MAXITER).any():
        return None
    k = V.shape[0]
    X = rhs  # reused: row-node voltages A_P^{-1} (G u + f_P)
    for t in range(k):
        f = lad.g * U[t]
        f[:, 0] += lad.tp0 * V[t]
        f[:, -1] += lad.tp1 * V[t]
        kernels.solve_p_chains(pinv, pf, f, X[t])
    return lad, X, U
