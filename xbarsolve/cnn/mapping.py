"""Mapping weight matrices onto crossbar conductances.

* **Dense mapping** of a convolution: the HWIO kernel unrolled to a
  ``(kh*kw*cin, cout)`` matrix, one crossbar input vector per sliding window
  (:meth:`xbarsolve.cnn.layers.Conv2D.weight_matrix`).
* **Sparse (Toeplitz) mapping**: the whole convolution of one image as one
  ``(H*W*cin, Ho*Wo*cout)`` matrix, one input vector per image (:func:`toeplitz_matrix`).
* Negative weights: **shift mapping** (Zhang & Hu; :func:`xbarsolve.mapping.shift_map`):
  ``G = a W + b`` on every cell, so
  ``V @ G = a (V @ W) + b sum(V)`` and ``V @ W = (I - b sum(V)) / a`` with ``sum(V)`` from
  a digital accumulator, or (``reference_column=True``) from an extra analog unit column
  of conductance ``b`` whose current is subtracted before the ADC, so the ADC sees only
  the signal ``a (V @ W)``; or **differential pairs** (CrossSim's balanced scheme): each
  output uses two adjacent columns ``G+ = g_min + a max(W, 0)`` and
  ``G- = g_min + a max(-W, 0)`` and ``V @ W = (I+ - I-) / a``.
* Weight quantization to ``2**bits`` uniform levels (:func:`quantize_weights`).
* **Tiling** into crossbars of at most ``rows_max x cols_max`` cells
  (:func:`tile_slices`); partial sums of row tiles are added digitally.

Conductances in siemens, inputs in volts, currents in amperes.  The reference range is
``[1/300 kOhm, 1/15 kOhm] = [3.33, 66.7] uS`` (DESIGN.md section 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..mapping import shift_map, with_unit_column
from .layers import Padding, conv_output_size, resolve_padding

__all__ = [
    "G_MIN", "G_MAX", "Scheme", "MappedMatrix", "map_weights", "quantize_weights",
    "tile_slices", "toeplitz_matrix",
]

#: Reference conductance range (S): R_off = 300 kOhm, R_on = 15 kOhm.
G_MIN = 1.0 / 300e3
G_MAX = 1.0 / 15e3

Scheme = Literal["shift", "differential"]


def quantize_weights(W: np.ndarray, bits: int | None, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Round ``W`` to ``2**bits`` uniform levels spanning ``[lo, hi]`` (default: the
    range of ``W``; for the differential scheme pass ``lo=-hi``).  ``bits=None`` returns
    ``W`` unchanged."""
    W = np.asarray(W, dtype=np.float64)
    if bits is None:
        return W
    if int(bits) != bits or bits < 1:
        raise ValueError(f"bits must be a positive integer or None; got {bits!r}")
    lo = float(W.min()) if lo is None else float(lo)
    hi = float(W.max()) if hi is None else float(hi)
    if hi <= lo:
        return W.copy()
    step = (hi - lo) / (2 ** int(bits) - 1)
    return lo + np.round((np.clip(W, lo, hi) - lo) / step) * step


@dataclass(frozen=True, eq=False)
class MappedMatrix:
    """A weight matrix as crossbar conductances, and how to decode the column currents.

    Attributes
    ----------
    G : ndarray, shape (m, n_phys)
        Target conductances (S); ``n_phys = n_out`` (shift) or ``2 n_out`` (differential,
        columns ``2k`` = G+ and ``2k+1`` = G- of output ``k``).
    scheme : {"shift", "differential"}
    a : float
        Conductance per weight unit (S).
    b : float
        Conductance of weight 0 in the shift scheme (S); 0 for differential.
    reference : bool
        Shift scheme with an analog unit column (the last column, all cells ``b``).
    """

    G: np.ndarray
    scheme: Scheme
    a: float
    b: float
    reference: bool = False

    @property
    def n_out(self) -> int:
        return (self.G.shape[1] - int(self.reference)) // (2 if self.scheme == "differential" else 1)

    @property
    def weights(self) -> np.ndarray:
        """The (possibly quantized) weights the conductances represent."""
        if self.scheme == "shift":
            return (self.G[:, :self.n_out] - self.b) / self.a
        return (self.G[:, 0::2] - self.G[:, 1::2]) / self.a

    def analog_output(self, currents: np.ndarray) -> np.ndarray:
        """The quantity the ADC digitizes (A), shape (batch, n_out): column currents
        (shift), minus the unit column's current (shift with reference column), or the
        differential current ``I+ - I-`` of each pair."""
        if self.scheme == "shift":
            return currents[:, :-1] - currents[:, -1:] if self.reference else currents
        return currents[:, 0::2] - currents[:, 1::2]

    def decode(self, analog: np.ndarray, v_sum: np.ndarray) -> np.ndarray:
        """``V @ W`` (volt x weight units) from :meth:`analog_output` and ``sum(V)`` (V)
        of each input vector."""
        if self.scheme == "shift" and not self.reference:
            return (analog - self.b * np.asarray(v_sum)[:, None]) / self.a
        return analog / self.a

    def analog_range(self, v_max: float) -> tuple[np.ndarray, np.ndarray]:
        """Max-range rule (A): the range of :meth:`analog_output` for inputs in
        ``[0, v_max]`` volts with the ideal product."""
        if self.scheme == "shift" and not self.reference:
            return np.zeros(self.n_out), v_max * self.G.sum(axis=0)
        if self.scheme == "shift":
            D = self.G[:, :-1] - self.G[:, -1:]
        else:
            D = self.G[:, 0::2] - self.G[:, 1::2]
        return v_max * np.minimum(D, 0).sum(axis=0), v_max * np.maximum(D, 0).sum(axis=0)


def map_weights(W: np.ndarray, scheme: Scheme = "shift", *, g_min: float = G_MIN, g_max: float = G_MAX,
                w_range: tuple[float, float] | None = None, bits: int | None = None,
                reference_column: bool = False) -> MappedMatrix:
    """Map a weight matrix into ``[g_min, g_max]``.

    Parameters
    ----------
    W : array_like, shape (m, n)
        Weights (any unit).
    scheme : {"shift", "differential"}
        Negative-weight scheme (module docstring).
    g_min, g_max : float
        Conductance range (S), ``0 <= g_min < g_max``.
    w_range : (float, float) or None
        Weight range mapped onto the conductance range: ``(w_lo, w_hi)`` for the shift
        scheme (default ``(W.min(), W.max())``), ``(-w_max, w_max)`` for the differential
        scheme (default ``w_max = max|W|``).  Tiles of one layer share the layer's range.
    bits : int or None
        Quantize the weights to ``2**bits`` levels over the range first.
    reference_column : bool
        Shift scheme only: append an analog unit column of conductance ``b``.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W must be a 2-D weight matrix; got shape {W.shape}")
    if not (0 <= g_min < g_max) or not np.isfinite(g_max):
        raise ValueError(f"need 0 <= g_min < g_max (S); got g_min={g_min!r}, g_max={g_max!r}")
    if scheme == "shift":
        lo, hi = (float(W.min()), float(W.max())) if w_range is None else map(float, w_range)
        if hi <= lo:
            hi = lo + 1.0
        if W.size and (W.min() < lo - 1e-12 * abs(lo) or W.max() > hi + 1e-12 * abs(hi)):
            raise ValueError(f"weights [{W.min():g}, {W.max():g}] exceed w_range ({lo:g}, {hi:g})")
        sm = shift_map(quantize_weights(W, bits, lo, hi), g_min, g_max, a_range=(lo, hi))
        G = with_unit_column(sm.G, sm.g_zero) if reference_column else sm.G
        return MappedMatrix(G, "shift", sm.scale, sm.g_zero, bool(reference_column))
    if scheme == "differential":
        w_max = float(np.abs(W).max()) if w_range is None else float(max(abs(w_range[0]), abs(w_range[1])))
        if w_max <= 0:
            w_max = 1.0
        Wq = quantize_weights(W, bits, -w_max, w_max)
        a = (g_max - g_min) / w_max
        G = np.empty((W.shape[0], 2 * W.shape[1]))
        G[:, 0::2] = g_min + a * np.maximum(Wq, 0)
        G[:, 1::2] = g_min + a * np.maximum(-Wq, 0)
        return MappedMatrix(np.clip(G, g_min, g_max), "differential", a, 0.0)
    raise ValueError(f"scheme must be 'shift' or 'differential'; got {scheme!r}")


def tile_slices(m: int, n_out: int, rows_max: int | None, cols_max: int | None,
                columns_per_output: int = 1, extra_columns: int = 0) -> list[tuple[slice, slice]]:
    """Split an ``m x n_out`` weight matrix into tiles of at most ``rows_max`` rows and
    ``cols_max`` physical columns (``columns_per_output`` = 2 for differential pairs,
    ``extra_columns`` = 1 for a reference column in every tile).

    Returns
    -------
    list of (row slice, output-column slice)
        Row tiles of one column block are summed digitally.
    """
    rows_max = m if rows_max is None else int(rows_max)
    outs = n_out if cols_max is None else (int(cols_max) - extra_columns) // columns_per_output
    if rows_max < 1 or outs < 1:
        raise ValueError(f"tile too small: rows_max={rows_max}, cols_max={cols_max} with {columns_per_output} column(s) per output")
    return [(slice(r, min(r + rows_max, m)), slice(c, min(c + outs, n_out)))
            for c in range(0, n_out, outs) for r in range(0, m, rows_max)]


def toeplitz_matrix(kernel: np.ndarray, input_shape: tuple[int, int, int], strides: tuple[int, int] = (1, 1),
                    padding: Padding = "valid") -> np.ndarray:
    """The convolution of one NHWC image as a dense matrix (sparse mapping).

    ``x.reshape(N, H*W*C) @ M == conv(x).reshape(N, Ho*Wo*cout)`` (no bias); padding
    cells hold zeros and so have no row.

    Parameters
    ----------
    kernel : array_like, shape (kh, kw, cin, cout)
    input_shape : (H, W, cin)
    strides, padding : as :class:`xbarsolve.cnn.layers.Conv2D`
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw, ci, co = kernel.shape
    H, Wd, C = input_shape
    if C != ci:
        raise ValueError(f"kernel expects {ci} input channels; input_shape has {C}")
    (pt, pb), (pl, pr) = resolve_padding(padding, (H, Wd), (kh, kw), strides)
    Ho = conv_output_size(H, kh, strides[0], (pt, pb))
    Wo = conv_output_size(Wd, kw, strides[1], (pl, pr))
    M = np.zeros((H, Wd, C, Ho, Wo, co))
    for oy in range(Ho):
        for ox in range(Wo):
            for a in range(kh):
                iy = oy * strides[0] + a - pt
                if not 0 <= iy < H:
                    continue
                for b in range(kw):
                    ix = ox * strides[1] + b - pl
                    if 0 <= ix < Wd:
                        M[iy, ix, :, oy, ox, :] = kernel[a, b]
    return M.reshape(H * Wd * C, Ho * Wo * co)
