"""Per-call overhead of the circuit description on scheme-A arrays: run it from two checkouts
to compare them (issue 15: the topology layer must not slow the solvers by more than 5 %).

Each timing builds a fresh crossbar, so the topology's derivation is included; BLAS on one
thread; CPU time, best of N.  Columns: block solve of 4 vectors on 144 x 16 (ms), block
factorization + transfer matrix of 576 x 64 (ms), Newton on 144 x 16 sinh + Level-1 with 4
vectors (ms).  Interleave the checkouts, e.g.::

    git archive <old-rev> | tar -x -C /tmp/old
    for i in 1 2 3; do for w in /tmp/old .; do (cd $w && PYTHONPATH=$w python \\
        "$OLDPWD/benchmarks/bench_topology_overhead.py" $w); done; done
"""

from __future__ import annotations

import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import xbarsolve as xs


def best(f, n: int) -> float:
    ts = []
    for _ in range(n):
        t = time.process_time()
        f()
        ts.append(time.process_time() - t)
    return min(ts)


def main() -> None:
    rng = np.random.default_rng(0)
    G = rng.uniform(1 / 300e3, 1 / 15e3, (576, 64))
    Gs = rng.uniform(1 / 300e3, 1 / 15e3, (144, 16))
    Vs = rng.uniform(0, 0.4, (4, 144))

    def block_small():
        xs.solve(xs.Crossbar(Gs), Vs, method="block")

    def transfer_big():
        xs.factorize(xs.Crossbar(G)).transfer_matrix()

    def newton():
        xs.solve(xs.Crossbar(Gs, device=xs.devices.Sinh(a=2.0), transistor=xs.transistors.Level1()), Vs)

    with threadpool_limits(1):
        for f in (block_small, transfer_big, newton):
            f()  # compile / warm
        times = [best(block_small, 30), best(transfer_big, 5), best(newton, 5)]
    label = sys.argv[1] if len(sys.argv) > 1 else xs.__file__
    print(f"{label}  block 144x16 x4: {times[0] * 1e3:.3f} ms  T 576x64: {times[1] * 1e3:.1f} ms  "
          f"Newton 144x16 x4: {times[2] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
