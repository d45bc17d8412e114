"""Integer weight codes and the multi-level cells that hold them.

A weight matrix quantized to ``weight_bits`` bits is a matrix of integer *codes*
``0 .. 2**weight_bits - 1`` (:func:`weight_codes`; de-quantized by :func:`code_weights`
with the same rule as :func:`xbarsolve.cnn.mapping.quantize_weights`).  A code is stored
on ``n_cells = weight_bits / bits_per_cell`` multi-level cells of ``2**bits_per_cell``
levels each, most significant cell first (:func:`split_codes`, :func:`join_levels`):
ARAS's INT8 weights on four 2-bit cells (Sabri, Riera, Gonzalez 2024).  On a crossbar the
cells of one weight sit side by side in one row (:func:`cell_matrix`).

This module is the one definition of that split; the bit-sliced CNN engine and the
programming model both use it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["weight_codes", "code_weights", "n_cells", "split_codes", "join_levels", "cell_matrix",
           "code_matrix"]


def _check_bits(name: str, bits) -> int:
    if isinstance(bits, bool) or int(bits) != bits or not 1 <= bits <= 32:
        raise ValueError(f"{name} must be an integer in 1..32; got {bits!r}")
    return int(bits)


def n_cells(weight_bits: int = 8, bits_per_cell: int = 2) -> int:
    """Cells per weight: ``weight_bits / bits_per_cell`` (must divide exactly)."""
    wb = _check_bits("weight_bits", weight_bits)
    bc = _check_bits("bits_per_cell", bits_per_cell)
    if wb % bc:
        raise ValueError(f"bits_per_cell={bc} must divide weight_bits={wb}")
    return wb // bc


def weight_codes(W: np.ndarray, bits: int = 8, lo: float | None = None,
                 hi: float | None = None) -> tuple[np.ndarray, float, float]:
    """Quantize weights to integer codes ``round((W - lo) / step)``, ``step = (hi - lo) / (2**bits - 1)``.

    Parameters
    ----------
    W : array_like
        Weights (any unit); values outside ``[lo, hi]`` saturate.
    bits : int
        Code width; codes are ``0 .. 2**bits - 1``.
    lo, hi : float or None
        Range mapped onto the codes (default: the range of ``W``).

    Returns
    -------
    codes : ndarray of int64
    lo, step : float
        De-quantization ``W_q = lo + codes * step`` (:func:`code_weights`).
    """
    W = np.asarray(W, dtype=np.float64)
    bits = _check_bits("bits", bits)
    lo = float(W.min()) if lo is None else float(lo)
    hi = float(W.max()) if hi is None else float(hi)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError(f"weight range must be finite; got lo={lo!r}, hi={hi!r}")
    if hi <= lo:  # constant weights: every code 0, any positive step reproduces them
        return np.zeros(W.shape, dtype=np.int64), lo, 1.0
    step = (hi - lo) / (2 ** bits - 1)
    return np.round((np.clip(W, lo, hi) - lo) / step).astype(np.int64), lo, step


def code_weights(codes: np.ndarray, lo: float, step: float, shift: int = 0) -> np.ndarray:
    """De-quantize: ``lo + (codes - shift) * step`` (``shift`` undoes a re-encoding,
    :mod:`xbarsolve.program.reuse`)."""
    return lo + (np.asarray(codes, dtype=np.float64) - shift) * step


def split_codes(codes: np.ndarray, bits_per_cell: int = 2, n: int = 4) -> np.ndarray:
    """Split integer codes into ``n`` cell levels, most significant cell first.

    Parameters
    ----------
    codes : array_like of int
        Codes in ``0 .. 2**(n * bits_per_cell) - 1``.
    bits_per_cell : int
        Levels per cell: ``2**bits_per_cell``.
    n : int
        Cells per code.

    Returns
    -------
    ndarray of int64, shape ``codes.shape + (n,)``
        ``levels[..., 0]`` holds the most significant ``bits_per_cell`` bits.
    """
    bc = _check_bits("bits_per_cell", bits_per_cell)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n (cells per code) must be a positive integer; got {n!r}")
    c = np.asarray(codes)
    if c.size and not np.issubdtype(c.dtype, np.integer):
        if not np.array_equal(c, np.round(c)):
            raise ValueError("codes must be integers")
        c = c.astype(np.int64)
    c = c.astype(np.int64)
    top = 2 ** (bc * int(n)) - 1
    if c.size and (c.min() < 0 or c.max() > top):
        raise ValueError(f"codes must lie in 0..{top} for {n} cells of {bc} bits; got [{c.min()}, {c.max()}]")
    shifts = bc * np.arange(int(n) - 1, -1, -1)
    return (c[..., None] >> shifts) & (2 ** bc - 1)


def join_levels(levels: np.ndarray, bits_per_cell: int = 2) -> np.ndarray:
    """Inverse of :func:`split_codes`: codes from cell levels (last axis, most
    significant first)."""
    bc = _check_bits("bits_per_cell", bits_per_cell)
    lv = np.asarray(levels).astype(np.int64)
    if lv.ndim < 1:
        raise ValueError("levels need a last axis of cells")
    if lv.size and (lv.min() < 0 or lv.max() > 2 ** bc - 1):
        raise ValueError(f"levels must lie in 0..{2 ** bc - 1} for {bc}-bit cells; got [{lv.min()}, {lv.max()}]")
    weights = 2 ** (bc * np.arange(lv.shape[-1] - 1, -1, -1, dtype=np.int64))
    return lv @ weights


def cell_matrix(codes: np.ndarray, bits_per_cell: int = 2, n: int = 4) -> np.ndarray:
    """The cell levels of a code matrix as laid out on a crossbar: shape ``(rows, cols * n)``,
    the ``n`` cells of weight ``(i, j)`` in columns ``j*n .. j*n + n - 1`` (most
    significant first)."""
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"codes must be a 2-D matrix; got shape {c.shape}")
    return split_codes(c, bits_per_cell, n).reshape(c.shape[0], c.shape[1] * int(n))


def code_matrix(cells: np.ndarray, bits_per_cell: int = 2, n: int = 4) -> np.ndarray:
    """Inverse of :func:`cell_matrix`."""
    lv = np.asarray(cells)
    if lv.ndim != 2 or lv.shape[1] % int(n):
        raise ValueError(f"cells must be (rows, cols * {n}); got shape {lv.shape}")
    return join_levels(lv.reshape(lv.shape[0], -1, int(n)), bits_per_cell)
