"""xbarsolve: SPICE-exact simulation of resistive crossbar arrays at matrix-multiply speed.

>>> import numpy as np, xbarsolve as xs
>>> xbar = xs.Crossbar(np.full((16, 8), 30e-6), r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0)
>>> res = xs.solve(xbar, np.full(16, 0.2))
>>> res.currents.shape
(1, 8)

Importing the package is light: subpackages with heavy or optional dependencies
(``spice`` needs PySpice, ``cnn``, ``sweeps``) load on first attribute access.
"""

from __future__ import annotations

import importlib

from . import devices, transistors
from .crossbar import Crossbar
from .errors import ConvergenceError, FormatError, LockError, SingularNetworkError, XbarsolveError
from .results import SolveResult
from .solve import Factorization, factorize, solve, transfer_matrix

__version__ = "0.1.0"

# Public names defined in modules that load on first use: name -> (module, attribute or None).
_LAZY = {
    "spice": (".spice", None),
    "io": (".io", None),
    "metrics": (".metrics", None),
    "generators": (".generators", None),
    "cnn": (".cnn", None),
    "program": (".program", None),
    "sweeps": (".sweeps", None),
    "validation": (".validation", None),
    "torch": (".torch", None),
    "cost": (".cost", None),
    "plotting": (".plotting", None),
    "convert": (".conversion", "convert"),
    "Conversion": (".conversion", "Conversion"),
    "optimize_conversion_signal": (".conversion", "optimize_conversion_signal"),
    "NewtonOptions": (".solve.options", "NewtonOptions"),
    "Calibration": (".calibration", "Calibration"),
    "fit_parasitics": (".validation", "fit_parasitics"),
    "save": (".io", "save"),
    "load": (".io", "load"),
    "registry": (".registry", None), "register_model": (".registry", "register_model"),
}

__all__ = [
    "Crossbar", "SolveResult", "solve", "transfer_matrix", "factorize", "Factorization",
    "devices", "transistors",
    "ConvergenceError", "FormatError", "LockError", "SingularNetworkError", "XbarsolveError",
    *_LAZY,
]


def __getattr__(name):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'xbarsolve' has no attribute {name!r}") from None
    mod = importlib.import_module(module, __name__)
    return mod if attr is None else getattr(mod, attr)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
