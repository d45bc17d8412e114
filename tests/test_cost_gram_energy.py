"""Exact read energy from a Gram matrix without the quadratic forms (gram_factor,
gram_energy), the full solve by iteration (xbarsolve.cost.fields) and network_cost's
choice between the cached forms and the synthetic vectors."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.cost import TERMS, power_matrices, solution_power
from xbarsolve.cost.fields import full_power, full_solution, ladder_power, prefer_iteration
from xbarsolve.cost.power import gram_energy, gram_factor, has_forms

from test_cost import DRIVES, SENSES, random_array, terms


def batches(rng, m):
    """More vectors than rows; fewer; rank 3 among more than m (rank-deficient Gram); with
    zero vectors and signed entries."""
    rank3 = rng.uniform(0.0, 1.0, (2 * m, 3)) @ rng.uniform(0.0, 0.2, (3, m))
    signed = rng.uniform(-0.3, 0.4, (m + 3, m))
    signed[::4] = 0.0
    return {"many": rng.uniform(0.0, 0.4, (3 * m, m)), "few": rng.uniform(0.0, 0.4, (3, m)), "rank3": rank3,
            "signed": signed}


def per_vector_sums(xbar, V):
    p = solution_power(xbar, xs.solve(xbar, V, full=True, method="block"))
    return np.array([getattr(p, k).sum() for k in TERMS]), float(p.total.sum())


@pytest.mark.parametrize("drive", DRIVES)
@pytest.mark.parametrize("sense", SENSES)
def test_gram_energy_equals_forms_and_per_vector_solves(rng, drive, sense):
    """``sum_k p(l_k) = <P, C>`` term by term, to 1e-12 of the total energy, against the
    forms and against a block solve of every vector, for Gram matrices of full rank and of
    rank 3, and for the vectors themselves."""
    xbar = random_array(rng, 9, 6, drive, sense, transistor=xs.transistors.Resistor(r_on=2e3))
    P = power_matrices(xbar)
    for name, V in batches(rng, 9).items():
        C = V.T @ V
        L = gram_factor(C)
        assert L.shape[0] == {"many": 9, "few": 3, "rank3": 3, "signed": 9}[name], name
        ref, total = per_vector_sums(xbar, V)
        forms = np.array([np.vdot(P[k], C) for k in TERMS])
        for got in (gram_energy(xbar, L), gram_energy(xbar, V)):
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * total, err_msg=name)
            np.testing.assert_allclose(got, forms, rtol=0, atol=1e-12 * total, err_msg=name)
            assert got.sum() == pytest.approx(np.vdot(P["total"], C), rel=1e-12)
        assert np.all(ref > 1e-9 * total), name  # every term present


def test_gram_factor_reconstructs_and_drops_round_off(rng):
    V = rng.uniform(0.0, 1.0, (40, 3)) @ rng.uniform(0.0, 1.0, (3, 12))
    C = V.T @ V
    L = gram_factor(C)
    assert L.shape == (3, 12)
    np.testing.assert_allclose(L.T @ L, C, rtol=0, atol=1e-13 * np.abs(C).max())
    full = rng.uniform(0.0, 1.0, (30, 12))
    assert gram_factor(full.T @ full).shape == (12, 12)
    assert gram_factor(np.zeros((5, 5))).shape == (0, 5)
    with pytest.raises(ValueError, match="square"):
        gram_factor(np.zeros((3, 4)))
    xbar = random_array(rng, 5, 3)
    assert np.array_equal(gram_energy(xbar, np.zeros((0, 5))), np.zeros(len(TERMS)))
    with pytest.raises(ValueError, match=r"shape \(r, 5\)"):
        gram_energy(xbar, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="linear"):
        gram_energy(xs.Crossbar(xbar.G, device=xs.devices.Sinh(a=2.0)), np.ones((1, 5)))


@pytest.mark.parametrize("drive", DRIVES)
@pytest.mark.parametrize("sense", SENSES)
def test_full_solution_by_iteration_equals_the_block_solve(rng, drive, sense):
    """Node voltages and cell currents of the conjugate-gradient full solve against the
    block factorization's, to 1e-12 of the largest (both exact to round-off)."""
    xbar = random_array(rng, 11, 7, drive, sense)
    V = rng.uniform(-0.2, 0.4, (4, 11))
    it, bl = full_solution(xbar, V, method="iterative"), full_solution(xbar, V, method="block")
    assert (it.method, bl.method) == ("iterative", "block")
    for f in ("v_top", "v_bottom", "cell_currents", "currents"):
        a, b = getattr(it, f), getattr(bl, f)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max(), err_msg=f)
    assert full_solution(xbar, V).method == ("iterative" if prefer_iteration(11, 7, 4) else "block")


@pytest.mark.parametrize("drive", DRIVES)
@pytest.mark.parametrize("sense", SENSES)
@pytest.mark.parametrize("shape", [(9, 6), (6, 9)])
def test_full_power_equals_solution_power(rng, drive, sense, shape):
    """The read power from ladder-ordered node voltages (iteration; block factorization in
    both orientations) against ``solution_power`` of a full block solve, term by term to
    1e-12 of the total; node_voltages against solve(full=True)."""
    from xbarsolve.solve.linear import Factorization

    m, n = shape
    xbar = random_array(rng, m, n, drive, sense, transistor=xs.transistors.Resistor(r_on=2e3))
    V = rng.uniform(-0.1, 0.4, (4, m))
    ref = solution_power(xbar, xs.solve(xbar, V, full=True, method="block"))
    tol = 1e-12 * ref.total.max()
    for method in ("iterative", "block", "auto"):
        got = full_power(xbar, V, method=method)
        for k, v in terms(got).items():
            np.testing.assert_allclose(v, getattr(ref, k), rtol=0, atol=tol, err_msg=f"{method} {k}")
    for orientation in ("rows", "columns"):
        f = Factorization(xbar, orientation)
        X, U = f.node_voltages(V)
        res = f.solve(V, full=True)
        top, bottom = (X, U) if f.rows_first else (U, X)
        np.testing.assert_allclose(np.moveaxis(top, 2, 0), res.v_top if f.rows_first else res.v_top.transpose(0, 2, 1),
                                   rtol=0, atol=1e-14, err_msg=orientation)
        np.testing.assert_allclose(np.moveaxis(bottom, 2, 0), res.v_bottom if f.rows_first
                                   else res.v_bottom.transpose(0, 2, 1), rtol=0, atol=1e-14, err_msg=orientation)
        for k, v in terms(ladder_power(f.ladder, V, X, U)).items():
            np.testing.assert_allclose(v, getattr(ref, k), rtol=0, atol=tol, err_msg=f"{orientation} {k}")


def test_full_solution_choices_and_fallback(rng, monkeypatch):
    from xbarsolve.solve import iterative

    assert prefer_iteration(64, 64, 32) and not prefer_iteration(64, 64, 33) and prefer_iteration(2, 2, 1)
    xbar = random_array(rng, 8, 6)
    V = rng.uniform(0.0, 0.4, (2, 8))
    assert full_solution(xbar, V).method == "iterative"
    assert full_solution(xbar, rng.uniform(0.0, 0.4, (8, 8))).method == "block"
    zero = xs.Crossbar(xbar.G, r_row=0.0, r_col=1.0)
    assert full_solution(zero, V).method == "sparse"
    # An iteration that does not converge is not returned: the block solve is.
    monkeypatch.setattr(iterative, "MAXITER", 1)
    res = full_solution(xbar, V, method="iterative")
    assert res.method == "block"
    ref = solution_power(xbar, res)
    np.testing.assert_allclose(full_power(xbar, V, method="iterative").total, ref.total, rtol=1e-12)
    monkeypatch.undo()
    # Batches in parts of 3 vectors (bounded temporaries) give the same powers.
    import xbarsolve.cost.fields as fields

    W = rng.uniform(0.0, 0.4, (8, 8))
    whole = {m: full_power(xbar, W, method=m) for m in ("iterative", "block")}
    monkeypatch.setattr(fields, "_CHUNK_DOUBLES", 5 * 8 * 6 * 3)
    for m, p in whole.items():
        got = full_power(xbar, W, method=m)
        assert got.total.shape == (8,)
        np.testing.assert_allclose(got.total, p.total, rtol=1e-14, err_msg=m)
        np.testing.assert_allclose(got.sense, p.sense, rtol=1e-14, err_msg=m)
    np.testing.assert_allclose(full_power(zero, V).total, solution_power(zero, full_solution(zero, V)).total, rtol=1e-12)
    for f in (full_solution, full_power):
        with pytest.raises(ValueError, match="method"):
            f(xbar, V, method="cg")


# ------------------------------------------------------------------ network_cost
@pytest.mark.parametrize("cfg_kw", [
    dict(rows_max=16, cols_max=8, dac_bits=4, adc_bits=6),
    dict(),
    dict(rows_max=32, input_bits=3),
    dict(rows_max=16, conv_mapping="sparse"),
    dict(rows_max=16, r_out=0.0),  # a zero resistance: the sparse solver's node voltages
])
def test_network_cost_synthetic_vectors_equal_the_forms_path(rng, cfg_kw):
    """``read="auto"`` (synthetic vectors, no forms built) against ``read="forms"`` (forms
    for tiles with at least as many vectors as rows, a solve per vector for the others)
    layer by layer and term by term to 1e-12; after the forms path has cached them, "auto"
    takes the forms and agrees again."""
    from xbarsolve.cost import network_cost

    from test_cost_grams import conv_network

    net = conv_network(rng, cfg_kw)
    x = rng.uniform(-1.0, 1.0, (5, 6, 6, 3))
    tiles = [t for al in net.layers.values() for t in al.tiles]
    new = network_cost(net, x)
    assert not any(has_forms(t.crossbar) for t in tiles)  # a crossbar costed once builds no forms
    old = network_cost(net, x, read="forms")
    # Sparse mapping: every tile reads one vector per image, fewer than its rows: no forms.
    assert any(has_forms(t.crossbar) for t in tiles) == ("conv_mapping" not in cfg_kw)
    again = network_cost(net, x)
    for a, b, c in zip(new.layers, old.layers, again.layers):
        assert a.read_pJ > 0 and (a.cycles, a.read_vectors) == (b.cycles, b.read_vectors)
        np.testing.assert_allclose(a.read_split_pJ, b.read_split_pJ, rtol=0, atol=1e-12 * b.read_pJ, err_msg=a.name)
        np.testing.assert_allclose(c.read_split_pJ, b.read_split_pJ, rtol=0, atol=1e-12 * b.read_pJ, err_msg=a.name)
    with pytest.raises(ValueError, match="read"):
        network_cost(net, x, read="gram")


def test_network_cost_builds_the_forms_of_a_crossbar_costed_again(rng):
    """Ski rental: the first costing of a crossbar solves synthetic vectors; once the
    costings add up to ``forms_after`` full solves (a costing of r < m vectors counting
    r / m) its forms are built and later costings read them; the energies agree to
    round-off whichever way each call took."""
    import math

    from xbarsolve.cost import network_cost
    from xbarsolve.cost.network import forms_after

    from test_cost_grams import conv_network

    net = conv_network(rng, dict(rows_max=16, cols_max=8))
    x = rng.uniform(-1.0, 1.0, (5, 6, 6, 3))
    first = network_cost(net, x)
    due, later = {}, set()
    for layer, al in zip(first.layers, net.layers.values()):
        for t in al.tiles:
            m = t.crossbar.shape[0]
            due[id(t.crossbar)] = math.ceil(forms_after(t.crossbar) * m / min(layer.read_vectors, m))
            if due[id(t.crossbar)] > forms_after(t.crossbar):
                later.add(al.name)
    assert min(due.values()) >= 2 and later == {"fc"}  # the dense layer reads 5 vectors: later
    tiles = [t for al in net.layers.values() for t in al.tiles]
    for k in range(2, max(due.values()) + 1):
        again = network_cost(net, x)
        for t in tiles:
            assert has_forms(t.crossbar) == (k >= due[id(t.crossbar)]), (k, t.crossbar.shape)
        for a, b in zip(again.layers, first.layers):
            np.testing.assert_allclose(a.read_split_pJ, b.read_split_pJ, rtol=0, atol=1e-12 * b.read_pJ, err_msg=a.name)
    assert all(has_forms(t.crossbar) for t in tiles)
