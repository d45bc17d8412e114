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

Three iterations:

* **lines** (the first of ``"auto"``): an inexact Newton step per sweep, the Newton
  system solved by one block Gauss-Seidel sweep over the row and column chains
  (tridiagonal, with each vector's own cell conductances), so ``O(m n)`` per sweep with
  no factorization.  Its rate is the coupling of the two wire families through the
  cells, ~3e-3 per sweep on a 64 x 51 tile with 1-ohm wires, ~0.1 on 576 x 64; cells
  without a middle node and a built-in device use a vectorised residual kernel
  (:func:`xbarsolve.solve._newton_kernels.evaluate_2t`).
* **chord**: one factorization shared by the whole batch (first the
  Jacobian at 0 V, then, when a cost model says it pays, the batch-averaged cell
  Jacobian), preconditions a fixed-point iteration whose every
  step is exact in the middle-node elimination and the wire network and approximate
  only in the cells' small-signal conductances.  It converges linearly, with a rate
  given by the spread of the cells' conductances between vectors (a few per cent for
  nearly linear devices), and starts from the exact solution of the circuit linearised
  at 0 V (the "linear solution").
* **newton**: exact Newton for one vector at a time (refactor per iteration), with a
  backtracking line search on the KCL residual; quadratic convergence.  ``"auto"`` runs
  the line relaxation, gives the vectors whose sweeps stall to the chord iteration, and
  finishes those it does not converge within ``chord_iterations`` with exact Newton.

A vector has converged when every node's KCL residual divided by the node's total
small-signal conductance and the update computed at that point are both at most
``vtol`` (see :func:`solve_newton`).  Column currents are the sums along each column of
what the cells deliver to it (equal by KCL to the current through ``r_out``, but as
accurate as the cell voltages rather than the small column voltages).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Literal

import numba
import numpy as np

from ..crossbar import Crossbar
from ..errors import ConvergenceError
from ..results import SolveResult
from ..topology import Ladder, topology
from ..transistors import _no_junction, _resistor_ids
from . import _kernels
from . import _newton_kernels as _nk
from .linear import _blas_controller

__all__ = ["solve_newton"]

Iteration = Literal["auto", "lines", "chord", "newton"]
Rebuild = Literal["auto", "once", "never"]
OnFailure = Literal["raise", "flag"]


@dataclass(frozen=True, eq=False)
class _Net:
    """The array in ladder coordinates (:class:`xbarsolve.topology.Ladder`) with its cell
    models (conductances in S, potentials in V)."""

    lad: Ladder
    G: np.ndarray  # (p, q)
    vgc: np.ndarray  # (p, q)
    has_mid: bool
    pd: np.ndarray
    pt: np.ndarray
    funcs: tuple | None  # (current, didv, ids, junction) of user models; None for built-ins

    rows_first = property(lambda self: self.lad.rows_first)  # P chains are the rows (top nodes)
    wp = property(lambda self: self.lad.wp)  # (p, q-1)
    tp0 = property(lambda self: self.lad.tp0)  # (p,)
    tp1 = property(lambda self: self.lad.tp1)
    c = property(lambda self: self.lad.c)  # (p-1, q)
    ts0 = property(lambda self: self.lad.ts0)  # (q,)
    ts1 = property(lambda self: self.lad.ts1)
    p_diag = property(lambda self: self.lad.p_diag)  # (p, q) wire + terminal conductance on the P chains
    s_diag = property(lambda self: self.lad.s_diag)  # (p, q) same on the S chains

    @property
    def p(self) -> int:
        return self.G.shape[0]

    @property
    def n_columns(self) -> int:
        return self.G.shape[1] if self.rows_first else self.G.shape[0]

    @property
    def q(self) -> int:
        return self.G.shape[1]


def _net(xbar: Crossbar) -> _Net:
    m, n = xbar.shape
    topo = topology(xbar)
    if topo.has_zero_resistance:
        raise ValueError(
            "the Newton solver needs every wire, driver and sense resistance > 0 ohm "
            "(r_row, r_col, r_in, r_out); a 0-ohm branch is supported by the linear path only"
        )
    lad = topo.ladder(n <= m)
    tr = xbar.transistor
    has_mid = tr is not None and not tr.is_short
    if has_mid:
        vg = tr.gate_voltages(m)
        vg = np.zeros(m) if vg is None else np.asarray(vg, dtype=np.float64)
        ids, junction, pt = tr.kernel, tr.junction_kernel, np.asarray(tr.parameters(), dtype=np.float64)
    else:
        vg = np.zeros(m)
        ids, junction, pt = _resistor_ids, _no_junction, np.zeros(7)
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
    return _Net(lad, lad.orient(xbar.G), lad.orient(vgc), has_mid, pd, pt, funcs)


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

    rP: np.ndarray  # (p, q, k) right-hand sides (A)
    rS: np.ndarray
    m0: np.ndarray  # (p, q, k) middle-node update coefficients
    mP: np.ndarray
    mS: np.ndarray
    cells: np.ndarray  # (4, p, q) batch mean of (eP, eS, u, w) (S)
    res: np.ndarray  # (k,) largest |KCL residual| (A)
    res_v: np.ndarray  # (k,) largest |KCL residual| / node conductance (V)
    i_col: np.ndarray | None  # (p, q, k) current each cell delivers to its column node (A)
    cellv: object = None  # each vector's (eP, eS, w) (S), three (p, q, k) arrays, on request

    def column_currents(self, net: "_Net") -> np.ndarray:
        """Column currents (A), (n, k): the cells' deliveries summed along each column."""
        return self.i_col.sum(axis=0 if net.rows_first else 1)


def _evaluate(net: _Net, x, per_vector: bool = False, work: _Eval | None = None) -> _Eval:
    """The residual and condensed Newton system at ``x`` (kernel :func:`_nk.evaluate`);
    with ``per_vector`` also each vector's cell entries (``cellv``).  ``work``: an earlier
    result of the same shape whose arrays are overwritten instead of allocated (fresh
    arrays of a few MB cost page faults comparable to the evaluation itself)."""
    xP, xS, xM = x[:3]
    p, q, k = xP.shape
    two_terminal = not net.has_mid and net.funcs is None  # the vectorised kernel applies
    if work is None:
        # Without middle nodes the kernel never writes m0, mP, mS: the placeholders must be
        # initialised (uninitialised memory read as inf/NaN once made exact Newton call a
        # regular Jacobian "singular").
        if two_terminal:
            D = np.empty((p, q, k))
            cellv = (D, D, D)  # eP = eS = w = dI/dV
        else:
            cellv = np.empty((3, p, q, k)) if per_vector else None
        work = _Eval(np.empty((p, q, k)), np.empty((p, q, k)),
                     *(np.empty((p, q, k)) if net.has_mid else np.zeros((1, 1, 1)) for _ in range(3)),
                     np.empty((4, p, q)), np.empty((p, k)), np.empty((p, k)), np.empty((p, q, k)), cellv)
    res, res_v = (np.empty((p, k)) for _ in range(2))
    # Overflow is inf and caught by the residual checks.  Compiled code raises no
    # floating-point warnings; the same code run by Python (NUMBA_DISABLE_JIT) would.
    with np.errstate(all="ignore"):
        if two_terminal:
            D = work.cellv[0]
            _nk.evaluate_2t(xP, xS, x[3], x[4], net.wp, net.tp0, net.tp1, net.c, net.ts0, net.ts1, net.G, net.pd,
                            net.rows_first, work.rP, work.rS, D, res, res_v, work.i_col)
            if not per_vector:
                work.cells[:] = D.mean(axis=2)
        else:
            kernel = _nk.evaluate if net.funcs is None else _nk.specialise(*net.funcs)
            kernel(xP, xS, xM, x[3], x[4], net.wp, net.tp0, net.tp1, net.c, net.ts0, net.ts1, net.G, net.vgc,
                   net.pd, net.pt, net.rows_first, net.has_mid, work.rP, work.rS, work.m0, work.mP, work.mS,
                   work.cells, work.cellv if per_vector else np.empty((3, 1, 1, 1)), res, res_v, work.i_col)
            work.cells /= k
    return _Eval(work.rP, work.rS, work.m0, work.mP, work.mS, work.cells, res.max(axis=0), res_v.max(axis=0),
                 work.i_col, work.cellv if per_vector else None)


def _evaluate_at_zero(net: _Net, x, shared: dict) -> _Eval:
    """:func:`_evaluate` at 0 V for a batch with sources ``x[3], x[4]``.

    At 0 V the cells see the same voltages whatever the inputs, so one evaluation (cached
    in ``shared``) serves every vector; only the sources' injections through the
    terminal conductances differ.
    """
    p, q, k = x[0].shape
    one = shared.get("ev0")
    if one is None:
        z = _state(net, np.zeros((1, net.p if net.rows_first else net.q)))
        one = shared["ev0"] = _evaluate(net, z)
    rP = np.repeat(one.rP, k, axis=2)
    rS = np.repeat(one.rS, k, axis=2)
    srcP, srcS = x[3], x[4]
    rP[:, 0, :] += net.tp0[:, None] * srcP
    rP[:, -1, :] += net.tp1[:, None] * srcP
    rS[0, :, :] += net.ts0[:, None] * srcS
    rS[-1, :, :] += net.ts1[:, None] * srcS
    mids = [np.repeat(a, k, axis=2) if net.has_mid else a for a in (one.m0, one.mP, one.mS)]
    return _Eval(rP, rS, *mids, one.cells, np.full(k, np.nan), np.full(k, np.nan), None)


class _Factor:
    """Factorization of a condensed Newton system whose cell entries (p, q) are shared by
    a batch (their mean) or belong to one vector.  ``solve`` takes right-hand sides
    (p, q, k) and overwrites them."""

    def __init__(self, net: _Net, cells: np.ndarray):
        eP, eS, u, w = cells
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
        _nk.tri_solve(self.inv, net.wp, rP)  # rP <- chain solve
        _nk.add_scaled(rS, self.w, rP)
        dS = _kernels.block_solve(self.Kinv, net.c, rS)
        z = _nk.scaled(self.u, dS)
        _nk.tri_solve(self.inv, net.wp, z)
        rP += z
        return rP, dS


def _try_ladder(net: _Net, cells: np.ndarray) -> _Factor | None:
    """A factorization, or None when the system is singular or not finite."""
    if not np.isfinite(cells).all():
        return None
    try:
        with np.errstate(all="ignore"):
            lad = _Factor(net, cells)
    except np.linalg.LinAlgError:
        return None
    return lad if lad.finite else None


def _apply(net: _Net, x, lad: _Factor, ev: _Eval, scale: float = 1.0, copy: bool = False):
    """Solve for the update and apply it (in place unless ``copy``); returns (x, |update| per vector)."""
    with np.errstate(all="ignore"):
        dP, dS = lad.solve(ev.rP, ev.rS)
    if copy:
        x = [a.copy() for a in x[:3]] + list(x[3:])
    step = _nk.update(x[0], x[1], x[2], dP, dS, ev.m0, ev.mP, ev.mS, net.has_mid, scale)
    return x, step, (dP, dS)


def _state(net: _Net, V: np.ndarray, reuse=None):
    """Zero potentials for inputs V (k, m): [xP, xS, xM, srcP, srcS].  ``reuse``: an
    earlier state of the same size whose potential arrays are zeroed and reused."""
    p, q, k = net.p, net.q, V.shape[0]
    srcP, srcS = _sources(net, V)
    if reuse is not None:
        for a in reuse[:3]:
            a.fill(0.0)
        return [*reuse[:3], srcP, srcS]
    return [np.zeros((p, q, k)), np.zeros((p, q, k)), np.zeros((p, q, k) if net.has_mid else (1, 1, 1)), srcP, srcS]


def _take(net: _Net, x, idx):
    """The vectors ``idx`` of a state, as contiguous copies."""
    xM = np.take(x[2], idx, axis=2) if net.has_mid else x[2]
    return [np.take(x[0], idx, axis=2), np.take(x[1], idx, axis=2), xM, np.take(x[3], idx, axis=1), np.take(x[4], idx, axis=1)]


def _tolerances(V: np.ndarray, rtol: float, vtol, itol):
    """Per-vector voltage (V) and KCL-current (A) tolerances."""
    k = V.shape[0]
    vtol_k = rtol * np.maximum(np.abs(V).max(axis=1), 1e-3) if vtol is None else np.full(k, float(vtol))
    itol_k = np.full(k, np.inf if itol is None else float(itol))
    return vtol_k, itol_k


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


def _lines(net: _Net, x, vtol, itol, max_sweeps: int, callback, work: _Eval | None = None):
    """Line relaxation for a group of vectors.  Returns (x, converged, sweeps, residual,
    column currents) like :func:`_chord`, whether it stopped because the updates of
    every unconverged vector stalled, and its evaluation workspace (pass it back as
    ``work`` for the next group of the same size).

    A sweep is an inexact Newton step: the residual and each vector's own condensed
    Jacobian at the iterate (one evaluation), then one block Gauss-Seidel sweep on that
    Newton system: the P chains with the S corrections at 0, then the S chains with the
    P corrections in place.  Each is a tridiagonal solve per chain, ``O(m n)`` with no
    factorization to share, exact in the cells' nonlinearity; what the sweep leaves of
    the Newton step is the coupling of the two wire families, a factor of about
    ``(g / (g + g_r (pi / 2n)^2)) * (g / (g + g_c (pi / 2m)^2))`` per sweep for cells of
    conductance ``g`` on wires of ``g_r``, ``g_c`` (measured ~3e-3 on a 64 x 51 tile
    with 1-ohm wires, ~0.1 on 576 x 64).  Vectors stop when their updates stall (shrink
    by less than half per sweep) and are left to the chord iteration.
    """
    xP, xS, xM, srcP, srcS = x
    p, q, k = xP.shape
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
    ev = work
    stalled = False
    for sweep in range(1, max_sweeps + 1):
        ka = act.size
        ev = _evaluate(net, y, per_vector=True, work=ev if ev is not None and ev.rP.shape[2] == ka else None)
        if sweep == 1:
            work = ev
        if callback is not None:
            callback(act, ev.res)
        res[act] = ev.res
        it[act] = sweep
        eP, eS, w = ev.cellv
        steps = np.empty((q, ka))
        with np.errstate(all="ignore"):
            _nk.lines_p(net.p_diag, eP, net.wp, ev.rP, w, ev.rS)
            _nk.lines_s(net.s_diag, eS, net.c, ev.rS, y[0], y[1], y[2], ev.rP, ev.m0, ev.mP, ev.mS, net.has_mid, steps)
        # Converged (the chord iteration's test): small KCL residual at the iterate and
        # small update from it; the column currents are the iterate's, within ~rate *
        # |update| of the next one's.  Stop when every unconverged vector stalls or
        # overflowed.
        n_ok, all_slow = _nk.lines_status(ev.res, ev.res_v, steps, itol_y, vtol_y, prev, ok[:ka])
        if n_ok:
            sel = ok[:ka]
            done[act[sel]] = True
            cur[:, act[sel]] = ev.column_currents(net)[:, sel]
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


def _put(net: _Net, x, dest, y, src) -> None:
    """Write the vectors ``src`` of the state ``y`` into the vectors ``dest`` of ``x``."""
    for a, b in zip(x[:3], y[:3]):
        if net.has_mid or a is not x[2]:
            a[:, :, dest] = b[:, :, src]


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


def solve_newton(
    xbar: Crossbar,
    V: np.ndarray,
    *,
    full: bool = False,
    iteration: Iteration = "auto",
    rtol: float = 1e-8,
    vtol: float | None = None,
    itol: float | None = None,
    max_iterations: int = 50,
    lines_iterations: int = 30,
    chord_iterations: int = 25,
    rebuild: Rebuild = "auto",
    chunk_size: int | None = None,
    on_failure: OnFailure = "raise",
    callback: Callable[[np.ndarray, np.ndarray], None] | None = None,
    threads: int | None = None,
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
    iteration : {"auto", "lines", "chord", "newton"}
        ``"lines"``: nonlinear line relaxation (Newton on one wire family at a time,
        ``O(m n)`` per sweep, no factorization; fast where the wires couple the families
        weakly, as in 64 x 64 tiles); ``"chord"``: shared factorization for the batch
        (linear convergence at the rate of the cells' conductance spread); ``"newton"``:
        exact Newton per vector (quadratic convergence, one factorization per iteration
        and vector); ``"auto"``: lines, then the chord iteration for the vectors whose
        line relaxation stalls or does not converge within ``lines_iterations`` sweeps,
        then exact Newton for those the chord iteration has not converged in
        ``chord_iterations`` steps.
    rtol : float
        Relative tolerance (> 0); the default ``vtol`` is ``rtol * max(max|V|, 1 mV)``
        for each vector.
    vtol : float, optional
        Voltage tolerance (V).  A vector has converged when (1) the KCL residual of
        every node divided by the node's total small-signal conductance (the correction
        that node alone would need) and (2) the largest update computed at that point
        (chord; for exact Newton the last update taken) are both at most ``vtol``.
    itol : float, optional
        Also require the largest KCL residual (A) at any node to be at most ``itol``.
    max_iterations : int
        Iteration limit of exact Newton (per vector, >= 1).
    lines_iterations : int
        Sweep limit of the line relaxation (>= 1).
    chord_iterations : int
        Iteration limit of the chord iteration (>= 0).
    rebuild : {"auto", "once", "never"}
        The chord iteration starts with the factorization at 0 V; ``"once"`` replaces it
        after the warm start by one built from the batch-averaged cell Jacobian (shared
        by all chunks), ``"auto"`` does so when a cost model (operation counts, measured
        contraction rates; no wall-clock timings, so results are reproducible) predicts
        a saving, ``"never"`` keeps the 0 V one.
    chunk_size : int, optional
        Vectors iterated together (>= 1); bounds memory to about
        ``12 * chunk_size * m * n`` doubles.  The default is 32, or more for small
        arrays (``2**18 / (m n)`` vectors, ~260k cells; measured 13 % faster than
        ``2**17`` and ``2**19`` on the MNIST CNN's tiles): 32 keeps a chunk's arrays near
        the size of the L3 cache for 576 x 64 (measured 10-20 % faster than 64; 128 and
        more are slower) and the block GEMMs (q x q times q x 32) below OpenBLAS's
        threading threshold; on small arrays (a 25 x 21 tile) the per-chunk Python
        overhead of a few hundred microseconds would dominate.
    on_failure : {"raise", "flag"}
        ``"raise"``: raise :class:`~xbarsolve.errors.ConvergenceError` naming the first
        vector that did not converge; ``"flag"``: return with ``converged`` False for it
        (its currents are the last iterate).
    callback : callable, optional
        ``callback(vectors, residuals)`` after each residual evaluation, with the batch
        indices of the vectors iterated and their largest KCL residual (A).  Exact
        Newton calls it once per iteration per vector (residual history).
    threads : int, optional
        Threads of the compiled kernels and of BLAS (>= 1).  Default: Numba's setting,
        except 1 when the machine is oversubscribed (1-minute load average above the
        number of CPUs): there a parallel region waits for descheduled workers, ~30 ms
        per kernel call on a busy 2-core machine, far more than it saves.

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
    if iteration not in ("auto", "lines", "chord", "newton"):
        raise ValueError(f"iteration must be 'auto', 'lines', 'chord' or 'newton'; got {iteration!r}")
    if rebuild not in ("auto", "once", "never"):
        raise ValueError(f"rebuild must be 'auto', 'once' or 'never'; got {rebuild!r}")
    if on_failure not in ("raise", "flag"):
        raise ValueError(f"on_failure must be 'raise' or 'flag'; got {on_failure!r}")
    if not (np.isfinite(rtol) and rtol > 0):
        raise ValueError(f"rtol must be > 0; got {rtol!r}")
    for name, val, lo in (("max_iterations", max_iterations, 1), ("lines_iterations", lines_iterations, 1),
                          ("chord_iterations", chord_iterations, 0),
                          ("chunk_size", 1 if chunk_size is None else chunk_size, 1)):
        if int(val) != val or val < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {val!r}")
    for name, val in (("vtol", vtol), ("itol", itol)):
        if val is not None and not (np.isfinite(val) and val > 0):
            raise ValueError(f"{name} must be > 0 (or None for the default); got {val!r}")
    if threads is not None and (int(threads) != threads or threads < 1):
        raise ValueError(f"threads must be an integer >= 1 or None; got {threads!r}")
    V = np.ascontiguousarray(V, dtype=np.float64)
    if chunk_size is None:
        chunk_size = max(32, 2**18 // xbar.G.size)
    net = xbar._cache.get("newton")  # the ladder form, kept like the transfer matrix
    if net is None:
        net = xbar._cache["newton"] = _net(xbar)
    n_threads = min(_default_threads() if threads is None else int(threads), numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        # BLAS (the block GEMMs and inverses) gets the same number of threads.
        with _blas_controller().limit(limits=n_threads, user_api="blas"):
            return _solve(xbar, net, V, full, iteration, rtol, vtol, itol, max_iterations, lines_iterations,
                          chord_iterations, rebuild, chunk_size, on_failure, callback)
    finally:
        numba.set_num_threads(previous)


def _default_threads() -> int:
    n = numba.get_num_threads()
    try:
        busy = os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:  # not available on this platform
        busy = False
    return 1 if busy else n


def _solve(xbar, net, V, full, iteration, rtol, vtol, itol, max_iterations, lines_iterations, chord_iterations,
           rebuild, chunk_size, on_failure, callback) -> SolveResult:
    k_all = V.shape[0]
    vtol_k, itol_k = _tolerances(V, rtol, vtol, itol)
    p, q = net.p, net.q
    # node potentials of the whole batch only when asked for (they are 3 m n doubles a vector)
    X = [np.zeros((p, q, k_all)) for _ in range(3)] if full else None
    converged = np.zeros(k_all, dtype=bool)
    iterations = np.zeros(k_all, dtype=np.int64)
    residual = np.full(k_all, np.inf)
    currents = np.full((net.n_columns, k_all), np.nan)
    reasons = {}
    shared: dict = {}
    reuse: dict = {}
    for start in range(0, k_all, chunk_size):
        sl = slice(start, min(start + chunk_size, k_all))
        idx = np.arange(sl.start, sl.stop)
        kk = idx.size
        # the chunks' arrays are reused (allocating MBs anew costs page faults), except
        # the node potentials kept for full results
        x = _state(net, V[sl], None if full else reuse.get(("x", kk)))
        if not full:
            reuse[("x", kk)] = x
        cb = None if callback is None else (lambda vec, r, _o=start: callback(vec + _o, r))
        ok, its, res = np.zeros(kk, bool), np.zeros(kk, np.int64), np.full(kk, np.inf)
        cur = np.full((net.n_columns, kk), np.nan)
        if iteration in ("auto", "lines"):
            x, ok, its, res, cur, stalled, reuse[("ev", kk)] = _lines(net, x, vtol_k[idx], itol_k[idx],
                                                                      lines_iterations, cb, reuse.get(("ev", kk)))
            if iteration == "lines":
                why = ("the line relaxation stalled (its updates shrank by less than half per sweep: the wires "
                       "couple rows and columns too strongly for it; iteration='auto' or 'chord' handles that)"
                       if stalled else f"the line relaxation did not converge within lines_iterations={lines_iterations}")
                reasons.update({start + int(t): why for t in np.flatnonzero(~ok)})
        if iteration == "chord" or (iteration == "auto" and not ok.all()):
            # the vectors line relaxation left, afresh (their iterates may have overflowed)
            sub = np.flatnonzero(~ok)
            cbs = None if cb is None else (lambda vec, r, _s=sub: cb(_s[vec], r))
            y, ok_c, its_c, res_c, cur_c = _chord(net, _state(net, V[sl][sub]), vtol_k[idx[sub]], itol_k[idx[sub]],
                                                  chord_iterations, rebuild, shared, cbs)
            _put(net, x, sub, y, np.arange(sub.size))
            ok[sub], res[sub], cur[:, sub] = ok_c, res_c, cur_c
            its[sub] += its_c
        if iteration in ("auto", "newton"):
            for t in np.flatnonzero(~ok):
                one = _take(net, x, np.array([t]))
                zero = _state(net, V[start + t:start + t + 1])  # from 0 V: the first step is the linear solution
                if iteration == "newton" or not all(np.isfinite(a).all() for a in one[:3]):
                    one = zero
                elif not _evaluate(net, one).res[0] <= _evaluate(net, zero).res[0]:
                    # The chord left this vector worse off than 0 V, e.g. at the linear
                    # solution of an input far beyond the device's range (26 V on sinh
                    # cells: 1e18 A of KCL residual), from which Newton sheds only ~1/a V
                    # per step; from 0 V the line search damps the first step instead.
                    one = zero
                cbt = None if callback is None else (lambda vec, r, _o=start + t: callback(np.array([_o]), r))
                one, ok_t, it_t, res_t, why, cur_t = _newton_one(net, one, vtol_k[start + t], itol_k[start + t], max_iterations, cbt, start + t)
                _put(net, x, [t], one, [0])
                ok[t], res[t] = ok_t, res_t
                if cur_t is not None:
                    cur[:, t] = cur_t
                its[t] += it_t
                if not ok_t:
                    reasons[start + t] = why
        if full:
            for a, b in zip(X, x[:3]):
                if b.shape == (p, q, kk):
                    a[:, :, sl] = b
        converged[sl], iterations[sl], residual[sl] = ok, its, res
        currents[:, sl] = np.where(np.isnan(cur).any(axis=0)[None, :], _sensed(net, x), cur)
    if on_failure == "raise" and not converged.all():
        t = int(np.flatnonzero(~converged)[0])
        why = reasons.get(t, f"the {iteration} iteration did not converge (lines_iterations={lines_iterations}, "
                             f"chord_iterations={chord_iterations})")
        raise ConvergenceError(
            f"Newton did not converge for input vector {t} (of {k_all}): {why}; KCL residual "
            f"{residual[t]:.3g} A after {iterations[t]} iterations (voltage tolerance {vtol_k[t]:.3g} V). "
            "Pass on_failure='flag' to get per-vector flags instead.",
            vector=t, iterations=int(iterations[t]), residual=float(residual[t]),
        )
    return _result(xbar, net, V, X, currents, full, converged, iterations, residual)


def _sensed(net: _Net, x) -> np.ndarray:
    """Column currents (A), (n, k), through ``r_out`` at the state ``x``: accurate only
    relative to the small column voltages, for the vectors that failed (the others take
    the cells' deliveries summed along each column, as accurate as the cell voltages)."""
    xP, xS = x[:2]
    if net.rows_first:
        return net.ts0[:, None] * xS[0] + net.ts1[:, None] * xS[-1]  # (q=n, k)
    return net.tp0[:, None] * xP[:, 0] + net.tp1[:, None] * xP[:, -1]  # (p=n, k)


def _result(xbar, net, V, X, currents, full, converged, iterations, residual) -> SolveResult:
    currents = np.ascontiguousarray(currents.T)
    common = dict(method="newton", converged=converged, iterations=iterations, residual=residual)
    if not full:
        return SolveResult(inputs=V, currents=currents, **common)
    xP, xS, xM = X
    if net.rows_first:
        v_top, v_bottom, v_mid = xP, xS, xM
    else:
        v_top, v_bottom, v_mid = (a.transpose(1, 0, 2) for a in (xS, xP, xM))
    v_top, v_bottom, v_mid = (np.ascontiguousarray(np.moveaxis(a, 2, 0)) for a in (v_top, v_bottom, v_mid))
    if not net.has_mid:
        v_mid = None if xbar.transistor is None else v_bottom.copy()
    lower = v_bottom if v_mid is None else v_mid
    cell = xbar.device.current(v_top - lower, np.broadcast_to(xbar.G, v_top.shape))
    return SolveResult(inputs=V, currents=currents, v_top=v_top, v_bottom=v_bottom, v_mid=v_mid,
                       cell_currents=cell, **common)
