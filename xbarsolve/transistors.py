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
* ``switched(vg, on)``: how the model realises cells that the inputs switch off (scheme
  B's bits): a gate at 0 V (a model with a gate) or an open channel (the default for a
  model without one);
* ``spice_element(name, drain, gate, source)`` and ``spice_preamble()`` for netlists;
* optionally ``junction_kernel``: a Numba ``@njit`` function ``junction(v, p) -> (i, g)``
  giving the current (A) that flows from a drain or source terminal at potential ``v``
  (V) into the grounded bulk, and its derivative (S).  The default is no junction;
* optionally ``spice_options()`` (ngspice ``.options`` the model needs, e.g. ``gmin``) and
  ``parameter_names`` with ``parameter_derivative(name, vd, vs, vg)`` for the sensitivities.

:class:`Switch` is an ideal short (the solver merges the middle node into ``B``; it has
no kernel); :class:`Resistor` is linear; :class:`Level1` is ngspice's level-1
(Shichman-Hodges) NMOS with its default junction diodes, see ``docs/nonlinear.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
from numba import njit

from ._config import NJIT, NJIT_FUNCTION_ARGS

__all__ = ["Transistor", "Switch", "Resistor", "Level1", "series_conductance"]

#: Boltzmann constant (J/K) and elementary charge (C) as in ngspice's ``const.h``.
_BOLTZMANN = 1.38064852e-23
_CHARGE = 1.6021766208e-19
#: ngspice's nominal and default circuit temperature, 27 degC (K).
_T_NOM = 300.15
#: ngspice caps exponential arguments at this value (``MAX_EXP_ARG``).
_MAX_EXP_ARG = 709.0


@njit(**NJIT)
def _no_junction(v, p):  # pragma: no cover - compiled
    return 0.0, 0.0


@njit(**NJIT_FUNCTION_ARGS)
def _ids_arrays(fn, vd, vs, vg, p):  # pragma: no cover - compiled
    """A transistor kernel over 1-D arrays: rows (current, d/dvd, d/dvs)."""
    out = np.empty((3, vd.size))
    for k in range(vd.size):
        i, a, b = fn(vd[k], vs[k], vg[k], p)
        out[0, k] = i
        out[1, k] = a
        out[2, k] = b
    return out


@njit(**NJIT_FUNCTION_ARGS)
def _junction_arrays(fn, v, p):  # pragma: no cover - compiled
    """A junction kernel over a 1-D array: rows (current, derivative)."""
    out = np.empty((2, v.size))
    for k in range(v.size):
        i, g = fn(v[k], p)
        out[0, k] = i
        out[1, k] = g
    return out


def _flat(*arrays) -> list[np.ndarray]:
    return [np.ascontiguousarray(np.ravel(a), dtype=np.float64) for a in np.broadcast_arrays(*arrays)]


class Transistor:
    """Base class of access-transistor models (frozen dataclasses)."""

    is_linear: ClassVar[bool] = False
    #: Model fields that :meth:`parameter_derivative` differentiates (the sensitivities'
    #: model parameters, :mod:`xbarsolve.validation.sensitivity`).
    parameter_names: ClassVar[tuple[str, ...]] = ()

    def parameters(self) -> np.ndarray:
        """Model parameters as a float64 array, passed to the compiled kernel."""
        return np.empty(0)

    @property
    def kernel(self) -> Callable:
        """Compiled ``ids(vd, vs, vg, p) -> (i, di_dvd, di_dvs)``."""
        raise NotImplementedError(f"{type(self).__name__} does not define a compiled kernel")

    @property
    def junction_kernel(self) -> Callable:
        """Compiled ``junction(v, p) -> (i, g)``: current (A) from a terminal at ``v`` (V)
        into the grounded bulk and its derivative (S).  No junction by default."""
        return _no_junction

    @property
    def is_short(self) -> bool:
        """True when the transistor is an ideal short (no middle node in the circuit)."""
        return False

    def gate_voltages(self, m: int) -> np.ndarray | None:
        """Gate voltage (V) of each of ``m`` rows, or ``None`` for a model without a gate."""
        return None

    def switched(self, vg: np.ndarray | None, on: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """How the model realises cells that the inputs switch on and off
        (:meth:`xbarsolve.topology.Topology.switching`; scheme B's bits).

        Parameters
        ----------
        vg : ndarray, shape (m,), or None
            Gate voltage (V) of each row (:meth:`gate_voltages`); None without a gate.
        on : ndarray of bool, shape (k, m)
            Rows whose cells the inputs switch on, per input vector.

        Returns
        -------
        gates : ndarray, shape (k, m), or None
            Gate voltage (V) of each row per vector: ``vg * on`` for a model with a gate,
            which then computes the off state itself (0 V gate, junction leakage included;
            a netlist writes the gate as an ideal VCVS of gain ``vg`` on the bit's source).
            None for a model without a gate or an ideal short.
        open : ndarray of bool, shape (k, m), or None
            Rows whose transistors' channels are open (``~on``) for a model without a gate
            or an ideal short: the memristor then hangs from its top node alone.  None
            when the gate does the switching.
        """
        if vg is None or self.is_short:
            return None, ~on
        return vg * on, None

    def ids(self, vd, vs, vg) -> np.ndarray:
        """The kernel over arrays (1-D, or broadcast and flattened): rows (drain-to-source
        current (A), its derivatives with respect to ``vd`` and ``vs`` (S)), shape (3, size)."""
        return _ids_arrays(self.kernel, *_flat(vd, vs, vg), np.asarray(self.parameters(), np.float64))

    def junction(self, v) -> np.ndarray:
        """The junction kernel over an array (flattened): rows (current into the bulk (A),
        its derivative (S)), shape (2, size)."""
        return _junction_arrays(self.junction_kernel, *_flat(v), np.asarray(self.parameters(), np.float64))

    def parameter_derivative(self, name: str, vd, vs, vg) -> np.ndarray:
        """Derivative of the drain-to-source current with respect to the model field
        ``name`` (one of :attr:`parameter_names`) at fixed terminal voltages (V): A per
        unit of the parameter, flattened like :meth:`ids`."""
        raise ValueError(f"{type(self).__name__} has no differentiable parameter {name!r}; "
                         f"it has {self.parameter_names or 'none'}")

    def spice_options(self) -> dict[str, float]:
        """ngspice ``.options`` this model needs for ngspice to compute what it computes
        (read by :func:`xbarsolve.spice.netlist.model_options`); none by default."""
        return {}

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

    @property
    def is_short(self) -> bool:
        return True

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
    parameter_names: ClassVar[tuple[str, ...]] = ("r_on",)

    def __post_init__(self) -> None:
        r_on = float(self.r_on)
        if not np.isfinite(r_on) or r_on < 0:
            raise ValueError(f"r_on must be a finite resistance >= 0 ohm; got {self.r_on!r}")
        object.__setattr__(self, "r_on", r_on)

    @property
    def is_short(self) -> bool:
        return self.r_on == 0

    def parameters(self) -> np.ndarray:
        """``[1 / r_on]`` (S); ``inf`` for a short."""
        return np.array([1.0 / self.r_on if self.r_on > 0 else np.inf])

    @property
    def kernel(self) -> Callable:
        return _resistor_ids

    def parameter_derivative(self, name: str, vd, vs, vg) -> np.ndarray:
        """``dI/dr_on = -(vd - vs) / r_on^2`` (A/ohm)."""
        if name != "r_on":
            return super().parameter_derivative(name, vd, vs, vg)
        vd, vs, _ = _flat(vd, vs, vg)
        return -(vd - vs) / self.r_on**2

    def spice_element(self, name: str, drain: str, gate: str, source: str) -> str:
        if self.r_on == 0:
            return f"V{name} {drain} {source} 0"
        return f"R{name} {drain} {source} {self.r_on:.17g}"


@njit(**NJIT)
def _resistor_ids(vd, vs, vg, p):  # pragma: no cover - compiled
    g = p[0]
    return g * (vd - vs), g, -g


@njit(**NJIT)
def _level1_ids(vd, vs, vg, p):  # pragma: no cover - compiled
    """ngspice ``mos1load.c`` drain current of an NMOS with gamma = 0 (no body effect).

    ``p = [vto, beta, lambda, ...]``.  Returns the drain-to-source channel current (A)
    and its derivatives with respect to the drain and source potentials (S).
    """
    vto = p[0]
    beta = p[1]
    lam = p[2]
    vds = vd - vs
    if vds >= 0.0:  # normal mode: vgs controls the channel
        mode = 1.0
        vgst = vg - vs - vto
        v = vds
    else:  # inverse mode: the roles of drain and source swap
        mode = -1.0
        vgst = vg - vd - vto
        v = -vds
    if vgst <= 0.0:  # cutoff
        return 0.0, 0.0, 0.0
    betap = beta * (1.0 + lam * v)
    if vgst <= v:  # saturation
        cdrain = betap * vgst * vgst * 0.5
        gm = betap * vgst
        gds = lam * beta * vgst * vgst * 0.5
    else:  # linear (triode)
        cdrain = betap * v * (vgst - 0.5 * v)
        gm = betap * v
        gds = betap * (vgst - v) + lam * beta * v * (vgst - 0.5 * v)
    if mode > 0.0:
        return cdrain, gds, -gm - gds
    return -cdrain, gm + gds, -gds


@njit(**NJIT)
def _level1_junction(v, p):  # pragma: no cover - compiled
    """ngspice's bulk junction diode of a drain or source at ``v`` (V), bulk at 0 V.

    ``p[3] = is`` (A), ``p[4] = gmin`` (S), ``p[5] = vt`` (V), ``p[6] = 1 / vt`` (1/V).
    Returns the current out of the terminal into the bulk (A) and its derivative (S).
    """
    i_s = p[3]
    gmin = p[4]
    vt = p[5]
    vb = -v  # bulk-to-terminal voltage
    if vb <= -3.0 * vt:
        gb = gmin
        cb = gmin * vb - i_s
    else:
        e = np.exp(min(709.0, vb * p[6]))
        gb = i_s * e * p[6] + gmin
        cb = i_s * (e - 1.0) + gmin * vb
    return -cb, gb


@dataclass(frozen=True, eq=False)
class Level1(Transistor):
    """Level-1 (Shichman-Hodges) NMOS with ngspice's equations and defaults.

    Drain on the memristor side (middle node ``M``), source on the column wire (``B``),
    bulk at ground, gate at ``v_gate``.  The channel current is ngspice's ``mos1load.c``
    with ``gamma = 0`` (the ngspice default when ``nsub`` is not given): cutoff
    (``vgst <= 0``), saturation and triode, and the inverse mode (source and drain swap
    when ``V_M < V_B``), ``beta = kp w / l`` and ``betap = beta (1 + lambda |vds|)``.

    ngspice defaults replicated for a DC operating point at 27 degC (= ``tnom``): the
    bulk-drain and bulk-source junction diodes with saturation current ``is_`` and the
    conductance ``gmin`` in parallel (ngspice's ``.option gmin``, 1e-12 S), with the
    piecewise form of ``mos1load.c`` (``-is + gmin v`` below ``-3 vt``, exponential
    above, exponent capped at 709).  ``ld``, ``rd``, ``rs``, ``rsh``, ``js`` are 0 and
    ``m = 1`` as in ngspice; capacitances do not affect DC.

    Parameters
    ----------
    vto : float
        Threshold voltage (V), finite.
    kp : float
        Transconductance parameter (A/V^2), > 0.
    w, l : float
        Channel width and length (m), > 0.
    lambda_ : float
        Channel-length modulation (1/V), >= 0.
    v_gate : float or array_like, shape (m,)
        Gate voltage (V), common to all rows or one per row; finite.
    is_ : float
        Junction saturation current (A), >= 0; ngspice's default 1e-14 A.
    gmin : float
        Conductance across each junction (S), >= 0; ngspice's default 1e-12 S.
    """

    vto: float = 0.7
    kp: float = 100e-6
    w: float = 2e-6
    l: float = 0.5e-6  # noqa: E741 - SPICE's name
    lambda_: float = 0.02
    v_gate: float | np.ndarray = 3.3
    is_: float = 1e-14
    gmin: float = 1e-12
    parameter_names: ClassVar[tuple[str, ...]] = ("kp", "vto")

    def __post_init__(self) -> None:
        def num(name, unit, lo=None, strict=False):
            x = float(getattr(self, name))
            ok = np.isfinite(x) and (lo is None or (x > lo if strict else x >= lo))
            if not ok:
                rng = "finite" if lo is None else f"finite and {'>' if strict else '>='} {lo:g}"
                raise ValueError(f"{name} must be {rng} {unit}; got {getattr(self, name)!r}")
            object.__setattr__(self, name, x)

        num("vto", "V")
        num("kp", "A/V^2", 0.0, strict=True)
        num("w", "m", 0.0, strict=True)
        num("l", "m", 0.0, strict=True)
        num("lambda_", "1/V", 0.0)
        num("is_", "A", 0.0)
        num("gmin", "S", 0.0)
        vg = np.asarray(self.v_gate, dtype=np.float64)
        if vg.ndim > 1 or not np.isfinite(vg).all():
            raise ValueError(f"v_gate must be a finite voltage (V) or a 1-D array of one per row; got {self.v_gate!r}")
        if vg.ndim == 0:
            object.__setattr__(self, "v_gate", float(vg))
        else:
            vg = vg.copy()
            vg.setflags(write=False)
            object.__setattr__(self, "v_gate", vg)

    @property
    def beta(self) -> float:
        """``kp w / l`` (A/V^2)."""
        return self.kp * self.w / self.l

    @property
    def vt(self) -> float:
        """Thermal voltage kT/q at 27 degC (V)."""
        return _BOLTZMANN * _T_NOM / _CHARGE

    def parameters(self) -> np.ndarray:
        """``[vto, beta, lambda, is, gmin, vt, 1/vt]`` (V, A/V^2, 1/V, A, S, V, 1/V)."""
        return np.array([self.vto, self.beta, self.lambda_, self.is_, self.gmin, self.vt, 1.0 / self.vt])

    @property
    def kernel(self) -> Callable:
        return _level1_ids

    @property
    def junction_kernel(self) -> Callable:
        return _level1_junction

    def gate_voltages(self, m: int) -> np.ndarray:
        vg = np.asarray(self.v_gate, dtype=np.float64)
        if vg.ndim == 1 and vg.shape[0] != m:
            raise ValueError(f"v_gate has {vg.shape[0]} entries but the array has m = {m} rows")
        return np.array(np.broadcast_to(vg, (m,)))

    def parameter_derivative(self, name: str, vd, vs, vg) -> np.ndarray:
        """``dI/dkp = I / kp`` (the current is proportional to ``beta = kp w / l``; V^2) and
        ``dI/dvto = -dI/dvg = dI/dvd + dI/dvs`` (the channel sees ``vg - vto``; S)."""
        if name not in self.parameter_names:
            return super().parameter_derivative(name, vd, vs, vg)
        i, gd, gs = self.ids(vd, vs, vg)
        return i / self.kp if name == "kp" else gd + gs

    def spice_options(self) -> dict[str, float]:
        """``gmin``: ngspice has one ``gmin`` for all devices and puts it across every
        junction, as this model does; the deck's global value becomes this model's."""
        return {"gmin": self.gmin}

    def spice_element(self, name: str, drain: str, gate: str, source: str) -> str:
        return f"M{name} {drain} {gate} {source} 0 nch w={self.w:.17g} l={self.l:.17g}"

    def spice_preamble(self) -> list[str]:
        return [
            f".model nch nmos level=1 vto={self.vto:.17g} kp={self.kp:.17g} lambda={self.lambda_:.17g} "
            f"is={self.is_:.17g}"
        ]


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
