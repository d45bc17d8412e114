"""Memristor I-V models.

The programmed state of a memristor is its conductance ``G`` (siemens), defined at the
sensing voltage ``v_read`` (volts) as ``I(v_read) / v_read``.  A model maps a state and a
voltage across the device to a current and its derivative.  Linear devices let the
solver use the exact linear path; any nonlinear model sends ``xs.solve`` to Newton.

Writing your own model
----------------------
Subclass :class:`Device` as a frozen dataclass and provide

* ``parameters()``: the model's numbers as a float64 array ``p``;
* ``kernels``: two Numba ``@njit`` scalar functions ``current(v, G, p)`` (A) and
  ``didv(v, G, p)`` (S), the same for every cell;
* ``spice_element(name, n_plus, n_minus, G)``: the netlist line(s) of one cell's device,
  and optionally ``spice_preamble()`` for shared ``.param``/``.model`` cards.

The solver, the conversion and the SPICE export only use these members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
from numba import njit

from ._config import NJIT

__all__ = ["Device", "Linear"]


@njit(**NJIT)
def _evaluate(fn, v, G, p):  # pragma: no cover - compiled
    out = np.empty(v.size)
    vf = v.ravel()
    Gf = G.ravel()
    for k in range(vf.size):
        out[k] = fn(vf[k], Gf[k], p)
    return out


class Device:
    """Base class of memristor models (see the module docstring for the protocol)."""

    is_linear: ClassVar[bool] = False
    v_read: float = 0.2

    def parameters(self) -> np.ndarray:
        """Model parameters as a float64 array, passed to the compiled kernels."""
        return np.empty(0)

    @property
    def kernels(self) -> tuple[Callable, Callable]:
        """Compiled scalar functions ``(current(v, G, p), didv(v, G, p))``."""
        raise NotImplementedError(f"{type(self).__name__} does not define its compiled kernels")

    def current(self, v, G) -> np.ndarray:
        """Device current (A) at voltage ``v`` (V) for state ``G`` (S); arrays broadcast."""
        v, G = np.broadcast_arrays(np.asarray(v, np.float64), np.asarray(G, np.float64))
        return _evaluate(self.kernels[0], np.ascontiguousarray(v), np.ascontiguousarray(G), self.parameters()).reshape(v.shape)

    def didv(self, v, G) -> np.ndarray:
        """Small-signal conductance dI/dV (S) at voltage ``v`` (V) for state ``G`` (S)."""
        v, G = np.broadcast_arrays(np.asarray(v, np.float64), np.asarray(G, np.float64))
        return _evaluate(self.kernels[1], np.ascontiguousarray(v), np.ascontiguousarray(G), self.parameters()).reshape(v.shape)

    def spice_element(self, name: str, n_plus: str, n_minus: str, G: float) -> str:
        """Netlist line(s) of one device of state ``G`` (S) between two nodes."""
        raise NotImplementedError(f"{type(self).__name__} cannot write itself into a netlist")

    def spice_preamble(self) -> list[str]:
        """Netlist lines shared by all devices (``.param``, ``.func``); none by default."""
        return []


@njit(**NJIT)
def _linear_current(v, G, p):  # pragma: no cover - compiled
    return G * v


@njit(**NJIT)
def _linear_didv(v, G, p):  # pragma: no cover - compiled
    return G


@dataclass(frozen=True)
class Linear(Device):
    """Ohmic memristor, ``I = G V``.

    Parameters
    ----------
    v_read : float
        Sensing voltage (V) at which the state ``G`` is defined; irrelevant for a
        linear device but kept so every model carries it.
    """

    v_read: float = 0.2
    is_linear: ClassVar[bool] = True

    @property
    def kernels(self) -> tuple[Callable, Callable]:
        return _linear_current, _linear_didv

    def spice_element(self, name: str, n_plus: str, n_minus: str, G: float) -> str:
        return f"R{name} {n_plus} {n_minus} {1.0 / G:.17g}"
