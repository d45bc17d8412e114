"""``xbarsolve reproduce aras``: writing weights on an accelerator too small for the
network (ARAS: Sabri, Riera, Gonzalez 2024), with :mod:`xbarsolve.program`.

Networks: the shipped 4-layer MNIST CNN and the Keras CIFAR-10 ResNet-20/32/56 (the
ImageNet models and BERT of ARAS are not in reach here: no weights, no data).  The
accelerator is ARAS's (128 x 128 crossbars of 2-bit cells, INT8 weights on 4 cells, 96 /
768,000 cycles per product / write, 1 GHz) scaled down to ``--crossbars`` crossbars in
processing elements of 4, so that no network fits and crossbars must be rewritten
during every inference.

Two kinds of task, one HDF5 record each (:func:`xbarsolve.sweeps._runner.run_tasks`:
resume, ``--scheduler`` for Dask, progress bar):

* ``kind="schedule"`` (network, crossbars, batch, write model): the naive, overlapped,
  overlapped + replicated and overlapped + replicated + re-encoded schedules
  (:func:`xbarsolve.program.compare`): latency, pulses, energies, lower bound, speedup,
  the chosen centre, the pulses of every candidate centre, the worst cell's wear.
* ``kind="accuracy"`` (network, engine, weights, images): top-1 accuracy with float,
  INT8 or INT8 re-encoded at one candidate centre (shift undone in de-quantization, so
  only the clipped weights change), computed by the exact digital forward pass or by
  the analog engine (:class:`xbarsolve.cnn.AnalogNetwork`, 64 x 64 crossbars with 1-ohm
  wires, conversion and calibration).
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np

__all__ = ["add_aras_arguments", "aras_main", "build_tasks", "run_task", "summary_markdown", "NETWORKS", "PRESETS"]

NETWORKS = ("mnist_cnn4", "resnet20", "resnet32", "resnet56")
CROSSBARS_PER_PE = 4

PRESETS = {
    "quick": dict(networks=["mnist_cnn4", "resnet20"], crossbars=[16], batches=[1, 16], write_models=["incremental"],
                  n_mnist=500, n_cifar=200, analog_networks=["mnist_cnn4"], analog_images=100),
    "full": dict(networks=list(NETWORKS), crossbars=[16, 64], batches=[1, 16, 128],
                 write_models=["incremental", "write_verify"], n_mnist=2000, n_cifar=950,
                 analog_networks=["mnist_cnn4", "resnet20"], analog_images=500),
}


def add_aras_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``xbarsolve reproduce aras``."""
    p.add_argument("--quick", action="store_true", help="small preset: MNIST CNN and ResNet-20, 16 crossbars")
    p.add_argument("--data", default=None, help="data folder (default $XBARSOLVE_DATA, else the default of xbarsolve.cnn.data_dir)")
    p.add_argument("--out", default="out/aras", help="output folder (results HDF5, summary, figures)")
    p.add_argument("--networks", nargs="+", choices=NETWORKS, default=None)
    p.add_argument("--crossbars", nargs="+", type=int, default=None,
                   help=f"accelerator sizes (crossbars, multiples of {CROSSBARS_PER_PE})")
    p.add_argument("--batches", nargs="+", type=int, default=None, help="images per inference")
    p.add_argument("--write-models", nargs="+", choices=("incremental", "write_verify"), default=None)
    p.add_argument("--n-mnist", type=int, default=None, help="MNIST test images for the accuracy tasks")
    p.add_argument("--n-cifar", type=int, default=None, help="CIFAR-10 test images (at most 950)")
    p.add_argument("--analog-networks", nargs="*", choices=NETWORKS, default=None,
                   help="networks whose accuracy is also measured on the analog engine")
    p.add_argument("--analog-images", type=int, default=None, help="test images of the analog accuracy tasks")
    p.add_argument("--seed", type=int, default=0, help="seed of the write-verify pulse counts")
    from ._runner import add_cluster_arguments

    add_cluster_arguments(p)  # --scheduler ADDRESS or --workers N
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plots", action="store_true")


def _weights_labels() -> list[str]:
    from ..program import ARAS_CENTRES

    return ["float", "int8", *(f"shift{c}" for c in ARAS_CENTRES)]


def build_tasks(networks, crossbars, batches, write_models, n_mnist, n_cifar, analog_networks=(), analog_images=100,
                seed=0) -> list[dict]:
    """The task list (module docstring).  The write-verify model runs at the smallest
    batch only; the analog engine at INT8 and every candidate centre."""
    for xb in crossbars:
        if xb < CROSSBARS_PER_PE or xb % CROSSBARS_PER_PE:
            raise ValueError(f"crossbars must be positive multiples of {CROSSBARS_PER_PE}; got {xb}")
    tasks = []
    for net in networks:
        for xb in crossbars:
            for wm in write_models:
                for b in (batches if wm == "incremental" else batches[:1]):
                    t = dict(kind="schedule", network=net, crossbars=int(xb), batch=int(b), write_model=wm)
                    if wm == "write_verify":
                        t["seed"] = int(seed)
                    tasks.append(t)
        n = n_mnist if net == "mnist_cnn4" else n_cifar
        for w in _weights_labels():
            tasks.append(dict(kind="accuracy", network=net, engine="digital", weights=w, n_images=int(n)))
        if net in analog_networks:
            for w in _weights_labels()[1:]:
                tasks.append(dict(kind="accuracy", network=net, engine="analog", weights=w, n_images=int(analog_images)))
    return tasks


def _accelerator(task):
    from ..program import Accelerator, WriteParams

    write = WriteParams(model=task["write_model"], seed=task.get("seed", 0))
    return Accelerator(n_pe=task["crossbars"] // CROSSBARS_PER_PE, crossbars_per_pe=CROSSBARS_PER_PE, write=write)


def _summary(s) -> dict:
    return {"latency_s": s.latency_s, "pulses": s.n_pulses, "writes": s.n_writes, "lower_bound_s": s.lower_bound_s,
            "speedup": s.speedup, "write_j": s.write_energy_j, "compute_j": s.compute_energy_j,
            "static_j": s.static_energy_j, "max_wear": int(s.wear.max()) if s.wear.size else 0,
            "replication": np.asarray(s.replication)}


def _schedule_task(task, data) -> dict:
    from ..program import compare, map_model
    from .cnn import _load

    model = _load(task["network"], data, 100 if task["network"] == "mnist_cnn4" else 50)[0]
    net = map_model(model)
    acc = _accelerator(task)
    t0 = time.perf_counter()
    cmp = compare(net, acc, batch=task["batch"])
    rec = {name: _summary(getattr(cmp, name)) for name in ("naive", "overlap", "replicated", "reuse")}
    rec.update(n_tiles=net.n_tiles(acc), n_weights=net.n_weights, n_layers=len(net.layers), centre=cmp.centre,
               n_clipped=cmp.n_clipped, pulses_saved=cmp.pulses_saved,
               centres=np.array(list(cmp.pulses_by_centre)), pulses_by_centre=np.array(list(cmp.pulses_by_centre.values())),
               seconds=time.perf_counter() - t0)
    return rec


def _accuracy_task(task, data) -> dict:
    from ..program import map_model, n_clipped, reencode, with_weights
    from .cnn import _load

    n_cal = 100 if task["network"] == "mnist_cnn4" else 50
    model, x_cal, X, y = _load(task["network"], data, n_cal)
    n = min(task["n_images"], len(X))
    w = task["weights"]
    clipped = 0
    if w != "float":
        net = map_model(model)
        if w.startswith("shift"):
            re = reencode(net, int(w.removeprefix("shift")))
            clipped = n_clipped(net, re)
            net = re
        model = with_weights(model, net)
    t0 = time.perf_counter()
    if task["engine"] == "digital":
        pred = model.predict(X[:n])
    else:
        from ..cnn.network import AnalogConfig, AnalogNetwork

        pred = AnalogNetwork(model, AnalogConfig(rows_max=64, cols_max=64)).prepare(x_cal).predict(X[:n])
    return {"accuracy": float(np.mean(pred == y[:n])), "n_clipped": int(clipped), "seconds": time.perf_counter() - t0}


def run_task(task: dict, data: str) -> dict:
    """Run one task (module-level so Dask can ship it)."""
    if task["kind"] == "schedule":
        return _schedule_task(task, data)
    return _accuracy_task(task, data)


_LABEL = {"mnist_cnn4": "MNIST CNN", "resnet20": "ResNet-20", "resnet32": "ResNet-32", "resnet56": "ResNet-56"}


def summary_markdown(records, endurance: float = 1e6) -> str:
    """Two tables: the schedules, and the accuracy of the re-encoded weights."""
    order = {n: i for i, n in enumerate(NETWORKS)}
    sched = sorted(((t, r) for t, r in records if t["kind"] == "schedule"),
                   key=lambda tr: (order[tr[0]["network"]], tr[0]["crossbars"], tr[0]["write_model"], tr[0]["batch"]))
    head = ["network", "tiles", "crossbars", "batch", "write model", "naive ms", "overlap x", "+replication x",
            "+reuse x", "bound / latency", "pulses saved", "centre", "write energy share",
            f"lifetime at {endurance:.0e} pulses (h)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t, r in sched:
        ru = r["reuse"]
        energy = ru["write_j"] + ru["compute_j"] + ru["static_j"]
        life_h = endurance * ru["latency_s"] / max(ru["max_wear"], 1) / 3600
        lines.append("| " + " | ".join([
            _LABEL[t["network"]], str(r["n_tiles"]), str(t["crossbars"]), str(t["batch"]), t["write_model"],
            f"{1e3 * r['naive']['latency_s']:.2f}", f"{r['overlap']['speedup']:.2f}", f"{r['replicated']['speedup']:.2f}",
            f"{ru['speedup']:.2f}", f"{ru['lower_bound_s'] / ru['latency_s']:.2f}", f"{100 * r['pulses_saved']:.1f} %",
            str(r["centre"]), f"{100 * ru['write_j'] / energy:.1f} %", f"{life_h:.3g}"]) + " |")
    acc: dict = {}
    for t, r in records:
        if t["kind"] == "accuracy":
            acc.setdefault((t["network"], t["engine"], t["n_images"]), {})[t["weights"]] = r
    labels = _weights_labels()
    head2 = ["network", "engine", "images", *labels, "clipped weights (range)"]
    lines += ["", "| " + " | ".join(head2) + " |", "|" + "---|" * len(head2)]
    for (net, eng, n), row in sorted(acc.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        clipped = [row[w]["n_clipped"] for w in labels[2:] if w in row]
        cells = [_LABEL[net], eng, str(n)] + [f"{100 * row[w]['accuracy']:.2f}" if w in row else "-" for w in labels]
        cells.append(f"{min(clipped)}-{max(clipped)}" if clipped else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aras_main(args: argparse.Namespace) -> int:
    """Entry point of ``xbarsolve reproduce aras``; returns the exit status."""
    from ..cnn.datasets import data_dir
    from ._runner import report_job, run_job

    preset = dict(PRESETS["quick" if args.quick else "full"])
    for key in ("networks", "crossbars", "batches", "write_models", "n_mnist", "n_cifar", "analog_networks",
                "analog_images"):
        v = getattr(args, key)
        if v is not None:
            preset[key] = v
    try:
        data = str(data_dir(args.data))
        tasks = build_tasks(preset["networks"], preset["crossbars"], preset["batches"], preset["write_models"],
                            preset["n_mnist"], preset["n_cifar"], preset["analog_networks"], preset["analog_images"],
                            args.seed)
    except (FileNotFoundError, ValueError) as e:
        print(f"xbarsolve reproduce aras: {e}")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "aras_results.h5"
    fn = functools.partial(run_task, data=data)
    summary, records = run_job(tasks, fn, path, job="reproduce aras", preset=preset, scheduler=args.scheduler,
                               workers=args.workers,
                               progress=not args.no_progress)
    figures = None
    if not args.no_plots:
        from ..program.plotting import aras_figures

        figures = aras_figures(records, out)
    return report_job(out, path, summary, "aras_summary.md", summary_markdown(records), figures)
