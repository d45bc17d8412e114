"""ngspice cross-validation (xbarsolve.spice): our exact solver against ngspice.

Tolerances (docs/model.md section 7): column currents within 1e-6 relative of ngspice, node voltages within
1e-6 of the largest input.  With the tightened options the measured agreement is ~1e-14..1e-13
(docs/spice.md), so these bounds have a wide margin yet would catch any topology or sign
error, which shows up at the 1e-3..1 level.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import xbarsolve as xs
from xbarsolve.devices import Device
from xbarsolve.spice import OPTIONS, read_raw, write_netlist
from xbarsolve.spice.raw import canonical_name
from xbarsolve.spice.run import NgspiceError
from xbarsolve.transistors import Transistor

ROOT = Path(__file__).resolve().parents[1]
RTOL_CURRENT = 1e-6  # docs/model.md section 7: ngspice with tightened options
RTOL_VOLTAGE = 1e-6  # of the largest input voltage


def random_array(rng, m, n, **kw):
    """Reference-parameter array (docs/model.md section 6): G in [3.33, 66.7] uS."""
    return xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (m, n)), **kw)


def rel_diff(a, b):
    """Largest element-wise relative difference |a - b| / |b|."""
    return float(np.max(np.abs(a - b) / np.abs(b)))


def check_agreement(xbar, V, ref):
    """ngspice result ``ref`` against our exact solver, currents and node voltages."""
    ours = xs.solve(xbar, V, full=True)
    assert ref.method == "ngspice"
    assert ref.currents.shape == ours.currents.shape
    assert rel_diff(ref.currents, ours.currents) < RTOL_CURRENT
    vscale = np.abs(V).max()
    for name in ("v_top", "v_bottom"):
        assert np.abs(getattr(ref, name) - getattr(ours, name)).max() < RTOL_VOLTAGE * vscale, name
    assert np.abs(ref.cell_currents - ours.cell_currents).max() < RTOL_CURRENT * np.abs(ours.cell_currents).max()
    if xbar.transistor is None:
        assert ref.v_mid is None
    else:
        assert np.abs(ref.v_mid - ours.v_mid).max() < RTOL_VOLTAGE * vscale
    return ours


# --------------------------------------------------------------- agreement with our solver
def test_8x8(require_ngspice, rng):
    xbar = random_array(rng, 8, 8)
    V = rng.uniform(0, 0.4, (3, 8))
    ref = xs.spice.solve(xbar, V, full=True)
    assert ref.currents.shape == (3, 8) and ref.v_top.shape == (3, 8, 8)
    check_agreement(xbar, V, ref)


def test_16x16_nonuniform_wires(require_ngspice, rng):
    m = n = 16
    xbar = random_array(
        rng, m, n, r_row=rng.uniform(0.5, 5, (m, n - 1)), r_col=rng.uniform(0.5, 5, (m - 1, n)),
        r_in=rng.uniform(1, 50, m), r_out=rng.uniform(1, 50, n),
    )
    V = rng.uniform(0, 0.4, (2, m))
    check_agreement(xbar, V, xs.spice.solve(xbar, V, full=True))


def test_32x32_both_ends(require_ngspice, rng):
    xbar = random_array(rng, 32, 32, r_row=2.0, r_col=3.0, r_in=5.0, r_out=7.0, drive="both", sense="both")
    V = rng.uniform(0, 0.4, (2, 32))
    ref = xs.spice.solve(xbar, V, full=True)
    deck = write_netlist(xbar, V)
    assert "vsense_t_31" in deck and "vsense_b_31" in deck and "rin_r_31" in deck
    check_agreement(xbar, V, ref)


def test_1t1r_linear_on_resistance(require_ngspice, rng):
    xbar = random_array(rng, 10, 12, r_row=1.5, r_col=1.5, transistor=xs.transistors.Resistor(r_on=5e3))
    V = rng.uniform(0, 0.4, (2, 10))
    ref = xs.spice.solve(xbar, V, full=True)
    assert ref.v_mid.shape == (2, 10, 12)
    check_agreement(xbar, V, ref)


def test_zero_resistances_are_merged(require_ngspice, rng):
    m, n = 9, 7
    r_row = rng.uniform(0.5, 2, (m, n - 1))
    r_row[2, :] = 0.0  # a whole row wire of 0 ohm
    r_col = rng.uniform(0.5, 2, (m - 1, n))
    r_col[:, 3] = 0.0  # a whole column wire of 0 ohm, sensed at both ends below
    xbar = random_array(rng, m, n, r_row=r_row, r_col=r_col, r_in=0.0, r_out=0.0, drive="both", sense="both",
                        transistor=xs.transistors.Switch())
    V = rng.uniform(0.05, 0.4, (2, m))
    deck = write_netlist(xbar, V)
    resistors = [line.split() for line in deck.splitlines() if line[:1].lower() == "r"]
    assert resistors and all(float(parts[3]) > 0 for parts in resistors)
    ref = xs.spice.solve(xbar, V, full=True)
    check_agreement(xbar, V, ref)
    # With r_in = 0 the driven ends sit at the source voltage.
    assert np.array_equal(ref.v_top[:, :, 0], ref.v_top[:, :, -1])
    assert np.abs(ref.v_top[:, :, 0] - V).max() < 1e-14


@pytest.mark.parametrize("drive,sense", [("right", "top"), ("left", "top"), ("right", "bottom")])
def test_drive_and_sense_sides(require_ngspice, rng, drive, sense):
    xbar = random_array(rng, 6, 5, r_row=3.0, r_col=4.0, r_in=2.0, r_out=2.0, drive=drive, sense=sense)
    V = rng.uniform(0, 0.4, 6)
    check_agreement(xbar, V, xs.spice.solve(xbar, V, full=True))


def test_open_cells_left_out(require_ngspice, rng):
    G = rng.uniform(1 / 300e3, 1 / 15e3, (6, 6))
    G[rng.random((6, 6)) < 0.3] = 0.0
    G[0, :] = 1e-5  # no column without a cell
    xbar = xs.Crossbar(G, r_row=2.0, r_col=2.0, transistor=xs.transistors.Resistor(r_on=2e3))
    deck = write_netlist(xbar, np.full(6, 0.2))
    assert f"{int((G == 0).sum())} open cell(s)" in deck
    assert deck.count("Rmem_") == int((G > 0).sum())
    V = rng.uniform(0.05, 0.4, 6)
    ref = xs.spice.solve(xbar, V, full=True)
    check_agreement(xbar, V, ref)
    assert np.all(ref.cell_currents[:, G == 0] == 0)


def test_backends_agree(require_ngspice, rng):
    xbar = random_array(rng, 8, 6, r_row=1.0, r_col=2.0, drive="both", transistor=xs.transistors.Resistor(r_on=1e3))
    V = rng.uniform(0, 0.4, (3, 8))
    batch = xs.spice.solve(xbar, V, full=True, backend="batch")
    shared = xs.spice.solve(xbar, V, full=True, backend="shared")
    # The same simulator on the same matrix: round-off level, not just the 1e-6 bound.
    np.testing.assert_allclose(shared.currents, batch.currents, rtol=1e-12, atol=0)
    np.testing.assert_allclose(shared.v_bottom, batch.v_bottom, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(shared.v_mid, batch.v_mid, rtol=1e-12, atol=1e-18)
    check_agreement(xbar, V, shared)


def test_shared_runs_do_not_accumulate_circuits(require_ngspice, rng):
    """Each shared-library solve runs in its own worker process, which holds one circuit and,
    after its last vector, no simulation plot; the process exit then frees the circuit."""
    from xbarsolve.spice.run import _shared_info

    xbar = random_array(rng, 4, 4)
    pids = set()
    for _ in range(3):
        xs.spice.solve(xbar, rng.uniform(0, 0.4, (4, 4)), backend="shared")
        assert _shared_info["setcirc"].count("xbarsolve crossbar") == 1
        assert _shared_info["plots"] == ["const"]  # every op plot was destroyed
        pids.add(_shared_info["pid"])
    assert len(pids) == 3 and os.getpid() not in pids


# --------------------------------------------------------------- nonlinear models
@pytest.mark.parametrize("device,transistor", [
    (xs.devices.Sinh(), None),
    (xs.devices.Poly(a2=1e-6, a3=5e-6), None),
    (xs.devices.Sinh(), xs.transistors.Level1()),
], ids=["sinh", "poly", "sinh-level1"])
def test_library_nonlinear_models(require_ngspice, rng, device, transistor):
    """The library's nonlinear memristor and MOSFET models: ngspice against our Newton solver."""
    xbar = random_array(rng, 12, 10, r_row=2.0, r_col=2.0, device=device, transistor=transistor)
    V = rng.uniform(0.05, 0.4, (2, 12))
    check_agreement(xbar, V, xs.spice.solve(xbar, V, full=True))


def test_transistor_gmin_reaches_ngspice():
    """ngspice has one global gmin; a model that carries its own (Level1) must set it."""
    xbar = xs.Crossbar(np.full((2, 2), 1e-5), transistor=xs.transistors.Level1(gmin=3e-13))
    assert ".options reltol=1e-12 abstol=1e-18 vntol=1e-15 gmin=3e-13 " in write_netlist(xbar, [0.1, 0.2])
    assert " gmin=1e-20 " in write_netlist(xbar, [0.1, 0.2], options={"gmin": 1e-20})
    assert f" gmin={OPTIONS['gmin']!r} " in write_netlist(xs.Crossbar(np.full((2, 2), 1e-5)), [0.1, 0.2])


# --------------------------------------------------------------- nonlinear models plug in
@njit(cache=False)
def _sinh_current(v, G, p):
    return G * p[1] * math.sinh(p[0] * v) / math.sinh(p[0] * p[1])


@njit(cache=False)
def _sinh_didv(v, G, p):
    return G * p[1] * p[0] * math.cosh(p[0] * v) / math.sinh(p[0] * p[1])


@dataclass(frozen=True)
class _SinhForTest(Device):
    """A sinh memristor written as a B-source, standing in for the library's nonlinear models."""

    a: float = 3.0
    v_read: float = 0.2

    def parameters(self):
        return np.array([self.a, self.v_read])

    @property
    def kernels(self):
        return _sinh_current, _sinh_didv

    def spice_element(self, name, n_plus, n_minus, G):
        k = G * self.v_read / math.sinh(self.a * self.v_read)
        # ngspice keeps only 11 significant digits of a number inside a B-source expression;
        # a hi + lo split carries all 17.
        hi = float(f"{k:.10e}")
        return f"B{name} {n_plus} {n_minus} I=({hi!r}+{k - hi!r})*sinh({self.a!r}*V({n_plus},{n_minus}))"

    def spice_preamble(self):
        return ["* sinh memristor (test model)"]


@dataclass(frozen=True)
class _MosfetForTest(Transistor):
    """A level-1 NMOS with one gate voltage per row."""

    def gate_voltages(self, m):
        return np.linspace(1.5, 2.0, m)

    def spice_preamble(self):
        # is = js = 0: no bulk-junction leakage (1e-14 A per junction by default, ~1e-9 of a cell current).
        return [".model nch nmos level=1 vto=0.5 kp=2e-4 lambda=0.01 is=0 js=0"]

    def spice_element(self, name, drain, gate, source):
        return f"M{name} {drain} {gate} {source} 0 nch w=1u l=1u"


def test_nonlinear_models_plug_in(require_ngspice, rng):
    """Models the netlist writer has never seen: B-source memristor, MOSFET with per-row gates.

    Kirchhoff's current law ties ngspice's ammeter currents to the device model evaluated at
    ngspice's node voltages, so this checks both the netlist plumbing and the tolerances.
    """
    m, n = 8, 6
    xbar = random_array(rng, m, n, r_row=rng.uniform(0.5, 2, (m, n - 1)), device=_SinhForTest(),
                        transistor=_MosfetForTest())
    V = rng.uniform(0.1, 0.4, (2, m))
    deck = write_netlist(xbar, V)
    assert deck.count(".model nch nmos") == 1 and deck.count("* sinh memristor") == 1
    assert "vgate_7 g_7 0 dc 2.0" in deck and "Macc_7_5 m_7_5 g_7 b_7_5 0 nch" in deck
    ref = xs.spice.solve(xbar, V, full=True)
    assert ref.v_mid is not None
    kcl = np.abs(ref.cell_currents.sum(axis=1) - ref.currents) / np.abs(ref.currents)
    assert kcl.max() < 1e-9  # Newton converged to far below the 1e-6 agreement target
    # Nonlinear indeed: the cells do not follow G * V.
    assert np.abs(ref.cell_currents - xbar.G * (ref.v_top - ref.v_mid)).max() > 1e-3 * np.abs(ref.cell_currents).max()


# --------------------------------------------------------------- netlist, options, raw files
def test_netlist_is_readable(rng):
    xbar = random_array(rng, 4, 6)
    deck = write_netlist(xbar, np.full(4, 0.1), analysis="op")
    lines = deck.splitlines()
    assert lines[0] == "xbarsolve crossbar 4x6" and lines[-1] == ".end"
    for needle in ("vin_3 in_3 0 dc 0.1", "rin_l_3 in_3 t_3_0 1.0", "rrow_3_4 t_3_4 t_3_5 1.0",
                   "rcol_2_5 b_2_5 b_3_5 1.0", "rout_b_5 b_3_5 s_b_5 1.0", "vsense_b_5 s_b_5 0 0", ".op"):
        assert needle in lines, needle
    assert ".control" not in deck
    assert sum(line.startswith(".options") for line in lines) == 1
    with pytest.raises(ValueError, match="single operating point"):
        write_netlist(xbar, np.full((2, 4), 0.1), analysis="op")


def test_input_validation(rng):
    xbar = random_array(rng, 4, 3)
    with pytest.raises(ValueError, match=r"V must have shape \(4,\)"):
        xs.spice.solve(xbar, np.zeros(5))
    with pytest.raises(ValueError, match="backend"):
        xs.spice.solve(xbar, np.zeros(4), backend="spectre")


def test_missing_ngspice_names_the_packages(rng, monkeypatch):
    monkeypatch.delenv("XBARSOLVE_NGSPICE", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(NgspiceError, match="apt-get install ngspice libngspice0 libngspice0-dev"):
        xs.spice.solve(random_array(rng, 2, 2), np.zeros(2))


def test_wrong_source_values_are_caught(require_ngspice, rng, monkeypatch):
    """The runner checks every source node against its input: a broken `alter` cannot pass."""
    import xbarsolve.spice.netlist as netlist

    real = netlist._alter_commands
    monkeypatch.setattr(netlist, "_alter_commands", lambda sources, prev, nxt: real(sources, prev, nxt * 0.5))
    xbar = random_array(rng, 3, 3)
    with pytest.raises(NgspiceError, match="solved vector 1 with source vin_0"):
        xs.spice.solve(xbar, np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]))


def test_timeout_is_reported(require_ngspice, rng):
    with pytest.raises(NgspiceError, match="timeout"):
        xs.spice.solve(random_array(rng, 40, 40), rng.uniform(0, 0.4, (8, 40)), timeout=0.05)


def test_options_accepted_unclamped(require_ngspice, tmp_path):
    """ngspice echoes every tightened tolerance back unchanged (`option` after an `op`: the
    card's values reach the circuit when an analysis runs)."""
    deck = write_netlist(xs.Crossbar(np.full((1, 1), 1e-5)), [0.1], analysis="none").replace(
        ".end", ".control\nop\noption\nquit\n.endc\n.end")
    (tmp_path / "d.cir").write_text(deck)
    out = subprocess.run(["ngspice", "-b", "d.cir"], cwd=tmp_path, capture_output=True, text=True).stdout
    echoed = {}
    for line in out.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            try:
                echoed[key.split()[0].lower()] = float(value.split()[0])
            except (ValueError, IndexError):
                pass
    for key in ("reltol", "abstol", "vntol", "gmin", "gshunt"):
        assert echoed[key] == OPTIONS[key], key
    assert echoed["itl1"] == OPTIONS["itl1"]


def _write_binary_raw(path, plots):
    with open(path, "wb") as fh:
        for name, names, data in plots:
            flags = "complex" if np.iscomplexobj(data) else "real"
            head = [f"Title: synthetic", "Date: today", f"Plotname: {name}", f"Flags: {flags}",
                    f"No. Variables: {len(names)}", f"No. Points: {data.shape[0]}", "Variables:"]
            head += [f"\t{k}\t{v}\tvoltage" for k, v in enumerate(names)]
            fh.write(("\n".join(head) + "\nBinary:\n").encode())
            fh.write(np.ascontiguousarray(data).astype("<c16" if flags == "complex" else "<f8").tobytes())


def test_raw_reader_roundtrip_synthetic(tmp_path, rng):
    a = rng.standard_normal((3, 4))
    c = rng.standard_normal((2, 2)) + 1j * rng.standard_normal((2, 2))
    _write_binary_raw(tmp_path / "x.raw", [("Operating Point", ["v(a)", "b", "v1#branch", "i(v2)"], a),
                                          ("AC Analysis", ["frequency", "v(out)"], c)])
    plots = read_raw(tmp_path / "x.raw")
    assert [p.plotname for p in plots] == ["Operating Point", "AC Analysis"]
    assert np.array_equal(plots[0].data, a) and np.array_equal(plots[1].data, c)
    assert np.array_equal(plots[0]["v(b)"], a[:, 1]) and np.array_equal(plots[0]["i(v1)"], a[:, 2])
    raw = (tmp_path / "x.raw").read_bytes()
    with pytest.raises(xs.FormatError, match="truncated"):
        read_raw(raw[:-8])
    with pytest.raises(xs.FormatError):
        read_raw(b"not a raw file\n")


def test_raw_reader_on_files_ngspice_wrote(require_ngspice, tmp_path, rng):
    """`ngspice -b -r` on a single-vector deck, binary and ASCII, and the multi-plot file of
    the control block: the same numbers, and the exact values of an ideal source."""
    xbar = random_array(rng, 3, 4)
    V = rng.uniform(0, 0.4, 3)
    (tmp_path / "op.cir").write_text(write_netlist(xbar, V, analysis="op"))
    subprocess.run(["ngspice", "-b", "-r", "bin.raw", "op.cir"], cwd=tmp_path, check=True, capture_output=True)
    env = dict(os.environ, SPICE_ASCIIRAWFILE="1")
    subprocess.run(["ngspice", "-b", "-r", "txt.raw", "op.cir"], cwd=tmp_path, check=True, capture_output=True, env=env)
    (binary,), (text,) = read_raw(tmp_path / "bin.raw"), read_raw(tmp_path / "txt.raw")
    assert binary.plotname == text.plotname == "Operating Point"
    assert binary.names == text.names and len(binary.names) == 3 + 2 * 12 + 4 + 3 + 4
    np.testing.assert_allclose(binary.data, text.data, rtol=1e-15, atol=1e-300)  # ASCII keeps 16 digits
    assert abs(binary["v(in_1)"][0] - V[1]) <= 2e-16 * V[1]
    # Control block: one plot per vector in one file.
    Vb = rng.uniform(0, 0.4, (4, 3))
    (tmp_path / "ctl.cir").write_text(write_netlist(xbar, Vb, raw_file="ctl.raw"))
    subprocess.run(["ngspice", "-b", "ctl.cir"], cwd=tmp_path, check=True, capture_output=True)
    plots = read_raw(tmp_path / "ctl.raw")
    assert len(plots) == 4
    np.testing.assert_allclose([p["v(in_2)"][0] for p in plots], Vb[:, 2], rtol=1e-15)
    assert canonical_name("VSENSE_B_0#branch") == "i(vsense_b_0)"


def test_import_does_not_load_pyspice():
    code = ("import sys, xbarsolve; assert 'xbarsolve.spice' not in sys.modules; "
            "import xbarsolve.spice; assert not [m for m in sys.modules if m.lower().startswith('pyspice')]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --------------------------------------------------------------- stored ngspice reference
def test_stored_ngspice_reference():
    """Our solver reproduces the ngspice results stored by netlists/make_reference.py
    (no ngspice needed)."""
    path = ROOT / "validation_data" / "ngspice_reference.npz"
    with np.load(path, allow_pickle=False) as data:
        cases = [str(c) for c in data["cases"]]
        assert len(cases) >= 4
        for case in cases:
            get = lambda key: data[f"{case}/{key}"]  # noqa: E731
            r_on = float(get("r_on"))
            xbar = xs.Crossbar(
                get("G"), r_row=get("r_row"), r_col=get("r_col"), r_in=get("r_in"), r_out=get("r_out"),
                drive=str(get("drive")), sense=str(get("sense")),
                transistor=None if np.isnan(r_on) else xs.transistors.Resistor(r_on=r_on),
            )
            V = get("V")
            ours = xs.solve(xbar, V, full=True)
            assert rel_diff(ours.currents, get("currents")) < RTOL_CURRENT, case
            assert np.abs(ours.v_bottom - get("v_bottom")).max() < RTOL_VOLTAGE * np.abs(V).max(), case
            assert (ROOT / "netlists" / "reference" / f"{case}.cir").is_file()


def test_model_options_come_from_spice_options_only():
    """The deck's model options are what the models' ``spice_options()`` state (keys
    lower-cased), not attributes read ad hoc: a ``gmin`` field of a model that does not
    state it is not written."""
    from dataclasses import dataclass

    from xbarsolve.spice.netlist import build_deck, model_options

    @dataclass(frozen=True)
    class Leaky(xs.transistors.Resistor):
        gmin: float = 1e-9

    @dataclass(frozen=True)
    class Stiff(xs.devices.Linear):
        def spice_options(self):
            return {"ITL1": 900}

    G = np.full((2, 3), 1e-5)
    assert model_options(xs.Crossbar(G, transistor=Leaky())) == {}
    assert model_options(xs.Crossbar(G, device=Stiff(), transistor=xs.transistors.Level1(gmin=2e-13))) == {
        "itl1": 900, "gmin": 2e-13}
    text = build_deck(xs.Crossbar(G, device=Stiff()), np.zeros(2)).text
    assert " itl1=900" in text and " gmin=1e-24" in text


def test_ammeter_only_deck(require_ngspice, rng, tmp_path):
    """save="currents": the deck keeps only the source nodes and the sense ammeters, and
    the runner's column currents from it equal those of the full deck (and ours)."""
    from xbarsolve.spice.netlist import build_deck
    from xbarsolve.spice.raw import read_raw
    from xbarsolve.spice.run import _assemble, _run_batch

    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (6, 5)), r_row=1.5, r_col=2.0, r_in=[0.0, 1, 1, 2, 2, 3],
                       r_out=1.0, drive="both", sense="both", transistor=xs.transistors.Resistor(1e3))
    V = rng.uniform(0, 0.4, (3, 6))
    deck = build_deck(xbar, V, save="currents")
    expected = {f"v({node})" for node in deck.inputs} | {f"i({name})" for _, name in deck.sense}
    (tmp_path / "d.cir").write_text(deck.text)
    subprocess.run(["ngspice", "-b", "d.cir"], cwd=tmp_path, check=True, capture_output=True)
    plots = read_raw(tmp_path / "xbar.raw")
    assert len(plots) == 3 and all(set(p.as_dict()) == expected for p in plots)
    currents = _assemble(xbar, V, deck, _run_batch(deck, V, None), full=False).currents
    full = xs.spice.solve(xbar, V).currents
    np.testing.assert_allclose(currents, full, rtol=1e-12)
    assert rel_diff(currents, xs.solve(xbar, V).currents) < RTOL_CURRENT
    assert ".save" not in build_deck(xbar, V).text.replace("* ---- saved", "")
    with pytest.raises(ValueError, match="save must be 'all' or 'currents'; got 'none'"):
        build_deck(xbar, V, save="none")


# --------------------------------------------------------------- topologies B and C
def _scheme_array(rng, scheme, m, n, **kw):
    """Scheme B or C array; in C the +V rows hold the larger conductances, so that no
    column current nears zero (the comparison is relative)."""
    G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
    if scheme == "C":
        G[0::2] = rng.uniform(1 / 25e3, 1 / 15e3, (m // 2, n))
        G[1::2] = rng.uniform(1 / 300e3, 1 / 100e3, (m // 2, n))
    return xs.Crossbar(G, scheme=scheme, **kw)


@pytest.mark.parametrize("cells", ["sinh-level1", "linear-level1"])
def test_scheme_b_gated_cells(require_ngspice, rng, cells):
    """Topology B with Level1 access transistors: the bits reach the gates through ideal
    VCVSs, so a batch of bit vectors is one deck; ngspice against our merged-node Newton."""
    device = xs.devices.Sinh() if cells.startswith("sinh") else xs.devices.Linear()
    xbar = _scheme_array(rng, "B", 10, 8, r_col=2.0, r_supply=rng.uniform(1.0, 3.0, (9, 8)), r_supply_in=5.0,
                         v_read=0.3, device=device, transistor=xs.transistors.Level1())
    bits = rng.integers(0, 2, (3, 10)).astype(float)
    bits[0] = 1.0
    bits[:, 0] = 1.0  # every vector switches some row on
    check_agreement(xbar, bits, xs.spice.solve(xbar, bits, full=True))


@pytest.mark.parametrize("transistor", [xs.transistors.Resistor(r_on=2e3), xs.transistors.Switch(), None],
                         ids=["resistor", "switch", "1r"])
@pytest.mark.parametrize("device", [xs.devices.Linear(), xs.devices.Sinh()], ids=["linear", "sinh"])
def test_scheme_b_switched_cells(require_ngspice, rng, transistor, device):
    """Topology B with gate-less transistors (or none, 1R): a 0 bit opens its row's cells
    (one deck per bit pattern); linear cells take the sparse path, sinh cells Newton.  The
    cell currents of the open rows are 0 (a 1R cell left out of the deck carries nothing)."""
    xbar = _scheme_array(rng, "B", 9, 7, r_col=1.5, r_supply=2.0, r_supply_in=3.0, v_read=0.25,
                         device=device, transistor=transistor)
    for bits in (np.ones(9), np.array([1, 0, 0, 1, 1, 0, 1, 0, 1.0])):
        check_agreement(xbar, bits[None], xs.spice.solve(xbar, bits, full=True))


@pytest.mark.parametrize("device,transistor", [
    (xs.devices.Linear(), None),
    (xs.devices.Linear(), xs.transistors.Resistor(r_on=2e3)),
    (xs.devices.Sinh(), xs.transistors.Level1()),
], ids=["1r", "resistor", "sinh-level1"])
def test_scheme_c_interleaved_pairs(require_ngspice, rng, device, transistor):
    """Topology C: row pairs at +V and -V (an inverting VCVS) sharing their column nodes."""
    xbar = _scheme_array(rng, "C", 12, 8, r_row=rng.uniform(1.0, 3.0, (12, 7)), r_col=2.0, r_in=3.0, r_out=2.0,
                         device=device, transistor=transistor)
    V = rng.uniform(0.05, 0.4, (3, 6))
    check_agreement(xbar, V, xs.spice.solve(xbar, V, full=True))
