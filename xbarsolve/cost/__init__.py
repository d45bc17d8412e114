"""Energy, latency and area: the exact read power of a crossbar, peripheral cost tables
(ISAAC's 32 nm figures built in, your own from JSON), the cost of an analog network per
inference and the dense-vs-sparse mapping overhead of a convolution layer (Zhang & Hu,
Table 2).  See ``docs/cost.md``.
"""

from __future__ import annotations

from .network import LayerCost, NetworkCost, network_cost
from .overhead import LayerOverhead, layer_overhead, mapped_shape
from .power import TERMS, ReadPower, power_matrices, read_power, solution_power
from .plotting import plot_network_cost
from .tables import ISAAC, UNIT_SUFFIXES, ZHANG_HU_TABLE2, Converter, CostTable, load_table, scale

__all__ = [
    "ReadPower", "read_power", "power_matrices", "solution_power", "TERMS",
    "CostTable", "Converter", "ISAAC", "ZHANG_HU_TABLE2", "load_table", "scale", "UNIT_SUFFIXES",
    "LayerOverhead", "layer_overhead", "mapped_shape",
    "LayerCost", "NetworkCost", "network_cost", "plot_network_cost",
]
