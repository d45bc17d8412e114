"""ngspice (batch route) against our exact solver: time per input vector and agreement.

Run from the repository root::

    python benchmarks/bench_ngspice.py                 # default sizes, ~10 min on 2 cores
    python benchmarks/bench_ngspice.py --sizes 8x8 64x64 --timeout 60

For each size it builds an array with the reference parameters of docs/model.md section 6
(G uniform in [3.33, 66.7] uS, 1-ohm wire segments, R_in = R_out = 1 ohm, inputs uniform in
[0, 0.4] V), solves the same batch with ``xs.spice.solve(backend="batch")`` (netlist writing,
``ngspice -b``, raw-file reading: all included) and with ``xs.solve`` on a fresh ``Crossbar``
(setup included), and prints seconds per vector, their ratio and the largest element-wise
relative deviation of the column currents.  A size whose ngspice run exceeds ``--timeout``
seconds is reported as such.

Where ngspice's time goes: every ``op`` re-orders its sparse matrix (Markowitz, Sparse 1.3),
which dominates from 32x32 on and grows much faster than the node count.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import xbarsolve as xs
from xbarsolve.spice import NgspiceError

DEFAULT_SIZES = ["8x8", "16x16", "32x32", "64x64", "144x16", "288x32", "128x128"]


def batch_for(m: int, n: int) -> int:
    """Vectors per ngspice run: enough to average small sizes, few for the slow ones."""
    cells = m * n
    return 16 if cells <= 256 else 8 if cells <= 1024 else 2 if cells <= 4096 else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="array sizes as MxN (rows x columns)")
    ap.add_argument("--timeout", type=float, default=180.0, help="limit (s) for one ngspice run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}; ngspice batch route vs xs.solve; "
          f"per-vector times include netlist/raw I/O (ngspice) and setup (ours)")
    head = f"{'size':>9} {'batch':>5} {'ngspice s/vector':>17} {'ours s/vector':>14} {'ratio':>10} {'max rel dev':>12}"
    print(head)
    print("-" * len(head))
    for size in args.sizes:
        m, n = (int(x) for x in size.lower().split("x"))
        G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
        V = rng.uniform(0, 0.4, (batch_for(m, n), m))
        k = V.shape[0]
        xs.solve(xs.Crossbar(G), V)  # warm the compiled kernels
        t0 = time.perf_counter()
        ours = xs.solve(xs.Crossbar(G), V)
        t_ours = (time.perf_counter() - t0) / k
        t0 = time.perf_counter()
        try:
            ref = xs.spice.solve(xs.Crossbar(G), V, backend="batch", timeout=args.timeout)
        except NgspiceError as exc:
            if "timeout" not in str(exc):
                raise
            print(f"{size:>9} {k:>5} {'> %.0f s (timeout)' % args.timeout:>17} {t_ours:>14.3e} {'-':>10} {'-':>12}", flush=True)
            continue
        t_sp = (time.perf_counter() - t0) / k
        dev = np.max(np.abs(ref.currents - ours.currents) / np.abs(ours.currents))
        print(f"{size:>9} {k:>5} {t_sp:>17.3e} {t_ours:>14.3e} {t_sp / t_ours:>10.3g} {dev:>12.2e}", flush=True)


if __name__ == "__main__":
    main()
