"""``xbarsolve reproduce cnn``: the CNN study (Zhang & Hu Figs. 19-21, Table 6).

Networks: the shipped 4-layer MNIST CNN (``mnist_cnn4``) and the Keras CIFAR-10
ResNet-20/32/56 from the shared data folder.  Every convolution and dense layer runs on
1-ohm-wire crossbars with conversion and calibration (:mod:`xbarsolve.cnn.network`).

One task = (network, crossbar tile size, programming-error sigma, ADC/DAC bits, images,
calibration images, seed); each writes one HDF5 record through :func:`xbarsolve.sweeps._runner.run_tasks`
(resume, ``--scheduler`` for Dask, tqdm progress).  Programmed crossbars and calibrations
are cached per model under ``--cache`` (default ``calibration/cnn``), so tasks that
differ only in the converters reuse them.

Studies (our reading of the paper's figures):

* **Table 6**: accuracy for software, analog without quantization, 8-, 6- and 4-bit
  ADC/DAC.
* **Fig. 19**: per-layer mean and worst relative error, layer alone (exact inputs) and
  accumulated through the network.
* **Fig. 20**: accuracy vs programming error sigma (0 to 1 uS, recalibrated).
* **Fig. 21**: accuracy vs ADC/DAC resolution (4 to 8 bits).

Crossbar sizes: ``--tiles 0`` maps each layer onto one crossbar of the paper's size
(e.g. 576x64 for ResNet); ``--tiles 64`` splits every layer into crossbars of at most
64x64 cells with digital partial sums.

Devices and conversion amplitudes (where the amplitude matters): ``--devices linear sinh``
adds the project's reference nonlinear memristor (:class:`xbarsolve.devices.Sinh`,
``a = 2 /V`` unless ``--sinh-a`` says otherwise, solved by Newton), and ``--v-conv paper
0.1 none`` converts with the paper's per-layer amplitudes (Tables 4-5, the default), one
uniform amplitude (V), or not at all (calibration only).  For linear devices ``G'`` does
not depend on a uniform signal's amplitude; for the sinh device it does.  When a run holds
such rows, ``conversion.md`` tabulates them with binomial standard errors and
``fig_conversion_layer_errors_*.png`` plots their per-layer errors.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np

__all__ = ["add_cnn_arguments", "cnn_main", "build_tasks", "run_task", "conversion_markdown",
           "plot_conversion_layer_errors", "NETWORKS", "DEVICES", "SINH_A"]

NETWORKS = ("mnist_cnn4", "resnet20", "resnet32", "resnet56")
#: Memristor models of the job: linear (the paper's, the default) and sinh.
DEVICES = ("linear", "sinh")
#: Nonlinearity of the job's sinh device (1/V): the project's reference nonlinear memristor
#: (``Sinh(a=2.0, v_read=0.2)``, docs/nonlinear.md and ``benchmarks/bench_cnn.py``).
SINH_A = 2.0
_ROOT = Path(__file__).resolve().parents[2]

PRESETS = {
    "quick": dict(networks=["mnist_cnn4", "resnet20"], tiles=[0, 64], sigmas=[0.0, 1e-6], bits=[0, 8, 6, 4],
                  n_mnist=200, n_cifar=100, n_cal=None),
    "full": dict(networks=list(NETWORKS), tiles=[0, 64], sigmas=[0.0, 0.25e-6, 0.5e-6, 1e-6],
                 bits=[0, 8, 7, 6, 5, 4], n_mnist=2000, n_cifar=950, n_cal=None),
}


def add_cnn_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``xbarsolve reproduce cnn``."""
    p.add_argument("--quick", action="store_true", help="small preset: MNIST CNN (200 images) and ResNet-20 (100 images)")
    p.add_argument("--data", default=None, help="data folder (default $XBARSOLVE_DATA; `xbarsolve data download` fetches it)")
    p.add_argument("--out", default="out/cnn", help="output folder (results HDF5, figures, table)")
    p.add_argument("--cache", default=str(_ROOT / "calibration" / "cnn"),
                   help="cache of programmed crossbars and calibrations ('' disables)")
    p.add_argument("--networks", nargs="+", choices=NETWORKS, default=None)
    p.add_argument("--tiles", nargs="+", type=int, default=None, help="crossbar tile sizes (0 = one crossbar per layer)")
    p.add_argument("--sigmas", nargs="+", type=float, default=None, help="programming error sigmas (S)")
    p.add_argument("--wires", nargs="+", type=float, default=None,
                   help="wire segment resistances (ohm; R_in = R_out = the same); default 1 ohm (paper)")
    p.add_argument("--shift-reference", choices=("digital", "column"), default="digital",
                   help="undo the shift mapping digitally (paper) or with an analog unit column before the ADC")
    p.add_argument("--v-conv", nargs="+", default=["paper"],
                   help="conversion amplitudes, one set of tasks each: 'paper' (per layer, Zhang & Hu Tables 4-5; "
                        "default), one value in V for every layer, or 'none' (no conversion, calibration only)")
    p.add_argument("--devices", nargs="+", choices=DEVICES, default=["linear"],
                   help="memristor models: linear (default) and/or sinh (Newton; see --sinh-a)")
    p.add_argument("--sinh-a", type=float, default=SINH_A,
                   help=f"nonlinearity a (1/V) of the sinh device, I = G v_read sinh(aV)/sinh(a v_read) "
                        f"(default {SINH_A:g})")
    p.add_argument("--bits", nargs="+", type=int, default=None, help="ADC/DAC bits (0 = ideal converters)")
    p.add_argument("--n-mnist", type=int, default=None, help="MNIST test images")
    p.add_argument("--n-cifar", type=int, default=None,
                   help="CIFAR-10 test images (at most 1000 - N_CAL; the last N_CAL images calibrate)")
    p.add_argument("--n-cal", type=int, default=None,
                   help="held-out calibration images for converter ranges and calibration samples "
                        "(default 100 MNIST training images, the last 50 CIFAR-10 images)")
    p.add_argument("--seed", type=int, default=0)
    from ._runner import add_cluster_arguments

    add_cluster_arguments(p)  # --scheduler ADDRESS or --workers N
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plots", action="store_true")


def _conversion_fields(v_conv) -> dict:
    """Task fields of one conversion choice: none for the paper's amplitudes (the default,
    so those records keep their identity), ``v_conv`` (V) for a uniform amplitude,
    ``conversion: False`` for none."""
    if v_conv == "paper":
        return {}
    if v_conv == "none":
        return {"conversion": False}
    try:
        amp = float(v_conv)
    except (TypeError, ValueError):
        amp = float("nan")
    if not (np.isfinite(amp) and amp > 0):
        raise ValueError(f"v_conv must be 'paper', 'none' or an amplitude > 0 V; got {v_conv!r}")
    return {"v_conv": amp}


def _device_fields(device: str, sinh_a: float) -> dict:
    """Task fields of one device: none for linear (the default), else the model and its
    nonlinearity (1/V)."""
    if device == "linear":
        return {}
    if device != "sinh":
        raise ValueError(f"device must be one of {', '.join(map(repr, DEVICES))}; got {device!r}")
    a = float(sinh_a)
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f"sinh_a must be a nonlinearity > 0 (1/V); got {sinh_a!r}")
    return {"device": "sinh", "nonlinearity": a}


def build_tasks(networks, tiles, sigmas, bits, n_mnist, n_cifar, seed=0, wires=(1.0,),
                shift_reference="digital", n_cal=None, v_conv="paper", devices=("linear",),
                sinh_a=SINH_A) -> list[dict]:
    """The task list: Table 6 / Fig. 21 (bits at sigma 0), Fig. 20 (sigmas at ideal
    converters); Fig. 19 errors come from the tasks with ideal converters.  Fields that
    keep their default (1-ohm wires, digital shift reference, the paper's per-layer
    conversion amplitudes, linear devices) are left out of the task, so their records keep
    one identity.

    ``v_conv``: one choice or a list of them, each ``"paper"`` (Tables 4-5,
    :func:`xbarsolve.cnn.models.paper_conversion_amplitudes`), one amplitude (V) for every
    layer, or ``"none"`` (no conversion; calibration only).  ``devices``: ``"linear"``
    and/or ``"sinh"`` (:class:`xbarsolve.devices.Sinh` with ``a = sinh_a`` 1/V).  For
    linear devices ``G'`` does not depend on the amplitude of a uniform conversion signal
    (docs/model.md section 4), so records made with the former uniform 0.1 V default
    stand for the paper's amplitudes as they are."""
    choices = [v_conv] if isinstance(v_conv, (str, int, float)) else list(v_conv)
    conversions = [_conversion_fields(v) for v in choices]
    device_fields = [_device_fields(d, sinh_a) for d in ([devices] if isinstance(devices, str) else devices)]
    tasks = []
    for net in networks:
        n = n_mnist if net == "mnist_cnn4" else n_cifar
        cal = n_cal if n_cal is not None else (100 if net == "mnist_cnn4" else 50)
        for wire in wires:
            for dev in device_fields:
                for conv in conversions:
                    extra = {"n_cal": int(cal)}
                    if float(wire) != 1.0:
                        extra["wire"] = float(wire)
                    if shift_reference != "digital":
                        extra["shift_reference"] = shift_reference
                    extra.update(dev)
                    extra.update(conv)
                    for tile in tiles:
                        for b in bits:
                            tasks.append(dict(network=net, tile=int(tile), sigma=0.0, bits=int(b), n_images=int(n),
                                              seed=int(seed), errors=bool(b == 0), **extra))
                        for s in sigmas:
                            if s > 0:
                                tasks.append(dict(network=net, tile=int(tile), sigma=float(s), bits=0,
                                                  n_images=int(n), seed=int(seed), errors=True, **extra))
    return tasks


@functools.lru_cache(maxsize=4)
def _load(network: str, data: str, n_cal: int):
    from ..cnn.datasets import cifar10_keras_input, load_cifar10, load_mnist, mnist_input
    from ..cnn.models import load_keras_h5, mnist_cnn4

    d = Path(data)
    if network == "mnist_cnn4":
        xtr, _ = load_mnist(d, "train")
        x, y = load_mnist(d, "test")
        return mnist_cnn4(), mnist_input(xtr[:n_cal]), mnist_input(x), y
    depth = int(network.removeprefix("resnet"))
    folder = d / "models" / "keras_resnet_cifar10"
    model = load_keras_h5(folder / f"resnet{depth}v1_cifar10.h5", name=network)
    xc, yc = load_cifar10(d)
    X = cifar10_keras_input(xc, np.load(folder / "cifar10_x_train_mean.npy"))
    return model, X[len(X) - n_cal:], X[:len(X) - n_cal], yc[:len(X) - n_cal]


def run_task(task: dict, data: str, cache: str | None) -> dict:
    """Run one task (module-level so Dask can ship it)."""
    from ..cnn.network import AnalogConfig, AnalogNetwork

    model, x_cal, X, y = _load(task["network"], data, int(task["n_cal"]))
    n = min(task["n_images"], len(X))
    tile = task["tile"] or None
    r = float(task.get("wire", 1.0))
    from ..cnn.models import paper_conversion_amplitudes

    v_conv = task.get("v_conv", "paper")
    device = None
    if task.get("device", "linear") == "sinh":
        from ..devices import Sinh

        device = Sinh(a=float(task["nonlinearity"]))
    cfg = AnalogConfig(rows_max=tile, cols_max=tile, programming_sigma=task["sigma"], seed=task["seed"],
                       r_row=r, r_col=r, r_in=r, r_out=r, shift_reference=task.get("shift_reference", "digital"),
                       device=device, conversion=bool(task.get("conversion", True)),
                       v_conv=paper_conversion_amplitudes(model) if v_conv == "paper" else float(v_conv))
    t0 = time.perf_counter()
    net = AnalogNetwork(model, cfg, cache_dir=cache or None).prepare(x_cal)
    prep = time.perf_counter() - t0
    b = task["bits"] or None
    net.set_quantization(dac_bits=b, adc_bits=b)
    rep = net.evaluate(X[:n], y[:n], layer_alone=task["errors"])
    passes = 3 if task["errors"] else 2
    return {
        "accuracy_software": rep.accuracy_software,
        "accuracy_analog": rep.accuracy_analog,
        "layers": ",".join(e.name for e in rep.layers),
        "mean_alone": np.array([e.mean_alone for e in rep.layers]),
        "worst_alone": np.array([e.worst_alone for e in rep.layers]),
        "mean_accumulated": np.array([e.mean_accumulated for e in rep.layers]),
        "worst_accumulated": np.array([e.worst_accumulated for e in rep.layers]),
        "n_crossbars": net.n_crossbars,
        "n_clipped": net.n_clipped,
        "n_cells": int(sum(t.crossbar.G.size for al in net.layers.values() for t in al.tiles)),
        "prepare_seconds": prep,
        "from_cache": int(net.from_cache),
        "evaluate_seconds": rep.seconds,
        "seconds_per_image_per_pass": rep.seconds / max(n, 1) / passes,
    }


def _is_reference(task: dict) -> bool:
    """True for the paper's setting of the device and conversion (linear, Tables 4-5)."""
    return task.get("device", "linear") == "linear" and "v_conv" not in task and task.get("conversion", True)


def _conversion_label(task: dict) -> str:
    if not task.get("conversion", True):
        return "none (calibration only)"
    return "paper (Tables 4-5)" if "v_conv" not in task else f"uniform {task['v_conv']:g} V"


def _device_label(task: dict) -> str:
    return "linear" if task.get("device", "linear") == "linear" else f"sinh a={task['nonlinearity']:g}/V"


def _group(task: dict) -> tuple:
    """Network, crossbars and circuit of a task: what a conversion choice is compared within."""
    return (task["network"], task["tile"], task.get("wire", 1.0), task.get("shift_reference", "digital"),
            _device_label(task), task["n_images"])


def _conversion_order(label: str) -> tuple:
    return ({"p": 0, "u": 1, "n": 2}[label[0]], label)


def _percent_se(p: float, n: int) -> str:
    """An accuracy and its binomial standard error, in %."""
    return f"{100 * p:.1f} ± {100 * np.sqrt(p * (1 - p) / max(n, 1)):.1f}"


def conversion_markdown(records) -> str:
    """The conversion-amplitude study at zero programming error: accuracy (%, with binomial
    standard errors) per network, crossbars, device and conversion choice for ideal and
    each ADC/DAC resolution, clipped cells, and the per-layer mean relative errors (% of
    the output range; layer alone and accumulated) of the ideal-converter tasks."""
    from ..cnn.plotting import _LABEL, _tile_label

    rows, bits_seen = {}, set()
    for t, r in records:
        if t["sigma"] != 0:
            continue
        row = rows.setdefault(_group(t) + (_conversion_label(t),), {"task": t})
        row["software"] = r["accuracy_software"]
        row[t["bits"]] = r["accuracy_analog"]
        row.setdefault("clipped", (r["n_clipped"], r["n_cells"]))
        if t["bits"] == 0:
            row["errors"] = r
        bits_seen.add(t["bits"])
    bits = [0] + sorted((b for b in bits_seen if b), reverse=True)
    head = ["network", "crossbars", "device", "conversion", "images", "software",
            *("analog" if b == 0 else f"{b}-bit" for b in bits), "clipped cells"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {n: i for i, n in enumerate(_LABEL)}

    def key(kv):
        (net, tile, wire, ref, dev, n, conv) = kv[0]
        return (order.get(net, 9), -tile, -wire, ref, dev, _conversion_order(conv))

    ordered = sorted(rows.items(), key=key)
    for (net, tile, wire, ref, dev, n, conv), row in ordered:
        cells = [_LABEL.get(net, net), _tile_label(tile, row["task"]), dev, conv, str(n), _percent_se(row["software"], n)]
        cells += [_percent_se(row[b], n) if b in row else "-" for b in bits]
        c, total = row["clipped"]
        cells.append(f"{c} / {total} ({100 * c / max(total, 1):.1f} %)")
        lines.append("| " + " | ".join(cells) + " |")
    # per-layer errors, one table per group, one column pair per conversion choice
    groups: dict[tuple, list] = {}
    for (net, tile, wire, ref, dev, n, conv), row in ordered:
        if "errors" in row:
            groups.setdefault((net, tile, wire, ref, dev, n), []).append((conv, row))
    for (net, tile, wire, ref, dev, n), convs in groups.items():
        task = convs[0][1]["task"]
        lines += ["", f"Per-layer mean relative error (% of the output range), {_LABEL.get(net, net)}, "
                      f"{_tile_label(tile, task)}, {dev}, {n} images, ideal converters (layer alone / accumulated):", ""]
        head = ["layer"] + [conv for conv, _ in convs]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        names = convs[0][1]["errors"]["layers"].split(",")
        for k, name in enumerate(names):
            cells = [name] + [f"{100 * r['errors']['mean_alone'][k]:.3g} / {100 * r['errors']['mean_accumulated'][k]:.3g}"
                              for _, r in convs]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_conversion_layer_errors(records, network: str, tile: int, device: str, ax=None, *, wire: float = 1.0,
                                 shift_reference: str = "digital"):
    """Per-layer mean relative error (% of the output range) of each conversion choice,
    layer alone (solid) and accumulated (dashed), ideal converters, no programming error.
    ``device`` is a device label as in the table (``"linear"``, ``"sinh a=2/V"``)."""
    import matplotlib.pyplot as plt

    from ..cnn.plotting import _LABEL, _tile_label

    sel = [(t, r) for t, r in records if t["network"] == network and t["tile"] == tile and t["sigma"] == 0
           and t["bits"] == 0 and _device_label(t) == device and t.get("wire", 1.0) == wire
           and t.get("shift_reference", "digital") == shift_reference]
    sel.sort(key=lambda tr: _conversion_order(_conversion_label(tr[0])))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    if not sel:
        ax.set_title(f"{_LABEL.get(network, network)}: no records")
        return ax
    names = sel[0][1]["layers"].split(",")
    k = np.arange(len(names))
    for t, r in sel:
        line, = ax.semilogy(k, 100 * np.asarray(r["mean_alone"]), "o-", ms=3, label=f"{_conversion_label(t)}, alone")
        ax.semilogy(k, 100 * np.asarray(r["mean_accumulated"]), "s--", ms=3, color=line.get_color(),
                    label=f"{_conversion_label(t)}, accumulated")
    ax.set_xticks(k)
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("mean relative error\n(% of output range)")
    ax.set_title(f"{_LABEL.get(network, network)}, {_tile_label(tile, sel[0][0])}, {device}")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    return ax


def _save_conversion_figures(records, out: Path) -> list[Path]:
    """One per-layer error figure per network, crossbars and device with more than one
    conversion choice."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups: dict[tuple, set] = {}
    for t, _ in records:
        if t["bits"] == 0 and t["sigma"] == 0:
            g = (t["network"], t["tile"], _device_label(t), t.get("wire", 1.0), t.get("shift_reference", "digital"))
            groups.setdefault(g, set()).add(_conversion_label(t))
    paths = []
    for (net, tile, dev, wire, ref), convs in sorted(groups.items()):
        if len(convs) < 2:
            continue
        fig, ax = plt.subplots(figsize=(8, 3.8))
        plot_conversion_layer_errors(records, net, tile, dev, ax=ax, wire=wire, shift_reference=ref)
        fig.tight_layout()
        suffix = (f"{net}_tile{tile}_{dev.split()[0]}" + (f"_wire{wire:g}" if wire != 1.0 else "")
                  + ("_refcol" if ref != "digital" else ""))
        p = out / f"fig_conversion_layer_errors_{suffix}.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
    return paths


def cnn_main(args: argparse.Namespace) -> int:
    """Entry point of ``xbarsolve reproduce cnn``; returns the exit status."""
    from ..cnn.datasets import data_dir
    from ._runner import report_job, run_job

    preset = dict(PRESETS["quick" if args.quick else "full"])
    for key in ("networks", "tiles", "sigmas", "bits", "n_mnist", "n_cifar", "n_cal"):
        v = getattr(args, key)
        if v is not None:
            preset[key] = v
    try:
        tasks = build_tasks(preset["networks"], preset["tiles"], preset["sigmas"], preset["bits"],
                            preset["n_mnist"], preset["n_cifar"], args.seed, args.wires or [1.0],
                            args.shift_reference, preset["n_cal"], args.v_conv, args.devices, args.sinh_a)
    except ValueError as e:
        print(f"xbarsolve reproduce cnn: {e}")
        return 2
    try:
        data = str(data_dir(args.data))
    except FileNotFoundError as e:
        print(f"xbarsolve reproduce cnn: {e}")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "cnn_results.h5"
    fn = functools.partial(run_task, data=data, cache=args.cache or None)
    summary, records = run_job(tasks, fn, path, job="reproduce cnn", preset=preset, scheduler=args.scheduler,
                               workers=args.workers,
                               progress=not args.no_progress)
    from ..cnn.plotting import save_figures, table6_markdown

    reference = [(t, r) for t, r in records if _is_reference(t)]
    study = [(t, r) for t, r in records if not _is_reference(t)]
    figures = []
    if not args.no_plots:
        figures = (save_figures(reference, out) if reference else []) + (_save_conversion_figures(records, out) if study else [])
    if not reference:
        return report_job(out, path, summary, "conversion.md", conversion_markdown(records), figures)
    if study:  # the paper's rows also stand in the conversion table, as its reference
        text = conversion_markdown(records)
        (out / "conversion.md").write_text(text + "\n")
        print(text)
    return report_job(out, path, summary, "table6.md", table6_markdown(reference), figures)
