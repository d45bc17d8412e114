"""Bit slicing: weights over several multi-level cells, inputs one bit per crossbar pass.

**Weight slicing** (``AnalogConfig(weight_bits=8, n_slices=4)``: four 2-bit cells per
weight).  A layer's weight matrix is quantized to ``weight_bits`` integer codes over the
layer's weight range, exactly the quantization of the unsliced mapping
(:func:`xbarsolve.cnn.quantization.quantize_weights`), and each code is split into
``n_slices`` cell levels ``0 .. 2**c - 1`` (``c`` bits per cell), most significant first,
by the one definition of that split (:func:`xbarsolve.program.cells.split_codes`).  Every
slice of every tile is a crossbar of its own (built by the crossbar factory, solved,
converted, ADC-quantized and calibrated like an unsliced tile), mapping a level matrix
``L_k`` with the configured scheme:

* **shift**: codes ``q = round((W - lo) / step)``, ``W_q = lo + step q = step (q - z)``
  with ``q = sum_k p_k L_k``, ``p_k = 2**(c (n-1-k))`` and the (real) code of weight zero
  ``z = -lo / step``.  Every slice takes the same reference level ``r = z (2**c - 1) /
  (2**bits - 1)`` (so ``sum_k p_k r = z``): slice ``k`` is the shift mapping of ``L_k - r``
  over ``[-r, 2**c - 1 - r]`` (level 0 on ``g_min``, level ``2**c - 1`` on ``g_max``) and
  ``V @ W_q = step sum_k p_k V @ (L_k - r)`` exactly.  The reference conductance of every
  slice (its unit column, or the digital ``sum(V)`` term) is then that of a zero weight
  of the unsliced mapping, and the ADC sees each slice's signal without a common mode.
* **differential**: over ``[-w, w]`` the codes are ``W_q = -w + step q``; the odd integer
  ``d = 2 q - (2**bits - 1)`` gives ``W_q = (step / 2) d`` with ``|d| <= 2**bits - 1``.
  The magnitude ``|d|`` is sliced, the sign picks the column of each pair: slice ``k`` is
  the differential map of ``sign(d) L_k(|d|)`` over ``[-(2**c - 1), 2**c - 1]``.

The digital recombination multiplies each slice's decoded output by its power of
``2**c`` and the step (:attr:`SliceMapping.factor`); so in the ideal limit (no wire
resistance, no noise, ideal converters) a sliced network equals the digital network with
the weights ``W_q``, to round-off.

**Input slicing** (``AnalogConfig(input_bits=8)``: a bit-serial DAC).  The non-negative
and the negative parts of the inputs are each quantized to ``B`` bits of the full scale,
``x = (x_scale / (2**B - 1)) sum_j 2**j b_j`` with bits ``b_j`` in {0, 1}, and every bit
is one crossbar pass with inputs ``b_j v_max`` (:func:`bit_planes`); the passes are
recombined digitally with ``2**j / (2**B - 1)``.  The ADC digitizes every pass.

Conductances in siemens, inputs in volts, currents in amperes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mapping import MappedMatrix
from ..program.cells import split_codes, weight_codes
from .mapping import map_weights

__all__ = ["SliceMapping", "slice_mappings", "bit_planes", "tile_target"]


@dataclass(frozen=True, eq=False)
class SliceMapping:
    """One weight slice of one tile: the mapped level matrix and its digital weight.

    Decodes like a :class:`~xbarsolve.mapping.MappedMatrix` but into the layer's weight
    units: ``decode(a, v_sum) = factor * inner.decode(a, v_sum)``.

    Attributes
    ----------
    inner : MappedMatrix
        The level matrix ``L_k - r`` (shift) or ``sign(d) L_k`` (differential) on conductances.
    factor : float
        Weight units per level: the step times the slice's power of ``2**bits_per_cell``
        (half the step for the differential scheme).
    reference_level : float
        The level ``r`` subtracted from every cell (shift; 0 for differential pairs), so
        that ``inner.weights + reference_level`` are the integer cell levels.
    index, n_slices : int
        Slice position (0 = most significant) and count.
    """

    inner: MappedMatrix
    factor: float
    reference_level: float
    index: int
    n_slices: int

    @property
    def G(self) -> np.ndarray:
        """Target conductances (S) of the slice's crossbar."""
        return self.inner.G

    @property
    def weights(self) -> np.ndarray:
        """The slice's share of the quantized weights (weight units); the shares sum to ``W_q``."""
        return self.factor * self.inner.weights

    def analog_output(self, currents) -> np.ndarray:
        """The quantity the ADC digitizes (A): :meth:`MappedMatrix.analog_output`."""
        return self.inner.analog_output(currents)

    def analog_range(self, v_max: float) -> tuple[np.ndarray, np.ndarray]:
        """Max-range rule of the slice's crossbar (A)."""
        return self.inner.analog_range(v_max)

    def decode(self, analog, v_sum) -> np.ndarray:
        """The slice's share of ``V @ W_q`` (volt x weight units) from the analog output
        (A) and the digital ``sum(V)`` (V) of each input vector."""
        return self.factor * self.inner.decode(analog, v_sum)


def slice_mappings(W: np.ndarray, cfg, w_range: tuple[float, float]) -> list[SliceMapping]:
    """The weight slices of one tile ``W`` (weight units) for an :class:`AnalogConfig`
    with ``n_slices > 1``, most significant first.

    Parameters
    ----------
    W : ndarray, shape (m, n)
        The tile's weights.
    cfg : AnalogConfig
        Scheme, conductance range, reference column, ``weight_bits`` and slicing.
    w_range : (float, float)
        The layer's weight range, shared by all its tiles: ``(lo, hi)`` (shift) or
        ``(-w, w)`` (differential).
    """
    mp = cfg.mapping
    if not mp.sliced:
        raise ValueError(f"slice_mappings needs n_slices > 1; got n_slices={mp.n_slices}")
    bits, n, c = mp.weight_bits, mp.n_slices, mp.cell_bits
    top = 2 ** c - 1
    powers = 2.0 ** (c * np.arange(n - 1, -1, -1))
    lo, hi = float(w_range[0]), float(w_range[1])
    if mp.scheme == "shift":
        if hi <= lo:  # constant weights, as map_weights
            hi = lo + 1.0
        codes, lo, step = weight_codes(W, bits, lo, hi)
        levels = split_codes(codes, c, n)
        r = (-lo / step) * top / (2 ** bits - 1)
        mats = [map_weights(levels[..., k] - r, "shift", g_min=mp.g_min, g_max=mp.g_max, w_range=(-r, top - r),
                            reference_column=mp.reference_column) for k in range(n)]
        return [SliceMapping(mats[k], step * powers[k], r, k, n) for k in range(n)]
    w = max(abs(lo), abs(hi))
    if not w > 0:
        w = 1.0  # all-zero weights, as map_weights
    codes, _, step = weight_codes(W, bits, -w, w)
    d = 2 * codes - (2 ** bits - 1)
    levels = split_codes(np.abs(d), c, n) * np.sign(d)[..., None]
    return [SliceMapping(map_weights(levels[..., k], "differential", g_min=mp.g_min, g_max=mp.g_max,
                                     w_range=(-top, top)), 0.5 * step * powers[k], 0.0, k, n)
            for k in range(n)]


def tile_target(mapped, W_tile: np.ndarray) -> np.ndarray:
    """What a tile's calibration fits its output to: the slice's share of the quantized
    weights for a :class:`SliceMapping`, else the tile's exact weights ``W_tile``."""
    return mapped.weights if isinstance(mapped, SliceMapping) else W_tile


def bit_planes(parts, x_scale: float, input_bits: int, v_max: float,
               dac_bits: int | None = None) -> list[tuple[float, np.ndarray]]:
    """Bit-serial DAC passes: ``(digital weight, V)`` pairs, one per input bit and sign.

    Parameters
    ----------
    parts : list of (sign, Q)
        Non-negative input parts (input units) with their signs (+1, -1).
    x_scale : float
        Full scale (input units): quantized inputs saturate there.
    input_bits : int
        Bits ``B`` per input.
    v_max : float
        Voltage of a 1 bit (V).
    dac_bits : int or None
        Must be None: a bit-serial DAC has no multi-bit resolution (e.g. one set by
        ``AnalogNetwork.set_quantization`` on a bit-serial network).

    Returns
    -------
    list of (float, ndarray)
        ``(sign * 2**j / (2**B - 1), b_j * v_max)`` for ``j = 0 .. B-1``; the weighted
        sum of the passes' outputs is the product with the inputs quantized to ``B`` bits.
    """
    if dac_bits is not None:
        raise ValueError(f"input_bits={input_bits} (a bit-serial DAC) replaces dac_bits; got dac_bits={dac_bits}")
    top = 2 ** int(input_bits) - 1
    out = []
    for sign, Q in parts:
        q = np.round(np.clip(Q / x_scale, 0.0, 1.0) * top).astype(np.int64)
        for j in range(int(input_bits)):
            out.append((sign * 2.0 ** j / top, ((q >> j) & 1) * float(v_max)))
    return out
