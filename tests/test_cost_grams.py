"""Gram matrices of convolution windows (xbarsolve.cost.grams) and the exact read energy
that network_cost computes from them, against the direct ``V^T V`` of the windows."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve.cost.grams as grams_module
from xbarsolve.cnn.layers import im2col
from xbarsolve.cost.grams import Windows, row_block_grams, window_grams

# (N, H, W, C, kernel, pads): same and valid padding, asymmetric pads, 1 x 1 and non-square
# kernels, fewer and more channels than the unfolding threshold, pads larger than the kernel.
CASES = [
    (3, 5, 6, 2, (3, 3), ((1, 1), (1, 1))),
    (2, 7, 4, 3, (2, 3), ((0, 1), (2, 0))),
    (2, 4, 4, 1, (2, 2), ((0, 0), (0, 0))),
    (1, 3, 3, 2, (3, 3), ((2, 2), (1, 1))),
    (2, 5, 5, 3, (1, 1), ((0, 0), (0, 0))),
    (2, 3, 4, 2, (3, 3), ((0, 0), (0, 0))),
    (2, 6, 5, 9, (3, 2), ((1, 0), (0, 3))),
    (2, 6, 6, 10, (3, 3), ((1, 1), (1, 1))),
]


def block_sets(m):
    """Whole vectors, two blocks, blocks of 4 (cutting kernel positions), one inner block."""
    return ([(0, m)], [(0, max(1, m // 2)), (max(1, m // 2), m)], [(r, min(r + 4, m)) for r in range(0, m, 4)],
            [(1, m - 1)] if m > 2 else [(0, m)])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("unfold", [False, True])
@pytest.mark.parametrize("chunk", [None, 7])
def test_window_grams_equal_gram_of_the_windows(rng, monkeypatch, case, unfold, chunk):
    """Every block of every row-block set equals ``V^T V`` of the im2col windows to round-off
    (sums of products of non-negative entries); ``chunk=7`` splits the in-place products
    into many chunks of rows."""
    if chunk is not None:
        monkeypatch.setattr(grams_module, "_CHUNK_ENTRIES", chunk)
    N, H, W, C, k, pads = case
    x = rng.uniform(0.0, 1.0, (N, H, W, C)) * (rng.uniform(size=(N, H, W, C)) < 0.7)  # ReLU-like zeros
    P = im2col(x, k, (1, 1), pads).reshape(-1, k[0] * k[1] * C)
    w = Windows(x.shape, k, pads, unfold=unfold)
    flat = w.arrange(x)
    for blocks in block_sets(P.shape[1]):
        got, ref = w.grams(flat, blocks), row_block_grams(P, blocks)
        assert set(got) == set(ref)
        for b in blocks:
            np.testing.assert_allclose(got[b], ref[b], rtol=0, atol=1e-12 * np.abs(ref[b]).max(), err_msg=str(b))
            np.testing.assert_array_equal(got[b], got[b].T)


def test_window_grams_after_an_elementwise_map(rng):
    """A map that sends 0 to 0 (the DAC's) applied to the arranged maps gives the Gram of the
    mapped windows: padding and guard entries stay 0."""
    x = rng.uniform(-1.0, 1.0, (2, 5, 5, 4))
    pads = ((1, 1), (1, 1))
    w = Windows(x.shape, (3, 3), pads)
    f = lambda a: np.round(np.maximum(a, 0.0) * 7) / 7 * 0.3  # noqa: E731  (relu, 3-bit DAC, 0.3 V)
    P = im2col(f(x), (3, 3), (1, 1), pads).reshape(-1, 36)
    got = w.grams(f(w.arrange(x)), [(0, 36)])[0, 36]
    np.testing.assert_allclose(got, P.T @ P, rtol=0, atol=1e-12 * np.abs(P.T @ P).max())
    assert np.array_equal(window_grams(np.abs(x), (3, 3), pads, [(0, 36)])[0, 36],
                          w.grams(w.arrange(np.abs(x)), [(0, 36)])[0, 36])


def test_windows_few_channels_unfold_by_default():
    assert Windows((1, 4, 4, 3), (3, 3), ((1, 1), (1, 1))).unfold
    assert not Windows((1, 4, 4, 16), (3, 3), ((1, 1), (1, 1))).unfold


def test_windows_errors():
    with pytest.raises(ValueError, match="does not fit"):
        Windows((1, 2, 2, 1), (3, 3), ((0, 0), (0, 0)))
    with pytest.raises(ValueError, match="does not fit"):
        Windows((1, 4, 4, 1), (3, 3), ((-1, 0), (0, 0)))
    w = Windows((1, 4, 4, 2), (3, 3), ((1, 1), (1, 1)))
    with pytest.raises(ValueError, match="shape"):
        w.arrange(np.zeros((1, 4, 5, 2)))
    with pytest.raises(ValueError, match="row blocks"):
        w.grams(w.arrange(np.zeros((1, 4, 4, 2))), [(0, 19)])


# ------------------------------------------------------------------ network_cost
def conv_network(rng, cfg_kw, x_shape=(6, 6, 3), cin_mid=10):
    """3x3 'same' convolution (x_shape channels -> cin_mid), ReLU, 3x3 'valid' convolution,
    ReLU, a 2x2 stride-2 convolution (not stride 1: the vectors' own Gram path), flatten and
    a dense layer (fewer vectors than rows: solved per vector)."""
    from xbarsolve.cnn import AnalogConfig, AnalogNetwork, Model, Node
    from xbarsolve.cnn.layers import Activation, Conv2D, Dense, Flatten

    c = x_shape[2]
    model = Model((Node("c1", Conv2D(rng.normal(size=(3, 3, c, cin_mid)), padding="same")),
                   Node("r1", Activation("relu"), ("c1",)),
                   Node("c2", Conv2D(rng.normal(size=(3, 3, cin_mid, 4)), rng.normal(size=4)), ("r1",)),
                   Node("r2", Activation("relu"), ("c2",)),
                   Node("c3", Conv2D(rng.normal(size=(2, 2, 4, 3)), strides=(2, 2)), ("r2",)),
                   Node("flat", Flatten(), ("c3",)),
                   Node("fc", Dense(rng.normal(size=(12, 2))), ("flat",))), x_shape, name="convs")
    return AnalogNetwork(model, AnalogConfig(r_row=1.0, r_col=1.0, **cfg_kw)).prepare(rng.uniform(-1.0, 1.0, (4, *x_shape)))


@pytest.mark.parametrize("cfg_kw", [
    dict(rows_max=16, cols_max=8, dac_bits=4, adc_bits=6),  # tiles cut kernel positions; quantized DAC
    dict(),  # one crossbar per layer, ideal converters
    dict(rows_max=32, input_bits=3),  # bit-serial inputs: 3 passes per sign
])
def test_network_cost_exact_read_energy_equals_the_gemm_path(rng, cfg_kw):
    """The window Gram matrices and stacked forms give the read energy of the Gram-per-vector
    path (``grams="gemm"``: DAC voltages of the vectors, ``V^T V``) to 1e-12 relative, term by
    term and layer by layer, with the same number of input passes.  Five images: c3 reads 20
    vectors on 16 rows (its vectors' Gram matrices), fc 5 on 12 (solved per vector)."""
    net = conv_network(rng, cfg_kw)
    x = rng.uniform(-1.0, 1.0, (5, 6, 6, 3))  # signed inputs: two passes in the first layer
    assert_paths_agree(net, x, n_passes=2 if "input_bits" not in cfg_kw else 6)


def test_network_cost_window_grams_beside_solved_tiles(rng):
    """One image: c2's tiles (32, 32, 26 rows) read 16 vectors and are solved, except the
    first, whose forms are cached and used beside them."""
    from xbarsolve.cost import power_matrices
    from xbarsolve.cost.power import uses_forms

    net = conv_network(rng, dict(rows_max=32))
    tiles = net.layers["c2"].tiles
    power_matrices(tiles[0].crossbar)
    assert [uses_forms(t.crossbar, 16) for t in tiles] == [True, False, False]
    assert_paths_agree(net, rng.uniform(-1.0, 1.0, (1, 6, 6, 3)), n_passes=2)


def assert_paths_agree(net, x, n_passes):
    from xbarsolve.cost import ISAAC, network_cost
    from xbarsolve.cost.network import _layer_cost, _stride1_windows

    cost = network_cost(net, x)
    acts = net.model.forward(x, keep=True, linear=lambda nd, v: net.layers[nd.name](v))
    sources = {"c1": "input", "c2": "r1", "c3": "r2", "fc": "flat"}
    windowed = 0
    for lc in cost.layers:
        al = net.layers[lc.name]
        v = acts[sources[lc.name]]
        P = al.vectors(v)
        windowed += _stride1_windows(al, v) is not None
        old = _layer_cost(lc.name, al, P, x.shape[0], ISAAC, grams="gemm")
        assert (lc.cycles, lc.read_vectors) == (old.cycles, old.read_vectors)
        assert lc.read_pJ > 0
        # Each term to 1e-12 of the layer's read energy: the row-wire and driver terms
        # (1e-4 of it here) are sums of squared differences of nearly equal node voltages,
        # whose round-off is ~1e-16 V / dV ~ 1e-12 of the term itself whenever the two paths
        # solve different vectors (the synthetic vectors of the Gram matrix, the passes in
        # one batch).
        np.testing.assert_allclose(lc.read_split_pJ, old.read_split_pJ, rtol=0, atol=1e-12 * old.read_pJ,
                                   err_msg=lc.name)
        assert lc.read_pJ == pytest.approx(old.read_pJ, rel=1e-12)
    assert windowed == 2  # c1 and c2 by window Gram matrices; c3 (stride 2) and fc by the vectors
    assert cost.layers[0].cycles == 36 * n_passes
    with pytest.raises(ValueError, match="grams"):
        _layer_cost("c1", net.layers["c1"], net.layers["c1"].vectors(x), x.shape[0], ISAAC, grams="syrk")


def test_stride1_windows_only_for_dense_mapped_stride1_convolutions(rng):
    from xbarsolve.cost.network import _stride1_windows

    net = conv_network(rng, dict(rows_max=16))
    v = rng.uniform(0.0, 1.0, (2, 6, 6, 3))
    assert _stride1_windows(net.layers["c1"], v) == ((3, 3), ((1, 1), (1, 1)))
    assert _stride1_windows(net.layers["c3"], np.zeros((2, 4, 4, 4))) is None
    assert _stride1_windows(net.layers["fc"], np.zeros((2, 12))) is None
