"""The line relaxation of the Newton solver (private; see :mod:`xbarsolve.solve.newton`):
an inexact Newton step per sweep, block Gauss-Seidel passes over the row and column
chains, O(m n) per sweep with no factorization."""

from __future__ import annotations

import numba
import numpy as np

from . import _newton_kernels as _nk
from ._net import _Eval, _Net, _apply, _delivered, _evaluate, _evaluate_at_zero, _put, _state, _take, _try_ladder

#: Block Gauss-Seidel passes over the two chain families per sweep (one residual
#: evaluation); 1 is the relaxation before issue 13, kept for the benchmark's comparison.
_PASSES = 2
#: ... for cells with a middle node, whose evaluation costs ~3 passes (sinh + Level1 on
#: 576 x 64, 32 vectors: 15 against 5 ns per cell and vector), once an earlier group of
#: the call has seen two passes contract by more than ``_MID_RATE`` (:func:`_note_rate`):
#: there the passes, not Newton, set the sweeps, and a third pass saves one (576 x 64:
#: 4 sweeps instead of 5, rate 2e-3; 128 x 128: 1e-3; 256 x 256: 5e-2), while where
#: two passes contract by 1e-5 (64 x 64, 288 x 32, 144 x 16) a third only costs.
#: None: ``_PASSES`` whatever the rate (the path before).
_PASSES_MID: int | None = 3
_MID_RATE = 3e-4
#: The start: ``"sources"`` (every node at its chain's source potential), ``"linear"``
#: (the exact solution of the circuit linearised at 0 V, one block solve with the
#: factorization the chord iteration shares) or ``"gemm"`` (the same solution as one GEMM
#: per plane with the array's linear start matrix, :func:`_start_matrix`, built once and
#: kept; measured in BENCHMARKS.md section 10: on the MNIST CNN's 64 x 51 tiles it saves
#: 0.7 of 3 sweeps and costs about as much in the GEMM and the extra first pass).
_START = "sources"
#: Gauss-Seidel passes of the first sweep after a linear start: its update is the
#: nonlinear correction (~1e-4 V on a 64 x 51 tile of sinh cells), so the pass error
#: (~5e-3 per pass there), not Newton's, sets what the second sweep finds.
_FIRST_PASSES = 3
#: One Gauss-Seidel pass fewer in a sweep predicted to be the last
#: (every vector's update predicted at most ``_LAST_MARGIN * vtol``, see
#: :func:`_predicted_update`): its update only certifies convergence and is applied once,
#: so what a second pass would remove of it is at most ~``rate * vtol``.  A wrong
#: prediction costs a sweep, never accuracy (the convergence test is unchanged).
_LAST_PASS = True
_LAST_MARGIN = 0.5
#: Store each vector's cell Jacobian in float32 (see :func:`._net._evaluate`).
_SINGLE = True
#: ... and the sweep's right-hand sides ``rP``, ``rS`` and the middle nodes' ``m0``
#: (``single_rhs`` of :func:`._net._evaluate`): the passes only solve for the update
#: from them, so their rounding of ~1e-7 is a relative error of the update, which the
#: next sweep's float64 residual corrects like the float32 Jacobian's (the residual
#: norms, the state and the convergence test stay float64).  Half the write traffic of
#: the residual kernels and of the passes' reads.  False is the path before.
_SINGLE_RHS = True
#: Built-in models: the evaluations after a workspace's first write no per-cell column
#: currents (``i_col``; the converged vectors' currents come from
#: :func:`._newton_kernels.column_deliveries`): the workspace holds a placeholder instead.
_SKIP_I_COL = True
#: Blocks of S chains the S-chain kernels (:func:`._newton_kernels.lines_s`,
#: ``lines_pre_s``) split the chains into, one per thread: None is Numba's thread count
#: at the call (one block per thread: each step along a chain then reads one contiguous
#: run of ``q k / threads`` values per array instead of eight short ones); 8 is the split
#: before, kept for the benchmark's comparison.
_S_BLOCKS: int | None = None
#: Precision of the Gauss-Seidel passes' scratch before a sweep's last pass (``out``,
#: ``zS``, ``piv``: the pre-passes' updates, right-hand sides and S pivots, and the P
#: update of the last pass computed in place in ``out``).  Like the cell Jacobian
#: (``_SINGLE``) they only shape the step, whose relative rounding of ~1e-7 (times the
#: chains' conditioning) the next sweep corrects: the residual, the state and the test
#: stay float64.  576 x 64, 256 vectors, one thread, interleaved: 0.95x the CPU time of
#: float64 (sinh + Level1), 0.85x (sinh alone), the same sweeps, currents within 1e-14.
#: ``np.float64`` is the path before.
_SCRATCH = np.float32


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
    with 1-ohm wires, ~0.1 on 576 x 64).  An evaluation costs 1-3 passes (576 x 64, 32
    vectors, one thread, ns per cell and vector: sinh + Level1 15 against 5, sinh alone
    4.4 against 5), so two passes per evaluation take 5 sweeps where one took 8
    (576 x 64, rtol 1e-8); with middle nodes, groups after one whose two passes
    contracted by more than ``_MID_RATE`` take ``_PASSES_MID`` (three: 4 sweeps on
    576 x 64).  Vectors stop
    when their updates stall (shrink by less than half per pass) and are left to the
    chord iteration.  A converged vector's column currents are those of the iterate its
    last update produced (built-in models; user models: of the iterate the test passed on).

    A sweep whose update every vector of the group is predicted to pass the test with
    (:func:`_predicted_update`, from the vectors' last two updates and the passes'
    contraction seen in an earlier group of the same call) takes one pass
    fewer (``_LAST_PASS``): that update only certifies convergence and is applied
    once, so the second pass would remove ~``rate * vtol`` of it (the MNIST CNN's 64 x 51
    tiles: 3 sweeps either way, 5 passes instead of 6).  From a linear start
    (``_START``) the first sweep takes ``_FIRST_PASSES``.
    """
    xP, xS, xM, srcP, srcS = x
    p, q, k = xP.shape
    shared = {} if shared is None else shared
    linear_start = _START != "sources" and _linear_start(net, x, _START, shared)
    if not linear_start:
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
    older = np.full(k, np.inf)  # each vector's update of the sweep before prev's
    ok = np.empty(k, dtype=bool)
    ev, scratch = work if work is not None else (None, None)
    stalled = False
    passes_before = 0  # the passes of the sweep before
    n_passes = _PASSES
    if net.has_mid and _PASSES_MID is not None and shared.get(("gs_rate", _PASSES), 0.0) > _MID_RATE:
        n_passes = _PASSES_MID
    for sweep in range(1, max_sweeps + 1):
        ka = act.size
        passes = _FIRST_PASSES if (sweep == 1 and linear_start) else n_passes
        if (_LAST_PASS and passes > 1 and sweep >= 3
                and (_predicted_update(prev, older, shared.get(("gs_rate", n_passes))) <= _LAST_MARGIN * vtol_y).all()):
            passes -= 1
        last_passes = passes_before
        passes_before = passes
        ev = _evaluate(net, y, per_vector=True, work=ev if ev is not None and ev.rP.shape[2] == ka else None,
                       single=_SINGLE, single_rhs=_SINGLE_RHS)
        if _SKIP_I_COL and net.funcs is None:
            ev.i_col = np.zeros((1, 1, 1))  # the next evaluation with this workspace skips it
        if passes > 1 and (scratch is None or scratch.shape[3] != ka or scratch.dtype != _SCRATCH):
            scratch = np.empty((3, p, q, ka), dtype=_SCRATCH)
        if sweep == 1:
            work = (ev, scratch)
        if callback is not None:
            callback(act, ev.res)
        res[act] = ev.res
        it[act] = sweep
        eP, eS, w = ev.cellv
        steps = np.empty((q, ka))
        blocks = numba.get_num_threads() if _S_BLOCKS is None else _S_BLOCKS
        with np.errstate(all="ignore"):
            rhs = ev.rP
            for _ in range(passes - 1):
                out, zS, piv = scratch
                _nk.lines_pre_p(net.p_diag, eP, net.wp, rhs, w, ev.rS, out, zS)
                _nk.lines_pre_s(net.s_diag, eS, net.c, zS, piv, ev.rP, ev.u, out, blocks)
                rhs = out
            _nk.lines_p(net.p_diag, eP, net.wp, rhs, w, ev.rS)
            _nk.lines_s(net.s_diag, eS, net.c, ev.rS, y[0], y[1], y[2], rhs, ev.m0, ev.mP, ev.mS, net.has_mid, steps, blocks)
        # Converged (the chord iteration's test): small KCL residual at the iterate and
        # small update from it.  Stop when every unconverged vector stalls or overflowed.
        before = prev.copy()
        n_ok, all_slow = _nk.lines_status(ev.res, ev.res_v, steps, itol_y, vtol_y, prev, ok[:ka], 0.5**passes)
        older = before
        if n_ok:
            sel = ok[:ka]
            if sweep >= 2 and last_passes == n_passes:
                _note_rate(shared, prev[sel], before[sel], n_passes)
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
            vtol_y, itol_y, prev, older = vtol_y[idx], itol_y[idx], prev[idx], older[idx]
    if y is not x:
        _put(net, x, act, y, np.arange(act.size))
    return x, done, it, res, cur, stalled, work


def _predicted_update(prev: np.ndarray, older: np.ndarray, rate: float | None) -> np.ndarray:
    """Each vector's update (V) predicted for the next sweep from its last two, ``prev``
    and ``older`` (inf where unknown): ``max(C prev^2, rate prev)``, Newton's quadratic
    term with ``C = prev / older^2`` (an upper bound of the constant, the sweep before
    having contracted by at least Newton's rate) and the Gauss-Seidel passes' contraction
    ``rate`` (:func:`_note_rate`; inf until observed in this call)."""
    with np.errstate(all="ignore"):
        quad = prev * (prev / older) ** 2
        lin = prev * (np.inf if rate is None else rate)
        pred = np.maximum(quad, lin)
    return np.where(prev == 0.0, 0.0, np.where(np.isnan(pred), np.inf, pred))


def _note_rate(shared: dict, step: np.ndarray, before: np.ndarray, passes: int) -> None:
    """Record in ``shared[("gs_rate", passes)]`` the largest contraction ``step / before``
    of the vectors that converged in a sweep after one of ``passes`` passes: there the
    iterate had converged in Newton's sense, so the contraction bounds what the passes
    leave (an upper bound: Newton's own rate is in it too).  Kept per call (``shared``
    lives for one solve), so that a call's iterates do not depend on earlier calls."""
    with np.errstate(all="ignore"):
        r = step / before
    r = r[np.isfinite(r) & (before > 0)]
    if r.size:
        key = ("gs_rate", passes)
        shared[key] = max(float(r.max()), shared.get(key, 0.0))


def _start_matrix(net: _Net, shared: dict | None = None):
    """The linear start of the array, ``(Z, z0)``: the node potentials (V) of the circuit
    linearised at 0 V are ``Z[j] @ V.T + z0[j]`` for the planes ``j`` (``xP``, ``xS`` and,
    with middle nodes, ``xM``, each flattened to ``p q`` rows), ``Z`` of shape
    ``(planes, p q, m)``; ``z0`` is None where it vanishes (devices that pass no current
    at 0 V).  Built once from ``m + 1`` vectors (0 and the unit inputs) through the 0 V
    factorization (:func:`._net._try_ladder`; the linearised circuit is affine in the
    sources) and kept in ``net.cache``; None when that factorization is singular."""
    if "start" in net.cache:
        return net.cache["start"]
    m = net.p if net.rows_first else net.q
    x = _state(net, np.vstack([np.zeros((1, m)), np.eye(m)]))
    ev0, lad = _zero_ladder(net, x, shared)
    start = None
    if lad is not None:
        _apply(net, x, lad, ev0)
        planes = [a.reshape(net.p * net.q, m + 1) for a in (x[:3] if net.has_mid else x[:2])]
        Z = np.stack([a[:, 1:] - a[:, :1] for a in planes])
        z0 = np.stack([a[:, 0] for a in planes])
        if np.isfinite(Z).all() and np.isfinite(z0).all():
            start = (Z, z0 if z0.any() else None)
    net.cache["start"] = start
    return start


def _linear_start(net: _Net, x, how: str, shared: dict | None) -> bool:
    """Set the potentials of the state ``x`` to the solution of the circuit linearised at
    0 V: ``how="linear"`` by a block solve with the 0 V factorization (shared with the
    chord iteration through ``shared``), ``"gemm"`` by one GEMM per plane with
    :func:`_start_matrix`.  False (``x`` untouched) where that factorization is singular."""
    if how == "gemm":
        start = _start_matrix(net, shared)
        if start is None:
            return False
        Z, z0 = start
        xP = x[0]
        p, q, k = xP.shape
        VT = x[3] if net.rows_first else x[4]  # the inputs (m, k)
        for plane, a in zip(Z, x[:3]):
            if a.flags.c_contiguous:
                np.matmul(plane, VT, out=a.reshape(p * q, k))
            else:
                a[:] = (plane @ VT).reshape(p, q, k)
        if z0 is not None:
            for b, a in zip(z0, x[:3]):
                a += b.reshape(p, q, 1)
        return True
    ev0, lad = _zero_ladder(net, x, shared)
    if lad is None:
        return False
    for a in x[:3]:
        a.fill(0.0)
    _apply(net, x, lad, ev0)
    return True


def _zero_ladder(net: _Net, x, shared: dict | None):
    """The evaluation of the state ``x`` at 0 V and the factorization of the circuit
    linearised there (None where singular), the latter kept in ``shared["zero"]`` for the
    chord iteration of the same call."""
    shared = {} if shared is None else shared
    ev0 = _evaluate_at_zero(net, x, shared)
    if "zero" not in shared:
        shared["zero"] = _try_ladder(net, ev0.cells)
    return ev0, shared["zero"]
