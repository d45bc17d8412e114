"""Compiled kernels of the cost package (twins in ``tests/naive_cost.py``)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .._config import NJIT_FUNCTION_ARGS


@njit(**NJIT_FUNCTION_ARGS)
def junction_currents(junction, v_mid, v_bottom, p):  # pragma: no cover - compiled
    """Current (A) from the middle and bottom node of every cell into the grounded bulk.

    ``junction(v, p) -> (i, g)`` is a transistor's compiled junction law; ``v_mid`` and
    ``v_bottom`` have shape (batch, m, n).  Returns ``j(v_mid) + j(v_bottom)`` per cell.
    """
    k, m, n = v_mid.shape
    out = np.empty((k, m, n))
    for a in range(k):
        for i in range(m):
            for j in range(n):
                out[a, i, j] = junction(v_mid[a, i, j], p)[0] + junction(v_bottom[a, i, j], p)[0]
    return out
