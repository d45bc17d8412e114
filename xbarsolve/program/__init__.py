"""Writing weights: multi-level cells, programming pulses, energy, latency, endurance, and
the offline scheduling of a network on an accelerator too small to hold it (ARAS:
Sabri, Riera, Gonzalez 2024).

>>> from xbarsolve.program import write_cost
>>> write_cost([[0, 3, 1], [2, 2, 0]], [[0, 1, 3], [2, 0, 3]]).n_pulses
9

Submodules: :mod:`~xbarsolve.program.cells` (weight codes <-> cell levels),
:mod:`~xbarsolve.program.cost` (one crossbar write), :mod:`~xbarsolve.program.endurance`,
:mod:`~xbarsolve.program.accelerator`, :mod:`~xbarsolve.program.network` (a model's
layers as codes and windows), :mod:`~xbarsolve.program.reuse` (partial weight reuse),
:mod:`~xbarsolve.program.schedule`, :mod:`~xbarsolve.program.plotting`.
"""

from __future__ import annotations

from .accelerator import Accelerator
from .cells import cell_matrix, code_matrix, code_weights, join_levels, n_cells, split_codes, weight_codes
from .cost import WriteCost, WriteParams, write_cost
from .endurance import SECONDS_PER_YEAR, accumulate_wear, lifetime_s
from .network import MappedLayer, MappedNetwork, map_model, with_weights
from .reuse import ARAS_CENTRES, layer_centre, n_clipped, reencode, reencode_layer
from .schedule import COMPUTE, WRITE, Comparison, Schedule, compare, schedule

__all__ = [
    "weight_codes", "code_weights", "n_cells", "split_codes", "join_levels", "cell_matrix", "code_matrix",
    "WriteParams", "WriteCost", "write_cost", "accumulate_wear", "lifetime_s", "SECONDS_PER_YEAR",
    "Accelerator", "MappedLayer", "MappedNetwork", "map_model", "with_weights",
    "ARAS_CENTRES", "layer_centre", "reencode", "reencode_layer", "n_clipped",
    "Schedule", "schedule", "Comparison", "compare", "WRITE", "COMPUTE",
]
