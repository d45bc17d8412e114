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
  off :meth:`xbarsolve.mapping.MappedMatrix.decode` itself;
* bit slicing (:mod:`xbarsolve.cnn.slicing`) is the engine's: :class:`TorchMatrix` adds
  the straight-through gradients of the bit-serial inputs and re-programs sliced
  weights, :func:`conductance_surrogate` passes the weight slicing straight through;
* without a weight gradient, :meth:`TorchMatrix.folded_products` runs a whole matrix as
  one GEMM with the engine's fold (:meth:`~xbarsolve.cnn.network.AnalogMatrix.folded_matrix`)
  where everything after the DAC is linear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cnn.network import AnalogMatrix, NumpyOps
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
    def dac(x, bits, full_scale, v_max):
        if bits is None:
            return x * (v_max / full_scale)
        return TorchOps.quantize(x / full_scale, bits, 0.0, 1.0) * v_max

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


def conductance_surrogate(mapped, W: torch.Tensor, w_range: tuple[float, float] | None = None,
                          factor_sum: float | None = None) -> torch.Tensor:
    """A tensor of value 0 whose gradient with respect to the tile weights ``W`` (m, n) is
    that of the mapping ``W -> G`` (:mod:`xbarsolve.mapping`) at fixed scale and shift:
    ``scale`` where a cell is not clipped (shift: ``G = scale (W + shift)``; differential:
    ``G+ = g_min + scale max(W, 0)``, ``G- = g_min + scale max(-W, 0)``), 0 where it is
    and for a reference column.  Weight quantization passes straight through.

    A weight slice (:class:`~xbarsolve.cnn.slicing.SliceMapping`; ``w_range`` the layer's
    weight range, ``factor_sum`` the sum of the digital factors of the tile's slices)
    passes the slicing straight through: each slice's conductances move with the weight
    as those of an unsliced mapping of ``w_range`` onto ``[g_min, g_max]`` would,
    ``inner.scale / factor_sum`` per weight unit, 0 outside ``w_range`` (where the weights
    saturate).  The slices' decoded outputs, weighted by their factors, then pass the
    recombined weight's gradient: on ideal crossbars ``dL/dW = V^T dL/dY``.
    """
    from ..cnn.slicing import SliceMapping

    m = W.shape[0]
    Wd = W.detach()
    if isinstance(mapped, SliceMapping):
        mapped = mapped.inner
        s = mapped.scale / factor_sum
        ok = (Wd >= w_range[0]) & (Wd <= w_range[1])
    else:
        s = mapped.scale
        if mapped.scheme == "shift":
            raw = s * (Wd + mapped.shift)
            ok = (raw >= mapped.g_min) & (raw <= mapped.g_max)
        else:
            ok = mapped.g_min + s * Wd.abs() <= mapped.g_max
    if mapped.scheme == "shift":
        lin = s * W * ok
        if mapped.reference:
            lin = torch.cat([lin, torch.zeros(m, 1, dtype=W.dtype, device=W.device)], dim=1)
    else:
        lin = torch.stack([s * W * ((Wd > 0) & ok), -s * W * ((Wd < 0) & ok)], dim=2).reshape(m, -1)
    return lin - lin.detach()


class TorchMatrix(AnalogMatrix):
    """The engine's :class:`~xbarsolve.cnn.network.AnalogMatrix` with what the tensor
    pipeline adds to bit slicing (:mod:`xbarsolve.cnn.slicing`), the slicing itself left
    to the engine:

    * bit-serial inputs (``input_bits``): the engine's bit planes of the detached inputs,
      each passing the gradient of its (unsliced, ideal-DAC) voltage straight through:
      plane ``(w_j, b_j v_max)`` of the part of sign ``s`` is differentiated as
      ``relu(s P) v_max / x_scale``; the planes' weights ``2**j / (2**B - 1)`` sum to 1,
      so the recombined input passes its gradient unchanged;
    * :meth:`remap` of bit-sliced weights: the slices of every tile
      (:func:`~xbarsolve.cnn.slicing.slice_mappings`) at the weight range fixed when the
      matrix was programmed.
    """

    def _voltages(self, P, dac_bits, ops=NumpyOps):
        if ops is not TorchOps or self.cfg.converter.input_bits is None:
            return super()._voltages(P, dac_bits, ops)
        v = self.cfg.converter.v_max / self.x_scale
        return [(w, _straight_through(torch.relu(float(np.sign(w)) * P) * v, V))
                for w, V in super()._voltages(_np(P), dac_bits)]

    #: (M, device, M as a tensor, b as a tensor): the engine's fold on a device, kept
    #: while :meth:`folded_matrix` returns the same ``M``
    _fold_tensors: tuple | None = None

    def folded_products(self, P: torch.Tensor) -> torch.Tensor | None:
        """``products(P)`` as one GEMM with the engine's fold
        (:meth:`~xbarsolve.cnn.network.AnalogMatrix.folded_matrix`) on ``P``'s device, or
        None where the fold does not hold (ADC quantization, read noise, a nonlinear
        tile) or the tile-by-tile pipeline is asked for (``_serial_tiles``).

        Differentiable in ``P`` (``dL/dP = dL/dY @ M^T``, through the DAC's
        straight-through estimator), not in the weights: training forwards take the
        tile-by-tile pipeline.  ``M`` and ``b`` go to the device once and stay there until
        the engine's fold changes (re-programming, re-calibration, ``load_state_dict``).
        """
        if self._serial_tiles or self.adc_bits is not None or self.read_noise_sigma > 0 or not self.tiles:
            return None
        fold = self.folded_matrix()
        if fold is None:
            return None
        M, b = fold
        held = self._fold_tensors
        if held is None or held[0] is not M or held[1] != P.device:
            held = self._fold_tensors = (M, P.device, torch.as_tensor(M, device=P.device),
                                         torch.as_tensor(b, device=P.device))
        Mt, bt = held[2], held[3]
        if self.dac_bits is None and self.cfg.converter.input_bits is None:
            return torch.addmm(bt, P, Mt)  # the ideal DAC: c * sum_j w_j V_j == P
        V = None
        for w, Vj in self._voltages(P, self.dac_bits, TorchOps):
            V = w * Vj if V is None else V + w * Vj
        return torch.addmm(bt, V, Mt, alpha=self.x_scale / self.cfg.converter.v_max)

    def remap(self, W: np.ndarray) -> list:
        if not self.cfg.mapping.sliced:
            return super().remap(W)
        from ..cnn.slicing import slice_mappings

        W = np.asarray(W, dtype=np.float64)
        if W.shape != self.matrix.shape or self.w_range is None:
            raise ValueError(f"remap needs a programmed matrix and W of shape {self.matrix.shape}; got {W.shape}")
        W = np.clip(W, *self.w_range)
        n = self.cfg.mapping.n_slices  # the tiles hold the n slices of each (rows, cols) in a row
        return [sm for t in self.tiles[::n] for sm in slice_mappings(W[t.rows, t.cols], self.cfg, self.w_range)]

    def factor_sums(self) -> list[float | None]:
        """Per tile, the sum of the digital factors of its tile's weight slices (None
        unsliced): what :func:`conductance_surrogate` divides a slice's scale by."""
        if not self.cfg.mapping.sliced:
            return [None] * len(self.tiles)
        n = self.cfg.mapping.n_slices
        return [sum(u.mapped.factor for u in self.tiles[k - k % n:k - k % n + n]) for k in range(len(self.tiles))]
