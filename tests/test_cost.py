"""xbarsolve.cost: exact read power, cost tables, network cost, Table 2."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.cost import TERMS, power_matrices, read_power, solution_power

import naive_cost

DRIVES = ("left", "right", "both")
SENSES = ("bottom", "top", "both")


def random_array(rng, m, n, drive="left", sense="bottom", **kw):
    """Random conductances and non-uniform wire, driver and sense resistances."""
    return xs.Crossbar(rng.uniform(3.3e-6, 66.7e-6, (m, n)), r_row=rng.uniform(0.5, 3.0, (m, n - 1)),
                       r_col=rng.uniform(0.5, 3.0, (m - 1, n)), r_in=rng.uniform(0.5, 3.0, m),
                       r_out=rng.uniform(0.5, 3.0, n), drive=drive, sense=sense, **kw)


def terms(p):
    return {k: getattr(p, k) for k in ("total", *TERMS)}


# ------------------------------------------------------------------ linear arrays
@pytest.mark.parametrize("drive", DRIVES)
@pytest.mark.parametrize("sense", SENSES)
def test_linear_energy_balance_and_forms_against_full_solves(rng, drive, sense):
    xbar = random_array(rng, 9, 6, drive, sense, transistor=xs.transistors.Resistor(r_on=2e3))
    V = rng.uniform(0.0, 0.4, (5, 9))
    p = read_power(xbar, V)
    assert p.total.shape == (5,)
    assert np.all(p.total > 0)
    np.testing.assert_allclose(p.dissipated, p.total, rtol=1e-12, atol=0)
    # The cached quadratic forms against a direct nodal solve of every vector.
    q = solution_power(xbar, xs.solve(xbar, V, full=True))
    np.testing.assert_allclose(q.dissipated, q.total, rtol=1e-12, atol=0)
    for k, v in terms(p).items():
        np.testing.assert_allclose(v, getattr(q, k), rtol=0, atol=1e-12 * p.total.max(), err_msg=k)
    # Every term is present (a term of 0 would hide a missing element family).
    assert all((getattr(p, k) > 1e-9 * p.total).all() for k in TERMS)


@pytest.mark.parametrize("drive", DRIVES)
@pytest.mark.parametrize("sense", SENSES)
def test_source_power_equals_driver_current_times_voltage(rng, drive, sense):
    """The source power from the row currents (cells) equals V times the current through r_in.

    Driver resistances of 100-300 ohm keep ``V - v_top`` from losing many digits to
    cancellation (with 1 ohm it loses ``log10(V / dv) ~ 4``).  The node voltages of the
    solve carry ~1e-13 relative round-off (nodal matrix with wire/cell conductance ratios
    ~1e6) and the difference amplifies it by ``V / dv ~ 10``: measured 2.5e-12, hence
    1e-10."""
    xbar = xs.Crossbar(rng.uniform(3.3e-6, 66.7e-6, (7, 5)), r_row=rng.uniform(0.5, 3.0, (7, 4)), r_col=1.5,
                       r_in=rng.uniform(100.0, 300.0, 7), r_out=2.0, drive=drive, sense=sense)
    V = rng.uniform(0.0, 0.4, (3, 7))
    res = xs.solve(xbar, V, full=True)
    left, right = xbar.drive_ends
    i_src = left * (V - res.v_top[:, :, 0]) / xbar.r_in_rows + right * (V - res.v_top[:, :, -1]) / xbar.r_in_rows
    np.testing.assert_allclose(read_power(xbar, V).total, (V * i_src).sum(axis=1), rtol=1e-10)


def test_sense_power_single_ended_is_r_out_times_column_current_squared(rng):
    xbar = random_array(rng, 8, 4)
    V = rng.uniform(0.0, 0.4, (4, 8))
    I = xs.solve(xbar, V).currents
    np.testing.assert_allclose(read_power(xbar, V).sense, (I**2 * xbar.r_out_columns).sum(axis=1), rtol=1e-12)


def test_zero_wire_limit_is_sum_of_g_v_squared(rng):
    G = rng.uniform(3.3e-6, 66.7e-6, (12, 7))
    xbar = xs.Crossbar(G, r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0)
    V = rng.uniform(0.0, 0.4, (6, 12))
    p = read_power(xbar, V)
    ideal = (V**2 * G.sum(axis=1)).sum(axis=1)
    np.testing.assert_allclose(p.total, ideal, rtol=1e-12)
    np.testing.assert_allclose(p.cells, ideal, rtol=1e-12)
    for k in ("row_wires", "column_wires", "drivers", "sense"):
        assert np.all(getattr(p, k) == 0.0), k


def test_some_zero_resistances_balance(rng):
    """Zero driver resistances (sparse path, merged nodes) dissipate nothing, the rest balances."""
    m, n = 8, 5
    xbar = xs.Crossbar(rng.uniform(3.3e-6, 66.7e-6, (m, n)), r_row=rng.uniform(0.5, 2, (m, n - 1)),
                       r_col=1.0, r_in=0.0, r_out=rng.uniform(0.5, 2, n), drive="both", sense="both")
    V = rng.uniform(0.0, 0.4, (3, m))
    p = read_power(xbar, V)
    assert np.all(p.drivers == 0.0)
    np.testing.assert_allclose(p.dissipated, p.total, rtol=1e-12)


def test_power_matrices_are_cached_symmetric_and_positive(rng):
    xbar = random_array(rng, 10, 4)
    P = power_matrices(xbar)
    assert power_matrices(xbar) is P
    for k, a in P.items():
        assert a.shape == (10, 10)
        np.testing.assert_allclose(a, a.T, rtol=0, atol=1e-14 * np.abs(a).max(), err_msg=k)
        assert np.linalg.eigvalsh(a).min() > -1e-12 * np.abs(a).max(), k
    with pytest.raises(ValueError):
        P["total"][0, 0] = 1.0


def test_read_power_rejects_bad_inputs(rng):
    xbar = random_array(rng, 5, 3)
    with pytest.raises(ValueError, match="shape"):
        read_power(xbar, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="finite"):
        read_power(xbar, np.full(5, np.nan))


def test_solution_power_needs_node_voltages(rng):
    xbar = random_array(rng, 5, 3)
    with pytest.raises(ValueError, match="full=True"):
        solution_power(xbar, xs.solve(xbar, np.ones(5)))


# ------------------------------------------------------------------ nonlinear arrays
@pytest.mark.parametrize("drive", DRIVES)
@pytest.mark.parametrize("sense", SENSES)
@pytest.mark.parametrize("transistor", ["level1", "1R"])
def test_nonlinear_energy_balance(rng, drive, sense, transistor):
    tr = xs.transistors.Level1() if transistor == "level1" else None
    xbar = random_array(rng, 7, 5, drive, sense, device=xs.devices.Sinh(a=2.5), transistor=tr)
    V = rng.uniform(0.0, 0.4, (4, 7))
    rtol = 1e-10
    p = read_power(xbar, V, rtol=rtol)
    np.testing.assert_allclose(p.dissipated, p.total, rtol=rtol, atol=0)
    assert np.all(p.cells > 0.9 * p.total)


def test_nonlinear_junction_leakage_is_cell_power(rng):
    """Strong bulk junctions: the current they take to ground is dissipated in the cells;
    leaving it out would break the balance far beyond the Newton tolerance."""
    tr = xs.transistors.Level1(is_=1e-9, gmin=1e-7)
    xbar = random_array(rng, 6, 5, device=xs.devices.Sinh(a=2.0), transistor=tr)
    V = rng.uniform(0.05, 0.4, (3, 6))
    res = xs.solve(xbar, V, full=True, rtol=1e-11)
    p = solution_power(xbar, res)
    np.testing.assert_allclose(p.dissipated, p.total, rtol=1e-10)
    leak = naive_cost.junction_currents(tr, res.v_mid, res.v_bottom)
    correction = np.einsum("kij,kij->k", leak, res.v_bottom)
    assert np.all(np.abs(correction) > 100 * 1e-10 * p.total)  # 100x the balance tolerance


def test_junction_kernel_against_naive_twin(rng):
    from xbarsolve.cost._kernels import junction_currents

    tr = xs.transistors.Level1(is_=1e-9, gmin=1e-7)
    vm, vb = rng.uniform(-0.2, 0.4, (2, 3, 4, 5))
    got = junction_currents(tr.junction_kernel, vm, vb, np.asarray(tr.parameters(), dtype=np.float64))
    np.testing.assert_allclose(got, naive_cost.junction_currents(tr, vm, vb), rtol=1e-14, atol=0)


def test_nonlinear_read_power_matches_linear_limit(rng):
    """A sinh device with a tiny nonlinearity approaches the linear array's power."""
    G = rng.uniform(3.3e-6, 66.7e-6, (6, 4))
    V = rng.uniform(0.0, 0.4, (2, 6))
    lin = read_power(xs.Crossbar(G), V)
    non = read_power(xs.Crossbar(G, device=xs.devices.Sinh(a=1e-4)), V)
    for k, v in terms(lin).items():
        np.testing.assert_allclose(getattr(non, k), v, rtol=1e-6, err_msg=k)
    with pytest.raises(TypeError, match="linear"):
        power_matrices(xs.Crossbar(G, device=xs.devices.Sinh(a=2.0)))
