"""Timeline figure of a schedule (matplotlib imported inside the function)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_timeline"]


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
