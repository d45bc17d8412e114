"""Shared fixtures.  Tests that need ngspice or the shared data never skip silently in CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def rng():
    """A seeded generator, fresh for every test."""
    return np.random.default_rng(20261123)


def ngspice_available() -> bool:
    lib = any(Path(d).glob("libngspice.so") for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib"))
    return shutil.which("ngspice") is not None and lib


@pytest.fixture
def require_ngspice():
    """Fail (never skip) when ngspice is missing: the README's set-up installs it."""
    if not ngspice_available():
        pytest.fail("ngspice (binary and libngspice.so) is required: run `make test`, which installs it, "
                    "or `apt-get install ngspice libngspice0 libngspice0-dev`")


def shared_data_dir() -> Path | None:
    env = os.environ.get("XBARSOLVE_DATA")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture
def data_dir() -> Path:
    """The shared reference data (``$XBARSOLVE_DATA`` or ``../shared/data``).

    Skips with a clear message on a user's machine without it; fails in CI, where it is
    always present.
    """
    d = shared_data_dir()
    if d is None:
        msg = "shared data not found: set XBARSOLVE_DATA to the folder holding mnist/, cifar10/ and models/"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture
def torch():
    """PyTorch, an optional extra: skips with this reason on a user's machine without it,
    fails in CI (whose .ci/run installs the CPU wheel) so its tests never vanish silently."""
    try:
        import torch as _torch
    except ImportError:
        msg = "PyTorch is an optional extra (pip install 'xbarsolve[torch]'); the PyTorch loader tests need it"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return _torch


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA device: they run only when the marker expression
    names them (``-m gpu``, ``make test-gpu``), and there fail, never skip, without one."""
    if "gpu" in (config.getoption("markexpr") or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if item.get_closest_marker("gpu") is None]
