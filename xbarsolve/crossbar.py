"""The circuit model: :class:`Crossbar`, a frozen specification of an m x n array.

Topology (docs/model.md section 1).  Row ``i`` is a wire of top nodes ``T(i, 0..n-1)`` joined by
segments ``r_row[i, k]`` (between ``T(i, k)`` and ``T(i, k+1)``); it is driven by the ideal
source ``V_i`` through ``r_in[i]`` at its left end (``T(i, 0)``), right end
(``T(i, n-1)``) or both.  Column ``j`` is a wire of bottom nodes ``B(0..m-1, j)`` joined by
segments ``r_col[k, j]`` (between ``B(k, j)`` and ``B(k+1, j)``); it is sensed through
``r_out[j]`` into a virtual ground (0 V) at its bottom end (``B(m-1, j)``), top end
(``B(0, j)``) or both.  The column current ``I_j`` is the total current flowing out of
column ``j`` into the sense ground(s).  Cell ``(i, j)``: memristor from ``T(i, j)`` to the
middle node ``M(i, j)``, access transistor from ``M(i, j)`` to ``B(i, j)``.

All quantities are SI: siemens, ohms, volts, amperes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .devices import Device, Linear
from .reference import V_READ
from .topology import Scheme, scheme_spec, topology
from .transistors import Transistor, series_conductance

__all__ = ["Crossbar", "Drive", "Sense", "Scheme"]

Drive = Literal["left", "right", "both"]
Sense = Literal["bottom", "top", "both"]

_DRIVES = ("left", "right", "both")
_SENSES = ("bottom", "top", "both")
#: Entries of ``Crossbar._cache`` that a pickle leaves out: forms derived from the fields
#: alone, deterministically and in milliseconds (the topology and its ladder forms, the
#: Newton solver's ladder form, the sparse nodal system), rebuilt on first use.  The
#: transfer matrix and the power forms stay: they cost solves to rebuild, and whether the
#: transfer matrix is cached decides which solver ``solve(method="auto")`` takes.
_REBUILT_AFTER_PICKLING = frozenset({"topology", "newton", "nodal", "nodal_lift"})


def _feed_key(h, name: str, value) -> bool:
    """Add ``name = value`` to the digest ``h`` (:meth:`Crossbar.content_key`); False when
    the value is of a kind whose content is not read off exactly."""
    if isinstance(value, np.ndarray):
        h.update(f"{name}:{value.dtype.str}{value.shape}:".encode())
        h.update(np.ascontiguousarray(value).tobytes())
        return True
    if value is None or isinstance(value, (bool, int, float, str, np.number)):
        h.update(f"{name}:{type(value).__name__}:{value!r};".encode())
        return True
    if isinstance(value, (tuple, list)):
        h.update(f"{name}:{type(value).__name__}{len(value)}(".encode())
        return all(_feed_key(h, f"{name}[{k}]", v) for k, v in enumerate(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"{name}:{type(value).__module__}.{type(value).__qualname__}(".encode())
        return all(_feed_key(h, f"{name}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def _resistance(value, name: str, shape: tuple[int, ...]) -> float | np.ndarray:
    """Validate a resistance given as a scalar or an array broadcastable to ``shape``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a resistance in ohm (a number or an array of numbers); got {value!r}") from None
    if arr.ndim == 0:
        r = float(arr)
        if not np.isfinite(r) or r < 0:
            raise ValueError(f"{name} must be a finite resistance >= 0 ohm; got {value!r}")
        return r
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"{name} must be a scalar or an array of shape {shape} (ohm); got shape {np.shape(value)}") from None
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        idx = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be finite and >= 0 ohm; {name}{list(idx)} = {float(arr[idx])!r}")
    return _frozen(arr)


@dataclass(frozen=True, eq=False)
class Crossbar:
    """An m x n resistive crossbar with wire, driver and sense resistances.

    Parameters
    ----------
    G : array_like, shape (m, n)
        Memristor conductances (S), finite and >= 0 (a 0 S cell is an open cell).  For a
        nonlinear device this is the state, the conductance at the device's ``v_read``.
    r_row : float or array_like, shape (m, n-1)
        Row wire segment resistances (ohm), >= 0.  Default 1 ohm (docs/model.md section 6).
        Unused in scheme B (the gate lines carry no current).
    r_col : float or array_like, shape (m-1, n)
        Column wire segment resistances (ohm), >= 0; shape (m/2 - 1, n) in scheme C (one
        column node per differential pair of rows).
    r_in : float or array_like, shape (m,)
        Driver (input) resistance of each row (ohm), >= 0; with ``drive="both"`` each end
        has its own ``r_in``.  Unused in scheme B.
    r_out : float or array_like, shape (n,)
        Sense (output) resistance of each column (ohm), >= 0; with ``sense="both"`` each
        end has its own ``r_out``.
    drive : {"left", "right", "both"}
        Which end(s) of each row the source drives.
    sense : {"bottom", "top", "both"}
        Which end(s) of each column are sensed into the virtual ground.
    transistor : Transistor or None
        Access transistor: ``None`` for a 1R array, :class:`~xbarsolve.transistors.Switch`,
        :class:`~xbarsolve.transistors.Resistor` or a nonlinear model.
    device : Device
        Memristor I-V model; :class:`~xbarsolve.devices.Linear` by default.
    scheme : {"A", "B", "C"}
        Array topology (CrossSim's topologies; ``docs/topologies.md``).  ``"A"``: the
        inputs are the row voltages (m of them).  ``"B"``: the inputs are m bits on the
        access transistors' gates (bit-serial); each column has a supply line parallel to
        it at ``v_read``, segments ``r_supply``, driven at its top end through
        ``r_supply_in``; a 0 bit opens its row's cells (a Level1 gate goes to 0 V);
        ``drive`` must stay ``"left"``.  ``"C"``: interleaved differential pairs, m even:
        rows ``2 i`` (``+V_i``) and ``2 i + 1`` (``-V_i``) share their column nodes; the
        inputs are m/2 voltages.
    v_read : float
        Scheme B: supply (read) voltage (V), finite; default 0.2 V.
    r_supply : float or array_like, shape (m-1, n)
        Scheme B: supply line segment resistances (ohm), >= 0; default 1 ohm.
    r_supply_in : float or array_like, shape (n,)
        Scheme B: driver resistance of each column's supply line (ohm), >= 0.

    Notes
    -----
    Zero resistances are exact: the nodes they join are merged.  With finite, non-negative
    resistances and finite conductances every node of a linear array has a path to a
    source or to ground, and two different sources can never be shorted together (rows
    meet columns only through cells of finite conductance), so the nodal system of a
    valid ``Crossbar`` is never singular; the sparse path still checks this and raises
    :class:`~xbarsolve.errors.SingularNetworkError` should it ever fail.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> G = np.full((4, 3), 50e-6)
    >>> xbar = xs.Crossbar(G, r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0)
    >>> xbar.shape
    (4, 3)
    """

    G: np.ndarray
    r_row: float | np.ndarray = 1.0
    r_col: float | np.ndarray = 1.0
    r_in: float | np.ndarray = 1.0
    r_out: float | np.ndarray = 1.0
    drive: Drive = "left"
    sense: Sense = "bottom"
    transistor: Transistor | None = None
    device: Device = field(default_factory=Linear)
    scheme: Scheme = "A"
    v_read: float = V_READ
    r_supply: float | np.ndarray = 1.0
    r_supply_in: float | np.ndarray = 1.0
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        G = np.asarray(self.G)
        if G.ndim != 2 or G.shape[0] < 1 or G.shape[1] < 1:
            raise ValueError(f"G must be a 2-D array of shape (m, n) with m, n >= 1 (siemens); got shape {G.shape}")
        if not np.issubdtype(G.dtype, np.number) or np.iscomplexobj(G):
            raise ValueError(f"G must hold real conductances in siemens; got dtype {G.dtype}")
        G = np.asarray(G, dtype=np.float64)
        bad = ~np.isfinite(G) | (G < 0)
        if bad.any():
            i, j = (int(k) for k in np.argwhere(bad)[0])
            raise ValueError(
                f"G must be finite and >= 0 S; G[{i}, {j}] = {float(G[i, j])!r} ({int(bad.sum())} bad cell(s))"
            )
        m, n = G.shape
        scheme_spec(self.scheme).check(G.shape, self.drive)  # the scheme's own conditions (topology.SCHEME_SPECS)
        object.__setattr__(self, "G", _frozen(G))
        object.__setattr__(self, "r_row", _resistance(self.r_row, "r_row", (m, n - 1)))
        object.__setattr__(self, "r_col", _resistance(self.r_col, "r_col", (self.m_lines - 1, n)))
        object.__setattr__(self, "r_supply", _resistance(self.r_supply, "r_supply", (m - 1, n)))
        object.__setattr__(self, "r_supply_in", _resistance(self.r_supply_in, "r_supply_in", (n,)))
        v_read = float(self.v_read)
        if not np.isfinite(v_read):
            raise ValueError(f"v_read must be a finite voltage (V); got {self.v_read!r}")
        object.__setattr__(self, "v_read", v_read)
        object.__setattr__(self, "r_in", _resistance(self.r_in, "r_in", (m,)))
        object.__setattr__(self, "r_out", _resistance(self.r_out, "r_out", (n,)))
        if self.drive not in _DRIVES:
            raise ValueError(f"drive must be one of {_DRIVES}; got {self.drive!r}")
        if self.sense not in _SENSES:
            raise ValueError(f"sense must be one of {_SENSES}; got {self.sense!r}")
        if self.transistor is not None and not isinstance(self.transistor, Transistor):
            raise TypeError(f"transistor must be None or an xbarsolve.transistors model; got {self.transistor!r}")
        if not isinstance(self.device, Device):
            raise TypeError(f"device must be an xbarsolve.devices model; got {self.device!r}")

    def __getstate__(self) -> dict:
        """The pickled state: the fields and the cached results that are costly to rebuild
        (see ``_REBUILT_AFTER_PICKLING``), so that sending a crossbar to another process
        (Dask workers) does not carry its derived forms; the results are the same."""
        state = dict(self.__dict__)
        state["_cache"] = {k: v for k, v in self._cache.items() if k not in _REBUILT_AFTER_PICKLING}
        return state

    # ----------------------------------------------------------------- shape
    @property
    def m(self) -> int:
        """Number of rows (inputs)."""
        return self.G.shape[0]

    @property
    def n(self) -> int:
        """Number of columns (outputs)."""
        return self.G.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``."""
        return self.G.shape

    @property
    def m_lines(self) -> int:
        """Nodes along each column wire: m, or m/2 in scheme C (two rows share one)."""
        return self.m // scheme_spec(self.scheme).rows_per_line

    @property
    def n_inputs(self) -> int:
        """Entries of one input vector: m row voltages (A), m bits (B), m/2 pair voltages (C)."""
        return self.m // scheme_spec(self.scheme).rows_per_input

    @property
    def is_linear(self) -> bool:
        """True when both the memristor and the transistor model are linear."""
        return self.device.is_linear and (self.transistor is None or self.transistor.is_linear)

    # ------------------------------------------------- broadcast resistances
    @property
    def r_row_segments(self) -> np.ndarray:
        """Row wire resistances as an (m, n-1) array (ohm)."""
        return np.broadcast_to(np.asarray(self.r_row, dtype=np.float64), (self.m, self.n - 1))

    @property
    def r_col_segments(self) -> np.ndarray:
        """Column wire resistances as an (m_lines-1, n) array (ohm)."""
        return np.broadcast_to(np.asarray(self.r_col, dtype=np.float64), (self.m_lines - 1, self.n))

    @property
    def r_supply_segments(self) -> np.ndarray:
        """Scheme B supply line resistances as an (m-1, n) array (ohm)."""
        return np.broadcast_to(np.asarray(self.r_supply, dtype=np.float64), (self.m - 1, self.n))

    @property
    def r_supply_in_columns(self) -> np.ndarray:
        """Scheme B supply driver resistances as an (n,) array (ohm)."""
        return np.broadcast_to(np.asarray(self.r_supply_in, dtype=np.float64), (self.n,))

    @property
    def r_in_rows(self) -> np.ndarray:
        """Driver resistances as an (m,) array (ohm)."""
        return np.broadcast_to(np.asarray(self.r_in, dtype=np.float64), (self.m,))

    @property
    def r_out_columns(self) -> np.ndarray:
        """Sense resistances as an (n,) array (ohm)."""
        return np.broadcast_to(np.asarray(self.r_out, dtype=np.float64), (self.n,))

    @property
    def drive_ends(self) -> tuple[bool, bool]:
        """Whether the (left, right) end of every row is driven."""
        return self.drive in ("left", "both"), self.drive in ("right", "both")

    @property
    def sense_ends(self) -> tuple[bool, bool]:
        """Whether the (top, bottom) end of every column is sensed."""
        return self.sense in ("top", "both"), self.sense in ("bottom", "both")

    @property
    def has_zero_resistance(self) -> bool:
        """True when any wire, driver or sense resistance in use is exactly 0 ohm."""
        return topology(self).has_zero_resistance

    def cell_conductance(self) -> np.ndarray:
        """Conductance (S) of each linear cell, memristor in series with the transistor.

        Raises
        ------
        TypeError
            If the device or transistor model is nonlinear.
        """
        if not self.device.is_linear:
            raise TypeError(f"cell_conductance needs a linear device; got {type(self.device).__name__}")
        return series_conductance(self.G, self.transistor)

    def ideal_currents(self, V: np.ndarray) -> np.ndarray:
        """The ideal product (A): column currents with every resistance at zero and an
        ideal (short) transistor, for inputs ``V`` of shape (n_inputs,) or (batch,
        n_inputs): ``V @ G`` (A, volts), ``v_read x @ G`` (B, bits), ``V @ (G[0::2] -
        G[1::2])`` (C, volts)."""
        return topology(self).ideal_currents(V, self.G)

    def with_conductances(self, G: np.ndarray) -> "Crossbar":
        """A copy with the same parasitics and models and new conductances ``G`` (S)."""
        return dataclasses.replace(self, G=G)

    def content_key(self) -> bytes | None:
        """A digest of every field (conductances and resistances bit for bit, the topology,
        the device and transistor models with all their parameters): two crossbars with
        the same key are the same circuit, so a result computed for one holds for the
        other.  None when a model is not a dataclass of numbers, strings and arrays (its
        parameters cannot be read off)."""
        import hashlib

        h = hashlib.blake2b(digest_size=20)
        fields = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "_cache"]
        return h.digest() if all(_feed_key(h, name, value) for name, value in fields) else None
