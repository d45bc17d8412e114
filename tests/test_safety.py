"""Failures handled, not suffered: crafted and corrupted files, concurrent batch runs, ngspice trouble."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.errors import FormatError
from xbarsolve.validation import Measurement


def _saved(tmp_path, **kw):
    xbar = xs.Crossbar(np.full((3, 2), 2e-5), transistor=xs.transistors.Resistor(1e3), **kw)
    return xs.save(tmp_path / "a.h5", crossbar=xbar, result=xs.solve(xbar, np.full((2, 3), 0.1)))


def _set_attr(path, group, name, value):
    with h5py.File(path, "a") as f:
        f[group].attrs[name] = value


@pytest.mark.parametrize(
    "spec",
    [
        {"class": "os:system", "params": {"command": "touch {marker}"}},
        {"class": "subprocess:call", "params": {"args": ["touch", "{marker}"]}},
        {"class": "builtins:eval", "params": {"source": "open('{marker}', 'w')"}},
        {"class": "builtins:exec", "params": {"source": "open('{marker}', 'w')"}},
        {"class": "pathlib:Path.touch", "params": {"self": "{marker}"}},
    ],
)
@pytest.mark.parametrize("attr", ["device", "transistor"])
def test_a_file_naming_code_runs_nothing(tmp_path, spec, attr):
    marker = tmp_path / "pwned"
    path = _saved(tmp_path)
    text = json.dumps(spec).replace("{marker}", str(marker))
    _set_attr(path, "crossbar", attr, text)
    with pytest.raises(FormatError, match=rf"attribute '{attr}' names the model '{spec['class']}', which is not registered") as exc:
        xs.load(path)
    assert "xs.register_model" in str(exc.value)
    assert not marker.exists()


def test_old_module_qualname_names_of_builtins_still_load(tmp_path):
    xbar = xs.Crossbar(np.full((3, 2), 2e-5), device=xs.devices.Sinh(a=1.5),
                       transistor=xs.transistors.Level1(v_gate=np.array([3.0, 3.1, 3.2])))
    path = xs.save(tmp_path / "a.h5", crossbar=xbar)
    # How files were written before the registry: "module:QualName".
    with h5py.File(path, "a") as f:
        for attr in ("device", "transistor"):
            spec = json.loads(f["crossbar"].attrs[attr])
            cls = type(getattr(xbar, attr))
            spec["class"] = f"{cls.__module__}:{cls.__qualname__}"
            f["crossbar"].attrs[attr] = json.dumps(spec)
    back = xs.load(path)["crossbar"]
    assert back.device == xbar.device
    np.testing.assert_array_equal(back.transistor.v_gate, [3.0, 3.1, 3.2])
    assert back.transistor.vto == xbar.transistor.vto


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not valid JSON"),
        ('{"class": "Linear"}', "must be null or"),
        ('{"class": "Linear", "params": {"v_read": 0.2, "evil": 1}}', "has no parameter 'evil'"),
        ('{"class": "Linear", "params": {"v_read": -1}}', "refuses the stored parameters: v_read must be finite and > 0"),
        ('{"class": "Linear", "params": {"v_read": NaN}}', "must be finite"),
        ('{"class": 5, "params": {}}', "model name must be a string"),
        ('{"class": "Resistor", "params": {"r_on": {"__array__": "x"}}}', "numeric array"),
    ],
)
def test_malformed_model_specs_are_format_errors(tmp_path, text, message):
    path = _saved(tmp_path)
    _set_attr(path, "crossbar", "transistor", text)
    with pytest.raises(FormatError, match=message):
        xs.load(path)


# ------------------------------------------------------------------ checksums
def _flip_data_byte(path, dataset, index=3):
    """Change one byte of a dataset's stored data in place, bypassing HDF5."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        offset = ds.id.get_chunk_info(0).byte_offset if ds.chunks else ds.id.get_offset()
    with open(path, "r+b") as fh:
        fh.seek(offset + index)
        byte = fh.read(1)
        fh.seek(offset + index)
        fh.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("dataset", ["crossbar/G", "result/currents", "result/inputs"])
def test_a_corrupted_dataset_is_refused(tmp_path, dataset):
    path = _saved(tmp_path)
    with h5py.File(path) as f:
        assert f[dataset].fletcher32
    _flip_data_byte(path, dataset)
    with pytest.raises(FormatError, match=rf"{path}: dataset /{dataset} cannot be read \(its Fletcher-32 checksum"):
        xs.load(path)


def test_a_corrupted_scalar_dataset_is_refused(tmp_path):
    path = _saved(tmp_path, r_row=1.25)
    with h5py.File(path) as f:
        assert f["crossbar/r_row"].shape == () and "checksum_crc32" in f["crossbar/r_row"].attrs
    _flip_data_byte(path, "crossbar/r_row", index=6)
    with pytest.raises(FormatError, match="dataset /crossbar/r_row fails its CRC-32 checksum"):
        xs.load(path)


def _measurement(rng):
    G = rng.uniform(5e-6, 60e-6, (5, 4))
    V = rng.uniform(0, 0.3, (3, 5))
    return Measurement(G, V, V @ G, r_on=1e3, licence="CC0-1.0")


@pytest.mark.parametrize("dataset", ["conductance", "currents", "conditions/r_on"])
def test_a_corrupted_measurement_file_is_refused(tmp_path, rng, dataset):
    path = _measurement(rng).save(tmp_path / "m.h5")
    _flip_data_byte(path, dataset, index=5)
    with pytest.raises(FormatError, match=rf"dataset /{dataset} (cannot be read|fails its CRC-32)"):
        Measurement.load(path)


def test_a_corrupted_sweep_record_is_refused(tmp_path):
    from xbarsolve.sweeps import read_records, run_tasks

    path = tmp_path / "r.h5"
    run_tasks([{"k": 1}], _record, path, progress=False)
    _flip_data_byte(path, f"records/{xs.sweeps.task_key({'k': 1})}/x", index=9)
    with pytest.raises(FormatError, match=r"/x cannot be read \(its Fletcher-32"):
        read_records(path)


def _record(task):
    return {"x": np.arange(20.0) * task["k"], "y": 1.0}


# -------------------------------------------------------------- format versions
@pytest.mark.parametrize("version, message", [(0, "invalid format version 0"), (-3, "invalid format version -3"),
                                              ("one", "must be an integer"), (1.5, "must be an integer")])
def test_format_versions_below_one_or_not_integers_are_refused(tmp_path, version, message):
    path = _saved(tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = version
    with pytest.raises(FormatError, match=message):
        xs.load(path)


@pytest.mark.parametrize("version, message", [(0, "format_version 0 is invalid"), (-1, "format_version -1 is invalid"),
                                              ("one", "must be an integer")])
def test_measurement_format_versions_below_one_are_refused(tmp_path, rng, version, message):
    path = _measurement(rng).save(tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = version
    with pytest.raises(FormatError, match=message):
        Measurement.load(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        xs.load(tmp_path / "nothing.h5")


# ------------------------------------------------------------- batch job lock
_HOLDER = """
import sys, time
from pathlib import Path
import numpy as np
from xbarsolve.sweeps import run_tasks

release = Path(sys.argv[2])

def slow(task):
    while task["k"] == 2 and not release.exists():
        time.sleep(0.05)
    return {"x": np.arange(5.0) * task["k"]}

run_tasks([{"k": k} for k in range(4)], slow, sys.argv[1], progress=False)
"""


def test_a_second_run_is_refused_and_the_first_loses_nothing(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from xbarsolve.errors import LockError
    from xbarsolve.sweeps import read_records, run_tasks
    from xbarsolve.sweeps._runner import _parts_dir

    path, release = tmp_path / "r.h5", tmp_path / "release"
    first = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(release)],
                             env=dict(os.environ, PYTHONPATH=str(_ROOT)), stderr=subprocess.PIPE, text=True)
    try:
        parts = _parts_dir(path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(parts.glob("*.h5"))) < 2:
            assert first.poll() is None, "the first run ended early"
            time.sleep(0.05)
        assert (tmp_path / "r.h5.lock").exists()
        with pytest.raises(LockError, match=rf"r.h5 is in use by another run \(pid {first.pid} on .*delete .*r.h5.lock"):
            run_tasks([{"k": k} for k in range(4)], _record, path, progress=False)
        # Reading while the first run writes: its finished parts, and nothing is written.
        before = sorted(p.name for p in tmp_path.rglob("*"))
        assert sorted(t["k"] for t, _ in read_records(path)) == [0, 1]
        assert sorted(p.name for p in tmp_path.rglob("*")) == before
    finally:
        release.touch()
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    recs = read_records(path)
    assert [t["k"] for t, _ in sorted(recs, key=lambda r: r[0]["k"])] == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5", "release"]


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_lock_of_a_dead_run_is_taken_over(tmp_path):
    import socket

    from xbarsolve.sweeps import read_records, run_tasks

    path = tmp_path / "r.h5"
    lock = tmp_path / "r.h5.lock"
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "time": "2026-01-01T00:00:00"}))
    (tmp_path / ".r.h5.abcd1234.tmp").write_bytes(b"left by the dead run")
    summary = run_tasks([{"k": 1}], _record, path, progress=False)
    assert summary.run == 1 and len(read_records(path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


def test_a_lock_held_on_another_host_is_honoured(tmp_path):
    from xbarsolve.errors import LockError
    from xbarsolve.sweeps import run_tasks

    lock = tmp_path / "r.h5.lock"
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere.invalid", "time": "2026-01-01T00:00:00"}))
    with pytest.raises(LockError, match="on elsewhere.invalid"):
        run_tasks([{"k": 1}], _record, tmp_path / "r.h5", progress=False)
    assert lock.exists() and not (tmp_path / "r.h5").exists()


_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------- ngspice
def _fake_ngspice(tmp_path, body: str):
    script = tmp_path / "fake-ngspice"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("kind", ["missing", "folder", "not executable"])
def test_a_bad_ngspice_variable_is_an_ngspice_error(tmp_path, monkeypatch, kind):
    from xbarsolve.spice import NgspiceError

    target = {"missing": tmp_path / "nope", "folder": tmp_path, "not executable": tmp_path / "plain"}[kind]
    if kind == "not executable":
        target.write_text("#!/bin/sh\n")
    monkeypatch.setenv("XBARSOLVE_NGSPICE", str(target))
    why = {"missing": "does not exist", "folder": "is a folder", "not executable": "is not executable"}[kind]
    with pytest.raises(NgspiceError, match=rf"XBARSOLVE_NGSPICE='{target}' {why}"):
        xs.spice.solve(xs.Crossbar(np.full((2, 2), 1e-5)), np.zeros(2))


def test_ngspice_is_retried_once_at_looser_tolerances(require_ngspice, tmp_path, monkeypatch):
    import shutil

    real = shutil.which("ngspice")
    # Fails whenever the deck asks for the default reltol, like a hard nonlinear array would.
    fake = _fake_ngspice(tmp_path, f'grep -q "reltol=1e-12 " "$2" && {{ echo "no convergence in DC op"; exit 1; }}\n'
                                   f'exec {real} "$@"\n')
    xbar = xs.Crossbar(np.random.default_rng(3).uniform(1e-5, 6e-5, (4, 3)))
    V = np.full((2, 4), 0.2)
    exact = xs.spice.solve(xbar, V).currents
    monkeypatch.setenv("XBARSOLVE_NGSPICE", str(fake))
    with pytest.warns(RuntimeWarning, match=r"failed at reltol=1e-12, abstol=1e-18, vntol=1e-15, itl1=500 and "
                                            r"converged only at the looser reltol=1e-09"):
        res = xs.spice.solve(xbar, V)
    np.testing.assert_allclose(res.currents, exact, rtol=1e-9)


def test_ngspice_failing_twice_says_what_was_tried(require_ngspice, tmp_path, monkeypatch):
    from xbarsolve.spice import NgspiceError

    monkeypatch.setenv("XBARSOLVE_NGSPICE", str(_fake_ngspice(tmp_path, 'echo "singular matrix"; exit 1\n')))
    with pytest.raises(NgspiceError, match=r"failed at reltol=1e-12, .* and again at the looser reltol=1e-09, "
                                           r"abstol=1e-15, vntol=1e-12, itl1=2000: ngspice -b exited with status 1"):
        xs.spice.solve(xs.Crossbar(np.full((2, 2), 1e-5)), np.zeros(2))
    with pytest.raises(NgspiceError, match="already at or looser than the retry tolerances, so not retried"):
        xs.spice.solve(xs.Crossbar(np.full((2, 2), 1e-5)), np.zeros(2), options={"reltol": 1e-3, "abstol": 1e-12,
                                                                                  "vntol": 1e-6, "itl1": 5000})


@pytest.mark.parametrize("version, message", [(0, "invalid records version 0"), ("x", "must be an integer"),
                                              (7, "newer xbarsolve")])
def test_records_versions_are_checked(tmp_path, version, message):
    from xbarsolve.sweeps import read_records, run_tasks

    path = tmp_path / "r.h5"
    run_tasks([{"k": 1}], _record, path, progress=False)
    with h5py.File(path, "a") as f:
        f.attrs["version"] = version
    with pytest.raises(FormatError, match=message):
        read_records(path)


def test_a_records_file_that_is_not_hdf5_is_a_format_error(tmp_path):
    from xbarsolve.sweeps import read_records

    (tmp_path / "r.h5").write_bytes(b"nope")
    with pytest.raises(FormatError, match="not a readable HDF5 file"):
        read_records(tmp_path / "r.h5")
