"""Plots of network costs (matplotlib, imported inside the function)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_network_cost"]

_PARTS = (("read_pJ", "analog read"), ("dac_pJ", "DAC"), ("adc_pJ", "ADC"), ("digital_pJ", "digital"))


def plot_network_cost(cost, ax=None):
    """Stacked bars of the energy per inference of every layer (nJ): analog read, DAC,
    ADC, digital.

    Parameters
    ----------
    cost : NetworkCost
        From :func:`~xbarsolve.cost.network_cost`.
    ax : matplotlib Axes, optional
        Drawn into; a new figure's axes otherwise.

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(cost.layers) + 2), 3.5))
    names = [c.name for c in cost.layers]
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for key, label in _PARTS:
        h = np.array([getattr(c, key) for c in cost.layers]) * 1e-3
        ax.bar(x, h, bottom=bottom, label=label)
        bottom += h
    ax.set_xticks(x, names, rotation=60, ha="right")
    ax.set_ylabel("energy per inference (nJ)")
    ax.set_title(f"{cost.table_name}: {cost.energy_pJ * 1e-3:.3g} nJ, {cost.latency_ns * 1e-3:.3g} us per inference")
    ax.legend(frameon=False)
    return ax
