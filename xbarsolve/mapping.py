"""Mapping between signed matrices and conductances, and between numbers and volts.

Shift mapping (Zhang & Hu 2022, Sec. 3.3.4; DESIGN.md section 3): a signed matrix ``A``
is stored as the non-negative conductances ``G = scale * (A + c)`` with ``scale`` in
siemens per matrix unit and the shift ``c`` in matrix units, chosen so that ``A.min()``
lands on ``g_min`` and ``A.max()`` on ``g_max``.  For inputs ``V`` (volts) the column
currents ``I = V @ G`` (amperes) give back the signed product::

    V @ A = I / scale - c * sum(V)

with ``sum(V)`` from a digital accumulator (:meth:`ShiftMapping.outputs`) or from an
analog *unit column*: an extra column whose cells all hold ``g_zero = scale * c`` (the
conductance of a zero weight), whose current is ``scale * c * sum(V)``, so that
``V @ A = (I - I_unit) / scale`` (:meth:`ShiftMapping.outputs_unit_column`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ShiftMapping", "shift_map", "with_unit_column", "InputScaling", "scale_inputs"]


@dataclass(frozen=True, eq=False)
class ShiftMapping:
    """A signed matrix mapped onto conductances; see the module docstring.

    Attributes
    ----------
    G : ndarray, shape (m, n)
        Conductances (S), ``scale * (A + shift)``, inside ``[g_min, g_max]``.
    scale : float
        Siemens per matrix unit.
    shift : float
        The shift ``c`` (matrix units).
    g_min, g_max : float
        The conductance range (S) the matrix was mapped into.
    """

    G: np.ndarray
    scale: float
    shift: float
    g_min: float
    g_max: float

    @property
    def g_zero(self) -> float:
        """Conductance (S) of a zero matrix entry, ``scale * shift``: the unit column's cells."""
        return self.scale * self.shift

    def matrix(self) -> np.ndarray:
        """The matrix ``A`` the conductances represent, ``G / scale - shift``."""
        return self.G / self.scale - self.shift

    def outputs(self, currents, v_sum) -> np.ndarray:
        """Signed outputs ``V @ A`` (volt x matrix units) from column currents (A) and the
        digitally accumulated input sum ``sum(V)`` (V), shape (batch,) or broadcastable."""
        I = np.asarray(currents, dtype=np.float64)
        s = np.asarray(v_sum, dtype=np.float64)
        if s.ndim == I.ndim - 1:
            s = s[..., None]
        return I / self.scale - self.shift * s

    def outputs_unit_column(self, currents, unit_current) -> np.ndarray:
        """Signed outputs from column currents (A) and the current of an analog unit
        column of conductance :attr:`g_zero` (A), shape (batch,) or (batch, 1)."""
        I = np.asarray(currents, dtype=np.float64)
        u = np.asarray(unit_current, dtype=np.float64)
        if u.ndim == I.ndim - 1:
            u = u[..., None]
        return (I - u) / self.scale

    def ideal_outputs(self, V) -> np.ndarray:
        """Exact signed product ``V @ A`` (volt x matrix units) for inputs ``V`` (V)."""
        return np.atleast_2d(np.asarray(V, dtype=np.float64)) @ self.matrix()


def shift_map(A, g_min: float = 1 / 300e3, g_max: float = 1 / 15e3,
              a_range: tuple[float, float] | None = None) -> ShiftMapping:
    """Map a signed (or unsigned) matrix linearly onto ``[g_min, g_max]`` siemens.

    Parameters
    ----------
    A : array_like, shape (m, n)
        The matrix (any real values, finite, not all equal unless ``a_range`` is given).
    g_min, g_max : float
        Conductance range (S), ``0 <= g_min < g_max``.  Defaults: the paper's
        ``1/300 kOhm`` and ``1/15 kOhm`` (3.33 and 66.7 uS).
    a_range : (float, float), optional
        The matrix values mapped onto ``g_min`` and ``g_max`` (default ``A.min()``,
        ``A.max()``); tiles of one larger matrix pass the whole matrix's range so that
        they share one scale.

    Returns
    -------
    ShiftMapping
        ``.G`` are the conductances; ``.outputs`` / ``.outputs_unit_column`` undo the map.

    Examples
    --------
    >>> import numpy as np
    >>> from xbarsolve.mapping import shift_map
    >>> A = np.array([[-1.0, 0.5], [2.0, 0.0]])
    >>> sm = shift_map(A)
    >>> V = np.array([[0.1, 0.3]])
    >>> bool(np.allclose(sm.outputs(V @ sm.G, V.sum(axis=1)), V @ A))
    True
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.size == 0:
        raise ValueError(f"A must be a non-empty 2-D matrix; got shape {A.shape}")
    if not np.isfinite(A).all():
        raise ValueError("A must be finite")
    g_min, g_max = float(g_min), float(g_max)
    if not (np.isfinite(g_min) and np.isfinite(g_max)) or g_min < 0 or g_min >= g_max:
        raise ValueError(f"need 0 <= g_min < g_max (S); got g_min={g_min!r}, g_max={g_max!r}")
    lo, hi = (float(A.min()), float(A.max())) if a_range is None else (float(a_range[0]), float(a_range[1]))
    if not hi > lo:
        raise ValueError("A must not be constant: a constant matrix has no range to map" if a_range is None
                         else f"a_range must be increasing; got {a_range!r}")
    scale = (g_max - g_min) / (hi - lo)
    shift = g_min / scale - lo
    G = np.clip(scale * (A + shift), g_min, g_max)
    return ShiftMapping(G=G, scale=scale, shift=shift, g_min=g_min, g_max=g_max)


def with_unit_column(G, g_zero: float) -> np.ndarray:
    """Append an analog unit column of conductance ``g_zero`` (S): shape (m, n) -> (m, n+1)."""
    G = np.asarray(G, dtype=np.float64)
    return np.concatenate([G, np.full((G.shape[0], 1), float(g_zero))], axis=1)


@dataclass(frozen=True, eq=False)
class InputScaling:
    """Linear map of non-negative input numbers to volts: ``V = X * volts_per_unit``."""

    volts_per_unit: float

    def to_volts(self, X) -> np.ndarray:
        """Inputs (numbers) to source voltages (V)."""
        return np.asarray(X, dtype=np.float64) * self.volts_per_unit

    def to_units(self, Y) -> np.ndarray:
        """Outputs in volt x matrix units back to input-number x matrix units."""
        return np.asarray(Y, dtype=np.float64) / self.volts_per_unit


def scale_inputs(X, v_max: float = 0.4, x_max: float | None = None) -> InputScaling:
    """The scaling that maps ``[0, x_max]`` (default ``X.max()``) onto ``[0, v_max]`` volts."""
    X = np.asarray(X, dtype=np.float64)
    top = float(X.max()) if x_max is None else float(x_max)
    if not np.isfinite(top) or top <= 0:
        raise ValueError(f"x_max must be > 0 (the largest input number); got {top!r}")
    if not np.isfinite(v_max) or v_max <= 0:
        raise ValueError(f"v_max must be a voltage > 0 V; got {v_max!r}")
    return InputScaling(float(v_max) / top)
