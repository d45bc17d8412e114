"""The torch/CUDA path of the dense linear steps against the CPU path: ``T`` setup and ``V @ T``.

For each array (random cells in the reference range, 1 ohm wires, drivers and senses):

- ``setup cpu``: ``xs.transfer_matrix(xbar, device="cpu")`` on a fresh crossbar, as
  dispatched today (nested dissection for square arrays from 64 x 64, block elimination for
  576 x 64);
- ``setup dev``: the block elimination on the torch device
  (``xbarsolve.solve._torch_dense.transfer_matrix``, what ``device="cuda"`` runs), host-device
  transfers of the ladder and of ``T`` included; ``peak GiB``: the device's peak memory
  allocated during it (CUDA only);
- ``err``: ``max |T_dev - T_cpu| / max |T_cpu|``;
- ``V@T cpu`` / ``V@T dev`` / ``V@T res``: the product for a batch of ``k`` vectors on the
  CPU (NumPy), on the device with ``V``, ``T`` and the currents transferred
  (``_torch_dense.product``, what ``solve(device="cuda")`` runs), and on the device with
  ``T`` already resident (``V`` and the currents transferred); ``err`` of the product
  against the CPU's.

Setup times are the best of ``--passes`` interleaved passes (CPU, device, CPU, ...;
arrays of more than 1024 x 1024 cells run once), product times the best of 5.  Before the
table: torch, CUDA and NumPy versions, the GPU's name, and the device warm-up (CUDA context,
cuSOLVER handles, first call on 64 x 64), excluded from the figures.

Budget: about 5 minutes on an H200 with 16 cores for the default sizes; the CPU path's
2048 x 2048 dissection takes most of it (skip it with ``--cpu-max-cells``).
``--device cpu`` runs the torch path on torch's CPU device: a smoke test of this script,
not a GPU figure.

Usage::

    python benchmarks/bench_gpu.py [--device cuda] [--sizes 256x256,512x512,1024x1024,2048x2048,576x64]
        [--batches 1,256,4096] [--passes 2] [--cpu-max-cells N]
    nice -n 10 python benchmarks/bench_gpu.py --device cpu --sizes 64x64,128x128   # smoke test, no GPU
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import xbarsolve as xs
from xbarsolve import reference
from xbarsolve.solve import _torch_dense

#: Arrays above this many cells are set up once (no second pass).
ONE_PASS_CELLS = 1024 * 1024


def make_xbar(m: int, n: int, seed: int = 0) -> xs.Crossbar:
    rng = np.random.default_rng(seed)
    return xs.Crossbar(rng.uniform(reference.G_MIN, reference.G_MAX, (m, n)), r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def parse_shape(text: str) -> tuple[int, int]:
    m, _, n = text.lower().partition("x")
    try:
        shape = int(m), int(n or m)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is MxN (e.g. 576x64) or N; got {text!r}") from None
    if min(shape) < 2:
        raise argparse.ArgumentTypeError(f"sizes need m, n >= 2; got {text!r}")
    return shape


def _sync(torch, dev: str) -> None:
    if torch.device(dev).type == "cuda":
        torch.cuda.synchronize()


def setup_times(shape, dev: str, passes: int, cpu: bool, torch):
    """Best-of-passes setup times (s) of the CPU and device paths, their ``T``, the device's peak memory (GiB)."""
    t_cpu, t_dev, T_cpu, T_dev, peak = [], [], None, None, float("nan")
    is_cuda = torch.device(dev).type == "cuda"
    for _ in range(passes):
        if cpu:
            xbar = make_xbar(*shape)
            t0 = time.perf_counter()
            T_cpu = xs.transfer_matrix(xbar, device="cpu")
            t_cpu.append(time.perf_counter() - t0)
        xbar = make_xbar(*shape)
        if is_cuda:
            torch.cuda.reset_peak_memory_stats()
        _sync(torch, dev)
        t0 = time.perf_counter()
        T_dev = _torch_dense.transfer_matrix(xbar, dev)
        t_dev.append(time.perf_counter() - t0)
        if is_cuda:
            peak = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.empty_cache()
    return (min(t_cpu) if t_cpu else float("nan")), min(t_dev), T_cpu, T_dev, peak


def best(fn, repeats: int = 5) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def product_times(T: np.ndarray, k: int, dev: str, torch):
    """Times (s) of ``V @ T`` for k vectors: CPU, device with every transfer, device with T resident; their errors."""
    rng = np.random.default_rng(k)
    V = rng.uniform(0, reference.V_MAX, (k, T.shape[0]))
    t_cpu, I_cpu = best(lambda: V @ T)
    t_dev, I_dev = best(lambda: _torch_dense.product(V, T, dev))
    T_res = torch.tensor(T, device=dev)  # a copy: the cached T is read-only
    _sync(torch, dev)
    t_res, I_res = best(lambda: (torch.from_numpy(V).to(dev) @ T_res).cpu().numpy())
    del T_res
    return t_cpu, t_dev, t_res, max(rel(I_dev, I_cpu), rel(I_res, I_cpu))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="torch device of the torch path (cpu: a smoke test of the script, not a GPU figure)")
    ap.add_argument("--sizes", type=lambda s: [parse_shape(x) for x in s.split(",")],
                    default=[(256, 256), (512, 512), (1024, 1024), (2048, 2048), (576, 64)])
    ap.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 256, 4096])
    ap.add_argument("--passes", type=int, default=2, help="interleaved setup passes (arrays above 1024 x 1024: one)")
    ap.add_argument("--cpu-max-cells", type=int, default=None,
                    help="skip the CPU setup above this many cells (its T then comes from the device)")
    args = ap.parse_args(argv)

    import torch

    dev = args.device
    if dev == "cpu":  # two torch threads were 30x slower than one on the loaded 2-core machine (256 x 256 T)
        torch.set_num_threads(1)
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"bench_gpu: --device cuda needs a CUDA device; torch {torch.__version__} sees none "
                         "(use --device cpu for a smoke test)")
    gpu = torch.cuda.get_device_name(0) if dev == "cuda" else "none (torch's CPU device)"
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
          f"NumPy {np.__version__}; GPU: {gpu}; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    warm = make_xbar(64, 64)
    t0 = time.perf_counter()
    _torch_dense.transfer_matrix(warm, dev)
    print(f"device warm-up (context, handles, first 64 x 64 call): {time.perf_counter() - t0:.2f} s")
    xs.transfer_matrix(make_xbar(64, 64), device="cpu")  # the CPU kernels' JIT/cache load, excluded too

    rows = []
    for shape in args.sizes:
        cells = shape[0] * shape[1]
        cpu = args.cpu_max_cells is None or cells <= args.cpu_max_cells
        passes = 1 if cells > ONE_PASS_CELLS else max(1, args.passes)
        s_cpu, s_dev, T_cpu, T_dev, peak = setup_times(shape, dev, passes, cpu, torch)
        err = rel(T_dev, T_cpu) if T_cpu is not None else float("nan")
        T = T_cpu if T_cpu is not None else T_dev
        for k in args.batches:
            p_cpu, p_dev, p_res, p_err = product_times(T, k, dev, torch)
            rows.append((f"{shape[0]}x{shape[1]}", s_cpu, s_dev, peak, err, k, p_cpu, p_dev, p_res, p_err))
            s_cpu = s_dev = peak = err = None  # setup figures once per array
        print(f"  {shape[0]}x{shape[1]} done", flush=True)

    f = lambda v, fmt: "" if v is None else ("-" if v != v else format(v, fmt))  # noqa: E731
    head = ("array", "setup cpu s", "setup dev s", "cpu/dev", "peak GiB", "err T", "batch",
            "V@T cpu ms", "V@T dev ms", "V@T res ms", "cpu/dev", "err V@T")
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for a, s_cpu, s_dev, peak, err, k, p_cpu, p_dev, p_res, p_err in rows:
        ratio = None if s_cpu is None else s_cpu / s_dev
        print(f"| {a} | {f(s_cpu, '.3f')} | {f(s_dev, '.3f')} | {f(ratio, '.2f')} | {f(peak, '.2f')} | {f(err, '.1e')} "
              f"| {k} | {p_cpu * 1e3:.3f} | {p_dev * 1e3:.3f} | {p_res * 1e3:.3f} | {p_cpu / p_dev:.2f} | {p_err:.1e} |")
    print(f"\ndevice: {dev}; setup: best of {args.passes} interleaved passes (one above {ONE_PASS_CELLS} cells), "
          "products: best of 5; host-device transfers included except in 'V@T res' (T resident on the device)")


if __name__ == "__main__":
    main()
