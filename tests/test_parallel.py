"""All tiles of a layer in one call (the folded matrix of linear tiles, nonlinear tiles on a
thread pool) and CNN evaluation on a Dask cluster: each equals the tile-by-tile,
in-process run (round-off for the fold, bit for bit for the pool and the cluster)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from xbarsolve.cnn import AnalogConfig, AnalogNetwork
from xbarsolve.cnn import layers as L
from xbarsolve.cnn import network as N
from xbarsolve.devices import Sinh


def _model(rng, cin=2, cout=5, classes=4):
    """conv 3x3 (18 rows) - relu - flatten - dense: small enough for many tiles of 7 rows."""
    return L.Model((L.Node("conv", L.Conv2D(rng.normal(size=(3, 3, cin, cout)), rng.normal(size=cout), (1, 1), "same")),
                    L.Node("relu", L.Activation("relu"), ("conv",)), L.Node("flat", L.Flatten(), ("relu",)),
                    L.Node("fc", L.Dense(rng.normal(size=(4 * 4 * cout, classes)), rng.normal(size=classes)), ("flat",))),
                   (4, 4, cin), "tiny")


def _products(al, P, serial, noise_rng=None):
    al._serial_tiles = serial
    try:
        return al.products(P, noise_rng)
    finally:
        al._serial_tiles = False


CONFIGS = {
    "shift, reference column": dict(),
    "shift, digital sum(V)": dict(shift_reference="digital"),
    "differential": dict(scheme="differential"),
    "no calibration": dict(calibration=False),
    "6-bit DAC": dict(dac_bits=6),
    "bit-serial inputs": dict(input_bits=4),
    "weight slices": dict(weight_bits=4, n_slices=2),
    "sparse mapping": dict(conv_mapping="sparse"),
    "ideal wires": dict(r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, conversion=False),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_folded_matrix_equals_tile_by_tile(rng, name):
    """Linear tiles with an ideal ADC: one GEMM with the folded matrix gives the tile-by-tile
    pipeline's products to round-off, for signed inputs (two DAC passes) and every mapping."""
    model = _model(rng)
    x = rng.normal(size=(6, 4, 4, 2))  # signed: the first layer takes two passes
    net = AnalogNetwork(model, AnalogConfig(rows_max=7, cols_max=4, **CONFIGS[name])).prepare(np.abs(x[:3]))
    for al in net.layers.values():
        assert al.n_crossbars > 2
        P = al.vectors(x if al.node.name == "conv" else np.maximum(model.forward(x, keep=True)["flat"], 0))
        want = _products(al, P, serial=True)
        got = _products(al, P, serial=False)
        assert al._fold is not None  # the one-GEMM path ran
        assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()
    ref = net.logits(x)
    for al in net.layers.values():
        al._serial_tiles = True
    np.testing.assert_allclose(ref, net.logits(x), rtol=0, atol=1e-12 * np.abs(ref).max())


def test_folded_matrix_follows_new_tiles_and_calibration(rng):
    """The folded matrix is rebuilt when a tile's transfer matrix or calibration is replaced."""
    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(20, 6)))),), (20,), "fc")
    x = np.abs(rng.normal(size=(30, 20)))
    net = AnalogNetwork(model, AnalogConfig(rows_max=8)).prepare(x[:10])
    al = net.layers["fc"]
    before = al.products(x)
    t = al.tiles[1]
    t.T = t.T * 1.01
    t.slope = t.slope * 0.5
    after = al.products(x)
    assert not np.allclose(after, before)
    want = _products(al, x, serial=True)
    assert np.abs(after - want).max() <= 1e-12 * np.abs(want).max()
    al.calibrate_vectors(x[:10], np.random.default_rng(0))
    want = _products(al, x, serial=True)
    assert np.abs(al.products(x) - want).max() <= 1e-12 * np.abs(want).max()


@pytest.mark.parametrize("extra", [dict(adc_bits=5), dict(read_noise_sigma=1e-7)])
def test_quantizing_adc_and_read_noise_keep_the_tile_pipeline(rng, extra):
    """An ADC or read noise acts on every tile's own outputs: no fold, same draws as before."""
    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(20, 6)))),), (20,), "fc")
    x = np.abs(rng.normal(size=(30, 20)))
    al = AnalogNetwork(model, AnalogConfig(rows_max=8, **extra)).prepare(x[:10]).layers["fc"]
    noise = "read_noise_sigma" in extra
    got = al.products(x, np.random.default_rng(1) if noise else None)
    want = _products(al, x, serial=True, noise_rng=np.random.default_rng(1) if noise else None)
    np.testing.assert_array_equal(got, want)
    assert al._fold is None
    M, b = al.folded_matrix()  # what the ideal ADC would give: not the quantized or noisy result
    assert not np.array_equal(x @ M + b, got)


def _nonlinear_net(rng, tile_threads):
    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(20, 6)), rng.normal(size=6))),), (20,), "fc")
    cfg = AnalogConfig(device=Sinh(a=2.0), rows_max=6, n_range_samples=64)
    return AnalogNetwork(model, cfg, tile_threads=tile_threads)


def _record_solves(monkeypatch) -> list:
    """Record (thread name, ``threads``) of every tile solve from here on."""
    seen = []
    solve_currents = N._Tile.currents

    def recording(self, V, threads=None):
        seen.append((threading.current_thread().name, threads))
        return solve_currents(self, V, threads)

    monkeypatch.setattr(N._Tile, "currents", recording)
    return seen


def test_nonlinear_tiles_on_threads_equal_serial(rng, monkeypatch):
    """Nonlinear tiles solved side by side on two threads give the serial loop's products
    bit for bit, and the solves really ran on the pool's threads, every one of them once
    Numba's threading layer has started (where it allows it; otherwise all in this
    thread)."""
    x = rng.normal(size=(40, 20))  # signed: every tile is solved for two DAC passes
    net = _nonlinear_net(rng, tile_threads=2).prepare(np.abs(rng.normal(size=(5, 20))))
    al = net.layers["fc"]
    assert al.n_crossbars == 4 and all(t.T is None for t in al.tiles)
    want = _products(al, x, serial=True)
    seen = _record_solves(monkeypatch)
    got = al.products(x)
    np.testing.assert_array_equal(got, want)
    assert len(seen) == 8  # 4 tiles x 2 passes
    pooled = [name for name, _ in seen if name.startswith("xbarsolve-tile")]
    if N._threads_may_share_kernels():  # the layer started with the serial products above
        assert len(pooled) == 8 and all(th == 1 for _, th in seen)
    else:
        assert not pooled
    seen.clear()
    net.tile_threads = 1
    np.testing.assert_array_equal(al.products(x), want)
    assert {name for name, _ in seen} == {threading.current_thread().name}


def test_nonlinear_layer_with_few_solves_per_thread_solves_tiles_in_turn(rng, monkeypatch):
    """A layer with fewer than ``_JOBS_PER_THREAD`` solves per tile thread (here 4 tiles,
    positive inputs: one DAC pass, 4 solves on 2 threads) solves its tiles one after the
    other in the calling thread, each on the Newton solver's own kernel threads, with
    the serial loop's products bit for bit; at ``_JOBS_PER_THREAD = 1`` (the path before)
    the same layer goes to the pool."""
    x = np.abs(rng.normal(size=(40, 20)))
    net = _nonlinear_net(rng, tile_threads=2).prepare(np.abs(rng.normal(size=(5, 20))))
    al = net.layers["fc"]
    assert al.n_crossbars == 4 and N._JOBS_PER_THREAD == 4
    want = _products(al, x, serial=True)
    seen = _record_solves(monkeypatch)
    np.testing.assert_array_equal(al.products(x), want)
    assert seen == [(threading.current_thread().name, None)] * 4
    if N._threads_may_share_kernels():
        seen.clear()
        monkeypatch.setattr(N, "_JOBS_PER_THREAD", 1)
        np.testing.assert_array_equal(al.products(x), want)
        assert len(seen) == 4 and all(name.startswith("xbarsolve-tile") and th == 1 for name, th in seen)


@pytest.mark.parametrize("extra", [dict(adc_bits=5), dict(adc_bits=6, dac_bits=4, scheme="differential")])
def test_linear_tiles_with_an_adc_on_threads_equal_serial(rng, monkeypatch, extra):
    """Linear tiles with a quantizing ADC (no fold) run their pipelines on the tile threads:
    the serial loop's products bit for bit, signed inputs (two DAC passes) included; one
    tile thread runs them all in this thread."""
    model = L.Model((L.Node("fc", L.Dense(rng.normal(size=(20, 9)))),), (20,), "fc")
    x = rng.normal(size=(30, 20))
    net = AnalogNetwork(model, AnalogConfig(rows_max=6, cols_max=4, **extra), tile_threads=2).prepare(np.abs(x[:10]))
    al = net.layers["fc"]
    assert al.n_crossbars >= 8 and all(t.T is not None for t in al.tiles)
    want = _products(al, x, serial=True)
    seen = []
    tile_output = N.AnalogMatrix._tile_output

    def recording(self, t, parts, **kw):
        seen.append(threading.current_thread().name)
        return tile_output(self, t, parts, **kw)

    monkeypatch.setattr(N.AnalogMatrix, "_tile_output", recording)
    np.testing.assert_array_equal(al.products(x), want)
    assert len(seen) == al.n_crossbars and all(name.startswith("xbarsolve-tile") for name in seen)
    seen.clear()
    net.tile_threads = 1
    np.testing.assert_array_equal(al.products(x), want)
    assert set(seen) == {threading.current_thread().name}
    np.testing.assert_array_equal(al.products(x, np.random.default_rng(0)), want)  # no read noise: the same


def test_identical_tiles_share_one_transfer_matrix(rng, monkeypatch):
    """The sparse mapping's all-zero weight blocks program identical arrays: their transfer
    matrix is computed once and shared, and the network's outputs are those of computing
    every tile's own, bit for bit."""
    model = _model(rng)
    x = np.abs(rng.normal(size=(5, 4, 4, 2)))
    cfg = AnalogConfig(rows_max=8, cols_max=8, conv_mapping="sparse")
    shared = AnalogNetwork(model, cfg).prepare(x[:3])
    monkeypatch.setattr(N, "_SHARE_TRANSFER", False)
    own = AnalogNetwork(model, cfg).prepare(x[:3])
    tiles = shared.layers["conv"].tiles
    distinct = {id(t.T) for t in tiles}
    assert len(distinct) < len(tiles)  # some tiles share
    assert len({id(t.T) for t in own.layers["conv"].tiles}) == len(tiles)
    for a, b in zip(tiles, own.layers["conv"].tiles, strict=True):
        np.testing.assert_array_equal(a.T, b.T)
        assert a.crossbar._cache["T"] is a.T
        if a.crossbar.content_key() != b.crossbar.content_key():
            pytest.fail("the two networks programmed different arrays")
    np.testing.assert_array_equal(shared.logits(x), own.logits(x))


def test_nonlinear_network_does_not_depend_on_tile_threads(rng):
    """Calibration (ADC ranges, slopes, offsets) and logits: the same on 1 and 2 tile threads."""
    x = rng.normal(size=(12, 20))
    a = _nonlinear_net(np.random.default_rng(3), tile_threads=1).prepare(np.abs(x[:4]))
    b = _nonlinear_net(np.random.default_rng(3), tile_threads=2).prepare(np.abs(x[:4]))
    for ta, tb in zip(a.layers["fc"].tiles, b.layers["fc"].tiles, strict=True):
        for key in ("analog_lo", "analog_hi", "slope", "offset"):
            np.testing.assert_array_equal(getattr(ta, key), getattr(tb, key))
    np.testing.assert_array_equal(a.logits(x), b.logits(x))
    with pytest.raises(ValueError, match="tile_threads must be None or an integer >= 1; got 0"):
        AnalogNetwork(a.model, tile_threads=0)


def test_evaluate_on_a_dask_cluster_equals_in_process(rng):
    """Two worker processes, one thread each: the same report (bit for bit, apart from the
    wall time) and the same predictions as the in-process run on the same batches."""
    import dask.distributed as distributed  # a test dependency: never skipped

    model = _model(rng)
    x = np.abs(rng.normal(size=(14, 4, 4, 2)))
    labels = rng.integers(0, 4, size=14)
    net = AnalogNetwork(model, AnalogConfig(rows_max=7, cols_max=4)).prepare(x[:3])
    want = net.evaluate(x, labels, batch_size=4)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        got = net.evaluate(x, labels, batch_size=4, client=client)
        pred = net.predict(x, batch_size=4, client=client)
        from xbarsolve.cnn.distributed import logits

        y = logits(net, x, batch_size=4, client=client)
        noisy = AnalogNetwork(model, AnalogConfig(rows_max=7, cols_max=4, read_noise_sigma=1e-7)).prepare(x[:3])
        with pytest.raises(ValueError, match="read_noise_sigma=1e-07 > 0"):
            noisy.evaluate(x, client=client)
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1; got 0"):
            net.predict(x, batch_size=0, client=client)
    assert got == replace(want, seconds=got.seconds)
    np.testing.assert_array_equal(pred, net.predict(x, batch_size=4))
    np.testing.assert_array_equal(y, np.concatenate([net.logits(x[i:i + 4]) for i in range(0, 14, 4)]))
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        net.evaluate(x, client="tcp://nowhere:8786")
