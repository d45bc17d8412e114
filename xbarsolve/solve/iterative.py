"""Exact small-batch solver: preconditioned conjugate gradients driven to round-off.

For one (or a few) input vectors on a fresh array, factoring the nodal system costs far
more than the solve.  Here the row chains (each a tridiagonal system) are eliminated
exactly, which leaves the symmetric positive definite Schur system of the column nodes,
``(A_S - G A_P^{-1} G) u = G A_P^{-1} f``; conjugate gradients solve it, preconditioned
by the column chains' own tridiagonal matrices ``A_S`` (a line relaxation made
symmetric).  Every iteration costs O(m n).  The preconditioned system's eigenvalues lie
in ``(1 - rho, 1]``, where ``rho < 1`` measures how strongly the wires couple the two
families (the IR drop), so few iterations reach round-off on arrays with realistic
parasitics; it is run until its error estimate is at round-off, not to an engineering
tolerance.
"""

from __future__ import annotations

import numpy as np

from ..crossbar import Crossbar
from . import _iterative_kernels as _kernels
from .linear import cell_ladder

__all__ = ["solve_small_batch", "prefer_iterative", "MAXITER"]

#: Iteration cap per input vector; reaching it raises (the solve never returns silently
#: inexact currents).
MAXITER = 2000


def solve_small_batch(xbar: Crossbar, V, rtol: float = 1e-12) -> np.ndarray:
    """Column currents (A) for a few input vectors on a fresh linear array, exact to round-off.

    Parameters
    ----------
    xbar : Crossbar
        A linear crossbar with every resistance > 0 ohm.
    V : array_like, shape (m,) or (batch, m)
        Source voltages (V).
    rtol : float
        Relative accuracy of the currents, in [1e-15, 1e-3]; the default is round-off.

    Returns
    -------
    ndarray, shape (batch, n)
        Column currents (A), as ``xbarsolve.solve(xbar, V).currents``.

    Raises
    ------
    RuntimeError
        If the iteration has not converged after :data:`MAXITER` steps.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> from xbarsolve.solve.iterative import solve_small_batch
    >>> xbar = xs.Crossbar(np.full((32, 16), 20e-6), r_row=2.0, r_col=2.0)
    >>> V = np.full(32, 0.2)
    >>> bool(np.allclose(solve_small_batch(xbar, V), xs.solve(xbar, V).currents, rtol=1e-12, atol=0))
    True
    """
    from . import as_batch  # the package imports this module lazily; no import cycle

    if not xbar.is_linear:
        raise TypeError("solve_small_batch needs a linear crossbar; nonlinear arrays are solved by Newton")
    if xbar.has_zero_resistance:
        raise ValueError("solve_small_batch needs every resistance > 0 ohm; zero resistances take the sparse path")
    rtol = float(rtol)
    if not 1e-15 <= rtol <= 1e-3:
        raise ValueError(f"rtol must be in [1e-15, 1e-3]; got {rtol!r}")
    V = as_batch(xbar, V)
    lad, pinv, pf, U, its, _ = schur_cg(xbar, V, rtol)
    if (its >= MAXITER).any():
        raise RuntimeError(f"solve_small_batch did not converge in {MAXITER} iterations; use xbarsolve.solve")
    return lad.ts0 * U[:, 0, :] + lad.ts1 * U[:, -1, :]


def schur_cg(xbar: Crossbar, V: np.ndarray, rtol: float):
    """Conjugate gradients on the column Schur system of the rows-first ladder for the
    vectors ``V`` (batch, m): ``(ladder, pinv, pf, U, iterations, work)`` with the
    column-node voltages ``U`` (batch, m, n), the row chains' pivots ``pinv, pf`` and a
    spare (batch, m, n) array ``work`` (the right-hand side, no longer needed)."""
    lad = cell_ladder(xbar, rows_first=True)  # P = rows (driven), S = columns (sensed)
    p, q = lad.p, lad.q
    pinv, pf, sinv, sf = chain_factors(lad)
    s_term = np.zeros((p, q))
    s_term[0] += lad.ts0
    s_term[-1] += lad.ts1
    # Right-hand side G A_P^{-1} f_P: the sources inject through the row terminals.
    k = V.shape[0]
    rhs = np.empty((k, p, q))
    f = np.zeros((p, q))
    for t in range(k):
        f[:, 0] = lad.tp0 * V[t]
        f[:, -1] += lad.tp1 * V[t]
        _kernels.solve_p_chains(pinv, pf, f, rhs[t])
        rhs[t] *= lad.g
        f[:, -1] = 0.0
    U, its = _kernels.pcg_schur(lad.g, lad.c, s_term, pinv, pf, sinv, sf, rhs, _TOL_FACTOR * rtol, MAXITER)
    return lad, pinv, pf, U, its, rhs


def chain_factors(lad) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pivots ``(inv_alpha, f)`` of the P chains, then of the S chains, all (p, q)."""
    pinv, pf = _kernels.factor_chains(lad.g, lad.wp, lad.tp0, lad.tp1)
    sinv, sf = _kernels.factor_chains(lad.g.T, lad.c.T, lad.ts0, lad.ts1)
    return pinv, pf, np.ascontiguousarray(sinv.T), np.ascontiguousarray(sf.T)


#: The stopping test compares the preconditioned residual with ``rtol`` times this.
_TOL_FACTOR = 1e-2


def prefer_iterative(m: int, n: int, batch: int) -> bool:
    """Whether :func:`solve_small_batch` beats factoring a fresh m x n array for ``batch`` vectors.

    For an array whose transfer matrix is not cached yet.  Measured (CPU time, this
    project's 2-core machine; ``benchmarks/bench_large.py`` records the single-vector
    case): the iteration costs one fresh direct solve (the faster of the block
    factorization and the dissection's ``T``) at about 11 vectors on 32 x 32, 25 on
    64 x 64, 20 on 128 x 128 and 256 x 256, 22 on 576 x 64 and 8 on 144 x 16; hence
    ``batch <= min(16, max(1, min(m, n) // 3))``.
    """
    return batch <= min(16, max(1, min(m, n) // 3))
