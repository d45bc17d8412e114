"""AnalogConfig as five validated parts with the flat keywords kept, and the declared
linear-layer protocol (LinearLayer) that the analog network programs against."""

from __future__ import annotations

import copy
import inspect
import pickle
from dataclasses import dataclass, fields, replace

import numpy as np
import pytest

from xbarsolve.cnn import (AnalogConfig, AnalogNetwork, CircuitConfig, CompensationConfig, ConverterConfig,
                           LinearLayer, MappingConfig, NoiseConfig)
from xbarsolve.cnn import layers as L
from xbarsolve.cnn.config import PARTS
from xbarsolve.devices import Sinh
from xbarsolve.transistors import Resistor

IDEAL = dict(r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, conversion=False, calibration=False)
FLAT = [f.name for cls in PARTS.values() for f in fields(cls)]


def test_flat_keywords_are_exactly_the_parts_fields():
    """The 30 flat keywords (plus seed) are the parts' fields, each read back as an
    attribute; nothing is defined twice that could drift apart."""
    sig = inspect.signature(AnalogConfig)
    flat_params = [p for p in sig.parameters if p not in PARTS and p != "seed"]
    assert sorted(flat_params) == sorted(FLAT) and len(FLAT) == len(set(FLAT)) == 30
    cfg = AnalogConfig()
    for name in FLAT:
        part = next(p for p, cls in PARTS.items() if name in {f.name for f in fields(cls)})
        assert getattr(cfg, name) == getattr(getattr(cfg, part), name)


def test_flat_and_nested_construction_agree():
    flat = AnalogConfig(r_row=2.0, r_col=3.0, device=Sinh(a=2.0), scheme="differential", rows_max=64, cols_max=32,
                        adc_bits=6, dac_bits=5, n_calibration=12, v_conv={"conv1": 0.05}, programming_sigma=1e-7,
                        seed=3)
    nested = AnalogConfig(CircuitConfig(r_row=2.0, r_col=3.0, device=Sinh(a=2.0)),
                          MappingConfig(scheme="differential", rows_max=64, cols_max=32),
                          ConverterConfig(adc_bits=6, dac_bits=5),
                          CompensationConfig(n_calibration=12, v_conv={"conv1": 0.05}),
                          NoiseConfig(programming_sigma=1e-7), seed=3)
    assert flat == nested
    assert flat.circuit.r_col == 3.0 and flat.adc_bits == 6 and flat.amplitude("conv1") == 0.05
    assert flat.amplitude("fc") == 0.1 and not flat.is_linear and not flat.ideal_wires
    assert flat.programming_key() == nested.programming_key()


def test_replace_and_flat_override_of_a_part():
    base = AnalogConfig(rows_max=64, programming_sigma=1e-7)
    cfg = replace(base, adc_bits=6, r_row=0.5)
    assert cfg.converter.adc_bits == 6 and cfg.circuit.r_row == 0.5
    assert cfg.mapping is base.mapping and cfg.noise is base.noise and cfg.circuit.r_col == 1.0
    over = AnalogConfig(CircuitConfig(r_row=2.0, r_col=2.0), r_row=5.0)
    assert (over.r_row, over.r_col) == (5.0, 2.0)
    assert replace(base, mapping=MappingConfig(rows_max=8)).rows_max == 8


def test_config_survives_pickle_and_deepcopy():
    cfg = AnalogConfig(device=Sinh(a=2.0), transistor=Resistor(1e3), rows_max=16, adc_bits=4)
    for other in (pickle.loads(pickle.dumps(cfg)), copy.deepcopy(cfg)):
        assert other == cfg and other.adc_bits == 4 and other.programming_key() == cfg.programming_key()


@pytest.mark.parametrize("kwargs, match", [
    (dict(r_row=-1.0), "r_row must be a finite number >= 0 ohm"),
    (dict(r_out=float("nan")), "r_out must be a finite number >= 0 ohm"),
    (dict(g_min=1e-4, g_max=1e-5), "g_min < g_max"),
    (dict(g_min=-1e-6), "g_min must be a finite number >= 0 S"),
    (dict(scheme="balanced"), "scheme must be one of 'shift', 'differential'"),
    (dict(shift_reference="analog"), "shift_reference"),
    (dict(conv_mapping="toeplitz"), "conv_mapping"),
    (dict(rows_max=0), "rows_max must be an integer >= 1 or None"),
    (dict(cols_max=2.5), "cols_max must be an integer >= 1 or None"),
    (dict(weight_bits=0), "weight_bits must be an integer >= 1 or None"),
    (dict(dac_bits=2.5), "dac_bits must be an integer >= 1 or None"),
    (dict(adc_bits=-3), "adc_bits must be an integer >= 1 or None"),
    (dict(v_max=0.0), "v_max must be > 0 V"),
    (dict(adc_range="min"), "adc_range"),
    (dict(n_range_samples=0), "n_range_samples must be an integer >= 1"),
    (dict(n_calibration=1), "n_calibration must be an integer >= 2"),
    (dict(v_conv=-0.1), "v_conv must be an amplitude > 0 V"),
    (dict(v_conv={"conv1": 0.0}), "v_conv must be an amplitude > 0 V"),
    (dict(programming_sigma=-1e-6), "programming_sigma must be a finite number >= 0 S"),
    (dict(read_noise_sigma=float("inf")), "read_noise_sigma"),
    (dict(programming_stage="during"), "programming_stage"),
    (dict(seed=-1), "seed must be an integer >= 0"),
])
def test_bad_values_are_refused_by_their_part(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AnalogConfig(**kwargs)
    name = next(iter(kwargs))
    if name != "seed":  # the same check, once, in the part that holds the field
        part = next(cls for cls in PARTS.values() if name in {f.name for f in fields(cls)})
        with pytest.raises(ValueError, match=match):
            part(**kwargs)


def test_models_must_be_model_types():
    with pytest.raises(TypeError, match="device must be an xbarsolve.devices.Device"):
        AnalogConfig(device="sinh")
    with pytest.raises(TypeError, match="transistor must be an xbarsolve.transistors.Transistor"):
        CircuitConfig(transistor=1e3)
    with pytest.raises(TypeError, match="circuit must be a CircuitConfig"):
        AnalogConfig(MappingConfig())
    with pytest.raises(TypeError, match="unexpected keyword"):
        AnalogConfig(r_wire=1.0)


def test_programming_key_leaves_out_only_converters_and_read_noise():
    cfg = AnalogConfig()
    key = cfg.programming_key()
    # bit-slicing fields enter the key only when set (test_cnn_slicing), so unsliced keys stay as they were
    assert set(key) == set(FLAT) - {"dac_bits", "adc_bits", "read_noise_sigma"} - {"n_slices", "bits_per_cell",
                                                                                  "input_bits"} | {"seed"}
    assert AnalogConfig(adc_bits=4, dac_bits=4, read_noise_sigma=1e-8).programming_key() == key
    for change in (dict(r_row=0.5), dict(rows_max=8), dict(n_range_samples=10), dict(seed=1), dict(device=Sinh())):
        assert AnalogConfig(**change).programming_key() != key, change


def test_nested_config_hits_the_flat_configs_cache(tmp_path, rng):
    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(12, 4)))),), (12,), "fc")
    x = np.abs(rng.normal(size=(4, 12)))
    a = AnalogNetwork(model, AnalogConfig(rows_max=5, r_row=0.5), cache_dir=tmp_path).prepare(x)
    b = AnalogNetwork(model, AnalogConfig(CircuitConfig(r_row=0.5), MappingConfig(rows_max=5)),
                      cache_dir=tmp_path).prepare(x)
    assert not a.from_cache and b.from_cache
    np.testing.assert_array_equal(a.logits(x), b.logits(x))


@dataclass(frozen=True, eq=False)
class Conv1D(LinearLayer):
    """A 1-D convolution on (N, length, cin) inputs: a linear layer the package does not
    ship, defined through the declared protocol alone."""

    kernel: np.ndarray
    bias: np.ndarray | None = None

    @property
    def weight_matrix(self):
        k, ci, co = self.kernel.shape
        return self.kernel.reshape(k * ci, co)

    def patches(self, x):
        win = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), self.kernel.shape[0], axis=1)
        return win.transpose(0, 1, 3, 2).reshape(x.shape[0], win.shape[1], -1)  # (N, Lo, k*cin), ordered (k, cin)


def test_a_new_linear_layer_runs_on_crossbars(rng):
    """A user's LinearLayer subclass is mapped onto crossbars with no change to the
    network: ideal crossbars reproduce its digital output; 1-ohm wires do not."""
    conv = Conv1D(rng.normal(size=(3, 2, 4)), rng.normal(size=4))
    x = rng.normal(size=(5, 9, 2))
    ref = np.stack([[sum(x[n, i + a] @ conv.kernel[a] for a in range(3)) + conv.bias for i in range(7)]
                    for n in range(5)])
    np.testing.assert_allclose(conv.forward(x), ref, rtol=1e-12, atol=1e-12)
    model = L.Model((L.Node("c", conv), L.Node("r", L.Activation("relu"), ("c",)), L.Node("f", L.Flatten(), ("r",)),
                     L.Node("fc", L.Dense(rng.normal(size=(28, 3))), ("f",))), (9, 2), "conv1d")
    assert [nd.name for nd in model.linear_nodes] == ["c", "fc"]
    net = AnalogNetwork(model, AnalogConfig(**IDEAL, rows_max=4, cols_max=3)).prepare(x[:2])
    want = model.logits(x)
    np.testing.assert_allclose(net.logits(x), want, rtol=0, atol=1e-9 * np.abs(want).max())
    wired = AnalogNetwork(model, AnalogConfig(conversion=False, calibration=False)).prepare(x[:2])
    assert not np.allclose(wired.logits(x), want, rtol=1e-6)
    with pytest.raises(NotImplementedError, match="Conv1D has .* no sparse mapping"):
        AnalogNetwork(model, AnalogConfig(**IDEAL, conv_mapping="sparse")).prepare(x[:2])


def test_linear_layer_is_abstract():
    class Half(LinearLayer):
        @property
        def weight_matrix(self):
            return np.eye(2)

    with pytest.raises(TypeError, match="abstract"):
        Half()
    assert isinstance(L.Conv2D(np.ones((1, 1, 1, 1))), LinearLayer) and isinstance(L.Dense(np.ones((2, 2))), LinearLayer)
    assert not isinstance(L.Activation("relu"), LinearLayer)
