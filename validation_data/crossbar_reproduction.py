"""Numbers of the crossbar reproduction report (``crossbar_reproduction.md``).

    python validation_data/crossbar_reproduction.py [--sweep out/crossbar/crossbar.h5] [--out validation_data/crossbar_reproduction.json]

Runs the headline cases directly (each a few seconds at most) and, when given the file of a
full ``xbarsolve reproduce crossbar`` run, summarises it.  Prints markdown tables and writes
every number to a JSON file.  Nothing here is tuned: every case states its parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import xbarsolve as xs
from xbarsolve import generators, metrics
from xbarsolve.calibration import Calibration
from xbarsolve.conversion import constant_signal, random_signal
from xbarsolve.mapping import shift_map

from xbarsolve.reference import G_MAX, G_MIN, V_MAX


def evaluate(A, V, *, amplitude=0.1, g_range="free", r_wire=1.0, drive="left", sense="bottom", device=None,
             transistor=None, v_conv=None, n_cal=10, seed=0, map_max=G_MAX):
    """Plain / calibration / conversion / conversion+calibration errors for one array.

    The kernel is shift-mapped into ``[G_MIN, map_max]``; ``g_range="paper"`` clips ``G'``
    to ``[G_MIN, G_MAX]``, so ``map_max < G_MAX`` leaves the conversion headroom."""
    sm = shift_map(A, G_MIN, map_max)
    kw = dict(r_row=r_wire, r_col=r_wire, r_in=1.0, r_out=1.0, drive=drive, sense=sense)
    if device is not None:
        kw["device"] = device
    if transistor is not None:
        kw["transistor"] = transistor
    xbar = xs.Crossbar(sm.G, **kw)
    m = A.shape[0]
    bounds = dict(g_min=G_MIN, g_max=G_MAX) if g_range == "paper" else {}
    v = constant_signal(m, amplitude) if v_conv is None else v_conv
    conv = xs.convert(xbar, v, on_clip="ignore", **bounds)
    ideal = sm.ideal_outputs(V)
    s = V.sum(axis=1)
    order = np.random.default_rng(seed).permutation(V.shape[0])
    cal, test = order[:n_cal], order[n_cal:]

    def run(x):
        return sm.outputs(V @ xs.transfer_matrix(x) if x.is_linear else xs.solve(x, V).currents, s)

    out = {"plain": run(xbar), "conversion": run(conv.crossbar)}
    out["calibration"] = Calibration().fit(out["plain"][cal], ideal[cal]).transform(out["plain"])
    out["conversion+calibration"] = Calibration().fit(out["conversion"][cal], ideal[cal]).transform(out["conversion"])
    res = {}
    for k, y in out.items():
        sm_ = metrics.summary(y[test], ideal[test])
        res[k] = dict(mean=sm_.mean_relative_error, worst=sm_.worst_relative_error, mean_bits=sm_.mean_bits,
                      worst_bits=sm_.worst_bits)
    res["clipped_fraction"] = conv.clipped_fraction
    res["n_nonpositive"] = conv.n_nonpositive
    res["min_v_memristor"] = conv.min_v_memristor
    return res, conv


def pct(x):
    return f"{100 * x:.3g} %"


def row(name, r, keys=("plain", "conversion", "conversion+calibration")):
    cells = [f"{pct(r[k]['mean'])} / {pct(r[k]['worst'])}" for k in keys]
    return f"| {name} | {pct(r['clipped_fraction'])} | " + " | ".join(cells) + " |"


def header(first="case"):
    return (f"| {first} | cells clipped | plain mean / worst | conversion mean / worst | conv.+cal. mean / worst |\n"
            "|---|---:|---:|---:|---:|")


def resnet_kernel():
    """The Keras ResNet-20 3x3x64x64 kernel of layer conv2d_16 as a 576 x 64 matrix, or None."""
    root = Path(os.environ.get("XBARSOLVE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    p = root / "models" / "keras_resnet_cifar10" / "resnet20v1_cifar10.h5"
    if not p.exists():
        return None
    import h5py

    with h5py.File(p, "r") as f:
        k = f["model_weights/conv2d_16/conv2d_16/kernel:0"][()]
    return k.reshape(576, 64)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", nargs="*", default=[], help="results file(s) of full `xbarsolve reproduce crossbar` runs")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    ap.add_argument("--n-samples", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    N = args.n_samples
    J: dict = {"n_samples": N, "parameters": dict(r_on=15e3, r_off=300e3, r_in=1.0, r_out=1.0, v_max=V_MAX)}

    def data(m, n, kt=1, sparsity=0.0, seed=0):
        A = generators.kernel(kt, (m, n), rng=np.random.default_rng([seed, m, n, kt]))
        V = generators.inputs(N, m, sparsity=sparsity, rng=np.random.default_rng([seed, m, n, kt, int(sparsity * 1000)]))
        return A, V

    # ---------------------------------------------------------------- Fig. 11
    print("## Fig. 11: conversion signal all-1 vs all-0.1 on 144x16 (type-1 kernel, dense inputs)\n")
    print(header("signal"))
    A, V = data(144, 16)
    J["fig11"] = {}
    for amp in (1.0, 0.1, 0.01, 0.001):
        r, _ = evaluate(A, V, amplitude=amp)
        J["fig11"][f"linear_all_{amp:g}"] = r
        print(row(f"linear device, all-{amp:g}", r))
    have_newton = True
    try:
        from xbarsolve.solve.newton import solve_newton  # noqa: F401
    except ImportError:
        have_newton = False
    if have_newton:
        for a in (2.0, 5.0):
            for amp in (1.0, 0.1):
                r, _ = evaluate(A, V[:200], amplitude=amp, device=xs.devices.Sinh(a=a), n_cal=10)
                J["fig11"][f"sinh{a:g}_all_{amp:g}"] = r
                print(row(f"Sinh(a={a:g}/V), all-{amp:g} (200 inputs)", r))
        for vg in (3.3, 1.2):
            for amp in (1.0, 0.1):
                r, _ = evaluate(A, V[:200], amplitude=amp, transistor=xs.transistors.Level1(v_gate=vg), n_cal=10)
                J["fig11"][f"level1_vg{vg:g}_all_{amp:g}"] = r
                print(row(f"linear memristor + Level1 NMOS (v_gate {vg:g} V, W/L 4), all-{amp:g} (200 inputs)", r))
    else:
        print("| Sinh device | (Newton solver not available in this checkout) | | | |")
    print()

    # ---------------------------------------------------------------- improvement by calibration
    print("## Conversion + calibration vs original conversion (dense and 50 % sparse inputs, amplitude 0.1, 3 kernel types)\n")
    print("| size | kernel type | sparsity | cells clipped | conversion mean | conv.+cal. mean | improvement | conversion worst | conv.+cal. worst |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    J["calibration_gain"] = []
    for (m, n) in ((27, 16), (144, 16), (288, 32), (576, 64)):
        for kt in (1, 2, 3):
            for sp in (0.0, 0.5):
                A, V = data(m, n, kt, sp)
                r, _ = evaluate(A, V)
                gain = 1 - r["conversion+calibration"]["mean"] / r["conversion"]["mean"]
                J["calibration_gain"].append(dict(m=m, n=n, kernel_type=kt, sparsity=sp, gain=gain, **r))
                print(f"| {m}x{n} | {kt} | {sp:g} | {pct(r['clipped_fraction'])} | {pct(r['conversion']['mean'])} | "
                      f"{pct(r['conversion+calibration']['mean'])} | {100 * gain:.0f} % | {pct(r['conversion']['worst'])} | "
                      f"{pct(r['conversion+calibration']['worst'])} |")
    print()

    # ---------------------------------------------------------------- headline 576x64
    print("## 576x64 under the stated parameters (1-ohm segments, R_in = R_out = 1 ohm, G in [3.33, 66.7] uS)\n")
    A, V = data(576, 64)
    J["headline"] = {}
    print(header())
    for gr in ("free", "paper"):
        for sp in (0.0, 0.5, 0.9):
            Vs = data(576, 64, 1, sp)[1]
            r, conv = evaluate(A, Vs, g_range=gr)
            J["headline"][f"{gr}_sparsity{sp:g}"] = r
            print(row(f"range {gr}, input sparsity {sp:g}", r))
    print()
    _, conv = evaluate(A, V[:20], g_range="paper")
    bad = np.isinf(conv.g_required)
    band = lambda mask, axis, k: [float(b.mean()) for b in np.array_split(mask, k, axis=axis)]  # noqa: E731
    J["clip_map"] = dict(
        by_row_quarter=band(bad, 0, 4), by_column_quarter=band(bad, 1, 4),
        min_v_memristor=conv.min_v_memristor, v_bottom_top_row_mean=float(conv.v_bottom[0].mean()),
        v_bottom_max=float(conv.v_bottom.max()), v_top_min=float(conv.v_top.min()),
        finite_over_gmax=float((np.isfinite(conv.g_required) & (conv.g_required > G_MAX)).mean()),
    )
    cm = J["clip_map"]
    print("Which cells clip (all-0.1 signal, type-1 kernel): fraction needing a memristor voltage <= 0 by row quarter "
          f"(row 0 farthest from the sense end) {', '.join(pct(x) for x in cm['by_row_quarter'])}; by column quarter "
          f"(column 0 nearest the drivers) {', '.join(pct(x) for x in cm['by_column_quarter'])}.  In the converted state "
          f"the far end of the column wires would sit at {cm['v_bottom_max']:.3g} V, {cm['v_bottom_max'] / 0.04:.3g} times "
          f"the 0.04 V signal on the rows; smallest required memristor voltage {cm['min_v_memristor']:.3g} V.  Besides, "
          f"{pct(cm['finite_over_gmax'])} of the cells need a finite G' above 1/R_on.\n")

    # ---------------------------------------------------------------- what makes it possible
    print("## What makes 576x64 feasible? (type-1 kernel, dense inputs unless said, amplitude 0.1, range free)\n")
    print(header("assumption"))
    J["explore"] = {}
    for rw in (0.5, 0.2, 0.1, 0.05, 0.02, 0.01):
        r, _ = evaluate(A, V, r_wire=rw)
        J["explore"][f"r_wire_{rw:g}"] = r
        print(row(f"wire segment {rw:g} ohm", r))
    for rw in (0.1, 0.05):
        r, _ = evaluate(A, V, r_wire=rw, g_range="paper")
        J["explore"][f"r_wire_{rw:g}_paper"] = r
        print(row(f"wire segment {rw:g} ohm, G' clipped to [1/R_off, 1/R_on]", r))
    for drive, sense in (("left", "both"), ("both", "both")):
        r, _ = evaluate(A, V, drive=drive, sense=sense)
        J["explore"][f"{drive}_{sense}"] = r
        print(row(f"1 ohm, drive {drive}, sense {sense}", r))
    r, _ = evaluate(A, data(576, 64, 1, 0.9)[1], r_wire=0.05)
    J["explore"]["r_wire_0.05_sparsity0.9"] = r
    print(row("wire 0.05 ohm, 90 % sparse inputs", r))
    for sp in (0.5, 0.9):
        vc = random_signal(576, 0.1, sparsity=sp, rng=1)
        vc[vc > 0] = 0.04
        r, conv = evaluate(A, V, v_conv=vc)
        J["explore"][f"conv_signal_sparsity_{sp:g}"] = r
        print(row(f"1 ohm, conversion signal {int(100 * sp)} % zeros (zero rows keep G)", r))
    print()
    print("Headroom: kernel mapped into [3.33 uS, map_max], G' clipped to the programmable [3.33, 66.7] uS "
          "(type-1 kernel, dense inputs, amplitude 0.1)\n")
    print(header("map_max, wire"))
    for mm in (G_MAX, G_MAX / 2, G_MAX / 4):
        for rw in (1.0, 0.2, 0.1):
            r, _ = evaluate(A, V, r_wire=rw, g_range="paper", map_max=mm)
            J["explore"][f"headroom_{1e6 * mm:.3g}uS_r{rw:g}"] = r
            print(row(f"{1e6 * mm:.3g} uS, {rw:g} ohm", r))
    print()
    print(header("kernel from a trained network"))
    K = resnet_kernel()
    if K is not None:
        for rw in (1.0, 0.05):
            r, conv = evaluate(K, V, r_wire=rw)
            J["explore"][f"resnet20_conv2d_16_r{rw:g}"] = r
            print(row(f"Keras ResNet-20 conv2d_16 kernel, wire {rw:g} ohm", r))
    print()

    # ---------------------------------------------------------------- the sweep file
    J["sweep"] = []
    for sweep in args.sweep:
        from xbarsolve.sweeps import read_records

        recs = read_records(sweep)
        rw = recs[0][0]["r_wire"]
        print(f"## Full sweep, wire {rw:g} ohm ({len(recs)} tasks): mean over kernel types, sparsities and amplitudes\n")
        print("| size | range | cells clipped | plain mean | calibration mean | conversion mean / worst | conv.+cal. mean / worst |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for (m, n) in ((27, 16), (144, 16), (288, 32), (576, 64)):
            for gr in ("free", "paper"):
                sel = [r for t, r in recs if t["m"] == m and t["n"] == n and t["g_range"] == gr]
                if not sel:
                    continue
                f = lambda k, s: float(np.mean([r[k][s] for r in sel]))  # noqa: E731
                clip = float(np.mean([r["conversion_stats"]["clipped_fraction"] for r in sel]))
                J["sweep"].append(dict(m=m, n=n, g_range=gr, r_wire=rw, clipped=clip, **{f"{k}_{s}": f(k, s) for k in
                                       ("plain", "calibration", "conversion", "conversion+calibration") for s in ("mean", "worst")}))
                print(f"| {m}x{n} | {gr} | {pct(clip)} | {pct(f('plain', 'mean'))} | {pct(f('calibration', 'mean'))} | "
                      f"{pct(f('conversion', 'mean'))} / {pct(f('conversion', 'worst'))} | "
                      f"{pct(f('conversion+calibration', 'mean'))} / {pct(f('conversion+calibration', 'worst'))} |")
        print()
    J["seconds"] = time.perf_counter() - t0
    Path(args.out).write_text(json.dumps(J, indent=1, default=float))
    print(f"(computed in {J['seconds']:.0f} s; numbers in {args.out})")


if __name__ == "__main__":
    main()
