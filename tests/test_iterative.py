"""Exact small-batch solver (preconditioned CG) against the dense and sparse references."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.solve import _iterative_kernels as K
from xbarsolve.solve import iterative as it
from xbarsolve.solve.linear import cell_ladder
from xbarsolve.solve.sparse import solve_sparse

from naive import naive_solve
from test_linear import TOPOLOGIES, TRANSISTORS, random_xbar, rel
from naive_iterative import naive_p_matrix, naive_s_matrix, naive_schur_matrix

ROUNDOFF = 1e-12


@pytest.fixture
def ladder(rng):
    return cell_ladder(random_xbar(rng, 7, 5, drive="both", sense="both"), rows_first=True)


# ------------------------------------------------------------- kernels vs twins
def test_chain_solves_match_dense_twins(rng, ladder):
    lad = ladder
    r = rng.normal(size=(lad.p, lad.q))
    pinv, pf, sinv, sf = it.chain_factors(lad)
    out = np.empty_like(r)
    K.solve_p_chains(pinv, pf, r, out)
    ref = np.linalg.solve(naive_p_matrix(lad.g, lad.wp, lad.tp0, lad.tp1), r.ravel()).reshape(r.shape)
    assert rel(out, ref) < 1e-13
    K.solve_s_chains(sinv, sf, r, out)
    ref = np.linalg.solve(naive_s_matrix(lad.g, lad.c, lad.ts0, lad.ts1), r.ravel()).reshape(r.shape)
    assert rel(out, ref) < 1e-13


def test_schur_operator_and_pcg_match_dense_twin(rng, ladder):
    lad = ladder
    p, q = lad.p, lad.q
    S = naive_schur_matrix(lad.g, lad.wp, lad.tp0, lad.tp1, lad.c, lad.ts0, lad.ts1)
    pinv, pf, sinv, sf = it.chain_factors(lad)
    s_term = np.zeros((p, q))
    s_term[0] += lad.ts0
    s_term[-1] += lad.ts1
    u = rng.normal(size=(p, q))
    y = np.empty_like(u)
    K.apply_schur(lad.g, lad.c, s_term, pinv, pf, u, np.empty_like(u), y)
    assert rel(y, (S @ u.ravel()).reshape(p, q)) < 1e-12
    rhs = rng.normal(size=(2, p, q)) * 1e-5
    U, its = K.pcg_schur(lad.g, lad.c, s_term, pinv, pf, sinv, sf, rhs, 1e-14, 500)
    assert (its < 500).all()
    assert rel(U, np.linalg.solve(S, rhs.reshape(2, -1).T).T.reshape(U.shape)) < 1e-12


def test_pcg_reports_when_it_runs_out_of_iterations(rng, ladder):
    lad = ladder
    pinv, pf, sinv, sf = it.chain_factors(lad)
    s_term = np.zeros((lad.p, lad.q))
    s_term[-1] += lad.ts1
    _, its = K.pcg_schur(lad.g, lad.c, s_term, pinv, pf, sinv, sf, rng.normal(size=(1, lad.p, lad.q)), 1e-300, 1)
    assert its[0] == 1


# ------------------------------------------------------- solver vs references
@pytest.mark.parametrize("drive,sense", TOPOLOGIES)
@pytest.mark.parametrize("transistor", TRANSISTORS, ids=["1R", "switch", "resistor"])
def test_matches_dense_reference(rng, drive, sense, transistor):
    xbar = random_xbar(rng, 10, 7, drive=drive, sense=sense, transistor=transistor)
    V = rng.uniform(-0.3, 0.3, (3, 10))
    assert rel(it.solve_small_batch(xbar, V), naive_solve(xbar, V)[0]) < ROUNDOFF


@pytest.mark.parametrize("drive,sense", TOPOLOGIES)
def test_matches_sparse_reference_on_larger_arrays(rng, drive, sense):
    xbar = random_xbar(rng, 48, 40, drive=drive, sense=sense, transistor=xs.transistors.Resistor(r_on=1e3))
    V = rng.uniform(-0.3, 0.3, 48)
    I = it.solve_small_batch(xbar, V)
    assert I.shape == (1, 40)
    assert rel(I, solve_sparse(xbar, V[None]).currents) < ROUNDOFF
    assert rel(I, xs.solve(xbar, V).currents) < ROUNDOFF


def test_strong_ir_drop_still_exact(rng):
    G = rng.uniform(1 / 30e3, 1 / 3e3, (40, 40))  # high conductances, 10-ohm wires
    G[rng.random(G.shape) < 0.2] = 0.0
    xbar = xs.Crossbar(G, r_row=10.0, r_col=10.0, r_in=100.0, r_out=50.0)
    V = rng.uniform(0.0, 0.3, (2, 40))
    assert rel(it.solve_small_batch(xbar, V), solve_sparse(xbar, V).currents) < ROUNDOFF


def test_single_row_and_column(rng):
    for shape in ((1, 6), (6, 1)):
        xbar = random_xbar(rng, *shape, drive="both", sense="both")
        V = rng.uniform(-0.3, 0.3, (2, shape[0]))
        assert rel(it.solve_small_batch(xbar, V), naive_solve(xbar, V)[0]) < ROUNDOFF


def test_bad_input(rng):
    xbar = random_xbar(rng, 4, 3)
    with pytest.raises(ValueError, match="rtol"):
        it.solve_small_batch(xbar, np.ones(4), rtol=0.1)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        it.solve_small_batch(xbar, np.ones(5))
    with pytest.raises(ValueError, match="> 0 ohm"):
        it.solve_small_batch(xs.Crossbar(np.full((4, 3), 1e-5), r_col=0.0), np.ones(4))
    with pytest.raises(TypeError, match="linear"):
        it.solve_small_batch(xs.Crossbar(np.full((4, 3), 1e-5), device=xs.devices.Sinh(a=2.0)), np.ones(4))


def test_prefer_iterative_for_small_batches_only():
    assert it.prefer_iterative(64, 64, 1) and it.prefer_iterative(256, 256, 1)
    assert not it.prefer_iterative(64, 64, 64) and not it.prefer_iterative(256, 256, 256)


def test_docstring_examples_run():
    import doctest

    assert doctest.testmod(it, raise_on_error=True).attempted >= 1
