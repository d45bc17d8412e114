"""Compiled kernels of the exact linear solver (private).

Kernels take arrays and scalars only.  Each has a plain NumPy twin in ``tests/naive.py``
that the tests compare it with.

The solver eliminates one family of wire chains ("P" chains, each a symmetric
tridiagonal system) and solves the block-tridiagonal Schur system that remains on the
other family ("S" chains) by block Gaussian elimination with explicit block inverses
(docs/model.md section 3).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._config import NJIT


@njit(**NJIT)
def chain_inverses(diag, wire):  # pragma: no cover - compiled
    """Inverses of many symmetric tridiagonal matrices.

    Parameters
    ----------
    diag : (p, q) float64
        Diagonals (S).
    wire : (p, q-1) float64
        Positive couplings (S); the off-diagonal entries are ``-wire``.

    Returns
    -------
    (p, q, q) float64
        ``W[a] = inv(tridiag(-wire[a], diag[a], -wire[a]))``.

    Notes
    -----
    Uses the pivots of elimination from the top (``alpha``) and from the bottom
    (``beta``): ``W[k, k] = 1 / (alpha_k + beta_k - d_k)`` and, away from the diagonal,
    ``W[i, j] = W[i+1, j] * w_i / alpha_i`` (i < j).  Every ratio is below one for the
    diagonally dominant matrices of a resistive network, so nothing overflows.
    """
    p, q = diag.shape
    W = np.empty((p, q, q))
    for a in range(p):
        d = diag[a]
        w = wire[a]
        alpha = np.empty(q)
        beta = np.empty(q)
        alpha[0] = d[0]
        for k in range(1, q):
            alpha[k] = d[k] - w[k - 1] * w[k - 1] / alpha[k - 1]
        beta[q - 1] = d[q - 1]
        for k in range(q - 2, -1, -1):
            beta[k] = d[k] - w[k] * w[k] / beta[k + 1]
        Wa = W[a]
        for j in range(q):
            Wa[j, j] = 1.0 / (alpha[j] + beta[j] - d[j])
            for i in range(j - 1, -1, -1):
                Wa[i, j] = Wa[i + 1, j] * w[i] / alpha[i]
                Wa[j, i] = Wa[i, j]
    return W


@njit(**NJIT)
def schur_blocks(W, g, s_diag):  # pragma: no cover - compiled
    """Diagonal blocks of the Schur system on the S nodes.

    ``K[a] = diag(g[a] + s_diag[a]) - diag(g[a]) W[a] diag(g[a])``: the cells of P chain
    ``a`` seen from the S nodes once the chain is eliminated, plus the S chains' own
    wire and terminal conductances ``s_diag``.
    """
    p, q = g.shape
    K = np.empty((p, q, q))
    for a in range(p):
        for i in range(q):
            gi = g[a, i]
            for j in range(q):
                K[a, i, j] = -gi * W[a, i, j] * g[a, j]
            K[a, i, i] += gi + s_diag[a, i]
    return K


@njit(**NJIT)
def block_factor(K, c):  # pragma: no cover - compiled
    """Block elimination of the symmetric block-tridiagonal system.

    The system has diagonal blocks ``K[a]`` (q x q) and off-diagonal blocks
    ``-diag(c[a])`` between blocks ``a`` and ``a+1``.  Returns the inverses of the
    eliminated pivot blocks, ``Kinv[a] = inv(K[a] - diag(c[a-1]) Kinv[a-1] diag(c[a-1]))``.
    Overwrites ``K``.
    """
    p, q, _ = K.shape
    Kinv = np.empty_like(K)
    Kinv[0] = np.linalg.inv(K[0])
    for a in range(1, p):
        prev = Kinv[a - 1]
        ca = c[a - 1]
        Ka = K[a]
        for i in range(q):
            ci = ca[i]
            for j in range(q):
                Ka[i, j] -= ci * prev[i, j] * ca[j]
        Kinv[a] = np.linalg.inv(Ka)
    return Kinv


@njit(**NJIT)
def block_solve(Kinv, c, F):  # pragma: no cover - compiled
    """Solve the factored block system for many right-hand sides.

    Parameters
    ----------
    Kinv : (p, q, q)
        Output of :func:`block_factor`.
    c : (p-1, q)
        Couplings between neighbouring blocks.
    F : (p, q, k)
        Right-hand sides (A), overwritten by the forward sweep.

    Returns
    -------
    (p, q, k)
        Solution (V).
    """
    p, q, k = F.shape
    for a in range(1, p):
        t = Kinv[a - 1] @ F[a - 1]
        for i in range(q):
            ci = c[a - 1, i]
            for b in range(k):
                F[a, i, b] += ci * t[i, b]
    U = np.empty_like(F)
    U[p - 1] = Kinv[p - 1] @ F[p - 1]
    for a in range(p - 2, -1, -1):
        r = F[a].copy()
        for i in range(q):
            ci = c[a, i]
            for b in range(k):
                r[i, b] += ci * U[a + 1, i, b]
        U[a] = Kinv[a] @ r
    return U


@njit(**NJIT)
def block_solve_last(Kinv, c, F_last):  # pragma: no cover - compiled
    """:func:`block_solve` for a right-hand side that is zero outside the last block.

    The forward sweep is then empty; only the back-substitution runs.  ``F_last`` is
    (q, k).
    """
    p, q, _ = Kinv.shape
    k = F_last.shape[1]
    U = np.empty((p, q, k))
    U[p - 1] = Kinv[p - 1] @ F_last
    for a in range(p - 2, -1, -1):
        r = np.empty((q, k))
        for i in range(q):
            ci = c[a, i]
            for b in range(k):
                r[i, b] = ci * U[a + 1, i, b]
        U[a] = Kinv[a] @ r
    return U


@njit(**NJIT)
def project_blocks(H, Y):  # pragma: no cover - compiled
    """``M[a, :] = H[a] @ Y[a]`` for every block ``a``: (p, q) x (p, q, k) -> (p, k)."""
    p, q = H.shape
    k = Y.shape[2]
    M = np.zeros((p, k))
    for a in range(p):
        for i in range(q):
            h = H[a, i]
            for b in range(k):
                M[a, b] += h * Y[a, i, b]
    return M
