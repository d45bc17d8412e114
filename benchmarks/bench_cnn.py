#!/usr/bin/env python3
"""CNN inference speed on simulated crossbars (issue 5 targets).

* ResNet-20 (Keras, CIFAR-10) with every convolution and dense layer on 1-ohm-wire
  crossbars (R_in = R_out = 1 ohm), linear devices, conversion + calibration: one-time
  preparation (< 60 s target) and time per image (<= 0.5 s target), for one crossbar per
  layer (the paper's 576x64 etc.) and for 64x64 tiles.
* The 4-layer MNIST CNN: time per image (< 50 ms target), one crossbar per layer and
  64x64 tiles.
* Nonlinear devices (sinh, a = 2 /V, solved by Newton): the MNIST CNN and ResNet-20 on
  64x64 tiles, time per image; the target column is 100x the same network's linear time
  on 64x64 tiles for the same images, measured in passes interleaved with the nonlinear
  ones (the shared machine's speed drifts by up to 2x over tens of seconds, so times
  taken minutes apart do not make a ratio).  Calibrated on the same held-out images as
  the linear case, so the DAC full scale keeps inputs within v_max.

The ResNet-20 rows add the time per image of ``xbarsolve.cost.network_cost`` (the same
pass plus the exact read energy of every input vector, the converter counts and the
energies; issue 12 target: under 5 % more), in five passes interleaved with five plain
ones (the read-power forms built before, untimed); "cost %" is the median of the per-pass
ratios minus one.  On a loaded machine it is the difference of two noisy times;
``benchmarks/bench_cost.py`` times the accounting alone.

Times are wall-clock per image for one analog forward pass, batched (all sliding
windows of a batch go through one ``V @ T`` GEMM per crossbar), after warm-up (Numba
compilation excluded), the median of three passes over the images (five, interleaved
with network_cost, for the ResNet-20 rows).  Prints a table and the ratio of each time to
its target.

``--nonlinear-only`` times only the sinh networks, against the issue's absolute targets
(10 and 100 ms/image); ``--compare-before`` adds interleaved passes on the Newton path
before the sinh-tile changes (private flags, :data:`BEFORE`) and the largest logit
difference; ``--tile-profile`` replays each sinh network's tile solves of one batch
and prints the CPU time per layer on each path of :data:`PATHS` (BENCHMARKS.md section 10).

    python benchmarks/bench_cnn.py [--data DIR] [--images 50] [--nonlinear-images 32]
                                   [--nonlinear-resnet-images 8] [--skip-nonlinear]
                                   [--nonlinear-only] [--compare-before] [--tile-profile]
                                   [--skip-resnet-nonlinear]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xbarsolve.cnn import AnalogConfig, AnalogNetwork  # noqa: E402
from xbarsolve.cnn.datasets import cifar10_keras_input, data_dir, load_cifar10, load_mnist, mnist_input  # noqa: E402
from xbarsolve.cnn.models import load_keras_h5, mnist_cnn4  # noqa: E402
from xbarsolve.solve import _newton_kernels as _nk  # noqa: E402


def _time_per_image(net, X, batch, repeat=3):
    """Median over ``repeat`` passes of the wall time per image (s)."""
    net.logits(X[:2])  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(0, len(X), batch):
            net.logits(X[i:i + batch])
        times.append((time.perf_counter() - t0) / len(X))
    return float(np.median(times))


def _time_with_cost(net, X, batch, repeat=5):
    """Interleaved passes: per repeat the wall time per image (s) of an analog pass and of
    ``xbarsolve.cost.network_cost`` (its own pass plus the exact read energy of every input
    vector and the counts).  Returns the median pass time, the median cost time and the
    median of the per-repeat ratios cost / pass - 1."""
    from xbarsolve.cost import network_cost, power_matrices

    for al in net.layers.values():  # the read-power forms, built once and cached (not timed)
        for t in al.tiles:
            power_matrices(t.crossbar)
    net.logits(X[:2])
    network_cost(net, X[:2])  # warm-up
    pairs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(0, len(X), batch):
            net.logits(X[i:i + batch])
        t1 = time.perf_counter()
        for i in range(0, len(X), batch):
            network_cost(net, X[i:i + batch])
        pairs.append(((t1 - t0) / len(X), (time.perf_counter() - t1) / len(X)))
    p, c = np.median(pairs, axis=0)
    return float(p), float(c), float(np.median([b / a - 1 for a, b in pairs]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--images", type=int, default=50, help="images timed per case")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--nonlinear-images", type=int, default=32, help="MNIST images timed with sinh devices")
    ap.add_argument("--nonlinear-resnet-images", type=int, default=8, help="CIFAR-10 images timed with sinh devices")
    ap.add_argument("--skip-nonlinear", action="store_true")
    ap.add_argument("--nonlinear-only", action="store_true",
                    help="only the nonlinear rows, against the issue's absolute targets (10 and 100 ms/image)")
    ap.add_argument("--compare-before", action="store_true",
                    help="also time the nonlinear networks on the Newton path before the sinh-tile changes, interleaved")
    ap.add_argument("--skip-resnet-nonlinear", action="store_true")
    ap.add_argument("--tile-profile", action="store_true",
                    help="sinh networks: replay every tile's Newton call of one batch, CPU time per layer and path")
    args = ap.parse_args(argv)
    d = data_dir(args.data)

    rows = []
    folder = d / "models" / "keras_resnet_cifar10"
    resnet = load_keras_h5(folder / "resnet20v1_cifar10.h5", name="resnet20")
    xc, _ = load_cifar10(d, n=1000)
    X = cifar10_keras_input(xc, np.load(folder / "cifar10_x_train_mean.npy"))
    lin = {}  # linear 64x64-tile networks, for the nonlinear cases' ratios
    for tile in (() if args.nonlinear_only else (None, 64)):
        cfg = AnalogConfig(rows_max=tile, cols_max=tile)
        t0 = time.perf_counter()
        net = AnalogNetwork(resnet, cfg).prepare(X[-10:])
        prep = time.perf_counter() - t0
        lin["resnet", tile] = net
        per, with_cost, extra = _time_with_cost(net, X[:args.images], args.batch)
        label = "one crossbar per layer" if tile is None else f"{tile}x{tile} tiles"
        rows.append((f"ResNet-20, 1-ohm, conversion+calibration, {label} ({net.n_crossbars} crossbars)", prep, per, 0.5,
                     with_cost, extra))

    xtr, _ = load_mnist(d, "train")
    xte, _ = load_mnist(d, "test")
    Xm, Xcal = mnist_input(xte[:max(args.images, args.nonlinear_images, 100)]), mnist_input(xtr[:100])
    model = mnist_cnn4()
    for tile in (() if args.nonlinear_only else (None, 64)):
        t0 = time.perf_counter()
        net = AnalogNetwork(model, AnalogConfig(rows_max=tile, cols_max=tile)).prepare(Xcal)
        prep = time.perf_counter() - t0
        lin["mnist", tile] = net
        per = _time_per_image(net, Xm, args.batch)
        label = "one crossbar per layer" if tile is None else f"{tile}x{tile} tiles"
        rows.append((f"MNIST CNN, 1-ohm, conversion+calibration, linear, {label}", prep, per, 0.05))
    _print(rows)

    if not args.skip_nonlinear:
        _nonlinear(args, rows, lin, model, Xcal, Xm, resnet, X)
    return 0


#: The Newton paths of ``--tile-profile``: (module, flag, value) settings.
PATHS = {"before": (("xbarsolve.solve._lines", "_LAST_PASS", False), ("xbarsolve.solve.newton", "_SKIP_ZERO", False)),
         "now": (),
         "gemm start": (("xbarsolve.solve._lines", "_START", "gemm"),),
         "p chains before": tuple(("xbarsolve.solve._newton_kernels", name, kernel) for name, kernel in
                                  zip(("lines_p", "lines_pre_p"), _nk.p_chains_before()))}


@contextlib.contextmanager
def _flags(settings):
    """Run the body with the private solver flags ``settings`` set."""
    import importlib

    flags = [(importlib.import_module(m), f, v) for m, f, v in settings]
    saved = [getattr(m, f) for m, f, _ in flags]
    for m, f, v in flags:
        setattr(m, f, v)
    try:
        yield
    finally:
        for (m, f, _), v in zip(flags, saved):
            setattr(m, f, v)


def tile_profile(net, X, repeat=3) -> None:
    """Capture the Newton call of every tile (crossbar and voltages) during one
    ``net.logits(X)``, replay them one by one (``threads=1``) on each path of
    :data:`PATHS`, interleaved ``repeat`` times, and print per layer (tile shape and
    vectors per call) the median CPU time per image and the mean sweeps per vector, with
    the largest column-current difference from the first path relative to the call's
    largest current."""
    from collections import defaultdict

    from xbarsolve.cnn import network
    from xbarsolve.solve import solve

    calls = []
    orig = network._Tile.currents

    def record(tile, V, threads=None):
        calls.append((tile.crossbar, np.array(V)))
        return orig(tile, V, threads)

    network._Tile.currents = record
    try:
        net.logits(X)
    finally:
        network._Tile.currents = orig
    groups = defaultdict(list)
    for xbar, V in calls:
        groups[xbar.shape, V.shape[0]].append((xbar, V))
    first, acc = {}, defaultdict(list)
    for rep in range(repeat + 1):  # the first round warms up (compilation, caches)
        for name, settings in PATHS.items():
            with _flags(settings):
                for key, group in groups.items():
                    t0, its, dev = time.process_time(), [], 0.0
                    for j, (xbar, V) in enumerate(group):
                        r = solve(xbar, V, threads=1)
                        its.append(r.iterations.mean())
                        ref = first.setdefault((key, j), r.currents)
                        dev = max(dev, float(np.abs(r.currents - ref).max() / np.abs(ref).max()))
                    if rep:
                        acc[name, key].append((time.process_time() - t0, float(np.mean(its)), dev))
    k = len(X)
    print(f"tile profile: {len(calls)} Newton calls for {k} images, CPU ms per image (median of {repeat} interleaved), "
          f"load {os.getloadavg()[0]:.2f}")
    print("| tiles (m x n, vectors per call) | calls | " + " | ".join(f"{p} ms | {p} sweeps" for p in PATHS)
          + " | max dev |")
    print("|---|---:|" + "---:|---:|" * len(PATHS) + "---:|")
    total = dict.fromkeys(PATHS, 0.0)
    for key, group in groups.items():
        cells, dev = [], 0.0
        for p in PATHS:
            t = float(np.median([a[0] for a in acc[p, key]])) / k * 1e3
            total[p] += t
            cells += [f"{t:.2f}", f"{acc[p, key][0][1]:.2f}"]
            dev = max(dev, max(a[2] for a in acc[p, key]))
        print(f"| {key[0][0]}x{key[0][1]}, {key[1]} | {len(group)} | " + " | ".join(cells) + f" | {dev:.0e} |")
    base = total[next(iter(PATHS))]
    print("| total | | " + " | ".join(f"**{total[p]:.1f}** ({total[p] / base:.3f}) | " for p in PATHS) + " |")


#: The Newton path before the sinh-tile changes (BENCHMARKS.md section 10): every sweep
#: with two Gauss-Seidel passes, zero inputs iterated (private flags).
BEFORE = PATHS["before"]


def _before():
    """Run the body on the Newton path of :data:`BEFORE`."""
    return _flags(BEFORE)


def _nonlinear(args, rows, lin, model, Xcal, Xm, resnet, X) -> None:
    from xbarsolve.devices import Sinh

    cases = [("MNIST CNN", "mnist", model, Xcal, Xm[:args.nonlinear_images]),
             ("ResNet-20", "resnet", resnet, X[-10:], X[:0 if args.skip_resnet_nonlinear else args.nonlinear_resnet_images])]
    for title, key, mdl, xcal, xs_ in cases:
        if not len(xs_):
            continue
        name = f"{title}, 1-ohm, conversion+calibration, sinh a=2/V (Newton), 64x64 tiles"
        try:
            cfg = AnalogConfig(device=Sinh(a=2.0), rows_max=64, cols_max=64, n_range_samples=256)
            t0 = time.perf_counter()
            net = AnalogNetwork(mdl, cfg).prepare(xcal)
            prep = time.perf_counter() - t0
            if args.tile_profile:
                tile_profile(net, xs_)
            if args.nonlinear_only:  # the targets; with --compare-before, (before, now) x 3
                target = {"mnist": 0.010, "resnet": 0.100}[key]
                if args.compare_before:
                    pairs = []
                    for _ in range(3):
                        with _before():
                            a = _time_per_image(net, xs_, len(xs_), repeat=1)
                        pairs.append((a, _time_per_image(net, xs_, len(xs_), repeat=1)))
                    t_old, per = np.median(pairs, axis=0)
                    ratio = np.median([b / a for a, b in pairs])
                    print(f"  (pairs before / now ms/image: " + ", ".join(f"{1e3 * a:.1f} / {1e3 * b:.1f}" for a, b in pairs)
                          + f"; median ratio now/before {ratio:.3f})")
                    with _before():
                        ref = net.logits(xs_)
                    print(f"  (largest |logit| difference now - before: {np.abs(net.logits(xs_) - ref).max():.1e} "
                          f"of logits up to {np.abs(ref).max():.1f})")
                else:
                    per = _time_per_image(net, xs_, len(xs_))
                rows.append((name, prep, per, target))
            else:
                # interleaved passes: (linear, nonlinear) x 3, medians of both
                pairs = [(_time_per_image(lin[key, 64], xs_, len(xs_), repeat=1),
                          _time_per_image(net, xs_, len(xs_), repeat=1)) for _ in range(3)]
                t_lin, per = np.median(pairs, axis=0)
                rows.append((name, prep, per, 100 * t_lin))
                print(f"  (pairs linear / nonlinear ms/image: "
                      + ", ".join(f"{1e3 * a:.3f} / {1e3 * b:.1f}" for a, b in pairs) + ")")
        except Exception as e:  # report, do not hide, a missing or failing nonlinear path
            rows.append((f"{name}: FAILED ({type(e).__name__}: {e})", float("nan"), float("nan"), float("nan")))
        _print(rows[-1:], header=False)


def _print(rows, header=True):
    if header:
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"{'case':<92} {'prepare s':>10} {'ms/image':>10} {'target ms':>10} {'ratio':>7} "
              f"{'+cost ms/image':>14} {'cost %':>7}")
    for name, prep, per, target, *cost in rows:
        extra = f" {1e3 * cost[0]:14.3f} {cost[1]:+7.1%}" if cost else f" {'-':>14} {'-':>7}"
        print(f"{name:<92} {prep:10.2f} {1e3 * per:10.3f} {1e3 * target:10.2f} {per / target:7.2f}{extra}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
