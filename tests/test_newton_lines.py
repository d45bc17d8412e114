"""The line relaxation's Gauss-Seidel passes (issue 13): the pass kernels against a NumPy
block Gauss-Seidel, the cells' ``u`` plane against the NumPy cell laws, and one and two
passes per sweep (and the linear start) against each other and the NumPy Newton twin."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from naive_newton import cell_system, device_iv, naive_newton
from test_newton import TRANSISTORS, random_array, rel

DEVICES_SINH = xs.devices.Sinh(a=2.5)
from xbarsolve.solve import _lines, _net
from xbarsolve.solve import _newton_kernels as nk


def _chains(diag, off, rhs):
    """Solve ``tridiag(-off, diag, -off) x = rhs`` along axis 0 of (n, ...) arrays, dense
    NumPy (``diag`` (n, ...), ``off`` (n - 1, ...) broadcast against ``rhs``)."""
    n = rhs.shape[0]
    out = np.empty_like(rhs)
    for idx in np.ndindex(rhs.shape[1:]):
        A = np.diag(diag[(slice(None), *idx)]) - np.diag(off[(slice(None), *idx)], 1) - np.diag(off[(slice(None), *idx)], -1)
        out[(slice(None), *idx)] = np.linalg.solve(A, rhs[(slice(None), *idx)]) if n > 1 else rhs[(slice(None), *idx)] / A[0, 0]
    return out


def naive_sweep(net, ev, passes):
    """Block Gauss-Seidel on the condensed Newton system, NumPy: ``passes`` times, the P
    chains ``(wires + eP) dP = rP + u dS`` (dS = 0 at first), then the S chains
    ``(wires + eS) dS = rS + w dP``.  Returns (dP, dS, dM)."""
    eP, eS, w = ev.cellv
    u = ev.u
    k = ev.rP.shape[2]
    wp = np.broadcast_to(net.wp[:, :, None], (*net.wp.shape, k))
    c = np.broadcast_to(net.c[:, :, None], (*net.c.shape, k))
    dS = np.zeros_like(ev.rP)
    for _ in range(passes):
        rhs = ev.rP + u * dS
        dP = np.swapaxes(_chains(np.swapaxes(net.p_diag[:, :, None] + eP, 0, 1), np.swapaxes(wp, 0, 1),
                                 np.swapaxes(rhs, 0, 1)), 0, 1)
        dS = _chains(net.s_diag[:, :, None] + eS, c, ev.rS + w * dP)
    dM = ev.m0 + ev.mP * dP + ev.mS * dS if net.has_mid else None
    return dP, dS, dM


@pytest.mark.parametrize("tr", [None, "level1"])
@pytest.mark.parametrize("shape", [(9, 6), (5, 8)])  # rows first, columns first
@pytest.mark.parametrize("k", [3, 11])  # the generic kernel and the vectorised ones
@pytest.mark.parametrize("passes", [1, 2, 3])
@pytest.mark.parametrize("n_blocks", [1, 3, 8])  # blocks of S chains (threads take blocks)
def test_gauss_seidel_passes_match_numpy(rng, tr, shape, k, passes, n_blocks):
    """The kernels of a sweep (``lines_pre_p``, ``lines_pre_s`` for each pass before the
    last, then ``lines_p``, ``lines_s``) against the NumPy block Gauss-Seidel: the same
    update of every node, and each chain's largest |update| in ``steps``."""
    xbar = random_array(rng, *shape, xs.devices.Sinh(a=2.5), None if tr is None else TRANSISTORS[tr])
    net = _net._net(xbar)
    x = _net._state(net, rng.uniform(0.0, 0.4, (k, shape[0])))
    for a in x[:3]:
        a[:] = rng.uniform(-0.1, 0.4, a.shape)
    ev = _net._evaluate(net, x, per_vector=True)
    dP, dS, dM = naive_sweep(net, ev, passes)
    eP, eS, w = ev.cellv
    y = [a.copy() for a in x[:3]]
    p, q = net.p, net.q
    steps = np.empty((q, k))
    rhs = ev.rP.copy()
    rS = ev.rS.copy()
    eS_ = eS.copy()
    out, zS, piv = (np.empty((p, q, k)) for _ in range(3))
    for _ in range(passes - 1):
        nk.lines_pre_p(net.p_diag, eP, net.wp, rhs, w, rS, out, zS)
        nk.lines_pre_s(net.s_diag, eS_, net.c, zS, piv, ev.rP, ev.u, out, n_blocks)
        rhs = out
    np.testing.assert_array_equal(rS, ev.rS)  # the pre-passes leave the residual alone
    nk.lines_p(net.p_diag, eP, net.wp, rhs, w, rS)
    nk.lines_s(net.s_diag, eS_, net.c, rS, y[0], y[1], y[2], rhs, ev.m0, ev.mP, ev.mS, net.has_mid, steps, n_blocks)
    scale = max(np.abs(dP).max(), np.abs(dS).max())
    assert np.abs((y[0] - x[0]) - dP).max() <= 1e-12 * scale
    assert np.abs((y[1] - x[1]) - dS).max() <= 1e-12 * scale
    big = np.maximum(np.abs(dP), np.abs(dS))
    if net.has_mid:
        assert np.abs((y[2] - x[2]) - dM).max() <= 1e-12 * scale
        big = np.maximum(big, np.abs(dM))
    np.testing.assert_allclose(steps, big.max(axis=0), rtol=1e-12, atol=1e-12 * scale)


@pytest.mark.parametrize("tr", [None, "level1", "resistor"])
@pytest.mark.parametrize("shape", [(9, 6), (5, 8)])
@pytest.mark.parametrize("k", [3, 11])
def test_cells_u_plane_matches_numpy(rng, tr, shape, k):
    """``u`` (the S coupling of the P equation, ``+eP dP - u dS``) that every residual
    kernel writes for the passes: the NumPy cell laws' ``cTB`` (P = top nodes) or
    ``cBT`` (P = bottom nodes); for two-terminal cells it is dI/dV, every other entry."""
    transistor = None if tr is None else TRANSISTORS[tr]
    xbar = random_array(rng, *shape, xs.devices.Sinh(a=2.5), transistor)
    net = _net._net(xbar)
    x = _net._state(net, rng.uniform(0.0, 0.4, (k, shape[0])))
    for a in x[:3]:
        a[:] = rng.uniform(-0.6, 1.2, a.shape)
    ev = _net._evaluate(net, x, per_vector=True)
    flip = (lambda a: a) if net.rows_first else (lambda a: np.swapaxes(a, 0, 1))
    if net.has_mid:
        vT, vB = (x[0], x[1]) if net.rows_first else (x[1], x[0])
        ref = cell_system(xbar, *(np.moveaxis(flip(v), 2, 0) for v in (vT, x[2], vB)))
        want = np.moveaxis(ref["cTB" if net.rows_first else "cBT"], 0, 2)
    else:
        sgn = 1.0 if net.rows_first else -1.0  # the cell voltage is sgn (P - S)
        want = flip(device_iv(xbar.device, sgn * (x[0] - x[1]), net.G[:, :, None])[1])
        np.testing.assert_array_equal(ev.u, ev.cellv[0])
    got = flip(ev.u)
    assert np.abs(got - want).max() <= 1e-13 * np.abs(want).max()


@pytest.mark.parametrize("tr", [None, "level1"])
def test_one_and_two_passes_and_linear_start_agree(rng, tr, monkeypatch):
    """Two Gauss-Seidel passes per sweep (the default) take fewer sweeps than one on an
    array whose wire families couple (~0.1 per pass), the linear start fewer still, and
    all three reach the NumPy Newton twin's currents."""
    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (144, 16)), r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0,
                       device=xs.devices.Sinh(a=2.0), transistor=None if tr is None else TRANSISTORS[tr])
    V = rng.uniform(0.0, 0.4, (9, 144))
    ref, *_ = naive_newton(xbar, V[:2])
    got = {}
    for passes, start in ((1, "sources"), (2, "sources"), (2, "linear")):
        monkeypatch.setattr(_lines, "_PASSES", passes)
        monkeypatch.setattr(_lines, "_START", start)
        got[passes, start] = res = xs.solve(xbar, V, iteration="lines", rtol=1e-12)
        assert res.converged.all()
        assert rel(res.currents[:2], ref) < 1e-10
    one, two, lin = (got[key].iterations for key in ((1, "sources"), (2, "sources"), (2, "linear")))
    assert (two < one).all() and (lin <= two).all() and (lin < one).all(), (one, two, lin)
    assert rel(got[2, "sources"].currents, got[1, "sources"].currents) < 1e-10


def test_third_pass_for_middle_nodes_where_two_contract_slowly(rng, monkeypatch):
    """Cells with a middle node take ``_PASSES_MID`` passes in the groups after one whose
    two passes contracted by more than ``_MID_RATE``: on 1-ohm wires (two passes contract
    by ~1e-5 on 144 x 16) nothing changes, bit for bit; on 10-ohm wires the groups after
    the first take fewer sweeps and reach the same currents."""
    for r_wire, coupled in ((1.0, False), (10.0, True)):
        xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (144, 16)), r_row=r_wire, r_col=r_wire, r_in=1.0,
                           r_out=1.0, device=xs.devices.Sinh(a=2.0), transistor=TRANSISTORS["level1"])
        V = rng.uniform(0.0, 0.4, (24, 144))
        runs = {}
        for mid in (None, 3):
            monkeypatch.setattr(_lines, "_PASSES_MID", mid)
            runs[mid] = xs.solve(xbar, V, iteration="lines", rtol=1e-12, chunk_size=8)
            assert runs[mid].converged.all()
        two, three = runs[None], runs[3]
        np.testing.assert_array_equal(three.iterations[:8], two.iterations[:8])  # the first group: two passes
        if coupled:
            assert (three.iterations[8:] < two.iterations[8:]).all(), (two.iterations, three.iterations)
            assert rel(three.currents, two.currents) < 1e-10
        else:
            np.testing.assert_array_equal(three.iterations, two.iterations)
            np.testing.assert_array_equal(three.currents, two.currents)


@pytest.mark.parametrize("flag, before, now", [("_SCRATCH", np.float64, np.float32), ("_SINGLE_RHS", False, True)],
                         ids=["pass-scratch", "right-hand-sides"])
@pytest.mark.parametrize("tr", [None, "level1"])
def test_float32_pass_data_takes_the_same_sweeps_to_the_same_currents(rng, tr, flag, before, now, monkeypatch):
    """The passes' scratch (``_SCRATCH``) and the sweeps' right-hand sides and ``m0``
    (``_SINGLE_RHS``) in float32, the defaults, against float64: the same sweeps on arrays
    whose chains are long (576 x 16, 16 x 576: the S chains' and the P chains'
    conditioning ~1e5), and currents that agree to the solver's tolerance and reach the
    NumPy Newton twin's."""
    assert getattr(_lines, flag) == now
    for shape in ((576, 16), (16, 576)):
        xbar, V = _wire_array(rng, shape, tr)
        got = {}
        for value in (before, now):
            monkeypatch.setattr(_lines, flag, value)
            got[value] = xs.solve(xbar, V, iteration="lines", rtol=1e-10)
        _assert_same_sweeps_and_currents(xbar, V, got[now], got[before])


def _wire_array(rng, shape, tr):
    """A sinh array on 1-ohm wires and drivers (with the transistor ``tr``) and 40 inputs."""
    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, shape), r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0,
                       device=xs.devices.Sinh(a=2.0), transistor=None if tr is None else TRANSISTORS[tr])
    return xbar, rng.uniform(0.0, 0.4, (40, shape[0]))


def _assert_same_sweeps_and_currents(xbar, V, now, before):
    """Both solves converged in the same sweeps to currents within 1e-9 of each other, and
    ``now``'s reach the NumPy Newton twin's."""
    assert now.converged.all() and before.converged.all()
    np.testing.assert_array_equal(now.iterations, before.iterations)
    assert rel(now.currents, before.currents) < 1e-9
    ref, *_ = naive_newton(xbar, V[:1])
    assert rel(now.currents[:1], ref) < 1e-9


@pytest.mark.parametrize("tr", [None, "level1"])
def test_float32_p_chain_pivots_take_the_same_sweeps_to_the_same_currents(rng, tr, monkeypatch):
    """The P chains' pivots in the cell Jacobian's float32, computed before the forward
    substitution (``_newton_kernels._P_PIVOTS_FIRST``, the default), against the kernels
    before (``p_chains_before()``: float64 pivots): the same sweeps in both ladder
    orientations (576 x 16, 16 x 576: P chains of 16 nodes, S chains of 576) and on a
    square array (P chains as long as the S chains, 160 nodes), currents that agree to
    the solver's tolerance and reach the NumPy Newton twin's.  (The split loops
    themselves are checked in float64, where they give the pivots of the loop before
    exactly: ``test_gauss_seidel_passes_match_numpy``.)"""
    assert nk._P_PIVOTS_FIRST
    before = nk.p_chains_before()
    for shape in ((576, 16), (16, 576), (160, 160)):
        xbar, V = _wire_array(rng, shape, tr)
        assert _net._net(xbar).q == min(shape)  # the P chains' length
        now = xs.solve(xbar, V, iteration="lines", chunk_size=20)
        with monkeypatch.context() as mp:
            mp.setattr(nk, "lines_p", before[0])
            mp.setattr(nk, "lines_pre_p", before[1])
            old = xs.solve(xbar, V, iteration="lines", chunk_size=20)
        _assert_same_sweeps_and_currents(xbar, V, now, old)


@pytest.mark.parametrize("tr", [None, "level1"])
def test_single_rhs_evaluation_rounds_only_what_it_stores(rng, tr):
    """``single_rhs``: ``rP``, ``rS`` and ``m0`` are the float64 evaluation's rounded to
    float32, and the residual norms are the float64 ones (taken before rounding)."""
    xbar = random_array(rng, 7, 5, xs.devices.Sinh(a=2.5), None if tr is None else TRANSISTORS[tr])
    net = _net._net(xbar)
    x = _net._state(net, rng.uniform(0.0, 0.4, (11, 7)))
    for a in x[:3]:
        a[:] = rng.uniform(-0.1, 0.4, a.shape)
    wide = _net._evaluate(net, x, per_vector=True, single=True)
    narrow = _net._evaluate(net, x, per_vector=True, single=True, single_rhs=True)
    names = ("rP", "rS") + (("m0",) if tr else ())
    for name in names:
        got, want = getattr(narrow, name), getattr(wide, name)
        assert got.dtype == np.float32, name
        np.testing.assert_array_equal(got, want.astype(np.float32))
    np.testing.assert_array_equal(narrow.res, wide.res)
    np.testing.assert_array_equal(narrow.res_v, wide.res_v)


@pytest.mark.parametrize("tr", [None, "level1", "resistor"])
@pytest.mark.parametrize("k", [3, 11])  # the generic kernel and the vectorised ones
def test_evaluation_without_column_currents_is_the_same(rng, tr, k):
    """With the (1, 1, 1) placeholder the line relaxation leaves in its workspace instead
    of ``i_col``, every residual kernel writes the same residual, Jacobian and norms, and
    leaves the placeholder alone."""
    xbar = random_array(rng, 7, 5, xs.devices.Sinh(a=2.5), None if tr is None else TRANSISTORS[tr])
    net = _net._net(xbar)
    x = _net._state(net, rng.uniform(0.0, 0.4, (k, 7)))
    for a in x[:3]:
        a[:] = rng.uniform(-0.1, 0.4, a.shape)
    full = _net._evaluate(net, x, per_vector=True, single=True)
    want = [a.copy() for a in (full.rP, full.rS, full.m0, full.mP, full.mS, full.res, full.res_v, *full.cellv, full.u)]
    full.i_col = placeholder = np.zeros((1, 1, 1))
    got = _net._evaluate(net, x, per_vector=True, work=full, single=True)
    for a, b in zip(want, (got.rP, got.rS, got.m0, got.mP, got.mS, got.res, got.res_v, *got.cellv, got.u)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(placeholder, 0.0)


@pytest.mark.parametrize("tr", [None, "level1", "resistor"])
@pytest.mark.parametrize("shape", [(9, 6), (5, 8)])
def test_column_deliveries_match_the_evaluation(rng, tr, shape):
    """``column_deliveries`` (the currents the line relaxation reports, at its last
    iterate) is the residual kernel's ``i_col`` at the same potentials, and for
    two-terminal cells the NumPy device law."""
    xbar = random_array(rng, *shape, xs.devices.Sinh(a=2.5), None if tr is None else TRANSISTORS[tr])
    net = _net._net(xbar)
    k = 13
    x = _net._state(net, rng.uniform(0.0, 0.4, (k, shape[0])))
    for a in x[:3]:
        a[:] = rng.uniform(-0.6, 1.2, a.shape)
    ev = _net._evaluate(net, x, per_vector=True)
    out = np.empty_like(x[0])
    nk.column_deliveries(x[0], x[1], x[2] if net.has_mid else x[0], net.G, net.vgc, net.pd, net.pt, net.rows_first,
                         net.has_mid, out)
    assert np.abs(out - ev.i_col).max() <= 1e-13 * np.abs(ev.i_col).max()
    if not net.has_mid:
        sgn = 1.0 if net.rows_first else -1.0
        im = device_iv(xbar.device, sgn * (x[0] - x[1]), net.G[:, :, None])[0]
        assert np.abs(out - im).max() <= 1e-13 * np.abs(im).max()
    sel = np.arange(k) % 3 == 1
    np.testing.assert_allclose(_net._delivered(net, x, sel), ev.column_currents(net)[:, sel], rtol=1e-13,
                               atol=1e-13 * np.abs(ev.i_col).max())
    np.testing.assert_allclose(_net._delivered(net, x, np.ones(k, bool)), ev.column_currents(net), rtol=1e-13,
                               atol=1e-13 * np.abs(ev.i_col).max())  # the whole group: no gather


def test_line_relaxation_currents_are_those_of_its_last_iterate(rng):
    """At the default tolerance (rtol 1e-8) a 64 x 51 tile converges in 3 sweeps of two
    passes, the last update ~1e-9 V; the currents of the iterate before it were 6e-9 from
    the converged ones, those after it (what is reported) are within 1e-9."""
    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (64, 51)), r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0,
                       device=xs.devices.Sinh(a=2.0))
    V = rng.uniform(0.0, 0.4, (16, 64))
    ref = xs.solve(xbar, V, iteration="newton", rtol=1e-13)
    res = xs.solve(xbar, V, iteration="lines")
    assert res.converged.all()
    assert rel(res.currents, ref.currents) < 1e-9


@pytest.mark.parametrize("tr", [None, "level1"])
@pytest.mark.parametrize("shape", [(12, 7), (6, 11)])
def test_gemm_start_is_the_linear_solution_at_zero_volts(rng, tr, shape):
    """The start matrix's GEMM gives the node potentials of the circuit linearised at 0 V:
    the NumPy twin's first undamped Newton step from 0 V and the block-solve start
    (``_START = "linear"``), for tall and wide arrays, with and without middle nodes."""
    xbar = random_array(rng, *shape, xs.devices.Sinh(a=2.0), None if tr is None else TRANSISTORS[tr])
    net = _net._net(xbar)
    V = rng.uniform(0.0, 0.4, (5, shape[0]))
    got = _net._state(net, V)
    assert _lines._linear_start(net, got, "gemm", {})
    blk = _net._state(net, V)
    assert _lines._linear_start(net, blk, "linear", {})
    _, vt, vm, vb = naive_newton(xbar, V, first_step=True)
    flip = (lambda a: a) if net.rows_first else (lambda a: np.swapaxes(a, 0, 1))
    top, bottom = (got[0], got[1]) if net.rows_first else (got[1], got[0])
    for a, b in ((top, vt), (bottom, vb)) + (((got[2], vm),) if net.has_mid else ()):
        np.testing.assert_allclose(np.moveaxis(flip(a), 2, 0), b, rtol=0, atol=1e-12 * np.abs(V).max())
    for a, b in zip(got[:3], blk[:3]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13 * np.abs(V).max())
    Z, z0 = net.cache["start"]
    assert Z.shape == (3 if net.has_mid else 2, xbar.G.size, shape[0]) and z0 is None  # sinh passes 0 A at 0 V


@pytest.mark.parametrize("tr", [None, "level1"])
def test_gemm_start_and_single_last_pass_reach_the_twin(rng, tr, monkeypatch):
    """From the GEMM start (three passes in its first sweep) and with one pass in the
    sweeps predicted to be the last, the line relaxation reaches the NumPy Newton twin's
    currents, in no more sweeps than from the source start (GEMM; fewer for the vectors
    whose cell voltages stay small, 0.1 V here) and with fewer passes for the same sweeps
    (single last pass, once the passes' contraction has been seen in an earlier chunk)."""
    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (64, 40)), r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0,
                       device=xs.devices.Sinh(a=2.0), transistor=None if tr is None else TRANSISTORS[tr])
    V = rng.uniform(0.0, 0.4, (48, 64))
    V[::2] *= 0.25
    ref, *_ = naive_newton(xbar, V[:3])
    calls = []
    pre_p = nk.lines_pre_p
    monkeypatch.setattr(nk, "lines_pre_p", lambda *a: (calls.append(a[3].shape[2]), pre_p(*a))[1])
    got = {}
    for start, last in (("sources", False), ("sources", True), ("gemm", True)):
        monkeypatch.setattr(_lines, "_START", start)
        monkeypatch.setattr(_lines, "_LAST_PASS", last)
        calls.clear()
        res = xs.solve(xbar, V, iteration="lines", chunk_size=16)
        assert res.converged.all()
        assert rel(res.currents[:3], ref) < 1e-9  # rtol 1e-8 of the inputs
        got[start, last] = res.iterations, sum(calls)
    (it_two, pre_two), (it_one, pre_one), (it_gemm, _) = got.values()
    np.testing.assert_array_equal(it_one, it_two)
    assert pre_one < pre_two, (pre_one, pre_two)
    assert (it_gemm <= it_two).all() and (it_gemm[::2] < it_two[::2]).all(), (it_gemm, it_two)


def test_predicted_update_bounds():
    """The prediction for the next sweep: Newton's term ``prev^3 / older^2`` and the passes'
    ``rate * prev``, the larger of the two; 0 for a vector already at its solution, inf
    while the passes' rate is unknown or the history is NaN."""
    prev, older = np.array([1e-6, 1e-6, 0.0, np.nan]), np.array([1e-2, 1e-4, 0.0, 1.0])
    got = _lines._predicted_update(prev, older, 1e-5)
    np.testing.assert_allclose(got[:2], [max(1e-18 / 1e-4, 1e-11), max(1e-18 / 1e-8, 1e-11)], rtol=1e-12)
    assert got[2] == 0.0 and got[3] == np.inf
    assert np.isinf(_lines._predicted_update(prev[:2], older[:2], None)).all()


def test_zero_inputs_take_the_zero_state_without_iterating(rng):
    """All-zero input vectors are converged at the zero state with 0 iterations and
    residual 0 (exact: the cells pass no current at 0 V); the others are solved as
    before (the NumPy twin), full outputs scattered back in place, and the callback sees
    only the others' batch indices."""
    from xbarsolve.solve import newton

    xbar = random_array(rng, 9, 7, DEVICES_SINH, TRANSISTORS["level1"])
    V = rng.uniform(0.0, 0.4, (7, 9))
    V[[0, 2, 3]] = 0.0
    seen = set()
    res = xs.solve(xbar, V, full=True, rtol=1e-12, callback=lambda vec, r: seen.update(vec.tolist()))
    assert res.converged.all() and (res.iterations[[0, 2, 3]] == 0).all() and (res.iterations[[1, 4, 5, 6]] > 0).all()
    assert (res.residual[[0, 2, 3]] == 0).all() and (res.currents[[0, 2, 3]] == 0).all()
    assert seen == {1, 4, 5, 6}
    ref, vt, vm, vb = naive_newton(xbar, V)
    assert np.abs(res.currents - ref).max() <= 1e-10 * np.abs(ref).max()
    for a, b in ((res.v_top, vt), (res.v_mid, vm), (res.v_bottom, vb)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert newton._zero_solves(xbar, xbar._cache["newton"])
    zeros = xs.solve(xbar, np.zeros((2, 9)))
    assert zeros.converged.all() and (zeros.iterations == 0).all() and (zeros.currents == 0).all()


def test_zero_inputs_on_floating_middle_nodes_keep_the_documented_error(rng):
    """Where middle nodes float at 0 V (a device without conductance at 0 V behind a
    cut-off transistor without leakage), zero inputs are iterated as before and raise the
    singular-Jacobian error that names the floating cells."""
    from test_newton import Cube

    from xbarsolve.solve import newton

    xbar = random_array(rng, 6, 5, Cube(), xs.transistors.Level1(v_gate=0.0, is_=0.0, gmin=0.0))
    with pytest.raises(xs.ConvergenceError, match="singular.*floats"):
        xs.solve(xbar, np.zeros((2, 6)))
    assert not newton._zero_solves(xbar, xbar._cache["newton"])
