"""The topology layer (xbarsolve.topology): every drive/sense scheme, read by every solver,
satisfies KCL at the solution and reaches the ideal product with zero wires."""

import dataclasses
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


# ------------------------------------------------------------------ schemes B and C
# Topology B: input bits on the gates, a supply line at v_read along every column;
# topology C: interleaved row pairs at +V and -V sharing each column node.

def _scheme_array(rng, scheme, device=None, transistor=None, zero=False, tiny=False, shape=(6, 5)):
    m, n = shape
    G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
    G[2, 1] = 0.0  # an open cell
    ml = m // 2 if scheme == "C" else m
    if zero or tiny:
        r = 1e-6 if tiny else 0.0
        wires = dict(r_row=r, r_col=r, r_in=r, r_out=r, r_supply=r, r_supply_in=r)
    else:
        wires = dict(r_row=rng.uniform(0.5, 3.0, (m, n - 1)), r_col=rng.uniform(0.5, 3.0, (ml - 1, n)),
                     r_in=rng.uniform(1.0, 10.0, m), r_out=rng.uniform(1.0, 10.0, n),
                     r_supply=rng.uniform(0.5, 3.0, (m - 1, n)), r_supply_in=rng.uniform(1.0, 10.0, n))
    return xs.Crossbar(G, scheme=scheme, transistor=transistor, v_read=0.3,
                       device=device if device is not None else xs.devices.Linear(), **wires)


def _inputs(rng, xbar, k=4):
    if xbar.scheme == "B":
        bits = rng.integers(0, 2, (k, xbar.m)).astype(float)
        bits[0] = 1.0  # every cell on
        bits[1, :2] = 0.0  # some off
        return bits
    return rng.uniform(-0.4 if xbar.scheme == "C" else 0.0, 0.4, (k, xbar.n_inputs))


def _scheme_kcl(xbar, res, k):
    """Largest KCL residual of vector k over every unknown node (T, M, column nodes)
    divided by the node's total small-signal conductance (V: the voltage error it
    means), from the topology's branches and the cell models evaluated at the solution's
    node voltages, and the current into the sense ground(s) (A).  Off cells of scheme B: open
    (no middle node), an open gate-less transistor, or a Level1 with its gate at 0 V."""
    topo = topology(xbar)
    tr = xbar.transistor
    has_mid = tr is not None and not tr.is_short
    nodes = topo.nodes(has_mid)
    x = np.zeros(nodes.n_unknown)
    x[nodes.T.ravel()] = res.v_top[k].ravel()
    x[nodes.B.ravel()] = res.v_bottom[k].ravel()
    if has_mid:
        x[nodes.M.ravel()] = res.v_mid[k].ravel()
    phi = nodes.potentials(x, topo.source_values(res.inputs[k])[0])
    F, S = np.zeros(nodes.n_nodes), np.zeros(nodes.n_nodes)
    sensed = np.zeros(xbar.n)

    def leave(a, b, i, ga, gb=None):  # current i (A) from node a to node b (None: the ground), di/dv (S)
        np.add.at(F, a, i)
        np.add.at(S, a, np.abs(ga))
        if b is not None:
            np.add.at(F, b, -i)
            np.add.at(S, b, np.abs(gb))

    for fam in topo.families(nodes):
        i = (phi[fam.a] - phi[fam.b]) / fam.r
        leave(fam.a, fam.b, i, 1.0 / fam.r, 1.0 / fam.r)
        if fam.name == "r_out":
            sensed += i
    on = np.ones(xbar.m) if xbar.scheme != "B" else res.inputs[k]
    T, B = nodes.T.ravel(), nodes.B.ravel()
    lower = nodes.M.ravel() if has_mid else B
    i_mem = xbar.device.current(phi[T] - phi[lower], xbar.G.ravel())
    g_mem = xbar.device.didv(phi[T] - phi[lower], xbar.G.ravel())
    if not has_mid:
        i_mem, g_mem = i_mem * np.repeat(on, xbar.n), g_mem * np.repeat(on, xbar.n)
    leave(T, lower, i_mem, g_mem, g_mem)
    if has_mid:
        vg = tr.gate_voltages(xbar.m)
        gated = vg is not None
        vg = np.repeat((vg if gated else np.zeros(xbar.m)) * on, xbar.n)
        i_ch, gd, gs = tr.ids(phi[lower], phi[B], vg) * (1.0 if gated else np.repeat(on, xbar.n))
        leave(lower, B, i_ch, gd, gs)
        for node in (lower, B):
            leave(node, None, *tr.junction(phi[node]))
    F, S = F[: nodes.n_unknown], S[: nodes.n_unknown]
    assert (F[S == 0] == 0).all()  # a node with no conducting branch (an open, switched-off cell's middle)
    return np.max(np.abs(F[S > 0]) / S[S > 0]), sensed


CELLS = {
    "1R": (None, None),
    "resistor": (None, xs.transistors.Resistor(r_on=2e3)),
    "switch": (None, xs.transistors.Switch()),
    "sinh-switch": (xs.devices.Sinh(a=3.0), xs.transistors.Switch()),
    "sinh-resistor": (xs.devices.Sinh(a=3.0), xs.transistors.Resistor(r_on=2e3)),
    "sinh-level1": (xs.devices.Sinh(a=3.0), xs.transistors.Level1()),
}


@pytest.mark.parametrize("scheme", ["A", "B", "C"])
@pytest.mark.parametrize("cells", list(CELLS))
def test_every_scheme_satisfies_kcl(rng, scheme, cells):
    """Linear (sparse path) and nonlinear (merged-node Newton) solutions of every scheme
    satisfy KCL at every node, and the column currents are what flows into the ground."""
    device, transistor = CELLS[cells]
    xbar = _scheme_array(rng, scheme, device, transistor)
    V = _inputs(rng, xbar)
    kw = {} if xbar.is_linear else {"rtol": 1e-12}
    res = xs.solve(xbar, V, full=True, **kw)
    if not xbar.is_linear:
        assert res.converged.all()
    scale = np.abs(res.cell_currents).max()
    assert scale > 1e-6  # the cells conduct microamperes
    for k in range(V.shape[0]):
        worst, sensed = _scheme_kcl(xbar, res, k)
        assert worst <= 1e-14, (scheme, cells, k, worst)  # V, of inputs ~0.4 V (round-off: ~1e-16 V)
        np.testing.assert_allclose(sensed, res.currents[k], rtol=1e-8, atol=1e-11 * scale)


@pytest.mark.parametrize("scheme", ["B", "C"])
def test_scheme_zero_wire_limit(rng, scheme):
    """With every resistance 0 ohm a linear array computes the ideal product exactly
    (B: v_read x @ G; C: V @ (G+ - G-)), Newton on linear (a = 0) sinh cells too; with
    1 micro-ohm both reach it to the wires' share of the drop, ~ G r m ~ 1e-9."""
    zero = _scheme_array(rng, scheme, zero=True)
    V = _inputs(rng, zero)
    ideal = zero.ideal_currents(V)
    expect = 0.3 * V @ zero.G if scheme == "B" else V @ (zero.G[0::2] - zero.G[1::2])
    np.testing.assert_allclose(ideal, expect, rtol=1e-15)
    for transistor in (None, xs.transistors.Switch()):
        for device in (xs.devices.Linear(), xs.devices.Sinh(a=0.0)):
            xbar = dataclasses.replace(zero, device=device, transistor=transistor)
            np.testing.assert_allclose(xs.solve(xbar, V).currents, ideal, rtol=1e-12, atol=1e-12 * np.abs(ideal).max())
            tiny = _scheme_array(np.random.default_rng(0), scheme, device, transistor, tiny=True)
            tiny = dataclasses.replace(tiny, G=zero.G)
            kw = {} if device.is_linear else {"rtol": 1e-13}
            np.testing.assert_allclose(xs.solve(tiny, V, **kw).currents, ideal, rtol=1e-8, atol=1e-8 * np.abs(ideal).max())


def test_scheme_b_gate_lines_carry_no_current(rng):
    """In scheme B the inputs are gates: the row wires and drivers change nothing, a zero
    bit vector gives no current (open cells) or only the off Level1's leakage, and the
    supply's own resistance does matter."""
    xbar = _scheme_array(rng, "B", transistor=xs.transistors.Resistor(r_on=2e3))
    V = _inputs(rng, xbar)
    base = xs.solve(xbar, V).currents
    other = dataclasses.replace(xbar, r_row=50.0, r_in=1e3)
    np.testing.assert_array_equal(xs.solve(other, V).currents, base)
    assert not np.allclose(xs.solve(dataclasses.replace(xbar, r_supply=20.0), V).currents, base, rtol=1e-3)
    np.testing.assert_array_equal(xs.solve(xbar, np.zeros(xbar.m)).currents, 0.0)
    # a bit switches exactly its row: with zero wires, column j gets v_read G_ij from row i alone
    lvl = _scheme_array(rng, "B", xs.devices.Sinh(a=3.0), xs.transistors.Level1())
    off = xs.solve(lvl, np.zeros(lvl.m), rtol=1e-12)
    on = xs.solve(lvl, np.ones(lvl.m), rtol=1e-12)
    assert off.converged.all() and np.abs(off.currents).max() < 1e-6 * np.abs(on.currents).min()


def test_scheme_c_pairs_cancel(rng):
    """Scheme C is odd in V (linear cells), G+ = G- cancels in the ideal limit, and its
    transfer matrix (through the sparse path) reproduces its solves."""
    xbar = _scheme_array(rng, "C", transistor=xs.transistors.Resistor(r_on=2e3))
    V = _inputs(rng, xbar)
    res = xs.solve(xbar, V, method="sparse").currents
    np.testing.assert_allclose(xs.solve(xbar, -V).currents, -res, rtol=1e-12)
    np.testing.assert_allclose(V @ xs.transfer_matrix(xbar), res, rtol=1e-11, atol=1e-12 * np.abs(res).max())
    np.testing.assert_allclose(xs.solve(xbar, V, method="transfer").currents, res, rtol=1e-11, atol=1e-12 * np.abs(res).max())
    same = np.repeat(xbar.G[0::2], 2, axis=0)
    zero = _scheme_array(rng, "C", zero=True)
    np.testing.assert_allclose(xs.solve(dataclasses.replace(zero, G=same), V).currents, 0.0, atol=1e-18)
    # the pair shares one column node: in full results rows 2i and 2i+1 sit at one potential
    full = xs.solve(xbar, V, full=True)
    np.testing.assert_array_equal(full.v_bottom[:, 0::2], full.v_bottom[:, 1::2])


def test_scheme_inputs_and_refusals_are_clear(rng, tmp_path):
    from xbarsolve.validation.sensitivity import column_current_sensitivities

    G = np.full((4, 3), 2e-5)
    with pytest.raises(ValueError, match="scheme must be one of"):
        xs.Crossbar(G, scheme="D")
    with pytest.raises(ValueError, match="even number of rows"):
        xs.Crossbar(G[:3], scheme="C")
    with pytest.raises(ValueError, match="leave drive='left'"):
        xs.Crossbar(G, scheme="B", drive="both")
    with pytest.raises(ValueError, match=r"r_col must be a scalar or an array of shape \(1, 3\)"):
        xs.Crossbar(G, scheme="C", r_col=np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"r_supply must be a scalar or an array of shape \(3, 3\)"):
        xs.Crossbar(G, scheme="B", r_supply=np.ones((4, 3)))
    with pytest.raises(ValueError, match="v_read must be a finite voltage"):
        xs.Crossbar(G, scheme="B", v_read=np.inf)
    b, c = xs.Crossbar(G, scheme="B"), xs.Crossbar(G, scheme="C")
    with pytest.raises(ValueError, match=r"input bits 0 or 1 in scheme B \(bit-serial inputs on the gates\); V\[0, 2\] = 0.5"):
        xs.solve(b, [1, 0, 0.5, 1])
    with pytest.raises(ValueError, match=r"shape \(2,\) or \(batch, 2\) volts, one per row pair"):
        xs.solve(c, np.ones(4))
    with pytest.raises(ValueError, match="no transfer matrix"):
        xs.transfer_matrix(b)
    for xbar in (b, c):
        with pytest.raises(ValueError, match="method='block' takes scheme 'A' only"):
            xs.solve(xbar, np.ones(xbar.n_inputs), method="block")
        with pytest.raises(ValueError, match="takes scheme 'A' only"):
            xs.factorize(xbar)
        with pytest.raises(ValueError, match="xs.convert takes scheme 'A' only"):
            xs.convert(xbar, 0.1)
        with pytest.raises(ValueError, match="column_current_sensitivities takes scheme 'A' only"):
            column_current_sensitivities(xbar, np.ones(xbar.n_inputs))
        with pytest.raises(ValueError, match="iteration='lines' needs .*scheme 'A'"):
            xs.solve(dataclasses.replace(xbar, device=xs.devices.Sinh()), np.ones(xbar.n_inputs), iteration="lines")


def test_scheme_decks_name_their_sources(rng):
    """The netlists of B and C hold the supply/gate and the +/-V sources of the scheme."""
    from xbarsolve.spice import write_netlist

    b = _scheme_array(rng, "B", xs.devices.Sinh(), xs.transistors.Level1(v_gate=2.5))
    deck = write_netlist(b, np.array([1, 0, 1, 1, 0, 1.0]), analysis="op").splitlines()
    for needle in ("vin_1 in_1 0 dc 0.0", "vsup_0 sup_0 0 dc 0.3", "egate_1 g_1 0 in_1 0 2.5"):
        assert needle in deck, needle
    assert any(line.startswith("rsupin_t_3 sup_0 t_0_3 ") for line in deck)
    assert any(line.startswith("rsup_2_3 t_2_3 t_3_3 ") for line in deck)
    assert not any(line.startswith(("rrow_", "rin_")) for line in deck)
    c = _scheme_array(rng, "C")
    deck = write_netlist(c, np.array([0.1, -0.2, 0.3]), analysis="op").splitlines()
    for needle in ("vin_1 in_1 0 dc -0.2", "einn_1 inn_1 0 in_1 0 -1.0"):
        assert needle in deck, needle
    assert any(line.startswith("rin_l_2 in_1 t_2_0 ") for line in deck)
    assert any(line.startswith("rin_l_3 inn_1 t_3_0 ") for line in deck)
    assert any(line.startswith("Rmem_3_2 t_3_2 b_1_2 ") for line in deck)  # row 3 = the -V row of pair 1
    switch = _scheme_array(rng, "B", transistor=xs.transistors.Switch())
    with pytest.raises(ValueError, match="one deck holds one bit pattern"):
        write_netlist(switch, np.array([[1, 0, 1, 1, 0, 1.0], [1, 1, 1, 1, 0, 1.0]]))


def test_topologies_doc_example_runs():
    """The example of docs/topologies.md runs as written (its asserts hold)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "topologies.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "docs/topologies.md", "exec"), {})


@pytest.mark.parametrize("scheme", ["A", "B", "C"])
def test_source_map_sets_the_source_nodes(rng, scheme):
    """source_values (A: the identity fast path) is the source map: source s at
    gain[s] V[input[s]] + offset[s]; A row i at V_i, B v_read, C +V_i / -V_i."""
    xbar = _scheme_array(rng, scheme)
    topo = topology(xbar)
    V = _inputs(rng, xbar)
    inp, gain, offset = topo.source_map()
    u = np.array([[g * v[i] + o if i >= 0 else o for i, g, o in zip(inp, gain, offset)] for v in V])
    np.testing.assert_array_equal(topo.source_values(V), u)
    assert u.shape == (V.shape[0], topo.nodes().src.size)
    expect = {"A": V, "B": np.full((V.shape[0], 1), 0.3), "C": np.repeat(V, 2, axis=1) * np.tile([1, -1], xbar.n_inputs)}
    np.testing.assert_array_equal(u, expect[scheme])


def test_schemes_round_trip_through_hdf5(tmp_path, rng):
    """B and C arrays save and load with their scheme, supply lines and read voltage (format
    version 2); a scheme-A file stays version 1, so earlier readers keep reading it; a
    version-1 reader refuses a version-2 file instead of loading it as scheme A."""
    import h5py

    G = rng.uniform(1 / 300e3, 1 / 15e3, (6, 4))
    b = xs.Crossbar(G, scheme="B", r_col=1.5, r_supply=rng.uniform(1, 3, (5, 4)), r_supply_in=4.0, v_read=0.3)
    c = xs.Crossbar(G, scheme="C", r_col=rng.uniform(1, 2, (2, 4)), r_in=3.0)
    for xbar, V in ((b, np.array([1, 0, 1, 1, 0, 1.0])), (c, rng.uniform(0, 0.4, 3))):
        path = xs.save(tmp_path / f"{xbar.scheme}.h5", crossbar=xbar)
        with h5py.File(path) as f:
            assert int(f.attrs["format_version"]) == 2
        back = xs.load(path)["crossbar"]
        assert back.scheme == xbar.scheme and back.v_read == xbar.v_read
        np.testing.assert_array_equal(back.r_supply_segments, xbar.r_supply_segments)
        np.testing.assert_array_equal(xs.solve(back, V).currents, xs.solve(xbar, V).currents)
    a = xs.save(tmp_path / "A.h5", crossbar=xs.Crossbar(G))
    with h5py.File(a) as f:
        assert int(f.attrs["format_version"]) == 1
    import xbarsolve.io as io

    old = io.FORMAT_VERSION
    try:
        io.FORMAT_VERSION = 1  # what an earlier reader accepts
        with pytest.raises(xs.FormatError, match="format version 2, newer than this xbarsolve reads"):
            xs.load(tmp_path / "B.h5")
    finally:
        io.FORMAT_VERSION = old


# -------------------------------------------------- a scheme is declared in topology.py

def test_only_the_topology_module_names_schemes():
    """No module but xbarsolve/topology.py compares a scheme with a scheme's name or keys a
    table by scheme names: the crossbar, the file format, the solvers and the netlist writer
    read a scheme's facts from its SchemeSpec and the Topology (docs/topologies.md,
    "Adding a scheme").  Fails on a `scheme == "B"` (or a {"A": ..., "B": ...} table)
    anywhere else."""
    import ast
    from pathlib import Path

    from xbarsolve.topology import SCHEMES

    def names_scheme(node):
        return (isinstance(node, ast.Name) and "scheme" in node.id.lower()) or (
            isinstance(node, ast.Attribute) and "scheme" in node.attr.lower())

    def is_name(node):
        return isinstance(node, ast.Constant) and node.value in SCHEMES or (
            isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts and all(is_name(e) for e in node.elts))

    root = Path(xs.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "topology.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(names_scheme(s) for s in sides) and any(is_name(s) for s in sides):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
            elif isinstance(node, ast.Dict) and len(node.keys) > 1 and all(k is not None and is_name(k) for k in node.keys):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not found, found


def test_switching_realises_off_cells_by_the_transistor_model(rng):
    """Topology.switching: scheme B's 0 bits open a 1R cell, open the channel of a gate-less
    model (Switch, Resistor), put a Level1's gate at 0 V; schemes A and C switch nothing and
    give the model's own gate voltages."""
    G = rng.uniform(1 / 300e3, 1 / 15e3, (4, 3))
    bits = np.array([[1, 0, 1, 1], [0, 0, 0, 1.0]])
    vg = np.array([2.0, 2.5, 3.0, 3.3])
    for tr in (None, xs.transistors.Switch(), xs.transistors.Resistor(r_on=1e3)):
        gates, opened = topology(xs.Crossbar(G, scheme="B", transistor=tr)).switching(bits, tr)
        assert gates is None
        np.testing.assert_array_equal(opened, bits == 0)
    l1 = xs.transistors.Level1(v_gate=vg)
    gates, opened = topology(xs.Crossbar(G, scheme="B", transistor=l1)).switching(bits, l1)
    assert opened is None
    np.testing.assert_array_equal(gates, vg * bits)
    for scheme, V in (("A", rng.uniform(0, 0.3, (2, 4))), ("C", rng.uniform(-0.3, 0.3, (2, 2)))):
        topo = topology(xs.Crossbar(G, scheme=scheme, transistor=l1))
        gates, opened = topo.switching(V, l1)
        assert opened is None
        np.testing.assert_array_equal(gates, np.tile(vg, (2, 1)))
        np.testing.assert_array_equal(topo.gate_voltages(l1), vg)
        assert topo.switching(V, None) == (None, None)
        np.testing.assert_array_equal(topo.gate_voltages(None), np.zeros(4))


def test_a_scheme_declared_in_topology_alone_reaches_crossbar_io_and_solvers(rng, tmp_path, monkeypatch):
    """A scheme added to topology.SCHEME_SPECS (here scheme A's circuit under a new name,
    stored as format version 2 with its read voltage, and refusing drive='both') is taken
    by Crossbar, xs.save/xs.load, the solvers and the netlist writer with no edit
    elsewhere."""
    import h5py

    from xbarsolve import topology as tp
    from xbarsolve.spice.netlist import write_netlist

    def no_both(shape, drive):
        if drive == "both":
            raise ValueError("scheme 'A2' drives one end of each row")

    spec = dataclasses.replace(tp.SCHEME_SPECS["A"], name="A2", params=("v_read",), format_version=2,
                               description="A2: scheme A stored with its read voltage", check=no_both)
    monkeypatch.setitem(tp.SCHEME_SPECS, "A2", spec)
    G = rng.uniform(1 / 300e3, 1 / 15e3, (6, 4))
    wires = dict(r_row=rng.uniform(0.5, 3.0, (6, 3)), r_col=rng.uniform(0.5, 3.0, (5, 4)), r_in=2.0, r_out=3.0)
    a2 = xs.Crossbar(G, scheme="A2", v_read=0.15, **wires)
    a = xs.Crossbar(G, **wires)
    V = rng.uniform(0, 0.3, (3, 6))
    assert a2.n_inputs == 6 and a2.m_lines == 6
    for method in ("block", "sparse"):
        np.testing.assert_array_equal(xs.solve(a2, V, method=method).currents, xs.solve(a, V, method=method).currents)
    assert "A2: scheme A stored with its read voltage" in write_netlist(a2, V)
    with pytest.raises(ValueError, match="scheme 'A2' drives one end of each row"):
        xs.Crossbar(G, scheme="A2", drive="both")
    path = xs.save(tmp_path / "a2.h5", crossbar=a2)
    with h5py.File(path) as f:
        assert int(f.attrs["format_version"]) == 2
        assert f["crossbar"].attrs["scheme"] == "A2" and float(f["crossbar"].attrs["v_read"]) == 0.15
    back = xs.load(path)["crossbar"]
    assert back.scheme == "A2" and back.v_read == 0.15
    np.testing.assert_array_equal(back.r_row_segments, a2.r_row_segments)
    with h5py.File(path, "r+") as f:
        del f["crossbar"].attrs["v_read"]
    with pytest.raises(xs.FormatError, match="lacks attribute 'v_read' \\(scheme A2\\)"):
        xs.load(path)
    monkeypatch.delitem(tp.SCHEME_SPECS, "A2")
    with pytest.raises(ValueError, match=r"scheme must be one of \('A', 'B', 'C'\); got 'A2'"):
        xs.Crossbar(G, scheme="A2")


def test_scheme_specs_are_consistent():
    """A scheme whose inputs switch cells cannot be a ladder (the block solver and the
    transfer matrix take fixed cells), and only a non-ladder scheme says why it is none."""
    from xbarsolve.topology import SCHEME_SPECS

    with pytest.raises(ValueError, match="no fixed ladder"):
        dataclasses.replace(SCHEME_SPECS["A"], name="X", switches=True)
    with pytest.raises(ValueError, match="not_ladder must say why"):
        dataclasses.replace(SCHEME_SPECS["B"], name="X", not_ladder="")
