#!/usr/bin/env python3
"""Scheduling speed of xbarsolve.program (issue 11 target: a ResNet-56 on an accelerator
of 16 crossbars in under 10 s).

Networks: the Keras CIFAR-10 ResNet-20/56 from the shared data folder and the shipped
MNIST CNN, INT8 weights on four 2-bit cells, mapped once (not timed).  Accelerator: the
ARAS defaults scaled to 4 processing elements of 4 crossbars (16 crossbars, 4 written at
a time).  Each row is the median wall time of ``--repeat`` calls, interleaved across
rows in every pass so the shared machine's drift hits all rows alike:

* ``naive``: ``schedule(net, acc, "naive")``;
* ``overlap``: ``schedule(net, acc, "overlap")`` (computes the naive schedule too, for the speedup);
* ``overlap+auto``: with ``replication="auto"`` (the replication search);
* ``compare``: :func:`xbarsolve.program.compare`, everything above plus the six
  re-encoded networks.

    python benchmarks/bench_program.py [--data DIR] [--batch 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xbarsolve.cnn.datasets import data_dir  # noqa: E402
from xbarsolve.cnn.models import load_keras_h5, mnist_cnn4  # noqa: E402
from xbarsolve.program import Accelerator, compare, map_model, schedule  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    d = data_dir(args.data) / "models" / "keras_resnet_cifar10"
    nets = {"mnist_cnn4": map_model(mnist_cnn4())}
    for depth in (20, 56):
        nets[f"resnet{depth}"] = map_model(load_keras_h5(d / f"resnet{depth}v1_cifar10.h5", name=f"resnet{depth}"))
    acc = Accelerator(n_pe=4, crossbars_per_pe=4)
    b = args.batch
    runs = {
        "naive": lambda n: schedule(n, acc, "naive", batch=b),
        "overlap": lambda n: schedule(n, acc, "overlap", batch=b),
        "overlap+auto": lambda n: schedule(n, acc, "overlap", replication="auto", batch=b),
        "compare": lambda n: compare(n, acc, batch=b),
    }
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for name, net in nets.items():
            for what, fn in runs.items():
                t0 = time.perf_counter()
                fn(net)
                times.setdefault((name, what), []).append(time.perf_counter() - t0)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"16 crossbars (4 PE x 4), batch {b}, median of {args.repeat}")
    print(f"{'network':>11} {'layers':>6} {'tiles':>5} {'schedule':>13} {'seconds':>8} {'target':>7}")
    for (name, what), ts in times.items():
        net = nets[name]
        target = "10 s" if (name == "resnet56" and what != "compare") else ""
        print(f"{name:>11} {len(net.layers):>6} {net.n_tiles(acc):>5} {what:>13} {np.median(ts):8.3f} {target:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
