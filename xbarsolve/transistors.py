"""Access-transistor models of a 1T1M cell.

The transistor sits between the memristor's lower terminal (middle node ``M``, the
drain) and the column wire (bottom node ``B``, the source); the bulk is at ground and the
gate at ``v_gate``.  ``None`` in :class:`xbarsolve.Crossbar` means a 1R array (no
transistor at all).

Protocol (for the solver, conversion and SPICE export)
------------------------------------------------------
* ``parameters()``: float64 array ``p`` passed to the kernel;
* ``kernel``: a Numba ``@njit`` function ``ids(vd, vs, vg, p) -> (i, di_dvd, di_dvs)``
  giving the drain-to-source current (A) and its derivatives (S);
* ``gate_voltages(m)``: gate voltage of each row (V), or ``None`` without a gate;
* ``spice_element(name, drain, gate, source)`` and ``spice_preamble()`` for netlists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

__all__ = ["Transistor", "Switch", "Resistor", "series_conductance"]


class Transistor:
    """Base class of access-transistor models (frozen dataclasses)."""

    is_linear: ClassVar[bool] = False

    def parameters(self) -> np.ndarray:
        """Model parameters as a float64 array, passed to the compiled kernel."""
        return np.empty(0)

    @property
    def kernel(self) -> Callable:
        """Compiled ``ids(vd, vs, vg, p) -> (i, di_dvd, di_dvs)``."""
        raise NotImplementedError(f"{type(self).__name__} does not define a compiled kernel")

    def gate_voltages(self, m: int) -> np.ndarray | None:
        """Gate voltage (V) of each of ``m`` rows, or ``None`` for a model without a gate."""
        return None

    def spice_element(self, name: str, drain: str, gate: str, source: str) -> str:
        """Netlist line(s) of one transistor."""
        raise NotImplementedError(f"{type(self).__name__} cannot write itself into a netlist")

    def spice_preamble(self) -> list[str]:
        """Netlist lines shared by all transistors (``.model`` cards); none by default."""
        return []


@dataclass(frozen=True)
class Switch(Transistor):
    """Ideal switch: a short when on (the cell is then the memristor alone)."""

    is_linear: ClassVar[bool] = True

    def spice_element(self, name: str, drain: str, gate: str, source: str) -> str:
        # A 0 V source keeps the middle node in the netlist and measures the cell current.
        return f"V{name} {drain} {source} 0"


@dataclass(frozen=True)
class Resistor(Transistor):
    """Linear on-resistance in series with the memristor.

    Parameters
    ----------
    r_on : float
        On-resistance (ohm), finite and >= 0.
    """

    r_on: float = 1e3
    is_linear: ClassVar[bool] = True

    def __post_init__(self) -> None:
        r_on = float(self.r_on)
        if not np.isfinite(r_on) or r_on < 0:
            raise ValueError(f"r_on must be a finite resistance >= 0 ohm; got {self.r_on!r}")
        object.__setattr__(self, "r_on", r_on)

    def spice_element(self, name: str, drain: str, gate: str, source: str) -> str:
        if self.r_on == 0:
            return f"V{name} {drain} {source} 0"
        return f"R{name} {drain} {source} {self.r_on:.17g}"


def series_conductance(G: np.ndarray, transistor: Transistor | None) -> np.ndarray:
    """Conductance (S) of a linear cell: the memristor ``G`` in series with the transistor.

    Parameters
    ----------
    G : ndarray
        Memristor conductances (S).
    transistor : Transistor or None
        A linear transistor model, or ``None`` for a 1R cell.
    """
    if transistor is None or isinstance(transistor, Switch):
        return G
    if isinstance(transistor, Resistor):
        return G / (1.0 + G * transistor.r_on)
    raise TypeError(f"series_conductance needs a linear transistor model; got {type(transistor).__name__}")
