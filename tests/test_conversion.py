"""Conversion G -> G': exactness, amplitude (in)variance, clipping, refinement, kernels vs twins."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from numba import njit

import xbarsolve as xs
from xbarsolve import _conversion_kernels as K
from xbarsolve.conversion import (
    ClippingWarning, InfeasibleConversionError, constant_signal, input_derived_signal, random_signal)
from xbarsolve.devices import Device
from xbarsolve.transistors import Resistor, Transistor

import naive_conversion as naive

G_MIN, G_MAX = 1 / 300e3, 1 / 15e3




# ----------------------------------------------------------- test-local nonlinear models
# Written here on purpose, through the public device/transistor protocol only: they show that
# conversion accepts a user's own models (the library's models have their own tests below).
@njit(cache=True)
def _sinh_current(v, G, p):
    return G * p[1] * np.sinh(p[0] * v) / np.sinh(p[0] * p[1])


@njit(cache=True)
def _sinh_didv(v, G, p):
    return G * p[1] * p[0] * np.cosh(p[0] * v) / np.sinh(p[0] * p[1])


@dataclass(frozen=True)
class SinhDevice(Device):
    """``I = G v_read sinh(a v) / sinh(a v_read)``, following the device protocol."""

    a: float = 5.0
    v_read: float = 0.2
    is_linear: ClassVar[bool] = False

    def parameters(self):
        return np.array([self.a, self.v_read])

    @property
    def kernels(self):
        return _sinh_current, _sinh_didv


@njit(cache=True)
def _mos_ids(vd, vs, vg, p):
    # Shichman-Hodges without body effect or channel-length modulation, vd >= vs.
    kp, vt = p[0], p[1]
    vov = vg - vs - vt
    vds = vd - vs
    if vov <= 0.0:
        return 0.0, 0.0, 0.0
    if vds < vov:
        i = kp * (vov * vds - 0.5 * vds * vds)
        return i, kp * (vov - vds), -kp * vov
    i = 0.5 * kp * vov * vov
    return i, 0.0, -kp * vov


@dataclass(frozen=True)
class MosTransistor(Transistor):
    kp: float = 2e-3
    vt: float = 0.5
    v_gate: float = 3.0
    is_linear: ClassVar[bool] = False

    def parameters(self):
        return np.array([self.kp, self.vt])

    @property
    def kernel(self):
        return _mos_ids

    def gate_voltages(self, m):
        return np.full(m, self.v_gate)


def _array(rng, m, n, **kw):
    G = rng.uniform(G_MIN, G_MAX, (m, n))
    base = dict(r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0)
    base.update(kw)
    return xs.Crossbar(G, **base)


# ------------------------------------------------------------------------ exactness
@pytest.mark.parametrize("drive", ["left", "right", "both"])
@pytest.mark.parametrize("sense", ["bottom", "top", "both"])
@pytest.mark.parametrize("transistor", [None, Resistor(2e3)])
def test_converted_array_gives_ideal_currents(rng, drive, sense, transistor):
    m, n = 24, 10
    xbar = _array(rng, m, n, r_row=rng.uniform(0.5, 3.0, (m, n - 1)), r_col=rng.uniform(0.5, 3.0, (m - 1, n)),
                  r_in=rng.uniform(0.5, 5.0, m), r_out=rng.uniform(0.5, 5.0, n), drive=drive, sense=sense,
                  transistor=transistor)
    v = rng.uniform(0.02, 0.4, m)
    conv = xs.convert(xbar, v)
    assert conv.n_clipped == 0
    res = xs.solve(conv.crossbar, v, full=True, method="block")
    np.testing.assert_allclose(res.currents[0], xbar.ideal_currents(v)[0], rtol=1e-9)
    # and every cell passes its own target, not just the column sums
    np.testing.assert_allclose(res.cell_currents[0], v[:, None] * xbar.G, rtol=1e-9)
    np.testing.assert_allclose(res.v_top[0], conv.v_top, atol=1e-12)
    np.testing.assert_allclose(res.v_bottom[0], conv.v_bottom, atol=1e-12)
    np.testing.assert_array_equal(conv.crossbar.r_row_segments, xbar.r_row_segments)
    assert conv.crossbar.transistor == xbar.transistor and conv.crossbar.drive == drive


def test_conversion_exact_on_576x64_with_thin_wires(rng):
    # With 0.05-ohm wires a dense conversion of the largest ResNet array is feasible.
    xbar = _array(rng, 576, 64, r_row=0.05, r_col=0.05)
    v = constant_signal(576, 0.1)
    conv = xs.convert(xbar, v, g_min=G_MIN, g_max=None)
    assert conv.n_clipped == 0
    np.testing.assert_allclose(xs.solve(conv.crossbar, v).currents[0], xbar.ideal_currents(v)[0], rtol=1e-9)


def test_linear_conversion_does_not_depend_on_amplitude(rng):
    xbar = _array(rng, 32, 12, transistor=Resistor(1e3))
    g = [xs.convert(xbar, constant_signal(32, a)).g_prime for a in (1.0, 0.1, 0.01, 0.001)]
    for other in g[1:]:
        np.testing.assert_allclose(other, g[0], rtol=1e-12)
    # a different pattern does change it
    assert np.abs(xs.convert(xbar, random_signal(32, 1.0, rng=rng)).g_prime / g[0] - 1).max() > 1e-4


def test_nonlinear_conversion_depends_on_amplitude(rng):
    xbar = _array(rng, 32, 12, device=SinhDevice(a=5.0))
    g_big = xs.convert(xbar, constant_signal(32, 1.0)).g_prime
    g_small = xs.convert(xbar, constant_signal(32, 0.1)).g_prime
    # At 0.4 V the sinh device conducts more than G * v, so it needs a lower state.
    ratio = g_big / g_small
    assert ratio.max() < 0.8 and np.isfinite(ratio).all()


def _check_cells_pass_targets(xbar, conv, v):
    """KCL of the converted state without a solver: node voltages from the nodal twin, each
    element's current from the models at those voltages."""
    I = v[:, None] * xbar.G
    m, n = xbar.shape
    i_mem = conv.memristor_currents
    vt, _ = naive.line_voltages(i_mem, v, xbar.r_row_segments, xbar.r_in_rows, *xbar.drive_ends,
                                xbar.r_col_segments, xbar.r_out_columns, *xbar.sense_ends)
    _, vb = naive.line_voltages(I, v, xbar.r_row_segments, xbar.r_in_rows, *xbar.drive_ends,
                                xbar.r_col_segments, xbar.r_out_columns, *xbar.sense_ends)
    np.testing.assert_allclose(conv.v_top, vt, atol=1e-12)
    np.testing.assert_allclose(conv.v_bottom, vb, atol=1e-12)
    v_mid = vt - conv.v_memristor
    current, _ = xbar.device.kernels
    p = xbar.device.parameters()
    dev = np.array([[current(conv.v_memristor[i, j], conv.g_prime[i, j], p) for j in range(n)] for i in range(m)])
    np.testing.assert_allclose(dev, i_mem, rtol=1e-10)
    tr = xbar.transistor
    if tr is not None and not tr.is_linear:
        ids, pt, vg = tr.kernel, tr.parameters(), tr.gate_voltages(m)
        junction = getattr(tr, "junction_kernel", None)
        leak = (lambda x: junction(x, pt)[0]) if junction is not None else (lambda x: 0.0)  # noqa: E731
        for i in range(m):
            for j in range(n):
                channel = ids(v_mid[i, j], vb[i, j], vg[i], pt)[0]
                # memristor current = channel + drain leak; column node receives channel - source leak
                assert channel + leak(v_mid[i, j]) == pytest.approx(i_mem[i, j], rel=1e-10)
                assert channel - leak(vb[i, j]) == pytest.approx(I[i, j], rel=1e-10)
    else:
        np.testing.assert_array_equal(i_mem, I)


@pytest.mark.parametrize("drive,sense", [("left", "bottom"), ("both", "both")])
def test_nonlinear_cells_pass_their_targets(rng, drive, sense):
    xbar = _array(rng, 20, 8, device=SinhDevice(a=4.0), transistor=MosTransistor(), drive=drive, sense=sense)
    v = rng.uniform(0.05, 0.4, 20)
    conv = xs.convert(xbar, v)
    assert conv.n_clipped == 0
    _check_cells_pass_targets(xbar, conv, v)


@pytest.mark.parametrize("device", [xs.devices.Sinh(a=3.0), xs.devices.Poly(a2=2e-6, a3=5e-6)])
def test_library_models_pass_their_targets(rng, device):
    tr = xs.transistors.Level1(v_gate=3.3, w=4e-6)
    xbar = _array(rng, 16, 6, device=device, transistor=tr, r_row=2.0, r_col=2.0)
    v = rng.uniform(0.1, 0.4, 16)
    conv = xs.convert(xbar, v)
    assert conv.n_clipped == 0
    assert np.abs(conv.memristor_currents / (v[:, None] * xbar.G) - 1).max() < 1e-5  # junction leakage is tiny
    _check_cells_pass_targets(xbar, conv, v)


@pytest.mark.parametrize("transistor", [None, xs.transistors.Level1(w=4e-6)])
def test_nonlinear_converted_array_solves_to_ideal(rng, transistor):
    xbar = _array(rng, 16, 6, device=xs.devices.Sinh(a=4.0), transistor=transistor)
    v = rng.uniform(0.05, 0.4, 16)
    conv = xs.convert(xbar, v)
    assert conv.n_clipped == 0
    # Newton's own tolerance, not round-off, limits the agreement here: rtol bounds the
    # node-voltage error (1e-8 of the largest input), which can leave ~2e-8 in the
    # currents of cells at small voltages, so the solve is asked for 1e-10.
    np.testing.assert_allclose(xs.solve(conv.crossbar, v, rtol=1e-10).currents[0], xbar.ideal_currents(v)[0], rtol=1e-8)


# ------------------------------------------------------------------------ infeasibility
def test_dense_576x64_conversion_is_infeasible_and_reported(rng):
    xbar = _array(rng, 576, 64)
    with pytest.warns(ClippingWarning, match=r"infeasible.*cells clipped.*on_clip='ignore'"):  # warned by default
        conv = xs.convert(xbar, constant_signal(576, 1.0), g_min=G_MIN, g_max=G_MAX)
    assert conv.n_clipped > 0.5 * 576 * 64
    assert conv.n_nonpositive > 0 and conv.worst_excess == np.inf
    assert conv.min_v_memristor < 0
    bad = np.isinf(conv.g_required)
    assert (conv.v_memristor[bad] <= 0).all()
    assert (conv.g_prime[conv.clipped] >= G_MIN).all() and (conv.g_prime <= G_MAX).all()
    np.testing.assert_array_equal(conv.g_prime[bad], G_MAX)
    assert "clipped" in conv.report()
    # The same array is infeasible at any amplitude (a linear circuit).
    small = xs.convert(xbar, constant_signal(576, 0.001), g_min=G_MIN, g_max=G_MAX, on_clip="ignore")
    np.testing.assert_array_equal(small.clipped, conv.clipped)
    with pytest.raises(InfeasibleConversionError, match=r"\d+ of 36864 cells clipped"):
        xs.convert(xbar, constant_signal(576, 1.0), g_min=G_MIN, g_max=G_MAX, on_clip="raise")


def test_clipping_at_the_range_bounds(rng):
    xbar = _array(rng, 48, 16, r_row=2.0, r_col=2.0)
    free = xs.convert(xbar, 0.2)
    assert free.n_clipped == 0 and (free.g_prime > xbar.G).all()  # IR drop always asks for more
    g_max = np.quantile(free.g_required, 0.9)
    conv = xs.convert(xbar, 0.2, g_max=g_max, on_clip="ignore")
    np.testing.assert_array_equal(conv.clipped, free.g_required > g_max)
    np.testing.assert_allclose(conv.excess[conv.clipped], free.g_required[conv.clipped] - g_max)
    assert conv.worst_excess == pytest.approx(free.g_required.max() - g_max)


def test_refinement_serves_unclipped_cells_exactly(rng):
    xbar = _array(rng, 48, 16, r_row=2.0, r_col=2.0, transistor=Resistor(500.0))
    v = constant_signal(48, 0.5)
    g_max = np.quantile(xs.convert(xbar, v).g_required, 0.85)
    plain = xs.convert(xbar, v, g_max=g_max, on_clip="ignore")
    ref = xs.convert(xbar, v, g_max=g_max, refine=True, on_clip="ignore")
    assert ref.refined and ref.refine_iterations >= 1
    assert (ref.g_prime <= g_max).all() and (ref.g_prime >= 0).all()
    res = xs.solve(ref.crossbar, v, full=True, method="block")
    target = v[:, None] * xbar.G
    free = ~ref.clipped
    np.testing.assert_allclose(res.cell_currents[0][free], target[free], rtol=1e-9)
    # The conversion's objective is cell by cell: the refined G' serves the targets better.
    # (Column sums need not improve: without refinement, over-served unclipped neighbours
    # happen to offset part of the clipped cells' deficit.)
    err = lambda c: np.abs(xs.solve(c.crossbar, v, full=True, method="block").cell_currents[0] - target).sum()  # noqa: E731
    assert err(ref) < err(plain)


def test_zero_rows_are_undetermined(rng):
    xbar = _array(rng, 12, 5)
    v = np.full(12, 0.1)
    v[[3, 7]] = 0.0
    conv = xs.convert(xbar, v)
    assert conv.undetermined[[3, 7]].all() and not conv.undetermined[[0, 1]].any()
    np.testing.assert_array_equal(conv.g_prime[[3, 7]], xbar.G[[3, 7]])


# ------------------------------------------------------------------------ kernels vs twins
@pytest.mark.parametrize("ends", [(True, False, False, True), (False, True, True, False), (True, True, True, True)])
def test_line_voltages_match_nodal_twin(rng, ends):
    m, n = 9, 7
    I = rng.uniform(-1e-4, 1e-3, (m, n))
    v = rng.uniform(0, 0.4, m)
    r_row, r_col = rng.uniform(0.1, 3, (m, n - 1)), rng.uniform(0.1, 3, (m - 1, n))
    r_in, r_out = rng.uniform(0.1, 3, m), rng.uniform(0.1, 3, n)
    left, right, top, bottom = ends
    got_t = K.row_voltages(I, v, r_row, r_in, r_in, left, right)
    got_b = K.column_voltages(I, r_col, r_out, r_out, top, bottom)
    want = naive.line_voltages(I, v, r_row, r_in, left, right, r_col, r_out, top, bottom)
    np.testing.assert_allclose(got_t, want[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got_b, want[1], rtol=1e-12, atol=1e-14)


def test_line_voltages_single_line_and_zero_wires():
    # 1 x 1 array, and zero-resistance wires: every node at the source / ground potential.
    I = np.array([[1e-3]])
    vt = K.row_voltages(I, np.array([0.3]), np.zeros((1, 0)), np.array([2.0]), np.array([2.0]), True, False)
    vb = K.column_voltages(I, np.zeros((0, 1)), np.array([5.0]), np.array([5.0]), False, True)
    assert vt[0, 0] == pytest.approx(0.3 - 2e-3) and vb[0, 0] == pytest.approx(5e-3)
    I = np.full((3, 4), 1e-4)
    vt = K.row_voltages(I, np.full(3, 0.2), np.zeros((3, 3)), np.zeros(3), np.zeros(3), True, True)
    vb = K.column_voltages(I, np.zeros((2, 4)), np.zeros(4), np.zeros(4), True, True)
    np.testing.assert_array_equal(vt, 0.2)
    np.testing.assert_array_equal(vb, 0.0)


def test_device_inversion_matches_twin(rng):
    dev = SinhDevice(a=6.0)
    I = rng.uniform(1e-7, 3e-5, (6, 5))
    I[0, 0] = 0.0
    vm = rng.uniform(0.01, 0.6, (6, 5))
    vm[1, 1] = -0.1
    g, ok = K.invert_device(dev.kernels[0], I, vm, np.full((6, 5), 2e-5), dev.parameters(), 1e-13, 100)
    want = naive.invert_device(dev.kernels[0], I, vm, dev.parameters())
    assert ok.all()
    assert g[0, 0] == 0 and np.isinf(g[1, 1])
    fin = np.isfinite(want)
    np.testing.assert_allclose(g[fin], want[fin], rtol=1e-10)


def test_transistor_inversion_matches_twin(rng):
    tr = MosTransistor()
    I = rng.uniform(1e-7, 2e-4, (5, 4))
    vs = rng.uniform(0.0, 0.3, (5, 4))
    vg = np.full(5, tr.v_gate)
    vd, ok = K.invert_transistor(tr.kernel, I, vs, vg, tr.parameters(), 100.0, 1e-13, 100)
    assert ok.all()
    np.testing.assert_allclose(vd, naive.invert_transistor(tr.kernel, I, vs, vg, tr.parameters()), rtol=1e-10, atol=1e-13)
    # beyond saturation no drain voltage carries the current
    sat = 0.5 * tr.kp * (tr.v_gate - tr.vt) ** 2
    _, ok = K.invert_transistor(tr.kernel, np.full((1, 1), 2 * sat), np.zeros((1, 1)), vg[:1], tr.parameters(), 100.0, 1e-13, 100)
    assert not ok[0, 0]


def test_transistor_that_cannot_serve_is_clipped(rng):
    tr = MosTransistor(kp=1e-5, v_gate=1.0)  # saturates at 0.5 * 1e-5 * 0.25 = 1.25 uA
    xbar = _array(rng, 6, 4, transistor=tr)
    conv = xs.convert(xbar, 0.4, g_max=G_MAX, on_clip="ignore")  # targets up to 27 uA
    assert conv.n_clipped == 24 and np.isinf(conv.g_required).all()


# ------------------------------------------------------------------------ validation and signals
def test_argument_errors(rng):
    xbar = _array(rng, 4, 3)
    with pytest.raises(ValueError, match=r"v_conv must be a scalar or an array of shape \(4,\)"):
        xs.convert(xbar, np.ones(5))
    with pytest.raises(ValueError, match="v_conv must be finite"):
        xs.convert(xbar, [0.1, np.nan, 0.1, 0.1])
    with pytest.raises(ValueError, match="g_min must be smaller than g_max"):
        xs.convert(xbar, 0.1, g_min=1e-4, g_max=1e-5)
    with pytest.raises(ValueError, match="at least one nonzero"):
        xs.convert(xbar, 0.0)
    with pytest.raises(ValueError, match="amplitude"):
        constant_signal(4, 0.0)


def test_signal_helpers(rng):
    np.testing.assert_allclose(constant_signal(3, 0.1), [0.04, 0.04, 0.04], rtol=1e-15)
    r = random_signal(1000, 0.5, sparsity=0.3, rng=rng)
    assert r.max() <= 0.2 and 0.25 < (r == 0).mean() < 0.35
    V = rng.uniform(0, 0.4, (50, 8))
    d = input_derived_signal(V, 0.1)
    assert d.max() == pytest.approx(0.04)
    np.testing.assert_allclose(d / d.max(), V.mean(0) / V.mean(0).max())


def test_optimize_conversion_signal_linear_is_amplitude_blind(rng):
    xbar = _array(rng, 16, 6, r_row=2.0, r_col=2.0)
    V = rng.uniform(0, 0.4, (40, 16))
    lin = xs.optimize_conversion_signal(xbar, V)
    # linear: every amplitude gives the same G' and the same error
    np.testing.assert_allclose(lin.mean_relative_error, lin.mean_relative_error[0], rtol=1e-9)
    assert lin.amplitude == 1.0 and lin.conversion.n_clipped == 0


def test_junction_currents_match_twin(rng):
    tr = xs.transistors.Level1()
    v = rng.uniform(-0.3, 0.5, (4, 5))
    got = K.junction_currents(tr.junction_kernel, v, tr.parameters())
    np.testing.assert_array_equal(got, naive.junction_currents(tr.junction_kernel, v, tr.parameters()))
    assert (got[v > 0] > 0).all()  # reverse-biased: a tiny leak out of the node (gmin, is)


def test_on_clip_policy(rng):
    """A feasible conversion says nothing whatever on_clip; a bad on_clip is refused early."""
    xbar = _array(rng, 8, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for policy in ("warn", "raise", "ignore"):
            assert xs.convert(xbar, 0.1, on_clip=policy).n_clipped == 0
    with pytest.raises(ValueError, match="on_clip must be 'warn', 'raise' or 'ignore'; got 'silent'"):
        xs.convert(xbar, 0.1, on_clip="silent")
    g_max = float(np.median(xbar.G))  # half the targets cannot be reached
    with pytest.warns(ClippingWarning):
        xs.optimize_conversion_signal(xbar, rng.uniform(0, 0.4, (4, 8)), g_max=g_max)
