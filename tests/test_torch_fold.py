"""xbarsolve.torch without a weight gradient: each group is one GEMM with the engine's
fold (AnalogMatrix.folded_matrix), equal to the tile-by-tile pipeline and to the NumPy
engine to round-off, with the loop's input gradient; converters that quantize, read noise
and nonlinear arrays keep the loop; re-programming and load_state_dict renew the fold."""

from __future__ import annotations

import numpy as np
import pytest
from test_torch import _rel, _resnet20_case
from test_torch_sliced import _mlp, _numpy_mlp

from xbarsolve.cnn import AnalogConfig

WIRES = dict(r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0)


def _engines(model):
    from xbarsolve.torch import AnalogModule

    return [e for m in model.modules() if isinstance(m, AnalogModule) for e in m.engines]


def _loop(model, on: bool) -> None:
    """Force (``on``) or release the tile-by-tile pipeline in every engine of ``model``."""
    for e in _engines(model):
        e._serial_tiles = on


def _forward_and_input_grad(torch, model, x, R):
    xg = x.clone().requires_grad_(True)
    y = model(xg)
    (y * R).sum().backward()
    return y.detach().numpy(), xg.grad.numpy()


def test_resnet20_fold_equals_the_loop_and_the_numpy_engine(torch, data_dir):
    """The ResNet-20 case of test_torch (1-ohm wires, 64x64 tiles, conversion and
    calibration): the folded forward equals the tile loop and AnalogNetwork (1e-9
    relative), and so does its input gradient the loop's."""
    X, Xt, net, model = _resnet20_case(torch, data_dir)
    model.eval()
    ref = net.logits(X[:3])
    R = torch.randn(3, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y_fold, g_fold = _forward_and_input_grad(torch, model, Xt[:3], R)
    assert all(e._fold_tensors is not None for e in _engines(model))  # every layer folded
    _loop(model, True)
    y_loop, g_loop = _forward_and_input_grad(torch, model, Xt[:3], R)
    assert _rel(y_fold, y_loop) < 1e-9 and _rel(y_fold, ref) < 1e-9
    assert _rel(g_fold, g_loop) < 1e-9


MLP_CONFIGS = {
    "shift": dict(WIRES, rows_max=5, cols_max=4),
    "differential": dict(WIRES, scheme="differential", rows_max=7, programming_sigma=1e-6),
    "dac-bits": dict(WIRES, dac_bits=5, rows_max=5),
    "input-bits": dict(WIRES, input_bits=4, rows_max=5, cols_max=3),
    "slices": dict(WIRES, weight_bits=6, n_slices=2, rows_max=5, cols_max=4),
    "no-calibration": dict(WIRES, calibration=False, rows_max=6, cols_max=5),
}


@pytest.mark.parametrize("name", list(MLP_CONFIGS))
def test_mlp_fold_equals_the_loop_and_the_numpy_engine(torch, name):
    """A small MLP (inputs of both signs: two DAC passes) on tiled 1-ohm-wire crossbars:
    folded forward = tile loop = AnalogNetwork (1e-9 relative); the input gradient through
    the fold (a quantizing DAC or bit-serial inputs: straight through) = the loop's."""
    from xbarsolve.cnn import AnalogNetwork
    from xbarsolve.torch import convert

    model = _mlp(torch)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 12))
    cfg = AnalogConfig(**MLP_CONFIGS[name])
    net = AnalogNetwork(_numpy_mlp(model), cfg).prepare(x[:6])
    analog = convert(model, cfg, calibration_data=torch.as_tensor(x[:6])).eval()
    ref = net.logits(x[4:])
    xt = torch.as_tensor(x[4:])
    R = torch.as_tensor(rng.normal(size=(6, 3)))
    y_fold, g_fold = _forward_and_input_grad(torch, analog, xt, R)
    assert all(e._fold_tensors is not None for e in _engines(analog))
    _loop(analog, True)
    y_loop, g_loop = _forward_and_input_grad(torch, analog, xt, R)
    assert _rel(y_fold, y_loop) < 1e-9 and _rel(y_fold, ref) < 1e-9
    assert _rel(g_fold, g_loop) < 1e-9
    assert np.abs(g_fold).max() > 0


def test_fold_without_weight_gradient_only(torch):
    """Training mode with trainable weights takes the loop (exact weight gradient); with
    frozen weights or under no_grad it folds, and the results agree."""
    from xbarsolve.torch import convert

    model = _mlp(torch)
    x = torch.randn(7, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    analog = convert(model, AnalogConfig(**WIRES, rows_max=5), calibration_data=x).train()
    y_train = analog(x)  # re-programs, tile loop
    assert y_train.requires_grad and all(e._fold_tensors is None for e in _engines(analog))
    y_train.sum().backward()
    assert analog[0].weight.grad is not None and analog[0].weight.grad.abs().max() > 0
    with torch.no_grad():
        y_nograd = analog(x)  # training mode, no gradients: folded
    assert all(e._fold_tensors is not None for e in _engines(analog))
    for p in analog.parameters():
        p.requires_grad_(False)
    xg = x.clone().requires_grad_(True)
    y_frozen = analog(xg)  # frozen weights: folded, differentiable in the input
    y_frozen.sum().backward()
    assert xg.grad is not None
    ref = y_train.detach().numpy()
    assert _rel(y_nograd.numpy(), ref) < 1e-12 and _rel(y_frozen.detach().numpy(), ref) < 1e-12


@pytest.mark.parametrize("extra", [dict(adc_bits=6), dict(read_noise_sigma=1e-3), dict(device="sinh")],
                         ids=["adc-bits", "read-noise", "sinh"])
def test_quantizing_adc_read_noise_and_nonlinear_arrays_keep_the_loop(torch, extra):
    """An ADC that quantizes, read noise or a nonlinear device breaks the fold's
    linearity: no fold is made and the forward is the tile loop's."""
    from xbarsolve.devices import Sinh
    from xbarsolve.torch import convert

    if extra.get("device") == "sinh":
        extra = dict(device=Sinh(a=4.0))
    model = _mlp(torch)
    x = torch.randn(6, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    cfg = AnalogConfig(**WIRES, rows_max=6, cols_max=5, **extra)
    analog = convert(model, cfg, calibration_data=x).eval()
    with torch.no_grad():
        y = analog(x)
        engines = _engines(analog)
        assert all(e.folded_products(x) is None for e in engines)
        assert all(e._fold_tensors is None for e in engines)
        if "read_noise_sigma" not in extra:  # deterministic: the same as the forced loop
            _loop(analog, True)
            assert torch.equal(analog(x), y)


def test_reprogramming_and_load_state_dict_renew_the_fold(torch):
    """The fold follows the programming: after a training forward re-programs changed
    weights, and after load_state_dict of another conversion (another programming
    error), the folded forward equals the tile loop of the new state."""
    from xbarsolve.torch import convert

    model = _mlp(torch)
    x = torch.randn(8, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    cfg = dict(WIRES, rows_max=5, cols_max=4, programming_sigma=1e-6)
    a = convert(model, AnalogConfig(seed=1, **cfg), calibration_data=x).eval()
    b = convert(model, AnalogConfig(seed=2, **cfg), calibration_data=x).eval()

    def both(m):
        with torch.no_grad():
            _loop(m, False)
            fold = m(x).numpy()
            _loop(m, True)
            loop = m(x).numpy()
            _loop(m, False)
        assert _rel(fold, loop) < 1e-12
        return fold

    ya, yb = both(a), both(b)
    assert _rel(yb, ya) > 1e-6
    b.load_state_dict(a.state_dict())
    assert _rel(both(b), ya) < 1e-12
    with torch.no_grad():
        a[0].weight.mul_(0.9)
    a.train()(x)  # re-programs from the changed weights
    y_new = both(a.eval())
    assert _rel(y_new, ya) > 1e-3


def test_fold_on_the_modules_device(torch):
    """M and b go to the device of the inputs (CPU; CUDA too when present) and the
    result is the CPU one."""
    from test_torch import _devices

    from xbarsolve.torch import convert

    model = _mlp(torch)
    x = torch.randn(8, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    analog = convert(model, AnalogConfig(**WIRES, rows_max=5), calibration_data=x).eval()
    with torch.no_grad():
        ref = analog(x).numpy()
    for device in _devices(torch):
        with torch.no_grad():
            got = analog.to(device)(x.to(device))
        assert got.device.type == device
        assert all(e._fold_tensors[2].device.type == device for e in _engines(analog))
        assert _rel(got.cpu().numpy(), ref) < 1e-12
