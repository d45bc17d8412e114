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
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np

__all__ = ["add_cnn_arguments", "cnn_main", "build_tasks", "run_task", "NETWORKS"]

NETWORKS = ("mnist_cnn4", "resnet20", "resnet32", "resnet56")
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
    p.add_argument("--v-conv", default="paper",
                   help="conversion amplitude: 'paper' (per layer, Zhang & Hu Tables 4-5; default) or one value in V")
    p.add_argument("--bits", nargs="+", type=int, default=None, help="ADC/DAC bits (0 = ideal converters)")
    p.add_argument("--n-mnist", type=int, default=None, help="MNIST test images")
    p.add_argument("--n-cifar", type=int, default=None,
                   help="CIFAR-10 test images (at most 1000 - N_CAL; the last N_CAL images calibrate)")
    p.add_argument("--n-cal", type=int, default=None,
                   help="held-out calibration images for converter ranges and calibration samples "
                        "(default 100 MNIST training images, the last 50 CIFAR-10 images)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: run locally)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plots", action="store_true")


def build_tasks(networks, tiles, sigmas, bits, n_mnist, n_cifar, seed=0, wires=(1.0,),
                shift_reference="digital", n_cal=None, v_conv="paper") -> list[dict]:
    """The task list: Table 6 / Fig. 21 (bits at sigma 0), Fig. 20 (sigmas at ideal
    converters); Fig. 19 errors come from the tasks with ideal converters.  Fields that
    keep their default (1-ohm wires, digital shift reference, the paper's per-layer
    conversion amplitudes) are left out of the task, so their records keep one identity.

    ``v_conv``: ``"paper"`` (Tables 4-5, :func:`xbarsolve.cnn.models.paper_conversion_amplitudes`)
    or one amplitude (V) for every layer.  The job's devices are linear, for which ``G'``
    does not depend on the amplitude of a uniform conversion signal (docs/model.md
    section 4), so records made with the former uniform 0.1 V default stand for the
    paper's amplitudes as they are."""
    if v_conv != "paper":
        v_conv = float(v_conv)
        if not v_conv > 0:
            raise ValueError(f"v_conv must be 'paper' or an amplitude > 0 V; got {v_conv!r}")
    tasks = []
    for net in networks:
        n = n_mnist if net == "mnist_cnn4" else n_cifar
        cal = n_cal if n_cal is not None else (100 if net == "mnist_cnn4" else 50)
        for wire in wires:
            extra = {"n_cal": int(cal)}
            if float(wire) != 1.0:
                extra["wire"] = float(wire)
            if shift_reference != "digital":
                extra["shift_reference"] = shift_reference
            if v_conv != "paper":
                extra["v_conv"] = v_conv
            for tile in tiles:
                for b in bits:
                    tasks.append(dict(network=net, tile=int(tile), sigma=0.0, bits=int(b), n_images=int(n),
                                      seed=int(seed), errors=bool(b == 0), **extra))
                for s in sigmas:
                    if s > 0:
                        tasks.append(dict(network=net, tile=int(tile), sigma=float(s), bits=0, n_images=int(n),
                                          seed=int(seed), errors=True, **extra))
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
    cfg = AnalogConfig(rows_max=tile, cols_max=tile, programming_sigma=task["sigma"], seed=task["seed"],
                       r_row=r, r_col=r, r_in=r, r_out=r, shift_reference=task.get("shift_reference", "digital"),
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
        data = str(data_dir(args.data))
    except FileNotFoundError as e:
        print(f"xbarsolve reproduce cnn: {e}")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = build_tasks(preset["networks"], preset["tiles"], preset["sigmas"], preset["bits"],
                        preset["n_mnist"], preset["n_cifar"], args.seed, args.wires or [1.0], args.shift_reference,
                        preset["n_cal"], args.v_conv)
    path = out / "cnn_results.h5"
    fn = functools.partial(run_task, data=data, cache=args.cache or None)
    summary, records = run_job(tasks, fn, path, job="reproduce cnn", preset=preset, scheduler=args.scheduler,
                               progress=not args.no_progress)
    from ..cnn.plotting import save_figures, table6_markdown

    figures = save_figures(records, out) if not args.no_plots else None
    return report_job(out, path, summary, "table6.md", table6_markdown(records), figures)
