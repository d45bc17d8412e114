"""Benchmark: conversion G -> G' of a 576 x 64 array (docs/model.md section 4 targets).

Targets: < 10 ms for linear models, < 100 ms for nonlinear ones.  The baseline column is
the time to build the array's transfer matrix once (the exact linear solve it replaces).

    python benchmarks/bench_conversion.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import xbarsolve as xs
from xbarsolve.conversion import constant_signal


def best_of(fn, repeat: int) -> float:
    fn()  # compile / warm up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    m, n = 576, 64
    G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
    v = constant_signal(m, 0.1)
    cases = [
        ("1R, linear", dict(), 10e-3),
        ("1T1R, Resistor(1k), linear", dict(transistor=xs.transistors.Resistor(1e3)), 10e-3),
        ("1R, Sinh(a=2)", dict(device=xs.devices.Sinh(a=2.0)), 100e-3),
        ("1R, Poly", dict(device=xs.devices.Poly(a2=2e-6, a3=5e-6)), 100e-3),
        ("1T1R, Level1 + Sinh(a=2)", dict(device=xs.devices.Sinh(a=2.0), transistor=xs.transistors.Level1(w=4e-6)), 100e-3),
        ("1R, linear, drive+sense both ends", dict(drive="both", sense="both"), 10e-3),
    ]
    base_x = xs.Crossbar(G, r_row=0.1, r_col=0.1)
    t_T = best_of(lambda: xs.transfer_matrix(xs.Crossbar(base_x.G, r_row=0.1, r_col=0.1)), max(3, args.repeat // 5))
    print(f"conversion of a {m}x{n} array (wire 0.1 ohm so that nothing clips), best of {args.repeat}")
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, numpy {np.__version__}")
    print(f"baseline: transfer matrix of the same array {1e3 * t_T:.1f} ms")
    print()
    print(f"| case | time (ms) | target (ms) | within target | speed-up vs transfer matrix |")
    print(f"|---|---:|---:|:---:|---:|")
    for name, kw, target in cases:
        x = xs.Crossbar(G, r_row=0.1, r_col=0.1, **kw)
        t = best_of(lambda: xs.convert(x, v, on_clip="ignore"), args.repeat)
        conv = xs.convert(x, v, on_clip="ignore")
        assert conv.n_clipped == 0, name
        print(f"| {name} | {1e3 * t:.2f} | {1e3 * target:.0f} | {'yes' if t < target else 'NO'} | {t_T / t:.0f}x |")


if __name__ == "__main__":
    main()
