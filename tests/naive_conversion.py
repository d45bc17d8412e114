"""Slow, obviously correct NumPy/SciPy twins of ``xbarsolve._conversion_kernels`` (tests only)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq


def _chain(taps, r_seg, v_src, g_a, g_b):
    """Node voltages of a resistive chain: segment resistances ``r_seg`` (len k-1), current
    ``taps[k]`` drawn out of node k, and a source ``v_src`` behind conductance ``g_a`` at
    node 0 and ``g_b`` at the last node (0 = open).  Dense nodal analysis."""
    k = len(taps)
    A = np.zeros((k, k))
    b = -np.asarray(taps, dtype=float).copy()
    for s, r in enumerate(r_seg):
        g = 1.0 / r
        A[s, s] += g; A[s + 1, s + 1] += g; A[s, s + 1] -= g; A[s + 1, s] -= g
    A[0, 0] += g_a; b[0] += g_a * v_src
    A[-1, -1] += g_b; b[-1] += g_b * v_src
    return np.linalg.solve(A, b)


def line_voltages(I, v, r_row, r_in, left, right, r_col, r_out, top, bottom):
    """Twin of ``line_voltages`` for positive resistances (one r_in/r_out per line)."""
    m, n = I.shape
    v_top = np.empty((m, n))
    v_bottom = np.empty((m, n))
    for i in range(m):
        v_top[i] = _chain(I[i], r_row[i], v[i], left / r_in[i], right / r_in[i])
    for j in range(n):
        # column: cells inject current (negative taps), sensed to 0 V
        v_bottom[:, j] = _chain(-I[:, j], r_col[:, j], 0.0, top / r_out[j], bottom / r_out[j])
    return v_top, v_bottom


def invert_transistor(ids, I, v_source, v_gate, p):
    """Twin of ``invert_transistor``: Brent's method on ``ids(vd, vs, vg) = I``."""
    out = np.empty(I.shape)
    for (i, j), target in np.ndenumerate(I):
        vs = v_source[i, j]
        f = lambda vd: ids(vd, vs, v_gate[i], p)[0] - target  # noqa: E731
        out[i, j] = vs if target == 0 else brentq(f, vs, vs + 100.0 * np.sign(target), xtol=1e-15, rtol=1e-14)
    return out


def invert_device(current, I, v_mem, p):
    """Twin of ``invert_device``: Brent's method on ``current(v_mem, G) = I`` for G in (0, 1 S]."""
    out = np.empty(I.shape)
    for (i, j), target in np.ndenumerate(I):
        vm = v_mem[i, j]
        if target == 0:
            out[i, j] = 0.0
        elif target * vm <= 0:
            out[i, j] = np.inf
        else:
            out[i, j] = brentq(lambda g: current(vm, g, p) - target, 0.0, 1.0, xtol=1e-22, rtol=1e-14)
    return out


def junction_currents(junction, v, p):
    """Twin of ``junction_currents``: the junction kernel called cell by cell."""
    return np.array([[junction(x, p)[0] for x in row] for row in v])
