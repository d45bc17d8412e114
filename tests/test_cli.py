"""The command line: `xbarsolve solve` and `xbarsolve demo`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

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
