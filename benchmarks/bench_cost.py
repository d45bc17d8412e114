#!/usr/bin/env python3
"""Cost accounting overhead on an analog ResNet-20 pass (issue 12 target: < 5 %).

ResNet-20 (Keras, CIFAR-10) on 1-ohm-wire crossbars, linear devices, conversion and
calibration (as in bench_cnn.py), 64x64 tiles and one crossbar per layer.  Per case:

* the one-time build of the read-power quadratic forms of every crossbar
  (``power_matrices``, cached on the crossbars);
* in interleaved passes over the same images: an analog forward pass (``net.logits``);
  the accounting alone on the crossbar inputs of that pass (``_layer_cost`` per layer,
  exact read energy of every input vector), the way ``network_cost`` does it now ("new":
  DAC voltages of the feature map once per pass, window Gram matrices from shifted
  products for stride-1 convolutions, stacked forms) and as it did before ("old":
  ``grams="gemm"``, DAC voltages of the vectors, a pass probe, one ``V^T V`` per row block);
  the sampled estimate (256 random vectors per layer, ``max_vectors=256``); and
  ``network_cost`` itself (its own forward pass plus the accounting).
* ratios: accounting over pass, median of the per-pass ratios (range in brackets), in wall
  time and in CPU time of the process (steadier on a loaded machine); ``cost - pass`` over
  ``pass`` is shown too, but on a loaded machine it is the difference of two noisy times.
* ``|new - old|``: the largest relative difference of a layer's read energy terms.

    python benchmarks/bench_cost.py [--data DIR] [--images 50] [--batch 50] [--repeat 5]
                                    [--tiles 64,none]
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

from xbarsolve.cnn import AnalogConfig, AnalogNetwork  # noqa: E402
from xbarsolve.cnn.datasets import cifar10_keras_input, data_dir, load_cifar10  # noqa: E402
from xbarsolve.cnn.models import load_keras_h5  # noqa: E402
from xbarsolve.cost import ISAAC, network_cost, power_matrices  # noqa: E402
from xbarsolve.cost.network import _layer_cost  # noqa: E402


def layer_inputs(net, X):
    """(name, layer, feature map, crossbar input vectors) of every analog layer in one pass."""
    seen = []

    def linear(nd, v):
        al = net.layers[nd.name]
        seen.append((nd.name, al, v, al.vectors(v)))
        return al(v)

    net.model.forward(X, linear=linear)
    return seen


class Clock:
    """Wall and process CPU time of a block, appended to two lists."""

    def __init__(self, wall: list, cpu: list, n: int):
        self.wall, self.cpu, self.n = wall, cpu, n

    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.wall.append((time.perf_counter() - self.t) / self.n)
        self.cpu.append((time.process_time() - self.c) / self.n)


def ratio(num, den):
    r = np.asarray(num) / np.asarray(den)
    return f"{np.median(r):6.1%} ({r.min():.1%}-{r.max():.1%})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tiles", default="64,none", help="comma-separated tile sizes; 'none' = one crossbar per layer")
    ap.add_argument("--bits", default="ideal",
                    help="comma-separated DAC/ADC resolutions, 'ideal' = ideal converters (the pass then folds each "
                         "layer into one matrix); e.g. 'ideal,8'")
    args = ap.parse_args(argv)
    d = data_dir(args.data)
    folder = d / "models" / "keras_resnet_cifar10"
    resnet = load_keras_h5(folder / "resnet20v1_cifar10.h5", name="resnet20")
    xc, _ = load_cifar10(d, n=1000)
    X = cifar10_keras_input(xc, np.load(folder / "cifar10_x_train_mean.npy"))
    Xb = X[:args.images]
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f} at start; {args.images} images in batches of {args.batch}, "
          f"{args.repeat} interleaved passes")
    head = (f"{'case':<30} {'xbars':>5} {'P build s':>9} | {'pass ms/img':>11} {'new ms/img':>10} | "
            f"{'new/pass wall':>22} {'new/pass CPU':>22} | {'old/pass wall':>22} {'old/pass CPU':>22} | "
            f"{'sampled/pass':>12} {'(cost-pass)/pass':>16} | {'|new-old|':>9} {'nJ/inference':>12} {'read %':>6}")
    print(head)
    print("-" * len(head))
    cases = [(t, b) for b in args.bits.split(",") for t in args.tiles.split(",")]
    for tile, bits in cases:
        size = None if tile == "none" else int(tile)
        nbits = None if bits == "ideal" else int(bits)
        net = AnalogNetwork(resnet, AnalogConfig(rows_max=size, cols_max=size, dac_bits=nbits, adc_bits=nbits)
                            ).prepare(X[-10:])
        xbars = [t.crossbar for al in net.layers.values() for t in al.tiles]
        t0 = time.perf_counter()
        for xb in xbars:
            power_matrices(xb)
        build = time.perf_counter() - t0
        net.logits(Xb[:2])
        network_cost(net, Xb[:2])  # warm-up
        batches = [Xb[i:i + args.batch] for i in range(0, len(Xb), args.batch)]
        inputs = [layer_inputs(net, b) for b in batches]
        rng = np.random.default_rng(0)
        samples = [[None if len(P) <= 256 else np.sort(rng.choice(len(P), 256, replace=False)) for *_, P in layers]
                   for layers in inputs]
        diff = 0.0
        for b, layers in zip(batches, inputs):
            for name, al, v, P in layers:
                new = _layer_cost(name, al, P, len(b), ISAAC, x=v).read_split_pJ
                old = _layer_cost(name, al, P, len(b), ISAAC, grams="gemm").read_split_pJ
                diff = max(diff, max(abs(a - o) / abs(o) for a, o in zip(new, old) if o))
        w = {k: [] for k in ("pass", "new", "old", "samp", "cost")}
        c = {k: [] for k in w}
        n = len(Xb)
        for _ in range(args.repeat):
            with Clock(w["pass"], c["pass"], n):
                for b in batches:
                    net.logits(b)
            with Clock(w["new"], c["new"], n):
                for b, layers in zip(batches, inputs):
                    for name, al, v, P in layers:
                        _layer_cost(name, al, P, len(b), ISAAC, x=v)
            with Clock(w["old"], c["old"], n):
                for b, layers in zip(batches, inputs):
                    for name, al, v, P in layers:
                        _layer_cost(name, al, P, len(b), ISAAC, grams="gemm")
            with Clock(w["samp"], c["samp"], n):
                for b, layers, samp in zip(batches, inputs, samples):
                    for (name, al, v, P), sm in zip(layers, samp):
                        _layer_cost(name, al, P, len(b), ISAAC, sm)
            with Clock(w["cost"], c["cost"], n):
                for b in batches:
                    cost = network_cost(net, b)
        p, a, tc = (float(np.median(w[k])) for k in ("pass", "new", "cost"))
        label = ("one crossbar per layer" if size is None else f"{size}x{size} tiles") + ("" if nbits is None else f", {nbits} bit")
        print(f"{label:<30} {len(xbars):5d} {build:9.2f} | {1e3 * p:11.2f} {1e3 * a:10.2f} | "
              f"{ratio(w['new'], w['pass']):>22} {ratio(c['new'], c['pass']):>22} | "
              f"{ratio(w['old'], w['pass']):>22} {ratio(c['old'], c['pass']):>22} | "
              f"{float(np.median(np.array(w['samp']) / np.array(w['pass']))):12.1%} {(tc - p) / p:16.1%} | "
              f"{diff:9.1e} {cost.energy_pJ * 1e-3:12.1f} {cost.total('read_pJ') / cost.energy_pJ:6.1%}", flush=True)
    print(f"# load {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
