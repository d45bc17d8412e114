"""Measured-array schema: HDF5 round trip, validation errors naming the field, importers."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.errors import FormatError
from xbarsolve.validation import Measurement, from_csv, from_npz
from xbarsolve.validation import schema


def _measurement(rng, **kw):
    m, n, k = 6, 4, 5
    G = rng.uniform(5e-6, 60e-6, (m, n))
    V = rng.uniform(0, 0.3, (k, m))
    fields = dict(conductance=G, inputs=V, currents=V @ G, read_voltage=0.2, r_row=1.1, r_col=0.9, r_in=5.0,
                  r_out=4.0, r_on=1e3, known=("r_in",), v_gate=3.3, temperature=300.0, noise_rms=1e-7,
                  conductance_uncertainty=1e-3, title="t", description="d", source="s", licence="CC0-1.0")
    fields.update(kw)
    return Measurement(**fields)


def test_round_trip_keeps_every_field(tmp_path, rng):
    iv_v = np.linspace(-0.4, 0.4, 9)[None].repeat(2, 0)
    meas = _measurement(rng, cell_read_currents=rng.uniform(1e-6, 1e-5, (6, 4)), iv_voltage=iv_v,
                        iv_current=iv_v * 2e-5, iv_cells=np.array([[0, 1], [5, 3]]),
                        synthetic={"chip/r_row": 1.2, "conductance": np.ones((6, 4)), "generator": "x"})
    path = meas.save(tmp_path / "m.h5")
    back = Measurement.load(path)
    for f in ("conductance", "inputs", "currents", "cell_read_currents", "iv_voltage", "iv_current", "iv_cells"):
        np.testing.assert_array_equal(getattr(back, f), getattr(meas, f), err_msg=f)
    for f in ("read_voltage", "r_row", "r_col", "r_in", "r_out", "r_on", "known", "drive", "sense", "v_gate",
              "temperature", "noise_rms", "conductance_uncertainty", "title", "description", "source", "licence"):
        assert getattr(back, f) == getattr(meas, f), f
    assert back.synthetic["chip/r_row"] == 1.2 and back.synthetic["generator"] == "x"
    # The file states units on every dataset.
    import h5py

    with h5py.File(path) as f:
        assert f["conductance"].attrs["units"] == "S" and f["currents"].attrs["units"] == "A"
        assert f["conditions/r_on"].attrs["units"] == "ohm" and f.attrs["format_version"] == schema.FORMAT_VERSION


def test_1r_file_has_no_r_on(tmp_path, rng):
    meas = _measurement(rng, r_on=None, known=())
    back = Measurement.load(meas.save(tmp_path / "m.h5"))
    assert back.r_on is None and back.cell == "1R" and back.crossbar().transistor is None


def test_model_of_a_file_is_the_stated_circuit(rng):
    meas = _measurement(rng)
    xbar = meas.crossbar(r_row=2.0)
    assert xbar.r_row == 2.0 and xbar.r_col == 0.9 and xbar.transistor.r_on == 1e3


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(currents=np.ones((5, 3))), "currents"),
        (dict(inputs=np.ones((5, 7))), "inputs"),
        (dict(conductance=np.full((6, 4), np.nan)), "conductance"),
        (dict(conductance=-np.ones((6, 4)) * 1e-6), "conductance"),
        (dict(read_voltage=0.0), "read_voltage"),
        (dict(known=("r_foo",)), "known"),
        (dict(drive="top"), "drive"),
        (dict(r_row=-1.0), "r_row"),
    ],
)
def test_bad_fields_are_named(rng, change, field):
    with pytest.raises(FormatError, match=field):
        _measurement(rng, **change)


def _edit(path, fn):
    import h5py

    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f["currents"].attrs.__delitem__("units"), "/currents has no 'units'"),
        (lambda f: f["inputs"].attrs.__setitem__("units", "mV"), "/inputs has units 'mV'"),
        (lambda f: f.attrs.__setitem__("format_version", 99), "format_version 99 is newer"),
        (lambda f: f.attrs.__setitem__("format", "other"), "/format"),
        (lambda f: f.__delitem__("currents"), "/currents .* is missing"),
        (lambda f: f["conductance"].__setitem__((0, 0), np.nan), "/conductance must be finite"),
        (lambda f: f["conductance"].__setitem__((2, 1), -1e-6), r"conductance must be >= 0 S; conductance\[2, 1\]"),
        (lambda f: f["conditions/r_in"].attrs.__delitem__("units"), "/conditions/r_in has no 'units'"),
        (lambda f: f["conductance"].attrs.__delitem__("read_voltage"), "read_voltage"),
    ],
)
def test_bad_files_name_the_field(tmp_path, rng, edit, message):
    path = _measurement(rng).save(tmp_path / "m.h5")
    _edit(path, edit)
    with pytest.raises(FormatError, match=message):
        Measurement.load(path)


def test_shape_mismatch_in_file(tmp_path, rng):
    path = _measurement(rng).save(tmp_path / "m.h5")

    def swap(f):
        del f["currents"]
        ds = f.create_dataset("currents", data=np.ones((5, 3)))
        ds.attrs["units"] = "A"

    _edit(path, swap)
    with pytest.raises(FormatError, match=r"currents must have shape \(k, n\) = \(5, 4\)"):
        Measurement.load(path)


def test_not_hdf5(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("hello")
    with pytest.raises(FormatError, match="not an HDF5 file"):
        Measurement.load(p)


# ------------------------------------------------------------------------- importers
def _write_csv(path, unit, data):
    lines = [] if unit is None else [f"# units: {unit}"]
    lines += [",".join(repr(float(x)) for x in row) for row in np.atleast_2d(data)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_import_with_units(tmp_path, rng):
    meas = _measurement(rng)
    g = _write_csv(tmp_path / "g.csv", "uS", meas.conductance * 1e6)
    v = _write_csv(tmp_path / "v.csv", "mV", meas.inputs * 1e3)
    i = _write_csv(tmp_path / "i.csv", "uA", meas.currents * 1e6)
    got = from_csv(g, v, i, r_on=1e3, licence="CC0-1.0")
    np.testing.assert_allclose(got.conductance, meas.conductance, rtol=1e-15)
    np.testing.assert_allclose(got.inputs, meas.inputs, rtol=1e-15)
    np.testing.assert_allclose(got.currents, meas.currents, rtol=1e-15)
    assert got.r_on == 1e3 and got.licence == "CC0-1.0"


@pytest.mark.parametrize(
    "which, text, message",
    [
        ("g", "1,2\n3,4\n", "missing units"),
        ("g", "# units: ohm\n1,2\n", "unknown unit 'ohm'"),
        ("g", "# units: uS\n1,2\n3\n", "line 3: 1 values, but earlier lines have 2"),
        ("g", "# units: uS\n1,x\n3,4\n", "line 2, value 2: 'x' is not a number"),
        ("g", "# units: uS\n1,nan\n3,4\n", "line 2, value 2: 'nan' is not finite"),
        ("g", "# units: uS\n1,-2\n3,4\n", "conductance must be >= 0"),
        ("g", "", "empty"),
        ("i", "# units: A\n1,2,3\n", "currents must have shape"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, which, text, message):
    g = _write_csv(tmp_path / "g.csv", "uS", [[1.0, 2.0], [3.0, 4.0]])
    v = _write_csv(tmp_path / "v.csv", "V", [[0.1, 0.2]])
    i = _write_csv(tmp_path / "i.csv", "A", [[1e-7, 2e-7]])
    target = {"g": g, "i": i}[which]
    target.write_text(text)
    with pytest.raises(FormatError, match=message):
        from_csv(g, v, i)


def test_npz_import(tmp_path, rng):
    meas = _measurement(rng)
    p = tmp_path / "m.npz"
    np.savez(p, conductance=meas.conductance * 1e6, conductance_units="uS", inputs=meas.inputs, inputs_units="V",
             currents=meas.currents, currents_units="A", r_on=1e3, drive="left", known=np.array(["r_in"]))
    got = from_npz(p, licence="CC0-1.0")
    np.testing.assert_allclose(got.conductance, meas.conductance, rtol=1e-15)
    assert got.r_on == 1e3 and got.known == ("r_in",) and got.licence == "CC0-1.0"


@pytest.mark.parametrize(
    "drop, extra, message",
    [
        ("currents", {}, "array 'currents' is missing"),
        ("inputs_units", {}, "'inputs_units' is missing"),
        (None, {"conductance_units": "ohm"}, "unknown unit 'ohm'"),
        (None, {"r_rwo": 1.0}, "unknown entry 'r_rwo'"),
        (None, {"r_on": np.ones(2)}, "'r_on' must be a numeric scalar"),
        (None, {"currents": np.full((2, 2), np.nan)}, "currents must be finite"),
        (None, {"currents": np.ones((3, 2))}, "currents must have shape"),
        (None, {"conductance": -np.ones((2, 2))}, "conductance must be >= 0"),
    ],
)
def test_npz_errors_name_the_entry(tmp_path, drop, extra, message):
    d = dict(conductance=np.ones((2, 2)), conductance_units="uS", inputs=np.ones((2, 2)) * 0.1, inputs_units="V",
             currents=np.ones((2, 2)) * 1e-7, currents_units="A")
    d.update(extra)
    if drop:
        del d[drop]
    p = tmp_path / "m.npz"
    np.savez(p, **d)
    with pytest.raises(FormatError, match=message):
        from_npz(p)


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, xbarsolve as xs; xs.validation; "
            "print(any(m.startswith(('matplotlib', 'PySpice', 'scipy.optimize')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------ plausibility
def _csv_set(tmp_path, rng, g_unit="uS", g_scale=1e6, v_unit="V", v_scale=1.0, i_unit="uA", i_scale=1e6):
    meas = _measurement(rng)
    return (_write_csv(tmp_path / "g.csv", g_unit, meas.conductance * g_scale),
            _write_csv(tmp_path / "v.csv", v_unit, meas.inputs * v_scale),
            _write_csv(tmp_path / "i.csv", i_unit, meas.currents * i_scale))


@pytest.mark.parametrize(
    "units, message",
    [
        (dict(g_unit="S"), r"conductance file .*g.csv: conductance: values [\d.]+ to [\d.]+ S look like microsiemens; "
                           r"multiply by 1e-6 or label them uS"),
        (dict(g_unit="S", g_scale=1e9), r"look like nanosiemens; multiply by 1e-9 or label them nS \(or are they "
                                        r"resistances in ohm"),
        (dict(v_scale=1e3), r"inputs file .*v.csv: inputs: values [\d.]+ to [\d.]+ V look like millivolts; multiply "
                            r"by 1e-3 or label them mV"),
        (dict(i_unit="A"), r"currents file .*i.csv: currents: values .* A look like microamperes; multiply by 1e-6 "
                           r"or label them uA"),
        (dict(i_unit="mA"), r"^currents are 1e\+03 times the ideal product inputs @ conductance .* disagree by about 1e3"),
        (dict(g_unit="nS"), r"currents are 1e\+03 times the ideal product"),
        (dict(g_unit="uS", g_scale=1e-6), r"conductance: values up to [\d.e-]+ S are implausibly small"),
    ],
)
def test_importers_name_the_likely_unit_mistake(tmp_path, rng, units, message):
    g, v, i = _csv_set(tmp_path, rng, **units)
    with pytest.raises(FormatError, match=message):
        from_csv(g, v, i)


def test_npz_microsiemens_labelled_siemens(tmp_path, rng):
    meas = _measurement(rng)
    p = tmp_path / "m.npz"
    np.savez(p, conductance=meas.conductance * 1e6, conductance_units="S", inputs=meas.inputs, inputs_units="V",
             currents=meas.currents, currents_units="A")
    with pytest.raises(FormatError, match=r"m.npz: conductance: values .* look like microsiemens"):
        from_npz(p)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(r_row=5e4), r"r_row = 50000 ohm is implausible for a memristor array \(expected <= 10000 ohm\)"),
        (dict(r_on=3e9), r"r_on = 3e\+09 ohm is implausible"),
        (dict(read_voltage=200.0), r"read_voltage = 200 V is implausible .* looks like millivolts"),
        (dict(noise_rms=5.0), r"noise_rms = 5 A is implausible"),
    ],
)
def test_implausible_scalars_are_named(rng, change, message):
    with pytest.raises(FormatError, match=message):
        _measurement(rng, **change)


def test_a_file_with_implausible_values_is_refused(tmp_path, rng):
    path = _measurement(rng).save(tmp_path / "m.h5")
    _edit(path, lambda f: f["conductance"].__setitem__((), f["conductance"][()] * 1e6))
    with pytest.raises(FormatError, match=r"m.h5: conductance: values .* look like microsiemens"):
        Measurement.load(path)


# ------------------------------------------------------------- nonlinear models
def test_nonlinear_models_round_trip(tmp_path, rng):
    device = xs.devices.Sinh(a=1.7, v_read=0.2)
    transistor = xs.transistors.Level1(vto=0.6, v_gate=np.linspace(3.0, 3.5, 6))
    meas = _measurement(rng, r_on=None, device=device, transistor=transistor)
    assert meas.cell == "1T1R" and "r_on" not in meas.nominal
    back = Measurement.load(meas.save(tmp_path / "m.h5"))
    assert back.device == device and back.transistor.vto == 0.6
    np.testing.assert_array_equal(back.transistor.v_gate, transistor.v_gate)
    xbar = back.crossbar(r_row=2.0)
    assert xbar.device == device and xbar.transistor is back.transistor and xbar.r_row == 2.0


def test_nonlinear_model_fields_are_checked(tmp_path, rng):
    with pytest.raises(FormatError, match="give r_on .* or transistor .*, not both"):
        _measurement(rng, transistor=xs.transistors.Level1())
    with pytest.raises(FormatError, match="device must be None or an xbarsolve.devices model"):
        _measurement(rng, device="sinh")
    path = _measurement(rng, r_on=None, known=(), device=xs.devices.Sinh()).save(tmp_path / "m.h5")
    _edit(path, lambda f: f["conditions"].attrs.__setitem__("device", '{"class": "os:system", "params": {}}'))
    with pytest.raises(FormatError, match=r"/conditions attribute 'device' names the model 'os:system', which is not registered"):
        Measurement.load(path)


def test_an_unregistered_model_cannot_be_saved(tmp_path, rng):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Mine(xs.devices.Linear):
        pass

    with pytest.raises(TypeError, match=r"not registered.*xs.register_model\(.*Mine\)"):
        _measurement(rng, device=Mine()).save(tmp_path / "m.h5")
    assert list(tmp_path.iterdir()) == []
