#!/usr/bin/env python3
"""Parasitic-aware training of an MNIST MLP on whole-layer crossbars (issue 10, item 5).

An MLP 784-H-10 (default H = 256) is trained in software, then put on one crossbar per
layer (784 x H and H x 10 cells, differential pairs by default) with wire resistance
``--r-wire`` (ohm, rows and columns; drivers and sense 1 ohm), and evaluated on the same
test images as:

1. ``software``: the digital model;
2. ``plain``: plain mapping (no conversion, no calibration);
3. ``conversion+calibration``: ``G -> G'`` and per-column calibration;
4. ``finetune-exact``: the plain-mapped model fine-tuned through the exact circuit
   (``xbarsolve.torch``: re-programming and adjoint gradients every step);
5. ``finetune-approx``: the plain-mapped model fine-tuned through a cheap approximate
   IR-drop model, ``T ~ G * K`` with the per-cell attenuation ``K = T(G0) / G0`` of the
   initial programming frozen (no solve per step), then evaluated on the exact circuit.

Results go to ``--out`` (JSON, written atomically after every stage; a rerun resumes,
skipping the stages already there).  Prints the table.

    python scripts/train_torch_mlp.py --out out/torch_mlp.json [--data DIR] [--r-wire 2.5]
        [--hidden 256] [--test-images 1000] [--steps 30 | --finetune-epochs 1] [--batch 64]
        [--checkpoint-every 10] [--threads 1]

Fine-tuning checkpoints (``OUT.exact.pt``, ``OUT.approx.pt``) let an interrupted run resume.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from xbarsolve.cnn import AnalogConfig  # noqa: E402
from xbarsolve.cnn.datasets import data_dir, load_mnist  # noqa: E402
from xbarsolve.torch import convert  # noqa: E402
from xbarsolve.torch._ops import TensorTile, TorchOps, conductance_surrogate  # noqa: E402


class ApproxOps(TorchOps):
    """The engine's pipeline with the approximate array ``I = V @ (G * K)``."""

    @staticmethod
    def currents(tile, V):
        return V @ (tile.G * tile.K)


def _approx_forward(analog: nn.Sequential, x: torch.Tensor, K: dict) -> torch.Tensor:
    """The converted MLP's forward with every tile's transfer matrix replaced by ``G * K``
    (``G`` mapped from the current weights, differentiable; no circuit solve)."""
    y = x
    for i, layer in enumerate(analog):
        if not hasattr(layer, "engines"):
            y = layer(y)
            continue
        eng = layer.engines[0]
        M = layer.matrices()[0].to(torch.float64)
        tiles = []
        for k, (t, mapped) in enumerate(zip(eng.tiles, eng.remap(M.detach().numpy()))):
            G = torch.as_tensor(mapped.G) + conductance_surrogate(mapped, M[t.rows, t.cols])
            tile = TensorTile(t.rows, t.cols, mapped, t.crossbar, G, None)
            tile.K = K[i, k]
            tiles.append(tile)
        out = eng.products(y.reshape(-1, M.shape[0]).to(torch.float64), ops=ApproxOps, tiles=tiles)
        y = out + layer.bias.to(torch.float64)
    return y


def _save(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)


def program(model: nn.Sequential) -> None:
    """Program the exact circuit of every analog layer with its current weights."""
    with torch.no_grad():
        for layer in model:
            if hasattr(layer, "engines"):
                layer._reprogram(0, layer.matrices()[0].to(torch.float64).numpy())


def accuracy(model, x, y, batch=250) -> float:
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((pred == y).double().mean())


def train_software(x, y, hidden, epochs, seed) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def finetune(forward, model, x, y, steps, batch, lr, seed, ckpt: Path | None = None, every: int = 10,
             log: str = "") -> tuple[list[float], float]:
    """Adam on ``model``'s parameters for ``steps`` batches of ``batch`` training images,
    drawn epoch by epoch without replacement (epoch ``e``: the permutation of seed
    ``seed + e``, so a resumed run draws the same batches).  With ``ckpt`` the parameters,
    the optimizer, the losses and the time spent are saved (atomically) every ``every``
    steps and a run resumes from them.  Returns the losses and the mean seconds per step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses, spent, start = [], 0.0, 0
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["opt"])
        losses, spent, start = state["losses"], state["seconds"], state["step"]
    per_epoch = len(x) // batch
    perm, perm_epoch = None, -1
    t0 = time.perf_counter()
    for step in range(start, steps):
        epoch, i = divmod(step, per_epoch)
        if epoch != perm_epoch:
            perm, perm_epoch = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + epoch)), epoch
        idx = perm[i * batch:(i + 1) * batch]
        opt.zero_grad()
        loss = nn.functional.cross_entropy(forward(x[idx]), y[idx])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if ckpt is not None and (done % every == 0 or done == steps):
            now = time.perf_counter()
            spent, t0 = spent + now - t0, now
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": {k: v for k, v in model.state_dict().items() if k in dict(model.named_parameters())},
                        "opt": opt.state_dict(), "losses": losses, "seconds": spent, "step": done}, tmp)
            os.replace(tmp, ckpt)
            print(f"{log} step {done}/{steps}  loss {np.mean(losses[-every:]):.4f}  {spent / done:.2f} s/step",
                  flush=True)
    if ckpt is None:
        spent += time.perf_counter() - t0
    return losses, spent / max(len(losses), 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="results JSON (resumed when it exists)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--r-wire", type=float, default=2.5, help="row and column wire segment resistance (ohm)")
    ap.add_argument("--scheme", choices=("differential", "shift"), default="differential")
    ap.add_argument("--epochs", type=int, default=2, help="software training epochs")
    ap.add_argument("--test-images", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=30, help="fine-tuning steps (unless --finetune-epochs)")
    ap.add_argument("--finetune-epochs", type=float, default=None,
                    help="fine-tuning length in epochs of the 60000 training images (sets --steps)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--checkpoint-every", type=int, default=10, help="fine-tuning steps between checkpoints")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.finetune_epochs is not None:
        args.steps = int(round(args.finetune_epochs * 60000 / args.batch))
    root = data_dir(args.data)
    xtr, ytr = load_mnist(root, "train")
    xte, yte = load_mnist(root, "test")
    xtr = torch.as_tensor(xtr.reshape(len(xtr), -1) / 255.0)
    ytr = torch.as_tensor(ytr.astype(np.int64))
    xte = torch.as_tensor(xte[:args.test_images].reshape(-1, 784) / 255.0)
    yte = torch.as_tensor(yte[:args.test_images].astype(np.int64))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["args"] = {k: str(v) for k, v in vars(args).items()}
    ckpt = args.out.with_suffix(".software.pt")
    if ckpt.is_file():
        software = nn.Sequential(nn.Linear(784, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10)).double()
        software.load_state_dict(torch.load(ckpt, weights_only=True))
    else:
        software = train_software(xtr, ytr, args.hidden, args.epochs, args.seed)
        torch.save(software.state_dict(), ckpt)
    circuit = dict(r_row=args.r_wire, r_col=args.r_wire, r_in=1.0, r_out=1.0, scheme=args.scheme)
    x_cal = xtr[-256:]

    def stage(name, fn):
        if name not in results:
            t0 = time.perf_counter()
            results[name] = fn()
            results[name]["seconds"] = time.perf_counter() - t0
            _save(args.out, results)
        print(f"{name:<24} accuracy {100 * results[name]['accuracy']:6.2f} %  "
              + ", ".join(f"{k} {v:.4g}" for k, v in results[name].items() if k not in ("accuracy", "losses")), flush=True)

    stage("software", lambda: {"accuracy": accuracy(software, xte, yte)})
    plain_cfg = AnalogConfig(conversion=False, calibration=False, **circuit)

    def plain():
        return {"accuracy": accuracy(convert(software, plain_cfg), xte, yte)}

    def converted():
        m = convert(software, AnalogConfig(conversion=True, calibration=True, **circuit), calibration_data=x_cal)
        clipped = sum(layer.n_clipped for layer in m if hasattr(layer, "engines"))
        cells = sum(t.crossbar.G.size for layer in m if hasattr(layer, "engines") for t in layer.engines[0].tiles)
        return {"accuracy": accuracy(m, xte, yte), "clipped_share": clipped / cells}

    def exact():
        m = convert(software, plain_cfg).train()
        losses, per_step = finetune(m, m, xtr, ytr, args.steps, args.batch, args.lr, args.seed,
                                    args.out.with_suffix(".exact.pt"), args.checkpoint_every, "finetune-exact")
        program(m)
        return {"accuracy": accuracy(m.eval(), xte, yte), "s_per_step": per_step, "losses": losses}

    def approx():
        m = convert(software, plain_cfg)
        K = {(i, k): torch.as_tensor(np.asarray(t.T) / np.asarray(t.crossbar.G))
             for i, layer in enumerate(m) if hasattr(layer, "engines") for k, t in enumerate(layer.engines[0].tiles)}
        losses, per_step = finetune(lambda xb: _approx_forward(m, xb, K), m, xtr, ytr, args.steps, args.batch,
                                    args.lr, args.seed, args.out.with_suffix(".approx.pt"), args.checkpoint_every,
                                    "finetune-approx")
        program(m)
        return {"accuracy": accuracy(m.eval(), xte, yte), "s_per_step": per_step, "losses": losses}

    stage("plain", plain)
    stage("conversion+calibration", converted)
    stage("finetune-approx", approx)  # cheap: in the results before the long exact run
    stage("finetune-exact", exact)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
