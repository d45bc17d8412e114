"""The PyTorch path of the dense linear steps (``device=``) against the NumPy path and the references.

The path is written for a CUDA device but runs on any torch device: here the test hook
``_torch_dense._AS_CUDA = "cpu"`` makes torch's CPU device stand for the CUDA one, so the
same code runs without a GPU.  The ``gpu``-marked test at the end runs the comparisons on
a real CUDA device (``make test-gpu``); it fails, never skips, on a machine without one.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.solve import _memory, _torch_dense
from xbarsolve.solve.dissection import transfer_matrix_dissection
from xbarsolve.solve.sparse import solve_sparse

from conftest import ROOT
from naive import naive_solve

ROUNDOFF = 1e-12  # relative, as the issue asks: the torch path repeats the NumPy path's arithmetic
TOPOLOGIES = list(itertools.product(["left", "right", "both"], ["bottom", "top", "both"]))
SHAPES = [(9, 5), (5, 9), (7, 7)]  # tall (row chains eliminated), wide (column chains), square


def random_xbar(rng, m, n, *, drive="left", sense="bottom", transistor=None, wires=True):
    G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
    if not wires:  # ideal wires, drivers and senses: 0 ohm, the sparse path's case
        return xs.Crossbar(G, r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, drive=drive, sense=sense, transistor=transistor)
    return xs.Crossbar(G, r_row=rng.uniform(0.5, 3.0, (m, n - 1)), r_col=rng.uniform(0.5, 3.0, (m - 1, n)),
                       r_in=rng.uniform(0.5, 5.0, m), r_out=rng.uniform(0.5, 5.0, n),
                       drive=drive, sense=sense, transistor=transistor)


def rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def fresh(xbar):
    """The same array without a cached transfer matrix."""
    return xs.Crossbar(xbar.G, r_row=xbar.r_row, r_col=xbar.r_col, r_in=xbar.r_in, r_out=xbar.r_out,
                       drive=xbar.drive, sense=xbar.sense, transistor=xbar.transistor)


@pytest.fixture
def on_torch_cpu(torch, monkeypatch):
    """Torch's CPU device stands for the CUDA device, on one thread (two threads were 30x
    slower on the loaded 2-core machine: 31 s against 1 s for a 256 x 256 T); counts the
    calls into the torch path."""
    monkeypatch.setattr(_torch_dense, "_AS_CUDA", "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    calls = {"transfer_matrix": 0, "factorize": 0, "product": 0}
    for name in calls:
        original = getattr(_torch_dense, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(_torch_dense, name, counted)
    yield calls
    torch.set_num_threads(threads)


# ----------------------------------------------------------- agreement with the CPU path
def check_against_cpu(rng, shape, drive, sense, transistor=None):
    """T, batch solves (currents, node voltages) and V @ T from device='cuda' against the
    NumPy path, the dense nodal reference and the SciPy sparse LU."""
    m, n = shape
    xbar = random_xbar(rng, m, n, drive=drive, sense=sense, transistor=transistor)
    V = rng.uniform(0, 0.4, (3, m))
    T_cpu = xs.transfer_matrix(fresh(xbar), method="block", device="cpu")
    T_dev = xs.transfer_matrix(xbar, device="cuda")
    ref = naive_solve(xbar, np.vstack([np.eye(m), V]))  # one dense nodal solve: T's rows, then V's
    T_ref, (ref_I, ref_T, ref_M, ref_B) = ref[0][:m], (a[m:] for a in ref)
    T_sparse = solve_sparse(xbar, np.eye(m)).currents
    assert rel(T_dev, T_cpu) < ROUNDOFF and rel(T_dev, T_ref) < ROUNDOFF and rel(T_dev, T_sparse) < ROUNDOFF
    cpu = xs.solve(xbar, V, method="block", full=True, device="cpu")
    dev = xs.solve(xbar, V, method="block", full=True, device="cuda")
    assert dev.method == "block"
    assert rel(dev.currents, cpu.currents) < ROUNDOFF and rel(dev.currents, ref_I) < ROUNDOFF
    for got, want, ref in ((dev.v_top, cpu.v_top, ref_T), (dev.v_bottom, cpu.v_bottom, ref_B)):
        assert rel(got, want) < ROUNDOFF and rel(got, ref) < ROUNDOFF
    if transistor is not None:
        assert rel(dev.v_mid, cpu.v_mid) < ROUNDOFF and rel(dev.v_mid, ref_M) < ROUNDOFF
    assert rel(dev.cell_currents, cpu.cell_currents) < ROUNDOFF
    light = xs.solve(xbar, V, method="block", device="cuda")  # currents only: no chain inverses kept
    assert light.v_top is None and rel(light.currents, ref_I) < ROUNDOFF
    prod = xs.solve(xbar, V, method="transfer", device="cuda")
    assert prod.method == "transfer" and rel(prod.currents, V @ T_cpu) < ROUNDOFF


@pytest.mark.parametrize("drive,sense", TOPOLOGIES)
@pytest.mark.parametrize("shape", SHAPES, ids=["tall", "wide", "square"])
def test_torch_path_matches_cpu_and_references(rng, on_torch_cpu, shape, drive, sense):
    check_against_cpu(rng, shape, drive, sense, transistor=xs.transistors.Resistor(r_on=1e3))
    assert on_torch_cpu == {"transfer_matrix": 1, "factorize": 2, "product": 1}  # the torch path ran


@pytest.mark.parametrize("transistor", [None, xs.transistors.Switch()], ids=["1R", "switch"])
def test_torch_path_without_transistor_resistance(rng, on_torch_cpu, transistor):
    check_against_cpu(rng, (8, 6), "both", "both", transistor=transistor)


@pytest.mark.parametrize("shape", [(1, 6), (6, 1), (2, 2)])
def test_degenerate_shapes(rng, on_torch_cpu, shape):
    xbar = random_xbar(rng, *shape, drive="both", sense="both")
    V = rng.uniform(0, 0.4, (2, shape[0]))
    ref = naive_solve(xbar, V)[0]
    assert rel(xs.solve(xbar, V, method="block", device="cuda").currents, ref) < ROUNDOFF
    assert rel(V @ xs.transfer_matrix(xbar, device="cuda"), ref) < ROUNDOFF


@pytest.mark.parametrize("shape", [(64, 64), (96, 24)])
def test_larger_arrays_match_dissection_and_block(rng, on_torch_cpu, shape):
    """On 64 x 64 (the dissection's size) and a tall and a wide array, where the chain
    inverses span several chunks (chunk size lowered), T agrees with both CPU paths."""
    xbar = random_xbar(rng, *shape, sense="both")
    T_block = xs.transfer_matrix(fresh(xbar), method="block")
    T_diss = transfer_matrix_dissection(xbar)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_torch_dense, "_CHUNK_DOUBLES", 5 * min(shape) ** 2)  # 5 blocks per chunk
        T_dev = xs.transfer_matrix(xbar, device="cuda")
    assert rel(T_dev, T_block) < ROUNDOFF and rel(T_dev, T_diss) < ROUNDOFF


def test_zero_resistances_take_the_sparse_path_whatever_the_device(rng, on_torch_cpu):
    """Without wire (and driver, sense) resistances there is no block elimination: the
    exact sparse path runs on the CPU, also when the device is 'cuda'."""
    xbar = random_xbar(rng, 6, 5, wires=False)
    V = rng.uniform(0, 0.4, (7, 6))
    res = xs.solve(xbar, V, device="cuda")
    np.testing.assert_allclose(res.currents, V @ xbar.G, rtol=1e-12)  # ideal wires: the ideal product
    T = xs.transfer_matrix(fresh(xbar), device="cuda")
    np.testing.assert_allclose(T, xbar.G, rtol=1e-12)
    assert on_torch_cpu["transfer_matrix"] == on_torch_cpu["factorize"] == 0


# -------------------------------------------------------------------- the auto choice
def test_auto_takes_the_cpu_path_without_cuda(rng, torch, monkeypatch):
    """``device="auto"`` without a CUDA device: NumPy, however large the step."""
    assert (_torch_dense.cuda_device() is None) == (not torch.cuda.is_available())  # the probe tells the truth
    monkeypatch.setattr(_torch_dense, "cuda_device", lambda: None)  # whatever this machine has
    assert _torch_dense.choose("auto", True) is None and _torch_dense.choose("cpu", True) is None
    monkeypatch.setattr(_torch_dense, "AUTO_MIN_SIDE", 4)  # every array "large"
    monkeypatch.setattr(_torch_dense, "AUTO_MIN_PRODUCT", 1)
    monkeypatch.setattr(_torch_dense, "_Blocks", None)  # the torch path would fail
    xbar = random_xbar(rng, 12, 8)
    V = rng.uniform(0, 0.4, (9, 12))
    assert rel(xs.solve(xbar, V, method="block").currents, naive_solve(xbar, V)[0]) < ROUNDOFF
    assert xs.solve(xbar, V).method == "transfer"


def test_auto_takes_the_device_for_large_steps_only(rng, on_torch_cpu, monkeypatch):
    """With a CUDA device present, ``"auto"`` builds T and factors there from
    ``min(m, n) >= AUTO_MIN_SIDE`` on, and computes ``V @ T`` there from
    ``batch m n >= AUTO_MIN_PRODUCT`` on; ``"cpu"`` never does."""
    assert _torch_dense.pays_off(512, 512) and _torch_dense.pays_off(512, 4096) and not _torch_dense.pays_off(576, 64)
    monkeypatch.setattr(_torch_dense, "AUTO_MIN_SIDE", 10)
    monkeypatch.setattr(_torch_dense, "AUTO_MIN_PRODUCT", 10 * 12 * 10)
    small, large = random_xbar(rng, 12, 9), random_xbar(rng, 12, 10)
    V = rng.uniform(0, 0.4, (10, 12))
    xs.transfer_matrix(small)
    assert on_torch_cpu["transfer_matrix"] == 0
    xs.solve(small, V[:9], device="cpu")
    xs.solve(fresh(large), V[:3], device="cpu")
    assert on_torch_cpu == {"transfer_matrix": 0, "factorize": 0, "product": 0}
    T = xs.transfer_matrix(large)
    assert on_torch_cpu["transfer_matrix"] == 1
    assert rel(T, xs.transfer_matrix(fresh(large), device="cpu")) < ROUNDOFF
    xs.solve(large, V[:9])  # 9 x 12 x 10 < AUTO_MIN_PRODUCT: the product on the CPU
    assert on_torch_cpu["product"] == 0
    assert rel(xs.solve(large, V).currents, V @ T) < ROUNDOFF  # 10 vectors: on the device
    assert on_torch_cpu["product"] == 1
    res = xs.solve(fresh(large), V[:5], full=True)  # full: the block solve, on the device
    assert on_torch_cpu["factorize"] == 1 and rel(res.currents, V[:5] @ T) < ROUNDOFF


def test_auto_does_not_import_torch_for_small_arrays():
    """``import xbarsolve`` stays light, and so does an "auto" solve too small for a GPU."""
    code = ("import sys, numpy as np, xbarsolve as xs\n"
            "x = xs.Crossbar(np.full((40, 24), 2e-5), r_row=1.0, r_col=1.0)\n"
            "xs.transfer_matrix(x); xs.solve(x, np.full((30, 40), 0.1)); xs.solve(x, np.full(40, 0.1), full=True)\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", ["gpu", "CUDA", None, 0])
def test_bad_device_names_the_allowed_values(rng, bad):
    xbar = random_xbar(rng, 4, 4)
    msg = rf"device must be 'auto', 'cpu' or 'cuda'; got {bad!r}"
    with pytest.raises(ValueError, match=msg):
        xs.solve(xbar, np.full(4, 0.1), device=bad)
    with pytest.raises(ValueError, match=msg):
        xs.transfer_matrix(xbar, device=bad)


def test_cuda_without_a_cuda_device_is_an_error(rng, torch, monkeypatch):
    monkeypatch.setattr(_torch_dense, "cuda_device", lambda: None)
    xbar = random_xbar(rng, 4, 4)
    with pytest.raises(ValueError, match=r"device='cuda' needs a CUDA device, but torch .* sees none "
                                         r"\(torch.cuda.is_available\(\) is False\)"):
        xs.solve(xbar, np.full(4, 0.1), device="cuda")
    with pytest.raises(ValueError, match="device='cuda' needs a CUDA device"):
        xs.transfer_matrix(xbar, device="cuda")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    with pytest.raises(ValueError, match=r"device='cuda' needs PyTorch: pip install 'xbarsolve\[torch\]'"):
        xs.solve(xbar, np.full(4, 0.1), device="cuda")


def test_device_conflicts_are_errors(rng, on_torch_cpu):
    xbar = random_xbar(rng, 6, 6)
    for method in ("iterative", "sparse"):
        with pytest.raises(ValueError, match=rf"method='{method}' runs on the CPU only; device='cuda' takes"):
            xs.solve(xbar, np.full(6, 0.1), method=method, device="cuda")
    with pytest.raises(ValueError, match="method='dissection' runs on the CPU only"):
        xs.transfer_matrix(xbar, method="dissection", device="cuda")
    sinh = xs.Crossbar(xbar.G, device=xs.devices.Sinh(a=1.0))
    with pytest.raises(ValueError, match="device='cuda' applies to linear arrays only"):
        xs.solve(sinh, np.full(6, 0.1), device="cuda")


def test_memory_is_checked_before_the_factorization(on_torch_cpu, monkeypatch):
    monkeypatch.setattr(_memory, "available_bytes", lambda: 2**20)
    xbar = xs.Crossbar(np.full((200, 100), 2e-5))
    with pytest.raises(MemoryError, match=r"block factorization of a 200x100 ladder on cpu needs about .* of memory "
                                          r"but 1 MiB is available"):
        xs.transfer_matrix(xbar, device="cuda")


# ------------------------------------------------------------------------------ docs
def test_docs_gpu_example_runs():
    """docs/gpu.md's example runs as written (its asserts hold) on a machine without a GPU."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "gpu.md").read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "docs/gpu.md", "exec"), {})


# ------------------------------------------------------------------------- on a GPU
@pytest.mark.gpu
def test_cuda_matches_cpu(rng, torch):
    """The comparisons above on the CUDA device itself, and on a 256 x 256 array against
    the dissection.  Fails (device='cuda' raises) where there is no CUDA device."""
    assert _torch_dense._AS_CUDA is None
    xs.solve(random_xbar(rng, 4, 4), np.full(4, 0.1), device="cuda")  # raises without a CUDA device
    assert _torch_dense.cuda_device() == "cuda" and _torch_dense.choose("auto", True) == "cuda"
    assert _torch_dense.choose("auto", False) is None and _torch_dense.choose("cpu", True) is None
    for shape in SHAPES:
        for drive, sense in TOPOLOGIES:
            check_against_cpu(rng, shape, drive, sense, transistor=xs.transistors.Resistor(r_on=1e3))
    xbar = random_xbar(rng, 256, 256, sense="both")
    T_dev = xs.transfer_matrix(xbar, device="cuda")
    assert rel(T_dev, transfer_matrix_dissection(xbar)) < ROUNDOFF
    V = rng.uniform(0, 0.4, (300, 256))
    assert rel(xs.solve(xbar, V, device="cuda").currents, V @ T_dev) < ROUNDOFF
