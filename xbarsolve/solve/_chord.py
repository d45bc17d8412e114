"""The chord iteration of the Newton solver (private; see :mod:`xbarsolve.solve.newton`):
one factorization shared by a batch, first the Jacobian at 0 V, then, when a cost model
says it pays, the batch-averaged one."""

from __future__ import annotations

import numpy as np

from ._net import _Eval, _Net, _apply, _evaluate, _evaluate_at_zero, _put, _take, _try_ladder


def _chord(net: _Net, x, vtol, itol, max_iter: int, rebuild: str, shared: dict, callback):
    """The fast path for a group of vectors.  Returns (x, converged, iterations, residual).

    ``shared`` carries factorizations between the groups of one solve: ``"zero"`` (the
    Jacobian at 0 V, the same for every vector), ``"mean"`` (a batch-averaged Jacobian),
    and the measured cost of a factorization (s) and contraction rate of ``"mean"``.
    """
    k = x[0].shape[2]
    it = np.zeros(k, dtype=np.int64)
    res = np.full(k, np.inf)
    done = np.zeros(k, dtype=bool)
    cur = np.full((net.n_columns, k), np.nan)  # column currents of the vectors that finished
    # Warm start: one exact Newton step from 0 V, where every vector has the same Jacobian
    # (the circuit linearised at 0 V): the linear solution.
    ev = _evaluate_at_zero(net, x, shared)
    if "zero" not in shared:
        shared["zero"] = _try_ladder(net, ev.cells)
    lad = shared["zero"]
    if lad is None:  # singular at 0 V: leave every vector to exact Newton
        return x, done, it, res, cur
    x, step, _ = _apply(net, x, lad, ev)  # step: largest update of each vector (V)
    it += 1
    out = x
    warm = [a.copy() for a in x[:3]]
    active = np.arange(k)
    if rebuild != "never" and "mean" in shared:
        lad = shared["mean"]
    last = None  # largest update of the last chord step with the current factorization
    before = None  # ... and of the step before it

    def retire(sel, source):
        """Write the vectors ``sel`` (mask over ``active``) of ``source`` ((p, q, active)) into ``out``."""
        _put(net, out, active[sel], source, sel)

    for _ in range(max_iter):
        ev = _evaluate(net, x)
        res[active] = ev.res
        if callback is not None:
            callback(active, ev.res)
        bad = ~np.isfinite(ev.res)
        if bad.any():  # a model overflowed: fall back to the (finite) warm start
            retire(bad, [w[:, :, active] if (net.has_mid or i < 2) else w for i, w in enumerate(warm)])
            keep = np.flatnonzero(~bad)
            active = active[keep]
            if not active.size:
                break
            x = _take(net, x, keep)
            ev = _Eval(np.take(ev.rP, keep, axis=2), np.take(ev.rS, keep, axis=2),
                       *((np.take(a, keep, axis=2) if net.has_mid else a) for a in (ev.m0, ev.mP, ev.mS)),
                       ev.cells, ev.res[keep], ev.res_v[keep], np.take(ev.i_col, keep, axis=2))
            last = before = None
        if rebuild != "never" and lad is shared["zero"] and (
                rebuild == "once" or _worth_rebuilding(net, shared, last, before, vtol[active])):
            new = _try_ladder(net, ev.cells)
            if new is not None:
                lad = shared["mean"] = new
                last = before = None
        x, st, _ = _apply(net, x, lad, ev)
        it[active] += 1
        big = st.max()
        if last is not None and lad is shared.get("mean") and last > 0:
            shared["rate"] = max(shared.get("rate", 0.0), min(big / last, 1.0))
        before, last = last, big
        step[active] = st
        # Converged: small KCL residual at x_k and small update d_k (already applied; the
        # error left is ~rho |d_k| with rho ~ 1e-2 the contraction).  The column currents
        # are those of x_k, within ~|d_k| of x_{k+1}'s.
        ok = (ev.res <= itol[active]) & (ev.res_v <= vtol[active]) & (st <= vtol[active])
        if ok.any():
            done[active[ok]] = True
            cur[:, active[ok]] = ev.column_currents(net)[:, ok]
            if x is not out:
                retire(ok, x[:3])
            keep = np.flatnonzero(~ok)
            active = active[keep]
            if not active.size:
                break
            x = _take(net, x, keep)
            last = before = None
    if active.size and x is not out:
        retire(np.full(active.size, True), x[:3])
    return out, done, it, res, cur



def _costs(net: _Net) -> tuple[float, float, float]:
    """Model costs (s) of a factorization, of one residual evaluation per vector and of a
    chord iteration per vector (evaluation and block solve), fitted on this machine
    class; deterministic, so that the choice of factorization (and the iterates) do not
    depend on timing noise."""
    p, q = net.p, net.q
    factor = 0.3e-9 * p * q**3 + 5e-9 * p * q * q
    evaluation = 35e-9 * p * q
    return factor, evaluation, evaluation + 0.12e-9 * p * q * q


def _worth_rebuilding(net: _Net, shared: dict, last, before, vtol: np.ndarray) -> bool:
    """Whether a batch-averaged factorization saves time over the 0 V one.

    Cost model (:func:`_costs`): a factorization against the iterations it saves, from
    the measured contraction of the 0 V factorization (``last / before``, the largest
    updates of the last two steps) and that of the averaged one (measured on earlier
    chunks, else assumed 0.02).
    """
    k = vtol.size
    t_factor, t_eval, t_iter = _costs(net)
    if last is None or before is None:  # contraction not measured yet
        # rebuild now if a factorization costs less than two evaluations of the batch
        return t_factor < 2.0 * t_eval * k
    rho0 = min(last / before, 0.999) if before > 0 else 0.0
    if rho0 < 0.05:
        return False
    rho1 = shared.get("rate", 0.02) or 0.02
    need = np.log(max(vtol.min(), 1e-300) / max(last, 1e-300))
    if need >= 0:
        return False
    n0 = need / np.log(rho0)
    n1 = need / np.log(max(rho1, 1e-6))
    return t_factor < (n0 - n1) * t_iter * k

