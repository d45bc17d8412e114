"""Mapping weight matrices onto crossbar conductances.

* **Dense mapping** of a convolution: the HWIO kernel unrolled to a
  ``(kh*kw*cin, cout)`` matrix, one crossbar input vector per sliding window
  (:attr:`xbarsolve.cnn.layers.LinearLayer.weight_matrix`).
* **Sparse (Toeplitz) mapping**: the whole convolution of one image as one
  ``(H*W*cin, Ho*Wo*cout)`` matrix, one input vector per image (:func:`toeplitz_matrix`).
* Negative weights (:func:`map_weights`, onto :class:`xbarsolve.mapping.MappedMatrix`):
  **shift mapping** (Zhang & Hu; :func:`xbarsolve.mapping.shift_map`) ``G = a W + b`` on
  every cell, so ``V @ G = a (V @ W) + b sum(V)`` and ``V @ W = (I - b sum(V)) / a`` with
  ``sum(V)`` from a digital accumulator, or (``reference_column=True``) from an extra
  analog unit column of conductance ``b`` whose current is subtracted before the ADC, so
  the ADC sees only the signal ``a (V @ W)``; or **differential pairs** (CrossSim's
  balanced scheme, :func:`xbarsolve.mapping.differential_map`): each output uses two
  adjacent columns ``G+ = g_min + a max(W, 0)`` and ``G- = g_min + a max(-W, 0)`` and
  ``V @ W = (I+ - I-) / a``.
* Weight quantization to ``2**bits`` uniform levels
  (:func:`xbarsolve.cnn.quantization.quantize_weights`).
* **Tiling** into crossbars of at most ``rows_max x cols_max`` cells
  (:func:`tile_slices`); partial sums of row tiles are added digitally.

Conductances in siemens, inputs in volts, currents in amperes.  The reference range is
``[1/300 kOhm, 1/15 kOhm] = [3.33, 66.7] uS`` (:mod:`xbarsolve.reference`).
"""

from __future__ import annotations

import numpy as np

from ..mapping import MappedMatrix, Scheme, differential_map, shift_map
from ..reference import G_MAX, G_MIN
from .layers import Padding, conv_output_size, resolve_padding
from .quantization import quantize_weights

__all__ = [
    "G_MIN", "G_MAX", "Scheme", "MappedMatrix", "map_weights", "quantize_weights",
    "tile_slices", "toeplitz_matrix",
]


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
    if scheme == "shift":
        lo, hi = (float(W.min()), float(W.max())) if w_range is None else map(float, w_range)
        if hi <= lo:
            hi = lo + 1.0
        if W.size and (W.min() < lo - 1e-12 * abs(lo) or W.max() > hi + 1e-12 * abs(hi)):
            raise ValueError(f"weights [{W.min():g}, {W.max():g}] exceed w_range ({lo:g}, {hi:g})")
        mm = shift_map(quantize_weights(W, bits, lo, hi), g_min, g_max, a_range=(lo, hi))
        return mm.with_reference_column() if reference_column else mm
    if scheme == "differential":
        w_max = float(np.abs(W).max()) if w_range is None else float(max(abs(w_range[0]), abs(w_range[1])))
        if w_max <= 0:
            w_max = 1.0
        return differential_map(quantize_weights(W, bits, -w_max, w_max), g_min, g_max, a_max=w_max)
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
