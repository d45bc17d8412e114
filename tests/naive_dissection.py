"""Plain NumPy twins of the nested-dissection kernels (``xbarsolve.solve._dissection_kernels``)."""

from __future__ import annotations

import numpy as np


def schur_onto_first(C, r):
    """Schur complement of the dense symmetric ``C`` onto its first ``r`` nodes."""
    X = np.linalg.solve(C[r:, r:], C[r:, :r])
    return C[:r, :r] - C[:r, r:] @ X


def naive_leaf_schur(vals, ea, eb, N, nb):
    """Twin of ``leaf_schur``: stamp each branch into a dense nodal matrix, then eliminate."""
    out = []
    for v in vals:
        C = np.zeros((N, N))
        for g, a, b in zip(v, ea, eb):
            C[a, a] += g
            C[b, b] += g
            C[a, b] -= g
            C[b, a] -= g
        out.append(schur_onto_first(C, nb))
    return np.array(out)


def naive_pair_schur(Ma, sel_a, map_a, Mb, sel_b, map_b, N, k):
    """Twin of ``pair_schur``: add the two children into the merged matrix, eliminate the last ``k``."""
    out = []
    for ia, ib in zip(sel_a, sel_b):
        C = np.zeros((N, N))
        C[np.ix_(map_a, map_a)] += Ma[ia]
        C[np.ix_(map_b, map_b)] += Mb[ib]
        out.append(schur_onto_first(C, N - k) if k else C)
    return np.array(out)
