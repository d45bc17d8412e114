"""Property-based tests (hypothesis) of the loaders and the Crossbar constructor.

* random valid crossbars and results round trip through ``xs.save`` / ``xs.load`` exactly;
* random garbage in any attribute or dataset of a file gives ``FormatError`` (or a valid
  load when the garbage happens to be valid), never another exception;
* random invalid shapes and values given to ``Crossbar`` give ``ValueError`` naming the
  argument.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xbarsolve as xs
from xbarsolve.errors import FormatError
from xbarsolve.validation import Measurement

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = dict(allow_nan=False, allow_infinity=False)
#: Text HDF5 can store (variable-length strings cannot hold NUL).
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@st.composite
def resistances(draw, shape):
    if draw(st.booleans()):
        return draw(st.floats(0.0, 1e3, **finite))
    return draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1e3, **finite)))


@st.composite
def crossbars(draw):
    m, n = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    G = draw(hnp.arrays(np.float64, (m, n), elements=st.floats(0.0, 1e-3, **finite)))
    transistor = draw(st.one_of(
        st.none(), st.just(xs.transistors.Switch()),
        st.builds(xs.transistors.Resistor, st.floats(0.0, 1e5, **finite)),
        st.builds(xs.transistors.Level1, vto=st.floats(-1, 1, **finite),
                  v_gate=st.one_of(st.floats(0, 5, **finite), hnp.arrays(np.float64, (m,), elements=st.floats(0, 5, **finite)))),
    ))
    device = draw(st.one_of(
        st.builds(xs.devices.Linear, st.floats(0.01, 1.0, **finite)),
        st.builds(xs.devices.Sinh, a=st.floats(0.0, 20.0, **finite), v_read=st.floats(0.05, 0.5, **finite)),
        st.builds(xs.devices.Poly, a2=st.floats(-1e-4, 1e-4, **finite), a3=st.floats(-1e-4, 1e-4, **finite)),
    ))
    return xs.Crossbar(
        G, r_row=draw(resistances((m, n - 1))), r_col=draw(resistances((m - 1, n))), r_in=draw(resistances((m,))),
        r_out=draw(resistances((n,))), drive=draw(st.sampled_from(["left", "right", "both"])),
        sense=draw(st.sampled_from(["bottom", "top", "both"])), transistor=transistor, device=device,
    )


def _same_model(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if type(a) is not type(b):
        return False
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))


@FAST
@given(crossbars(), st.integers(1, 3), st.data())
def test_valid_crossbars_round_trip(xbar, batch, data):
    V = data.draw(hnp.arrays(np.float64, (batch, xbar.m), elements=st.floats(-1, 1, **finite)))
    result = xs.SolveResult(inputs=V, currents=V @ xbar.G, method="ideal")
    with tempfile.TemporaryDirectory() as tmp:
        back = xs.load(xs.save(Path(tmp) / "x.h5", crossbar=xbar, result=result))
    x2, r2 = back["crossbar"], back["result"]
    for name in ("G", "r_row", "r_col", "r_in", "r_out"):
        assert np.array_equal(getattr(x2, name), getattr(xbar, name)), name
        assert np.ndim(getattr(x2, name)) == np.ndim(getattr(xbar, name)), name
    assert (x2.drive, x2.sense) == (xbar.drive, xbar.sense)
    assert _same_model(x2.device, xbar.device) and _same_model(x2.transistor, xbar.transistor)
    assert np.array_equal(r2.inputs, V) and np.array_equal(r2.currents, result.currents) and r2.method == "ideal"


# Anything h5py can store as an attribute.
json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
garbage = st.one_of(
    st.integers(-2**63, 2**63 - 1), st.floats(), texts, st.binary(max_size=30).map(lambda b: b.replace(b'\0', b'')),
    json_values.map(json.dumps),
    st.builds(lambda name, params: json.dumps({"class": name, "params": params}),
              st.sampled_from(["Linear", "Sinh", "Level1", "Resistor", "os:system", "xbarsolve.devices:Sinh", ""]),
              st.dictionaries(st.sampled_from(["a", "v_read", "r_on", "v_gate", "x", "vto"]), json_values, max_size=3)),
    hnp.arrays(st.sampled_from([np.float64, np.int32, np.uint8]), hnp.array_shapes(max_dims=2, max_side=3)),
)
ATTRIBUTES = [("/", "format"), ("/", "format_version"), ("crossbar", "drive"), ("crossbar", "sense"),
              ("crossbar", "device"), ("crossbar", "transistor"), ("result", "method"),
              ("crossbar/G", "units"), ("crossbar/r_row", "units"), ("crossbar/r_row", "checksum_crc32")]


def _template(folder: Path) -> Path:
    xbar = xs.Crossbar(np.full((3, 2), 2e-5), r_row=1.5, transistor=xs.transistors.Level1(), device=xs.devices.Sinh())
    V = np.full((2, 3), 0.1)
    return xs.save(folder / "t.h5", crossbar=xbar, result=xs.SolveResult(inputs=V, currents=V @ xbar.G))


def _loads_or_format_error(load, path) -> None:
    try:
        load(path)
    except FormatError:
        pass


@FAST
@given(st.sampled_from(ATTRIBUTES), garbage)
def test_garbage_attributes_give_format_errors(where, value):
    with tempfile.TemporaryDirectory() as tmp:
        path = _template(Path(tmp))
        with h5py.File(path, "a") as f:
            f[where[0]].attrs[where[1]] = value
        _loads_or_format_error(xs.load, path)


datasets = st.one_of(
    hnp.arrays(st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_, np.complex128]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    texts, st.binary(max_size=10).map(lambda b: b.replace(b"\0", b"")),
)


@FAST
@given(st.sampled_from(["crossbar/G", "crossbar/r_row", "crossbar/r_in", "result/inputs", "result/currents"]),
       datasets, st.booleans())
def test_garbage_datasets_give_format_errors(name, value, keep_units):
    with tempfile.TemporaryDirectory() as tmp:
        path = _template(Path(tmp))
        with h5py.File(path, "a") as f:
            units = f[name].attrs["units"]
            del f[name]
            f[name] = value
            if keep_units:
                f[name].attrs["units"] = units
        _loads_or_format_error(xs.load, path)


MEASUREMENT_ATTRIBUTES = [("/", "format"), ("/", "format_version"), ("/", "title"), ("conductance", "read_voltage"),
                          ("conductance", "definition"), ("currents", "noise_rms"), ("conditions", "drive"),
                          ("conditions", "cell"), ("conditions", "known"), ("conditions", "device"),
                          ("conditions", "transistor"), ("conditions/r_on", "units")]


@FAST
@given(st.sampled_from(MEASUREMENT_ATTRIBUTES), garbage)
def test_garbage_measurement_attributes_give_format_errors(where, value):
    G = np.full((3, 2), 2e-5)
    V = np.full((2, 3), 0.1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Measurement(G, V, V @ G, r_on=1e3).save(Path(tmp) / "m.h5")
        with h5py.File(path, "a") as f:
            f[where[0]].attrs[where[1]] = value
        _loads_or_format_error(Measurement.load, path)


# ---------------------------------------------------------------- constructor
bad_numbers = st.sampled_from([-1.0, -1e-300, np.nan, np.inf, -np.inf])


@st.composite
def invalid_crossbar_arguments(draw):
    """(keyword arguments, name of the invalid argument)."""
    m, n = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    G = np.full((m, n), 1e-5)
    kind = draw(st.sampled_from(["G shape", "G value", "G dtype", "resistance shape", "resistance value",
                                 "drive", "sense"]))
    if kind == "G shape":
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3).filter(
            lambda s: len(s) != 2 or 0 in s))
        return {"G": np.full(shape, 1e-5)}, "G"
    if kind == "G value":
        G = G.copy()
        G[draw(st.integers(0, m - 1)), draw(st.integers(0, n - 1))] = draw(bad_numbers)
        return {"G": G}, "G"
    if kind == "G dtype":
        return {"G": draw(st.sampled_from([G.astype(bool), G.astype(complex), G.astype(str)]))}, "G"
    name, shape = draw(st.sampled_from([("r_row", (m, n - 1)), ("r_col", (m - 1, n)), ("r_in", (m,)), ("r_out", (n,))]))
    if kind == "resistance shape":
        bad = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5).filter(
            lambda s: not _broadcasts(s, shape)))
        return {"G": G, name: np.ones(bad)}, name
    if kind == "resistance value":
        if draw(st.booleans()) or 0 in shape:
            return {"G": G, name: draw(bad_numbers)}, name
        r = np.ones(shape)
        r[tuple(draw(st.integers(0, k - 1)) for k in shape)] = draw(bad_numbers)
        return {"G": G, name: r}, name
    word = draw(st.text(max_size=6).filter(lambda w: w not in ("left", "right", "both", "bottom", "top")))
    return {"G": G, kind: word}, kind


def _broadcasts(shape, target) -> bool:
    try:
        np.broadcast_shapes(shape, target)
    except ValueError:
        return False
    return np.broadcast_shapes(shape, target) == tuple(target)


@FAST
@given(invalid_crossbar_arguments())
def test_invalid_crossbar_arguments_are_named(case):
    kwargs, name = case
    with pytest.raises(ValueError) as exc:
        xs.Crossbar(**kwargs)
    assert str(exc.value).startswith(f"{name} must"), str(exc.value)


# ------------------------------------------------------------------ raw files
_RAW_ASCII = (b"Title: t\nDate: d\nPlotname: Operating Point\nFlags: real\nNo. Variables: 2\nNo. Points: 1\n"
              b"Variables:\n\t0\tv(a)\tvoltage\n\t1\ti(v1)\tcurrent\nValues:\n 0\t1.5\n\t-2e-3\n")


@FAST
@given(st.one_of(
    st.binary(max_size=200),
    st.integers(0, len(_RAW_ASCII) - 1).map(lambda k: _RAW_ASCII[:k]),
    st.tuples(st.integers(0, len(_RAW_ASCII) - 1), st.binary(min_size=1, max_size=4)).map(
        lambda t: _RAW_ASCII[: t[0]] + t[1] + _RAW_ASCII[t[0] + len(t[1]):]),
))
def test_garbage_raw_files_give_format_errors(data):
    from xbarsolve.spice import read_raw

    try:
        plots = read_raw(data)
    except FormatError:
        return
    assert all(p.data.ndim == 2 and p.data.shape[1] == len(p.names) for p in plots)


def test_the_raw_template_reads():
    from xbarsolve.spice import read_raw

    (plot,) = read_raw(_RAW_ASCII)
    assert plot["v(a)"].tolist() == [1.5] and plot["i(v1)"].tolist() == [-2e-3]
