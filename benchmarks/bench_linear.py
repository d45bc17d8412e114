"""Exact linear solver vs a plain SciPy baseline (assemble, splu, solve the batch).

The baseline is what badcrossbar and MemTorch do: assemble the sparse nodal system,
factor it with SuperLU and solve every input vector with the factors.  Ours: block
elimination + transfer matrix (``xs.solve`` on a fresh crossbar, so every timing includes
the setup: assembly, factorization and, where chosen, ``T``).

Usage::

    python benchmarks/bench_linear.py            # the full table (a few minutes)
    python benchmarks/bench_linear.py --quick    # small sizes only

Each cell is the median of ``--repeat`` runs.  For batches above ``--baseline-max`` the
baseline's per-vector time is extrapolated from its measured setup plus its measured
per-vector solve time on ``--baseline-max`` vectors (its cost is linear in the batch);
such rows are marked ``*``.  Peak memory is the process's peak resident set during the
size's runs (Linux ``VmHWM``, reset before each size).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import xbarsolve as xs
from xbarsolve.solve.sparse import solve_sparse

SIZES = [(64, 64), (144, 16), (288, 32), (576, 64), (128, 128), (256, 256)]
BATCHES = [1, 256, 4096]


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="sizes up to 144x16 only")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-max", type=int, default=256, help="largest batch the baseline solves for real")
    args = ap.parse_args()
    sizes = SIZES[:2] if args.quick else SIZES
    rng = np.random.default_rng(0)
    # Compile the kernels outside the timings.
    xs.transfer_matrix(xs.Crossbar(np.full((4, 3), 1e-5)))
    xs.solve(xs.Crossbar(np.full((4, 3), 1e-5)), np.ones(4), method="block")

    print(f"machine: {machine()}")
    print("reference parameters: G uniform in [3.33, 66.7] uS, 1-ohm wire segments, R_in = R_out = 1 ohm, inputs in [0, 0.4] V")
    head = (f"{'size':>8} {'batch':>6} {'method':>9} {'setup s':>8} {'ours us/vec':>12} {'scipy us/vec':>13} "
            f"{'ratio':>8} {'max rel dev':>12} {'peak MiB':>9}")
    print(head)
    print("-" * len(head))
    for m, n in sizes:
        G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
        _reset_peak_rss()
        # Setup alone: factorization + transfer matrix.
        setup, _ = _median_time(lambda: xs.transfer_matrix(xs.Crossbar(G)), args.repeat)
        # Baseline: setup (assemble + splu) and per-vector solve cost.
        xbar = xs.Crossbar(G)
        V_base = rng.uniform(0, 0.4, (args.baseline_max, m))
        t_base_1, _ = _median_time(lambda: solve_sparse(xbar, V_base[:1]), 1 if m * n > 20000 else args.repeat)
        t_base_k, base_k = _median_time(lambda: solve_sparse(xbar, V_base), 1)
        per_vec_solve = max(t_base_k - t_base_1, 0.0) / (args.baseline_max - 1)
        for batch in BATCHES:
            V = rng.uniform(0, 0.4, (batch, m))
            t_ours, res = _median_time(lambda: xs.solve(xs.Crossbar(G), V), args.repeat)
            if batch <= args.baseline_max:
                if batch == args.baseline_max:
                    V = V_base
                    t_ours, res = _median_time(lambda: xs.solve(xs.Crossbar(G), V), args.repeat)
                    t_base, ref = t_base_k, base_k
                elif batch == 1:
                    t_base, ref = _median_time(lambda: solve_sparse(xbar, V), 1 if m * n > 20000 else args.repeat)
                else:
                    t_base, ref = _median_time(lambda: solve_sparse(xbar, V), 1)
                mark = " "
                dev = np.abs(res.currents - ref.currents).max() / np.abs(ref.currents).max()
                dev_text = f"{dev:12.1e}"
            else:
                t_base = t_base_1 + per_vec_solve * (batch - 1)
                mark = "*"
                sub = V[: args.baseline_max]
                ref = solve_sparse(xbar, sub)
                dev = np.abs(res.currents[: args.baseline_max] - ref.currents).max() / np.abs(ref.currents).max()
                dev_text = f"{dev:12.1e}"
            print(f"{m:>4}x{n:<3} {batch:>6} {res.method:>9} {setup:>8.3f} {t_ours / batch * 1e6:>12.1f} "
                  f"{t_base / batch * 1e6:>12.1f}{mark} {t_base / t_ours:>8.0f} {dev_text} {_peak_rss_mib():>9.0f}", flush=True)
    print("\n* baseline extrapolated from its setup and its per-vector solve time measured on "
          f"{args.baseline_max} vectors; max rel dev then over those {args.baseline_max} vectors.")


if __name__ == "__main__":
    main()
