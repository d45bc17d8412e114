"""Newton solver for arrays with nonlinear memristors or transistors.

The unknowns are the potentials of the full nodal system of DESIGN.md section 1: every
top node ``T(i, j)``, middle node ``M(i, j)`` and bottom node ``B(i, j)`` (``3 m n``; the
``2m + 2n`` boundary nodes sit behind ``r_in`` / ``r_out`` at the fixed source and
ground potentials, so they carry no unknown).  The residual is KCL at every node; the
Jacobian is assembled per cell by the compiled kernel
:func:`xbarsolve.solve._newton_kernels.evaluate`.

Each Newton system is solved with the structure of the linear solver
(:mod:`xbarsolve.solve.linear`): the middle node of each cell is eliminated locally
(its KCL row involves only ``T``, ``M`` and ``B`` of the same cell), which leaves the
ladder of row and column chains coupled by one 2 x 2 block per cell.  Eliminating the
chains of one family (tridiagonal) leaves a block-tridiagonal system with dense
``q x q`` blocks, ``q = min(m, n)``, solved by block elimination; a solve for a batch
of vectors is a sequence of GEMMs.

Two iterations use it:

* **chord** (the fast path): one factorization shared by the whole batch, built from
  the batch-averaged cell Jacobian, preconditions a fixed-point iteration whose every
  step is exact in the middle-node elimination and the wire network and approximate
  only in the cells' small-signal conductances.  It converges linearly, with a rate
  given by the spread of the cells' conductances between vectors (a few per cent for
  nearly linear devices), and starts from the exact solution of the circuit linearised
  at 0 V (the "linear solution").
* **newton**: exact Newton for one vector at a time (refactor per iteration), with a
  backtracking line search on the KCL residual; quadratic convergence.  ``"auto"`` runs
  the chord iteration and finishes the vectors it does not converge within
  ``chord_iterations`` with exact Newton.

A vector has converged when both the largest KCL residual is at most ``itol`` and the
last voltage update is at most ``vtol`` (see :func:`solve_newton`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from ..crossbar import Crossbar
from ..errors import ConvergenceError
from ..results import SolveResult
from ..transistors import _no_junction, _resistor_ids
from . import _kernels
from . import _newton_kernels as _nk

__all__ = ["solve_newton"]

Iteration = Literal["auto", "chord", "newton"]
OnFailure = Literal["raise", "flag"]


@dataclass(frozen=True, eq=False)
class _Net:
    """The array in ladder coordinates (conductances in S, potentials in V)."""

    rows_first: bool  # P chains are the rows (top nodes)
    wp: np.ndarray  # (p, q-1)
    tp0: np.ndarray  # (p,)
    tp1: np.ndarray
    c: np.ndarray  # (p-1, q)
    ts0: np.ndarray  # (q,)
    ts1: np.ndarray
    G: np.ndarray  # (p, q)
    vgc: np.ndarray  # (p, q)
    has_mid: bool
    pd: np.ndarray
    pt: np.ndarray
    funcs: tuple | None  # (current, didv, ids, junction) of user models; None for built-ins
    p_diag: np.ndarray  # (p, q) wire + terminal conductance on the P chains
    s_diag: np.ndarray  # (p, q) same on the S chains

    @property
    def p(self) -> int:
        return self.G.shape[0]

    @property
    def q(self) -> int:
        return self.G.shape[1]


def _net(xbar: Crossbar) -> _Net:
    m, n = xbar.shape
    if xbar.has_zero_resistance:
        raise ValueError(
            "the Newton solver needs every wire, driver and sense resistance > 0 ohm "
            "(r_row, r_col, r_in, r_out); a 0-ohm branch is supported by the linear path only"
        )
    rows_first = n <= m
    left, right = xbar.drive_ends
    top, bottom = xbar.sense_ends
    g_in = 1.0 / xbar.r_in_rows
    g_out = 1.0 / xbar.r_out_columns
    g_row = 1.0 / xbar.r_row_segments
    g_col = 1.0 / xbar.r_col_segments
    tr = xbar.transistor
    has_mid = tr is not None and not tr.is_short
    if has_mid:
        vg = tr.gate_voltages(m)
        vg = np.zeros(m) if vg is None else np.asarray(vg, dtype=np.float64)
        ids, junction, pt = tr.kernel, tr.junction_kernel, np.asarray(tr.parameters(), dtype=np.float64)
    else:
        vg = np.zeros(m)
        ids, junction, pt = _resistor_ids, _no_junction, np.zeros(6)
    current, didv = xbar.device.kernels
    pd = np.asarray(xbar.device.parameters(), dtype=np.float64)
    dcode = _nk.DEVICE_CODES.get(type(xbar.device).__name__) if type(xbar.device).__module__ == "xbarsolve.devices" else None
    tname = type(tr).__name__ if has_mid else "Resistor"
    tcode = _nk.TRANSISTOR_CODES.get(tname) if (not has_mid or type(tr).__module__ == "xbarsolve.transistors") else None
    if dcode is not None and tcode is not None:
        funcs = None
        pd = np.append(pd, dcode)
        pt = np.append(pt, tcode)
    else:
        funcs = (current, didv, ids, junction)
    vgc = np.repeat(vg[:, None], n, axis=1)
    if rows_first:
        wp, tp0, tp1, c, ts0, ts1, G, vgc = g_row, g_in * left, g_in * right, g_col, g_out * top, g_out * bottom, xbar.G, vgc
    else:
        wp, tp0, tp1, c, ts0, ts1, G, vgc = g_col.T, g_out * top, g_out * bottom, g_row.T, g_in * left, g_in * right, xbar.G.T, vgc.T
    wp, c, G, vgc = (np.ascontiguousarray(a, dtype=np.float64) for a in (wp, c, G, vgc))
    tp0, tp1, ts0, ts1 = (np.ascontiguousarray(a, dtype=np.float64) for a in (tp0, tp1, ts0, ts1))
    p, q = G.shape
    p_diag = np.zeros((p, q))
    if q > 1:
        p_diag[:, :-1] += wp
        p_diag[:, 1:] += wp
    p_diag[:, 0] += tp0
    p_diag[:, -1] += tp1
    s_diag = np.zeros((p, q))
    if p > 1:
        s_diag[:-1] += c
        s_diag[1:] += c
    s_diag[0] += ts0
    s_diag[-1] += ts1
    return _Net(rows_first, wp, tp0, tp1, c, ts0, ts1, G, vgc, has_mid, pd, pt,
                funcs, p_diag, s_diag)


def _sources(net: _Net, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed potentials behind the P and S terminals for inputs V (k, m): (p, k), (q, k)."""
    k = V.shape[0]
    VT = np.ascontiguousarray(V.T)
    if net.rows_first:
        return VT, np.zeros((net.q, k))
    return np.zeros((net.p, k)), VT


@dataclass(eq=False)
class _Eval:
    """Residual and condensed Newton system at one iterate (see ``_nk.evaluate``)."""

    rP: np.ndarray
    rS: np.ndarray
    FM: np.ndarray
    gmem: np.ndarray
    gsrc: np.ndarray
    inv_jmm: np.ndarray
    eP: np.ndarray
    eS: np.ndarray
    u: np.ndarray
    w: np.ndarray
    res: np.ndarray  # (k,) largest |KCL residual| (A)


def _evaluate(net: _Net, xP, xS, xM, srcP, srcS) -> _Eval:
    p, q, k = xP.shape
    arrs = [np.empty((p, q, k)) for _ in range(10)]
    res = np.zeros((p, k))
    kernel = _nk.evaluate if net.funcs is None else _nk.specialise(*net.funcs)
    kernel(xP, xS, xM, srcP, srcS, net.wp, net.tp0, net.tp1, net.c, net.ts0, net.ts1, net.G, net.vgc,
           net.pd, net.pt, net.rows_first, net.has_mid, *arrs, res)
    return _Eval(*arrs, res.max(axis=0))


class _Ladder:
    """Factorization of a condensed Newton system with cell entries shared by a batch
    (arrays (p, q)) or of one vector.  ``solve`` takes right-hand sides (p, q, k)."""

    def __init__(self, net: _Net, eP, eS, u, w):
        self.net = net
        diag = net.p_diag + eP
        self.inv = _nk.tri_factor(np.ascontiguousarray(diag[:, :, None]), net.wp)
        W = _kernels.chain_inverses(np.ascontiguousarray(diag), net.wp)
        K = _nk.schur_general(W, np.ascontiguousarray(u), np.ascontiguousarray(w), net.s_diag + eS)
        self.Kinv = _kernels.block_factor(K, net.c)
        self.u = np.ascontiguousarray(u[:, :, None])
        self.w = np.ascontiguousarray(w[:, :, None])
        self.finite = bool(np.isfinite(self.Kinv).all() and np.isfinite(self.inv).all())

    def solve(self, rP, rS):
        net = self.net
        yP = rP.copy()
        _nk.tri_solve(self.inv, net.wp, yP)
        F = rS.copy()
        _nk.add_scaled(F, self.w, yP)
        dS = _kernels.block_solve(self.Kinv, net.c, F)
        z = _nk.scaled(self.u, dS)
        _nk.tri_solve(self.inv, net.wp, z)
        yP += z
        return yP, dS


def _try_ladder(net: _Net, eP, eS, u, w) -> _Ladder | None:
    """A factorization, or None when the system is singular or not finite."""
    if not all(np.isfinite(a).all() for a in (eP, eS, u, w)):
        return None
    try:
        with np.errstate(all="ignore"):
            lad = _Ladder(net, eP, eS, u, w)
    except np.linalg.LinAlgError:
        return None
    return lad if lad.finite else None


def _step(net: _Net, lad: _Ladder, ev: _Eval):
    """Update (dP, dS, dM) of every vector: the ladder solve, then the middle nodes."""
    dP, dS = lad.solve(ev.rP, ev.rS)
    if net.has_mid:
        dT, dB = (dP, dS) if net.rows_first else (dS, dP)
        dM = _nk.middle_update(ev.FM, ev.gmem, ev.gsrc, ev.inv_jmm, dT, dB)
    else:
        dM = None
    return dP, dS, dM


def _absmax(*arrays) -> np.ndarray:
    return np.max([_nk.batch_absmax(a) for a in arrays if a is not None], axis=0)


@dataclass(eq=False)
class _Chunk:
    """Iterates of a group of vectors (potentials in V, arrays (p, q, k))."""

    xP: np.ndarray
    xS: np.ndarray
    xM: np.ndarray
    srcP: np.ndarray
    srcS: np.ndarray

    def take(self, idx: np.ndarray) -> "_Chunk":
        return _Chunk(self.xP[:, :, idx], self.xS[:, :, idx], self.xM[:, :, idx], self.srcP[:, idx], self.srcS[:, idx])

    def add(self, d, scale=1.0) -> "_Chunk":
        dP, dS, dM = d
        xM = self.xM if dM is None else self.xM + scale * dM
        return _Chunk(self.xP + scale * dP, self.xS + scale * dS, xM, self.srcP, self.srcS)


def _tolerances(xbar: Crossbar, net: _Net, V: np.ndarray, rtol: float, vtol, itol):
    """Per-vector voltage-update (V) and KCL-residual (A) tolerances."""
    vmax = np.abs(V).max(axis=1)
    vref = np.maximum(vmax, 1e-3)
    if vtol is None:
        vtol_k = rtol * vref
    else:
        vtol_k = np.full(V.shape[0], float(vtol))
    if itol is None:
        v_probe = np.stack([np.zeros_like(xbar.G), np.full_like(xbar.G, vref.max()), np.full_like(xbar.G, -vref.max())])
        g_dev = np.abs(xbar.device.didv(v_probe, np.broadcast_to(xbar.G, v_probe.shape))).max()
        g_dev = g_dev if np.isfinite(g_dev) and g_dev > 0 else 1e-6
        g_wire = max(net.wp.max(initial=0.0), net.c.max(initial=0.0), net.tp0.max(), net.tp1.max(), net.ts0.max(), net.ts1.max())
        floor = 64 * np.finfo(float).eps * vref * g_wire  # round-off floor of a KCL sum
        itol_k = np.maximum(rtol * vref * g_dev, floor)
    else:
        itol_k = np.full(V.shape[0], float(itol))
    return vtol_k, itol_k


def _chord(net: _Net, ch: _Chunk, vtol, itol, max_iter: int, refresh: int, callback):
    """The fast path for a group of vectors.  Returns (chunk, converged, iterations, residual)."""
    p, q, k = ch.xP.shape
    it = np.zeros(k, dtype=np.int64)
    res = np.full(k, np.inf)
    step = np.full(k, np.inf)
    done = np.zeros(k, dtype=bool)
    # Warm start: one exact Newton step from 0 V, where every vector has the same Jacobian
    # (the circuit linearised at 0 V): the linear solution.
    ev = _evaluate(net, ch.xP, ch.xS, ch.xM, ch.srcP, ch.srcS)
    lad = _try_ladder(net, ev.eP[:, :, 0], ev.eS[:, :, 0], ev.u[:, :, 0], ev.w[:, :, 0])
    if lad is None:  # singular at 0 V: leave every vector to exact Newton
        return ch, done, it, res
    d = _step(net, lad, ev)
    ch = ch.add(d)
    step[:] = _absmax(*d)
    it += 1
    out = ch
    warm = _Chunk(ch.xP.copy(), ch.xS.copy(), ch.xM.copy(), ch.srcP, ch.srcS)
    active = np.arange(k)
    since = refresh  # iterations since the shared factorization was built
    for _ in range(max_iter):
        ev = _evaluate(net, ch.xP, ch.xS, ch.xM, ch.srcP, ch.srcS)
        res[active] = ev.res
        if callback is not None:
            callback(active, ev.res)
        ok = (ev.res <= itol[active]) & (step[active] <= vtol[active])
        bad = ~np.isfinite(ev.res)
        if ok.any() or bad.any():
            fin = ok | bad
            idx = active[fin]
            done[active[ok]] = True
            out.xP[:, :, idx] = ch.xP[:, :, fin]
            out.xS[:, :, idx] = ch.xS[:, :, fin]
            out.xM[:, :, idx] = ch.xM[:, :, fin]
            lost = active[bad]  # a model overflowed: fall back to the (finite) warm start
            out.xP[:, :, lost], out.xS[:, :, lost], out.xM[:, :, lost] = warm.xP[:, :, lost], warm.xS[:, :, lost], warm.xM[:, :, lost]
            keep = ~fin
            active = active[keep]
            if not active.size:
                break
            ch = ch.take(np.flatnonzero(keep))
            ev = _Eval(*(a[:, :, keep] for a in (ev.rP, ev.rS, ev.FM, ev.gmem, ev.gsrc, ev.inv_jmm, ev.eP, ev.eS, ev.u, ev.w)), ev.res[keep])
        if since >= refresh:
            with np.errstate(all="ignore"):
                lad = _try_ladder(net, ev.eP.mean(axis=2), ev.eS.mean(axis=2), ev.u.mean(axis=2), ev.w.mean(axis=2))
            if lad is None:
                break
            since = 0
        d = _step(net, lad, ev)
        since += 1
        ch = ch.add(d)
        step[active] = _absmax(*d)
        it[active] += 1
    if active.size:
        out.xP[:, :, active] = ch.xP
        out.xS[:, :, active] = ch.xS
        out.xM[:, :, active] = ch.xM
    return out, done, it, res


def _newton_one(net: _Net, ch: _Chunk, vtol: float, itol: float, max_iter: int, callback, index: int):
    """Exact, damped Newton for one vector (k = 1).  Returns (chunk, converged, iterations, residual, reason)."""
    ev = _evaluate(net, ch.xP, ch.xS, ch.xM, ch.srcP, ch.srcS)
    step = np.inf
    res = float(ev.res[0])
    for it in range(max_iter + 1):
        if callback is not None:
            callback(np.array([index]), ev.res)
        if not np.isfinite(res):
            return ch, False, it, res, "the KCL residual is not finite (a device model overflowed)"
        if res <= itol and step <= vtol:
            return ch, True, it, res, ""
        if it == max_iter:
            break
        lad = _try_ladder(net, ev.eP[:, :, 0], ev.eS[:, :, 0], ev.u[:, :, 0], ev.w[:, :, 0])
        with np.errstate(all="ignore"):
            d = None if lad is None else _step(net, lad, ev)
        if d is None or not all(np.isfinite(x).all() for x in d if x is not None):
            return ch, False, it, res, "the Jacobian is singular"
        # Backtracking line search on the largest KCL residual.
        lam = 1.0
        while True:
            trial = ch.add(d, lam)
            ev_t = _evaluate(net, trial.xP, trial.xS, trial.xM, trial.srcP, trial.srcS)
            r_t = float(ev_t.res[0])
            if np.isfinite(r_t) and (r_t <= (1.0 - 1e-4 * lam) * res or res <= itol or r_t <= itol):
                break
            lam *= 0.5
            if lam < 1e-6:
                return ch, False, it + 1, res, "the line search found no decrease of the KCL residual"
        ch, ev, res = trial, ev_t, r_t
        step = lam * float(_absmax(*d)[0])
    return ch, False, max_iter, res, f"no convergence within max_iterations={max_iter}"


def solve_newton(
    xbar: Crossbar,
    V: np.ndarray,
    *,
    full: bool = False,
    iteration: Iteration = "auto",
    rtol: float = 1e-9,
    vtol: float | None = None,
    itol: float | None = None,
    max_iterations: int = 50,
    chord_iterations: int = 25,
    refresh: int = 4,
    chunk_size: int = 64,
    on_failure: OnFailure = "raise",
    callback: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> SolveResult:
    """Solve a nonlinear crossbar by Newton's method for a batch of input vectors.

    Parameters
    ----------
    xbar : Crossbar
        The array; every resistance must be > 0 ohm.
    V : ndarray, shape (batch, m)
        Source voltages (V), validated by :func:`xbarsolve.solve`.
    full : bool
        Also return node voltages (``v_top``, ``v_mid``, ``v_bottom``) and the
        memristor currents (``cell_currents``, A, from ``T`` into the cell).
    iteration : {"auto", "chord", "newton"}
        ``"chord"``: shared factorization for the batch (fast, linear convergence);
        ``"newton"``: exact Newton per vector (quadratic convergence, one factorization
        per iteration and vector); ``"auto"``: chord, then exact Newton for the vectors
        the chord iteration has not converged in ``chord_iterations`` steps.
    rtol : float
        Relative tolerance (> 0).  Defaults for the absolute tolerances below derive
        from it: ``vtol = rtol * max(max|V|, 1 mV)`` and
        ``itol = max(rtol * max(max|V|, 1 mV) * g_dev, 64 eps max(max|V|, 1 mV) g_wire)``
        with ``g_dev`` the largest device conductance dI/dV at 0 and +-max|V| and
        ``g_wire`` the largest wire or terminal conductance (the round-off floor of a
        KCL sum).
    vtol : float, optional
        Largest voltage update (V) of the last iteration of a converged vector.
    itol : float, optional
        Largest KCL residual (A) at any node of a converged vector.
    max_iterations : int
        Iteration limit of exact Newton (per vector, >= 1).
    chord_iterations : int
        Iteration limit of the chord iteration (>= 0).
    refresh : int
        The shared factorization is rebuilt from the batch-averaged cell Jacobian every
        ``refresh`` chord iterations (>= 1).
    chunk_size : int
        Vectors iterated together (>= 1); bounds memory to about
        ``20 * chunk_size * m * n`` doubles.
    on_failure : {"raise", "flag"}
        ``"raise"``: raise :class:`~xbarsolve.errors.ConvergenceError` naming the first
        vector that did not converge; ``"flag"``: return with ``converged`` False for it
        (its currents are the last iterate).
    callback : callable, optional
        ``callback(vectors, residuals)`` after each residual evaluation, with the batch
        indices of the vectors iterated and their largest KCL residual (A).  Exact
        Newton calls it once per iteration per vector (residual history).

    Returns
    -------
    SolveResult
        ``method="newton"``, with per-vector ``converged``, ``iterations`` and
        ``residual`` (A).

    Raises
    ------
    ConvergenceError
        With ``on_failure="raise"`` when a vector does not converge: a residual that
        stops decreasing, a singular Jacobian, a device model that overflows, or the
        iteration limit.
    """
    if iteration not in ("auto", "chord", "newton"):
        raise ValueError(f"iteration must be 'auto', 'chord' or 'newton'; got {iteration!r}")
    if on_failure not in ("raise", "flag"):
        raise ValueError(f"on_failure must be 'raise' or 'flag'; got {on_failure!r}")
    if not (np.isfinite(rtol) and rtol > 0):
        raise ValueError(f"rtol must be > 0; got {rtol!r}")
    for name, val, lo in (("max_iterations", max_iterations, 1), ("chord_iterations", chord_iterations, 0),
                          ("refresh", refresh, 1), ("chunk_size", chunk_size, 1)):
        if int(val) != val or val < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {val!r}")
    for name, val in (("vtol", vtol), ("itol", itol)):
        if val is not None and not (np.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be > 0 (or None for the default); got {val!r}")
    V = np.ascontiguousarray(V, dtype=np.float64)
    net = _net(xbar)
    k_all = V.shape[0]
    vtol_k, itol_k = _tolerances(xbar, net, V, rtol, vtol, itol)
    p, q = net.p, net.q
    X = [np.zeros((p, q, k_all)) for _ in range(3)]
    converged = np.zeros(k_all, dtype=bool)
    iterations = np.zeros(k_all, dtype=np.int64)
    residual = np.full(k_all, np.inf)
    reasons = {}
    for start in range(0, k_all, chunk_size):
        sl = slice(start, min(start + chunk_size, k_all))
        idx = np.arange(sl.start, sl.stop)
        srcP, srcS = _sources(net, V[sl])
        kk = idx.size
        ch = _Chunk(np.zeros((p, q, kk)), np.zeros((p, q, kk)), np.zeros((p, q, kk)), srcP, srcS)
        cb = None if callback is None else (lambda vec, r, _o=start: callback(vec + _o, r))
        if iteration in ("auto", "chord"):
            ch, ok, its, res = _chord(net, ch, vtol_k[idx], itol_k[idx], chord_iterations, refresh, cb)
        else:
            ok, its, res = np.zeros(kk, bool), np.zeros(kk, np.int64), np.full(kk, np.inf)
        if iteration in ("auto", "newton"):
            for t in np.flatnonzero(~ok):
                one = ch.take(np.array([t]))
                if iteration == "newton" or not all(np.isfinite(a).all() for a in (one.xP, one.xS, one.xM)):
                    # start from 0 V: the first step is the linear solution
                    one = _Chunk(np.zeros_like(one.xP), np.zeros_like(one.xS), np.zeros_like(one.xM), one.srcP, one.srcS)
                cbt = None if callback is None else (lambda vec, r, _o=start + t: callback(np.array([_o]), r))
                one, ok_t, it_t, res_t, why = _newton_one(net, one, vtol_k[start + t], itol_k[start + t], max_iterations, cbt, start + t)
                ch.xP[:, :, t], ch.xS[:, :, t], ch.xM[:, :, t] = one.xP[:, :, 0], one.xS[:, :, 0], one.xM[:, :, 0]
                ok[t], res[t] = ok_t, res_t
                its[t] += it_t
                if not ok_t:
                    reasons[start + t] = why
        for a, b in zip(X, (ch.xP, ch.xS, ch.xM)):
            a[:, :, sl] = b
        converged[sl], iterations[sl], residual[sl] = ok, its, res
    if on_failure == "raise" and not converged.all():
        t = int(np.flatnonzero(~converged)[0])
        why = reasons.get(t, f"the chord iteration did not converge within chord_iterations={chord_iterations}")
        raise ConvergenceError(
            f"Newton did not converge for input vector {t} (of {k_all}): {why}; KCL residual "
            f"{residual[t]:.3g} A after {iterations[t]} iterations (tolerance {itol_k[t]:.3g} A). "
            "Pass on_failure='flag' to get per-vector flags instead.",
            vector=t, iterations=int(iterations[t]), residual=float(residual[t]),
        )
    return _result(xbar, net, V, X, full, converged, iterations, residual)


def _result(xbar, net, V, X, full, converged, iterations, residual) -> SolveResult:
    xP, xS, xM = X
    if net.rows_first:
        currents = net.ts0[:, None] * xS[0] + net.ts1[:, None] * xS[-1]  # (q=n, k)
        v_top, v_bottom, v_mid = xP, xS, xM
    else:
        currents = net.tp0[:, None] * xP[:, 0] + net.tp1[:, None] * xP[:, -1]  # (p=n, k)
        v_top, v_bottom, v_mid = (a.transpose(1, 0, 2) for a in (xS, xP, xM))
    currents = np.ascontiguousarray(currents.T)
    common = dict(method="newton", converged=converged, iterations=iterations, residual=residual)
    if not full:
        return SolveResult(inputs=V, currents=currents, **common)
    v_top, v_bottom, v_mid = (np.ascontiguousarray(np.moveaxis(a, 2, 0)) for a in (v_top, v_bottom, v_mid))
    if not net.has_mid:
        v_mid = None if xbar.transistor is None else v_bottom.copy()
    lower = v_bottom if v_mid is None else v_mid
    cell = xbar.device.current(v_top - lower, np.broadcast_to(xbar.G, v_top.shape))
    return SolveResult(inputs=V, currents=currents, v_top=v_top, v_bottom=v_bottom, v_mid=v_mid,
                       cell_currents=cell, **common)
