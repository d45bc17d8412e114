"""Memristor and transistor models: laws, derivatives, ngspice equations, validation, netlists."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import xbarsolve as xs
from naive_newton import junction, level1_ids


def fd(f, x, h=1e-7):
    return (f(x + h) - f(x - h)) / (2 * h)


# ------------------------------------------------------------------- memristors
@pytest.mark.parametrize("a", [0.0, 0.5, 2.0, 8.0])
def test_sinh_state_is_chord_conductance_at_v_read(a):
    dev = xs.devices.Sinh(a=a, v_read=0.25)
    G = np.array([3.3e-6, 20e-6, 66.7e-6])
    np.testing.assert_allclose(dev.current(0.25, G), G * 0.25, rtol=1e-14)
    v = np.linspace(-0.6, 0.6, 13)
    np.testing.assert_allclose(dev.current(-v, 20e-6), -dev.current(v, 20e-6), rtol=1e-14, atol=1e-25)
    np.testing.assert_allclose(dev.didv(v, 20e-6), fd(lambda x: dev.current(x, 20e-6), v), rtol=1e-7)
    expected = 20e-6 * (v if a == 0 else 0.25 * np.sinh(a * v) / np.sinh(a * 0.25))
    np.testing.assert_allclose(dev.current(v, 20e-6), expected, rtol=1e-14, atol=1e-25)


def test_poly_state_is_small_signal_conductance_at_zero():
    dev = xs.devices.Poly(a2=2e-6, a3=5e-6)
    G = 30e-6
    assert dev.didv(0.0, G) == G
    v = np.linspace(-0.5, 0.5, 11)
    np.testing.assert_allclose(dev.current(v, G), G * v + 2e-6 * v**2 + 5e-6 * v**3, rtol=1e-14, atol=1e-24)
    np.testing.assert_allclose(dev.didv(v, G), fd(lambda x: dev.current(x, G), v), rtol=1e-7)
    # I(v_read) / v_read is not G for this model (documented exception)
    assert abs(dev.current(0.2, G) / 0.2 - G) > 1e-8


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: xs.devices.Sinh(a=-1.0), "a must"),
        (lambda: xs.devices.Sinh(a=2.0, v_read=0.0), "v_read must"),
        (lambda: xs.devices.Sinh(a=5000.0), "a must"),
        (lambda: xs.devices.Poly(a2=np.nan), "a2 must"),
        (lambda: xs.devices.Poly(a3=np.inf), "a3 must"),
        (lambda: xs.transistors.Level1(kp=0.0), "kp must"),
        (lambda: xs.transistors.Level1(w=-1e-6), "w must"),
        (lambda: xs.transistors.Level1(l=0.0), "l must"),
        (lambda: xs.transistors.Level1(lambda_=-0.1), "lambda_ must"),
        (lambda: xs.transistors.Level1(vto=np.nan), "vto must"),
        (lambda: xs.transistors.Level1(v_gate=[[1.0]]), "v_gate must"),
    ],
)
def test_invalid_parameters_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_netlist_lines_of_devices():
    line = xs.devices.Sinh(a=2.0).spice_element("x", "t", "m", 1e-5)
    assert line.startswith("Bx t m I=") and "sinh(2*V(t,m))" in line
    k = float(line.split("I=")[1].split("*")[0])
    assert k == pytest.approx(1e-5 * 0.2 / np.sinh(0.4), rel=1e-15)
    line = xs.devices.Poly(a2=1e-6, a3=-2e-6).spice_element("y", "a", "b", 3e-5)
    assert "**" not in line and "^" not in line  # ngspice's power operator takes |x| of negative bases
    v = -0.3
    expr = line.split("I=")[1].replace("V(a,b)", repr(v))
    assert eval(expr) == pytest.approx(xs.devices.Poly(a2=1e-6, a3=-2e-6).current(v, 3e-5), rel=1e-14)
    line = xs.devices.Linear().spice_element("z", "a", "b", 2e-5)
    assert line.startswith("Rz a b ") and float(line.split()[-1]) == 1 / 2e-5


# ------------------------------------------------------------------ transistors
def _grid():
    v = np.linspace(-0.5, 1.5, 21)
    vd, vs, vg = np.meshgrid(v, v[::2], np.array([0.0, 0.6, 0.9, 1.5, 3.3]), indexing="ij")
    return vd.ravel(), vs.ravel(), vg.ravel()


@pytest.mark.parametrize("tr", [xs.transistors.Level1(), xs.transistors.Level1(vto=0.4, kp=2e-4, w=1e-6, l=1e-6, lambda_=0.1)])
def test_level1_kernel_matches_numpy_twin_and_derivatives(tr):
    vd, vs, vg = _grid()
    k, p = tr.kernel, tr.parameters()
    got = np.array([k(a, b, c, p) for a, b, c in zip(vd, vs, vg)])
    ref = np.stack(level1_ids(tr, vd, vs, vg), axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-22)
    # every region is visited: cutoff, saturation, triode, both polarities
    vgst = np.where(vd >= vs, vg - vs, vg - vd) - tr.vto
    assert (vgst <= 0).any() and ((vgst > 0) & (vgst <= abs(vd - vs))).any() and ((vgst > abs(vd - vs))).any()
    assert (vd < vs).any() and (got[:, 0] < 0).any()
    # derivatives against finite differences away from the region boundaries
    vds = np.abs(vd - vs)
    smooth = (np.abs(vgst) > 1e-3) & (np.abs(vgst - vds) > 1e-3) & (vds > 1e-3)
    h = 1e-7
    dvd = (np.array([k(a + h, b, c, p)[0] for a, b, c in zip(vd, vs, vg)]) - np.array([k(a - h, b, c, p)[0] for a, b, c in zip(vd, vs, vg)])) / (2 * h)
    dvs = (np.array([k(a, b + h, c, p)[0] for a, b, c in zip(vd, vs, vg)]) - np.array([k(a, b - h, c, p)[0] for a, b, c in zip(vd, vs, vg)])) / (2 * h)
    np.testing.assert_allclose(got[smooth, 1], dvd[smooth], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(got[smooth, 2], dvs[smooth], rtol=1e-5, atol=1e-12)


def test_level1_reference_values():
    """Hand-computed Shichman-Hodges currents (beta = kp w / l = 400 uA/V^2)."""
    tr = xs.transistors.Level1()
    k, p = tr.kernel, tr.parameters()
    beta = 100e-6 * 4
    # triode: vgs = 3.3, vds = 0.1
    assert k(0.1, 0.0, 3.3, p)[0] == pytest.approx(beta * (1 + 0.02 * 0.1) * 0.1 * (2.6 - 0.05), rel=1e-14)
    # saturation: vgs = 1.0, vds = 2.0
    assert k(2.0, 0.0, 1.0, p)[0] == pytest.approx(0.5 * beta * (1 + 0.02 * 2.0) * 0.3**2, rel=1e-14)
    # cutoff
    assert k(1.0, 0.0, 0.5, p) == (0.0, 0.0, 0.0)
    # source/drain swap: odd in (vd, vs) -> (vs, vd)
    assert k(0.0, 0.1, 3.3, p)[0] == -k(0.1, 0.0, 3.3, p)[0]


def test_level1_junctions_follow_ngspice():
    tr = xs.transistors.Level1()
    p = tr.parameters()
    v = np.array([-0.2, -0.01, 0.0, 0.01, 0.05, 0.0776, 0.08, 0.4, 3.0])
    got = np.array([tr.junction_kernel(x, p) for x in v])
    ref = np.stack(junction(tr, v), axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=1e-30)
    assert got[2, 0] == 0.0  # no current at 0 V
    # reverse bias: -is + gmin * vbs, i.e. is + gmin * v out of the terminal
    assert got[-1, 0] == pytest.approx(1e-14 + 1e-12 * 3.0, rel=1e-14)
    assert tr.vt == pytest.approx(0.025864, rel=1e-4)


def test_level1_gates_and_netlist():
    tr = xs.transistors.Level1(v_gate=[1.0, 2.0, 3.0])
    np.testing.assert_array_equal(tr.gate_voltages(3), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="v_gate has 3 entries"):
        tr.gate_voltages(4)
    np.testing.assert_array_equal(xs.transistors.Level1(v_gate=2.5).gate_voltages(2), [2.5, 2.5])
    assert tr.spice_element("a_0_0", "m", "g", "b") == "Ma_0_0 m g b 0 nch w=1.9999999999999999e-06 l=4.9999999999999998e-07"
    card = tr.spice_preamble()[0]
    assert card.startswith(".model nch nmos level=1 ") and "kp=0.0001" in card and "lambda=0.02" in card


def test_resistor_and_switch_kernels():
    r = xs.transistors.Resistor(r_on=2e3)
    assert r.kernel(0.3, 0.1, 0.0, r.parameters()) == pytest.approx((1e-4, 5e-4, -5e-4))
    assert r.junction_kernel(0.3, r.parameters()) == (0.0, 0.0)
    assert xs.transistors.Switch().is_short and xs.transistors.Resistor(0.0).is_short
    assert not r.is_short and not xs.transistors.Level1().is_short


# ------------------------------------------------------ parameter-derivative hook
def _fd(model, name, evaluate, h):
    """Central difference of ``evaluate(model)`` in the field ``name``."""
    value = getattr(model, name)
    up = evaluate(dataclasses.replace(model, **{name: value + h}))
    down = evaluate(dataclasses.replace(model, **{name: value - h}))
    return (up - down) / (2 * h)


def test_device_parameter_derivative_matches_finite_differences():
    rng = np.random.default_rng(5)
    v = rng.uniform(-0.6, 0.6, 50)
    G = rng.uniform(1e-6, 1e-4, 50)
    dev = xs.devices.Sinh(a=2.5, v_read=0.2)
    assert dev.parameter_names == ("a",)
    exact = dev.parameter_derivative("a", v, G)
    fd = _fd(dev, "a", lambda d: d.current(v, G), 1e-5)
    np.testing.assert_allclose(exact, fd, rtol=1e-7, atol=1e-9 * np.abs(fd).max())
    with pytest.raises(ValueError, match="Sinh has no differentiable parameter 'v_read'"):
        dev.parameter_derivative("v_read", v, G)
    assert xs.devices.Linear().parameter_names == ()


@pytest.mark.parametrize("model,names", [
    (xs.transistors.Level1(lambda_=0.05), ("kp", "vto")),
    (xs.transistors.Resistor(r_on=2e3), ("r_on",)),
])
def test_transistor_parameter_derivative_matches_finite_differences(model, names):
    rng = np.random.default_rng(6)
    vd, vs = rng.uniform(0.0, 1.0, 40), rng.uniform(0.0, 0.3, 40)
    vd[:5] = vs[:5] - 0.1  # inverse mode
    vg = np.full(40, 3.3)
    assert model.parameter_names == names
    for name in names:
        h = 1e-6 * abs(getattr(model, name))
        exact = model.parameter_derivative(name, vd, vs, vg)
        fd = _fd(model, name, lambda t: t.ids(vd, vs, vg)[0], h)
        np.testing.assert_allclose(exact, fd, rtol=1e-6, atol=1e-9 * np.abs(fd).max())


def test_spice_options_hook():
    """Models state the ngspice options they need; nothing else is read from them."""
    assert xs.transistors.Level1(gmin=3e-13).spice_options() == {"gmin": 3e-13}
    assert xs.transistors.Resistor().spice_options() == {} and xs.devices.Sinh().spice_options() == {}
