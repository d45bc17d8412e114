"""Compiled twin of the quantizer's rounding rule (NumPy twin: ``quantization._round_numpy``).

One pass over the values instead of NumPy's seven temporaries (clip, subtract, divide,
round, multiply, select, add): the DAC of every crossbar input and the ADC of every
output run through it, so it was 40 % of an 8-bit ResNet-20 pass.  The arithmetic is the
NumPy rule's, operation by operation and in the same order (IEEE double, no fused
multiply-add, round half to even), so the two agree bit for bit (tested).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._config import NJIT


@njit(**NJIT)
def round_levels(x, levels, lo, hi, pre, post, out):  # pragma: no cover - compiled
    """``out[r, c] = post * Q(x[r, c] / pre)`` with ``Q`` the rounding rule of
    :func:`xbarsolve.cnn.quantization._round_numpy` on ``levels + 1`` levels over
    ``[lo[c], hi[c]]``.

    ``x``, ``out``: float64 (rows, cols); ``lo``, ``hi``: float64 (cols,) (the ranges,
    one per column, broadcast by the caller); ``levels``: ``2**bits - 1`` as a float;
    ``pre``, ``post``: scalars (1.0 for none).  One range for every value:
    :func:`round_flat`, faster.  ``pre == 1`` and ``post == 1`` skip the
    division and product, which are then exact anyway.
    """
    rows, cols = x.shape
    step = np.empty(cols)
    top = np.empty(cols)
    for c in range(cols):
        span = hi[c] - lo[c]
        step[c] = span / levels if span > 0 else 1.0
        top[c] = hi[c] if hi[c] > lo[c] else lo[c]  # np.maximum(hi, lo)
    for r in range(rows):
        for c in range(cols):
            a = lo[c]
            v = x[r, c]
            if pre != 1.0:
                v = v / pre
            if hi[c] - a > 0:
                if v < a:  # np.clip; NaN passes through
                    v = a
                elif v > top[c]:
                    v = top[c]
                v = a + np.rint((v - a) / step[c]) * step[c]
            else:
                v = a + 0.0
            out[r, c] = v * post if post != 1.0 else v


@njit(**NJIT)
def round_flat(x, levels, a, b, pre, post, out):  # pragma: no cover - compiled
    """:func:`round_levels` of the values ``x`` (1-D, contiguous: a strided view runs
    7x slower) over one range ``[a, b]`` (scalars)."""
    span = b - a
    step = span / levels if span > 0 else 1.0
    top = b if b > a else a  # np.maximum(hi, lo)
    for i in range(x.shape[0]):
        v = x[i]
        if pre != 1.0:
            v = v / pre
        if span > 0:
            if v < a:  # np.clip; NaN passes through
                v = a
            elif v > top:
                v = top
            v = a + np.rint((v - a) / step) * step
        else:
            v = a + 0.0
        out[i] = v * post if post != 1.0 else v
