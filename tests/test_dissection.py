"""Nested-dissection transfer matrix against today's block solver and the references."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.solve import _dissection_kernels as K
from xbarsolve.solve import dissection as D
from xbarsolve.solve.sparse import solve_sparse

from naive import naive_solve
from test_linear import TOPOLOGIES, TRANSISTORS, random_xbar, rel
from naive_dissection import naive_leaf_schur, naive_pair_schur

ROUNDOFF = 1e-12  # relative, against the largest entry


def random_laplacian(rng, P, N):
    """Nodal matrices of P random complete resistive networks without ground (rows sum to 0)."""
    W = rng.uniform(1e-5, 1.0, (P, N, N))
    W = np.triu(W, 1)
    W = W + np.swapaxes(W, 1, 2)
    return np.eye(N) * W.sum(axis=2)[:, :, None] - W


# ------------------------------------------------------------- kernels vs twins
def test_leaf_schur_matches_dense_twin(rng):
    N, nb = 9, 4
    ea = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 4], dtype=np.int64)
    eb = np.array([4, 5, 6, 7, 5, 6, 7, 8, 0, 8, 8], dtype=np.int64)
    vals = rng.uniform(0.1, 2.0, (3, ea.size))
    got = K.leaf_schur(vals, ea, eb, N, nb)
    ref = naive_leaf_schur(vals, ea, eb, N, nb)
    assert rel(got, ref) < 1e-13
    assert np.array_equal(got, np.swapaxes(got, 1, 2))


def test_pair_schur_matches_dense_twin(rng):
    Ma, Mb = random_laplacian(rng, 4, 5), random_laplacian(rng, 3, 6)
    map_a = np.array([0, 7, 1, 8, 2], dtype=np.int64)  # two separator nodes (7, 8) shared
    map_b = np.array([3, 8, 4, 7, 5, 6], dtype=np.int64)
    sel_a = np.array([3, 0, 1], dtype=np.int64)
    sel_b = np.array([2, 2, 0], dtype=np.int64)
    for k in (0, 2):
        got = K.pair_schur(Ma, sel_a, map_a, Mb, sel_b, map_b, 9, k)
        assert rel(got, naive_pair_schur(Ma, sel_a, map_a, Mb, sel_b, map_b, 9, k)) < 1e-13


def test_big_schur_matches_twin(rng):
    C = random_laplacian(rng, 2, 12)
    got = D._schur_big(C, 5)
    assert rel(got, np.array([C[t, :7, :7] - C[t, :7, 7:] @ np.linalg.solve(C[t, 7:, 7:], C[t, 7:, :7]) for t in range(2)])) < 1e-13


def test_levels_partition_every_parent_into_its_two_children():
    levels = D._levels(23, 37)
    for (_, parents), (_, children) in zip(levels, levels[1:]):
        a, b = children[0::2], children[1::2]
        assert np.array_equal(np.minimum(a, b)[:, [0, 2]], parents[:, [0, 2]])
        assert np.array_equal(np.maximum(a, b)[:, [1, 3]], parents[:, [1, 3]])
        area = lambda x: (x[:, 1] - x[:, 0]) * (x[:, 3] - x[:, 2])  # noqa: E731
        assert np.array_equal(area(a) + area(b), area(parents))
    leaves = levels[-1][1]
    assert (leaves[:, 1] - leaves[:, 0]).max() <= D.LEAF and (leaves[:, 1] - leaves[:, 0]).min() >= 2
    assert (leaves[:, 3] - leaves[:, 2]).max() <= D.LEAF and (leaves[:, 3] - leaves[:, 2]).min() >= 2


# ------------------------------------------------------- solver vs references
@pytest.mark.parametrize("drive,sense", TOPOLOGIES)
@pytest.mark.parametrize("transistor", TRANSISTORS, ids=["1R", "switch", "resistor"])
def test_matches_block_solver_and_dense_reference(rng, drive, sense, transistor):
    xbar = random_xbar(rng, 11, 9, drive=drive, sense=sense, transistor=transistor)
    T = D.transfer_matrix_dissection(xbar)
    assert rel(T, xs.transfer_matrix(xbar)) < ROUNDOFF
    assert rel(T, naive_solve(xbar, np.eye(11))[0]) < ROUNDOFF


@pytest.mark.parametrize("drive,sense", TOPOLOGIES)
@pytest.mark.parametrize("shape", [(37, 26), (6, 45), (2, 2), (3, 19)])
def test_matches_sparse_reference_on_uneven_shapes(rng, drive, sense, shape):
    xbar = random_xbar(rng, *shape, drive=drive, sense=sense, transistor=xs.transistors.Resistor(r_on=1e3))
    T = D.transfer_matrix_dissection(xbar)
    assert rel(T, solve_sparse(xbar, np.eye(shape[0])).currents) < ROUNDOFF
    assert rel(T, xs.transfer_matrix(xbar)) < ROUNDOFF


def test_open_cells_and_strong_wires(rng):
    G = rng.uniform(1 / 300e3, 1 / 15e3, (24, 20))
    G[rng.random(G.shape) < 0.3] = 0.0
    xbar = xs.Crossbar(G, r_row=rng.uniform(1e-3, 20.0, (24, 19)), r_col=rng.uniform(1e-3, 20.0, (23, 20)),
                       r_in=50.0, r_out=0.1, drive="both", sense="both")
    assert rel(D.transfer_matrix_dissection(xbar), solve_sparse(xbar, np.eye(24)).currents) < ROUNDOFF


def test_rejects_what_it_cannot_take(rng):
    with pytest.raises(ValueError, match="m, n >= 2"):
        D.transfer_matrix_dissection(xs.Crossbar(np.full((1, 5), 1e-5)))
    with pytest.raises(ValueError, match="> 0 ohm"):
        D.transfer_matrix_dissection(xs.Crossbar(np.full((4, 5), 1e-5), r_row=0.0))
    with pytest.raises(TypeError, match="linear"):
        D.transfer_matrix_dissection(xs.Crossbar(np.full((4, 5), 1e-5), device=xs.devices.Sinh(a=2.0)))


def test_prefer_dissection_keeps_the_block_solver_for_small_and_tall_arrays():
    assert not D.prefer_dissection(32, 32) and not D.prefer_dissection(576, 64) and not D.prefer_dissection(64, 576)
    assert D.prefer_dissection(64, 64) and D.prefer_dissection(256, 256) and D.prefer_dissection(1024, 128)


def test_docstring_examples_run():
    import doctest

    assert doctest.testmod(D, raise_on_error=True).attempted >= 1
