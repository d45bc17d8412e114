"""The compiled quantizer against its NumPy twin: bit for bit, every range and edge case."""

import numpy as np
import pytest

from xbarsolve.cnn.network import NumpyOps
from xbarsolve.cnn.quantization import Quantizer, _round, _round_numpy, dac_voltages, quantize


def _values(rng, shape, lo, hi, bits):
    """Random values over and beyond ``[lo, hi]``, with exact half levels and specials."""
    lo, hi = np.broadcast_to(lo, shape[-1:]), np.broadcast_to(hi, shape[-1:])
    span = hi - lo
    x = lo + span * rng.uniform(-0.3, 1.3, shape)
    step = np.where(span > 0, span / (2 ** bits - 1), 1.0)
    k = rng.integers(0, 2 ** bits, shape)
    x[::3] = (lo + (k * step + 0.5 * step))[::3]  # halfway between two levels
    x[1::5] = (lo + k * step)[1::5]  # on a level
    flat = x.reshape(-1)
    flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    return x


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 12, 16])
def test_scalar_range_bit_for_bit(bits):
    rng = np.random.default_rng(bits)
    for lo, hi in [(0.0, 1.0), (-0.7, 2.3), (1e-6, 3e-5), (0.5, 0.5), (1.0, 0.0)]:
        x = _values(rng, (257, 13), lo, hi, bits)
        got = _round(x, bits, lo, hi)
        want = _round_numpy(x, bits, lo, hi)
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("bits", [3, 8])
def test_per_column_ranges_bit_for_bit(bits):
    rng = np.random.default_rng(10 + bits)
    n = 9
    lo = rng.normal(0.0, 1e-5, n)
    hi = lo + rng.uniform(0.0, 2e-5, n)
    hi[2] = lo[2]  # an empty range: every value maps to lo
    hi[5] = lo[5] - 1e-6  # hi < lo likewise
    lo[7] = np.nan  # an undefined range
    x = _values(rng, (3, 41, n), np.nan_to_num(lo), np.nan_to_num(hi), bits)
    np.testing.assert_array_equal(_round(x, bits, lo, hi), _round_numpy(x, bits, lo, hi))
    assert _round(x, bits, lo, hi).shape == x.shape


def test_other_range_shapes_and_non_contiguous_input():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 2, (20, 30))
    lo = rng.uniform(-0.5, 0.0, (20, 1))  # one range per row: the NumPy path
    np.testing.assert_array_equal(quantize(x, 4, lo, 1.0), _round_numpy(x, 4, lo, 1.0))
    xt = x.T  # not C-contiguous
    np.testing.assert_array_equal(quantize(xt, 5, 0.0, 1.0), _round_numpy(xt, 5, 0.0, 1.0))
    assert quantize(np.float64(0.26), 2, 0.0, 1.0) == pytest.approx(1 / 3)
    assert quantize(np.zeros((0, 4)), 3, 0.0, 1.0).shape == (0, 4)


@pytest.mark.parametrize("bits", [None, 1, 6, 8])
def test_dac_voltages_equal_the_two_step_expression(bits):
    rng = np.random.default_rng(4)
    x_scale, v_max = 3.7, 0.2
    Q = rng.uniform(0.0, 1.2 * x_scale, (100, 27))
    Q[::4] = np.round(Q[::4] / x_scale * 255) / 255 * x_scale  # near DAC levels
    if bits is None:
        want = Q * (v_max / x_scale)
    else:
        want = _round_numpy(Q / x_scale, bits, 0.0, 1.0) * v_max
    np.testing.assert_array_equal(dac_voltages(Q, bits, x_scale, v_max), want)
    np.testing.assert_array_equal(NumpyOps.dac(Q, bits, x_scale, v_max), want)
    if bits is not None:
        assert dac_voltages(Q, bits, x_scale, v_max).max() == v_max  # saturates at full scale


def test_quantizer_levels_unchanged():
    q = Quantizer(2, 0.0, 1.0)(np.array([-0.2, 0.3, 0.5, 2.0, 1 / 6]))
    np.testing.assert_array_equal(q, [0.0, 1 / 3, 2 / 3, 1.0, 0.0])  # 0.5 level: half to even
    with pytest.raises(ValueError, match="bits"):
        quantize(np.ones(3), 0, 0.0, 1.0)
