"""Mapping between signed matrices and conductances, and between numbers and volts.

One type, :class:`MappedMatrix`, holds a real matrix ``A`` stored as non-negative
conductances and decodes the column currents back into ``V @ A``.  Two schemes:

* **Shift mapping** (Zhang & Hu 2022, Sec. 3.3.4; :func:`shift_map`): ``G = scale * (A +
  shift)`` with ``scale`` in siemens per matrix unit and the shift in matrix units, chosen
  so that ``A.min()`` lands on ``g_min`` and ``A.max()`` on ``g_max``.  For inputs ``V``
  (volts) the column currents ``I = V @ G`` (amperes) give back the signed product::

      V @ A = I / scale - shift * sum(V)

  with ``sum(V)`` from a digital accumulator, or from an analog *unit column*: an extra
  column whose cells all hold ``g_zero = scale * shift`` (the conductance of a zero
  entry), whose current ``g_zero * sum(V)`` is subtracted before the ADC, so that ``V @ A
  = (I - I_unit) / scale`` (:meth:`MappedMatrix.with_reference_column`, or
  :func:`with_unit_column` and :meth:`MappedMatrix.outputs_unit_column`).
* **Differential pairs** (CrossSim's balanced scheme; :func:`differential_map`): each
  column ``k`` of ``A`` uses two adjacent physical columns ``G+ = g_min + scale * max(A,
  0)`` (``2k``) and ``G- = g_min + scale * max(-A, 0)`` (``2k+1``), and ``V @ A = (I+ -
  I-) / scale``.

Conductances in siemens, inputs in volts, currents in amperes; the default range is the
reference ``[1/300 kOhm, 1/15 kOhm]`` (:mod:`xbarsolve.reference`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from .reference import G_MAX, G_MIN, V_MAX

__all__ = ["Scheme", "MappedMatrix", "ShiftMapping", "shift_map", "differential_map", "with_unit_column",
           "InputScaling", "scale_inputs"]

Scheme = Literal["shift", "differential"]


@dataclass(frozen=True, eq=False)
class MappedMatrix:
    """A real matrix stored as crossbar conductances; see the module docstring.

    Attributes
    ----------
    G : ndarray, shape (m, n_phys)
        Conductances (S) inside ``[g_min, g_max]``; ``n_phys`` is ``n`` (shift), ``n + 1``
        (shift with a reference column, the last one) or ``2 n`` (differential pairs).
    scale : float
        Siemens per matrix unit (> 0).
    shift : float
        The shift (matrix units) of the shift scheme; 0 for differential pairs.
    g_min, g_max : float
        The conductance range (S) the matrix was mapped into.
    scheme : {"shift", "differential"}
    reference : bool
        Shift scheme only: the last column is an analog unit column of :attr:`g_zero`.
    """

    G: np.ndarray
    scale: float
    shift: float
    g_min: float
    g_max: float
    scheme: Scheme = "shift"
    reference: bool = False

    def __post_init__(self):
        if self.scheme not in ("shift", "differential"):
            raise ValueError(f"scheme must be 'shift' or 'differential'; got {self.scheme!r}")
        if self.reference and self.scheme != "shift":
            raise ValueError("reference=True (an analog unit column) needs scheme='shift'")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be > 0 S per matrix unit; got {self.scale!r}")

    # ------------------------------------------------------------------ the matrix
    @property
    def g_zero(self) -> float:
        """Conductance (S) the decoding removes per volt of ``sum(V)``: ``scale * shift``,
        that of a zero entry and of the unit column's cells (shift); 0 (differential)."""
        return self.scale * self.shift

    @property
    def a(self) -> float:
        """Former name of :attr:`scale` (S per matrix unit)."""
        return self.scale

    @property
    def b(self) -> float:
        """Former name of :attr:`g_zero` (S)."""
        return self.g_zero

    @property
    def n_out(self) -> int:
        """Columns of the represented matrix."""
        return (self.G.shape[1] - int(self.reference)) // (2 if self.scheme == "differential" else 1)

    @property
    def weights(self) -> np.ndarray:
        """The matrix ``A`` the conductances represent (after any clipping), shape (m, n_out)."""
        if self.scheme == "shift":
            return (self.G[:, :self.n_out] - self.g_zero) / self.scale
        return (self.G[:, 0::2] - self.G[:, 1::2]) / self.scale

    def matrix(self) -> np.ndarray:
        """The represented matrix, :attr:`weights`."""
        return self.weights

    def with_reference_column(self) -> "MappedMatrix":
        """The same shift mapping with an analog unit column appended (``n + 1`` columns)."""
        if self.scheme != "shift" or self.reference:
            raise ValueError("only a shift mapping without a reference column can get one")
        return replace(self, G=with_unit_column(self.G, self.g_zero), reference=True)

    # ------------------------------------------------------------------ decoding
    def analog_output(self, currents) -> np.ndarray:
        """The quantity an ADC digitizes (A), shape (batch, n_out): the column currents
        (shift), minus the unit column's current (shift with reference column), or the
        differential current ``I+ - I-`` of each pair."""
        if self.scheme == "shift":
            return currents[..., :-1] - currents[..., -1:] if self.reference else currents
        return currents[..., 0::2] - currents[..., 1::2]

    def decode(self, analog, v_sum=None) -> np.ndarray:
        """``V @ A`` (volt x matrix units) from :meth:`analog_output` (A) and, for the shift
        scheme without a reference column, the digital ``sum(V)`` (V) of each input vector
        (shape (batch,) or broadcastable)."""
        if self.scheme == "shift" and not self.reference:
            if v_sum is None:
                raise ValueError("v_sum (the digital sum(V) of each input vector, V) is needed to undo a shift "
                                 "mapping without a reference column")
            s = np.asarray(v_sum, dtype=np.float64)
            if s.ndim == np.ndim(analog) - 1:
                s = s[..., None]
            return (analog - self.g_zero * s) / self.scale
        return np.asarray(analog, dtype=np.float64) / self.scale

    def outputs(self, currents, v_sum=None) -> np.ndarray:
        """Signed outputs ``V @ A`` (volt x matrix units) from the column currents (A):
        :meth:`decode` of :meth:`analog_output`."""
        return self.decode(self.analog_output(np.asarray(currents, dtype=np.float64)), v_sum)

    def outputs_unit_column(self, currents, unit_current) -> np.ndarray:
        """Signed outputs from the matrix's column currents (A) and the current of a unit
        column of conductance :attr:`g_zero` simulated beside them (A), shape (batch,) or
        (batch, 1)."""
        I = np.asarray(currents, dtype=np.float64)
        u = np.asarray(unit_current, dtype=np.float64)
        if u.ndim == I.ndim - 1:
            u = u[..., None]
        return (I - u) / self.scale

    def ideal_outputs(self, V) -> np.ndarray:
        """Exact signed product ``V @ A`` (volt x matrix units) for inputs ``V`` (V)."""
        return np.atleast_2d(np.asarray(V, dtype=np.float64)) @ self.weights

    def analog_range(self, v_max: float) -> tuple[np.ndarray, np.ndarray]:
        """Max-range rule (A): the range of :meth:`analog_output` for inputs in
        ``[0, v_max]`` volts with the ideal product ``V @ G``."""
        if self.scheme == "shift" and not self.reference:
            return np.zeros(self.n_out), v_max * self.G.sum(axis=0)
        D = self.G[:, :-1] - self.G[:, -1:] if self.scheme == "shift" else self.G[:, 0::2] - self.G[:, 1::2]
        return v_max * np.minimum(D, 0).sum(axis=0), v_max * np.maximum(D, 0).sum(axis=0)


#: The shift mapping's former type name; one type, :class:`MappedMatrix`.
ShiftMapping = MappedMatrix


def _check(A, g_min, g_max) -> tuple[np.ndarray, float, float]:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.size == 0:
        raise ValueError(f"A must be a non-empty 2-D matrix; got shape {A.shape}")
    if not np.isfinite(A).all():
        raise ValueError("A must be finite")
    g_min, g_max = float(g_min), float(g_max)
    if not (np.isfinite(g_min) and np.isfinite(g_max)) or g_min < 0 or g_min >= g_max:
        raise ValueError(f"need 0 <= g_min < g_max (S); got g_min={g_min!r}, g_max={g_max!r}")
    return A, g_min, g_max


def shift_map(A, g_min: float = G_MIN, g_max: float = G_MAX,
              a_range: tuple[float, float] | None = None) -> MappedMatrix:
    """Map a signed (or unsigned) matrix linearly onto ``[g_min, g_max]`` siemens.

    Parameters
    ----------
    A : array_like, shape (m, n)
        The matrix (any real values, finite, not all equal unless ``a_range`` is given).
    g_min, g_max : float
        Conductance range (S), ``0 <= g_min < g_max``.  Defaults: the reference
        ``1/300 kOhm`` and ``1/15 kOhm`` (3.33 and 66.7 uS).
    a_range : (float, float), optional
        The matrix values mapped onto ``g_min`` and ``g_max`` (default ``A.min()``,
        ``A.max()``); tiles of one larger matrix pass the whole matrix's range so that
        they share one scale.  Entries outside it are clipped to the conductance range.

    Returns
    -------
    MappedMatrix
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
    A, g_min, g_max = _check(A, g_min, g_max)
    lo, hi = (float(A.min()), float(A.max())) if a_range is None else (float(a_range[0]), float(a_range[1]))
    if not hi > lo:
        raise ValueError("A must not be constant: a constant matrix has no range to map" if a_range is None
                         else f"a_range must be increasing; got {a_range!r}")
    scale = (g_max - g_min) / (hi - lo)
    shift = g_min / scale - lo
    G = np.clip(scale * (A + shift), g_min, g_max)
    return MappedMatrix(G, scale, shift, g_min, g_max)


def differential_map(A, g_min: float = G_MIN, g_max: float = G_MAX, a_max: float | None = None) -> MappedMatrix:
    """Map a signed matrix onto differential column pairs in ``[g_min, g_max]`` siemens.

    Parameters
    ----------
    A : array_like, shape (m, n)
        The matrix (finite).
    g_min, g_max : float
        Conductance range (S), ``0 <= g_min < g_max``.
    a_max : float, optional
        The magnitude mapped onto ``g_max`` (default ``max |A|``; 1 for an all-zero
        matrix); larger entries are clipped.

    Returns
    -------
    MappedMatrix
        Shape (m, 2 n): column ``2k`` holds ``G+``, column ``2k+1`` ``G-`` of column ``k``.

    Examples
    --------
    >>> import numpy as np
    >>> from xbarsolve.mapping import differential_map
    >>> A = np.array([[-1.0, 0.5], [2.0, 0.0]])
    >>> dm = differential_map(A)
    >>> V = np.array([[0.1, 0.3]])
    >>> bool(np.allclose(dm.outputs(V @ dm.G), V @ A))
    True
    """
    A, g_min, g_max = _check(A, g_min, g_max)
    w_max = float(np.abs(A).max()) if a_max is None else abs(float(a_max))
    if not w_max > 0:
        w_max = 1.0
    scale = (g_max - g_min) / w_max
    G = np.empty((A.shape[0], 2 * A.shape[1]))
    G[:, 0::2] = g_min + scale * np.maximum(A, 0)
    G[:, 1::2] = g_min + scale * np.maximum(-A, 0)
    return MappedMatrix(np.clip(G, g_min, g_max), scale, 0.0, g_min, g_max, scheme="differential")


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


def scale_inputs(X, v_max: float = V_MAX, x_max: float | None = None) -> InputScaling:
    """The scaling that maps ``[0, x_max]`` (default ``X.max()``) onto ``[0, v_max]`` volts."""
    X = np.asarray(X, dtype=np.float64)
    top = float(X.max()) if x_max is None else float(x_max)
    if not np.isfinite(top) or top <= 0:
        raise ValueError(f"x_max must be > 0 (the largest input number); got {top!r}")
    if not np.isfinite(v_max) or v_max <= 0:
        raise ValueError(f"v_max must be a voltage > 0 V; got {v_max!r}")
    return InputScaling(float(v_max) / top)
