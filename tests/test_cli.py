"""The command line: `xbarsolve solve`, `xbarsolve demo` and `xbarsolve compile`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.cli import main


def test_demo_prints_the_table_and_writes_the_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--batch", "16", "--no-spice"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("JIT compile")
    for label in ("144x16, 1 ohm", "576x64, 0.1 ohm"):
        assert sum(line.startswith(label) for line in lines) == 3
    assert "conversion + calibration" in out and "The paper's 576x64 at 1-ohm wires" in out
    assert {p.name for p in tmp_path.iterdir()} == {"demo.json", "demo.png"}
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compile_warms_the_kernels_and_says_how_long(capsys):
    """``xbarsolve compile`` (what ``scripts/setup.sh`` runs) reports each warm-up's time
    on its own line; ``--no-newton`` leaves the Newton solver's out."""
    assert main(["compile", "--no-newton"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "the demo's and the linear solver's kernels in" in lines[0]
    assert main(["compile"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "the Newton solver's kernels in" in lines[1]
    assert float(lines[1].rsplit(" in ", 1)[1].rstrip(" s")) > 0.0


def test_demo_refuses_a_batch_below_two():
    proc = subprocess.run([sys.executable, "-m", "xbarsolve.cli", "demo", "--batch", "1"], capture_output=True, text=True)
    assert proc.returncode != 0 and "--batch must be >= 2" in proc.stderr and "Traceback" not in proc.stderr


def test_solve_round_trips_through_files(tmp_path, capsys):
    V = np.random.default_rng(1).uniform(0, 0.4, (3, 10))
    np.save(tmp_path / "v.npy", V)
    assert main(["solve", "--size", "10x4", "--inputs", str(tmp_path / "v.npy"), "--out", str(tmp_path / "a.h5")]) == 0
    first = xs.load(tmp_path / "a.h5")
    assert np.array_equal(first["result"].inputs, V)
    assert main(["solve", "--crossbar", str(tmp_path / "a.h5"), "--inputs", str(tmp_path / "v.npy"), "--out", str(tmp_path / "b.h5")]) == 0
    assert np.array_equal(xs.load(tmp_path / "b.h5")["result"].currents, first["result"].currents)
    assert "deviation from the ideal product" in capsys.readouterr().out


def test_bad_arguments_exit_with_a_message():
    proc = subprocess.run([sys.executable, "-m", "xbarsolve.cli", "solve", "--size", "12by4"], capture_output=True, text=True)
    assert proc.returncode != 0 and "size must look like 144x16" in proc.stderr


def test_import_is_light():
    code = "import sys, xbarsolve; bad = [m for m in ('PySpice', 'matplotlib', 'dask', 'torch', 'h5py') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ errors: one line, status 2
def _fails(argv, capsys, *, match):
    import re

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("xbarsolve: error: ") and re.search(match, err), err
    return err


def test_missing_crossbar_file(tmp_path, capsys):
    _fails(["solve", "--crossbar", str(tmp_path / "none.h5")], capsys, match=r"--crossbar: no such file: .*none\.h5")


def test_malformed_crossbar_file(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    _fails(["solve", "--crossbar", str(junk)], capsys, match=r"--crossbar: .*junk\.h5 is not a readable HDF5 file")


def test_crafted_crossbar_file(tmp_path, capsys):
    import h5py

    path = xs.save(tmp_path / "a.h5", crossbar=xs.Crossbar(np.full((3, 2), 1e-5)))
    with h5py.File(path, "a") as f:
        f["crossbar"].attrs["device"] = '{"class": "os:system", "params": {"command": "true"}}'
    _fails(["solve", "--crossbar", str(path)], capsys, match=r"--crossbar: .*names the model 'os:system', which is not registered")


def test_missing_inputs_file(tmp_path, capsys):
    _fails(["solve", "--size", "4x3", "--inputs", str(tmp_path / "v.npy")], capsys,
           match=r"--inputs: No such file or directory: .*v\.npy")


def test_malformed_inputs_file(tmp_path, capsys):
    (tmp_path / "v.csv").write_text("0.1,0.2,x\n")
    _fails(["solve", "--size", "3x3", "--inputs", str(tmp_path / "v.csv")], capsys, match=r"--inputs: could not convert")


def test_inputs_file_without_the_dataset(tmp_path, capsys):
    import h5py

    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["other"] = np.zeros((2, 3))
    _fails(["solve", "--size", "3x3", "--inputs", str(tmp_path / "v.h5")], capsys, match=r"--inputs: Unable to .*open object")


def test_bad_values_name_their_option(capsys):
    _fails(["solve", "--size", "4x3", "--r-row", "-1"], capsys, match=r"--r-row: r_row must be a finite resistance >= 0 ohm; got -1")
    _fails(["solve", "--size", "4x3", "--r-on", "-5"], capsys, match=r"--r-on: r_on must be a finite resistance")
    _fails(["solve", "--size", "4x3", "--batch", "0"], capsys, match=r"error: --batch must be >= 1; got 0")


def test_bad_argument_syntax_exits_2(capsys):
    assert main(["solve", "--size", "12by4"]) == 2
    assert "size must look like 144x16" in capsys.readouterr().err


def test_a_locked_output_folder(tmp_path, capsys):
    import json
    import os
    import socket

    out = tmp_path / "job"
    out.mkdir()
    (out / "crossbar.h5.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": "t"}))
    _fails(["reproduce", "crossbar", "--quick", "--out", str(out), "--no-plots", "--no-progress"], capsys,
           match=rf"--out: .*crossbar\.h5 is in use by another run \(pid {os.getpid()} ")


def test_bad_validate_option(tmp_path, capsys):
    from conftest import ROOT

    measured = ROOT / "validation_data" / "measured" / "synthetic_64x64.h5"
    _fails(["validate", str(measured), "--holdout", "1.5", "--out", str(tmp_path / "o"), "--no-plots"], capsys,
           match=r"--holdout: holdout must be in \[0, 1\); got 1.5")


def test_traceback_option_re_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["solve", "--traceback", "--crossbar", str(tmp_path / "none.h5")])


def test_the_console_script_prints_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xbarsolve.cli", "solve", "--crossbar", str(tmp_path / "x.h5")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
