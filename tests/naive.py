"""Slow, obviously correct NumPy twins of the compiled kernels, for tests only.

``naive_solve`` writes the full nodal system of a linear crossbar as a dense matrix,
middle nodes included, exactly as docs/model.md section 1 draws the circuit, and solves it
with ``numpy.linalg.solve``.  It needs every resistance > 0.
"""

from __future__ import annotations

import numpy as np


def naive_solve(xbar, V):
    """Node voltages and column currents of a linear crossbar by dense nodal analysis.

    Returns ``(currents (k, n), v_top (k, m, n), v_mid (k, m, n), v_bottom (k, m, n))``.
    """
    m, n = xbar.shape
    V = np.atleast_2d(V)
    N = 3 * m * n
    T = lambda i, j: i * n + j  # noqa: E731
    M = lambda i, j: m * n + i * n + j  # noqa: E731
    B = lambda i, j: 2 * m * n + i * n + j  # noqa: E731
    A = np.zeros((N, N))
    rhs = np.zeros((N, m))  # per unit of each source voltage

    def stamp(a, b, g):
        A[a, a] += g
        A[b, b] += g
        A[a, b] -= g
        A[b, a] -= g

    def stamp_fixed(a, g, src):  # branch from node a to a fixed potential
        A[a, a] += g
        if src is not None:
            rhs[a, src] += g

    r_row, r_col = xbar.r_row_segments, xbar.r_col_segments
    r_in, r_out = xbar.r_in_rows, xbar.r_out_columns
    left, right = xbar.drive_ends
    top, bottom = xbar.sense_ends
    tr = xbar.transistor
    r_on = getattr(tr, "r_on", 0.0)
    for i in range(m):
        for j in range(n):
            if tr is None or r_on == 0:  # ideal: memristor T-B, and the equation v_M = v_B
                stamp(T(i, j), B(i, j), xbar.G[i, j])
                A[M(i, j), M(i, j)] = 1.0
                A[M(i, j), B(i, j)] = -1.0
            else:
                stamp(T(i, j), M(i, j), xbar.G[i, j])
                stamp(M(i, j), B(i, j), 1.0 / r_on)
            if j < n - 1:
                stamp(T(i, j), T(i, j + 1), 1.0 / r_row[i, j])
            if i < m - 1:
                stamp(B(i, j), B(i + 1, j), 1.0 / r_col[i, j])
        if left:
            stamp_fixed(T(i, 0), 1.0 / r_in[i], i)
        if right:
            stamp_fixed(T(i, n - 1), 1.0 / r_in[i], i)
    for j in range(n):
        if top:
            stamp_fixed(B(0, j), 1.0 / r_out[j], None)
        if bottom:
            stamp_fixed(B(m - 1, j), 1.0 / r_out[j], None)
    x = np.linalg.solve(A, rhs @ V.T).T  # (k, N)
    v_top = x[:, : m * n].reshape(-1, m, n)
    v_mid = x[:, m * n : 2 * m * n].reshape(-1, m, n)
    v_bottom = x[:, 2 * m * n :].reshape(-1, m, n)
    currents = np.zeros((V.shape[0], n))
    if top:
        currents += v_bottom[:, 0, :] / r_out
    if bottom:
        currents += v_bottom[:, m - 1, :] / r_out
    return currents, v_top, v_mid, v_bottom


def naive_chain_inverses(diag, wire):
    """Dense inverses of the tridiagonal chain matrices (twin of ``chain_inverses``)."""
    p, q = diag.shape
    out = np.empty((p, q, q))
    for a in range(p):
        A = np.diag(diag[a]) - np.diag(wire[a], 1) - np.diag(wire[a], -1)
        out[a] = np.linalg.inv(A)
    return out


def naive_block_solve(K, c, F):
    """Dense solve of the block-tridiagonal system (twin of ``block_factor`` + ``block_solve``)."""
    p, q, _ = K.shape
    A = np.zeros((p * q, p * q))
    for a in range(p):
        A[a * q : (a + 1) * q, a * q : (a + 1) * q] = K[a]
        if a < p - 1:
            A[a * q : (a + 1) * q, (a + 1) * q : (a + 2) * q] = -np.diag(c[a])
            A[(a + 1) * q : (a + 2) * q, a * q : (a + 1) * q] = -np.diag(c[a])
    return np.linalg.solve(A, F.reshape(p * q, -1)).reshape(F.shape)
