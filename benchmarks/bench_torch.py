#!/usr/bin/env python3
"""PyTorch path speed (issue 10 targets).

* The PyTorch CIFAR ResNet-20 converted with ``xbarsolve.torch.convert`` (1-ohm wires,
  64x64 tiles, linear devices, conversion + calibration) against the NumPy engine
  (``AnalogNetwork(load_torch_resnet(...))``, same config, same images): ms per image of
  one analog forward pass, in passes interleaved with the NumPy engine's (the shared
  machine's speed drifts, so only interleaved times make a ratio; targets: torch within
  1.5x of NumPy and <= 10 ms per image), torch on its default intra-op threads and on one
  thread (on a busy 2-core machine two threads contend with the other jobs), both with the
  engine's fold (one GEMM per layer, as the NumPy engine), and on one thread through the
  tile-by-tile pipeline (the training forward's, and the evaluation path before the fold);
  the one-time conversion (``convert``) and preparation (``prepare``) times; the load
  average before and after.  With a CUDA device, the converted model on it too.
* One training step (forward, backward through the circuit, Adam) of the MNIST-style MLP
  784-H-10 on whole-layer differential crossbars (784 x 2H and H x 20 cells, 1-ohm wires,
  no conversion), random inputs: seconds per batch and the forward's share
  (re-programming: the elimination that gives ``T`` and serves the backward), on the
  current route (kept nested dissection: no solve per vector in the backward) and, for
  small H, interleaved with the former route (block factorization for ``T``, a second
  factorization of the transposed array and full node voltages in the backward).

    python benchmarks/bench_torch.py [--data DIR] [--images 50] [--repeat 3]
        [--mlp-hidden 64 256] [--mlp-batch 64 256] [--old-up-to 64] [--skip-resnet] [--skip-mlp]
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
from xbarsolve.torch import AnalogModule, convert  # noqa: E402
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

    engines = [e for m in model.modules() if isinstance(m, AnalogModule) for e in m.engines]

    def loop_fn(x):
        for e in engines:
            e._serial_tiles = True  # the tile-by-tile pipeline
        try:
            return torch_fn(x)
        finally:
            for e in engines:
                e._serial_tiles = False

    net.logits(X[:2])
    torch_fn(Xt[:2])
    rows = [("NumPy AnalogNetwork.prepare (10 cal. images)", t_prepare, "s"),
            ("xbarsolve.torch.convert (10 cal. images)", t_convert, "s")]
    threads = torch.get_num_threads()
    t_np, t_th, t_loop = [], {threads: [], 1: []}, []
    for _ in range(repeat):  # NumPy, torch on its default threads, on one thread, the loop, interleaved
        t_np.append(_pass(net.logits, X, 50))
        for n in t_th:
            torch.set_num_threads(n)
            t_th[n].append(_pass(torch_fn, Xt, 50))
        torch.set_num_threads(1)
        t_loop.append(_pass(loop_fn, Xt, 50))
        torch.set_num_threads(threads)
    rows.append(("ResNet-20 NumPy engine, ms/image (median)", 1e3 * float(np.median(t_np)), "ms"))
    for n, t in t_th.items():
        ratios = [b / a for a, b in zip(t_np, t)]
        rows += [(f"ResNet-20 torch CPU, {n} thread(s), ms/image (median)", 1e3 * float(np.median(t)), "ms"),
                 (f"  torch ({n} thread(s)) / NumPy, per interleaved pass", float(np.median(ratios)),
                  "x  (" + ", ".join(f"{r:.2f}" for r in ratios) + ")")]
    ratios = [b / a for a, b in zip(t_np, t_loop)]
    rows += [("ResNet-20 torch CPU tile loop, 1 thread, ms/image (median)", 1e3 * float(np.median(t_loop)), "ms"),
             ("  torch tile loop (1 thread) / NumPy, per interleaved pass", float(np.median(ratios)),
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


def _former_route():
    """Patch the torch path back to the former training route: re-programming factorizes the
    array (block elimination) and builds ``T`` from it; the backward factorizes the
    transposed array for the adjoint and solves full node voltages of both."""
    import xbarsolve.torch._ops as ops
    import xbarsolve.torch.modules as modules
    from xbarsolve.solve import factorize
    from xbarsolve.torch._adjoint import crossbar_vjp_transposed

    def state(xbar):
        f = factorize(xbar)
        return f, f.transfer_matrix()

    saved = (modules.adjoint_state, ops.crossbar_vjp)
    modules.adjoint_state, ops.crossbar_vjp = state, crossbar_vjp_transposed

    def restore():
        modules.adjoint_state, ops.crossbar_vjp = saved

    return restore


def mlp_step(repeat: int, hiddens: list[int], old_up_to: int, batches: list[int]) -> list[tuple[str, float, str]]:
    """One training step (forward with re-programming, backward through the circuit, Adam)
    of the MLP 784-H-10 on whole-layer differential crossbars (784 x 2H and H x 20 cells,
    1-ohm wires, no conversion), new route against the former one in interleaved passes
    for H <= ``old_up_to`` (the former route's block factors hold 3 x 784 x (2H)^2 floats,
    and as many again for the transposed array: a factorization and full solve of the
    784 x 512 array alone peaked at 6.7 GB, so H = 256 is left out by default)."""
    nn = torch.nn
    rows = []
    for hidden in hiddens:
        for batch in batches:
            torch.manual_seed(0)
            digital = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10)).double()
            model = convert(digital, AnalogConfig(conversion=False, calibration=False, scheme="differential")).train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-5)
            x = torch.rand(batch, 784, dtype=torch.float64)
            y = torch.randint(0, 10, (batch,))

            def step():
                t0 = time.perf_counter()
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                t1 = time.perf_counter()
                loss.backward()
                opt.step()
                return time.perf_counter() - t0, t1 - t0

            routes = {"new": lambda: (lambda: None)}
            if hidden <= old_up_to:
                routes["former"] = _former_route
            times = {r: [] for r in routes}
            step()
            for _ in range(repeat):
                for name, patch in routes.items():
                    restore = patch()
                    try:
                        times[name].append(step())
                    finally:
                        restore()
            label = f"MLP 784-{hidden}-10 (784x{2 * hidden} cells) step, batch {batch}"
            for name, t in times.items():
                rows.append((f"{label}, {name} route, s/batch (median)", float(np.median([a for a, _ in t])), "s"))
                rows.append((f"  of which forward (re-programming, T), s", float(np.median([b for _, b in t])), "s"))
            if "former" in times:
                ratios = [a[0] / b[0] for a, b in zip(times["former"], times["new"])]
                rows.append(("  former / new, per interleaved pass", float(np.median(ratios)),
                             "x  (" + ", ".join(f"{r:.2f}" for r in ratios) + ")"))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="reference data folder (default $XBARSOLVE_DATA)")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mlp-hidden", type=int, nargs="+", default=[64, 256], help="hidden sizes of the training-step rows")
    ap.add_argument("--mlp-batch", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--old-up-to", type=int, default=64,
                    help="largest hidden size timed on the former route too (its memory grows as H^2)")
    ap.add_argument("--skip-resnet", action="store_true", help="training-step rows only")
    ap.add_argument("--skip-mlp", action="store_true", help="ResNet-20 rows only")
    args = ap.parse_args(argv)
    root = Path(args.data) if args.data else data_dir()
    print(f"# bench_torch: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads, CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    load = [f"{v:.1f}" for v in os.getloadavg()]
    rows = [] if args.skip_resnet else resnet(root, args.images, args.repeat)
    if not args.skip_mlp:
        rows += mlp_step(args.repeat, args.mlp_hidden, args.old_up_to, args.mlp_batch)
    print(f"# load average (1, 5, 15 min): before {', '.join(load)}; "
          f"after {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    w = max(len(r[0]) for r in rows)
    for name, value, unit in rows:
        print(f"{name:<{w}}  {value:10.3f} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
