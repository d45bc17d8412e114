"""The single-crossbar study of Zhang & Hu 2022 (Sec. 4.2, Figs. 11-18) as a batch job.

``xbarsolve reproduce crossbar [--out DIR] [--quick] [--scheduler ADDRESS | --workers N]``, or
:func:`reproduce_crossbar` from Python.

Each task is one array: a size (27x16, 144x16, 288x32, 576x64), a kernel type (1
Gaussian, 2 away from zero, 3 ternary; :mod:`xbarsolve.generators`), an input sparsity,
a conversion amplitude (fraction of the 0.4 V input range) and a conductance-range
policy.  The kernel is shift-mapped (:func:`xbarsolve.mapping.shift_map`) into
``[1/R_off, 1/R_on]`` with the reference parasitics (:mod:`xbarsolve.reference`: 1-ohm wire
segments, ``R_in = R_out = 1`` ohm), and ``n_samples`` random input vectors are applied.
Four methods are compared on the signed outputs ``V @ A`` (shift undone digitally):

* ``plain``: the mapped conductances, no compensation;
* ``calibration``: plain plus the 1st-order calibration;
* ``conversion``: ``G'`` from :func:`xbarsolve.convert` with the constant signal
  ``amplitude * 0.4 V`` (the paper's "original conversion");
* ``conversion+calibration``: the paper's method (Algorithm 1).

Calibration uses 10 vectors drawn from the shuffled inputs; every method is scored on the
remaining vectors with the paper's metrics (:mod:`xbarsolve.metrics`).  Conductance-range
policy ``g_range``: ``"free"`` clips only cells no conductance can serve (required
memristor voltage <= 0); ``"paper"`` also clips ``G'`` to ``[1/R_off, 1/R_on]``.

Every task is exact (transfer matrix of the linear array, or Newton for a nonlinear
device) and writes one record (:mod:`xbarsolve.sweeps._runner`); plots come from the file
(:mod:`xbarsolve.plotting`).
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import reference as ref
from ._runner import read_records, run_tasks

__all__ = ["REFERENCE", "METHODS", "SweepConfig", "FULL", "QUICK", "make_tasks", "run_task",
           "reproduce_crossbar", "add_crossbar_arguments", "crossbar_main"]

#: Reference parameters of Zhang & Hu, Sec. 4.1 (:mod:`xbarsolve.reference`), SI units.
REFERENCE = dict(r_on=ref.R_ON, r_off=ref.R_OFF, r_wire=ref.R_WIRE, r_in=ref.R_IN, r_out=ref.R_OUT,
                 v_max=ref.V_MAX, v_read=ref.V_READ)
METHODS = ("plain", "calibration", "conversion", "conversion+calibration")
#: Bin edges of the stored output-error histograms (dimensionless; outliers land in the end bins).
HIST_EDGES = np.linspace(-0.5, 0.5, 201)


@dataclass(frozen=True)
class SweepConfig:
    """The grid of a crossbar sweep; :meth:`tasks` expands it.

    Parameters
    ----------
    sizes : tuple of (m, n)
    amplitudes : tuple of float
        Conversion amplitudes, fractions of ``v_max``.
    sparsities : tuple of float
        Input sparsities in [0, 1).
    kernel_types : tuple of int
        1, 2, 3 (:func:`xbarsolve.generators.kernel`).
    g_ranges : tuple of {"free", "paper"}
    seeds : tuple of int
    n_samples : int
        Input vectors per task (calibration ones included).
    n_calibration : int
        Calibration vectors (paper: 10).
    r_wire : float
        Wire segment resistance (ohm) of rows and columns.
    device : {"linear", "sinh"}
        Memristor model; ``"sinh"`` uses :class:`xbarsolve.devices.Sinh` with
        ``nonlinearity`` (1/V) and needs the Newton solver.
    nonlinearity : float
        The sinh model's ``a`` (1/V); ignored for linear devices.
    """

    sizes: tuple = ((27, 16), (144, 16), (288, 32), (576, 64))
    amplitudes: tuple = (1.0, 0.1, 0.01, 0.001)
    sparsities: tuple = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    kernel_types: tuple = (1, 2, 3)
    g_ranges: tuple = ("free", "paper")
    seeds: tuple = (0,)
    n_samples: int = 1000
    n_calibration: int = ref.N_CALIBRATION
    r_wire: float = REFERENCE["r_wire"]
    device: str = "linear"
    nonlinearity: float = 0.0
    extra: dict = field(default_factory=dict)

    def tasks(self) -> list[dict]:
        """All tasks of the grid, in a deterministic order (largest arrays first)."""
        out = []
        sizes = sorted(self.sizes, key=lambda s: -s[0] * s[1])
        for (m, n), kt, sp, amp, gr, seed in itertools.product(
            sizes, self.kernel_types, self.sparsities, self.amplitudes, self.g_ranges, self.seeds
        ):
            t = dict(m=int(m), n=int(n), kernel_type=int(kt), sparsity=float(sp), amplitude=float(amp),
                     g_range=str(gr), seed=int(seed), n_samples=int(self.n_samples),
                     n_calibration=int(self.n_calibration), r_wire=float(self.r_wire),
                     r_in=REFERENCE["r_in"], r_out=REFERENCE["r_out"], r_on=REFERENCE["r_on"],
                     r_off=REFERENCE["r_off"], v_max=REFERENCE["v_max"], device=str(self.device),
                     nonlinearity=float(self.nonlinearity) if self.device != "linear" else 0.0)
            t.update(self.extra)
            out.append(t)
        return out


FULL = SweepConfig()
QUICK = SweepConfig(sizes=((27, 16), (144, 16)), amplitudes=(1.0, 0.1), sparsities=(0.0, 0.5),
                    kernel_types=(1, 3), g_ranges=("free",), n_samples=100)


def make_tasks(config: SweepConfig = FULL) -> list[dict]:
    """The task dicts of a sweep configuration."""
    return config.tasks()


def _device(task: dict):
    from .. import devices

    if task["device"] == "linear":
        return devices.Linear(v_read=REFERENCE["v_read"])
    if task["device"] == "sinh":
        return devices.Sinh(a=task["nonlinearity"], v_read=REFERENCE["v_read"])
    raise ValueError(f"device must be 'linear' or 'sinh'; got {task['device']!r}")


def _currents(xbar, V):
    from .. import solve, transfer_matrix

    if xbar.is_linear:
        return V @ transfer_matrix(xbar)
    return solve(xbar, V).currents


def _method_record(actual, ideal, n_scatter: int) -> dict:
    from .. import metrics

    s = metrics.summary(actual, ideal)
    err = metrics.output_error(actual, ideal)
    hist, _ = np.histogram(np.clip(err, HIST_EDGES[0], HIST_EDGES[-1]), bins=HIST_EDGES)
    k = min(n_scatter, actual.shape[0])
    c = min(16, actual.shape[1])
    return dict(
        mean=s.mean_relative_error, worst=s.worst_relative_error, mean_bits=s.mean_bits,
        worst_bits=s.worst_bits, mean_output_error=float(err.mean()),
        column_mean=s.column_mean, column_worst=s.column_worst, error_hist=hist.astype(np.int64),
        scatter_actual=actual[:k, :c], scatter_ideal=ideal[:k, :c],
    )


def run_task(task: dict) -> dict:
    """Run one task of the sweep (see the module docstring); returns its record."""
    from .. import Crossbar, convert, generators
    from ..calibration import Calibration
    from ..conversion import constant_signal
    from ..mapping import shift_map

    t0 = time.perf_counter()
    m, n, kt, seed = task["m"], task["n"], task["kernel_type"], task["seed"]
    g_min, g_max = 1.0 / task["r_off"], 1.0 / task["r_on"]
    A = generators.kernel(kt, (m, n), rng=np.random.default_rng([seed, m, n, kt]))
    sm = shift_map(A, g_min, g_max)
    V = generators.inputs(task["n_samples"], m, sparsity=task["sparsity"], v_max=task["v_max"],
                          rng=np.random.default_rng([seed, m, n, kt, round(task["sparsity"] * 1000), 1]))
    xbar = Crossbar(sm.G, r_row=task["r_wire"], r_col=task["r_wire"], r_in=task["r_in"], r_out=task["r_out"],
                    device=_device(task))
    v_sum = V.sum(axis=1)
    ideal = sm.ideal_outputs(V)
    order = np.random.default_rng([seed, m, n, kt, round(task["sparsity"] * 1000), 2]).permutation(V.shape[0])
    cal_idx, test_idx = order[: task["n_calibration"]], order[task["n_calibration"]:]

    bounds = dict(g_min=g_min, g_max=g_max) if task["g_range"] == "paper" else dict(g_min=None, g_max=None)
    conv = convert(xbar, constant_signal(m, task["amplitude"], v_max=task["v_max"]), on_clip="ignore", **bounds)
    outputs = {
        "plain": sm.outputs(_currents(xbar, V), v_sum),
        "conversion": sm.outputs(_currents(conv.crossbar, V), v_sum),
    }
    outputs["calibration"] = Calibration().fit(outputs["plain"][cal_idx], ideal[cal_idx]).transform(outputs["plain"])
    outputs["conversion+calibration"] = (
        Calibration().fit(outputs["conversion"][cal_idx], ideal[cal_idx]).transform(outputs["conversion"])
    )
    record = {name: _method_record(outputs[name][test_idx], ideal[test_idx], 32) for name in METHODS}
    record["conversion_stats"] = dict(
        n_clipped=conv.n_clipped, clipped_fraction=conv.clipped_fraction, n_nonpositive=conv.n_nonpositive,
        min_v_memristor=conv.min_v_memristor, worst_finite_ratio=conv.worst_finite_ratio,
        g_prime_max=float(conv.g_prime.max()),
    )
    record["hist_edges"] = HIST_EDGES
    record["seconds"] = time.perf_counter() - t0
    return record


def reproduce_crossbar(out="out/crossbar", *, quick: bool = False, config: SweepConfig | None = None,
                       scheduler=None, workers: int | None = None, progress: bool = True,
                       plots: bool = True) -> Path:
    """Run (or resume) the sweep and write ``<out>/crossbar.h5`` and ``<out>/figures/``.

    Parameters
    ----------
    out : str or Path
        Output folder.
    quick : bool
        Use the small :data:`QUICK` grid (seconds) instead of :data:`FULL`.
    config : SweepConfig, optional
        A custom grid (overrides ``quick``).
    scheduler : str or dask.distributed.Client, optional
        Dask scheduler address; local execution when ``None``.
    workers : int, optional
        Run on a local Dask cluster of this many single-threaded worker processes
        (:func:`xbarsolve.sweeps._runner.run_tasks`); not together with ``scheduler``.
    progress : bool
        Show a progress bar.
    plots : bool
        Regenerate the figures from the results file.

    Returns
    -------
    Path
        The results file.
    """
    cfg = config or (QUICK if quick else FULL)
    out = Path(out)
    path = out / "crossbar.h5"
    run_tasks(cfg.tasks(), run_task, path, scheduler=scheduler, workers=workers, progress=progress, desc="crossbar sweep",
              file_attrs={"study": "Zhang & Hu 2022 single-crossbar study (xbarsolve reproduce crossbar)"})
    if plots:
        from ..plotting import crossbar_figures

        crossbar_figures(read_records(path), out / "figures")
    return path


def add_crossbar_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xbarsolve reproduce crossbar``."""
    parser.add_argument("--out", default="out/crossbar", help="output folder (default: out/crossbar)")
    parser.add_argument("--quick", action="store_true", help="small grid for tests (seconds)")
    from ._runner import add_cluster_arguments

    add_cluster_arguments(parser)  # --scheduler ADDRESS or --workers N
    parser.add_argument("--no-plots", action="store_true", help="do not regenerate the figures")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--r-wire", type=float, default=None, help="wire segment resistance (ohm); default 1")
    parser.add_argument("--device", choices=("linear", "sinh"), default="linear", help="memristor model")
    parser.add_argument("--nonlinearity", type=float, default=2.0, help="sinh model's a (1/V)")


def crossbar_main(args: argparse.Namespace) -> int:
    """Entry point of ``xbarsolve reproduce crossbar``."""
    cfg = QUICK if args.quick else FULL
    changes = {}
    if args.r_wire is not None:
        if not np.isfinite(args.r_wire) or args.r_wire <= 0:
            raise SystemExit(f"--r-wire must be a resistance > 0 ohm; got {args.r_wire}")
        changes["r_wire"] = args.r_wire
    if args.device != "linear":
        changes.update(device=args.device, nonlinearity=args.nonlinearity)
    cfg = replace(cfg, **changes)
    path = reproduce_crossbar(args.out, config=cfg, scheduler=args.scheduler, workers=args.workers,
                              progress=not args.no_progress,
                              plots=not args.no_plots)
    print(f"results: {path}")
    if not args.no_plots:
        print(f"figures: {path.parent / 'figures'}")
    return 0
