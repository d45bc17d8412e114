"""Compiled kernels of the conversion G -> G' (private; see :mod:`xbarsolve.conversion`).

Kernels take arrays and scalars, never objects.  Their NumPy twins live in
``tests/naive_conversion.py`` and the tests compare the two.

When every cell passes a prescribed current, the row wires and the column wires no
longer interact: each line is a resistive chain with known current taps and one or two
sources (or grounds) at its ends, so every node voltage follows from cumulative sums
(one unknown end-current per line when both ends are connected, solved in closed form).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._config import NJIT, NJIT_FUNCTION_ARGS


@njit(**NJIT)
def row_voltages(I, v, r_row, r_in_left, r_in_right, left, right):  # pragma: no cover - compiled
    """Row-wire node voltages ``T`` (V) when cell (i, j) draws ``I[i, j]`` (A) from its row.

    Parameters
    ----------
    I : (m, n) currents drawn from the row nodes (A).
    v : (m,) source voltages (V).
    r_row : (m, n-1) row segments (ohm); r_in_left, r_in_right : (m,) drivers (ohm).
    left, right : bool, which row ends are driven (at least one).
    """
    m, n = I.shape
    v_top = np.empty((m, n))
    cum = np.empty(n)
    for i in range(m):
        total = 0.0
        for j in range(n):
            total += I[i, j]
            cum[j] = total
        # a = current delivered by the left source (flows rightwards into T(i, 0)).
        if left and right:
            num = r_in_right[i] * total
            den = r_in_left[i] + r_in_right[i]
            for k in range(n - 1):
                num += r_row[i, k] * cum[k]
                den += r_row[i, k]
            a = num / den if den > 0.0 else total
        elif left:
            a = total
        else:
            a = 0.0
        if left:
            x = v[i] - r_in_left[i] * a
        else:
            # T(i, n-1) = v - r_in_right * total; walk back to T(i, 0).
            x = v[i] - r_in_right[i] * (total - a)
            for k in range(n - 1):
                x += r_row[i, k] * (a - cum[k])
        v_top[i, 0] = x
        for k in range(n - 1):
            x -= r_row[i, k] * (a - cum[k])
            v_top[i, k + 1] = x
    return v_top


@njit(**NJIT)
def column_voltages(I, r_col, r_out_top, r_out_bottom, top, bottom):  # pragma: no cover - compiled
    """Column-wire node voltages ``B`` (V) when cell (i, j) injects ``I[i, j]`` (A).

    Parameters
    ----------
    I : (m, n) currents injected into the column nodes (A).
    r_col : (m-1, n) column segments (ohm); r_out_top, r_out_bottom : (n,) sense (ohm).
    top, bottom : bool, which column ends are sensed into 0 V (at least one).
    """
    m, n = I.shape
    v_bottom = np.empty((m, n))
    cum = np.empty(m)
    for j in range(n):
        total = 0.0
        for i in range(m):
            total += I[i, j]
            cum[i] = total
        # t = current leaving through the top sense resistor.
        if top and bottom:
            num = r_out_bottom[j] * total
            den = r_out_top[j] + r_out_bottom[j]
            for k in range(m - 1):
                num += r_col[k, j] * cum[k]
                den += r_col[k, j]
            t = num / den if den > 0.0 else 0.0
        elif top:
            t = total
        else:
            t = 0.0
        if top:
            y = r_out_top[j] * t
        else:
            y = r_out_bottom[j] * (total - t)
            for k in range(m - 1):
                y += r_col[k, j] * (cum[k] - t)
        v_bottom[0, j] = y
        for k in range(m - 1):
            y -= r_col[k, j] * (cum[k] - t)
            v_bottom[k + 1, j] = y
    return v_bottom


@njit(**NJIT_FUNCTION_ARGS)
def junction_currents(junction, v, p):  # pragma: no cover - compiled
    """Current (A) out of each node at voltage ``v[i, j]`` (V) into the bulk through ``junction``."""
    m, n = v.shape
    out = np.empty((m, n))
    for i in range(m):
        for j in range(n):
            out[i, j] = junction(v[i, j], p)[0]
    return out


@njit(**NJIT_FUNCTION_ARGS)
def invert_transistor(ids, I, v_source, v_gate, p, v_span, tol, max_iter):  # pragma: no cover - compiled
    """Drain voltage (V) at which each transistor passes ``I[i, j]`` (A) from drain to source.

    Safeguarded Newton on ``ids(vd, vs, vg, p) = I`` inside a bracket that starts at
    ``vd = vs`` and is widened up to ``v_span`` volts.  ``ok`` is False where no drain
    voltage within the span carries the current.
    """
    m, n = I.shape
    vd_out = np.empty((m, n))
    ok = np.ones((m, n), dtype=np.bool_)
    for i in range(m):
        vg = v_gate[i]
        for j in range(n):
            target = I[i, j]
            vs = v_source[i, j]
            if target == 0.0:
                vd_out[i, j] = vs
                continue
            sgn = 1.0 if target > 0.0 else -1.0
            lo = vs
            step = 1e-3
            hi = vs + sgn * step
            found = False
            while abs(hi - vs) <= v_span:
                f_hi = ids(hi, vs, vg, p)[0] - target
                if sgn * f_hi >= 0.0:
                    found = True
                    break
                lo = hi
                step *= 4.0
                hi = vs + sgn * step
            if not found:
                vd_out[i, j] = np.nan
                ok[i, j] = False
                continue
            x = 0.5 * (lo + hi)
            scale = abs(target)
            for _ in range(max_iter):
                r = ids(x, vs, vg, p)
                f = r[0] - target
                if abs(f) <= tol * scale:
                    break
                if sgn * f > 0.0:
                    hi = x
                else:
                    lo = x
                d = r[1]
                xn = x - f / d if d != 0.0 else 0.5 * (lo + hi)
                # stay inside the bracket (lo, hi), whichever way it is ordered
                if (xn - lo) * (xn - hi) >= 0.0:
                    xn = 0.5 * (lo + hi)
                x = xn
            else:
                if abs(ids(x, vs, vg, p)[0] - target) > 1e3 * tol * scale:
                    ok[i, j] = False
            vd_out[i, j] = x
    return vd_out, ok


@njit(**NJIT_FUNCTION_ARGS)
def invert_device(current, I, v_mem, G0, p, tol, max_iter):  # pragma: no cover - compiled
    """State ``G`` (S) with ``current(v_mem, G, p) == I`` for every cell (secant in ``G``).

    Exact after one secant step for models affine in ``G`` (linear, sinh, polynomial).
    Cells whose voltage cannot carry their current (``I * v_mem <= 0`` with ``I != 0``)
    get ``+inf``; ``ok`` is False where the iteration did not reach the tolerance.
    """
    m, n = I.shape
    g_out = np.empty((m, n))
    ok = np.ones((m, n), dtype=np.bool_)
    for i in range(m):
        for j in range(n):
            target = I[i, j]
            vm = v_mem[i, j]
            if target == 0.0:
                g_out[i, j] = 0.0
                continue
            if not (target * vm > 0.0):
                g_out[i, j] = np.inf
                continue
            g_a = G0[i, j] if G0[i, j] > 0.0 else abs(target / vm)
            g_b = 2.0 * g_a
            f_a = current(vm, g_a, p) - target
            f_b = current(vm, g_b, p) - target
            scale = abs(target)
            x = g_b
            done = abs(f_b) <= tol * scale
            it = 0
            while not done and it < max_iter:
                if f_b == f_a:
                    break
                x = g_b - f_b * (g_b - g_a) / (f_b - f_a)
                g_a, f_a = g_b, f_b
                g_b = x
                f_b = current(vm, g_b, p) - target
                done = abs(f_b) <= tol * scale
                it += 1
            g_out[i, j] = g_b
            if not done:
                ok[i, j] = False
    return g_out, ok
