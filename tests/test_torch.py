"""xbarsolve.torch: converted PyTorch models equal the NumPy engine (ResNet-20) and, on
ideal crossbars, the digital models; autograd through the circuit equals finite
differences; state survives state_dict / torch.save / deepcopy; clear errors."""

from __future__ import annotations

import copy
import io
import subprocess
import sys

import numpy as np
import pytest

from xbarsolve.cnn import AnalogConfig

IDEAL = dict(r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0, conversion=False, calibration=False)
WIRES = dict(r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0, conversion=False, calibration=False)


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _devices(torch):
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_import_xbarsolve_does_not_import_torch():
    code = "import sys, xbarsolve; xbarsolve.cnn; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _resnet20_case(torch, data_dir):
    """The PyTorch CIFAR ResNet-20 of the reference data on 1-ohm wires, 64x64 tiles,
    conversion and calibration: images ``X`` (NHWC) and ``Xt`` (NCHW tensor), the NumPy
    ``AnalogNetwork`` and the converted float64 model, both calibrated on ``X[-4:]``."""
    from xbarsolve.cnn import AnalogNetwork, load_torch_resnet
    from xbarsolve.cnn.datasets import cifar10_torch_input, load_cifar10
    from xbarsolve.torch import convert
    from xbarsolve.torch.models import load_cifar_resnet

    ckpt = data_dir / "models" / "torch_resnet_cifar10" / "resnet20-12fca82f.th"
    images, _ = load_cifar10(data_dir, n=10)
    X = cifar10_torch_input(images)  # NHWC
    Xt = torch.as_tensor(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
    cfg = AnalogConfig(rows_max=64, cols_max=64)
    net = AnalogNetwork(load_torch_resnet(ckpt), cfg).prepare(X[-4:])
    model = convert(load_cifar_resnet(ckpt).double(), cfg, calibration_data=Xt[-4:])
    return X, Xt, net, model


def test_resnet20_equals_the_numpy_engine(torch, data_dir):
    """The PyTorch ResNet-20 converted with 1-ohm wires, 64x64 tiles, conversion and
    calibration gives the logits of AnalogNetwork(load_torch_resnet(...)) (1e-9 relative)."""
    from xbarsolve.torch import AnalogModule

    X, Xt, net, model = _resnet20_case(torch, data_dir)
    analog = [m for m in model.modules() if isinstance(m, AnalogModule)]
    assert len(analog) == 20 and sum(m.n_crossbars for m in analog) == net.n_crossbars
    assert sum(m.n_clipped for m in analog) == net.n_clipped
    ref = net.logits(X[:6])
    with torch.no_grad():
        got = model(Xt[:6]).numpy()
        got32 = model.float()(Xt[:6].float())
    assert _rel(got, ref) < 1e-9
    assert got32.dtype == torch.float32 and _rel(got32.numpy(), ref) < 1e-5


def _models(torch):
    nn = torch.nn
    torch.manual_seed(0)
    depthwise = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, groups=3), nn.ReLU(), nn.Conv2d(3, 8, 1), nn.ReLU(),
                              nn.Conv2d(8, 8, 3, stride=2, groups=8, bias=False), nn.Flatten(), nn.Linear(8 * 9, 5))
    dilated = nn.Sequential(nn.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2),
                            nn.Conv2d(6, 4, (2, 3), stride=(2, 1), padding=(1, 0), padding_mode="reflect"))
    conv1d = nn.Sequential(nn.Conv1d(2, 6, 5, stride=2, padding=2), nn.Tanh(),
                           nn.Conv1d(6, 4, 3, padding="same", dilation=2, groups=2), nn.Flatten(), nn.Linear(4 * 8, 3))
    mlp = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 7))
    return {"depthwise": (depthwise, (4, 3, 8, 8)), "dilated": (dilated, (3, 4, 9, 7)),
            "conv1d": (conv1d, (4, 2, 16)), "mlp": (mlp, (5, 20))}


@pytest.mark.parametrize("name", ["depthwise", "dilated", "conv1d", "mlp"])
@pytest.mark.parametrize("scheme", ["shift", "differential"])
def test_ideal_crossbars_equal_the_digital_model(torch, name, scheme):
    """Every resistance 0, no conversion or calibration, ideal converters: the converted
    model is the digital one (float64, 1e-9 relative), on CPU and on CUDA when present."""
    from xbarsolve.torch import AnalogModule, convert

    model, shape = _models(torch)[name]
    model = model.double().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    analog = convert(model, AnalogConfig(scheme=scheme, rows_max=7, cols_max=5, **IDEAL))
    assert all(not isinstance(m, AnalogModule) for m in model.modules())  # the original is untouched
    n_layers = sum(isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)) for m in model.modules())
    assert sum(isinstance(m, AnalogModule) for m in analog.modules()) == n_layers
    for device in _devices(torch):
        with torch.no_grad():
            ref = model.to(device)(x.to(device)).cpu().numpy()
            got = analog.to(device)(x.to(device))
        assert got.device.type == device
        assert _rel(got.cpu().numpy(), ref) < 1e-9


def _grad_case(torch, device):
    nn = torch.nn
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.Flatten(), nn.Linear(3 * 4, 2)).double()
    x = 0.1 + 0.9 * torch.rand(3, 2, 4, dtype=torch.float64)
    kw = dict(WIRES, rows_max=4, cols_max=3)
    if device is not None:
        kw.update(device=device)
    return model, x, AnalogConfig(**kw)


@pytest.mark.parametrize("kind", ["linear", "sinh"])
def test_gradients_equal_finite_differences(torch, kind):
    """d loss / d input and d loss / d weights through 1-ohm-wire crossbars (programming
    re-done from the weights in every training forward) agree with central differences."""
    from xbarsolve.devices import Sinh
    from xbarsolve.torch import convert

    model, x, cfg = _grad_case(torch, Sinh(a=4.0) if kind == "sinh" else None)
    cal = x if kind == "sinh" else None  # a nonlinear device needs the input full scale
    analog = convert(model, cfg, calibration_data=cal).train()
    with torch.no_grad():  # keep every weight inside the range fixed at conversion (no clipping)
        for p in analog.parameters():
            p.mul_(0.9)
    R = torch.randn(3, 2, dtype=torch.float64)

    def loss(xv):
        return (analog(xv) * R).sum()

    xg = x.clone().requires_grad_(True)
    loss(xg).backward()
    params = [analog[0].weight, analog[2].weight]
    grads = [xg.grad] + [p.grad.clone() for p in params]
    for target, g in zip([None] + params, grads):
        ref = x if target is None else target
        fd = torch.zeros_like(ref)
        h = 1e-6 * float(ref.detach().abs().max())
        for i in range(ref.numel()):
            vals = []
            for s in (1.0, -1.0):
                with torch.no_grad():
                    if target is None:
                        xv = x.clone()
                        xv.view(-1)[i] += s * h
                        vals.append(float(loss(xv)))
                    else:
                        old = float(target.detach().view(-1)[i])
                        target.view(-1)[i] = old + s * h
                        with torch.enable_grad():
                            vals.append(float(loss(x).detach()))
                        target.view(-1)[i] = old
            fd.view(-1)[i] = (vals[0] - vals[1]) / (2 * h)
        assert _rel(g.numpy(), fd.numpy()) < 1e-6, target


def test_state_dict_torch_save_and_deepcopy_round_trip(torch):
    """Programmed conductances, conversion, calibration and converter ranges are buffers:
    another conversion (different programming error) loaded from a saved state dict
    computes the same outputs; so does a deep copy."""
    from xbarsolve.torch import convert

    nn = torch.nn
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 4)).double()
    x = torch.randn(16, 12, dtype=torch.float64)
    cfg = dict(rows_max=5, cols_max=4, adc_bits=6, programming_sigma=1e-6)
    a = convert(model, AnalogConfig(seed=1, **cfg), calibration_data=x)
    b = convert(model, AnalogConfig(seed=2, **cfg), calibration_data=x)
    keys = a.state_dict().keys()
    assert {"0.g0_t0_G", "0.g0_t0_T", "0.g0_t0_slope", "0.g0_t0_lo", "0.g0_x_scale", "2.weight"} <= set(keys)
    with torch.no_grad():
        ya, yb = a(x), b(x)
        assert not torch.equal(ya, yb)
        buf = io.BytesIO()
        torch.save(a.state_dict(), buf)
        buf.seek(0)
        b.load_state_dict(torch.load(buf, weights_only=True))
        assert torch.equal(b(x), ya)
        assert torch.equal(copy.deepcopy(a)(x), ya)


def test_training_reprograms_and_to_digital_returns_the_trained_weights(torch):
    from xbarsolve.torch import AnalogLinear, convert, to_digital

    nn = torch.nn
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    x = torch.randn(32, 10, dtype=torch.float64)
    target = torch.randint(0, 3, (32,))
    analog = convert(model, AnalogConfig(**WIRES)).train()
    opt = torch.optim.SGD(analog.parameters(), lr=0.5)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(analog(x), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert isinstance(analog[0], AnalogLinear) and analog[0].weight.shape == (6, 10)
    back = to_digital(analog)
    assert type(back[0]) is nn.Linear and type(back[2]) is nn.Linear
    assert torch.equal(back[0].weight, analog[0].weight) and not torch.equal(back[0].weight, model[0].weight)
    # the last training forward left its programming in the buffers: evaluation uses it
    y_train = analog(x).detach()
    with torch.no_grad():
        y_eval = analog.eval()(x)
        assert _rel(y_eval.numpy(), y_train.numpy()) < 1e-12  # evaluation folds the tiles: round-off
        assert _rel(y_eval.numpy(), back(x).numpy()) > 1e-3  # 1-ohm wires, no conversion
    single = convert(nn.Conv2d(2, 3, 3).double(), AnalogConfig(**IDEAL))
    assert type(to_digital(single)) is nn.Conv2d


@pytest.mark.parametrize("make, kind", [
    (lambda nn: nn.Sequential(nn.Linear(4, 4), nn.Conv3d(1, 2, 3)), "Conv3d"),
    (lambda nn: nn.Sequential(nn.ConvTranspose2d(2, 2, 3)), "ConvTranspose2d"),
    (lambda nn: nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4)), "LSTM"),
])
def test_unsupported_modules_are_named(torch, make, kind):
    from xbarsolve.torch import AnalogLinear, convert

    model = make(torch.nn)
    name = next(n for n, m in model.named_modules() if type(m).__name__ == kind)
    with pytest.raises(TypeError, match=rf"module '{name}' is a torch\.nn\..*{kind}.*skip=\('{name}',\)"):
        convert(model, AnalogConfig(**IDEAL))
    kept = convert(model, AnalogConfig(**IDEAL), skip=(name,))
    assert type(kept.get_submodule(name)).__name__ == kind
    assert any(isinstance(m, AnalogLinear) for m in kept.modules()) == (kind != "ConvTranspose2d")


def test_config_needing_calibration_data_and_bad_skip(torch):
    from xbarsolve.torch import convert

    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"calibration_data is None.*calibration=True"):
        convert(model, AnalogConfig())
    with pytest.raises(ValueError, match=r"calibration_data is None.*adc_bits"):
        convert(model, AnalogConfig(calibration=False, adc_bits=6))
    with pytest.raises(ValueError, match=r"skip names modules that the model does not have: \['nope'\]"):
        convert(model, AnalogConfig(**IDEAL), skip=("nope",))
    with pytest.raises(TypeError, match="config must be an xbarsolve.cnn.AnalogConfig"):
        convert(model, {"r_row": 0})


def test_docs_example_runs(torch):
    """docs/torch.md's examples run as written: convert, evaluate, fine-tune, save."""
    import re

    from conftest import ROOT

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "torch.md").read_text(), flags=re.S)
    assert len(blocks) == 2
    ns: dict = {}
    for code in blocks:
        exec(compile(code, "docs/torch.md", "exec"), ns)
    assert ns["agreement"] > 0.8
    assert ns["losses"][-1] < ns["losses"][0]
    assert type(ns["digital_again"][-1]) is torch.nn.Linear


def test_quantizers_pass_gradients_straight_through(torch):
    """With a 4-bit DAC, a 5-bit ADC and 4-bit weights the outputs are quantized, but the
    input gradient is that of the same crossbars with ideal converters (the quantizers
    pass it straight through); the weight gradient is the circuit's at the quantized
    voltages."""
    from xbarsolve.torch import convert

    torch.manual_seed(4)
    layer = torch.nn.Linear(6, 5).double()
    x = torch.rand(8, 6, dtype=torch.float64)
    base = dict(WIRES, calibration=True, weight_bits=4)
    out = []
    for extra in ({}, {"dac_bits": 4, "adc_bits": 5}):
        m = convert(layer, AnalogConfig(**base, **extra), calibration_data=x).train()
        xg = x.clone().requires_grad_(True)
        y = m(xg)
        (y * torch.arange(1.0, 6.0, dtype=torch.float64)).sum().backward()
        out.append((y.detach().numpy(), xg.grad.numpy(), m.weight.grad.numpy()))
    (y0, gx0, gw0), (y1, gx1, gw1) = out
    assert _rel(y1, y0) > 1e-3  # the converters act
    assert _rel(gx1, gx0) < 1e-12
    assert 0 < _rel(gw1, gw0) < 0.2
