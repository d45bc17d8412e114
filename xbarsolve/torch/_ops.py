"""The engine's array operations on tensors (:class:`TorchOps`) and the autograd functions
through the circuit.

:meth:`xbarsolve.cnn.network.AnalogMatrix.products` runs the one pipeline (DAC, crossbar,
ADC, decoding, calibration, partial sums) against :class:`~xbarsolve.cnn.network.NumpyOps`
or these operations.  Here:

* the crossbar currents go through :class:`_Currents`: ``V @ T`` with ``T`` a tensor on
  the input's device for linear arrays, the Newton solver on CPU for nonlinear ones; its
  backward is exact (``T`` for the input of a linear array, the adjoint of the nodal
  system otherwise, :func:`~xbarsolve.torch._adjoint.crossbar_vjp`);
* quantizers (DAC, ADC) round with the engine's one rule
  (:func:`xbarsolve.cnn.quantization.quantize`) and pass the gradient straight through;
* decoding is affine in the analog output and ``sum(V)``; its two coefficients are read
  off :meth:`xbarsolve.mapping.MappedMatrix.decode` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cnn.quantization import quantize as _quantize
from ._adjoint import crossbar_vjp


def _np(x) -> np.ndarray | float:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


@dataclass(eq=False)
class TensorTile:
    """One tile as the torch pipeline sees it: the engine's slices, mapping and crossbar,
    and its arrays as tensors on the module's device."""

    rows: slice
    cols: slice
    mapped: object  # MappedMatrix
    crossbar: object  # Crossbar (the programmed array; its G matches ``G``)
    G: torch.Tensor  # programmed conductances (S); a function of the weights when training
    T: torch.Tensor | None
    slope: torch.Tensor | None = None
    offset: torch.Tensor | None = None
    analog_lo: torch.Tensor | None = None
    analog_hi: torch.Tensor | None = None
    ideal: bool = False  # zero wires, linear device, no transistor: T is G itself
    factorization: object = None  # xs.factorize(crossbar) when the forward pass made one


class _Currents(torch.autograd.Function):
    """Column currents (A) of one programmed array for voltages ``V`` (batch, m)."""

    @staticmethod
    def forward(ctx, V, G, tile: TensorTile):
        ctx.tile = tile
        ctx.save_for_backward(V)
        if tile.T is not None:
            return V @ tile.T
        from ..solve import solve

        return torch.as_tensor(solve(tile.crossbar, _np(V)).currents, device=V.device)

    @staticmethod
    def backward(ctx, gI):
        (V,) = ctx.saved_tensors
        tile = ctx.tile
        need_v, need_g = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if tile.T is not None and not need_g:
            return (gI @ tile.T.T if need_v else None), None, None
        if tile.ideal:
            return (gI @ tile.T.T if need_v else None), V.T @ gI, None  # ideal wires: T == G
        gV, gG = crossbar_vjp(tile.crossbar, _np(V), _np(gI), need_g=need_g, factorization=tile.factorization)
        dev = V.device
        return (torch.as_tensor(gV, device=dev) if need_v else None), (torch.as_tensor(gG, device=dev) if need_g else None), None


def _straight_through(x: torch.Tensor, value: np.ndarray) -> torch.Tensor:
    """``value`` forward, the identity backward."""
    return x + (torch.as_tensor(value, dtype=x.dtype, device=x.device) - x).detach()


class TorchOps:
    """The operations of :class:`xbarsolve.cnn.network.NumpyOps` on float64 tensors."""

    @staticmethod
    def relu(x):
        return torch.relu(x)

    @staticmethod
    def quantize(x, bits, lo, hi):
        return _straight_through(x, _quantize(_np(x), bits, _np(lo), _np(hi)))

    @staticmethod
    def currents(tile: TensorTile, V):
        return _Currents.apply(V, tile.G, tile)

    @staticmethod
    def decode(mapped, analog, V):
        one = np.ones((1, 1))
        c_analog = float(mapped.decode(one, np.zeros(1))[0, 0])
        c_sum = float(mapped.decode(0 * one, np.ones(1))[0, 0])
        y = analog * c_analog
        return y if c_sum == 0 else y + V.sum(dim=1, keepdim=True) * c_sum

    @staticmethod
    def noise(a, rng: np.random.Generator, sigma: float):
        return a + torch.as_tensor(rng.normal(0.0, sigma, tuple(a.shape)), dtype=a.dtype, device=a.device)

    @staticmethod
    def zeros(n_rows: int, n_cols: int, like):
        return torch.zeros(n_rows, n_cols, dtype=like.dtype, device=like.device)


def conductance_surrogate(mapped, W: torch.Tensor) -> torch.Tensor:
    """A tensor of value 0 whose gradient with respect to the tile weights ``W`` (m, n) is
    that of the mapping ``W -> G`` (:mod:`xbarsolve.mapping`) at fixed scale and shift:
    ``scale`` where a cell is not clipped (shift: ``G = scale (W + shift)``; differential:
    ``G+ = g_min + scale max(W, 0)``, ``G- = g_min + scale max(-W, 0)``), 0 where it is
    and for a reference column.  Weight quantization passes straight through."""
    s = mapped.scale
    m = W.shape[0]
    if mapped.scheme == "shift":
        raw = s * (W.detach() + mapped.shift)
        lin = s * W * ((raw >= mapped.g_min) & (raw <= mapped.g_max))
        if mapped.reference:
            lin = torch.cat([lin, torch.zeros(m, 1, dtype=W.dtype, device=W.device)], dim=1)
    else:
        raw = mapped.g_min + s * W.detach().abs()
        ok = raw <= mapped.g_max
        lin = torch.stack([s * W * ((W.detach() > 0) & ok), -s * W * ((W.detach() < 0) & ok)], dim=2).reshape(m, -1)
    return lin - lin.detach()
