"""The exact linear solver against a dense NumPy reference, and the physics invariants."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.solve import _kernels
from xbarsolve.solve.sparse import branches

from naive import naive_block_solve, naive_chain_inverses, naive_solve

ROUNDOFF = 1e-10  # relative; double precision on well-conditioned resistive networks


def random_xbar(rng, m, n, *, drive="left", sense="bottom", transistor=None, uniform=False):
    G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
    if uniform:
        return xs.Crossbar(G, r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0, drive=drive, sense=sense, transistor=transistor)
    return xs.Crossbar(
        G,
        r_row=rng.uniform(0.5, 3.0, (m, n - 1)),
        r_col=rng.uniform(0.5, 3.0, (m - 1, n)),
        r_in=rng.uniform(0.5, 5.0, m),
        r_out=rng.uniform(0.5, 5.0, n),
        drive=drive, sense=sense, transistor=transistor,
    )


def rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


# ---------------------------------------------------------------- kernels vs twins
def test_chain_inverses_match_dense_inverse(rng):
    p, q = 7, 9
    wire = rng.uniform(0.1, 2.0, (p, q - 1))
    diag = rng.uniform(1e-5, 1e-4, (p, q))
    diag[:, :-1] += wire
    diag[:, 1:] += wire
    diag[:, 0] += 1.0
    W = _kernels.chain_inverses(diag, wire)
    ref = naive_chain_inverses(diag, wire)
    assert rel(W, ref) < 1e-12
    assert np.allclose(W, np.swapaxes(W, 1, 2), rtol=0, atol=0)


def test_block_factor_and_solve_match_dense_solve(rng):
    p, q, k = 6, 5, 3
    c = rng.uniform(0.5, 2.0, (p - 1, q))
    K = np.empty((p, q, q))
    for a in range(p):
        X = rng.normal(size=(q, q))
        K[a] = X @ X.T + q * np.eye(q)
        if a > 0:
            K[a] += np.diag(c[a - 1])
        if a < p - 1:
            K[a] += np.diag(c[a])
    F = rng.normal(size=(p, q, k))
    ref = naive_block_solve(K, c, F)
    Kinv = _kernels.block_factor(K.copy(), c)
    U = _kernels.block_solve(Kinv, c, F.copy())
    assert rel(U, ref) < 1e-12
    F_last = np.zeros_like(F)
    F_last[-1] = F[-1]
    U_last = _kernels.block_solve_last(Kinv, c, F[-1].copy())
    assert rel(U_last, naive_block_solve(K, c, F_last)) < 1e-12


# ------------------------------------------------------------ solver vs reference
TOPOLOGIES = list(itertools.product(["left", "right", "both"], ["bottom", "top", "both"]))
TRANSISTORS = [None, xs.transistors.Switch(), xs.transistors.Resistor(r_on=2e3)]


@pytest.mark.parametrize("drive,sense", TOPOLOGIES)
@pytest.mark.parametrize("shape", [(9, 5), (5, 9)])
def test_block_solver_matches_dense_reference(rng, drive, sense, shape):
    xbar = random_xbar(rng, *shape, drive=drive, sense=sense, transistor=xs.transistors.Resistor(r_on=1e3))
    V = rng.uniform(0, 0.4, (3, shape[0]))
    ref_I, ref_T, ref_M, ref_B = naive_solve(xbar, V)
    for orientation in ("rows", "columns"):
        res = xs.factorize(xbar, orientation).solve(V, full=True)
        assert rel(res.currents, ref_I) < ROUNDOFF
        assert np.abs(res.v_top - ref_T).max() < 1e-12
        assert np.abs(res.v_bottom - ref_B).max() < 1e-12
        assert np.abs(res.v_mid - ref_M).max() < 1e-12


@pytest.mark.parametrize("transistor", TRANSISTORS, ids=["1R", "switch", "r_on"])
@pytest.mark.parametrize("method", ["block", "transfer", "sparse"])
def test_every_method_matches_dense_reference(rng, transistor, method):
    xbar = random_xbar(rng, 12, 7, drive="both", sense="both", transistor=transistor)
    V = rng.uniform(0, 0.4, (4, 12))
    res = xs.solve(xbar, V, method=method)
    assert res.method == method
    assert rel(res.currents, naive_solve(xbar, V)[0]) < ROUNDOFF


def test_v_mid_is_none_for_1r_and_between_for_1t1r(rng):
    V = rng.uniform(0, 0.4, (2, 6))
    r1 = xs.solve(random_xbar(rng, 6, 4), V, full=True)
    assert r1.v_mid is None
    r2 = xs.solve(random_xbar(rng, 6, 4, transistor=xs.transistors.Resistor(5e3)), V, full=True)
    assert np.all(r2.v_mid <= r2.v_top) and np.all(r2.v_mid >= r2.v_bottom)


# ------------------------------------------------------------------- invariants
@pytest.mark.parametrize("drive,sense", [("left", "bottom"), ("both", "both"), ("right", "top")])
def test_kcl_residual_vanishes_at_every_node(rng, drive, sense):
    xbar = random_xbar(rng, 10, 8, drive=drive, sense=sense, transistor=xs.transistors.Resistor(1e3))
    V = rng.uniform(0, 0.4, (2, 10))
    res = xs.solve(xbar, V, full=True)
    a, b, r, n_nodes = branches(xbar)
    m, n = xbar.shape
    for k in range(V.shape[0]):
        phi = np.concatenate([res.v_top[k].ravel(), res.v_bottom[k].ravel(), V[k], [0.0]])
        i_branch = (phi[a] - phi[b]) / r
        net = np.zeros(n_nodes)
        np.add.at(net, a, -i_branch)
        np.add.at(net, b, i_branch)
        # Round-off floor: node voltages carry ~eps |V| absolute error, which a branch of
        # conductance 1/r turns into eps |V| / r of current; a node has at most 4 branches.
        floor = np.finfo(float).eps * np.abs(phi).max() * (1.0 / r).max() * 4
        assert np.abs(net[: 2 * m * n]).max() < 10 * floor
        # Current leaving through the ground node equals the column currents' sum.
        assert net[-1] == pytest.approx(res.currents[k].sum(), rel=1e-10)


def test_zero_resistance_limit_is_the_ideal_product(rng):
    G = rng.uniform(1 / 300e3, 1 / 15e3, (20, 11))
    V = rng.uniform(0, 0.4, (5, 20))
    for drive, sense in TOPOLOGIES:
        xbar = xs.Crossbar(G, r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, drive=drive, sense=sense)
        res = xs.solve(xbar, V)
        assert np.allclose(res.currents, V @ G, rtol=1e-14, atol=0)
        assert np.allclose(xs.transfer_matrix(xbar), G, rtol=1e-14, atol=0)


def test_zero_driver_and_sense_resistances_are_exact(rng):
    m, n = 8, 6
    xbar = xs.Crossbar(rng.uniform(1e-5, 6e-5, (m, n)), r_row=2.0, r_col=2.0, r_in=0.0, r_out=0.0)
    V = rng.uniform(0, 0.4, (3, m))
    res = xs.solve(xbar, V, full=True)
    assert np.array_equal(res.v_top[:, :, 0], V)  # the driven nodes sit at the source
    assert np.all(res.v_bottom[:, -1, :] == 0.0)  # the sensed nodes sit at virtual ground
    # The zero is a limit: a tiny resistance gives nearly the same answer.
    near = xbar.__class__(xbar.G, r_row=2.0, r_col=2.0, r_in=1e-9, r_out=1e-9)
    assert rel(xs.solve(near, V).currents, res.currents) < 1e-8


def test_superposition_and_linearity(rng):
    xbar = random_xbar(rng, 16, 16)
    V1, V2 = rng.uniform(0, 0.4, (2, 16))
    I = lambda V: xs.solve(xbar, V, method="block").currents[0]  # noqa: E731
    assert rel(I(2.5 * V1 - 0.7 * V2), 2.5 * I(V1) - 0.7 * I(V2)) < ROUNDOFF


@pytest.mark.parametrize("shape", [(24, 8), (8, 24)])
@pytest.mark.parametrize("drive,sense", [("left", "bottom"), ("both", "top"), ("right", "both")])
def test_transfer_matrix_equals_direct_solves(rng, shape, drive, sense):
    xbar = random_xbar(rng, *shape, drive=drive, sense=sense, transistor=xs.transistors.Resistor(500.0))
    T = xs.transfer_matrix(xbar)
    assert T.shape == shape
    direct = xs.solve(xbar, np.eye(shape[0]), method="block").currents
    assert rel(T, direct) < ROUNDOFF
    V = rng.uniform(0, 0.4, (7, shape[0]))
    assert rel(V @ T, naive_solve(xbar, V)[0]) < ROUNDOFF


def test_reversing_drive_and_sense_mirrors_the_array(rng):
    m, n = 9, 7
    base = random_xbar(rng, m, n)
    V = rng.uniform(0, 0.4, (3, m))
    mirrored = xs.Crossbar(
        base.G[:, ::-1], r_row=base.r_row_segments[:, ::-1], r_col=base.r_col_segments[:, ::-1],
        r_in=base.r_in, r_out=base.r_out_columns[::-1], drive="right", sense="bottom",
    )
    assert rel(xs.solve(mirrored, V).currents[:, ::-1], xs.solve(base, V).currents) < ROUNDOFF
    flipped = xs.Crossbar(
        base.G[::-1], r_row=base.r_row_segments[::-1], r_col=base.r_col_segments[::-1],
        r_in=base.r_in_rows[::-1], r_out=base.r_out, drive="left", sense="top",
    )
    assert rel(xs.solve(flipped, V[:, ::-1]).currents, xs.solve(base, V).currents) < ROUNDOFF


def test_parasitics_only_lower_the_currents(rng):
    xbar = random_xbar(rng, 32, 16, uniform=True)
    V = rng.uniform(0, 0.4, (4, 32))
    I = xs.solve(xbar, V).currents
    assert np.all(I < V @ xbar.G) and np.all(I > 0)


def test_auto_dispatch_and_batch_axis(rng):
    xbar = random_xbar(rng, 20, 6)
    one = xs.solve(xbar, rng.uniform(0, 0.4, 20))
    assert one.currents.shape == (1, 6) and one.method == "iterative"  # a few vectors, fresh array: CG
    few = xs.solve(xbar, rng.uniform(0, 0.4, (3, 20)))
    assert few.method == "block"
    assert rel(few.currents, xs.solve(xbar, few.inputs, method="iterative").currents) < ROUNDOFF
    many = xs.solve(xbar, rng.uniform(0, 0.4, (6, 20)))
    assert many.method == "transfer"  # batch >= block size: V @ T pays off
    again = xs.solve(xbar, rng.uniform(0, 0.4, 20))
    assert again.method == "transfer"  # T is cached on the crossbar now
    assert xs.solve(xbar, np.zeros(20), full=True).method == "block"


def test_result_is_frozen(rng):
    res = xs.solve(random_xbar(rng, 4, 4), np.ones(4) * 0.1)
    with pytest.raises(AttributeError):
        res.currents = None
    with pytest.raises(ValueError, match="full=True"):
        res.cell_voltages


def test_single_row_and_single_column_arrays(rng):
    for shape in [(1, 5), (5, 1), (1, 1)]:
        xbar = random_xbar(rng, *shape, drive="both", sense="both")
        V = rng.uniform(0, 0.4, (2, shape[0]))
        assert rel(xs.solve(xbar, V, method="block").currents, naive_solve(xbar, V)[0]) < ROUNDOFF


# ------------------------------------------------------------------ memory estimates
def test_memory_is_checked_before_the_factorization(monkeypatch):
    """An array too large for memory is refused up front, saying how much it needs and
    how much there is, instead of a bare MemoryError deep in the factorization."""
    from xbarsolve.solve import _memory

    avail = _memory.available_bytes()
    assert avail is None or avail > 0
    monkeypatch.setattr(_memory, "available_bytes", lambda: 2**20)
    xbar = xs.Crossbar(np.full((200, 100), 2e-5))
    # 3 (p, q, q) doubles = 3 * 200 * 100^2 * 8 B = 45.8 MiB
    with pytest.raises(MemoryError, match=r"block factorization of a 200x100 array needs about 45.8 MiB of memory "
                                          r"but 1 MiB is available; .*min\(m, n\) = 100.*tiles"):
        xs.factorize(xbar)
    with pytest.raises(MemoryError, match=r"transfer matrix of a 200x100 array needs about 76.3 MiB"):
        xs.transfer_matrix(xbar, method="block")
    big = xs.Crossbar(np.full((1024, 1024), 2e-5))  # 4 (2 (m + n))^2 doubles = 512 MiB
    with pytest.raises(MemoryError, match=r"nested-dissection transfer matrix of a 1024x1024 array needs about 512 MiB"):
        xs.transfer_matrix(big)
    with pytest.raises(MemoryError, match=r"Newton on a 200x100 array \(32 vectors at a time\) needs about"):
        xs.solve(xbar.__class__(xbar.G, device=xs.devices.Sinh(a=1.0)), np.full((40, 200), 0.1))
    monkeypatch.setattr(_memory, "available_bytes", lambda: 2**30)  # enough: the solve goes ahead
    np.testing.assert_allclose(xs.solve(xbar, np.full(200, 0.1), method="block").currents,
                               xs.solve(xbar, np.full(200, 0.1), method="sparse").currents, rtol=1e-10)


def test_transfer_matrix_picks_the_dissection_on_square_arrays(rng):
    """``transfer_matrix`` uses the nested dissection where it is faster (square arrays of
    64 and more) and the block elimination elsewhere; both agree to round-off, and the
    old path stays callable with ``method="block"``."""
    from xbarsolve.solve.dissection import prefer_dissection

    assert prefer_dissection(64, 64) and not prefer_dissection(576, 64) and not prefer_dissection(32, 32)
    a, b = random_xbar(rng, 64, 64), None
    b = xs.Crossbar(a.G, r_row=a.r_row, r_col=a.r_col, r_in=a.r_in, r_out=a.r_out)
    T_auto = xs.transfer_matrix(a)
    T_block = xs.transfer_matrix(b, method="block")
    assert rel(T_auto, T_block) < ROUNDOFF
    with pytest.raises(ValueError, match="method must be"):
        xs.transfer_matrix(random_xbar(rng, 4, 4), method="lu")
