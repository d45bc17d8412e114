"""Newton solver for nonlinear arrays: against the NumPy twin, against ngspice, convergence, failures."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import xbarsolve as xs
from naive_newton import naive_newton, naive_residual

DOCS = Path(__file__).resolve().parents[1] / "docs" / "nonlinear.md"

DEVICES = {
    "linear": xs.devices.Linear(),
    "sinh": xs.devices.Sinh(a=2.5),
    "poly": xs.devices.Poly(a2=1e-6, a3=5e-6),
}
TRANSISTORS = {
    "switch": xs.transistors.Switch(),
    "resistor": xs.transistors.Resistor(r_on=2e3),
    "level1": xs.transistors.Level1(),
}


def random_array(rng, m, n, device, transistor, **kw):
    """Paper-range conductances, non-uniform wires and per-line driver / sense resistances."""
    G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
    return xs.Crossbar(
        G, r_row=rng.uniform(0.5, 3.0, (m, n - 1)), r_col=rng.uniform(0.5, 3.0, (m - 1, n)),
        r_in=rng.uniform(1.0, 5.0, m), r_out=rng.uniform(1.0, 5.0, n), device=device, transistor=transistor, **kw,
    )


def rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


# ------------------------------------------------------------- vs NumPy twin
@pytest.mark.parametrize("dev", list(DEVICES))
@pytest.mark.parametrize("tr", [None, *TRANSISTORS])
@pytest.mark.parametrize("shape, drive, sense", [((9, 7), "left", "bottom"), ((6, 11), "both", "both"), ((7, 5), "right", "top")])
@pytest.mark.parametrize("iteration", ["auto", "lines", "chord", "newton"])
def test_matches_naive_newton(rng, dev, tr, shape, drive, sense, iteration):
    """Every iteration, exact Newton included, against the NumPy twin (dense Newton on
    the full nodal system, tests/naive_newton.py): currents and every node potential."""
    xbar = random_array(rng, *shape, DEVICES[dev], None if tr is None else TRANSISTORS[tr], drive=drive, sense=sense)
    V = rng.uniform(0.0, 0.4, (3, shape[0]))
    ref, vt, vm, vb = naive_newton(xbar, V)
    if xbar.is_linear:
        if iteration != "auto":  # Newton's options are refused, not ignored
            with pytest.raises(TypeError, match="iteration"):
                xs.solve(xbar, V, iteration=iteration)
        res = xs.solve(xbar, V, full=True)
        assert res.method != "newton"
    else:
        res = xs.solve(xbar, V, full=True, rtol=1e-12, iteration=iteration)
        assert res.method == "newton" and res.converged.all()
    assert rel(res.currents, ref) < 1e-10
    np.testing.assert_allclose(res.v_top, vt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.v_bottom, vb, rtol=0, atol=1e-12)
    if res.v_mid is not None:
        np.testing.assert_allclose(res.v_mid, vm, rtol=0, atol=1e-12)


def test_kcl_residual_of_solution_is_round_off(rng):
    xbar = random_array(rng, 12, 10, DEVICES["sinh"], TRANSISTORS["level1"])
    V = rng.uniform(0.0, 0.4, (2, 12))
    res = xs.solve(xbar, V, full=True, rtol=1e-13)
    # round-off floor of a KCL sum: a few ulps of the node voltages times the largest
    # wire conductance
    g_wire = max((1 / xbar.r_row_segments).max(), (1 / xbar.r_col_segments).max(), (1 / xbar.r_in_rows).max(),
                 (1 / xbar.r_out_columns).max())
    floor = 64 * np.finfo(float).eps * V.max() * g_wire
    for k in range(2):
        r = naive_residual(xbar, V[k], res.v_top[k], res.v_mid[k], res.v_bottom[k])
        assert r < floor
        assert res.residual[k] <= floor


def test_chord_newton_auto_and_batching_agree(rng):
    xbar = random_array(rng, 20, 12, xs.devices.Sinh(a=4.0), xs.transistors.Level1(v_gate=2.0))
    V = rng.uniform(0.0, 0.4, (7, 20))
    a = xs.solve(xbar, V, iteration="chord", rtol=1e-12)
    b = xs.solve(xbar, V, iteration="newton", rtol=1e-12)
    c = xs.solve(xbar, V, chunk_size=3, rtol=1e-12)
    singles = np.concatenate([xs.solve(xbar, v, rtol=1e-12).currents for v in V])
    for other in (b, c):
        assert rel(a.currents, other.currents) < 1e-9
    assert rel(singles, a.currents) < 1e-9
    assert (a.iterations < 15).all() and a.converged.all()
    # the default tolerance (rtol = 1e-8) keeps the currents within ~1e-8
    assert rel(xs.solve(xbar, V).currents, b.currents) < 1e-7
    zero = xs.solve(xbar, np.zeros(20))
    assert np.all(zero.currents == 0)


@pytest.mark.parametrize("tr", [None, "level1"])
def test_line_relaxation_converges_in_a_few_sweeps_on_tiles(rng, tr):
    """On a 64 x 64 tile with 1-ohm wires the two wire families barely couple (~1e-2 per
    sweep), so the line relaxation needs only a few sweeps, and "auto" uses it alone."""
    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (64, 64)), r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0,
                       device=xs.devices.Sinh(a=2.0), transistor=None if tr is None else TRANSISTORS[tr])
    V = rng.uniform(0.0, 0.4, (6, 64))
    lines = xs.solve(xbar, V, iteration="lines", rtol=1e-12)
    assert lines.converged.all() and (lines.iterations <= 7).all(), lines.iterations
    newton = xs.solve(xbar, V, iteration="newton", rtol=1e-12)
    assert rel(lines.currents, newton.currents) < 1e-10
    auto = xs.solve(xbar, V)
    assert (auto.iterations == xs.solve(xbar, V, iteration="lines").iterations).all()


def test_line_relaxation_drops_converged_vectors_and_keeps_their_state(rng, monkeypatch):
    """Vectors that converge early (here the zero inputs, in one sweep, iterated since
    ``_SKIP_ZERO`` is off) leave the batch being iterated; their node potentials and
    currents, and those of the others, are still the solution (checked against the NumPy
    twin with full outputs)."""
    from xbarsolve.solve import newton

    monkeypatch.setattr(newton, "_SKIP_ZERO", False)
    xbar = random_array(rng, 9, 7, DEVICES["sinh"], TRANSISTORS["level1"])
    V = rng.uniform(0.0, 0.4, (7, 9))
    V[[0, 2, 3, 5, 6]] = 0.0
    res = xs.solve(xbar, V, full=True, iteration="lines", rtol=1e-12)
    assert res.converged.all() and (res.iterations[[0, 2, 3, 5, 6]] == 1).all() and (res.iterations[[1, 4]] > 2).all()
    ref, vt, vm, vb = naive_newton(xbar, V)
    assert rel(res.currents, ref) < 1e-10
    for a, b in ((res.v_top, vt), (res.v_mid, vm), (res.v_bottom, vb)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_auto_hands_stalled_line_relaxation_to_the_chord_iteration(rng):
    """200-ohm wires couple rows and columns strongly (~0.8 per sweep): the line
    relaxation stalls, says so, and "auto" finishes with the chord iteration."""
    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (40, 40)), r_row=200.0, r_col=200.0, r_in=1.0, r_out=1.0,
                       device=xs.devices.Sinh(a=2.0))
    V = rng.uniform(0.0, 0.4, (3, 40))
    lines = xs.solve(xbar, V, iteration="lines", on_failure="flag")
    assert not lines.converged.any() and (lines.iterations < 10).all()
    with pytest.raises(xs.ConvergenceError, match="stalled"):
        xs.solve(xbar, V, iteration="lines")
    auto = xs.solve(xbar, V, rtol=1e-12)
    ref, *_ = naive_newton(xbar, V)
    assert auto.converged.all() and (auto.iterations > lines.iterations).all()
    assert rel(auto.currents, ref) < 1e-10


def test_vectorised_exponential_matches_numpy():
    """The sinh kernel's own exp (written so that LLVM vectorises it) is within 1 ulp of
    NumPy's over the whole float64 range, inf above it and 0 below it."""
    from xbarsolve.solve import _newton_kernels as nk

    x = np.concatenate([np.linspace(-760.0, 760.0, 40001), [709.78, 709.79, -709.79, -745.2, 0.0, 1e-300, -1e-300]])
    out = np.empty_like(x)
    lo, hi = np.empty(x.size, dtype=np.int64), np.empty(x.size, dtype=np.int64)
    for scale in (1.0, -2.5):
        nk._exp_rows(x, scale, out, lo, hi)
        with np.errstate(over="ignore", under="ignore"):
            ref = np.exp(scale * x)
        normal = np.isfinite(ref) & (ref >= np.finfo(float).tiny)
        assert np.all(np.abs(out[normal] / ref[normal] - 1.0) <= 2.3e-16)
        np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
        assert np.all(out[scale * x < -709.79] == 0.0)


@pytest.mark.parametrize("tr", ["level1", "resistor"])
@pytest.mark.parametrize("shape", [(9, 6), (5, 8)])  # rows first, columns first
def test_vectorised_middle_node_kernel_matches_numpy_and_generic_kernel(rng, tr, shape):
    """The vectorised kernel of cells with a middle node (``evaluate_3t``) against the
    NumPy twin of the cell laws (tests/naive_newton.py ``cell_system``) and against the
    generic scalar kernel, at iterates that visit every Level-1 region (cutoff,
    saturation, triode, both channel directions) and both junction branches."""
    from naive_newton import cell_system

    from xbarsolve.solve import _net

    transistor = TRANSISTORS[tr] if tr == "resistor" else xs.transistors.Level1(v_gate=rng.uniform(0.5, 3.3, shape[0]))
    xbar = random_array(rng, *shape, xs.devices.Sinh(a=2.5), transistor)
    net = _net._net(xbar)
    k = 37
    x = _net._state(net, rng.uniform(-0.5, 1.0, (k, shape[0])))
    for a in x[:3]:
        a[:] = rng.uniform(-0.6, 1.2, a.shape)
    x[2][..., :5] = x[1][..., :5] + rng.uniform(-1e-3, 1e-3, x[1][..., :5].shape)  # small |vds|, junctions near 0 V
    flip = (lambda a: a) if net.rows_first else (lambda a: np.swapaxes(a, 0, 1))  # ladder (p, q, k) -> (m, n, k)
    vT, vB = (flip(x[0]), flip(x[1])) if net.rows_first else (flip(x[1]), flip(x[0]))
    vM = flip(x[2])
    ref = cell_system(xbar, *(np.moveaxis(v, 2, 0) for v in (vT, vM, vB)))
    ref = {key: np.moveaxis(val, 0, 2) for key, val in ref.items()}
    if tr == "level1":
        vgst = xbar.transistor.gate_voltages(shape[0])[:, None, None] - np.minimum(vM, vB) - xbar.transistor.vto
        vds = np.abs(vM - vB)
        assert (vgst <= 0).any() and ((vgst > 0) & (vgst <= vds)).any() and ((vgst > vds)).any()
    try:
        got = {}
        for generic in (False, True):
            _net._GENERIC_CELLS = generic
            ev = _net._evaluate(net, x, per_vector=True)
            eP, eS, w = (flip(a).copy() for a in ev.cellv)
            mP, mS = flip(ev.mP).copy(), flip(ev.mS).copy()
            mT, mB = (mP, mS) if net.rows_first else (mS, mP)
            cT, cB, cBT = (eP, eS, w) if net.rows_first else (eS, eP, w)
            got[generic] = dict(m0=flip(ev.m0).copy(), mT=mT, mB=mB, cT=cT, cB=cB, i_col=flip(ev.i_col).copy(),
                                res=ev.res.copy(), res_v=ev.res_v.copy(), rP=ev.rP.copy(), rS=ev.rS.copy())
            got[generic]["cBT" if net.rows_first else "cTB"] = cBT
            ev_sum = _net._evaluate(net, x)  # batch means of (eP, eS, u, w), the chord's factorization
            got[generic]["cells"] = ev_sum.cells.copy()
    finally:
        _net._GENERIC_CELLS = False
    new, old = got[False], got[True]
    for key in ("m0", "mT", "mB", "cT", "cB", "i_col", "cBT" if net.rows_first else "cTB"):
        scale = np.abs(ref[key]).max()
        assert np.abs(new[key] - ref[key]).max() <= 1e-13 * scale, key
    for key, val in old.items():  # every output, the residual and its norms included
        assert np.abs(new[key] - val).max() <= 1e-13 * np.abs(val).max(), key
    # the sinh + Level1 cells' three exponentials in one pass: the same numbers as one
    # pass each (the kernel before, kept for the benchmark)
    from xbarsolve.solve import _newton_kernels as nk

    merged = _net._evaluate(net, x, per_vector=True)
    merged = [a.copy() for a in (merged.rP, merged.rS, merged.m0, merged.mP, merged.mS, merged.i_col, merged.planes,
                                 merged.res, merged.res_v)]
    fast = nk.evaluate_3t
    try:
        nk.evaluate_3t = nk.separate_exponentials()
        sep = _net._evaluate(net, x, per_vector=True)
    finally:
        nk.evaluate_3t = fast
    for a, b in zip(merged, (sep.rP, sep.rS, sep.m0, sep.mP, sep.mS, sep.i_col, sep.planes, sep.res, sep.res_v)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(9, 6), (5, 8)])
def test_vectorised_two_terminal_kernel_matches_generic_kernel(rng, shape):
    """``evaluate_2t`` (batches of at least ``_VECTOR_MIN_BATCH`` vectors) against the
    generic kernel (what smaller batches take) and the NumPy device law."""
    from naive_newton import device_iv

    from xbarsolve.solve import _net, _newton_kernels as nk

    xbar = random_array(rng, *shape, xs.devices.Sinh(a=2.5), None)
    net = _net._net(xbar)
    k = 2 * _net._VECTOR_MIN_BATCH + 1
    x = _net._state(net, rng.uniform(-0.5, 1.0, (k, shape[0])))
    for a in x[:2]:
        a[:] = rng.uniform(-0.6, 1.2, a.shape)
    new = _net._evaluate(net, x, per_vector=True)
    new = dict(rP=new.rP.copy(), rS=new.rS.copy(), res=new.res.copy(), res_v=new.res_v.copy(), i_col=new.i_col.copy(),
               D=new.cellv[0].copy())
    p, q = net.p, net.q
    old = dict(rP=np.empty((p, q, k)), rS=np.empty((p, q, k)), i_col=np.empty((p, q, k)), res=np.empty((p, k)),
               res_v=np.empty((p, k)))
    cellv = np.empty((3, p, q, k))
    z = np.zeros((1, 1, 1))
    nk.evaluate(x[0], x[1], x[2], x[3], x[4], net.wp, net.tp0, net.tp1, net.c, net.ts0, net.ts1, net.G, net.vgc,
                net.pd, net.pt, net.rows_first, False, old["rP"], old["rS"], z, z, z, np.empty((4, p, q)), cellv,
                old["res"], old["res_v"], old["i_col"])
    old["res"], old["res_v"] = old["res"].max(axis=0), old["res_v"].max(axis=0)
    for e in cellv:
        np.testing.assert_array_equal(e, cellv[0])  # eP = eS = w = dI/dV
    old["D"] = cellv[0]
    for key, val in old.items():
        assert np.abs(new[key] - val).max() <= 1e-13 * np.abs(val).max(), key
    sgn = 1.0 if net.rows_first else -1.0  # the cell voltage is sgn (P - S)
    im, gm = device_iv(xbar.device, sgn * (x[0] - x[1]), net.G[:, :, None])
    assert np.abs(new["i_col"] - im).max() <= 1e-13 * np.abs(im).max()
    assert np.abs(new["D"] - gm).max() <= 1e-13 * np.abs(gm).max()


@pytest.mark.parametrize("device", [xs.devices.Sinh(a=2.5), xs.devices.Poly(a2=1e-5, a3=2e-5), xs.devices.Linear()],
                         ids=["sinh", "poly", "linear"])
@pytest.mark.parametrize("shape, k", [((9, 6), 17), ((5, 8), 9), ((40, 30), 150)])  # the last beyond _ROW_VALUES
def test_two_terminal_row_loops_are_the_cell_loops_bit_for_bit(rng, device, shape, k):
    """``evaluate_2t`` with its loops over whole P chains (``_ROW_LOOPS``) writes the same
    bits as with its loops per cell (``cell_loops()``, the kernel before), with and
    without the per-cell column currents, in both ladder orientations and beyond the
    chain length where it takes the per-cell loops itself."""
    from xbarsolve.solve import _net, _newton_kernels as nk

    xbar = random_array(rng, *shape, device, None)
    net = _net._net(xbar)
    x = _net._state(net, rng.uniform(-0.5, 1.0, (k, shape[0])))
    for a in x[:2]:
        a[:] = rng.uniform(-0.6, 1.2, a.shape)
    p, q = net.p, net.q
    assert (q * k > nk._ROW_VALUES) == (shape == (40, 30))
    got = []
    for kernel in (nk.evaluate_2t, nk.cell_loops()):
        for i_col in (np.empty((p, q, k)), np.zeros((1, 1, 1))):
            out = [np.empty((p, q, k), np.float32), np.empty((p, q, k)), np.empty((p, q, k), np.float32),
                   np.empty((p, k)), np.empty((p, k)), i_col]
            kernel(x[0], x[1], x[3], x[4], net.wp, net.tp0, net.tp1, net.c, net.ts0, net.ts1, net.G, net.pd,
                   net.rows_first, *out)
            got.append(out)
    for a, b in zip(got[0], got[2]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got[1][:5], got[3][:5]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[1][5], 0.0)  # the placeholder is left alone
    assert np.isfinite(got[0][0]).all() and np.abs(got[0][5]).max() > 0


def test_threads_give_identical_results(rng):
    """The kernels' parallel loops write disjoint rows and the solver's choices do not
    depend on timing: one and two threads give the same bits."""
    xbar = random_array(rng, 40, 24, xs.devices.Sinh(a=2.0), xs.transistors.Level1())
    V = rng.uniform(0.0, 0.4, (9, 40))
    a = xs.solve(xbar, V, threads=1, full=True)
    b = xs.solve(xbar, V, threads=2, full=True)
    assert np.array_equal(a.currents, b.currents) and np.array_equal(a.v_mid, b.v_mid)
    assert np.array_equal(a.iterations, b.iterations)


def test_newton_converges_quadratically(rng):
    """Exact Newton: the scaled residual obeys r_{k+1} <= C r_k^2 with a modest C."""
    xbar = random_array(rng, 16, 12, xs.devices.Sinh(a=6.0), xs.transistors.Level1(v_gate=1.5))
    V = rng.uniform(0.3, 0.8, (1, 16))
    hist = []
    res = xs.solve(xbar, V, iteration="newton", rtol=1e-14, callback=lambda vec, r: hist.append(float(r[0])))
    assert res.converged.all()
    r = np.array(hist) / hist[0]
    floor = 1e-11
    k_end = int(np.argmax(r < floor))
    assert k_end >= 4, r  # a genuinely nonlinear case: several iterations
    # r_{k+1} = C_k r_k^2 with C_k settling to a constant (linear convergence at rate rho
    # would make C_k = rho / r_k grow by 1 / rho per step)
    C = r[1:k_end + 1] / r[:k_end] ** 2
    tail = C[-3:]
    assert tail.max() / tail.min() < 10, (r, C)
    # the last step before the floor gains more than five orders of magnitude
    assert r[k_end] / r[k_end - 1] < 1e-5, r


def test_full_outputs_are_consistent(rng):
    xbar = random_array(rng, 10, 6, DEVICES["sinh"], TRANSISTORS["resistor"])
    V = rng.uniform(0.0, 0.4, (2, 10))
    res = xs.solve(xbar, V, full=True)
    # no bulk junctions: every column current is the sum of its cell currents
    np.testing.assert_allclose(res.cell_currents.sum(axis=1), res.currents, rtol=1e-10)
    dev = xbar.device
    np.testing.assert_allclose(res.cell_currents, dev.current(res.v_top - res.v_mid, xbar.G), rtol=1e-14)
    np.testing.assert_allclose(res.cell_currents, (res.v_mid - res.v_bottom) / 2e3, rtol=1e-8, atol=1e-16)


def test_zero_resistance_iterations_and_bad_options_are_rejected(rng):
    xbar = xs.Crossbar(np.full((4, 4), 1e-5), r_row=0.0, device=DEVICES["sinh"])
    for iteration in ("lines", "chord"):  # the ladder-form iterations need every resistance > 0
        with pytest.raises(ValueError, match=f"iteration='{iteration}' needs every wire.*iteration='auto' or 'newton'"):
            xs.solve(xbar, np.full(4, 0.1), iteration=iteration)
    xbar = xs.Crossbar(np.full((4, 4), 1e-5), device=DEVICES["sinh"])
    with pytest.raises(ValueError, match="iteration must be"):
        xs.solve(xbar, np.full(4, 0.1), iteration="block")
    with pytest.raises(ValueError, match="on_failure must be"):
        xs.solve(xbar, np.full(4, 0.1), on_failure="ignore")
    with pytest.raises(ValueError, match="rtol must be"):
        xs.solve(xbar, np.full(4, 0.1), rtol=0.0)


# --------------------------------------------------------------- pathological
def test_runaway_voltage_raises_documented_error(rng):
    xbar = random_array(rng, 8, 8, xs.devices.Sinh(a=20.0), TRANSISTORS["level1"])
    V = np.full((2, 8), 40.0)
    V[1] = 0.1
    # Converges (exact Newton from 0 V, damped), in about a dozen iterations ...
    ok = xs.solve(xbar, V)
    assert ok.converged.all()
    np.testing.assert_allclose(ok.currents, xs.solve(xbar, V, iteration="newton").currents, rtol=1e-6)
    # ... so an iteration limit below that exercises the documented failure report.
    with pytest.raises(xs.ConvergenceError, match="input vector 0.*max_iterations=2") as err:
        xs.solve(xbar, V, max_iterations=2)
    assert err.value.vector == 0 and err.value.iterations >= 1
    flagged = xs.solve(xbar, V, max_iterations=2, on_failure="flag")
    assert flagged.converged.tolist() == [False, True]
    assert np.isfinite(flagged.currents).all()


@njit
def _cube_current(v, G, p):
    return G * v * v * v / (p[0] * p[0])


@njit
def _cube_didv(v, G, p):
    return 3.0 * G * v * v / (p[0] * p[0])


@dataclass(frozen=True)
class Cube(xs.devices.Device):
    """A device with zero conductance at 0 V: with a cut-off transistor and no junction
    leak the middle nodes float at the linear starting point."""

    v_read: float = 0.2

    def parameters(self):
        return np.array([self.v_read])

    @property
    def kernels(self):
        return _cube_current, _cube_didv


def test_singular_jacobian_raises_documented_error(rng):
    tr = xs.transistors.Level1(v_gate=0.0, is_=0.0, gmin=0.0)
    xbar = random_array(rng, 6, 5, Cube(), tr)
    with pytest.raises(xs.ConvergenceError, match="singular"):
        xs.solve(xbar, np.full(6, 0.3))
    out = xs.solve(xbar, np.full(6, 0.3), on_failure="flag")
    assert not out.converged[0] and np.isfinite(out.currents).all()


class _PoisonedNumpy:
    """``numpy`` whose ``empty`` fills with NaN: uninitialised memory may hold anything."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype=np.float64, **kw):
        out = np.empty(shape, dtype, **kw)
        if np.issubdtype(out.dtype, np.inexact):
            out.fill(np.nan)
        return out


@pytest.mark.parametrize("tr", [None, "level1"])
@pytest.mark.parametrize("iteration", ["newton", "auto"])
def test_solution_does_not_read_uninitialised_memory(rng, monkeypatch, tr, iteration):
    """Regression: without middle nodes the update coefficients (m0, mP, mS) are
    placeholders the kernel never writes; exact Newton checked them for finiteness, so
    whatever the allocator left there (inf in the 32-image MNIST sinh benchmark) made a
    regular Jacobian "singular".  With ``np.empty`` returning NaN the result must not change."""
    from xbarsolve.solve import _chord, _exact, _lines, _net, newton

    xbar = random_array(rng, 12, 7, xs.devices.Sinh(a=2.0), None if tr is None else TRANSISTORS[tr])
    V = rng.uniform(0.0, 1.5, (3, 12))
    V[:, 3] = 0.0  # a row with no input, as in the CNN's sparse activations
    ref = xs.solve(xbar, V, iteration=iteration)
    for module in (newton, _net, _lines, _chord, _exact):  # the driver and every iteration
        monkeypatch.setattr(module, "np", _PoisonedNumpy())
    out = xs.solve(xbar, V, iteration=iteration)
    assert out.converged.all()
    np.testing.assert_allclose(out.currents, ref.currents, rtol=1e-9, atol=1e-15)


def test_auto_restarts_newton_from_zero_when_chord_left_vector_worse(rng):
    """Regression: an input far beyond the device's range (here ~30 V on sinh cells, as
    the MNIST benchmark's uncalibrated images give) overflows the chord iteration, which
    left exact Newton to start from the linear solution (a KCL residual of 1e18 A there),
    from which it sheds ~1/a V per step and exhausted max_iterations or its line search.
    From 0 V, where exact Newton alone starts, it converges in about ten steps."""
    xbar = random_array(np.random.default_rng(0), 12, 7, xs.devices.Sinh(a=2.0), None)
    V = np.random.default_rng(1).uniform(0.0, 0.4, (4, 12))
    V[2] *= 80.0
    auto = xs.solve(xbar, V)
    assert auto.converged.all() and auto.iterations[2] < 25, auto.iterations
    exact = xs.solve(xbar, V, iteration="newton")
    np.testing.assert_allclose(auto.currents, exact.currents, rtol=1e-6)


# ----------------------------------------------------- user-defined model (docs)
@functools.lru_cache(maxsize=None)
def docs_example():
    """Run the user-defined model example of docs/nonlinear.md and return its namespace
    (once per session: each run compiles the solver kernel for the new functions)."""
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = next(b for b in blocks if "class Tanh" in b)
    ns: dict = {}
    exec(compile(code, str(DOCS), "exec"), ns)
    return ns


def test_user_defined_model_from_docs(rng):
    ns = docs_example()
    dev = ns["Tanh"](v0=0.3)
    G = np.array([1e-5, 5e-5])
    np.testing.assert_allclose(dev.current(dev.v_read, G), G * dev.v_read, rtol=1e-14)
    xbar = random_array(rng, 8, 6, dev, TRANSISTORS["level1"])
    V = rng.uniform(0.0, 0.4, (2, 8))
    ref = naive_newton(xbar, V)[0]
    assert rel(xs.solve(xbar, V, rtol=1e-12).currents, ref) < 1e-10


# ----------------------------------------------------------------- vs ngspice
def _spice(xbar, V, **kw):
    gmin = getattr(xbar.transistor, "gmin", xs.spice.OPTIONS["gmin"])
    return xs.spice.solve(xbar, V, options={"gmin": gmin}, **kw)


@pytest.mark.ngspice
@pytest.mark.parametrize("dev", list(DEVICES))
@pytest.mark.parametrize("tr", list(TRANSISTORS))
@pytest.mark.parametrize("shape", [(8, 8), (16, 16), (32, 16)])
def test_agrees_with_ngspice(require_ngspice, rng, dev, tr, shape):
    xbar = random_array(rng, *shape, DEVICES[dev], TRANSISTORS[tr])
    V = rng.uniform(0.0, 0.4, (3, shape[0]))
    ours = xs.solve(xbar, V)
    ref = _spice(xbar, V)
    assert rel(ours.currents, ref.currents) < 1e-6
    assert np.abs(ours.currents / ref.currents - 1).max() < 1e-6


@pytest.mark.ngspice
@pytest.mark.parametrize("dev", ["sinh", "poly"])
def test_agrees_with_ngspice_in_saturation(require_ngspice, rng, dev):
    """A low gate voltage puts many access transistors into saturation."""
    tr = xs.transistors.Level1(v_gate=rng.uniform(0.8, 0.9, 16))
    xbar = random_array(rng, 16, 12, DEVICES[dev], tr)
    V = rng.uniform(0.0, 0.4, (3, 16))
    ours = xs.solve(xbar, V, full=True)
    vgst = tr.gate_voltages(16)[None, :, None] - ours.v_bottom - tr.vto
    saturated = (vgst > 0) & (ours.v_mid - ours.v_bottom >= vgst)
    assert saturated.mean() > 0.2
    ref = _spice(xbar, V, full=True)
    assert np.abs(ours.currents / ref.currents - 1).max() < 1e-6
    np.testing.assert_allclose(ours.v_mid, ref.v_mid, rtol=0, atol=1e-9)


@pytest.mark.ngspice
def test_agrees_with_ngspice_defaults_and_user_model(require_ngspice, rng):
    """ngspice's own gmin option (the deck's 1e-24 S) with a matching Level1, and the
    docs' user-defined model written through its own spice_element."""
    tr = xs.transistors.Level1(gmin=xs.spice.OPTIONS["gmin"])
    xbar = random_array(rng, 12, 8, DEVICES["sinh"], tr, drive="both", sense="both")
    V = rng.uniform(0.0, 0.4, (2, 12))
    assert np.abs(xs.solve(xbar, V).currents / xs.spice.solve(xbar, V).currents - 1).max() < 1e-6
    dev = docs_example()["Tanh"](v0=0.3)
    xbar = random_array(rng, 8, 8, dev, TRANSISTORS["level1"])
    V = rng.uniform(0.0, 0.4, (2, 8))
    assert np.abs(xs.solve(xbar, V).currents / _spice(xbar, V).currents - 1).max() < 1e-6


# ----------------------------------------------------------------- NewtonOptions
def test_options_object_and_keywords_agree(rng):
    from xbarsolve.solve import NewtonOptions

    xbar = random_array(rng, 9, 6, xs.devices.Sinh(a=2.0), TRANSISTORS["level1"])
    V = rng.uniform(0.0, 0.5, (3, 9))
    by_keywords = xs.solve(xbar, V, iteration="chord", rtol=1e-11, chord_iterations=40)
    opts = NewtonOptions(iteration="chord", rtol=1e-11, chord_iterations=40)
    by_object = xs.solve(xbar, V, options=opts)
    np.testing.assert_array_equal(by_object.currents, by_keywords.currents)
    np.testing.assert_array_equal(by_object.iterations, by_keywords.iterations)
    with pytest.raises(TypeError, match=r"either options= or the keyword options.*\['rtol'\]"):
        xs.solve(xbar, V, options=opts, rtol=1e-6)
    with pytest.raises(TypeError, match="options must be a NewtonOptions"):
        xs.solve(xbar, V, options={"rtol": 1e-6})


@pytest.mark.parametrize("field,value,match", [
    ("iteration", "fast", "iteration must be 'auto', 'lines', 'chord' or 'newton'; got 'fast'"),
    ("rebuild", "sometimes", "rebuild must be 'auto', 'once' or 'never'"),
    ("on_failure", "ignore", "on_failure must be 'raise' or 'flag'"),
    ("rtol", 0.0, "rtol must be > 0"),
    ("rtol", float("nan"), "rtol must be > 0"),
    ("vtol", -1e-9, "vtol must be > 0"),
    ("max_iterations", 0, "max_iterations must be an integer >= 1"),
    ("chord_iterations", 1.5, "chord_iterations must be an integer >= 0"),
    ("chunk_size", 0, "chunk_size must be an integer >= 1 or None"),
    ("threads", True, "threads must be an integer >= 1 or None"),
])
def test_options_are_validated_once_on_construction(field, value, match):
    from xbarsolve.solve import NewtonOptions

    with pytest.raises(ValueError, match=re.escape(match)):
        NewtonOptions(**{field: value})
    assert NewtonOptions(max_iterations=np.int64(7), chunk_size=8.0).max_iterations == 7


def test_floating_middle_nodes_are_named():
    """G = 0 cells behind a cut-off transistor without junction leakage leave their middle
    nodes floating (a singular Jacobian): the error names the cells and the fix."""
    G = np.full((4, 3), 2e-5)
    G[1, 2] = G[3, 0] = 0.0
    off = xs.transistors.Level1(v_gate=0.0, gmin=0.0, is_=0.0)
    xbar = xs.Crossbar(G, transistor=off, device=xs.devices.Sinh(a=2.0))
    for iteration in ("auto", "newton"):
        with pytest.raises(xs.ConvergenceError, match=r"singular.*middle node of 2 of 12 cells floats \(\(1, 2\), \(3, 0\)\)"
                                                      r".*gmin > 0.*is_ > 0"):
            xs.solve(xbar, np.full(4, 0.2), iteration=iteration)
    # junction leakage (Level1's default gmin) fixes it
    leaky = xs.Crossbar(G, transistor=xs.transistors.Level1(v_gate=0.0, is_=0.0), device=xs.devices.Sinh(a=2.0))
    assert xs.solve(leaky, np.full(4, 0.2)).converged.all()


# ------------------------------------------------------------- 0-ohm branches
def _zero_ohm_wires(rng, m, n):
    return dict(r_row=np.where(rng.random((m, n - 1)) < 0.5, 0.0, 1.5), r_col=np.where(rng.random((m - 1, n)) < 0.5, 0.0, 2.0),
                r_in=np.where(rng.random(m) < 0.5, 0.0, 1.0), r_out=np.where(rng.random(n) < 0.5, 0.0, 2.0))


def test_zero_ohm_branches_merge_nodes(rng):
    """Newton on an array with 0-ohm branches merges the nodes they join (as the sparse
    linear path does): all-zero wires give every cell its input, so the column currents are
    sums of the device law; a = 0 sinh cells (linear, solved by Newton) match the sparse
    linear solve of the same circuit to round-off, node potentials included."""
    m, n = 6, 5
    G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
    G[2, 3] = 0.0
    V = rng.uniform(0.0, 0.4, (3, m))
    dev = xs.devices.Sinh(a=2.0)
    bare = xs.Crossbar(G, r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, device=dev)
    exact = np.stack([dev.current(np.repeat(v[:, None], n, axis=1), G).sum(axis=0) for v in V])
    np.testing.assert_allclose(xs.solve(bare, V).currents, exact, rtol=1e-14)
    wires = _zero_ohm_wires(rng, m, n)
    for tr in (None, TRANSISTORS["resistor"]):
        kw = dict(transistor=tr, drive="both", sense="both", **wires)
        newton = xs.solve(xs.Crossbar(G, device=xs.devices.Sinh(a=0.0), **kw), V, full=True, rtol=1e-13)
        linear = xs.solve(xs.Crossbar(G, **kw), V, full=True)
        assert newton.method == "newton" and newton.converged.all()
        assert rel(newton.currents, linear.currents) < 1e-12
        for a, b in ((newton.v_top, linear.v_top), (newton.v_bottom, linear.v_bottom)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("tr", [None, "level1"])
def test_zero_ohm_branches_agree_with_ngspice(require_ngspice, rng, tr):
    m, n = 7, 5
    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (m, n)), device=DEVICES["sinh"],
                       transistor=None if tr is None else TRANSISTORS[tr], **_zero_ohm_wires(rng, m, n))
    V = rng.uniform(0.0, 0.4, (3, m))
    ours = xs.solve(xbar, V, full=True, rtol=1e-12)
    ref = xs.spice.solve(xbar, V, full=True)
    assert rel(ours.currents, ref.currents) < 1e-9
    np.testing.assert_allclose(ours.v_top, ref.v_top, rtol=0, atol=1e-9)
    if tr is not None:
        np.testing.assert_allclose(ours.v_mid, ref.v_mid, rtol=0, atol=1e-9)


@pytest.mark.parametrize("tr, chunks", [(None, [42, 42, 16]), ("level1", [64, 36])])
def test_default_chunks_are_64_vectors_with_a_middle_node(rng, tr, chunks, monkeypatch):
    """The default chunk (``_threads.chunk_size``): 32 vectors for two-terminal cells, 64
    (``_MID_CHUNK``) for cells with a middle node up to ``_MID_CELLS`` cells, more for
    small arrays (``2**18 / cells``), the requested size when one is given; the solver
    iterates in those chunks (a 96 x 64 array: 2**18 / 6144 cells = 42)."""
    from xbarsolve.solve import _threads, newton

    assert _threads.chunk_size(None, 576 * 64) == 32 and _threads.chunk_size(None, 576 * 64, True) == 64
    assert _threads.chunk_size(None, 64 * 51) == 80 and _threads.chunk_size(None, 64 * 51, True) == 80
    assert _threads.chunk_size(7, 576 * 64, True) == 7
    assert _threads.chunk_size(None, 256 * 256, True) == 64 and _threads.chunk_size(None, 512 * 256, True) == 32
    xbar = random_array(rng, 96, 64, xs.devices.Sinh(a=2.0), None if tr is None else TRANSISTORS[tr])
    seen = []
    lines = newton._lines
    monkeypatch.setattr(newton, "_lines", lambda net, x, *a: (seen.append(x[0].shape[2]), lines(net, x, *a))[1])
    res = xs.solve(xbar, rng.uniform(0.0, 0.4, (100, 96)))
    assert res.converged.all() and seen == chunks
