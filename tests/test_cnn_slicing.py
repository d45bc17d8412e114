"""Bit slicing through the exact circuit: weight-sliced and bit-serial networks equal the
digital network with the same weight (and input) quantization in the ideal limit, run on
parasitic crossbars with conversion and calibration, and reject bad combinations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from xbarsolve.cnn import AnalogConfig, AnalogNetwork
from xbarsolve.cnn import layers as L
from xbarsolve.cnn.datasets import load_mnist, mnist_input
from xbarsolve.cnn.models import mnist_cnn4
from xbarsolve.cnn.quantization import quantize, quantize_weights
from xbarsolve.cnn.slicing import SliceMapping, bit_planes, slice_mappings
from xbarsolve.program.cells import join_levels

IDEAL = dict(r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, conversion=False, calibration=False)


def small_model(rng) -> L.Model:
    """Conv2D (signed inputs: two DAC passes) - ReLU - Flatten - Dense."""
    return L.Model((L.Node("conv", L.Conv2D(rng.normal(size=(3, 3, 1, 4)), rng.normal(size=4), (1, 1), "same")),
                    L.Node("relu", L.Activation("relu"), ("conv",)), L.Node("flat", L.Flatten(), ("relu",)),
                    L.Node("fc", L.Dense(rng.normal(size=(64, 3)), rng.normal(size=3)), ("flat",))), (4, 4, 1), "small")


def layer_range(W, scheme):
    """The layer weight range the mapping uses (shift: min..max; differential: +-max|W|)."""
    if scheme == "shift":
        return float(W.min()), float(W.max())
    w = float(np.abs(W).max())
    return -w, w


def quantized_model(model: L.Model, bits: int, scheme: str) -> L.Model:
    """The digital network whose kernels are quantized to ``bits`` over each layer's range."""
    nodes = []
    for nd in model.nodes:
        if nd.layer.is_linear_layer:
            lo, hi = layer_range(nd.layer.weight_matrix, scheme)
            nd = replace(nd, layer=replace(nd.layer, kernel=quantize_weights(nd.layer.kernel, bits, lo, hi)))
        nodes.append(nd)
    return replace(model, nodes=tuple(nodes))


def rel_err(got, ref) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("scheme", ["shift", "differential"])
@pytest.mark.parametrize("n_slices, bits_per_cell", [(4, 2), (3, 2), (6, 1)])
def test_weight_slices_equal_the_quantized_digital_network(rng, scheme, n_slices, bits_per_cell):
    """Ideal limit: the sliced network is the digital network with the same weight codes
    (1e-9 relative), with every slice a tile of its own (rows_max/cols_max tiling too)."""
    model = small_model(rng)
    x = rng.normal(size=(6, 4, 4, 1))
    bits = n_slices * bits_per_cell
    cfg = AnalogConfig(**IDEAL, scheme=scheme, weight_bits=bits, n_slices=n_slices, bits_per_cell=bits_per_cell,
                       rows_max=20, cols_max=5)
    net = AnalogNetwork(model, cfg).prepare(x[:3])
    unsliced = AnalogNetwork(model, replace(cfg, n_slices=1, bits_per_cell=None)).prepare(x[:3])
    assert net.n_crossbars == n_slices * unsliced.n_crossbars
    ref = quantized_model(model, bits, scheme).logits(x)
    assert rel_err(net.logits(x), ref) < 1e-9
    assert rel_err(unsliced.logits(x), ref) < 1e-9
    # the quantization is really applied: the exact-weight network differs by far more
    assert rel_err(model.logits(x), ref) > 1e-6


@pytest.mark.parametrize("scheme, shift_reference", [("shift", "column"), ("shift", "digital"),
                                                      ("differential", "column")])
def test_mnist_cnn_weight_slices_in_the_ideal_limit(data_dir, scheme, shift_reference):
    """The shipped MNIST CNN, 8-bit weights on four 2-bit cells, on 64x64 tiles."""
    model = mnist_cnn4()
    x = mnist_input(load_mnist(data_dir, "test")[0][:8])
    cfg = AnalogConfig(**IDEAL, scheme=scheme, shift_reference=shift_reference, weight_bits=8, n_slices=4,
                       rows_max=64, cols_max=64)
    net = AnalogNetwork(model, cfg).prepare(x[:4])
    ref = quantized_model(model, 8, scheme).logits(x)
    assert rel_err(net.logits(x), ref) < 1e-9


def test_slices_rebuild_the_codes(rng):
    """The slice levels joined back (most significant first) are the weight codes, and the
    slices' shares of the weights sum to the quantized weights; the top cell of the shift
    scheme carries the range's low end."""
    W = rng.normal(size=(7, 5))
    for scheme in ("shift", "differential"):
        cfg = AnalogConfig(scheme=scheme, weight_bits=6, n_slices=3)
        lo, hi = layer_range(W, scheme)
        sl = slice_mappings(W, cfg, (lo, hi))
        assert [s.index for s in sl] == [0, 1, 2] and all(isinstance(s, SliceMapping) for s in sl)
        np.testing.assert_allclose(sum(s.weights for s in sl), quantize_weights(W, 6, lo, hi), rtol=0, atol=1e-12)
        levels = np.stack([s.inner.weights + s.reference_level for s in sl], axis=-1)
        np.testing.assert_allclose(levels, np.rint(levels), rtol=0, atol=1e-9)  # integer cell levels
        levels = np.rint(levels)
        if scheme == "shift":
            codes = np.round((quantize_weights(W, 6, lo, hi) - lo) / ((hi - lo) / 63)).astype(int)
            np.testing.assert_array_equal(join_levels(levels.astype(int), 2), codes)
            # every slice's zero-signal conductance is that of a zero weight unsliced
            g_zero = cfg.g_min + (cfg.g_max - cfg.g_min) * (0 - lo) / (hi - lo)
            np.testing.assert_allclose([s.inner.g_zero for s in sl], g_zero, rtol=1e-12)
        else:
            assert (np.abs(levels) <= 3).all() and all(s.reference_level == 0 for s in sl)


def test_input_bits_equal_the_digital_network_on_quantized_inputs(rng):
    """Bit-serial DAC, ideal limit: the network equals the digital network on inputs
    quantized to input_bits bits of the full scale (each sign separately), and every pass
    applies only 0 or v_max."""
    model = L.Model((L.Node("fc1", L.Dense(rng.normal(size=(12, 6)), rng.normal(size=6))),
                     L.Node("relu", L.Activation("relu"), ("fc1",)),
                     L.Node("fc2", L.Dense(rng.normal(size=(6, 3))), ("relu",))), (12,), "mlp")
    x = rng.normal(size=(20, 12))
    B = 5
    cfg = AnalogConfig(**IDEAL, input_bits=B, weight_bits=6, n_slices=3)
    net = AnalogNetwork(model, cfg).prepare(x)
    qmodel = quantized_model(model, 6, "shift")

    def digital(nd, h):
        s = net.layers[nd.name].x_scale
        hq = np.sign(h) * quantize(np.abs(h) / s, B, 0.0, 1.0) * s
        return nd.layer.forward(hq)

    ref = qmodel.logits(x, linear=digital)
    assert rel_err(net.logits(x), ref) < 1e-9
    assert rel_err(qmodel.logits(x), ref) > 1e-4  # the input quantization is really applied
    planes = bit_planes([(1.0, np.abs(x))], 2.0, B, 0.4)
    assert len(planes) == B and all(set(np.unique(V)) <= {0.0, 0.4} for _, V in planes)


def adc_bound(al, n_parts: int) -> np.ndarray:
    """Largest error a per-pass ADC can add to each output of a layer whose inputs lie in
    the calibration range: half an ADC step of every pass (each slice, row tile and input
    sign), decoded with the slice's digital weight and the calibration slope, summed."""
    bound = np.zeros(al.matrix.shape[1])
    for t in al.tiles:
        half = 0.5 * (t.analog_hi - t.analog_lo) / (2 ** al.adc_bits - 1)
        decoded = half * t.mapped.factor / t.mapped.inner.scale * (al.x_scale / al.cfg.v_max)
        bound[t.cols] += n_parts * decoded * (1.0 if t.slope is None else np.abs(t.slope))
    return bound


def test_sliced_network_on_parasitic_crossbars(rng):
    """1-ohm wires, conversion and per-slice calibration: the sliced network runs, its
    error against the quantized digital network is finite and below that of the same
    crossbars uncompensated (what conversion and calibration are for); a 6-bit ADC on
    every pass adds no more than half a step per pass."""
    model = small_model(rng)
    x = rng.normal(size=(30, 4, 4, 1))  # signed: two DAC passes in the first layer
    x_cal, x_test = x[:10], x[10:]
    ref = quantized_model(model, 8, "shift").logits(x_test)
    base = dict(weight_bits=8, n_slices=4, rows_max=32, cols_max=32, n_calibration=20)
    comp = AnalogNetwork(model, AnalogConfig(**base)).prepare(x_cal)
    raw = AnalogNetwork(model, AnalogConfig(**base, conversion=False, calibration=False)).prepare(x_cal)
    e_comp, e_raw = rel_err(comp.logits(x_test), ref), rel_err(raw.logits(x_test), ref)
    assert np.isfinite(e_comp) and e_comp < e_raw
    assert comp.n_crossbars == 4 * 3  # conv: 1 tile, fc: 64 rows on 2 row tiles; 4 slices each
    for al in comp.layers.values():
        for t in al.tiles:  # every crossbar was converted: its conductances left the mapped targets
            assert isinstance(t.mapped, SliceMapping) and not np.allclose(t.crossbar.G, t.mapped.G, rtol=1e-6, atol=0)
    # the ADC on every pass, on the calibration inputs (inside the ADC ranges)
    acts = model.forward(x_cal, keep=True)
    for name, src, n_parts in (("conv", "input", 2), ("fc", "flat", 1)):
        al = comp.layers[name]
        P = al.vectors(acts[src])
        exact = al.products(P)
        al.adc_bits = 6
        err = np.abs(al.products(P) - exact).max(axis=0)
        assert (err > 0).any() and (err <= adc_bound(al, n_parts) * (1 + 1e-9)).all()


def test_sliced_cache_roundtrip(tmp_path, rng):
    model = small_model(rng)
    x = np.abs(rng.normal(size=(5, 4, 4, 1)))
    cfg = AnalogConfig(weight_bits=4, n_slices=2, rows_max=16, input_bits=4, scheme="differential")
    a = AnalogNetwork(model, cfg, cache_dir=tmp_path).prepare(x[:2])
    b = AnalogNetwork(model, cfg, cache_dir=tmp_path).prepare(x[:2])
    assert not a.from_cache and b.from_cache
    np.testing.assert_array_equal(a.logits(x), b.logits(x))
    c = AnalogNetwork(model, replace(cfg, n_slices=1), cache_dir=tmp_path).prepare(x[:2])
    assert not c.from_cache  # unsliced is another set of crossbars


def test_default_config_has_no_slicing_in_its_cache_key():
    key = AnalogConfig().programming_key()
    assert not {"n_slices", "bits_per_cell", "input_bits"} & set(key)
    assert AnalogConfig(weight_bits=8, n_slices=4).programming_key()["n_slices"] == 4
    assert AnalogConfig(input_bits=8).programming_key()["input_bits"] == 8


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_slices=4), r"weight slicing \(n_slices=4, bits_per_cell=None\) needs weight_bits"),
    (dict(bits_per_cell=2), "needs weight_bits"),
    (dict(weight_bits=8, n_slices=3), "n_slices=3 must divide weight_bits=8"),
    (dict(weight_bits=8, n_slices=4, bits_per_cell=3), "weight_bits == n_slices \\* bits_per_cell; got weight_bits=8"),
    (dict(weight_bits=8, n_slices=0), "n_slices must be an integer >= 1"),
    (dict(weight_bits=8, bits_per_cell=0), "bits_per_cell must be an integer >= 1 or None"),
    (dict(input_bits=0), "input_bits must be an integer >= 1 or None"),
    (dict(input_bits=8, dac_bits=6), "input_bits=8 .* replaces dac_bits; give one of them, got dac_bits=6"),
])
def test_bad_slicing_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AnalogConfig(**kwargs)


def test_bit_serial_network_rejects_a_multibit_dac(rng):
    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(5, 2)))),), (5,), "fc")
    x = np.abs(rng.normal(size=(4, 5)))
    net = AnalogNetwork(model, AnalogConfig(input_bits=4)).prepare(x).set_quantization(dac_bits=6)
    with pytest.raises(ValueError, match="input_bits=4 .* replaces dac_bits; got dac_bits=6"):
        net.logits(x)
