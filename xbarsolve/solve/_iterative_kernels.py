"""Compiled kernels of the exact small-batch solver (private).

The row chains (P, length q) are eliminated exactly with a tridiagonal solve; the
Schur system that remains on the column chains (S, length p) is solved by conjugate
gradients preconditioned with the column chains' own tridiagonal matrices.  Arrays use
the ladder layout of :mod:`xbarsolve.solve.linear` (``[a, b]``: P chain ``a``, S chain
``b``).  Plain NumPy twins: ``tests/naive_iterative.py``.

The tridiagonal pivots are computed from their "excess" over the outgoing wire
(``alpha_k = e_k + w_k``, ``e_k = g_k + w_{k-1} e_{k-1} / alpha_{k-1}``), which never
subtracts: wires are 10^4-10^6 times the cells, and ``d_k - w_{k-1}^2 / alpha_{k-1}``
would lose those digits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._config import NJIT


@njit(**NJIT)
def factor_chains(g, w, t0, t1):  # pragma: no cover - compiled
    """Pivots of tridiagonal chains running along the last axis: ``(inv_alpha, f)``.

    Chain ``a`` (length q) has diagonal ``g[a] + wires + terminals t0[a] (position 0),
    t1[a] (position q-1)`` and off-diagonal ``-w[a]`` (``w`` is (p, q-1));
    ``f = w / alpha`` with ``f[:, q-1] = 0``.  The S chains are factored as
    ``factor_chains(g.T, c.T, ts0, ts1)``.
    """
    p, q = g.shape
    inv_alpha = np.empty((p, q))
    f = np.zeros((p, q))
    for a in range(p):
        e = 0.0
        for b in range(q):
            e = g[a, b] + (t0[a] if b == 0 else w[a, b - 1] * e * inv_alpha[a, b - 1])
            if b == q - 1:
                e += t1[a]
            alpha = e + (w[a, b] if b < q - 1 else 0.0)
            inv_alpha[a, b] = 1.0 / alpha
            if b < q - 1:
                f[a, b] = w[a, b] * inv_alpha[a, b]
    return inv_alpha, f


@njit(**NJIT)
def solve_p_chains(inv_alpha, f, r, out):  # pragma: no cover - compiled
    """``out = A_P^{-1} r`` for (p, q) ``r``, all P chains at once (chains along ``b``).

    Sweeps eight chains side by side (independent recurrences, cache lines reused along
    ``b``); ``out`` may be ``r``.
    """
    p, q = r.shape
    for a0 in range(0, p, 8):
        a1 = min(a0 + 8, p)
        for a in range(a0, a1):
            out[a, 0] = r[a, 0]
        for b in range(1, q):
            for a in range(a0, a1):
                out[a, b] = r[a, b] + f[a, b - 1] * out[a, b - 1]
        for a in range(a0, a1):
            out[a, q - 1] *= inv_alpha[a, q - 1]
        for b in range(q - 2, -1, -1):
            for a in range(a0, a1):
                out[a, b] = out[a, b] * inv_alpha[a, b] + f[a, b] * out[a, b + 1]


@njit(**NJIT)
def solve_s_chains(inv_alpha, f, r, out):  # pragma: no cover - compiled
    """``out = A_S^{-1} r`` for (p, q) ``r``, all S chains at once (chains along ``a``)."""
    p, q = r.shape
    out[0] = r[0]
    for a in range(1, p):
        for b in range(q):
            out[a, b] = r[a, b] + f[a - 1, b] * out[a - 1, b]
    for b in range(q):
        out[p - 1, b] *= inv_alpha[p - 1, b]
    for a in range(p - 2, -1, -1):
        for b in range(q):
            out[a, b] = out[a, b] * inv_alpha[a, b] + f[a, b] * out[a + 1, b]


@njit(**NJIT)
def apply_schur(g, c, s_term, pinv, pf, u, tmp, y):  # pragma: no cover - compiled
    """``y = (A_S - G A_P^{-1} G) u``: the nodal matrix of the S nodes once the P chains
    are eliminated.  ``s_term`` (p, q) holds the S terminal conductances; ``tmp`` is scratch."""
    p, q = u.shape
    for a in range(p):
        for b in range(q):
            tmp[a, b] = g[a, b] * u[a, b]
    solve_p_chains(pinv, pf, tmp, tmp)
    for a in range(p):
        for b in range(q):
            ua = u[a, b]
            v = (g[a, b] + s_term[a, b]) * ua - g[a, b] * tmp[a, b]
            if a > 0:
                v += c[a - 1, b] * (ua - u[a - 1, b])
            if a < p - 1:
                v += c[a, b] * (ua - u[a + 1, b])
            y[a, b] = v


@njit(**NJIT)
def _dot(x, y):  # pragma: no cover - compiled
    acc = 0.0
    for a in range(x.shape[0]):
        for b in range(x.shape[1]):
            acc += x[a, b] * y[a, b]
    return acc


@njit(**NJIT)
def _absmax(x):  # pragma: no cover - compiled
    acc = 0.0
    for a in range(x.shape[0]):
        for b in range(x.shape[1]):
            acc = max(acc, abs(x[a, b]))
    return acc


@njit(**NJIT)
def pcg_schur(g, c, s_term, pinv, pf, sinv, sf, rhs, tol, maxiter):  # pragma: no cover - compiled
    """Conjugate gradients on ``(A_S - G A_P^{-1} G) u = rhs`` preconditioned by ``A_S``.

    Parameters
    ----------
    rhs : (k, p, q) float64
        Right-hand sides (A), one per input vector.
    tol : float
        Stop when the preconditioned residual (an estimate of the error, V) is below
        ``tol`` times the largest ``|u|``, or when it has not decreased for three steps
        (round-off reached).
    maxiter : int
        At most this many iterations per vector.

    Returns
    -------
    u : (k, p, q)
        S-node voltages (V).
    iterations : (k,) int64
        ``maxiter`` where the iteration did not converge.
    """
    k, p, q = rhs.shape
    U = np.zeros((k, p, q))
    its = np.zeros(k, dtype=np.int64)
    r = np.empty((p, q))
    z = np.empty((p, q))
    d = np.empty((p, q))
    y = np.empty((p, q))
    tmp = np.empty((p, q))
    for t in range(k):
        u = U[t]
        solve_s_chains(sinv, sf, rhs[t], u)  # start from the preconditioner's own solution
        apply_schur(g, c, s_term, pinv, pf, u, tmp, y)
        for a in range(p):
            for b in range(q):
                r[a, b] = rhs[t, a, b] - y[a, b]
        solve_s_chains(sinv, sf, r, z)
        d[:, :] = z
        rz = _dot(r, z)
        best = np.inf
        stalled = 0
        its[t] = maxiter
        for it in range(maxiter):
            zmax = _absmax(z)
            if zmax <= tol * _absmax(u) or rz <= 0.0:
                its[t] = it
                break
            if zmax < best:
                best = zmax
                stalled = 0
            else:
                stalled += 1
                if stalled >= 3:
                    its[t] = it
                    break
            apply_schur(g, c, s_term, pinv, pf, d, tmp, y)
            alpha = rz / _dot(d, y)
            for a in range(p):
                for b in range(q):
                    u[a, b] += alpha * d[a, b]
                    r[a, b] -= alpha * y[a, b]
            solve_s_chains(sinv, sf, r, z)
            rz_new = _dot(r, z)
            beta = rz_new / rz
            for a in range(p):
                for b in range(q):
                    d[a, b] = z[a, b] + beta * d[a, b]
            rz = rz_new
    return U, its
