"""Exact, damped Newton for one vector at a time (private; see :mod:`xbarsolve.solve.newton`):
one factorization per iteration, a backtracking line search on the KCL residual."""

from __future__ import annotations

import numpy as np

from . import _newton_kernels as _nk
from ._net import _Net, _evaluate, _try_ladder


def _newton_one(net: _Net, x, vtol: float, itol: float, max_iter: int, callback, index: int):
    """Exact, damped Newton for one vector (k = 1).

    Returns (x, converged, iterations, residual, reason, column currents or None).
    """
    ev = _evaluate(net, x)
    step = np.inf
    res = float(ev.res[0])
    for it in range(max_iter + 1):
        if callback is not None:
            callback(np.array([index]), ev.res)
        if not np.isfinite(res):
            return x, False, it, res, "the KCL residual is not finite (a device model overflowed)", None
        if res <= itol and ev.res_v[0] <= vtol and step <= vtol:
            return x, True, it, res, "", ev.column_currents(net)[:, 0]
        if it == max_iter:
            break
        lad = _try_ladder(net, ev.cells)
        if lad is None:
            return x, False, it, res, "the Jacobian is singular", ev.column_currents(net)[:, 0]
        with np.errstate(all="ignore"):
            dP, dS = lad.solve(ev.rP, ev.rS)
            finite = np.isfinite(dP).all() and np.isfinite(dS).all()
            if net.has_mid:  # without middle nodes m0, mP, mS are unused placeholders
                finite = finite and np.isfinite(ev.m0 + ev.mP * dP + ev.mS * dS).all()
        if not finite:
            return x, False, it, res, "the Jacobian is singular", ev.column_currents(net)[:, 0]
        # Backtracking line search on the largest KCL residual.
        lam = 1.0
        while True:
            trial = [a.copy() for a in x[:3]] + list(x[3:])
            st = _nk.update(trial[0], trial[1], trial[2], dP, dS, ev.m0, ev.mP, ev.mS, net.has_mid, lam)
            ev_t = _evaluate(net, trial)
            r_t = float(ev_t.res[0])
            if np.isfinite(r_t) and (r_t <= (1.0 - 1e-4 * lam) * res or ev.res_v[0] <= vtol or ev_t.res_v[0] <= vtol):
                break
            lam *= 0.5
            if lam < 1e-6:
                return x, False, it + 1, res, "the line search found no decrease of the KCL residual", ev.column_currents(net)[:, 0]
        x, ev, res = trial, ev_t, r_t
        step = float(st[0])
    return x, False, max_iter, res, f"no convergence within max_iterations={max_iter}", ev.column_currents(net)[:, 0]

