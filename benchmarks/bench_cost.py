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

``--fresh``: ``network_cost`` on crossbars without cached forms, as the design-space job
(``xbarsolve/sweeps/dse.py::run_task``) calls it: 1-ohm wires, drivers and senses, 8-bit
converters, calibration on 100 (MNIST) or 50 (CIFAR-10) images, the read energy of
``--images`` images (the job's 5).  Cases: the MNIST CNN with one crossbar per layer, on
64x64 tiles, with the sparse (Toeplitz) mapping on 64x64 tiles, and ResNet-20 on 64x64
tiles.  In interleaved passes: the read energy as before the synthetic vectors
(``read="forms"``: forms built for crossbars that read at least as many vectors as they
have rows, a solve per vector for the others) and now (``read="auto"``: the synthetic
vectors of the inputs' Gram matrices, one full solve per crossbar); the forms are removed
from the crossbars before every pass.  Ratio old / new and the largest relative
difference of a layer's read energy terms, relative to the term and to the layer's read
energy.

``--quantizer``: the compiled quantizer (``xbarsolve/cnn/_quantization_kernels.py``)
against NumPy's rule (``quantization._COMPILED = False``) in the analog pass and in the
accounting, interleaved, on 64x64 tiles; both must give the same logits and read energies
bit for bit.

``--fields``: the full solve of r vectors (``xbarsolve.cost.fields.full_power``) by
conjugate gradients against the block factorization on fresh arrays, per crossbar, with
building the forms (``power_matrices``) beside; the measurement behind
``xbarsolve.cost.fields.prefer_iteration`` (q = min(m, n); a crossbar reading N vectors
solves ``min(m, N)`` of them).

    python benchmarks/bench_cost.py [--data DIR] [--images 50] [--batch 50] [--repeat 5]
                                    [--tiles 64,none]
    python benchmarks/bench_cost.py --fresh [--images 5] [--repeat 2] [--cases mnist-layer,...]
    python benchmarks/bench_cost.py --fields [--repeat 3]
    python benchmarks/bench_cost.py --quantizer [--bits 8,ideal] [--repeat 5]
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
from xbarsolve.cost.network import _FORMS_KEY, _layer_cost  # noqa: E402
from xbarsolve.cost.power import _CACHE_KEY  # noqa: E402

FRESH_CASES = {
    "mnist-layer": ("mnist_cnn4", dict()),
    "mnist-64": ("mnist_cnn4", dict(rows_max=64, cols_max=64)),
    "mnist-sparse-64": ("mnist_cnn4", dict(conv_mapping="sparse", rows_max=64, cols_max=64)),
    "resnet20-64": ("resnet20", dict(rows_max=64, cols_max=64)),
}


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


def excess(num, den):
    """``num / den - 1`` per pass: median (range)."""
    r = np.asarray(num) / np.asarray(den) - 1
    return f"{np.median(r):+6.1%} ({r.min():+.1%}..{r.max():+.1%})"


def times(num, den):
    r = np.asarray(num) / np.asarray(den)
    return f"{np.median(r):.2f}x ({r.min():.2f}-{r.max():.2f})"


def drop_forms(net) -> None:
    """Remove the read-power forms from every crossbar of ``net`` (T stays cached)."""
    for al in net.layers.values():
        for t in al.tiles:
            t.crossbar._cache.pop(_CACHE_KEY, None)
            t.crossbar._cache.pop(_FORMS_KEY, None)


def fresh(args) -> int:
    """``--fresh``: network_cost as the design-space job calls it, old against new."""
    from xbarsolve.sweeps.cnn import _load

    d = str(data_dir(args.data))
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f} at start; network_cost of {args.images} images, {args.repeat} interleaved "
          "passes, forms removed before each")
    head = (f"{'case':<18} {'xbars':>6} {'prepare s':>9} | {'old s':>8} {'new s':>8} {'old/new':>8} | "
            f"{'|new-old|/term':>14} {'/read':>8} {'read nJ':>10}")
    print(head)
    print("-" * len(head))
    for case in args.cases.split(","):
        network, kw = FRESH_CASES[case]
        model, x_cal, X, _ = _load(network, d, 100 if network == "mnist_cnn4" else 50)
        t0 = time.perf_counter()
        net = AnalogNetwork(model, AnalogConfig(r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0, **kw)).prepare(x_cal)
        prep = time.perf_counter() - t0
        net.set_quantization(dac_bits=8, adc_bits=8)
        Xc = X[:args.images]
        times = {"old": [], "new": []}
        costs = {}
        for _ in range(args.repeat):
            for key, read in (("old", "forms"), ("new", "auto")):
                drop_forms(net)
                t0 = time.perf_counter()
                costs[key] = network_cost(net, Xc, read=read)
                times[key].append(time.perf_counter() - t0)
        drop_forms(net)
        pairs = [(a, o, lo.read_pJ) for lo, ln in zip(costs["old"].layers, costs["new"].layers)
                 for a, o in zip(ln.read_split_pJ, lo.read_split_pJ) if o]
        diff = max(abs(a - o) / abs(o) for a, o, _ in pairs)
        diff_read = max(abs(a - o) / r for a, o, r in pairs)
        old, new = (float(np.median(times[k])) for k in ("old", "new"))
        n_xbars = sum(len(al.tiles) for al in net.layers.values())
        print(f"{case:<18} {n_xbars:6d} {prep:9.1f} | {old:8.2f} {new:8.2f} {old / new:8.1f} | {diff:14.1e} {diff_read:8.1e} "
              f"{costs['new'].total('read_pJ') * 1e-3:10.2f}", flush=True)
    print(f"# load {os.getloadavg()[0]:.2f} at the end")
    return 0


def quantizer(args) -> int:
    """``--quantizer``: the compiled quantizer against NumPy's, in the pass and in the
    accounting (interleaved; the logits and read energies must be equal bit for bit)."""
    from xbarsolve.cnn import quantization

    print(f"# {platform.node()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f} at start; ResNet-20, "
          f"{args.images} images in batches of {args.batch}, 64x64 tiles, {args.repeat} interleaved passes")
    head = (f"{'converters':<12} | {'pass numpy':>10} {'pass kernel':>11} {'numpy/kernel':>18} | {'acct numpy':>10} "
            f"{'acct kernel':>11} {'numpy/kernel':>18} | {'acct/pass now':>22} {'equal':>5}")
    print(head + "\n" + "-" * len(head))
    model, X = _resnet(args)[:2]
    for bits in args.bits.split(","):
        nbits = None if bits == "ideal" else int(bits)
        net = AnalogNetwork(model, AnalogConfig(rows_max=64, cols_max=64, dac_bits=nbits, adc_bits=nbits)).prepare(X[-10:])
        for al in net.layers.values():
            for t in al.tiles:
                power_matrices(t.crossbar)
        Xb = X[:args.images]
        batches = [Xb[i:i + args.batch] for i in range(0, len(Xb), args.batch)]
        inputs = [layer_inputs(net, b) for b in batches]
        w = {k: [] for k in ("pn", "pk", "an", "ak")}
        c = {k: [] for k in w}
        out = {}
        try:
            for _ in range(args.repeat):
                for flag, p, a in ((False, "pn", "an"), (True, "pk", "ak")):
                    quantization._COMPILED = flag
                    with Clock(w[p], c[p], len(Xb)):
                        out[p] = [net.logits(b) for b in batches]
                    with Clock(w[a], c[a], len(Xb)):
                        out[a] = [[_layer_cost(name, al, P, len(b), ISAAC, x=v).read_split_pJ for name, al, v, P in layers]
                                  for b, layers in zip(batches, inputs)]
        finally:
            quantization._COMPILED = True
        equal = (all(np.array_equal(a, b) for a, b in zip(out["pn"], out["pk"])) and out["an"] == out["ak"])
        med = {k: float(np.median(v)) for k, v in w.items()}
        print(f"{bits:<12} | {1e3 * med['pn']:10.2f} {1e3 * med['pk']:11.2f} {times(w['pn'], w['pk']):>18} | "
              f"{1e3 * med['an']:10.2f} {1e3 * med['ak']:11.2f} {times(w['an'], w['ak']):>18} | "
              f"{ratio(w['ak'], w['pk']):>22} {str(equal):>5}", flush=True)
    print("# ms per image, medians; ratio = numpy / kernel (median of the per-pass ratios, range in brackets)")
    print(f"# load {os.getloadavg()[0]:.2f} at the end")
    return 0


def _resnet(args):
    """ResNet-20 (Keras) and its CIFAR-10 inputs."""
    d = data_dir(args.data)
    folder = d / "models" / "keras_resnet_cifar10"
    resnet = load_keras_h5(folder / "resnet20v1_cifar10.h5", name="resnet20")
    xc, _ = load_cifar10(d, n=1000)
    return resnet, cifar10_keras_input(xc, np.load(folder / "cifar10_x_train_mean.npy"))


def fields(args) -> int:
    """``--fields``: full solve of r vectors by iteration and by block factorization."""
    from xbarsolve.cost.fields import full_power
    from xbarsolve.cost.power import one_blas_thread

    from xbarsolve import Crossbar

    rng = np.random.default_rng(0)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f} at start; ms per fresh crossbar (G uniform 1-100 uS), median of "
          f"{args.repeat}; BLAS on one thread")
    print(f"{'array':<10} {'wire ohm':>8} {'forms':>8} | " + " ".join(f"{'r=' + s:>17}" for s in ("4", "16", "q/2", "q", "m"))
          + "   (iteration / block)")
    with one_blas_thread():
        for m, n in ((64, 64), (128, 128), (576, 64)):
            for wire in (1.0, 2.5):
                def make():
                    return Crossbar(rng.uniform(1e-6, 1e-4, (m, n)), r_row=wire, r_col=wire, r_in=wire, r_out=wire)

                def clock(f):
                    out = []
                    for _ in range(args.repeat):
                        xb = make()
                        t0 = time.perf_counter()
                        f(xb)
                        out.append(time.perf_counter() - t0)
                    return 1e3 * float(np.median(out))

                full_power(make(), np.ones((2, m)), method="iterative")  # compile
                L = rng.uniform(0.0, 0.3, (m, m))
                q = min(m, n)
                row = [clock(power_matrices)]
                for r in (4, 16, q // 2, q, m):
                    row += [clock(lambda xb: full_power(xb, L[:r], method=method)) for method in ("iterative", "block")]
                print(f"{m}x{n:<7} {wire:8.1f} {row[0]:8.1f} | "
                      + " ".join(f"{row[i]:8.1f}/{row[i + 1]:<8.1f}" for i in range(1, len(row), 2)), flush=True)
    print(f"# load {os.getloadavg()[0]:.2f} at the end")
    return 0


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
    ap.add_argument("--fresh", action="store_true", help="network_cost on uncached crossbars, old against new")
    ap.add_argument("--cases", default=",".join(FRESH_CASES), help=f"--fresh cases, of {', '.join(FRESH_CASES)}")
    ap.add_argument("--fields", action="store_true", help="full solves: iteration against block factorization")
    ap.add_argument("--quantizer", action="store_true", help="compiled quantizer against NumPy's (pass, accounting)")
    args = ap.parse_args(argv)
    if args.fresh:
        return fresh(args)
    if args.fields:
        return fields(args)
    if args.quantizer:
        return quantizer(args)
    resnet, X = _resnet(args)
    Xb = X[:args.images]
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f} at start; {args.images} images in batches of {args.batch}, "
          f"{args.repeat} interleaved passes")
    head = (f"{'case':<30} {'xbars':>5} {'P build s':>9} | {'pass ms/img':>11} {'new ms/img':>10} | "
            f"{'new/pass wall':>22} {'new/pass CPU':>22} | {'old/pass wall':>22} {'old/pass CPU':>22} | "
            f"{'sampled/pass':>12} | {'network_cost/pass - 1, wall':>27} {'CPU':>24} | {'|new-old|':>9} {'nJ/inference':>12} {'read %':>6}")
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
                        _layer_cost(name, al, P, len(b), ISAAC, sm, x=v)
            with Clock(w["cost"], c["cost"], n):
                for b in batches:
                    cost = network_cost(net, b)
        p, a = (float(np.median(w[k])) for k in ("pass", "new"))
        label = ("one crossbar per layer" if size is None else f"{size}x{size} tiles") + ("" if nbits is None else f", {nbits} bit")
        print(f"{label:<30} {len(xbars):5d} {build:9.2f} | {1e3 * p:11.2f} {1e3 * a:10.2f} | "
              f"{ratio(w['new'], w['pass']):>22} {ratio(c['new'], c['pass']):>22} | "
              f"{ratio(w['old'], w['pass']):>22} {ratio(c['old'], c['pass']):>22} | "
              f"{float(np.median(np.array(w['samp']) / np.array(w['pass']))):12.1%} | "
              f"{excess(w['cost'], w['pass']):>27} {excess(c['cost'], c['pass']):>24} | "
              f"{diff:9.1e} {cost.energy_pJ * 1e-3:12.1f} {cost.total('read_pJ') / cost.energy_pJ:6.1%}", flush=True)
    print(f"# load {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
