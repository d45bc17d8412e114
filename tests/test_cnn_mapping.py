"""Mapping weights to crossbars: shift and differential schemes, dense and sparse
(Toeplitz) mappings, tiling, weight quantization and the converters.  Every equality here
is exact up to round-off (1e-9 relative or tighter)."""

from __future__ import annotations

import numpy as np
import pytest

from xbarsolve.cnn import AnalogConfig, AnalogNetwork
from xbarsolve.cnn import layers as L
from xbarsolve.cnn.mapping import G_MAX, G_MIN, map_weights, quantize_weights, tile_slices, toeplitz_matrix
from xbarsolve.cnn.quantization import Quantizer, quantize

IDEAL = dict(r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, conversion=False, calibration=False)


@pytest.mark.parametrize("scheme", ["shift", "differential"])
def test_mapping_decodes_exactly(rng, scheme):
    W = rng.normal(size=(30, 7))
    mp = map_weights(W, scheme)
    assert mp.G.min() >= G_MIN * (1 - 1e-12) and mp.G.max() <= G_MAX * (1 + 1e-12)
    assert np.isclose(mp.G.min(), G_MIN) and np.isclose(mp.G.max(), G_MAX)
    np.testing.assert_allclose(mp.weights, W, rtol=1e-9, atol=1e-12)
    V = rng.uniform(0, 0.4, size=(5, 30))
    y = mp.decode(mp.analog_output(V @ mp.G), V.sum(axis=1))
    np.testing.assert_allclose(y, V @ W, rtol=1e-9, atol=1e-9 * np.abs(V @ W).max())


def test_reference_column_decodes_exactly(rng):
    W = rng.normal(size=(12, 5))
    mp = map_weights(W, "shift", reference_column=True)
    assert mp.G.shape == (12, 6) and mp.n_out == 5 and np.allclose(mp.G[:, -1], mp.b)
    V = rng.uniform(0, 0.4, size=(4, 12))
    a = mp.analog_output(V @ mp.G)
    np.testing.assert_allclose(a, mp.a * (V @ W), rtol=1e-9, atol=1e-9 * np.abs(a).max())
    np.testing.assert_allclose(mp.decode(a, V.sum(axis=1)), V @ W, rtol=1e-9, atol=1e-9 * np.abs(V @ W).max())
    lo, hi = mp.analog_range(0.4)
    assert (lo <= a.min(axis=0) + 1e-18).all() and (hi >= a.max(axis=0) - 1e-18).all()


def test_differential_uses_column_pairs(rng):
    W = np.array([[1.0, -2.0], [0.0, 0.5]])
    mp = map_weights(W, "differential")
    assert mp.G.shape == (2, 4)
    # a positive weight raises G+ only; a negative one raises G- only.
    assert mp.G[0, 0] > G_MIN and np.isclose(mp.G[0, 1], G_MIN)
    assert np.isclose(mp.G[0, 2], G_MIN) and np.isclose(mp.G[0, 3], G_MAX)


def test_quantize_weights_levels(rng):
    W = rng.normal(size=(50, 50))
    Wq = quantize_weights(W, 3)
    assert len(np.unique(np.round(Wq, 12))) <= 8
    assert np.abs(Wq - W).max() <= (W.max() - W.min()) / 7 / 2 * (1 + 1e-12)
    np.testing.assert_array_equal(quantize_weights(W, None), W)


def test_converters():
    x = np.linspace(-0.5, 1.5, 11)
    q = quantize(x, 2, 0.0, 1.0)  # 4 levels: 0, 1/3, 2/3, 1; saturating
    assert set(np.round(q, 12)) <= {0.0, round(1 / 3, 12), round(2 / 3, 12), 1.0}
    assert q[0] == 0.0 and q[-1] == 1.0
    np.testing.assert_array_equal(quantize(x, None, 0, 1), x)
    qz = Quantizer.from_data(4, np.array([[0.0, -1.0], [2.0, 1.0]]))
    np.testing.assert_array_equal(qz.lo, [0.0, -1.0])
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="bits must be an integer >= 1 or None"):
            quantize(x, bad, 0, 1)
        with pytest.raises(ValueError, match="bits must be an integer >= 1 or None"):
            Quantizer(bad)


def test_one_quantizer_for_weights_and_converters(rng):
    """quantize, quantize_weights and Quantizer are one rounding rule: weights over their
    own range equal the converter over that range."""
    W = rng.normal(size=(20, 9))
    for bits in (1, 3, 8):
        q = Quantizer(bits, W.min(), W.max())
        np.testing.assert_array_equal(quantize_weights(W, bits), q(W))
        np.testing.assert_array_equal(quantize(W, bits, W.min(), W.max()), q(W))
        w = float(np.abs(W).max())
        np.testing.assert_array_equal(quantize_weights(W, bits, -w, w), Quantizer(bits, -w, w)(W))


@pytest.mark.parametrize("scheme, ref", [("shift", False), ("shift", True), ("differential", False)])
def test_max_range_rule_bounds_the_analog_output(rng, scheme, ref):
    """MappedMatrix.analog_range (the ADC's max-range rule) contains the analog output of
    every input in [0, v_max], and is reached by the extreme inputs (all on, or on only
    where a column's difference is positive/negative)."""
    W = rng.normal(size=(15, 4))
    mp = map_weights(W, scheme, reference_column=ref)
    lo, hi = mp.analog_range(0.4)
    V = rng.uniform(0, 0.4, size=(200, 15))
    a = mp.analog_output(V @ mp.G)
    assert (a >= lo - 1e-18).all() and (a <= hi + 1e-18).all()
    D = mp.analog_output(np.eye(15) @ mp.G)  # per-row contribution of each output, per volt
    for k in range(mp.n_out):
        top = mp.analog_output(0.4 * (D[:, k] > 0)[None, :] @ mp.G)[0, k]
        bottom = mp.analog_output(0.4 * (D[:, k] < 0)[None, :] @ mp.G)[0, k]
        assert top == pytest.approx(hi[k], rel=1e-12) and bottom == pytest.approx(lo[k], rel=1e-12, abs=1e-20)


def test_tile_slices_cover_matrix():
    tiles = tile_slices(300, 70, 128, 32)
    cover = np.zeros((300, 70), int)
    for rs, cs in tiles:
        assert rs.stop - rs.start <= 128 and cs.stop - cs.start <= 32
        cover[rs, cs] += 1
    assert (cover == 1).all()
    assert all(cs.stop - cs.start <= 16 for _, cs in tile_slices(300, 70, 128, 32, columns_per_output=2))


@pytest.mark.parametrize("padding, strides", [("same", (1, 1)), ("same", (2, 2)), ("valid", (1, 1))])
def test_toeplitz_equals_convolution(rng, padding, strides):
    x = rng.normal(size=(3, 7, 6, 2))
    k = rng.normal(size=(3, 3, 2, 4))
    conv = L.Conv2D(k, None, strides, padding)
    M = toeplitz_matrix(k, x.shape[1:], strides, padding)
    y = conv.forward(x)
    np.testing.assert_allclose(x.reshape(3, -1) @ M, y.reshape(3, -1), rtol=1e-12, atol=1e-12)


def _small_model(rng):
    nodes = (
        L.Node("conv1", L.Conv2D(rng.normal(size=(3, 3, 2, 6)), rng.normal(size=6), (1, 1), "same")),
        L.Node("relu1", L.Activation("relu"), ("conv1",)),
        L.Node("conv2", L.Conv2D(rng.normal(size=(3, 3, 6, 5)), rng.normal(size=5), (2, 2), "same"), ("relu1",)),
        L.Node("relu2", L.Activation("relu"), ("conv2",)),
        L.Node("flat", L.Flatten(), ("relu2",)),
        L.Node("fc", L.Dense(rng.normal(size=(4 * 4 * 5, 3)), rng.normal(size=3)), ("flat",)),
    )
    return L.Model(nodes, (8, 8, 2), "small")


@pytest.mark.parametrize("options", [
    dict(scheme="shift"), dict(scheme="differential"), dict(conv_mapping="sparse"),
    dict(scheme="differential", conv_mapping="sparse"),
    dict(rows_max=7, cols_max=4), dict(scheme="differential", rows_max=10, cols_max=6),
    dict(shift_reference="column"), dict(shift_reference="column", rows_max=7, cols_max=4),
    dict(conv_mapping="sparse", rows_max=50, cols_max=40),
])
def test_ideal_network_equals_digital(rng, options):
    """Dense = sparse, shift = differential, tiled = untiled: all equal the digital forward
    pass with ideal wires and converters (signed inputs use two passes)."""
    model = _small_model(rng)
    x = rng.normal(size=(6, 8, 8, 2))
    net = AnalogNetwork(model, AnalogConfig(**IDEAL, **options)).prepare(x[:2])
    ref = model.logits(x)
    np.testing.assert_allclose(net.logits(x), ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_ideal_network_with_calibration(rng):
    model = _small_model(rng)
    x = rng.normal(size=(4, 8, 8, 2))
    net = AnalogNetwork(model, AnalogConfig(**{**IDEAL, "calibration": True})).prepare(x[:2])
    ref = model.logits(x)
    np.testing.assert_allclose(net.logits(x), ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_tiling_and_calibration_with_parasitics(rng):
    """With 1-ohm wires the tile size matters (a study parameter, not a no-op), and the
    per-column calibration reduces every layer's error (exact inputs) below the
    uncalibrated one."""
    model = _small_model(rng)
    x = np.abs(rng.normal(size=(12, 8, 8, 2)))
    raw = AnalogNetwork(model, AnalogConfig(conversion=False, calibration=False)).prepare(x[:2])
    tiled = AnalogNetwork(model, AnalogConfig(conversion=False, calibration=False, rows_max=9, cols_max=4)).prepare(x[:2])
    cal = AnalogNetwork(model, AnalogConfig(conversion=False, n_calibration=20)).prepare(x[:2])
    assert not np.allclose(raw.logits(x), tiled.logits(x), rtol=1e-6)
    e_raw = raw.evaluate(x[2:]).layers
    e_cal = cal.evaluate(x[2:]).layers
    for a, b in zip(e_raw, e_cal):
        assert b.mean_alone < a.mean_alone, (a, b)
