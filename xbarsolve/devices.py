"""Memristor I-V models.

The programmed state of a memristor is its conductance ``G`` (siemens), defined at the
sensing voltage ``v_read`` (volts) as ``I(v_read) / v_read`` (the polynomial model is the
documented exception: there ``G`` is the small-signal conductance at 0 V).  A model maps
a state and a voltage across the device to a current and its derivative.  Linear
devices let the solver use the exact linear path; any nonlinear model sends
``xs.solve`` to Newton (:mod:`xbarsolve.solve.newton`).

Models: :class:`Linear` (``I = G V``), :class:`Sinh`
(``I = G v_read sinh(a V) / sinh(a v_read)``) and :class:`Poly`
(``I = G V + a2 V^2 + a3 V^3``).

Writing your own model
----------------------
Subclass :class:`Device` as a frozen dataclass and provide

* ``parameters()``: the model's numbers as a float64 array ``p``;
* ``kernels``: two Numba ``@njit`` scalar functions ``current(v, G, p)`` (A) and
  ``didv(v, G, p)`` (S), the same for every cell; they must be defined at module level
  (so Numba can cache the solver specialised for them) and return finite numbers for
  finite arguments wherever possible (Newton treats a non-finite value as a failed step);
* ``spice_element(name, n_plus, n_minus, G)``: the netlist line(s) of one cell's device,
  typically an ngspice B-source ``B<name> n+ n- I=<expression of V(n+,n-)>``, and
  optionally ``spice_preamble()`` for shared ``.param``/``.func`` cards and
  ``spice_options()`` for the ngspice ``.options`` the model needs;
* optionally ``parameter_names`` and ``parameter_derivative(name, v, G)`` (the current's
  derivative with respect to a model field at fixed voltage), which the sensitivities
  (:mod:`xbarsolve.validation.sensitivity`) use.

The solver, the conversion and the SPICE export only use these members.  A complete,
tested example is in ``docs/nonlinear.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
from numba import njit

from ._config import NJIT, NJIT_FUNCTION_ARGS
from .reference import V_READ

__all__ = ["Device", "Linear", "Sinh", "Poly"]


# Not cached on disk: a cached specialisation keyed by a function argument's type does not
# survive the process that made it (Numba then fails on the stale index entry).
@njit(**NJIT_FUNCTION_ARGS)
def _evaluate(fn, v, G, p):  # pragma: no cover - compiled
    out = np.empty(v.size)
    vf = v.ravel()
    Gf = G.ravel()
    for k in range(vf.size):
        out[k] = fn(vf[k], Gf[k], p)
    return out


def _positive(value, name: str, unit: str) -> float:
    x = float(value)
    if not np.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be finite and > 0 {unit}; got {value!r}")
    return x


def _finite(value, name: str, unit: str) -> float:
    x = float(value)
    if not np.isfinite(x):
        raise ValueError(f"{name} must be a finite number ({unit}); got {value!r}")
    return x


class Device:
    """Base class of memristor models (see the module docstring for the protocol)."""

    is_linear: ClassVar[bool] = False
    #: Model fields that :meth:`parameter_derivative` differentiates (the sensitivities'
    #: model parameters, :mod:`xbarsolve.validation.sensitivity`).
    parameter_names: ClassVar[tuple[str, ...]] = ()
    v_read: float = V_READ

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

    def parameter_derivative(self, name: str, v, G) -> np.ndarray:
        """Derivative of the current with respect to the model field ``name`` (one of
        :attr:`parameter_names`) at fixed voltage ``v`` (V) and state ``G`` (S): A per
        unit of the parameter."""
        raise ValueError(f"{type(self).__name__} has no differentiable parameter {name!r}; "
                         f"it has {self.parameter_names or 'none'}")

    def spice_element(self, name: str, n_plus: str, n_minus: str, G: float) -> str:
        """Netlist line(s) of one device of state ``G`` (S) between two nodes."""
        raise NotImplementedError(f"{type(self).__name__} cannot write itself into a netlist")

    def spice_preamble(self) -> list[str]:
        """Netlist lines shared by all devices (``.param``, ``.func``); none by default."""
        return []

    def spice_options(self) -> dict[str, float]:
        """ngspice ``.options`` this model needs for ngspice to compute what it computes
        (read by :func:`xbarsolve.spice.netlist.model_options`); none by default."""
        return {}


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

    v_read: float = V_READ
    is_linear: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "v_read", _positive(self.v_read, "v_read", "V"))

    @property
    def kernels(self) -> tuple[Callable, Callable]:
        return _linear_current, _linear_didv

    def spice_element(self, name: str, n_plus: str, n_minus: str, G: float) -> str:
        return f"R{name} {n_plus} {n_minus} {1.0 / G:.17g}"


@njit(**NJIT)
def _sinh_current(v, G, p):  # pragma: no cover - compiled
    a = p[0]
    if a == 0.0:
        return G * v
    e = np.exp(a * v)
    return G * p[1] * 0.5 * (e - 1.0 / e)


@njit(**NJIT)
def _sinh_didv(v, G, p):  # pragma: no cover - compiled
    a = p[0]
    if a == 0.0:
        return G
    e = np.exp(a * v)
    return G * p[1] * a * 0.5 * (e + 1.0 / e)


@njit(**NJIT)
def _sinh_iv(v, G, p):  # pragma: no cover - compiled
    """Current and derivative together from one exponential (LLVM does not merge the two
    calls of :func:`_sinh_current` and :func:`_sinh_didv`; each costs ~3.5 ns)."""
    a = p[0]
    if a == 0.0:
        return G * v, G
    e = np.exp(a * v)
    r = 1.0 / e
    k = G * p[1] * 0.5
    return k * (e - r), k * a * (e + r)


@dataclass(frozen=True)
class Sinh(Device):
    """Sinh-type memristor, ``I = G v_read sinh(a V) / sinh(a v_read)``.

    ``G`` is the chord conductance at the sensing voltage: ``I(v_read) = G v_read``.  The
    small-signal conductance grows as ``cosh(a V)``; ``a = 0`` is the linear limit
    ``I = G V`` (still solved by Newton).

    Parameters
    ----------
    a : float
        Nonlinearity (1/V), finite and >= 0, with ``a * v_read <= 700``.
    v_read : float
        Sensing voltage (V), > 0, at which the state ``G`` is defined.

    Notes
    -----
    Netlist: an ngspice B-source ``I = (G v_read / sinh(a v_read)) * sinh(a V(n+, n-))``.
    """

    a: float = 2.0
    v_read: float = V_READ
    parameter_names: ClassVar[tuple[str, ...]] = ("a",)

    def __post_init__(self) -> None:
        a = _finite(self.a, "a", "1/V")
        v_read = _positive(self.v_read, "v_read", "V")
        if a < 0 or a * v_read > 700:
            raise ValueError(f"a must satisfy 0 <= a and a * v_read <= 700 (1/V); got a={self.a!r}, v_read={v_read!r}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "v_read", v_read)

    def parameters(self) -> np.ndarray:
        """``[a, v_read / sinh(a v_read)]`` (1/V, V); the second entry is unused when ``a = 0``."""
        scale = self.v_read / np.sinh(self.a * self.v_read) if self.a > 0 else 0.0
        return np.array([self.a, scale])

    @property
    def kernels(self) -> tuple[Callable, Callable]:
        return _sinh_current, _sinh_didv

    def parameter_derivative(self, name: str, v, G) -> np.ndarray:
        """``dI/da`` (A V) at fixed ``v`` (V) and ``G`` (S), with ``G`` defined at ``v_read``:
        ``G v_read (v cosh(a v) sinh(a v_read) - v_read sinh(a v) cosh(a v_read)) / sinh(a v_read)^2``
        (0 at ``a = 0`` by symmetry, where the current is ``G v`` to first order)."""
        if name != "a":
            return super().parameter_derivative(name, v, G)
        v, G = np.asarray(v, np.float64), np.asarray(G, np.float64)
        a, vr = self.a, self.v_read
        if a == 0:
            return np.zeros(np.broadcast_shapes(v.shape, G.shape))
        sh = np.sinh(a * vr)
        return G * vr * (v * np.cosh(a * v) * sh - vr * np.sinh(a * v) * np.cosh(a * vr)) / sh**2

    def spice_element(self, name: str, n_plus: str, n_minus: str, G: float) -> str:
        if self.a == 0:
            return f"B{name} {n_plus} {n_minus} I={float(G):.17g}*V({n_plus},{n_minus})"
        k = float(G) * self.parameters()[1]
        return f"B{name} {n_plus} {n_minus} I={k:.17g}*sinh({self.a:.17g}*V({n_plus},{n_minus}))"


@njit(**NJIT)
def _poly_current(v, G, p):  # pragma: no cover - compiled
    return v * (G + v * (p[0] + v * p[1]))


@njit(**NJIT)
def _poly_didv(v, G, p):  # pragma: no cover - compiled
    return G + v * (2.0 * p[0] + 3.0 * v * p[1])


@dataclass(frozen=True)
class Poly(Device):
    """Polynomial memristor, ``I = G V + a2 V^2 + a3 V^3`` (the form of CrossSim's RRAM fit).

    Unlike every other model, ``G`` here is the **small-signal conductance at 0 V**,
    ``dI/dV(0)``, not ``I(v_read) / v_read``; ``a2`` and ``a3`` are the same for every
    cell, so a cell of ``G = 0`` still conducts ``a2 V^2 + a3 V^3``.

    Parameters
    ----------
    a2 : float
        Quadratic coefficient (A/V^2), finite, any sign.
    a3 : float
        Cubic coefficient (A/V^3), finite, any sign.
    v_read : float
        Sensing voltage (V), > 0; carried for the protocol, not used by the I-V law.

    Notes
    -----
    Netlist: an ngspice B-source written in Horner form with products only,
    ``I = V*(G + V*(a2 + a3*V))`` (ngspice's ``**`` takes ``|x|`` of a negative base).
    """

    a2: float = 0.0
    a3: float = 0.0
    v_read: float = V_READ

    def __post_init__(self) -> None:
        object.__setattr__(self, "a2", _finite(self.a2, "a2", "A/V^2"))
        object.__setattr__(self, "a3", _finite(self.a3, "a3", "A/V^3"))
        object.__setattr__(self, "v_read", _positive(self.v_read, "v_read", "V"))

    def parameters(self) -> np.ndarray:
        """``[a2, a3]`` (A/V^2, A/V^3)."""
        return np.array([self.a2, self.a3])

    @property
    def kernels(self) -> tuple[Callable, Callable]:
        return _poly_current, _poly_didv

    def spice_element(self, name: str, n_plus: str, n_minus: str, G: float) -> str:
        v = f"V({n_plus},{n_minus})"
        return f"B{name} {n_plus} {n_minus} I={v}*({float(G):.17g}+{v}*({self.a2:.17g}+{self.a3:.17g}*{v}))"
