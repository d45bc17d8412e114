"""Convert a PyTorch model to crossbars (:func:`convert`) and back (:func:`to_digital`)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..cnn.config import AnalogConfig
from .modules import AnalogConv1d, AnalogConv2d, AnalogLinear, AnalogModule

__all__ = ["convert", "to_digital", "SUPPORTED", "needs_calibration_data"]

#: Digital module type -> its analog replacement.
SUPPORTED: dict[type, type] = {nn.Linear: AnalogLinear, nn.Conv1d: AnalogConv1d, nn.Conv2d: AnalogConv2d}
#: Modules with weights that multiply their inputs but have no crossbar mapping here: an
#: error unless named in ``skip``.
_UNSUPPORTED = (nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.RNNBase, nn.RNNCellBase,
                nn.Bilinear, nn.MultiheadAttention)


def needs_calibration_data(config: AnalogConfig) -> list[str]:
    """Why ``config`` needs calibration inputs (empty when it does not)."""
    why = []
    if config.compensation.calibration:
        why.append("calibration=True fits each column's slope and offset on sample inputs")
    if config.converter.dac_bits is not None:
        why.append("a quantizing DAC (dac_bits) needs the input full scale")
    if config.converter.input_bits is not None:
        why.append("a bit-serial DAC (input_bits) quantizes the inputs to bits of their full scale")
    if config.converter.adc_bits is not None:
        why.append("a quantizing ADC (adc_bits) needs its ranges")
    if not config.is_linear:
        why.append("with a nonlinear device the input full scale sets the voltages")
    return why


def _targets(module: nn.Module, skip: set[str]) -> list[tuple[str, nn.Module]]:
    names = dict(module.named_modules())
    unknown = sorted(s for s in skip if s not in names)
    if unknown:
        raise ValueError(f"skip names modules that the model does not have: {unknown}; "
                         f"module names are those of named_modules(), e.g. {list(names)[1:4]}")
    out = []
    for name, m in module.named_modules():
        if any(name == s or name.startswith(s + ".") for s in skip if s):
            continue
        if isinstance(m, AnalogModule):
            raise ValueError(f"module {name or '<root>'!r} is already an analog {type(m).__name__}; convert a digital model")
        if type(m) in SUPPORTED:
            out.append((name, m))
        elif isinstance(m, _UNSUPPORTED) or (isinstance(m, tuple(SUPPORTED)) and type(m) not in SUPPORTED):
            raise TypeError(f"module {name or '<root>'!r} is a {type(m).__module__}.{type(m).__qualname__}, which "
                            "xbarsolve.torch cannot put on crossbars (supported: nn.Linear, nn.Conv1d, nn.Conv2d); "
                            f"pass skip=({name!r},) to keep it digital")
    return out


def _layer_inputs(module: nn.Module, names: list[str], data) -> dict[str, torch.Tensor]:
    """Every named layer's exact inputs (float64, CPU) when the digital model (float64,
    eval mode) runs on ``data``."""
    model = copy.deepcopy(module).to(torch.float64).eval()
    x = torch.as_tensor(data)
    if not torch.is_floating_point(x):
        raise TypeError(f"calibration_data must be a floating-point batch of model inputs; got dtype {x.dtype}")
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda mod, inp, out, n=n: seen[n].append(inp[0].detach().to("cpu", torch.float64))) for n in names]
    try:
        device = next((p.device for p in model.parameters()), x.device)
        with torch.no_grad():
            model(x.to(device, torch.float64))
    finally:
        for h in hooks:
            h.remove()
    missing = [n for n in names if not seen[n]]
    if missing:
        raise ValueError(f"calibration_data: the forward pass never called {missing}; cannot calibrate them")
    return {n: torch.cat(v, dim=0) for n, v in seen.items()}


def _set(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def convert(module: nn.Module, config: AnalogConfig | None = None, *, calibration_data=None,
            skip: tuple[str, ...] | list[str] = ()) -> nn.Module:
    """A copy of ``module`` whose ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` layers
    run on simulated crossbars.

    Parameters
    ----------
    module : torch.nn.Module
        The digital model (left unchanged).
    config : AnalogConfig, optional
        How layers go on crossbars (:class:`xbarsolve.cnn.AnalogConfig`); default
        ``AnalogConfig()``.
    calibration_data : tensor or array, optional
        A batch of model inputs: the digital model (float64, eval mode) runs on it and
        every layer's inputs set its DAC full scale, ADC ranges and calibration samples,
        as :meth:`xbarsolve.cnn.AnalogNetwork.prepare` does.  Required when the config
        calibrates, quantizes or has a nonlinear device (:func:`needs_calibration_data`).
    skip : sequence of str
        Module names (as in ``named_modules()``) that stay digital, with their children.

    Returns
    -------
    torch.nn.Module
        The converted copy (a single converted layer when ``module`` itself is one).
        Layers are programmed in ``named_modules()`` order from one generator seeded by
        ``config.seed``, like the NumPy engine's layers.

    Raises
    ------
    TypeError
        For a module with weights that has no crossbar mapping (``nn.Conv3d``,
        transposed convolutions, recurrent layers, ...), naming its path and type.
    ValueError
        When the config needs ``calibration_data`` and none is given, or ``skip`` names
        a module the model does not have.
    """
    cfg = AnalogConfig() if config is None else config
    if not isinstance(cfg, AnalogConfig):
        raise TypeError(f"config must be an xbarsolve.cnn.AnalogConfig; got {type(cfg).__name__}")
    if isinstance(skip, str):
        skip = (skip,)
    targets = _targets(module, set(skip))
    why = needs_calibration_data(cfg)
    if why and calibration_data is None:
        raise ValueError("calibration_data is None but this config needs a batch of model inputs: " + "; ".join(why))
    names = [n for n, _ in targets]
    inputs = _layer_inputs(module, names, calibration_data) if calibration_data is not None and names else {}
    out = copy.deepcopy(module)
    rng = np.random.default_rng(cfg.seed)
    for name, _ in targets:
        digital = out.get_submodule(name) if name else out
        analog = SUPPORTED[type(digital)].from_module(digital, name, cfg)
        analog.program(rng, inputs.get(name))
        analog.train(digital.training)
        if not name:
            return analog
        _set(out, name, analog)
    return out


def to_digital(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every analog layer back as its digital type (current weights)."""
    if isinstance(module, AnalogModule):
        return module.digital()
    out = copy.deepcopy(module)
    for name, m in list(out.named_modules()):
        if isinstance(m, AnalogModule):
            _set(out, name, m.digital())
    return out
