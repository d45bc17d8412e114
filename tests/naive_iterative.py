"""Plain NumPy twins of the small-batch kernels (``xbarsolve.solve._iterative_kernels``).

Everything is a dense matrix here: the P chains ``A_P`` (block diagonal, one tridiagonal
block per row ``a``), the S chains ``A_S`` (one per column ``b``) and the Schur matrix
``A_S - G A_P^{-1} G`` of the S nodes, all in the ladder's ``[a, b]`` node order
(index ``a q + b``).
"""

from __future__ import annotations

import numpy as np


def naive_p_matrix(g, wp, tp0, tp1):
    p, q = g.shape
    A = np.zeros((p * q, p * q))
    for a in range(p):
        for b in range(q):
            i = a * q + b
            A[i, i] += g[a, b]
            if b < q - 1:
                A[i, i] += wp[a, b]
                A[i + 1, i + 1] += wp[a, b]
                A[i, i + 1] -= wp[a, b]
                A[i + 1, i] -= wp[a, b]
        A[a * q, a * q] += tp0[a]
        A[a * q + q - 1, a * q + q - 1] += tp1[a]
    return A


def naive_s_matrix(g, c, ts0, ts1):
    p, q = g.shape
    A = np.diag(g.ravel().copy())
    for a in range(p - 1):
        for b in range(q):
            i, j = a * q + b, (a + 1) * q + b
            A[i, i] += c[a, b]
            A[j, j] += c[a, b]
            A[i, j] -= c[a, b]
            A[j, i] -= c[a, b]
    A[np.arange(q), np.arange(q)] += ts0
    A[(p - 1) * q + np.arange(q), (p - 1) * q + np.arange(q)] += ts1
    return A


def naive_schur_matrix(g, wp, tp0, tp1, c, ts0, ts1):
    G = np.diag(g.ravel())
    return naive_s_matrix(g, c, ts0, ts1) - G @ np.linalg.solve(naive_p_matrix(g, wp, tp0, tp1), G)
