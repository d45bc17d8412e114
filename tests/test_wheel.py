"""`pip install .` gives a working package: a wheel (not an editable install) with its data files,
whose `xbarsolve` command runs the demo's code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_installs_and_runs_without_the_source_tree(tmp_path):
    wheels, target, src = tmp_path / "wheels", tmp_path / "site", tmp_path / "src"
    # Build from a copy of what a source distribution holds, so that the build leaves
    # nothing (build/, *.egg-info) in the working tree.
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "xbarsolve", src / "xbarsolve", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(src)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    assert "deprecat" not in (build.stdout + build.stderr).lower()
    (wheel,) = wheels.glob("xbarsolve-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data_file in ("xbarsolve/spice/crossbar.cir.tmpl", "xbarsolve/cnn/weights/mnist_cnn4.npz",
                      "xbarsolve/_data_checksums.json", "xbarsolve/demo.py"):
        assert data_file in names
    assert not any(n.startswith("tests/") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause" in metadata
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(target), str(wheel)], capture_output=True, text=True)
    assert inst.returncode == 0, inst.stderr
    # Run from an empty folder with only the installed copy on the path (the dependencies
    # come from this interpreter's site-packages).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    code = (
        "import xbarsolve, xbarsolve.demo as d, xbarsolve.data as data, xbarsolve.spice.netlist as n;"
        "from xbarsolve.cnn.models import mnist_cnn4;"
        "print(xbarsolve.__file__); print(len(data.assets())); mnist_cnn4();"
        "from xbarsolve.cli import main; raise SystemExit(main(['solve', '--size', '12x4', '--batch', '3']))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    first, count = run.stdout.splitlines()[:2]
    assert first.startswith(str(target)) and int(count) == 14
    assert "12x4 array, 3 vector(s)" in run.stdout
