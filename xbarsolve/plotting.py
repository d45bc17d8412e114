"""Matplotlib figures of the single-crossbar study (Zhang & Hu 2022, Figs. 11-18).

Every function takes the records of a results file (``xbarsolve.sweeps.read_records``),
draws on ``ax`` (a new figure when omitted) and returns the axes.  Matplotlib is imported
inside the functions, so importing this module is light.

Figures (in the roles the paper gives them):

* :func:`fig11_conversion_signal` - conversion outputs vs ideal on 144x16 for the all-1
  and all-0.1 conversion signals;
* :func:`fig12_methods_scatter` - outputs vs ideal for plain, conversion, conversion +
  calibration on the largest array;
* :func:`fig13_error_distribution` - output-error histograms per method;
* :func:`fig14_error_vs_amplitude` - mean relative error vs conversion amplitude;
* :func:`fig15_error_vs_sparsity` / :func:`fig16_worst_vs_sparsity` - mean / worst
  relative error vs input sparsity;
* :func:`fig17_error_vs_size` - mean and worst relative error vs crossbar size;
* :func:`fig18_error_vs_kernel_type` - mean relative error vs kernel type.

:func:`crossbar_figures` writes them all as PNG files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "select", "error_vs", "scatter_outputs", "fig11_conversion_signal", "fig12_methods_scatter",
    "fig13_error_distribution", "fig14_error_vs_amplitude", "fig15_error_vs_sparsity",
    "fig16_worst_vs_sparsity", "fig17_error_vs_size", "fig18_error_vs_kernel_type", "crossbar_figures",
]

METHODS = ("plain", "calibration", "conversion", "conversion+calibration")


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3.6))
    return ax


def select(records, **criteria) -> list:
    """The ``(task, record)`` pairs whose task matches every ``field=value`` given
    (``size="576x64"`` matches ``m`` and ``n``)."""
    size = criteria.pop("size", None)
    if size is not None:
        m, n = (int(s) for s in str(size).split("x"))
        criteria.update(m=m, n=n)
    out = []
    for task, rec in records:
        if all(np.isclose(task.get(k), v) if isinstance(v, float) else task.get(k) == v for k, v in criteria.items()):
            out.append((task, rec))
    return out


def _largest_size(records) -> str:
    m, n = max(((t["m"], t["n"]) for t, _ in records), key=lambda s: s[0] * s[1])
    return f"{m}x{n}"


def _closest(records, field_, want):
    vals = sorted({t[field_] for t, _ in records})
    return min(vals, key=lambda v: abs(v - want)) if vals else want


def error_vs(records, x: str, *, stat: str = "mean", methods=METHODS, ax=None, **fixed):
    """Relative error (``stat`` = "mean" or "worst", averaged over the tasks that differ in
    fields not fixed) against task field ``x`` ("sparsity", "amplitude", "kernel_type",
    "size"), one line per method, log-scale error axis."""
    ax = _axes(ax)
    recs = select(records, **fixed)
    key = (lambda t: t["m"] * t["n"]) if x == "size" else (lambda t: t[x])
    xs = sorted({key(t) for t, _ in recs})
    labels = {key(t): f"{t['m']}x{t['n']}" for t, _ in recs} if x == "size" else None
    for method in methods:
        ys = [np.mean([r[method][stat] for t, r in recs if key(t) == v]) for v in xs]
        pos = range(len(xs)) if x in ("size", "kernel_type") else xs
        ax.plot(list(pos), ys, marker="o", label=method)
    if x in ("size", "kernel_type"):
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([labels[v] for v in xs] if labels else [str(v) for v in xs])
    if x == "amplitude":
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel({"size": "crossbar size", "kernel_type": "kernel type"}.get(x, x))
    ax.set_ylabel(f"{stat} relative error\n(fraction of output range)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def scatter_outputs(records, method: str, *, ax=None, label: str | None = None, **fixed):
    """Actual vs ideal outputs (first stored samples and columns) of the matching tasks."""
    ax = _axes(ax)
    recs = select(records, **fixed)
    if not recs:
        raise ValueError(f"no stored task matches {fixed}")
    a = np.concatenate([r[method]["scatter_actual"].ravel() for _, r in recs])
    i = np.concatenate([r[method]["scatter_ideal"].ravel() for _, r in recs])
    ax.scatter(i, a, s=3, alpha=0.5, label=label or method)
    lo, hi = float(i.min()), float(i.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("ideal output (V x weight)")
    ax.set_ylabel("crossbar output (V x weight)")
    return ax


def fig11_conversion_signal(records, *, size: str = "144x16", axes=None):
    """Fig. 11: conversion outputs for the all-1 and all-0.1 conversion signals."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    base = dict(size=size, kernel_type=1, g_range="free")
    base["sparsity"] = _closest(select(records, size=size), "sparsity", 0.0)
    for ax, amp in zip(axes, (1.0, 0.1)):
        recs = select(records, amplitude=amp, **base)
        if recs:
            scatter_outputs(recs, "conversion", ax=ax)
            r = recs[0][1]["conversion"]
            ax.set_title(f"{size}, all-{amp:g} signal: mean {100 * r['mean']:.3g} %, worst {100 * r['worst']:.3g} %", fontsize=8)
    return axes


def fig12_methods_scatter(records, *, size: str | None = None, axes=None):
    """Fig. 12: outputs vs ideal for plain, conversion and conversion + calibration."""
    import matplotlib.pyplot as plt

    size = size or _largest_size(records)
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    recs = select(records, size=size)
    ranges = {t["g_range"] for t, _ in recs}
    crit = dict(size=size, kernel_type=1, g_range="free" if "free" in ranges else sorted(ranges)[0], amplitude=_closest(recs, "amplitude", 0.1),
                sparsity=_closest(recs, "sparsity", 0.0))
    for ax, method in zip(axes, ("plain", "conversion", "conversion+calibration")):
        scatter_outputs(records, method, ax=ax, **crit)
        ax.set_title(f"{size}: {method}", fontsize=9)
    return axes


def fig13_error_distribution(records, *, size: str | None = None, ax=None, methods=METHODS, **fixed):
    """Fig. 13: distribution of the output error per method (all matching tasks pooled)."""
    ax = _axes(ax)
    size = size or _largest_size(records)
    recs = select(records, size=size, **fixed)
    edges = recs[0][1]["hist_edges"]
    centers = 0.5 * (edges[1:] + edges[:-1])
    # distinct dashes: the conversion curves lie on top of each other
    for method, ls in zip(methods, ("-", "--", "-.", ":") * len(methods)):
        h = np.sum([r[method]["error_hist"] for _, r in recs], axis=0)
        ax.step(100 * centers, h / max(h.sum(), 1), where="mid", label=method, ls=ls, lw=1.4)
    ax.set_xlabel("output error (% of output range; end bins hold outliers)")
    ax.set_ylabel("fraction of outputs")
    ax.set_title(size, fontsize=8)
    ax.legend(fontsize=7)
    return ax


def fig14_error_vs_amplitude(records, *, ax=None, **fixed):
    """Fig. 14: mean relative error vs conversion amplitude."""
    return error_vs(records, "amplitude", methods=("conversion", "conversion+calibration"), ax=ax, **fixed)


def fig15_error_vs_sparsity(records, *, size: str | None = None, ax=None, **fixed):
    """Fig. 15: mean relative error vs input sparsity."""
    return error_vs(records, "sparsity", ax=ax, size=size or _largest_size(records), **fixed)


def fig16_worst_vs_sparsity(records, *, size: str | None = None, ax=None, **fixed):
    """Fig. 16: worst relative error vs input sparsity."""
    return error_vs(records, "sparsity", stat="worst", ax=ax, size=size or _largest_size(records), **fixed)


def fig17_error_vs_size(records, *, axes=None, **fixed):
    """Fig. 17: mean and worst relative error vs crossbar size."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    error_vs(records, "size", ax=axes[0], **fixed)
    error_vs(records, "size", stat="worst", ax=axes[1], **fixed)
    return axes


def fig18_error_vs_kernel_type(records, *, ax=None, **fixed):
    """Fig. 18: mean relative error vs kernel type (1 Gaussian, 2 away from zero, 3 ternary)."""
    return error_vs(records, "kernel_type", ax=ax, **fixed)


def crossbar_figures(records, out_dir) -> list[Path]:
    """Write every figure of the study as ``out_dir/figNN_*.png``; returns the paths.

    Figures whose data the records lack (e.g. no 144x16 array in the grid) are skipped.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    ranges = {t["g_range"] for t, _ in records}
    g = "free" if "free" in ranges or not ranges else sorted(ranges)[0]
    makers = [
        ("fig11_conversion_signal", lambda: fig11_conversion_signal(records)),
        ("fig12_methods_scatter", lambda: fig12_methods_scatter(records)),
        ("fig13_error_distribution", lambda: fig13_error_distribution(records, g_range=g)),
        ("fig14_error_vs_amplitude", lambda: fig14_error_vs_amplitude(records, g_range=g)),
        ("fig15_error_vs_sparsity", lambda: fig15_error_vs_sparsity(records, g_range=g)),
        ("fig16_worst_vs_sparsity", lambda: fig16_worst_vs_sparsity(records, g_range=g)),
        ("fig17_error_vs_size", lambda: fig17_error_vs_size(records, g_range=g)),
        ("fig18_error_vs_kernel_type", lambda: fig18_error_vs_kernel_type(records, g_range=g)),
    ]
    paths = []
    for name, make in makers:
        if not select(records, size="144x16") and name.startswith("fig11"):
            continue
        obj = make()
        ax0 = np.ravel(obj)[0]
        fig = ax0.figure
        fig.tight_layout()
        p = out_dir / f"{name}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths
