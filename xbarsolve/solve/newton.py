"""Newton solver for arrays with nonlinear memristors or transistors.

The unknowns are the potentials of the full nodal system of docs/model.md section 1: every
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
  system solved by two block Gauss-Seidel passes over the row and column chains
  (tridiagonal, with each vector's own cell conductances), so ``O(m n)`` per sweep with
  no factorization.  Its rate is the coupling of the two wire families through the
  cells, ~3e-3 per pass on a 64 x 51 tile with 1-ohm wires, ~0.1 on 576 x 64; cells
  with built-in models use vectorised residual kernels
  (:func:`xbarsolve.solve._newton_kernels.evaluate_2t` without a middle node,
  :func:`~xbarsolve.solve._newton_kernels.evaluate_3t` with one).
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

All-zero input vectors are not iterated where every node at 0 V is their exact solution
(the cells pass no current at 0 V) and no middle node floats: converged, 0 iterations,
residual 0 A.

A vector has converged when every node's KCL residual divided by the node's total
small-signal conductance and the update computed at that point are both at most
``vtol`` (see :func:`solve_newton`).  Column currents are the sums along each column of
what the cells deliver to it (equal by KCL to the current through ``r_out``, but as
accurate as the cell voltages rather than the small column voltages).
"""


from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..crossbar import Crossbar
from ..errors import ConvergenceError
from ..results import SolveResult
from ..topology import topology
from . import _memory, _threads
from ._chord import _chord
from ._exact import _newton_one
from ._lines import _lines
from ._net import _evaluate, _Net, _net, _put, _state, _take, floating_cells
from .options import Iteration, NewtonOptions, OnFailure, Rebuild

__all__ = ["solve_newton", "NewtonOptions"]


def solve_newton(
    xbar: Crossbar,
    V: np.ndarray,
    *,
    full: bool = False,
    options: NewtonOptions | None = None,
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
    options : NewtonOptions, optional
        All of the options below in one validated object; then the keywords must keep
        their defaults.
    iteration, rtol, vtol, itol, max_iterations, lines_iterations, chord_iterations, rebuild, chunk_size, on_failure, callback, threads
        The fields of :class:`~xbarsolve.solve.options.NewtonOptions` (see there), which
        they build.

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
    given = NewtonOptions(iteration=iteration, rtol=rtol, vtol=vtol, itol=itol, max_iterations=max_iterations,
                          lines_iterations=lines_iterations, chord_iterations=chord_iterations, rebuild=rebuild,
                          chunk_size=chunk_size, on_failure=on_failure, callback=callback, threads=threads)
    if options is None:
        options = given
    elif not isinstance(options, NewtonOptions):
        raise TypeError(f"options must be a NewtonOptions or None; got {options!r}")
    elif given != _DEFAULTS:
        changed = sorted(f.name for f in dataclasses.fields(NewtonOptions) if getattr(given, f.name) != getattr(_DEFAULTS, f.name))
        raise TypeError(f"pass either options= or the keyword options, not both; got options= and {changed}")
    V = np.ascontiguousarray(V, dtype=np.float64)
    topo = topology(xbar)
    if topo.has_zero_resistance or not topo.is_ladder:
        return _solve_merged(xbar, V, full, options)
    net = xbar._cache.get("newton")  # the ladder form, kept like the transfer matrix
    if net is None:
        net = xbar._cache["newton"] = _net(xbar)
    m, n = xbar.shape
    chunk = min(_threads.chunk_size(options.chunk_size, xbar.G.size, net.has_mid), V.shape[0])
    _memory.require(16 * chunk * m * n + 2 * _memory.factorization_doubles(max(m, n), min(m, n))
                    + (3 * m * n * V.shape[0] if full else 0),
                    f"Newton on a {m}x{n} array ({chunk} vectors at a time{', full results' if full else ''})",
                    _memory.array_hint(m, n) + " (or a smaller chunk_size)")
    with _threads.kernel_threads(options.threads):
        return _solve(xbar, net, V, full, options)


_DEFAULTS = NewtonOptions()


#: Give all-zero input vectors the zero state without iterating, where it is the exact
#: solution (:func:`_zero_solves`); False iterates them like the others (the path before).
_SKIP_ZERO = True


def _zero_solves(xbar: Crossbar, net: _Net) -> bool:
    """Whether every node at 0 V solves the array for zero inputs exactly (KCL residual 0:
    the devices, transistors and junctions pass no current at 0 V) with a regular Newton
    system there (no floating middle node, :func:`floating_cells`, whose documented error
    zero inputs keep raising), kept in ``net.cache``."""
    if "zero_solves" not in net.cache:
        ev = _evaluate(net, _state(net, np.zeros((1, net.p if net.rows_first else net.q))))
        net.cache["zero_solves"] = bool(ev.res[0] == 0.0 and ev.res_v[0] == 0.0 and not floating_cells(xbar).size)
    return net.cache["zero_solves"]


def _solve(xbar: Crossbar, net: _Net, V: np.ndarray, full: bool, opts: NewtonOptions) -> SolveResult:
    """Every vector through the iterations ``opts`` asks for (:func:`_chunks`), except
    all-zero inputs where the zero state is their exact solution (``_SKIP_ZERO``): those
    are converged with 0 iterations, residual 0 A, all currents and potentials 0."""
    k_all = V.shape[0]
    vtol_k, itol_k = opts.tolerances(V)
    zero = ~V.any(axis=1) if _SKIP_ZERO else np.zeros(k_all, dtype=bool)
    if zero.any() and _zero_solves(xbar, net):
        keep = np.flatnonzero(~zero)
        X = [np.zeros((net.p, net.q, k_all)) for _ in range(3)] if full else None
        currents = np.zeros((net.n_columns, k_all))
        converged, iterations, residual = np.ones(k_all, bool), np.zeros(k_all, np.int64), np.zeros(k_all)
        reasons = {}
        if keep.size:
            cb = None if opts.callback is None else (lambda vec, r: opts.callback(keep[vec], r))
            Xs, currents[:, keep], converged[keep], iterations[keep], residual[keep], why = _chunks(
                net, V[keep], full, opts, vtol_k[keep], itol_k[keep], cb)
            reasons = {int(keep[t]): r for t, r in why.items()}
            if full:
                for a, b in zip(X, Xs):
                    if b.shape == a[:, :, keep].shape:
                        a[:, :, keep] = b
    else:
        X, currents, converged, iterations, residual, reasons = _chunks(net, V, full, opts, vtol_k, itol_k, opts.callback)
    _check_converged(xbar, opts, converged, iterations, residual, vtol_k, reasons,
                     f"the {opts.iteration} iteration did not converge (lines_iterations={opts.lines_iterations}, "
                     f"chord_iterations={opts.chord_iterations})")
    return _result(xbar, net, V, X, currents, full, converged, iterations, residual)


def _chunks(net: _Net, V: np.ndarray, full: bool, opts: NewtonOptions, vtol_k, itol_k, callback):
    """The chunk loop: each chunk of vectors through the iterations ``opts`` asks for.
    Returns the node potentials (``full``; else None), column currents (n, k) and the
    per-vector converged, iterations, residual and failure reasons (by vector)."""
    iteration = opts.iteration
    lines_iterations, chord_iterations = opts.lines_iterations, opts.chord_iterations
    chunk_size = _threads.chunk_size(opts.chunk_size, net.G.size, net.has_mid)
    k_all = V.shape[0]
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
                                                                      lines_iterations, cb, reuse.get(("ev", kk)), shared)
            if iteration == "lines":
                why = ("the line relaxation stalled (its updates shrank by less than half per Gauss-Seidel pass: the wires "
                       "couple rows and columns too strongly for it; iteration='auto' or 'chord' handles that)"
                       if stalled else f"the line relaxation did not converge within lines_iterations={lines_iterations}")
                reasons.update({start + int(t): why for t in np.flatnonzero(~ok)})
        if iteration == "chord" or (iteration == "auto" and not ok.all()):
            # the vectors line relaxation left, afresh (their iterates may have overflowed)
            sub = np.flatnonzero(~ok)
            cbs = None if cb is None else (lambda vec, r, _s=sub: cb(_s[vec], r))
            y, ok_c, its_c, res_c, cur_c = _chord(net, _state(net, V[sl][sub]), vtol_k[idx[sub]], itol_k[idx[sub]],
                                                  chord_iterations, opts.rebuild, shared, cbs)
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
                one, ok_t, it_t, res_t, why, cur_t = _newton_one(net, one, vtol_k[start + t], itol_k[start + t], opts.max_iterations, cbt, start + t)
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
    return X, currents, converged, iterations, residual, reasons


def _check_converged(xbar, opts: NewtonOptions, converged, iterations, residual, vtol_k, reasons: dict, default: str):
    """With ``on_failure="raise"``, raise ConvergenceError for the first vector that failed."""
    if opts.on_failure != "raise" or converged.all():
        return
    t = int(np.flatnonzero(~converged)[0])
    why = reasons.get(t, default) + _floating_message(xbar)
    raise ConvergenceError(
        f"Newton did not converge for input vector {t} (of {converged.size}): {why}; KCL residual "
        f"{residual[t]:.3g} A after {iterations[t]} iterations (voltage tolerance {vtol_k[t]:.3g} V). "
        "Pass on_failure='flag' to get per-vector flags instead.",
        vector=t, iterations=int(iterations[t]), residual=float(residual[t]),
    )


def _solve_merged(xbar: Crossbar, V: np.ndarray, full: bool, opts: NewtonOptions) -> SolveResult:
    """An array with 0-ohm branches or of scheme B or C: exact Newton on the nodal system
    with the nodes 0-ohm branches join merged (:func:`._nodal.solve_merged`), as the sparse
    linear path does."""
    from ._nodal import solve_merged

    if opts.iteration not in ("auto", "newton"):
        raise ValueError(f"iteration={opts.iteration!r} needs every wire, driver and sense resistance > 0 ohm and "
                         "scheme 'A' (the ladder form); an array with 0-ohm branches or of scheme 'B'/'C' is solved by "
                         "exact Newton on its merged nodal system (iteration='auto' or 'newton')")
    vtol_k, itol_k = opts.tolerances(topology(xbar).source_values(V))  # relative to the source potentials (B: v_read)
    currents, X, converged, iterations, residual, reasons, net = solve_merged(
        xbar, V, vtol_k, itol_k, opts.max_iterations, opts.callback)
    _check_converged(xbar, opts, converged, iterations, residual, vtol_k, reasons, "exact Newton did not converge")
    common = dict(method="newton", converged=converged, iterations=iterations, residual=residual)
    if not full:
        return SolveResult(inputs=V, currents=currents, **common)
    v_top, v_mid, v_bottom, cell = net.cell_results(X, V)
    return SolveResult(inputs=V, currents=currents, v_top=v_top, v_bottom=v_bottom, v_mid=v_mid,
                       cell_currents=cell, **common)


def _floating_message(xbar: Crossbar) -> str:
    """What to say about cells whose middle node floats (``""`` when none does)."""
    cells = floating_cells(xbar)
    if not cells.size:
        return ""
    shown = ", ".join(f"({i}, {j})" for i, j in cells[:5]) + (", ..." if len(cells) > 5 else "")
    return (f"; the middle node of {len(cells)} of {xbar.G.size} cells floats ({shown}): at 0 V the memristor "
            "conducts nothing (G = 0 S, or a device with no small-signal conductance at 0 V) and the access "
            "transistor is cut off with no junction leakage, so the nodal equations "
            "leave the node's potential undetermined (a singular Jacobian).  Give the transistor junction leakage "
            "(transistors.Level1 gmin > 0, its default 1e-12 S, or is_ > 0), turn its gate on, or program those cells "
            "with G > 0")


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


def warm_up() -> float:
    """Compile the Newton solver's kernels for the built-in models into Numba's disk cache
    (or load them from it); returns the wall time (s).

    Solves small sinh arrays (24 x 16 and 16 x 24: the ladder's two orientations),
    without and with a Level1 access transistor, through every iteration (``"auto"``,
    ``"lines"``, ``"chord"``, ``"newton"``) for 1, 3 and 12 vectors (the generic and the
    vectorised residual kernels) with full results, and one array with a 0-ohm wire (the
    merged nodal path).  On a fresh install that is about 1.5 minutes of compilation on a
    2-core machine, which ``xbarsolve compile`` (run by ``scripts/setup.sh``) spends once
    so that the first nonlinear solves do not; afterwards it takes about a second.
    User-written models are not covered: their kernels compile once per process.
    ``tests/test_warm_up.py`` checks that solves of other shapes and inputs compile
    nothing after it.
    """
    import time

    from ..devices import Sinh
    from ..transistors import Level1

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    G = rng.uniform(1 / 300e3, 1 / 15e3, (24, 16))
    V = rng.uniform(0.0, 0.4, (12, 24))
    for tr in (None, Level1(v_gate=3.3)):
        for shape in ((24, 16), (16, 24)):  # the ladder's two orientations
            g = G if shape == G.shape else G.T
            xbar = Crossbar(g, r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0, device=Sinh(a=2.0), transistor=tr)
            v = V[:, :shape[0]]
            for iteration in ("auto", "lines", "chord", "newton"):
                # one vector and a few (the generic residual kernel, float64 throughout),
                # a batch (the vectorised kernels, float32 Jacobian and right-hand sides)
                for batch in (v[:1], v[:3], v):
                    solve_newton(xbar, batch, iteration=iteration, full=True, on_failure="flag")
        merged = Crossbar(G, r_row=0.0, r_col=1.0, r_in=1.0, r_out=1.0, device=Sinh(a=2.0), transistor=tr)
        solve_newton(merged, V[:2], full=True, on_failure="flag")
    return time.perf_counter() - t0
