"""DAC (input) and ADC (output) quantization of any bit count.

A converter with ``bits`` bits has ``2**bits`` uniform levels spanning ``[lo, hi]``;
values outside the range saturate.  ``bits=None`` is an ideal converter (identity).

Ranges come from a calibration pass on held-out data (:meth:`Quantizer.from_data`: the
min and max of the values seen) or from the simple max-range rule
(:func:`max_current_range`: the largest current a column can carry).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Quantizer", "quantize", "max_current_range"]


def quantize(x: np.ndarray, bits: int | None, lo: float | np.ndarray, hi: float | np.ndarray) -> np.ndarray:
    """Uniform quantization of ``x`` to ``2**bits`` levels on ``[lo, hi]`` (saturating).

    ``lo`` and ``hi`` broadcast against ``x`` (e.g. one range per column).  Where
    ``hi <= lo`` the output is ``lo``.
    """
    x = np.asarray(x, dtype=np.float64)
    if bits is None:
        return x
    if int(bits) != bits or bits < 1:
        raise ValueError(f"bits must be a positive integer or None; got {bits!r}")
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    span = hi - lo
    levels = 2 ** int(bits) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(span > 0, span / levels, 1.0)
        q = np.round((np.clip(x, lo, np.maximum(hi, lo)) - lo) / step)
    return lo + np.where(span > 0, q * step, 0.0)


@dataclass(frozen=True, eq=False)
class Quantizer:
    """A DAC or ADC: ``bits`` bits over ``[lo, hi]`` (per element of the last axis when
    ``lo``/``hi`` are arrays).  Units are those of the quantity (V for a DAC, A for an ADC).
    """

    bits: int | None
    lo: float | np.ndarray
    hi: float | np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return quantize(x, self.bits, self.lo, self.hi)

    @classmethod
    def from_data(cls, bits: int | None, samples: np.ndarray, *, per_column: bool = True,
                  symmetric: bool = False) -> "Quantizer":
        """Range from a calibration pass: min/max of ``samples`` (batch, n), per column
        or overall; ``symmetric`` uses ``[-max|x|, max|x|]``."""
        s = np.asarray(samples, dtype=np.float64)
        axis = 0 if per_column and s.ndim > 1 else None
        if symmetric:
            hi = np.abs(s).max(axis=axis) if s.size else 0.0
            return cls(bits, -hi, hi)
        lo = s.min(axis=axis) if s.size else 0.0
        hi = s.max(axis=axis) if s.size else 0.0
        return cls(bits, lo, hi)


def max_current_range(G: np.ndarray, v_max: float, scheme: str = "shift") -> tuple[np.ndarray, np.ndarray]:
    """Max-range rule for an ADC (A): the range a column current can take for inputs in
    ``[0, v_max]`` volts with the ideal product.

    Shift scheme: ``[0, v_max * sum_i G_ij]``.  Differential (pairs ``2k, 2k+1``):
    ``[-v_max * sum_i G-_ik, v_max * sum_i G+_ik]``.
    """
    G = np.asarray(G, dtype=np.float64)
    if scheme == "shift":
        return np.zeros(G.shape[1]), v_max * G.sum(axis=0)
    return -v_max * G[:, 1::2].sum(axis=0), v_max * G[:, 0::2].sum(axis=0)
