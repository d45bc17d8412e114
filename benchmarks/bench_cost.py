#!/usr/bin/env python3
"""Cost accounting overhead on an analog ResNet-20 pass (issue 12 target: < 5 %).

ResNet-20 (Keras, CIFAR-10) on 1-ohm-wire crossbars, linear devices, conversion and
calibration (as in bench_cnn.py), one crossbar per layer and 64x64 tiles.  Per case:

* the one-time build of the read-power quadratic forms of every crossbar
  (``power_matrices``, cached on the crossbars);
* in interleaved passes over the same images: an analog forward pass (``net.logits``),
  ``network_cost`` (its own forward pass plus the accounting), and the accounting alone
  (per layer: the DAC voltages, one Gram matrix ``V^T V`` per row block and input pass, the
  quadratic forms' inner products, the counts) on the crossbar inputs of one pass.  The
  overhead is the accounting's time over the pass's (median of the per-pass ratios, with
  their range); "sampled" is the same with the read energy estimated from 256 random input
  vectors per layer (``network_cost(..., max_vectors=256)``), and its standard error; ``cost - pass`` over ``pass`` is shown too, but on a loaded machine it is the
  difference of two noisy times.

    python benchmarks/bench_cost.py [--data DIR] [--images 50] [--batch 50] [--repeat 3]
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


def _layer_inputs(net, X):
    """(layer, crossbar input vectors) of every analog layer in one forward pass."""
    seen = []

    def linear(nd, v):
        al = net.layers[nd.name]
        P = al.vectors(v)
        seen.append((nd.name, al, P))
        return al.assemble(al.products(P), v)

    net.model.forward(X, linear=linear)
    return seen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tiles", default="none,64", help="comma-separated tile sizes; 'none' = one crossbar per layer")
    args = ap.parse_args(argv)
    d = data_dir(args.data)
    folder = d / "models" / "keras_resnet_cifar10"
    resnet = load_keras_h5(folder / "resnet20v1_cifar10.h5", name="resnet20")
    xc, _ = load_cifar10(d, n=1000)
    X = cifar10_keras_input(xc, np.load(folder / "cifar10_x_train_mean.npy"))
    Xb = X[:args.images]
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f}; {args.images} images in batches of {args.batch}, {args.repeat} interleaved passes")
    head = (f"{'case':<24} {'xbars':>5} {'P build s':>9} | {'pass ms/img':>11} {'cost ms/img':>11} {'acct ms/img':>11} "
            f"{'acct/pass':>9} {'range':>13} {'(cost-pass)/pass':>16} | {'sampled/pass':>12} {'read stderr':>11} | "
            f"{'nJ/inference':>12} {'read %':>6}")
    print(head)
    print("-" * len(head))
    for tile in args.tiles.split(","):
        size = None if tile == "none" else int(tile)
        net = AnalogNetwork(resnet, AnalogConfig(rows_max=size, cols_max=size)).prepare(X[-10:])
        xbars = [t.crossbar for al in net.layers.values() for t in al.tiles]
        t0 = time.perf_counter()
        for xb in xbars:
            power_matrices(xb)
        build = time.perf_counter() - t0
        net.logits(Xb[:2])
        network_cost(net, Xb[:2])  # warm-up
        batches = [Xb[i:i + args.batch] for i in range(0, len(Xb), args.batch)]
        inputs = [_layer_inputs(net, b) for b in batches]
        rng = np.random.default_rng(0)
        samples = [[None if len(P) <= 256 else np.sort(rng.choice(len(P), 256, replace=False)) for _, _, P in layers]
                   for layers in inputs]
        t_pass, t_cost, t_acct, t_samp = [], [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for b in batches:
                net.logits(b)
            t_pass.append((time.perf_counter() - t0) / len(Xb))
            t0 = time.perf_counter()
            for b, layers in zip(batches, inputs):
                for name, al, P in layers:
                    _layer_cost(name, al, P, len(b), ISAAC)
            t_acct.append((time.perf_counter() - t0) / len(Xb))
            t0 = time.perf_counter()
            for b, layers, samp in zip(batches, inputs, samples):
                for (name, al, P), sm in zip(layers, samp):
                    _layer_cost(name, al, P, len(b), ISAAC, sm)
            t_samp.append((time.perf_counter() - t0) / len(Xb))
            t0 = time.perf_counter()
            for b in batches:
                cost = network_cost(net, b)
            t_cost.append((time.perf_counter() - t0) / len(Xb))
        p, c, a = (float(np.median(t)) for t in (t_pass, t_cost, t_acct))
        ratios = np.array(t_acct) / np.array(t_pass)
        sampled = float(np.median(np.array(t_samp) / np.array(t_pass)))
        est = network_cost(net, batches[0], max_vectors=256)
        label = "one crossbar per layer" if size is None else f"{size}x{size} tiles"
        print(f"{label:<24} {len(xbars):5d} {build:9.2f} | {1e3 * p:11.2f} {1e3 * c:11.2f} {1e3 * a:11.2f} "
              f"{np.median(ratios):9.1%} {f'{ratios.min():.1%}-{ratios.max():.1%}':>13} {(c - p) / p:16.1%} | {sampled:12.1%} "
              f"{est.read_stderr_pJ / est.total('read_pJ'):11.2%} | "
              f"{cost.energy_pJ * 1e-3:12.1f} {cost.total('read_pJ') / cost.energy_pJ:6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
