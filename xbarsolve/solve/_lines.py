"""The line relaxation of the Newton solver (private; see :mod:`xbarsolve.solve.newton`):
an inexact Newton step per sweep, block Gauss-Seidel passes over the row and column
chains, O(m n) per sweep with no factorization."""

from __future__ import annotations

import numpy as np

from . import _newton_kernels as _nk
from ._net import _Eval, _Net, _apply, _delivered, _evaluate, _evaluate_at_zero, _put, _take, _try_ladder

#: Block Gauss-Seidel passes over the two chain families per sweep (one residual
#: evaluation); 1 is the relaxation before issue 13, kept for the benchmark's comparison.
_PASSES = 2
#: The start: ``"sources"`` (every node at its chain's source potential) or ``"linear"``
#: (the exact solution of the circuit linearised at 0 V, one block solve with the
#: factorization the chord iteration shares).
_START = "sources"
#: Store each vector's cell Jacobian in float32 (see :func:`._net._evaluate`).
_SINGLE = True


def _lines(net: _Net, x, vtol, itol, max_sweeps: int, callback, work=None, shared: dict | None = None):
    """Line relaxation for a group of vectors.  Returns (x, converged, sweeps, residual,
    column currents) like :func:`_chord`, whether it stopped because the updates of
    every unconverged vector stalled, and its evaluation workspace (pass it back as
    ``work`` for the next group of the same size).  ``shared``: the chord iteration's
    factorizations (:func:`._chord._chord`), read and filled by the linear start.

    A sweep is an inexact Newton step: the residual and each vector's own condensed
    Jacobian at the iterate (one evaluation), then ``_PASSES`` block Gauss-Seidel passes
    on that Newton system, each the P chains with the S corrections of the pass before
    (0 in the first), then the S chains with the new P corrections.  Each is a
    tridiagonal solve per chain, ``O(m n)`` with no factorization to share, exact in the
    cells' nonlinearity; what a pass leaves of the Newton step is the coupling of the two
    wire families, a factor of about
    ``(g / (g + g_r (pi / 2n)^2)) * (g / (g + g_c (pi / 2m)^2))`` for cells of
    conductance ``g`` on wires of ``g_r``, ``g_c`` (measured ~3e-3 on a 64 x 51 tile
    with 1-ohm wires, ~0.1 on 576 x 64).  An evaluation costs 1-2 passes (576 x 64 sinh +
    Level1: 0.57 against 0.30 ms per vector; sinh alone 0.21 against 0.35), so two passes
    per evaluation take 5 sweeps where one took 8 (576 x 64, rtol 1e-8).  Vectors stop
    when their updates stall (shrink by less than half per pass) and are left to the
    chord iteration.  A converged vector's column currents are those of the iterate its
    last update produced (built-in models; user models: of the iterate the test passed on).
    """
    xP, xS, xM, srcP, srcS = x
    p, q, k = xP.shape
    lad = None
    if _START == "linear":
        shared = {} if shared is None else shared
        ev0 = _evaluate_at_zero(net, x, shared)
        if "zero" not in shared:
            shared["zero"] = _try_ladder(net, ev0.cells)
        lad = shared["zero"]
    if lad is not None:
        for a in x[:3]:
            a.fill(0.0)
        _apply(net, x, lad, ev0)
    else:
        # Start: every node at its chain's source potential (0 V on the sensed family), the
        # middle nodes at their cell's bottom node (an access transistor in triode is the
        # smaller resistance of the cell).
        xP[:] = srcP[:, None, :]
        xS[:] = srcS[None, :, :]
        if net.has_mid:
            xM[:] = xS if net.rows_first else xP
    it = np.zeros(k, dtype=np.int64)
    done = np.zeros(k, dtype=bool)
    res = np.full(k, np.inf)
    cur = np.full((net.n_columns, k), np.nan)
    act = np.arange(k)  # the vectors of the chunk iterated in y
    y = x  # x itself until converged vectors are dropped (then a compact copy)
    vtol_y, itol_y, prev = vtol.copy(), itol.copy(), np.full(k, np.inf)  # of the vectors in y
    ok = np.empty(k, dtype=bool)
    ev, scratch = work if work is not None else (None, None)
    stalled = False
    for sweep in range(1, max_sweeps + 1):
        ka = act.size
        ev = _evaluate(net, y, per_vector=True, work=ev if ev is not None and ev.rP.shape[2] == ka else None,
                       single=_SINGLE)
        if _PASSES > 1 and (scratch is None or scratch.shape[3] != ka):
            scratch = np.empty((3, p, q, ka))
        if sweep == 1:
            work = (ev, scratch)
        if callback is not None:
            callback(act, ev.res)
        res[act] = ev.res
        it[act] = sweep
        eP, eS, w = ev.cellv
        steps = np.empty((q, ka))
        with np.errstate(all="ignore"):
            rhs = ev.rP
            for _ in range(_PASSES - 1):
                out, zS, piv = scratch
                _nk.lines_pre_p(net.p_diag, eP, net.wp, rhs, w, ev.rS, out, zS)
                _nk.lines_pre_s(net.s_diag, eS, net.c, zS, piv, ev.rP, ev.u, out)
                rhs = out
            _nk.lines_p(net.p_diag, eP, net.wp, rhs, w, ev.rS)
            _nk.lines_s(net.s_diag, eS, net.c, ev.rS, y[0], y[1], y[2], rhs, ev.m0, ev.mP, ev.mS, net.has_mid, steps)
        # Converged (the chord iteration's test): small KCL residual at the iterate and
        # small update from it.  Stop when every unconverged vector stalls or overflowed.
        n_ok, all_slow = _nk.lines_status(ev.res, ev.res_v, steps, itol_y, vtol_y, prev, ok[:ka], 0.5**_PASSES)
        if n_ok:
            sel = ok[:ka]
            done[act[sel]] = True
            # built-in models: the currents of the iterate just updated (an error of about
            # the pass's rate times the update), else of the one the test passed on
            cur[:, act[sel]] = _delivered(net, y, sel) if net.funcs is None else ev.column_currents(net)[:, sel]
            if n_ok == ka:
                break
        if sweep >= 3 and all_slow:
            stalled = True
            break
        if 2 * n_ok >= ka:
            # Drop the converged vectors once they are half of those iterated (until then
            # they iterate on: a copy costs about what an evaluation does).
            idx = np.flatnonzero(~ok[:ka])
            if y is not x:
                _put(net, x, act[ok[:ka]], y, np.flatnonzero(ok[:ka]))
            y, act = _take(net, y, idx), act[idx]
            vtol_y, itol_y, prev = vtol_y[idx], itol_y[idx], prev[idx]
    if y is not x:
        _put(net, x, act, y, np.arange(act.size))
    return x, done, it, res, cur, stalled, work

