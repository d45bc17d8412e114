#!/usr/bin/env python3
"""Train the paper's 4-layer MNIST CNN in plain NumPy and write its weights.

Architecture (Zhang & Hu, Sec. 4.3; Caffe's LeNet with ReLUs after every hidden layer so
that every crossbar input is non-negative):

    conv 5x5x1x20 (valid) -> ReLU -> maxpool 2x2
    conv 5x5x20x50 (valid) -> ReLU -> maxpool 2x2
    conv 4x4x50x500 (valid, i.e. fully connected 800 -> 500) -> ReLU
    conv 1x1x500x10 -> softmax

Input: MNIST pixels / 255 in [0, 1], shape (28, 28, 1).  Adam, mini-batches of 64,
``--epochs`` passes over the 60,000 training images, fixed seed.  The software test
accuracy on the 10,000 test images is stored in the weights file (``test_accuracy``)
and printed.

    python scripts/train_mnist_cnn.py [--data DIR] [--epochs 3] [--out xbarsolve/cnn/weights/mnist_cnn4.npz]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xbarsolve.cnn.datasets import load_mnist, mnist_input  # noqa: E402

SHAPES = {"conv1": (5, 5, 1, 20), "conv2": (5, 5, 20, 50), "conv3": (4, 4, 50, 500), "conv4": (1, 1, 500, 10)}


def im2col(x, k):
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # N,Ho,Wo,C,k,k
    N, Ho, Wo, C = win.shape[:4]
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(N, Ho, Wo, k * k * C)


def col2im(dcols, x_shape, k):
    N, H, W, C = x_shape
    Ho, Wo = H - k + 1, W - k + 1
    d = dcols.reshape(N, Ho, Wo, k, k, C)
    dx = np.zeros(x_shape, dtype=dcols.dtype)
    for a in range(k):
        for b in range(k):
            dx[:, a:a + Ho, b:b + Wo, :] += d[:, :, :, a, b, :]
    return dx


def maxpool(x):
    N, H, W, C = x.shape
    r = x.reshape(N, H // 2, 2, W // 2, 2, C)
    y = r.max(axis=(2, 4))
    mask = r == y[:, :, None, :, None, :]
    mask = mask / mask.sum(axis=(2, 4), keepdims=True)
    return y, mask


def maxpool_back(dy, mask):
    N, h, _, w, _, C = mask.shape
    return (mask * dy[:, :, None, :, None, :]).reshape(N, h * 2, w * 2, C)


def forward(p, x, train=False):
    cache = {}
    c1 = im2col(x, 5)
    z1 = c1 @ p["conv1_w"].reshape(-1, 20) + p["conv1_b"]
    a1 = np.maximum(z1, 0)
    p1, m1 = maxpool(a1)
    c2 = im2col(p1, 5)
    z2 = c2 @ p["conv2_w"].reshape(-1, 50) + p["conv2_b"]
    a2 = np.maximum(z2, 0)
    p2, m2 = maxpool(a2)
    f = p2.reshape(len(x), -1)
    z3 = f @ p["conv3_w"].reshape(-1, 500) + p["conv3_b"]
    a3 = np.maximum(z3, 0)
    z4 = a3 @ p["conv4_w"].reshape(-1, 10) + p["conv4_b"]
    if train:
        cache = dict(c1=c1, z1=z1, m1=m1, p1=p1, c2=c2, z2=z2, m2=m2, f=f, z3=z3, a3=a3)
    return z4, cache


def backward(p, logits, y, cache):
    n = len(y)
    z = logits - logits.max(1, keepdims=True)
    prob = np.exp(z)
    prob /= prob.sum(1, keepdims=True)
    loss = -np.log(prob[np.arange(n), y] + 1e-12).mean()
    d4 = prob
    d4[np.arange(n), y] -= 1
    d4 /= n
    g = {}
    g["conv4_w"] = (cache["a3"].T @ d4).reshape(SHAPES["conv4"])
    g["conv4_b"] = d4.sum(0)
    d3 = (d4 @ p["conv4_w"].reshape(-1, 10).T) * (cache["z3"] > 0)
    g["conv3_w"] = (cache["f"].T @ d3).reshape(SHAPES["conv3"])
    g["conv3_b"] = d3.sum(0)
    df = d3 @ p["conv3_w"].reshape(-1, 500).T
    dp2 = df.reshape(n, 4, 4, 50)
    da2 = maxpool_back(dp2, cache["m2"]) * (cache["z2"] > 0)
    d2 = da2.reshape(-1, 50)
    g["conv2_w"] = (cache["c2"].reshape(-1, 500).T @ d2).reshape(SHAPES["conv2"])
    g["conv2_b"] = d2.sum(0)
    dc2 = (d2 @ p["conv2_w"].reshape(-1, 50).T).reshape(cache["c2"].shape)
    dp1 = col2im(dc2, cache["p1"].shape, 5)
    da1 = maxpool_back(dp1, cache["m1"]) * (cache["z1"] > 0)
    d1 = da1.reshape(-1, 20)
    g["conv1_w"] = (cache["c1"].reshape(-1, 25).T @ d1).reshape(SHAPES["conv1"])
    g["conv1_b"] = d1.sum(0)
    return loss, g


def accuracy(p, x, y, bs=500):
    correct = 0
    for i in range(0, len(x), bs):
        logits, _ = forward(p, x[i:i + bs])
        correct += int((logits.argmax(1) == y[i:i + bs]).sum())
    return correct / len(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="data folder (default $XBARSOLVE_DATA; `xbarsolve data download` fetches it)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "xbarsolve" / "cnn" / "weights" / "mnist_cnn4.npz"))
    args = ap.parse_args(argv)

    xtr, ytr = load_mnist(args.data, "train")
    xte, yte = load_mnist(args.data, "test")
    xtr = mnist_input(xtr).astype(np.float32)
    xte = mnist_input(xte).astype(np.float32)
    ytr = ytr.astype(np.int64)
    yte = yte.astype(np.int64)

    rng = np.random.default_rng(args.seed)
    p = {}
    for name, shp in SHAPES.items():
        fan_in = shp[0] * shp[1] * shp[2]
        p[f"{name}_w"] = (rng.standard_normal(shp) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        p[f"{name}_b"] = np.zeros(shp[3], dtype=np.float32)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    t0 = time.time()
    for epoch in range(args.epochs):
        order = rng.permutation(len(xtr))
        lr = args.lr * (0.5 ** epoch)
        for it, i in enumerate(range(0, len(order), args.batch)):
            idx = order[i:i + args.batch]
            logits, cache = forward(p, xtr[idx], train=True)
            loss, g = backward(p, logits, ytr[idx], cache)
            t += 1
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
                p[k] -= (lr * (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + eps)).astype(np.float32)
            if it % 200 == 0:
                print(f"epoch {epoch} iter {it} loss {loss:.4f} ({time.time() - t0:.0f} s)", flush=True)
        acc = accuracy(p, xte, yte)
        print(f"epoch {epoch}: test accuracy {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)
        save(args, p, acc, epoch + 1)  # after every epoch, so an interrupted run keeps its progress
    print(f"software test accuracy (10,000 MNIST test images): {acc:.4f}; wrote {args.out}")
    return 0


def save(args, p, acc, epochs) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez_compressed(tmp, **p, test_accuracy=np.float64(acc), epochs=epochs, seed=args.seed, lr=args.lr,
                        batch=args.batch)
    tmp.replace(out)


if __name__ == "__main__":
    sys.exit(main())
