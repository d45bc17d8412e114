"""The Newton system in ladder form (private; see :mod:`xbarsolve.solve.newton`).

The array in ladder coordinates with its cell models (:class:`_Net`), the iterate of a
batch (``[xP, xS, xM, srcP, srcS]``), the residual and condensed Newton system at an
iterate (:func:`_evaluate`, compiled kernels in :mod:`._newton_kernels`) and the
factorization of a condensed system (:class:`_Factor`), shared by the three iterations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..crossbar import Crossbar
from ..topology import Ladder, topology
from ..transistors import _no_junction, _resistor_ids
from . import _kernels
from . import _newton_kernels as _nk


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
    #: What the iterations derive from the array once and keep (the line relaxation's
    #: linear start matrix, ``"start"``); not pickled (rebuilt on demand).
    cache: dict = field(default_factory=dict, repr=False)

    rows_first = property(lambda self: self.lad.rows_first)  # P chains are the rows (top nodes)
    wp = property(lambda self: self.lad.wp)  # (p, q-1)
    tp0 = property(lambda self: self.lad.tp0)  # (p,)
    tp1 = property(lambda self: self.lad.tp1)
    c = property(lambda self: self.lad.c)  # (p-1, q)
    ts0 = property(lambda self: self.lad.ts0)  # (q,)
    ts1 = property(lambda self: self.lad.ts1)
    p_diag = property(lambda self: self.lad.p_diag)  # (p, q) wire + terminal conductance on the P chains
    s_diag = property(lambda self: self.lad.s_diag)  # (p, q) same on the S chains

    def __getstate__(self):
        state = dict(self.__dict__)
        state["cache"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

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
            "the ladder form needs every wire, driver and sense resistance > 0 ohm "
            "(r_row, r_col, r_in, r_out); arrays with 0-ohm branches take the merged nodal path (solve_newton)"
        )
    lad = _fresh_ladder(topo.ladder(n <= m))
    tr = xbar.transistor
    has_mid = tr is not None and not tr.is_short
    if has_mid:
        vg = topo.gate_voltages(tr)
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
    return _Net(lad, _fresh(lad.orient(xbar.G)), _fresh(lad.orient(vgc)), has_mid, pd, pt, funcs)


def _fresh(a) -> np.ndarray:
    """A writable C-contiguous float64 copy of ``a``.  Numba compiles a kernel once per
    argument type, and a read-only array is another type: the kernels' arrays are copied
    so that what they compile (and ``warm_up`` caches at set-up) does not depend on the
    memory of the caller's arrays (a read-only ``Crossbar.G``, an input's layout)."""
    return np.array(a, dtype=np.float64, order="C", copy=True)


def _fresh_ladder(lad: Ladder) -> Ladder:
    """``lad`` with every array :func:`_fresh` (see there)."""
    return dataclasses.replace(lad, **{f.name: _fresh(getattr(lad, f.name))
                                       for f in dataclasses.fields(lad) if f.name != "rows_first"})


def _sources(net: _Net, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed potentials behind the P and S terminals for inputs V (k, m): (p, k), (q, k)."""
    k = V.shape[0]
    VT = _fresh(V.T)  # a copy even where V.T is contiguous (k = 1): see _fresh
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
    u: np.ndarray | None = None  # ... and its u (S), (p, q, k), with cellv
    planes: np.ndarray | None = None  # (4, p, q, k): the kernels' output holding cellv and u (not two-terminal)

    def column_currents(self, net: "_Net") -> np.ndarray:
        """Column currents (A), (n, k): the cells' deliveries summed along each column."""
        return self.i_col.sum(axis=0 if net.rows_first else 1)


#: Evaluate cells with a middle node and built-in models with the generic scalar kernel
#: :func:`_nk.evaluate` instead of the vectorised :func:`_nk.evaluate_3t` (the path before
#: the latter existed; kept for the benchmark's comparison and the tests).
_GENERIC_CELLS = False
#: Fewest vectors for the vectorised kernels :func:`_nk.evaluate_3t` and
#: :func:`_nk.evaluate_2t`: their fixed cost per cell (the row views of every array they
#: read or write) exceeds what the vector lanes save on smaller batches (576 x 64 sinh
#: cells, one thread, ns per cell and vector, generic / vectorised; with Level1: 41 / 66
#: at 4 vectors, 37 / 37 at 8, 36 / 16 at 32; two-terminal: 34 / 67 at 1, 22 / 22 at 4,
#: 20 / 11 at 8, 19 / 7 at 16).
_VECTOR_MIN_BATCH = 8


def _evaluate(net: _Net, x, per_vector: bool = False, work: _Eval | None = None, single: bool = False,
              single_rhs: bool = False) -> _Eval:
    """The residual and condensed Newton system at ``x`` (kernel :func:`_nk.evaluate`);
    with ``per_vector`` also each vector's cell entries (``cellv``).  ``work``: an earlier
    result of the same shape whose arrays are overwritten instead of allocated (fresh
    arrays of a few MB cost page faults comparable to the evaluation itself).
    ``single``: with ``per_vector`` and the vectorised kernels, store each vector's cell
    Jacobian (``cellv``, ``u``, ``mP``, ``mS``) in float32 (computed in float64; the
    residual, its norms and ``m0`` stay float64): half the memory traffic for what only
    shapes the step, whose relative rounding of ~1e-7 the iteration corrects.
    ``single_rhs``: with ``single`` (and the vectorised kernels), also the right-hand
    sides ``rP``, ``rS`` and ``m0`` in float32 (computed in float64; the residual norms
    ``res``, ``res_v`` are taken before rounding): for an iteration that only solves for
    the step from them (the line relaxation), never for one that tests a residual
    stored there."""
    xP, xS, xM = x[:3]
    p, q, k = xP.shape
    vectorised = net.funcs is None and k >= _VECTOR_MIN_BATCH  # built-in models, enough vectors
    two_terminal = vectorised and not net.has_mid  # the vectorised two-terminal kernel applies
    jac = np.float32 if (single and per_vector and vectorised) else np.float64
    rhs = jac if single_rhs else np.float64
    if work is None:
        # Without middle nodes the kernel never writes m0, mP, mS: the placeholders must be
        # initialised (uninitialised memory read as inf/NaN once made exact Newton call a
        # regular Jacobian "singular").
        planes = None
        if two_terminal:
            D = np.empty((p, q, k), dtype=jac)
            cellv, u = (D, D, D), D  # eP = eS = w = u = dI/dV
        elif per_vector:
            planes = np.empty((4, p, q, k), dtype=jac)
            cellv, u = planes[:3], planes[3]
        else:
            cellv = u = None
        mids = [np.empty((p, q, k), dtype=d) if net.has_mid else np.zeros((1, 1, 1)) for d in (rhs, jac, jac)]
        work = _Eval(np.empty((p, q, k), dtype=rhs), np.empty((p, q, k), dtype=rhs), *mids,
                     np.empty((4, p, q)), np.empty((p, k)), np.empty((p, k)), np.empty((p, q, k)), cellv, u, planes)
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
        elif vectorised and not _GENERIC_CELLS:
            _nk.evaluate_3t(xP, xS, xM, x[3], x[4], net.wp, net.tp0, net.tp1, net.c, net.ts0, net.ts1, net.G, net.vgc,
                            net.pd, net.pt, net.rows_first, work.rP, work.rS, work.m0, work.mP, work.mS,
                            work.cells, work.planes if per_vector else np.empty((3, 1, 1, 1)), res, res_v, work.i_col)
            work.cells /= k
        else:
            kernel = _nk.evaluate if net.funcs is None else _nk.specialise(*net.funcs)
            kernel(xP, xS, xM, x[3], x[4], net.wp, net.tp0, net.tp1, net.c, net.ts0, net.ts1, net.G, net.vgc,
                   net.pd, net.pt, net.rows_first, net.has_mid, work.rP, work.rS, work.m0, work.mP, work.mS,
                   work.cells, work.planes if per_vector else np.empty((3, 1, 1, 1)), res, res_v, work.i_col)
            work.cells /= k
    return _Eval(work.rP, work.rS, work.m0, work.mP, work.mS, work.cells, res.max(axis=0), res_v.max(axis=0),
                 work.i_col, *((work.cellv, work.u, work.planes) if per_vector else (None, None, None)))


def _delivered(net: _Net, x, sel: np.ndarray) -> np.ndarray:
    """Column currents (A), (n, count), of the vectors ``sel`` (a mask over the batch) of
    the state ``x``: the cells' deliveries (:func:`_nk.column_deliveries`, built-in
    models only) summed along each column."""
    if sel.all():  # the whole group (a gather along the last axis costs what the kernel does)
        xP, xS = x[0], x[1]
        xM = x[2] if net.has_mid else xP
    else:
        idx = np.flatnonzero(sel)
        xP, xS = np.take(x[0], idx, axis=2), np.take(x[1], idx, axis=2)
        xM = np.take(x[2], idx, axis=2) if net.has_mid else xP
    out = np.empty_like(xP)
    _nk.column_deliveries(xP, xS, xM, net.G, net.vgc, net.pd, net.pt, net.rows_first, net.has_mid, out)
    return out.sum(axis=0 if net.rows_first else 1)


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




def _put(net: _Net, x, dest, y, src) -> None:
    """Write the vectors ``src`` of the state ``y`` into the vectors ``dest`` of ``x``."""
    for a, b in zip(x[:3], y[:3]):
        if net.has_mid or a is not x[2]:
            a[:, :, dest] = b[:, :, src]



def floating_cells(xbar: Crossbar) -> np.ndarray:
    """Cells ``(i, j)`` whose middle node has no conductance at 0 V, shape (count, 2): the
    memristor's ``dI/dV``, the transistor's ``dI/dV_drain`` and the drain junction's
    conductance all vanish (G = 0 S, a cut-off transistor, no junction leakage), so the
    node's KCL row is zero and the Newton system singular."""
    tr = xbar.transistor
    if tr is None or tr.is_short:
        return np.zeros((0, 2), dtype=np.int64)
    m, n = xbar.shape
    # The scalar kernels called from Python (an error path; compiling array loops for the
    # models would cost seconds): at 0 V the transistor term depends on the row's gate only.
    vg = topology(xbar).gate_voltages(tr)
    pt, pd = np.asarray(tr.parameters(), np.float64), np.asarray(xbar.device.parameters(), np.float64)
    didv = xbar.device.kernels[1]
    g_row = np.array([tr.kernel(0.0, 0.0, float(v), pt)[1] for v in vg]) + tr.junction_kernel(0.0, pt)[1]
    g_mem = np.array([[didv(0.0, float(G), pd) for G in row] for row in xbar.G])
    return np.argwhere(g_mem + g_row[:, None] == 0)
