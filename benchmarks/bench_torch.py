#!/usr/bin/env python3
"""PyTorch path speed (issue 10 targets).

* The PyTorch CIFAR ResNet-20 converted with ``xbarsolve.torch.convert`` (1-ohm wires,
  64x64 tiles, linear devices, conversion + calibration) against the NumPy engine
  (``AnalogNetwork(load_torch_resnet(...))``, same config, same images): ms per image of
  one analog forward pass, in passes interleaved with the NumPy engine's (the shared
  machine's speed drifts, so only interleaved times make a ratio; targets: torch within
  1.5x of NumPy and <= 10 ms per image), torch on its default intra-op threads and on one
  thread (on a busy 2-core machine two threads contend with the other jobs); the one-time conversion (``convert``) and
  preparation (``prepare``) times.  With a CUDA device, the converted model on it too.
* One training step (forward, backward through the circuit, Adam) of the MNIST-style MLP
  784-256-10 on whole-layer crossbars (784 x 256 and 256 x 10, 1-ohm wires, no
  conversion), batch 64 random inputs: ms per batch, and the share of it spent
  re-programming (new transfer matrices).

    python benchmarks/bench_torch.py [--data DIR] [--images 50] [--repeat 3]
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

import torch  # noqa: E402

from xbarsolve.cnn import AnalogConfig, AnalogNetwork, load_torch_resnet  # noqa: E402
from xbarsolve.cnn.datasets import cifar10_torch_input, data_dir, load_cifar10  # noqa: E402
from xbarsolve.torch import convert  # noqa: E402
from xbarsolve.torch.models import load_cifar_resnet  # noqa: E402


def _pass(fn, X, batch):
    t0 = time.perf_counter()
    for i in range(0, len(X), batch):
        fn(X[i:i + batch])
    return (time.perf_counter() - t0) / len(X)


def resnet(root: Path, n_images: int, repeat: int) -> list[tuple[str, float, str]]:
    ckpt = root / "models" / "torch_resnet_cifar10" / "resnet20-12fca82f.th"
    images, _ = load_cifar10(root, n=n_images + 10)
    X = cifar10_torch_input(images)
    Xt = torch.as_tensor(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
    X_cal, Xt_cal, X, Xt = X[-10:], Xt[-10:], X[:n_images], Xt[:n_images]
    cfg = AnalogConfig(rows_max=64, cols_max=64)
    t0 = time.perf_counter()
    net = AnalogNetwork(load_torch_resnet(ckpt), cfg).prepare(X_cal)
    t_prepare = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = convert(load_cifar_resnet(ckpt).double(), cfg, calibration_data=Xt_cal)
    t_convert = time.perf_counter() - t0

    def torch_fn(x, m=model):
        with torch.no_grad():
            return m(x)

    net.logits(X[:2])
    torch_fn(Xt[:2])
    rows = [("NumPy AnalogNetwork.prepare (10 cal. images)", t_prepare, "s"),
            ("xbarsolve.torch.convert (10 cal. images)", t_convert, "s")]
    threads = torch.get_num_threads()
    t_np, t_th = [], {threads: [], 1: []}
    for _ in range(repeat):  # NumPy, torch on its default threads, torch on one thread, interleaved
        t_np.append(_pass(net.logits, X, 50))
        for n in t_th:
            torch.set_num_threads(n)
            t_th[n].append(_pass(torch_fn, Xt, 50))
        torch.set_num_threads(threads)
    rows.append(("ResNet-20 NumPy engine, ms/image (median)", 1e3 * float(np.median(t_np)), "ms"))
    for n, t in t_th.items():
        ratios = [b / a for a, b in zip(t_np, t)]
        rows += [(f"ResNet-20 torch CPU, {n} thread(s), ms/image (median)", 1e3 * float(np.median(t)), "ms"),
                 (f"  torch ({n} thread(s)) / NumPy, per interleaved pass", float(np.median(ratios)),
                  "x  (" + ", ".join(f"{r:.2f}" for r in ratios) + ")")]
    if torch.cuda.is_available():
        gpu = model.to("cuda")
        Xg = Xt.to("cuda")

        def gpu_fn(x):
            with torch.no_grad():
                y = gpu(x)
            torch.cuda.synchronize()
            return y

        gpu_fn(Xg[:2])
        t = [_pass(gpu_fn, Xg, 50) for _ in range(repeat)]
        rows.append((f"ResNet-20 torch {torch.cuda.get_device_name()}, ms/image", 1e3 * float(np.median(t)), "ms"))
    return rows


def mlp_step(repeat: int) -> list[tuple[str, float, str]]:
    nn = torch.nn
    torch.manual_seed(0)
    digital = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).double()
    model = convert(digital, AnalogConfig(conversion=False, calibration=False)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(64, 784, dtype=torch.float64)
    y = torch.randint(0, 10, (64,))

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    step()
    t_step = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        t_step.append(time.perf_counter() - t0)
    t_prog = []
    for _ in range(repeat):  # the re-programming alone (maps, new transfer matrices)
        t0 = time.perf_counter()
        with torch.no_grad():
            for layer in (model[0], model[2]):
                layer._reprogram(0, layer.matrices()[0].detach().numpy())
        t_prog.append(time.perf_counter() - t0)
    return [("MLP 784-256-10 training step, batch 64, ms/batch", 1e3 * float(np.median(t_step)), "ms"),
            ("  of which re-programming (new T), ms", 1e3 * float(np.median(t_prog)), "ms")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="reference data folder (default $XBARSOLVE_DATA)")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    root = Path(args.data) if args.data else data_dir()
    print(f"# bench_torch: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads, CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    rows = resnet(root, args.images, args.repeat) + mlp_step(args.repeat)
    w = max(len(r[0]) for r in rows)
    for name, value, unit in rows:
        print(f"{name:<{w}}  {value:10.3f} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
