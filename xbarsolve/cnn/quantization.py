"""Uniform quantization of any bit count: DACs, ADCs and weights, one quantizer.

A :class:`Quantizer` with ``bits`` bits has ``2**bits`` uniform levels spanning ``[lo,
hi]``; values outside the range saturate.  ``bits=None`` is an ideal converter
(identity).  The same quantizer rounds the inputs (a DAC, volts), the analog outputs (an
ADC, amperes) and the weights before mapping (weight units).

Ranges come from a calibration pass on held-out data (:meth:`Quantizer.from_data`: the
min and max of the values seen), from the max-range rule of a mapping
(:meth:`xbarsolve.mapping.MappedMatrix.analog_range`), or from the weights themselves
(:func:`quantize_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Quantizer", "quantize", "dac_voltages", "quantize_weights", "check_count"]


def check_count(value, name: str, low: int = 1, *, none_ok: bool = False) -> int | None:
    """``value`` as an int >= ``low`` (an int, a NumPy integer or an integral float; not a
    bool), or None where ``none_ok``; else a ValueError naming ``name`` and the range."""
    if value is None and none_ok:
        return None
    try:
        ok = not isinstance(value, bool) and int(value) == value and value >= low
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer >= {low}{' or None' if none_ok else ''}; got {value!r}")
    return int(value)


@dataclass(frozen=True, eq=False)
class Quantizer:
    """``bits`` bits over ``[lo, hi]`` (per element of the last axis when ``lo``/``hi`` are
    arrays).  Units are those of the quantity (V for a DAC, A for an ADC).  Where ``hi <=
    lo`` every value maps to ``lo``.

    Examples
    --------
    >>> import numpy as np
    >>> from xbarsolve.cnn.quantization import Quantizer
    >>> Quantizer(2, 0.0, 1.0)(np.array([-0.2, 0.3, 0.5, 2.0])).round(4).tolist()
    [0.0, 0.3333, 0.6667, 1.0]
    """

    bits: int | None
    lo: float | np.ndarray = 0.0
    hi: float | np.ndarray = 1.0

    def __post_init__(self):
        object.__setattr__(self, "bits", check_count(self.bits, "bits", 1, none_ok=True))

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x if self.bits is None else _round(x, self.bits, self.lo, self.hi)

    @classmethod
    def from_data(cls, bits: int | None, samples, *, per_column: bool = True,
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


#: Bit counts whose ``2**bits - 1`` levels convert to a float exactly (the compiled rule).
_KERNEL_MAX_BITS = 52
#: False: every quantization in NumPy (:func:`_round_numpy`), the path before the kernel,
#: kept so that ``benchmarks/bench_cost.py --quantizer`` can time one against the other.
_COMPILED = True


def _round(x: np.ndarray, bits: int, lo, hi, pre: float = 1.0, post: float = 1.0) -> np.ndarray:
    """The rounding rule of :class:`Quantizer` (``bits`` already checked), of ``x / pre``,
    times ``post``: the compiled kernel where the ranges are scalars or one per element of
    the last axis (every converter of the package), :func:`_round_numpy` otherwise; the two
    agree bit for bit."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    cols = x.shape[-1] if x.ndim else 0
    ranges_ok = all(r.ndim == 0 or (r.ndim == 1 and r.shape[0] in (1, cols)) for r in (lo, hi))
    kernel = _COMPILED and x.size > 0 and x.ndim > 0 and ranges_ok and bits <= _KERNEL_MAX_BITS
    if not kernel or np.ndim(pre) or np.ndim(post):
        y = _round_numpy(x / pre if pre != 1.0 else x, bits, lo, hi)
        return y * post if post != 1.0 else y
    from ._quantization_kernels import round_flat, round_levels

    if lo.size == hi.size == 1:  # one range (the DAC): a flat loop
        flat = np.ascontiguousarray(x).reshape(-1)
        out = np.empty(flat.shape)
        round_flat(flat, float(2 ** bits - 1), float(lo.flat[0]), float(hi.flat[0]), float(pre), float(post), out)
        return out.reshape(x.shape)
    x2 = x.reshape(-1, cols)
    out = np.empty(x2.shape)
    round_levels(x2, float(2 ** bits - 1), np.broadcast_to(lo, (cols,)).copy(), np.broadcast_to(hi, (cols,)).copy(),
                 float(pre), float(post), out)
    return out.reshape(x.shape)


def _round_numpy(x: np.ndarray, bits: int, lo, hi) -> np.ndarray:
    """The rounding rule in NumPy: ``2**bits - 1`` steps of ``(hi - lo) / (2**bits - 1)``
    from ``lo``, round half to even, saturating; ``lo`` where ``hi <= lo``.  The twin of
    the compiled kernel, and the path for ranges of any other shape."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    span = hi - lo
    levels = 2 ** bits - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(span > 0, span / levels, 1.0)
        q = np.round((np.clip(x, lo, np.maximum(hi, lo)) - lo) / step)
    return lo + np.where(span > 0, q * step, 0.0)


def quantize(x, bits: int | None, lo, hi) -> np.ndarray:
    """``Quantizer(bits, lo, hi)(x)``: ``x`` on ``2**bits`` levels over ``[lo, hi]``, saturating;
    ``lo`` and ``hi`` broadcast against ``x`` (e.g. one range per column).  Called per
    crossbar and batch, so it skips building the :class:`Quantizer`."""
    bits = check_count(bits, "bits", 1, none_ok=True)
    x = np.asarray(x, dtype=np.float64)
    return x if bits is None else _round(x, bits, lo, hi)


def dac_voltages(x, bits: int | None, full_scale: float, v_max: float) -> np.ndarray:
    """A DAC's output voltages (V) for the inputs ``x`` (input units, ``full_scale`` of
    which map to ``v_max``): ``quantize(x / full_scale, bits, 0, 1) * v_max``, saturating,
    in one pass over ``x`` and bit for bit that expression; ``bits=None`` (the ideal DAC,
    which does not saturate): ``x * (v_max / full_scale)``."""
    bits = check_count(bits, "bits", 1, none_ok=True)
    x = np.asarray(x, dtype=np.float64)
    return x * (v_max / full_scale) if bits is None else _round(x, bits, 0.0, 1.0, full_scale, v_max)


def quantize_weights(W, bits: int | None, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``W`` on ``2**bits`` levels over ``[lo, hi]`` (default: the range of ``W``; the
    differential scheme passes ``lo=-hi``); ``bits=None`` returns ``W`` unchanged."""
    W = np.asarray(W, dtype=np.float64)
    if bits is None or W.size == 0:
        check_count(bits, "bits", 1, none_ok=True)
        return W
    return Quantizer(bits, float(W.min()) if lo is None else float(lo), float(W.max()) if hi is None else float(hi))(W)
