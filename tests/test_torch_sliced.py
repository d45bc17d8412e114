"""xbarsolve.torch with bit-sliced weights (n_slices, bits_per_cell) and bit-serial inputs
(input_bits): converted models equal AnalogNetwork on the same config, the slicing
quantizers pass gradients straight through, sliced layers re-program and round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from xbarsolve.cnn import AnalogConfig

WIRES = dict(r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0)
IDEAL = dict(r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, conversion=False, calibration=False)

CONFIGS = {
    "slices-shift": dict(WIRES, weight_bits=6, n_slices=2, rows_max=5, cols_max=4),
    "slices-differential": dict(WIRES, scheme="differential", weight_bits=6, n_slices=3, rows_max=7, adc_bits=8),
    "slices-digital-reference": dict(WIRES, weight_bits=4, bits_per_cell=2, n_slices=2, shift_reference="digital",
                                     calibration=False),
    "input-bits": dict(WIRES, input_bits=4, rows_max=5, adc_bits=6),
    "both": dict(WIRES, weight_bits=4, n_slices=2, input_bits=3, rows_max=5, cols_max=3),
}


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _mlp(torch):
    torch.manual_seed(5)
    return torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double().eval()


def _numpy_mlp(model):
    from xbarsolve.cnn import layers as L

    w = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in model if hasattr(m, "weight")]
    return L.Model((L.Node("fc1", L.Dense(*w[0])), L.Node("relu", L.Activation("relu"), ("fc1",)),
                    L.Node("fc2", L.Dense(*w[1]), ("relu",))), (12,), "mlp")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sliced_mlp_equals_the_numpy_engine(torch, name):
    """Converted MLP (inputs of both signs: two DAC passes) = AnalogNetwork on the same
    config and calibration data (logits to 1e-9 relative), on CPU and on CUDA when present."""
    from xbarsolve.cnn import AnalogNetwork
    from xbarsolve.torch import convert

    model = _mlp(torch)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 12))
    cfg = AnalogConfig(**CONFIGS[name])
    net = AnalogNetwork(_numpy_mlp(model), cfg).prepare(x[:6])
    analog = convert(model, cfg, calibration_data=torch.as_tensor(x[:6]))
    assert analog[0].n_crossbars == net.layers["fc1"].n_crossbars
    ref = net.logits(x[4:])
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        with torch.no_grad():
            got = analog.to(device)(torch.as_tensor(x[4:], device=device))
        assert got.device.type == device
        assert _rel(got.cpu().numpy(), ref) < 1e-9


def test_sliced_conv2d_equals_the_numpy_engine(torch):
    """A strided Conv2d with sliced weights and bit-serial inputs = the NumPy Conv2D layer."""
    from xbarsolve.cnn import AnalogNetwork
    from xbarsolve.cnn import layers as L
    from xbarsolve.torch import convert

    torch.manual_seed(6)
    conv = torch.nn.Conv2d(2, 4, 3, stride=2, padding=1).double().eval()
    kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
    model = L.Model((L.Node("conv", L.Conv2D(kernel, conv.bias.detach().numpy(), (2, 2), ((1, 1), (1, 1)))),), (7, 7, 2))
    x = np.abs(np.random.default_rng(1).normal(size=(3, 7, 7, 2)))  # one DAC pass
    cfg = AnalogConfig(**CONFIGS["both"])
    net = AnalogNetwork(model, cfg).prepare(x[:2])
    xt = torch.as_tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    analog = convert(conv, cfg, calibration_data=xt[:2])
    with torch.no_grad():
        got = analog(xt).numpy().transpose(0, 2, 3, 1)
    assert _rel(got, net.logits(x)) < 1e-9


@pytest.mark.parametrize("scheme", ["shift", "differential"])
def test_slicing_quantizers_pass_gradients_straight_through(torch, scheme):
    """Ideal crossbars, 2 x 2-bit weight slices, 3-bit serial inputs: the forward pass is
    the product of the quantized inputs and weights, d loss / d input is dY @ W_q (the
    input bits' straight-through estimator) and d loss / d weight is dY^T x_q (the weight
    slices' straight-through estimator): the gradients of y = x_q @ W_q^T + b."""
    from xbarsolve.cnn.slicing import bit_planes
    from xbarsolve.torch import convert

    torch.manual_seed(7)
    layer = torch.nn.Linear(6, 4).double()
    x = 0.05 + torch.rand(5, 6, dtype=torch.float64)
    cfg = AnalogConfig(scheme=scheme, weight_bits=4, n_slices=2, input_bits=3, rows_max=4, **IDEAL)
    analog = convert(layer, cfg, calibration_data=x).train()
    eng = analog.engines[0]
    Wq = np.zeros(eng.matrix.shape)  # (in, out)
    for t in eng.tiles:
        Wq[t.rows, t.cols] += t.mapped.weights
    assert np.abs(Wq - layer.weight.detach().numpy().T).max() > 1e-3  # the weights are quantized
    v_max = cfg.converter.v_max
    xq = sum(w * V for w, V in bit_planes([(1.0, x.numpy())], eng.x_scale, 3, v_max)) * (eng.x_scale / v_max)
    assert np.abs(xq - x.numpy()).max() > 1e-3  # and the inputs
    R = torch.randn(5, 4, dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    y = analog(xg)
    b = layer.bias.detach().numpy()
    assert _rel(y.detach().numpy(), xq @ Wq + b) < 1e-12
    (y * R).sum().backward()
    assert _rel(xg.grad.numpy(), R.numpy() @ Wq.T) < 1e-12
    assert _rel(analog.weight.grad.numpy(), R.numpy().T @ xq) < 1e-12


def test_sliced_layer_reprograms_and_round_trips(torch):
    """A training forward re-programs every weight slice from the current weights (at
    the range fixed on conversion): it equals a fresh conversion of the changed weights
    when the range stays; load_state_dict restores the slices of the trained weights."""
    from xbarsolve.torch import convert

    torch.manual_seed(8)
    layer = torch.nn.Linear(6, 4).double()
    x = torch.rand(5, 6, dtype=torch.float64)
    cfg = AnalogConfig(weight_bits=6, n_slices=3, rows_max=4, **dict(WIRES, conversion=False, calibration=False))
    analog = convert(layer, cfg).train()
    W = layer.weight.detach().clone()
    inner = (W > W.min()) & (W < W.max())
    W2 = torch.where(inner, W * 0.5, W)  # same min and max: the same weight range
    with torch.no_grad():
        analog.weight.copy_(W2)
    y_train = analog(x)  # re-programs
    changed = torch.nn.Linear(6, 4).double()
    with torch.no_grad():
        changed.weight.copy_(W2)
        changed.bias.copy_(layer.bias)
    fresh = convert(changed, cfg)
    with torch.no_grad():
        ref = fresh(x).numpy()
        assert _rel(y_train.detach().numpy(), ref) < 1e-12
        before = convert(layer, cfg)
        assert _rel(before(x).numpy(), ref) > 1e-3  # the re-programming changed the output
        before.load_state_dict(analog.state_dict())
        assert _rel(before.eval()(x).numpy(), ref) < 1e-12


def test_docs_sliced_example_runs(torch):
    """docs/torch.md's first example, whose second half converts the model with sliced
    weights and bit-serial inputs, runs as written and keeps the digital model's classes."""
    import re

    from conftest import ROOT

    block = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "torch.md").read_text(), flags=re.S)[0]
    ns: dict = {}
    exec(compile(block, "docs/torch.md", "exec"), ns)
    assert ns["sliced"][0].config.mapping.n_slices == 4 and ns["sliced"][0].config.converter.input_bits == 6
    assert ns["sliced_agreement"] > 0.8


def test_bit_serial_inputs_need_calibration_data(torch):
    from xbarsolve.torch import convert, needs_calibration_data

    cfg = AnalogConfig(input_bits=4, calibration=False)
    assert any("input_bits" in why for why in needs_calibration_data(cfg))
    with pytest.raises(ValueError, match="input_bits"):
        convert(torch.nn.Linear(3, 2), cfg)
