"""HDF5 round trips and clear errors on bad files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.errors import FormatError


def _xbar(rng):
    m, n = 6, 4
    return xs.Crossbar(
        rng.uniform(1e-5, 6e-5, (m, n)), r_row=rng.uniform(1, 2, (m, n - 1)), r_col=1.5,
        r_in=rng.uniform(1, 2, m), r_out=0.0, drive="both", sense="top",
        transistor=xs.transistors.Resistor(r_on=2e3),
    )


def test_crossbar_and_result_round_trip(tmp_path, rng):
    xbar = _xbar(rng)
    res = xs.solve(xbar, rng.uniform(0, 0.4, (3, 6)), full=True)
    path = xs.save(tmp_path / "a.h5", crossbar=xbar, result=res)
    back = xs.load(path)
    x2, r2 = back["crossbar"], back["result"]
    assert np.array_equal(x2.G, xbar.G) and np.array_equal(x2.r_row, xbar.r_row)
    assert x2.r_col == 1.5 and x2.r_out == 0.0
    assert (x2.drive, x2.sense, x2.transistor, x2.device) == (xbar.drive, xbar.sense, xbar.transistor, xbar.device)
    for name in ("inputs", "currents", "v_top", "v_bottom", "v_mid", "cell_currents"):
        assert np.array_equal(getattr(r2, name), getattr(res, name))
    assert r2.method == res.method
    assert np.array_equal(xs.solve(x2, res.inputs).currents, res.currents)
    with h5py.File(path) as f:
        assert f["crossbar/G"].attrs["units"] == "S"
        assert f["result/currents"].attrs["units"] == "A"
        assert f.attrs["format_version"] == 1


def test_newer_version_is_refused(tmp_path, rng):
    path = xs.save(tmp_path / "a.h5", crossbar=_xbar(rng))
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(FormatError, match="newer"):
        xs.load(path)


def test_corrupt_and_foreign_files_are_refused(tmp_path, rng):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(FormatError, match="not a readable HDF5"):
        xs.load(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(FormatError, match="not an xbarsolve file"):
        xs.load(foreign)
    path = xs.save(tmp_path / "a.h5", crossbar=_xbar(rng))
    with h5py.File(path, "a") as f:
        del f["crossbar/G"].attrs["units"]
    with pytest.raises(FormatError, match="units"):
        xs.load(path)
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(FormatError):
        xs.load(truncated)


def test_failed_save_leaves_no_file(tmp_path):
    class Boom:
        method = "x"

    with pytest.raises(Exception):
        xs.save(tmp_path / "b.h5", result=Boom())
    assert list(tmp_path.iterdir()) == []
