"""``xbarsolve reproduce dse``: the dense-vs-sparse design-space exploration.

Accuracy and cost of the same analog network: every task programs a network
(:mod:`xbarsolve.cnn.network`, conversion and calibration), measures its accuracy on test
images and its energy, area and latency per inference (:func:`xbarsolve.cost.network_cost`,
exact read power of the actual inputs) on the first ``n_cost`` of them.

Axes, varied one at a time around a baseline (1-ohm wires, no programming error, no read
noise, 8-bit ADC/DAC) for every network x mapping x tile size:

* convolution mapping: ``dense`` (im2col) or ``sparse`` (Toeplitz);
* tile size: crossbars of at most ``tile x tile`` cells (``0`` = one crossbar per layer);
* wire (and driver and sense) resistance, ohm;
* programming error sigma (S), recalibrated after programming;
* read noise sigma (A) on every analog output;
* ADC/DAC bits (``0`` = ideal converters, costed at the table's reference resolution).

One task = one HDF5 record (:func:`xbarsolve.sweeps._runner.run_tasks`: resume,
``--scheduler`` for Dask, progress bar); ``--quick`` is a small preset for tests.

What the sparse mapping costs here: a convolution's Toeplitz matrix is
``(H W cin) x (Ho Wo cout)`` float64 (MNIST CNN conv1: 784 x 11520, 72 MB; ResNet 'same'
3x3x16x16 layers: 16384 x 16384, 2.1 GB each) and is tiled into up to thousands of
crossbars, each converted, solved and calibrated (MNIST CNN with 64 x 64 tiles: about
5000 crossbars).  ResNets with the sparse mapping need more memory than a task should take
here; the job skips them with that estimate unless ``--allow-large``.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["add_dse_arguments", "dse_main", "build_tasks", "run_task", "save_figures", "PRESETS",
           "sparse_matrix_bytes"]

NETWORKS = ("mnist_cnn4", "resnet20", "resnet32", "resnet56")
MAPPINGS = ("dense", "sparse")
BASELINE = dict(wire=1.0, sigma=0.0, read_noise=0.0, bits=8)

PRESETS = {
    "quick": dict(networks=["mnist_cnn4"], mappings=["dense", "sparse"], tiles=[64], sparse_tiles=[64], wires=[0.0],
                  sigmas=[], read_noises=[], bits=[4], n_mnist=20, n_cifar=10, n_cost=2),
    "full": dict(networks=["mnist_cnn4", "resnet20"], mappings=["dense", "sparse"], tiles=[32, 64, 128, 256, 0],
                 sparse_tiles=[64], wires=[0.0, 0.5], sigmas=[0.5e-6, 1e-6], read_noises=[1e-6],
                 bits=[4, 6, 0], n_mnist=500, n_cifar=100, n_cost=5),
}

#: Largest Toeplitz matrix (bytes) a task builds unless ``allow_large``.
MAX_SPARSE_BYTES = 1 << 30


def sparse_matrix_bytes(model) -> int:
    """Bytes of the largest Toeplitz matrix of a model's convolutions (float64)."""
    from ..cnn.layers import Conv2D
    from ..cost import mapped_shape

    acts = model.forward(np.zeros((1, *model.input_shape)), keep=True)
    largest = 0
    for nd in model.linear_nodes:
        if isinstance(nd.layer, Conv2D):
            src = acts[nd.inputs[0] if nd.inputs else "input"]
            r, c = mapped_shape(nd.layer.kernel.shape, src.shape[1:], "sparse", nd.layer.strides, nd.layer.padding)
            largest = max(largest, 8 * r * c)
    return largest


def add_dse_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``xbarsolve reproduce dse``."""
    p.add_argument("--quick", action="store_true", help="small preset for tests (MNIST CNN, 20 images)")
    p.add_argument("--data", default=None, help="data folder (default $XBARSOLVE_DATA or ../shared/data)")
    p.add_argument("--out", default="out/dse", help="output folder (results HDF5, figures, table)")
    p.add_argument("--cache", default=None, help="cache of programmed crossbars (default OUT/cache; '' disables)")
    p.add_argument("--networks", nargs="+", choices=NETWORKS, default=None)
    p.add_argument("--mappings", nargs="+", choices=MAPPINGS, default=None)
    p.add_argument("--tiles", nargs="+", type=int, default=None, help="tile sizes (0 = one crossbar per layer)")
    p.add_argument("--sparse-tiles", nargs="+", type=int, default=None,
                   help="tile sizes of the sparse mapping (default 64: its layers are 10-100x larger)")
    p.add_argument("--wires", nargs="+", type=float, default=None, help="wire resistances (ohm) besides 1 ohm")
    p.add_argument("--sigmas", nargs="+", type=float, default=None, help="programming error sigmas (S)")
    p.add_argument("--read-noises", nargs="+", type=float, default=None, help="read noise sigmas (A)")
    p.add_argument("--bits", nargs="+", type=int, default=None, help="ADC/DAC bits besides 8 (0 = ideal)")
    p.add_argument("--n-mnist", type=int, default=None, help="MNIST test images")
    p.add_argument("--n-cifar", type=int, default=None, help="CIFAR-10 test images")
    p.add_argument("--n-cost", type=int, default=None, help="images costed per task (the first of the test images)")
    p.add_argument("--allow-large", action="store_true", help="build sparse mappings over 1 GiB (ResNets)")
    p.add_argument("--seed", type=int, default=0)
    from ._runner import add_cluster_arguments

    add_cluster_arguments(p)  # --scheduler ADDRESS or --workers N
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plots", action="store_true")


def build_tasks(networks, mappings, tiles, wires, sigmas, read_noises, bits, n_mnist, n_cifar, n_cost,
                seed=0, sparse_tiles=None) -> list[dict]:
    """One baseline task per network x mapping x tile (``sparse_tiles`` for the sparse
    mapping, default ``tiles``) and one per other value of each non-ideality (wire, sigma,
    read noise, bits), the others at their baseline."""
    tasks = []
    for net in networks:
        n = int(n_mnist if net == "mnist_cnn4" else n_cifar)
        for mapping in mappings:
            for tile in (sparse_tiles if mapping == "sparse" and sparse_tiles is not None else tiles):
                base = dict(network=net, mapping=mapping, tile=int(tile), n_images=n, n_cost=min(int(n_cost), n),
                            n_cal=100 if net == "mnist_cnn4" else 50, seed=int(seed), **BASELINE)
                tasks.append(base)
                for key, values in (("wire", wires), ("sigma", sigmas), ("read_noise", read_noises), ("bits", bits)):
                    for v in values:
                        v = int(v) if key == "bits" else float(v)
                        if v != base[key]:
                            tasks.append({**base, key: v})
    unique = {json.dumps(t, sort_keys=True): t for t in tasks}
    return list(unique.values())


def _load_network(network: str, data: str, n_cal: int):
    """(model, calibration images, test images, labels), as ``xbarsolve reproduce cnn`` loads them."""
    from .cnn import _load

    return _load(network, data, n_cal)


def run_task(task: dict, data: str, cache: str | None, allow_large: bool = False) -> dict:
    """Run one task (module-level so Dask can ship it)."""
    from ..cnn.network import AnalogConfig, AnalogNetwork
    from ..cost import network_cost

    model, x_cal, X, y = _load_network(task["network"], data, int(task["n_cal"]))
    if task["mapping"] == "sparse" and not allow_large:
        size = sparse_matrix_bytes(model)
        if size > MAX_SPARSE_BYTES:
            raise MemoryError(f"{task['network']} with the sparse mapping builds a {size / 2**30:.1f} GiB Toeplitz "
                              "matrix (limit 1 GiB); pass --allow-large on a machine with the memory")
    n = min(task["n_images"], len(X))
    tile = task["tile"] or None
    r = float(task["wire"])
    cfg = AnalogConfig(rows_max=tile, cols_max=tile, conv_mapping=task["mapping"], r_row=r, r_col=r, r_in=r, r_out=r,
                       programming_sigma=float(task["sigma"]), read_noise_sigma=float(task["read_noise"]),
                       seed=int(task["seed"]))
    t0 = time.perf_counter()
    net = AnalogNetwork(model, cfg, cache_dir=cache or None).prepare(x_cal)
    prep = time.perf_counter() - t0
    b = task["bits"] or None
    net.set_quantization(dac_bits=b, adc_bits=b)
    rep = net.evaluate(X[:n], y[:n], layer_alone=False)
    t0 = time.perf_counter()
    cost = network_cost(net, X[:task["n_cost"]])
    cost_s = time.perf_counter() - t0
    layer = lambda f: np.array([getattr(c, f) for c in cost.layers], dtype=np.float64)  # noqa: E731
    return {
        "accuracy_software": rep.accuracy_software,
        "accuracy_analog": rep.accuracy_analog,
        "energy_pJ": cost.energy_pJ,
        "read_pJ": cost.total("read_pJ"),
        "dac_pJ": cost.total("dac_pJ"),
        "adc_pJ": cost.total("adc_pJ"),
        "digital_pJ": cost.total("digital_pJ"),
        "area_um2": cost.area_um2,
        "latency_ns": cost.latency_ns,
        "n_crossbars": int(cost.total("n_crossbars")),
        "n_cells": int(cost.total("n_cells")),
        "n_adc": int(cost.total("n_adc")),
        "n_dac": int(cost.total("n_dac")),
        "n_clipped": net.n_clipped,
        "layers": ",".join(c.name for c in cost.layers),
        "layer_energy_pJ": layer("energy_pJ"),
        "layer_read_pJ": layer("read_pJ"),
        "layer_crossbars": layer("n_crossbars"),
        "table": cost.table_name,
        "prepare_seconds": prep,
        "evaluate_seconds": rep.seconds,
        "cost_seconds": cost_s,
    }


_LABEL = {"mnist_cnn4": "4-layer CNN (MNIST)", "resnet20": "ResNet-20", "resnet32": "ResNet-32", "resnet56": "ResNet-56"}


def _is_baseline(task, **except_):
    return all(task[k] == v for k, v in BASELINE.items() if k not in except_)


def _tile_text(tile: int) -> str:
    return "layer" if not tile else str(tile)


def table_markdown(records) -> str:
    """Every record: its non-idealities, accuracy and cost per inference (energy with its
    DAC and analog-read parts), sorted by network, mapping, tile and non-ideality."""
    lines = ["| network | mapping | tile | wire ohm | bits | sigma uS | read noise uA | accuracy % (software) | "
             "energy nJ | DAC nJ | read nJ | area mm^2 | latency us | crossbars |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = sorted(records, key=lambda tr: (tr[0]["network"], tr[0]["mapping"], tr[0]["tile"] or 1 << 30, -tr[0]["wire"],
                                           tr[0]["sigma"], tr[0]["read_noise"], -(tr[0]["bits"] or 1 << 30)))
    for t, r in rows:
        lines.append(f"| {_LABEL[t['network']]} | {t['mapping']} | {_tile_text(t['tile'])} | {t['wire']:g} | "
                     f"{t['bits'] or 'ideal'} | {t['sigma'] * 1e6:g} | {t['read_noise'] * 1e6:g} | "
                     f"{100 * r['accuracy_analog']:.1f} ({100 * r['accuracy_software']:.1f}) | "
                     f"{r['energy_pJ'] * 1e-3:.1f} | {r['dac_pJ'] * 1e-3:.1f} | {r['read_pJ'] * 1e-3:.2f} | "
                     f"{r['area_um2'] * 1e-6:.3f} | {r['latency_ns'] * 1e-3:.1f} | {r['n_crossbars']} |")
    return "\n".join(lines)


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the points (energy, accuracy) not dominated by another (lower energy and
    higher accuracy), sorted by energy."""
    order = np.lexsort((-points[:, 1], points[:, 0]))
    front, best = [], -np.inf
    for i in order:
        if points[i, 1] > best:
            front.append(i)
            best = points[i, 1]
    return np.array(front, dtype=int)


def save_figures(records, out) -> list[Path]:
    """Accuracy vs energy (Pareto front per network), vs tile size, vs programming error,
    and dense vs sparse energy; PNG files in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    written = []
    nets = sorted({t["network"] for t, _ in records})

    # accuracy vs energy; ideal converters are costed at the table's reference resolutions
    # (a 1-bit DAC), not comparable with the rest: drawn hollow and left out of the front
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for k, net in enumerate(nets):
        colour = f"C{k}"
        for mapping, marker in (("dense", "o"), ("sparse", "s")):
            for ideal in (False, True):
                sel = [r for t, r in records if t["network"] == net and t["mapping"] == mapping and (not t["bits"]) == ideal]
                if sel:
                    ax.scatter([r["energy_pJ"] * 1e-3 for r in sel], [100 * r["accuracy_analog"] for r in sel],
                               marker=marker, alpha=0.6, facecolors="none" if ideal else colour, edgecolors=colour,
                               label=f"{_LABEL[net]}, {mapping}" + (", ideal converters" if ideal else ""))
        sel = [r for t, r in records if t["network"] == net and t["bits"]] or [r for t, r in records if t["network"] == net]
        pts = np.array([[r["energy_pJ"] * 1e-3, 100 * r["accuracy_analog"]] for r in sel])
        f = pareto_front(pts)
        ax.plot(pts[f, 0], pts[f, 1], "-", color=colour, lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (nJ)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs energy (line: Pareto front per network, real converters)", fontsize=9)
    _legend(ax, fontsize=7, frameon=False, loc="center right")
    written.append(_save(fig, out / "dse_accuracy_vs_energy.png"))

    # vs tile size: one x position per tile size of the records, shared by every series
    tiles = sorted({t["tile"] for t, _ in records}, key=lambda v: v or 1 << 30)
    pos = {tile: i for i, tile in enumerate(tiles)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for net in nets:
        for mapping, marker in (("dense", "o"), ("sparse", "s")):
            sel = sorted(((t, r) for t, r in records if t["network"] == net and t["mapping"] == mapping and _is_baseline(t)),
                         key=lambda tr: tr[0]["tile"] or 1 << 30)
            if not sel:
                continue
            x = [pos[t["tile"]] for t, _ in sel]
            axes[0].plot(x, [100 * r["accuracy_analog"] for _, r in sel], marker=marker, label=f"{_LABEL[net]}, {mapping}")
            axes[1].plot(x, [r["energy_pJ"] * 1e-3 for _, r in sel], marker=marker, label=f"{_LABEL[net]}, {mapping}")
    for a in axes:
        a.set_xticks(range(len(tiles)), [_tile_text(t) for t in tiles])
        a.set_xlabel("tile size")
        _legend(a, fontsize=7, frameon=False)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].set_ylabel("energy per inference (nJ)")
    axes[1].set_yscale("log")
    fig.suptitle("baseline: 1-ohm wires, 8-bit ADC/DAC")
    written.append(_save(fig, out / "dse_vs_tile.png"))

    # vs noise: a row per network, colour by tile size, the sparse mapping dashed
    colours = {tile: plt.cm.viridis(i / max(len(tiles) - 1, 1)) for i, tile in enumerate(tiles)}
    fig, axes = plt.subplots(len(nets), 2, figsize=(10, 3.2 * len(nets)), squeeze=False)
    for row, net in zip(axes, nets):
        for a, key, label in ((row[0], "sigma", "programming error sigma (uS)"), (row[1], "read_noise", "read noise sigma (uA)")):
            for mapping, style in (("dense", "o-"), ("sparse", "s--")):
                for tile in tiles:
                    sel = sorted(((t, r) for t, r in records if t["network"] == net and t["mapping"] == mapping
                                  and t["tile"] == tile and _is_baseline(t, **{key: None})), key=lambda tr: tr[0][key])
                    if len(sel) > 1:
                        a.plot([t[key] * 1e6 for t, _ in sel], [100 * r["accuracy_analog"] for _, r in sel], style,
                               color=colours[tile], label=f"{mapping}, tile {_tile_text(tile)}")
            a.set_xlabel(label)
            a.set_ylabel("accuracy (%)")
            a.set_title(f"{_LABEL[net]} (1-ohm wires, 8-bit ADC/DAC)", fontsize=9)
            _legend(a, fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    written.append(_save(fig, out / "dse_vs_noise.png"))

    # dense vs sparse: the energy of every baseline split into its parts, a panel per network
    parts = (("dac_pJ", "DAC"), ("adc_pJ", "ADC"), ("read_pJ", "analog read"), ("digital_pJ", "digital"))
    fig, axes = plt.subplots(1, len(nets), figsize=(5 * len(nets), 3.8), squeeze=False)
    for a, net in zip(axes[0], nets):
        sel = sorted(((t, r) for t, r in records if t["network"] == net and _is_baseline(t)),
                     key=lambda tr: (tr[0]["mapping"], tr[0]["tile"] or 1 << 30))
        x = np.arange(len(sel))
        bottom = np.zeros(len(sel))
        for field_, label in parts:
            v = np.array([r[field_] * 1e-6 for _, r in sel])
            a.bar(x, v, bottom=bottom, width=0.7, label=label)
            bottom += v
        a.set_xticks(x, [f"{t['mapping']}\n{_tile_text(t['tile'])}" for t, _ in sel], fontsize=8)
        a.set_ylabel("energy per inference (uJ)")
        a.set_title(f"{_LABEL[net]}: baseline by mapping and tile", fontsize=9)
        _legend(a, fontsize=7, frameon=False)
    written.append(_save(fig, out / "dse_dense_vs_sparse.png"))
    return written


def _legend(ax, **kw) -> None:
    """A legend when the axes have labelled artists (matplotlib warns otherwise)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def dse_main(args: argparse.Namespace) -> int:
    """Entry point of ``xbarsolve reproduce dse``; returns the exit status."""
    from ..cnn.datasets import data_dir
    from ._runner import report_job, run_job

    preset = dict(PRESETS["quick" if args.quick else "full"])
    for key in ("networks", "mappings", "tiles", "sparse_tiles", "wires", "sigmas", "read_noises", "bits", "n_mnist", "n_cifar", "n_cost"):
        v = getattr(args, key)
        if v is not None:
            preset[key] = v
    for key in ("tiles", "sparse_tiles", "bits"):
        bad = [v for v in preset[key] if v < 0]
        if bad:
            print(f"xbarsolve reproduce dse: --{key} must be >= 0; got {bad[0]}")
            return 2
    for key in ("wires", "sigmas", "read_noises"):
        bad = [v for v in preset[key] if not (np.isfinite(v) and v >= 0)]
        if bad:
            print(f"xbarsolve reproduce dse: --{key.replace('_', '-')} must be finite and >= 0; got {bad[0]}")
            return 2
    if preset["n_cost"] < 1:
        print(f"xbarsolve reproduce dse: --n-cost must be >= 1; got {preset['n_cost']}")
        return 2
    try:
        data = str(data_dir(args.data))
    except FileNotFoundError as e:
        print(f"xbarsolve reproduce dse: {e}")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = str(out / "cache") if args.cache is None else args.cache
    tasks = build_tasks(preset["networks"], preset["mappings"], preset["tiles"], preset["wires"], preset["sigmas"],
                        preset["read_noises"], preset["bits"], preset["n_mnist"], preset["n_cifar"], preset["n_cost"],
                        args.seed, preset["sparse_tiles"])
    if "sparse" in preset["mappings"] and not args.allow_large:
        for net in preset["networks"]:
            size = sparse_matrix_bytes(_load_network(net, data, 100 if net == "mnist_cnn4" else 50)[0])
            if size > MAX_SPARSE_BYTES:
                print(f"skipping {net} with the sparse mapping: its largest Toeplitz matrix takes {size / 2**30:.1f} GiB "
                      "(limit 1 GiB; --allow-large builds it)")
                tasks = [t for t in tasks if not (t["network"] == net and t["mapping"] == "sparse")]
    path = out / "dse_results.h5"
    fn = functools.partial(run_task, data=data, cache=cache or None, allow_large=args.allow_large)
    summary, records = run_job(tasks, fn, path, job="reproduce dse", preset=preset, scheduler=args.scheduler,
                               workers=args.workers,
                               progress=not args.no_progress)
    figures = save_figures(records, out) if records and not args.no_plots else None
    return report_job(out, path, summary, "dse_table.md", table_markdown(records), figures)
