"""The training route's adjoint: the kept nested dissection (its transfer matrix and
conductance gradient) and the block factorization's solve from the sense ends equal the
former route through the transposed array, and training gradients through the
dissection equal central finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.solve import dissection as D
from xbarsolve.torch._adjoint import adjoint_state, crossbar_vjp, crossbar_vjp_transposed

ROUNDOFF = 1e-12  # relative, against the largest entry
ADJOINT = 1e-10  # new vjp against the former route (the brief's bound)

CASES = [((13, 9), "left", "bottom"), ((24, 31), "both", "both"), ((40, 17), "right", "top"),
         ((9, 26), "left", "both"), ((3, 2), "both", "bottom"), ((70, 66), "left", "bottom")]


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def _xbar(rng, shape, drive="left", sense="bottom"):
    m, n = shape
    return xs.Crossbar(rng.uniform(3e-6, 7e-5, (m, n)), r_row=rng.uniform(0.5, 3.0, (m, n - 1)),
                       r_col=rng.uniform(0.5, 3.0, (m - 1, n)), r_in=rng.uniform(0.5, 2.0, m),
                       r_out=rng.uniform(0.5, 2.0, n), drive=drive, sense=sense)


@pytest.mark.parametrize("shape,drive,sense", CASES)
def test_kept_dissection_equals_the_transposed_route(rng, shape, drive, sense):
    xbar = _xbar(rng, shape, drive, sense)
    d = D.Dissection(xbar)
    assert _rel(d.transfer_matrix(), D.transfer_matrix_dissection(xbar)) < ROUNDOFF
    assert _rel(d.transfer_matrix(), xs.transfer_matrix(xbar)) < ROUNDOFF
    for batch in (1, 5, 2 * sum(shape)):  # factors all the way, mixed, the product from the top
        V = rng.uniform(0.0, 0.4, (batch, shape[0]))
        gI = rng.standard_normal((batch, shape[1]))
        gV0, gG0 = crossbar_vjp_transposed(xbar, V, gI)
        gV, gG = crossbar_vjp(xbar, V, gI, factorization=d)
        assert _rel(gG, gG0) < ADJOINT, batch
        assert _rel(gV, gV0) < ADJOINT, batch


def test_kept_dissection_lapack_branch(rng, monkeypatch):
    """Matrices from _BIG nodes on are eliminated by LAPACK Cholesky (top levels of large arrays)."""
    xbar = _xbar(rng, (64, 48), "both", "bottom")
    V, gI = rng.uniform(0.0, 0.4, (7, 64)), rng.standard_normal((7, 48))
    gG0 = crossbar_vjp_transposed(xbar, V, gI)[1]
    monkeypatch.setattr(D, "_BIG", 20)  # every merge and leaf through the Cholesky path
    d = D.Dissection(xbar)
    assert _rel(d.transfer_matrix(), D.transfer_matrix_dissection(xbar)) < ROUNDOFF
    assert _rel(d.conductance_vjp(V, gI), gG0) < ADJOINT


@pytest.mark.parametrize("shape,drive,sense", CASES[:4])
def test_solve_from_sense_is_the_adjoint(rng, shape, drive, sense):
    """Same factors, sense ends driven: currents gI @ T.T into the sources, node voltages
    those of the transposed array driven by gI; both block orientations."""
    from xbarsolve.torch._adjoint import _small_signal_transposed

    xbar = _xbar(rng, shape, drive, sense)
    gI = rng.standard_normal((4, shape[1]))
    ref = xs.solve(_small_signal_transposed(xbar, xbar.G), gI, full=True)
    for orientation in ("rows", "columns"):
        r = xs.factorize(xbar, orientation).solve_from_sense(gI, full=True)
        assert _rel(r.currents, gI @ xs.transfer_matrix(xbar).T) < ROUNDOFF
        assert _rel(r.v_top, ref.v_bottom.transpose(0, 2, 1)) < ROUNDOFF
        assert _rel(r.v_bottom, ref.v_top.transpose(0, 2, 1)) < ROUNDOFF
        assert _rel(xs.factorize(xbar, orientation).solve_from_sense(gI).currents, r.currents) < ROUNDOFF


@pytest.mark.parametrize("shape", [(20, 7), (7, 20)])
def test_block_state_vjp_equals_the_transposed_route(rng, shape):
    xbar = _xbar(rng, shape, "both", "top")
    state, T = adjoint_state(xbar)
    assert isinstance(state, xs.Factorization)
    assert _rel(T, xs.transfer_matrix(xbar)) < ROUNDOFF
    V, gI = rng.uniform(0.0, 0.4, (6, shape[0])), rng.standard_normal((6, shape[1]))
    gV0, gG0 = crossbar_vjp_transposed(xbar, V, gI)
    gV, gG = crossbar_vjp(xbar, V, gI, factorization=state)
    assert _rel(gV, gV0) < ADJOINT and _rel(gG, gG0) < ADJOINT
    gV1, none = crossbar_vjp(xbar, V, gI, need_g=False)
    assert none is None and _rel(gV1, gV0) < ADJOINT


def test_adjoint_state_takes_the_dissection_for_square_arrays(rng):
    state, T = adjoint_state(_xbar(rng, (64, 66)))
    assert isinstance(state, D.Dissection)
    assert T is state.transfer_matrix()


def test_dissection_errors(rng):
    from xbarsolve.devices import Sinh

    with pytest.raises(TypeError, match="linear"):
        D.Dissection(xs.Crossbar(np.full((4, 4), 1e-5), device=Sinh(a=2.0)))
    with pytest.raises(ValueError, match="> 0 ohm"):
        D.Dissection(xs.Crossbar(np.full((4, 4), 1e-5), r_row=0.0))
    with pytest.raises(ValueError, match="m, n >= 2"):
        D.Dissection(xs.Crossbar(np.full((1, 4), 1e-5)))
    d = D.Dissection(_xbar(rng, (5, 4)))
    with pytest.raises(ValueError, match=r"\(batch, 5\) and \(batch, 4\)"):
        d.conductance_vjp(np.ones((2, 5)), np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"U must have shape \(batch, 4\)"):
        xs.factorize(_xbar(rng, (5, 4))).solve_from_sense(np.ones((2, 5)))


def test_training_gradients_through_the_dissection_equal_finite_differences(torch):
    """A layer whose re-programmed crossbar (64 x 66, differential) takes the kept
    dissection: directional derivatives of the loss in the weights and the input agree
    with central differences (1e-6 relative)."""
    from xbarsolve.cnn import AnalogConfig
    from xbarsolve.torch import convert

    nn = torch.nn
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(64, 33)).double()
    cfg = AnalogConfig(r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0, conversion=False, calibration=False,
                       scheme="differential")
    analog = convert(model, cfg).train()
    xbar = analog[0].engines[0].tiles[0].crossbar
    assert xbar.shape == (64, 66) and isinstance(adjoint_state(xbar)[0], D.Dissection)
    with torch.no_grad():
        analog[0].weight.mul_(0.9)  # inside the range fixed at conversion: no clipping
    x = 0.1 + 0.9 * torch.rand(5, 64, dtype=torch.float64)
    R = torch.randn(5, 33, dtype=torch.float64)
    W = analog[0].weight

    def loss(xv):
        return float((analog(xv) * R).sum().detach())

    xg = x.clone().requires_grad_(True)
    (analog(xg) * R).sum().backward()
    gen = torch.Generator().manual_seed(4)
    for _ in range(3):
        dW = torch.randn(W.shape, generator=gen, dtype=torch.float64)
        dx = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        hW, hx = 1e-6 * float(W.detach().abs().max()), 1e-6 * float(x.abs().max())
        vals = []
        for s in (1.0, -1.0):
            with torch.no_grad():
                W.add_(s * hW * dW)
            vals.append(loss(x))
            with torch.no_grad():
                W.sub_(s * hW * dW)
        fd_w = (vals[0] - vals[1]) / (2 * hW)
        fd_x = (loss(x + hx * dx) - loss(x - hx * dx)) / (2 * hx)
        assert abs(float((W.grad * dW).sum()) - fd_w) < 1e-6 * abs(fd_w)
        assert abs(float((xg.grad * dx).sum()) - fd_x) < 1e-6 * abs(fd_x)
