"""Compiled kernels of the nested dissection (private).

Each kernel works on a batch of small dense symmetric matrices: the boundary Schur
complements of the rectangles of one level.  Plain NumPy twins live in
``tests/naive.py`` (``naive_leaf_schur``, ``naive_pair_schur``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._config import NJIT


@njit(**NJIT)
def _eliminate_trailing(C, r):  # pragma: no cover - compiled
    """Eliminate nodes ``r..N-1`` of the Laplacian ``C`` in place (lower triangle only).

    ``C`` is the nodal matrix of a network without ground (rows sum to zero), so each
    pivot is minus the sum of its row's off-diagonal entries over the nodes still
    present (the Grassmann-Taksar-Heyman form): every update then adds numbers of one
    sign and nothing cancels, while ``C[p, p] - ...`` would lose the digits by which the
    wires (~1 S) outweigh the cells (~10 uS).  Afterwards the strict lower triangle of
    ``C[:r, :r]`` holds the off-diagonal entries of the Schur complement; its diagonal
    follows from the zero row sums (:func:`_lower_to_out`).
    """
    N = C.shape[0]
    for p in range(N - 1, r - 1, -1):
        piv = 0.0
        for j in range(p):
            piv -= C[p, j]
        for i in range(p):
            f = C[p, i] / piv
            if f != 0.0:
                for j in range(i):
                    C[i, j] -= f * C[p, j]


@njit(**NJIT)
def _lower_to_out(C, out):  # pragma: no cover - compiled
    """Symmetric ``out`` from the strict lower triangle of ``C``, diagonal from zero row sums."""
    r = out.shape[0]
    for i in range(r):
        out[i, i] = 0.0
    for i in range(r):
        for j in range(i):
            v = C[i, j]
            out[i, j] = v
            out[j, i] = v
            out[i, i] -= v
            out[j, j] -= v


@njit(**NJIT)
def leaf_schur(vals, ea, eb, N, nb):  # pragma: no cover - compiled
    """Boundary Schur complements of a batch of leaves of one shape (Laplacians, see
    :func:`_eliminate_trailing`).

    Parameters
    ----------
    vals : (P, E) float64
        Branch conductances (S) of each leaf.
    ea, eb : (E,) int64
        Local end nodes of each branch; nodes ``0..nb-1`` are the boundary.
    N, nb : int
        Local node count and boundary size.

    Returns
    -------
    (P, nb, nb) float64
        Schur complement of each leaf's nodal matrix onto its boundary.
    """
    P, E = vals.shape
    out = np.empty((P, nb, nb))
    C = np.empty((N, N))
    for t in range(P):
        C[:, :] = 0.0
        for e in range(E):
            g = vals[t, e]
            a = ea[e]
            b = eb[e]
            C[a, a] += g
            C[b, b] += g
            if a > b:
                C[a, b] -= g
            else:
                C[b, a] -= g
        _eliminate_trailing(C, nb)
        _lower_to_out(C, out[t])
    return out


@njit(**NJIT)
def _assemble(Ma, ia, map_a, Mb, ib, map_b, C):  # pragma: no cover - compiled
    C[:, :] = 0.0
    na = map_a.size
    nb = map_b.size
    for i in range(na):
        for j in range(na):
            C[map_a[i], map_a[j]] += Ma[ia, i, j]
    for i in range(nb):
        for j in range(nb):
            C[map_b[i], map_b[j]] += Mb[ib, i, j]


@njit(**NJIT)
def pair_schur(Ma, sel_a, map_a, Mb, sel_b, map_b, N, k):  # pragma: no cover - compiled
    """Merge pairs of neighbouring rectangles and eliminate their shared separator.

    Parameters
    ----------
    Ma, Mb : (Pa, na, na), (Pb, nb, nb) float64
        Boundary matrices (S) of the two children groups.
    sel_a, sel_b : (P,) int64
        Which matrix of ``Ma`` / ``Mb`` each merged pair takes.
    map_a, map_b : int64
        Position of each child boundary node in the merged matrix (size ``N``); the
        separator occupies the last ``k`` positions.

    Returns
    -------
    (P, N - k, N - k) float64
        With ``k = 0``, the assembled matrices; otherwise their Schur complements onto the
        first ``N - k`` nodes.
    """
    P = sel_a.size
    r = N - k
    out = np.empty((P, r, r))
    C = np.empty((N, N))
    for t in range(P):
        _assemble(Ma, sel_a[t], map_a, Mb, sel_b[t], map_b, C)
        if k == 0:
            out[t] = C
        else:
            _eliminate_trailing(C, r)
            _lower_to_out(C, out[t])
    return out
