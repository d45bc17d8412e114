"""Timeline figure of a schedule (matplotlib imported inside the function)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_timeline", "plot_speedups", "plot_pulses_by_centre", "aras_figures"]


def plot_timeline(sched, ax=None, *, time_unit: float = 1e-3):
    """One row per crossbar: writes in grey, computations coloured by layer.

    Parameters
    ----------
    sched : xbarsolve.program.Schedule
    ax : matplotlib Axes or None
        Drawn on a new figure when omitted.
    time_unit : float
        Seconds per unit of the time axis (default ms).

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt
    from .schedule import COMPUTE, WRITE

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.25 * min(sched.accelerator.n_crossbars, 64) + 1.5))
    cmap = plt.get_cmap("viridis")
    n_layers = max(len(sched.layer_names), 1)
    for x in np.unique(sched.crossbar):
        on = sched.crossbar == x
        for kind, colour in ((WRITE, None), (COMPUTE, None)):
            sel = on & (sched.kind == kind)
            if not sel.any():
                continue
            spans = list(zip(sched.start_s[sel] / time_unit, (sched.end_s[sel] - sched.start_s[sel]) / time_unit))
            if kind == WRITE:
                ax.broken_barh(spans, (x - 0.4, 0.8), facecolors="0.6", edgecolors="0.3", linewidth=0.3)
            else:
                colours = [cmap(l / n_layers) for l in sched.layer[sel]]
                ax.broken_barh(spans, (x - 0.4, 0.8), facecolors=colours)
    ax.set_xlabel("time (ms)" if time_unit == 1e-3 else f"time (x {time_unit:g} s)")
    ax.set_ylabel("crossbar")
    ax.set_title(f"{sched.network}: {sched.policy}, latency {sched.latency_s / time_unit:.3g}, "
                 f"speedup {sched.speedup:.2f}x (grey: writes)")
    return ax


def plot_speedups(records, crossbars: int, ax=None):
    """Speedup over the naive schedule vs batch, per network, for the overlapped,
    replicated and re-encoded schedules (``xbarsolve reproduce aras`` records)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    rows = [(t, r) for t, r in records if t["kind"] == "schedule" and t["crossbars"] == crossbars
            and t["write_model"] == "incremental"]
    styles = {"overlap": "-", "replicated": "--", "reuse": ":"}
    for i, net in enumerate(sorted({t["network"] for t, _ in rows})):
        pts = sorted((t["batch"], r) for t, r in rows if t["network"] == net)
        for variant, ls in styles.items():
            ax.plot([b for b, _ in pts], [r[variant]["speedup"] for _, r in pts], ls, marker="o", color=f"C{i}",
                    label=f"{net} {variant}")
    ax.set_xscale("log")
    ax.set_xlabel("images per inference (batch)")
    ax.set_ylabel("speedup over naive")
    ax.set_title(f"{crossbars} crossbars")
    ax.legend(fontsize=7)
    return ax


def plot_pulses_by_centre(records, ax=None):
    """Write pulses of the re-encoded schedule at each candidate centre, relative to no
    re-encoding, per network (its incremental-model record with the fewest crossbars and
    the smallest batch)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    seen = {}
    for t, r in sorted(((t, r) for t, r in records if t["kind"] == "schedule" and t["write_model"] == "incremental"),
                       key=lambda tr: (tr[0]["crossbars"], tr[0]["batch"])):
        seen.setdefault(t["network"], (t, r))
    for i, (net, (t, r)) in enumerate(sorted(seen.items())):
        rel = np.asarray(r["pulses_by_centre"]) / r["replicated"]["pulses"]
        x = np.arange(len(rel)) + 0.8 * i / max(len(seen), 1)
        ax.bar(x, 100 * (1 - rel), width=0.8 / max(len(seen), 1), label=f"{net} ({t['crossbars']} crossbars, batch {t['batch']})")
    first = next(iter(seen.values()), None)
    if first is not None:
        ax.set_xticks(np.arange(len(first[1]["centres"])) + 0.4 - 0.4 / max(len(seen), 1))
        ax.set_xticklabels([str(c) for c in first[1]["centres"]])
    ax.set_xlabel("common centre")
    ax.set_ylabel("write pulses saved (%)")
    ax.legend(fontsize=7)
    return ax


def aras_figures(records, out) -> list:
    """Write the ``reproduce aras`` figures as PNG files into ``out``; returns their paths."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    paths = []
    for xb in sorted({t["crossbars"] for t, _ in records if t["kind"] == "schedule"}):
        ax = plot_speedups(records, xb)
        p = out / f"aras_speedup_{xb}xbars.png"
        ax.figure.tight_layout()
        ax.figure.savefig(p, dpi=120)
        plt.close(ax.figure)
        paths.append(p)
    if any(t["kind"] == "schedule" for t, _ in records):
        ax = plot_pulses_by_centre(records)
        p = out / "aras_pulses_by_centre.png"
        ax.figure.tight_layout()
        ax.figure.savefig(p, dpi=120)
        plt.close(ax.figure)
        paths.append(p)
    return paths
