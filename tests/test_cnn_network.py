"""The analog network end to end: the ideal crossbar network reproduces the digital
forward pass of the Keras ResNet-20, the HDF5 cache reproduces a prepared network, the
converters and programming error behave, and error propagation is reported per layer."""

from __future__ import annotations

import numpy as np
import pytest

from xbarsolve.cnn import AnalogConfig, AnalogNetwork, ProgrammedCrossbar, default_crossbar_factory
from xbarsolve.cnn.datasets import cifar10_keras_input, load_cifar10, load_mnist, mnist_input
from xbarsolve.cnn.models import load_keras_h5, mnist_cnn4

IDEAL = dict(r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, conversion=False, calibration=False)


@pytest.fixture(scope="module")
def resnet20(request):
    from conftest import shared_data_dir  # noqa: PLC0415

    d = shared_data_dir()
    if d is None:
        pytest.skip("shared data not found")
    model = load_keras_h5(d / "models" / "keras_resnet_cifar10" / "resnet20v1_cifar10.h5")
    x, y = load_cifar10(d, n=1000)
    mean = np.load(d / "models" / "keras_resnet_cifar10" / "cifar10_x_train_mean.npy")
    return model, cifar10_keras_input(x, mean), y


def test_ideal_crossbars_reproduce_resnet20(data_dir, resnet20):
    """Zero parasitics, no noise, no quantization: same predictions and logits within
    1e-9 relative on 100 CIFAR-10 images (the first layer's signed inputs take two passes)."""
    model, X, _ = resnet20
    net = AnalogNetwork(model, AnalogConfig(**IDEAL)).prepare(X[-10:])
    assert net.n_crossbars == 22
    ref = np.concatenate([model.logits(X[i:i + 50]) for i in (0, 50)])
    got = np.concatenate([net.logits(X[i:i + 50]) for i in (0, 50)])
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert rel < 1e-9


def test_cache_roundtrip(tmp_path, rng):
    from xbarsolve.cnn import layers as L

    model = L.Model((L.Node("conv", L.Conv2D(rng.normal(size=(3, 3, 1, 4)), rng.normal(size=4), (1, 1), "same")),
                     L.Node("relu", L.Activation("relu"), ("conv",)), L.Node("flat", L.Flatten(), ("relu",)),
                     L.Node("fc", L.Dense(rng.normal(size=(64, 3))), ("flat",))), (4, 4, 1), "tiny")
    x = np.abs(rng.normal(size=(5, 4, 4, 1)))
    cfg = AnalogConfig(programming_sigma=0.5e-6, rows_max=5)
    a = AnalogNetwork(model, cfg, cache_dir=tmp_path).prepare(x[:2])
    assert not a.from_cache and len(list(tmp_path.glob("tiny-*.h5"))) == 1
    b = AnalogNetwork(model, cfg, cache_dir=tmp_path).prepare(x[:2])
    assert b.from_cache
    np.testing.assert_array_equal(a.logits(x), b.logits(x))
    c = AnalogNetwork(model, AnalogConfig(programming_sigma=0.5e-6, rows_max=5, seed=1), cache_dir=tmp_path).prepare(x[:2])
    assert not c.from_cache  # another seed is another programmed array


def test_crossbar_factory_seam(rng):
    """A custom factory sees every tile's target conductances and its result is used."""
    from xbarsolve.cnn import layers as L

    seen = []

    def factory(G, name, cfg, rng_):
        seen.append((name, G.shape))
        return default_crossbar_factory(G, name, cfg, rng_)

    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(20, 6)))),), (20,), "fc")
    AnalogNetwork(model, AnalogConfig(rows_max=8), crossbar_factory=factory).prepare(np.abs(rng.normal(size=(4, 20))))
    # 6 weight columns and the default shift mapping's unit reference column per tile
    assert seen == [("fc/0", (8, 7)), ("fc/1", (8, 7)), ("fc/2", (4, 7))]
    assert isinstance(default_crossbar_factory(np.full((3, 2), 1e-5), "x/0", AnalogConfig(), rng), ProgrammedCrossbar)


def test_programming_error_and_read_noise_change_outputs(rng):
    from xbarsolve.cnn import layers as L

    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(20, 6)))),), (20,), "fc")
    x = np.abs(rng.normal(size=(30, 20)))
    base = AnalogNetwork(model, AnalogConfig(**IDEAL)).prepare(x[:10])
    noisy = AnalogNetwork(model, AnalogConfig(**{**IDEAL, "programming_sigma": 1e-6})).prepare(x[:10])
    assert not np.allclose(base.logits(x), noisy.logits(x))
    recal = AnalogNetwork(model, AnalogConfig(**{**IDEAL, "programming_sigma": 1e-6, "calibration": True})).prepare(x[:10])
    ref = model.logits(x)
    # programming error is per cell, so a per-column line does not remove it, but it helps
    assert np.abs(recal.logits(x) - ref).mean() < np.abs(noisy.logits(x) - ref).mean()


def test_quantization_error_shrinks_with_bits(data_dir):
    """Ideal wires: no error without converters; with DAC and ADC the error of every layer
    shrinks with the bit count, and an ADC behind an analog unit reference column (which
    sees only the signal) beats one digitizing the raw shift-mapped column current (whose
    range is mostly the common-mode ``b * sum(V)``)."""
    model = mnist_cnn4()
    x, y = load_mnist(data_dir, "test")
    X = mnist_input(x[:40])
    x_cal = mnist_input(load_mnist(data_dir, "train")[0][:100])
    err = {}
    for ref in ("digital", "column"):
        net = AnalogNetwork(model, AnalogConfig(**IDEAL, shift_reference=ref)).prepare(x_cal)
        assert max(e.mean_alone for e in net.evaluate(X, y[:40]).layers) < 1e-12
        for bits in (4, 6, 8):
            err[ref, bits] = np.array([e.mean_alone for e in net.set_quantization(bits, bits).evaluate(X, y[:40]).layers])
    for ref in ("digital", "column"):
        assert (err[ref, 8] < err[ref, 6]).all() and (err[ref, 6] < err[ref, 4]).all()
    assert (err["column", 6] < err["digital", 6]).all()
    assert err["column", 8][0] < 1.0 / 255  # first layer: exact inputs, below one 8-bit step of the range


def test_mnist_cnn_on_parasitic_crossbars(data_dir):
    """The 4-layer MNIST CNN maps onto the paper's crossbar sizes; on 1-ohm 64x64 tiles with
    conversion and calibration it keeps its accuracy and reports per-layer errors."""
    model = mnist_cnn4()
    xtr, _ = load_mnist(data_dir, "train")
    x, y = load_mnist(data_dir, "test")
    # the paper's crossbar sizes: shift mapping undone digitally, no reference column
    ideal = AnalogNetwork(model, AnalogConfig(**IDEAL, shift_reference="digital")).prepare(mnist_input(xtr[:2]))
    assert ideal.crossbar_shapes() == {"conv1": [(25, 20)], "conv2": [(500, 50)], "conv3": [(800, 500)], "conv4": [(500, 10)]}
    net = AnalogNetwork(model, AnalogConfig(rows_max=64, cols_max=64)).prepare(mnist_input(xtr[:100]))
    r = net.evaluate(mnist_input(x[:100]), y[:100])
    assert [e.name for e in r.layers] == ["conv1", "conv2", "conv3", "conv4"]
    assert all(0 < e.mean_alone <= e.worst_alone for e in r.layers)
    assert all(e.mean_alone < 0.01 for e in r.layers)  # < 1 % of the output range per layer
    assert r.accuracy_software >= 0.97
    assert r.accuracy_analog >= r.accuracy_software - 0.03


def test_read_noise_is_seeded_and_programming_stage_before_conversion(rng):
    from xbarsolve.cnn import layers as L

    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(20, 6)))),), (20,), "fc")
    x = np.abs(rng.normal(size=(30, 20)))
    noisy = AnalogNetwork(model, AnalogConfig(**{**IDEAL, "read_noise_sigma": 1e-7})).prepare(x[:10])
    a, b = noisy.predict(x), noisy.predict(x)
    np.testing.assert_array_equal(a, b)  # seeded by the config
    clean = AnalogNetwork(model, AnalogConfig(**IDEAL)).prepare(x[:10])
    assert not np.allclose(noisy.logits(x, np.random.default_rng(0)), clean.logits(x))
    before = AnalogNetwork(model, AnalogConfig(programming_sigma=1e-6, programming_stage="before")).prepare(x[:10])
    after = AnalogNetwork(model, AnalogConfig(programming_sigma=1e-6, programming_stage="after")).prepare(x[:10])
    ref = model.logits(x)
    for net in (before, after):
        err = np.abs(net.logits(x) - ref).max() / np.abs(ref).max()
        assert 0 < err < 0.2
    with pytest.raises(ValueError, match="programming_stage"):
        AnalogConfig(programming_stage="during")


def test_cache_keeps_the_custom_factorys_crossbars(tmp_path, rng):
    """A custom factory's crossbars (here other wires and another nonlinear device than
    the config's) come back from the cache as programmed: a nonlinear tile is solved on
    them at evaluation, so a crossbar rebuilt from the config would give other outputs."""
    from dataclasses import replace

    from xbarsolve.cnn import layers as L
    from xbarsolve.devices import Sinh

    def factory(G, name, cfg, rng_):
        return default_crossbar_factory(G, name, replace(cfg, r_row=5.0, r_col=3.0, device=Sinh(a=4.0)), rng_)

    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(8, 3)))),), (8,), "fc")
    x = np.abs(rng.normal(size=(6, 8)))
    cfg = AnalogConfig(device=Sinh(a=1.0), rows_max=5, n_range_samples=50)
    plain = AnalogNetwork(model, cfg, crossbar_factory=factory).prepare(x[:3])
    a = AnalogNetwork(model, cfg, crossbar_factory=factory, cache_dir=tmp_path).prepare(x[:3])
    b = AnalogNetwork(model, cfg, crossbar_factory=factory, cache_dir=tmp_path).prepare(x[:3])
    assert not a.from_cache and b.from_cache
    for t in b.layers["fc"].tiles:
        assert t.T is None and t.crossbar.r_row == 5.0 and t.crossbar.r_col == 3.0 and t.crossbar.device == Sinh(a=4.0)
    ref = plain.logits(x)
    np.testing.assert_array_equal(a.logits(x), ref)
    np.testing.assert_allclose(b.logits(x), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    # the config's own circuit really is another one (the bug this guards against)
    other = AnalogNetwork(model, cfg).prepare(x[:3])
    assert not np.allclose(other.logits(x), ref, rtol=1e-6)


def test_cache_write_uses_a_private_temporary_name(tmp_path, rng, monkeypatch):
    """The cache file is written under a temporary name of its own: a file at the old fixed
    ``<cache>.tmp`` name (another process's write in progress) is left alone, and a write
    that fails leaves neither a cache nor a temporary file behind."""
    from xbarsolve.cnn import layers as L

    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(6, 2)))),), (6,), "fc")
    x = np.abs(rng.normal(size=(3, 6)))
    net = AnalogNetwork(model, AnalogConfig(), cache_dir=tmp_path)
    path = net._cache_path(x)
    other = path.with_suffix(".tmp")
    other.write_bytes(b"another writer's file")
    net.prepare(x)
    assert path.is_file() and other.read_bytes() == b"another writer's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, other.name])
    path.unlink()

    def fail(self, f):
        raise OSError("disk full")

    monkeypatch.setattr(AnalogNetwork, "_write_cache", fail)
    with pytest.raises(OSError, match="disk full"):
        AnalogNetwork(model, AnalogConfig(), cache_dir=tmp_path).prepare(x)
    assert [p.name for p in tmp_path.iterdir()] == [other.name]


def test_adc_range_max_takes_the_mapping_range_without_a_calibration_pass(rng, monkeypatch):
    """adc_range="max": every tile's ADC range is its mapping's largest analog output,
    set without solving the tiles on the calibration vectors; "calibration" solves them."""
    from xbarsolve.cnn import layers as L
    from xbarsolve.cnn.network import AnalogMatrix

    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(12, 5)))),), (12,), "fc")
    x = np.abs(rng.normal(size=(20, 12)))
    calls = []
    solve_tiles = AnalogMatrix._solve_tiles
    monkeypatch.setattr(AnalogMatrix, "_solve_tiles", lambda self, parts: calls.append(1) or solve_tiles(self, parts))
    cfg = dict(r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0, calibration=False, rows_max=6, adc_bits=6)
    net = AnalogNetwork(model, AnalogConfig(**cfg, adc_range="max")).prepare(x[:10])
    assert calls == []
    for al in net.layers.values():
        for t in al.tiles:
            lo, hi = t.mapped.analog_range(net.config.converter.v_max)
            assert np.array_equal(t.analog_lo, lo) and np.array_equal(t.analog_hi, hi)
    AnalogNetwork(model, AnalogConfig(**cfg)).prepare(x[:10])
    assert calls
