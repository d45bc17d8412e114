"""The topology layer (xbarsolve.topology): every drive/sense scheme, read by every solver,
satisfies KCL at the solution and reaches the ideal product with zero wires."""

import itertools

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.topology import nodal_matrices, topology

DRIVES = ("left", "right", "both")
SENSES = ("bottom", "top", "both")
SCHEMES = list(itertools.product(DRIVES, SENSES))


def _array(rng, drive, sense, device=None, transistor=None, wires=None, shape=(7, 5)):
    m, n = shape
    G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
    G[2, 1] = 0.0  # an open cell
    r = wires if wires is not None else dict(
        r_row=rng.uniform(0.5, 3.0, (m, n - 1)), r_col=rng.uniform(0.5, 3.0, (m - 1, n)),
        r_in=rng.uniform(1.0, 10.0, m), r_out=rng.uniform(1.0, 10.0, n))
    return xs.Crossbar(G, drive=drive, sense=sense, transistor=transistor,
                       device=device if device is not None else xs.devices.Linear(), **r)


def _kcl(xbar, res, k):
    """Largest KCL residual (A) over the unknown T and B nodes of vector k, and the
    column currents (A) that flow into the sense ground(s), from the topology's branches."""
    topo = topology(xbar)
    nodes = topo.nodes()
    phi = nodes.potentials(np.concatenate([res.v_top[k].ravel(), res.v_bottom[k].ravel()]), res.inputs[k])
    F = np.zeros(nodes.n_nodes)
    sensed = np.zeros(xbar.n)
    for fam in topo.families(nodes):
        i = (phi[fam.a] - phi[fam.b]) / fam.r
        np.add.at(F, fam.a, i)
        np.add.at(F, fam.b, -i)
        if fam.name == "r_out":
            sensed += i
    # the cell current leaves T(i, j) and (a linear or junction-free transistor) enters B(i, j)
    np.add.at(F, nodes.T.ravel(), res.cell_currents[k].ravel())
    np.add.at(F, nodes.B.ravel(), -res.cell_currents[k].ravel())
    return np.abs(F[: nodes.n_unknown]).max(), sensed


def _assert_kcl(xbar, res):
    scale = np.abs(res.cell_currents).max()
    for k in range(res.inputs.shape[0]):
        worst, sensed = _kcl(xbar, res, k)
        assert worst <= 1e-10 * scale, (xbar.drive, xbar.sense, worst / scale)
        np.testing.assert_allclose(sensed, res.currents[k], rtol=1e-9, atol=1e-12 * scale)


@pytest.mark.parametrize("drive,sense", SCHEMES)
@pytest.mark.parametrize("method", ["block", "sparse"])
def test_linear_solution_satisfies_kcl(rng, drive, sense, method):
    xbar = _array(rng, drive, sense, transistor=xs.transistors.Resistor(r_on=2e3))
    res = xs.solve(xbar, rng.uniform(0, 0.4, (3, xbar.m)), full=True, method=method)
    _assert_kcl(xbar, res)


@pytest.mark.parametrize("drive,sense", SCHEMES)
def test_newton_solution_satisfies_kcl(rng, drive, sense):
    xbar = _array(rng, drive, sense, device=xs.devices.Sinh(a=3.0))
    res = xs.solve(xbar, rng.uniform(0, 0.6, (3, xbar.m)), full=True, rtol=1e-12)
    assert res.converged.all()
    _assert_kcl(xbar, res)


@pytest.mark.parametrize("drive,sense", SCHEMES)
def test_zero_wire_limit(rng, drive, sense):
    """With every resistance 0 ohm a linear array computes exactly V @ G; with 1 micro-ohm
    the block solver and Newton on a = 0 sinh cells (linear, solved by Newton) reach it to
    the cells' share of the drop, ~ G r n ~ 1e-9."""
    V = rng.uniform(0, 0.4, (3, 7))
    zero = _array(rng, drive, sense, wires=dict(r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0))
    ideal = zero.ideal_currents(V)
    np.testing.assert_allclose(xs.solve(zero, V).currents, ideal, rtol=1e-12, atol=0)
    newton = xs.Crossbar(zero.G, drive=drive, sense=sense, device=xs.devices.Sinh(a=0.0), r_row=0.0, r_col=0.0,
                         r_in=0.0, r_out=0.0)  # Newton on the merged nodal system
    np.testing.assert_allclose(xs.solve(newton, V).currents, ideal, rtol=1e-12, atol=0)
    tiny = dict(r_row=1e-6, r_col=1e-6, r_in=1e-6, r_out=1e-6)
    for device in (xs.devices.Linear(), xs.devices.Sinh(a=0.0)):
        xbar = xs.Crossbar(zero.G, drive=drive, sense=sense, device=device, **tiny)
        kw = {} if device.is_linear else {"rtol": 1e-13}
        np.testing.assert_allclose(xs.solve(xbar, V, **kw).currents, ideal, rtol=1e-8, atol=0)


@pytest.mark.parametrize("drive,sense", SCHEMES)
def test_ladder_and_branches_describe_one_circuit(rng, drive, sense):
    """The ladder form (block and Newton solvers) and the branch list (sparse solver,
    refinement, sensitivities, netlists) give the same nodal matrix, in both orientations."""
    xbar = _array(rng, drive, sense)
    topo = topology(xbar)
    assert topology(xbar) is topo  # derived once, cached on the crossbar
    a, b, r = topo.branches(xbar.cell_conductance())
    nodes = topo.nodes()
    A, _ = nodal_matrices(a, b, 1.0 / r, nodes.n_unknown, xbar.m + 1)
    A = A.toarray()
    m, n = xbar.shape
    for rows_first in (True, False):
        lad = topo.ladder(rows_first)
        g = lad.orient(xbar.cell_conductance())
        P, S = (nodes.T, nodes.B) if rows_first else (nodes.B, nodes.T)
        P, S = lad.orient(P).astype(int), lad.orient(S).astype(int)
        np.testing.assert_allclose(A[P.ravel(), P.ravel()], (lad.p_diag + g).ravel(), rtol=1e-14)
        np.testing.assert_allclose(A[S.ravel(), S.ravel()], (lad.s_diag + g).ravel(), rtol=1e-14)
        np.testing.assert_allclose(-A[P[:, :-1].ravel(), P[:, 1:].ravel()], lad.wp.ravel(), rtol=1e-14)
        np.testing.assert_allclose(-A[S[:-1].ravel(), S[1:].ravel()], lad.c.ravel(), rtol=1e-14)
    assert A.shape == (2 * m * n, 2 * m * n)


def test_transposed_ends_are_the_adjoint():
    """Reciprocity: the transposed crossbar driven at its rows is the original sensed at
    its columns, so T of the transposed array is T of the original, transposed."""
    rng = np.random.default_rng(3)
    for drive, sense in SCHEMES:
        xbar = _array(rng, drive, sense)
        d, s = topology(xbar).transposed_ends
        tr = xs.Crossbar(xbar.G.T, r_row=xbar.r_col_segments.T, r_col=xbar.r_row_segments.T,
                         r_in=xbar.r_out_columns, r_out=xbar.r_in_rows, drive=d, sense=s)
        np.testing.assert_allclose(xs.transfer_matrix(tr), xs.transfer_matrix(xbar).T, rtol=1e-11)


def test_docs_example_runs():
    """The topology example of docs/nonlinear.md runs as written (its asserts hold)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "nonlinear.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "xbarsolve.topology" in b)
    exec(compile(code, "docs/nonlinear.md", "exec"), {})
