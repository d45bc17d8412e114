"""Gradients through arrays with access transistors and through schemes B and C: the
nodal adjoint (xbarsolve.torch._adjoint_nodal) against central finite differences of
the solver, against the 1R ladder adjoint on 1R arrays, and through a converted layer."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.devices import Sinh
from xbarsolve.transistors import Level1, Resistor, Switch

WIRES = dict(r_row=2.0, r_col=3.0, r_in=5.0, r_out=4.0)


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


def _loss(xbar, V, gI) -> float:
    opts = {} if xbar.is_linear else dict(rtol=1e-13)
    return float((xs.solve(xbar, V, **opts).currents * gI).sum())


def _central(f, x: np.ndarray, rel_step: float) -> np.ndarray:
    out = np.zeros_like(x)
    for i in range(x.size):
        h = rel_step * max(abs(x.flat[i]), float(np.abs(x).max()) * 1e-3)
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += h
        xm.flat[i] -= h
        out.flat[i] = (f(xp) - f(xm)) / (2 * h)
    return out


def _inputs(xbar, rng, k=3):
    if xbar.scheme == "B":  # bits, each row on in some vector
        V = rng.integers(0, 2, (k, xbar.m)).astype(float)
        V[0] = 1.0
        return V
    return rng.uniform(-0.3, 0.3, (k, xbar.n_inputs))


CASES = {
    "level1": dict(transistor=Level1(v_gate=1.8)),
    "level1-sinh": dict(transistor=Level1(v_gate=1.8), device=Sinh(a=3.0)),
    "level1-0ohm-sense": dict(transistor=Level1(v_gate=1.8), r_col=0.0, r_out=0.0),
    "resistor": dict(transistor=Resistor(2e3)),
    "resistor-0ohm": dict(transistor=Resistor(2e3), r_row=0.0, r_col=0.0, r_in=0.0, r_out=0.0),
    "switch": dict(transistor=Switch()),
    "C-1R": dict(scheme="C"),
    "C-level1": dict(scheme="C", transistor=Level1(v_gate=1.8)),
    "B-resistor": dict(scheme="B", transistor=Resistor(2e3)),
    "B-level1": dict(scheme="B", transistor=Level1(v_gate=1.8)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_crossbar_vjp_equals_finite_differences(case):
    """gV and gG of crossbar_vjp (dispatched to the nodal adjoint) agree with central
    differences of xs.solve (1e-6 relative).  Scheme B: the inputs are gate bits, gV is 0."""
    from xbarsolve.torch._adjoint import crossbar_vjp

    rng = np.random.default_rng(3)
    G = rng.uniform(20e-6, 100e-6, (4, 3))
    xbar = xs.Crossbar(G, **{**WIRES, **CASES[case]})
    V = _inputs(xbar, rng)
    gI = rng.normal(size=(V.shape[0], xbar.n))
    gV, gG = crossbar_vjp(xbar, V, gI)
    fG = _central(lambda g: _loss(xbar.with_conductances(g.reshape(G.shape)), V, gI), G, 1e-5)
    assert _rel(gG, fG) < 1e-6
    if xbar.scheme == "B":
        assert gV.shape == V.shape and not gV.any()
    else:
        fV = _central(lambda v: _loss(xbar, v.reshape(V.shape), gI), V, 1e-5)
        assert _rel(gV, fV) < 1e-6
    gV2, none = crossbar_vjp(xbar, V, gI, need_g=False)
    assert none is None and np.array_equal(gV2, gV)


@pytest.mark.parametrize("kw", [dict(), dict(device=Sinh(a=3.0)), dict(r_out=0.0, drive="both", sense="both")],
                         ids=["linear", "sinh", "0ohm-both-ends"])
def test_nodal_adjoint_equals_the_ladder_adjoint_on_1r_arrays(kw):
    """On a 1R scheme-A array the generic nodal adjoint gives the 1R fast path's gradients
    (1e-10 relative)."""
    from xbarsolve.torch._adjoint import crossbar_vjp
    from xbarsolve.torch._adjoint_nodal import nodal_vjp

    rng = np.random.default_rng(4)
    xbar = xs.Crossbar(rng.uniform(20e-6, 100e-6, (5, 4)), **{**WIRES, **kw})
    V = rng.uniform(-0.3, 0.3, (3, 5))
    gI = rng.normal(size=(3, 4))
    fast = crossbar_vjp(xbar, V, gI)
    generic = nodal_vjp(xbar, V, gI)
    for a, b in zip(generic, fast):
        assert _rel(a, b) < 1e-10


@pytest.mark.parametrize("kind", ["level1", "resistor"])
def test_converted_1t1r_layer_gradients_equal_finite_differences(torch, kind):
    """A converted nn.Linear on 1T1R crossbars (1-ohm wires, two row tiles): autograd
    d loss / d input and d loss / d weight agree with central differences (1e-6)."""
    from xbarsolve.cnn import AnalogConfig
    from xbarsolve.torch import convert

    torch.manual_seed(2)
    layer = torch.nn.Linear(5, 3).double()
    x = 0.1 + 0.9 * torch.rand(4, 5, dtype=torch.float64)
    tr = Level1(v_gate=1.8) if kind == "level1" else Resistor(2e3)
    cfg = AnalogConfig(r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0, transistor=tr, conversion=False, calibration=False,
                       rows_max=3)
    analog = convert(layer, cfg, calibration_data=x).train()
    with torch.no_grad():  # every weight inside the range fixed at conversion (no clipping)
        analog.weight.mul_(0.9)
    R = torch.randn(4, 3, dtype=torch.float64)

    def loss(xv):
        return float((analog(xv) * R).sum().detach())  # a training forward: re-programmed from the weights

    xg = x.clone().requires_grad_(True)
    (analog(xg) * R).sum().backward()
    fx = _central(lambda v: loss(torch.as_tensor(v.reshape(x.shape))), x.numpy().copy(), 1e-6)
    assert _rel(xg.grad.numpy(), fx) < 1e-6
    W = analog.weight

    def at(w):
        with torch.no_grad():
            old = W.detach().clone()
            W.copy_(torch.as_tensor(w.reshape(W.shape)))
        try:
            return loss(x)
        finally:
            with torch.no_grad():
                W.copy_(old)

    fw = _central(at, W.detach().numpy().copy(), 1e-6)
    assert _rel(W.grad.numpy(), fw) < 1e-6
