"""Analog PyTorch layers: :class:`AnalogLinear`, :class:`AnalogConv1d`, :class:`AnalogConv2d`.

Each holds its original ``weight`` and ``bias`` as trainable parameters (the original
shapes) and one :class:`xbarsolve.cnn.network.AnalogMatrix` per group: the same mapping,
tiling, programming, conversion, calibration and converters as
:class:`~xbarsolve.cnn.AnalogNetwork`.  A convolution is unfold (im2col, window entries
ordered (kh, kw, channel) like the NumPy layers) and the analog matrix product; the bias
is added digitally.

State (buffers, so ``state_dict``, ``deepcopy``, ``.to(device)`` and ``torch.save`` carry
it), per group ``g`` and tile ``k``: ``g{g}_x_scale`` (input full scale mapped to
``v_max``), ``g{g}_w_range`` (weights mapped onto ``[g_min, g_max]``, fixed at
conversion), ``g{g}_t{k}_G`` (programmed conductances, S), ``g{g}_t{k}_dG`` (programmed
minus mapped conductances: the conversion and programming error, S), ``g{g}_t{k}_T``
(transfer matrix, S; linear arrays), ``g{g}_t{k}_slope`` / ``_offset`` (calibration) and
``g{g}_t{k}_lo`` / ``_hi`` (ADC ranges, A).

Forward: float32 or float64 input on any device, computed in float64 on the crossbar
path, returned in the input's dtype.  Without a weight gradient (evaluation,
``torch.no_grad``, frozen weights) and with everything after the DAC linear (linear
arrays, ideal ADC, no read noise) a group is one GEMM with the engine's fold ``P @ M + b``
(:meth:`xbarsolve.cnn.network.AnalogMatrix.folded_matrix`; the input gradient is
``dL/dY @ M^T``); otherwise the tile-by-tile pipeline.  In training mode with gradients enabled the
crossbars are re-programmed from the current weights first (same scale and offset, the
same conversion correction ``dG``; a new transfer matrix), so the gradient with respect
to the weights is that of the circuit (see :mod:`xbarsolve.torch._ops`).  Buffers are kept
float64 when the model is cast (``.float()`` changes the parameters only).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cnn.config import AnalogConfig
from ..cnn.network import default_crossbar_factory
from ._adjoint import adjoint_state
from ._ops import TensorTile, TorchMatrix, TorchOps, conductance_surrogate

__all__ = ["AnalogModule", "AnalogLinear", "AnalogConv1d", "AnalogConv2d"]


class AnalogModule(nn.Module):
    """Base of the analog layers: weights, engines (one :class:`AnalogMatrix` per group),
    buffers and the forward pass; subclasses define the input vectors and the output."""

    groups: int = 1

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, name: str, config: AnalogConfig):
        super().__init__()
        self.weight = weight
        self.bias = bias
        self.layer_name = name
        self.config = config
        self.engines: list[TorchMatrix] = []
        #: zero wires, linear device, no transistor: every T is its G
        self._ideal = config.ideal_wires and config.is_linear and config.circuit.transistor is None
        self._factorizations: dict = {}  # (group, tile) -> factorization of the last re-programming
        self._noise_rng = np.random.default_rng(config.seed + 1) if config.noise.read_noise_sigma > 0 else None
        self.register_load_state_dict_post_hook(lambda module, incompatible: module._sync())

    # ------------------------------------------------------------------ subclass interface
    def matrices(self) -> list[torch.Tensor]:  # pragma: no cover - abstract
        """The weight matrix (rows, outputs) of every group, differentiable in ``weight``."""
        raise NotImplementedError

    def vectors(self, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple]:  # pragma: no cover - abstract
        """The crossbar input vectors (batch, rows) of every group, and what
        :meth:`assemble` needs to shape the output."""
        raise NotImplementedError

    def assemble(self, Y: torch.Tensor, shape) -> torch.Tensor:  # pragma: no cover - abstract
        """The layer output (without bias) from the products of all groups side by side."""
        raise NotImplementedError

    def digital(self) -> nn.Module:  # pragma: no cover - abstract
        """The equivalent digital module with the current weights."""
        raise NotImplementedError

    # ------------------------------------------------------------------ programming
    def _names(self, g: int) -> str:
        return self.layer_name if self.groups == 1 else f"{self.layer_name}/g{g}"

    def program(self, rng: np.random.Generator, x_cal: torch.Tensor | None, factory=default_crossbar_factory) -> None:
        """Map, program and (with ``x_cal``, the layer's exact inputs on calibration data)
        calibrate every group's crossbars, drawing from ``rng`` in the NumPy engine's order."""
        P = None
        if x_cal is not None:
            with torch.no_grad():
                P = [p.detach().cpu().numpy() for p in self.vectors(x_cal.to(torch.float64))[0]]
        self.engines = []
        with torch.no_grad():
            mats = [M.detach().to(torch.float64).cpu().numpy() for M in self.matrices()]
        for g, M in enumerate(mats):
            eng = TorchMatrix(M, self._names(g), self.config)
            eng.program(factory, rng)
            if P is not None:
                eng.calibrate_vectors(P[g], rng)
            self.engines.append(eng)
            self._register(g, eng)

    def _register(self, g: int, eng: TorchMatrix) -> None:
        def buf(key, value):
            if value is not None:
                self.register_buffer(f"g{g}_{key}", torch.tensor(np.array(value, dtype=np.float64)))

        buf("x_scale", eng.x_scale)
        buf("w_range", eng.w_range)
        for k, t in enumerate(eng.tiles):
            buf(f"t{k}_G", t.crossbar.G)
            buf(f"t{k}_dG", np.asarray(t.crossbar.G) - t.mapped.G)
            buf(f"t{k}_T", t.T)
            buf(f"t{k}_slope", t.slope)
            buf(f"t{k}_offset", t.offset)
            buf(f"t{k}_lo", t.analog_lo)
            buf(f"t{k}_hi", t.analog_hi)

    def _buffer(self, g: int, key: str) -> torch.Tensor | None:
        return getattr(self, f"g{g}_{key}", None)

    def _sync(self) -> None:
        """Engines from the buffers (after ``load_state_dict``): mappings, conductances,
        transfer matrices, calibrations and ADC ranges, so that the engine's fold
        (:meth:`~xbarsolve.torch._ops.TorchMatrix.folded_products`) is that of the buffers."""
        def array(g, key):
            b = self._buffer(g, key)
            return None if b is None else b.detach().cpu().numpy().copy()

        with torch.no_grad():
            mats = [M.detach().to(torch.float64).cpu().numpy() for M in self.matrices()]
        for g, eng in enumerate(self.engines):
            eng.x_scale = float(self._buffer(g, "x_scale"))
            eng.w_range = tuple(float(v) for v in self._buffer(g, "w_range"))
            for k, (t, mapped) in enumerate(zip(eng.tiles, eng.remap(mats[g]))):
                t.mapped = mapped
                t.crossbar = t.crossbar.with_conductances(array(g, f"t{k}_G"))
                t.T, t.slope, t.offset = array(g, f"t{k}_T"), array(g, f"t{k}_slope"), array(g, f"t{k}_offset")
                t.analog_lo, t.analog_hi = array(g, f"t{k}_lo"), array(g, f"t{k}_hi")

    def _reprogram(self, g: int, M: np.ndarray) -> None:
        """Program group ``g`` from new weights ``M`` (same range, same correction ``dG``)."""
        eng = self.engines[g]
        for k, (t, mapped) in enumerate(zip(eng.tiles, eng.remap(M))):
            G = np.maximum(mapped.G + self._buffer(g, f"t{k}_dG").cpu().numpy(), 0.0)
            t.mapped, t.crossbar = mapped, t.crossbar.with_conductances(G)
            if t.crossbar.is_linear and not t.crossbar.has_zero_resistance:  # one elimination: T and backward
                self._factorizations[g, k], t.T = adjoint_state(t.crossbar)
            else:
                t.T = eng.transfer(t.crossbar)
            self._buffer(g, f"t{k}_G").copy_(torch.from_numpy(G))
            if t.T is not None:
                self._buffer(g, f"t{k}_T").copy_(torch.from_numpy(np.array(t.T)))

    def _tiles(self, g: int, M: torch.Tensor | None) -> list[TensorTile]:
        eng = self.engines[g]
        out = []
        for k, (t, factor_sum) in enumerate(zip(eng.tiles, eng.factor_sums())):
            G = self._buffer(g, f"t{k}_G")
            if M is not None:
                G = G + conductance_surrogate(t.mapped, M[t.rows, t.cols].to(torch.float64), eng.w_range, factor_sum)
            out.append(TensorTile(t.rows, t.cols, t.mapped, t.crossbar, G, self._buffer(g, f"t{k}_T"),
                                  self._buffer(g, f"t{k}_slope"), self._buffer(g, f"t{k}_offset"),
                                  self._buffer(g, f"t{k}_lo"), self._buffer(g, f"t{k}_hi"), self._ideal,
                                  self._factorizations.pop((g, k), None) if M is not None else None))
        return out

    def _apply(self, fn, recurse=True):
        # .to(device) moves the buffers; .float() / .half() leave them float64 (the
        # crossbar path computes in float64 whatever the parameters' dtype)
        bufs = {k: b for k, b in self._buffers.items() if b is not None}
        for k in bufs:
            del self._buffers[k]
        out = super()._apply(fn, recurse)
        for k, b in bufs.items():
            moved = fn(b)
            self._buffers[k] = moved if moved.dtype == b.dtype else b.to(moved.device)
        return out

    # ------------------------------------------------------------------ forward
    @property
    def n_crossbars(self) -> int:
        return sum(e.n_crossbars for e in self.engines)

    @property
    def n_clipped(self) -> int:
        return sum(e.n_clipped for e in self.engines)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.engines:
            raise RuntimeError(f"{self.layer_name or type(self).__name__}: not programmed; build it with xbarsolve.torch.convert")
        P, shape = self.vectors(x.to(torch.float64))
        train = self.training and torch.is_grad_enabled() and self.weight.requires_grad
        mats = self.matrices() if train else [None] * len(self.engines)
        Y = []
        for g, eng in enumerate(self.engines):
            if train:
                with torch.no_grad():
                    self._reprogram(g, mats[g].detach().to(torch.float64).cpu().numpy())
            y = None if train else eng.folded_products(P[g])  # no weight gradient: the engine's fold
            Y.append(eng.products(P[g], self._noise_rng, ops=TorchOps, tiles=self._tiles(g, mats[g])) if y is None else y)
        y = torch.cat(Y, dim=1) if len(Y) > 1 else Y[0]  # (vectors, outputs)
        if self.bias is not None:
            y = y + self.bias.to(torch.float64)
        y = self.assemble(y, shape)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, crossbars={self.n_crossbars}, weight={tuple(self.weight.shape)}"


class AnalogLinear(AnalogModule):
    """``nn.Linear`` on crossbars: ``y = x @ weight.T + bias`` (bias digital)."""

    @classmethod
    def from_module(cls, module: nn.Linear, name: str, config: AnalogConfig) -> "AnalogLinear":
        return cls(module.weight, module.bias, name, config)

    def matrices(self):
        return [self.weight.t()]

    def vectors(self, x):
        return [x.reshape(-1, x.shape[-1])], x.shape[:-1]

    def assemble(self, Y, shape):
        return Y.reshape(*shape, -1)

    def digital(self):
        out_f, in_f = self.weight.shape
        m = nn.Linear(in_f, out_f, bias=self.bias is not None, device=self.weight.device, dtype=self.weight.dtype)
        return _copy_weights(m, self)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(u) for u in v)


class AnalogConv2d(AnalogModule):
    """``nn.Conv2d`` on crossbars (any stride, padding including ``"same"``, dilation,
    padding mode and groups; one set of crossbars per group; bias digital)."""

    def __init__(self, weight, bias, name, config, *, stride, padding, dilation, groups, padding_mode):
        super().__init__(weight, bias, name, config)
        self.stride = _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = int(groups)
        self.padding_mode = padding_mode

    @classmethod
    def from_module(cls, module: nn.Conv2d, name: str, config: AnalogConfig) -> "AnalogConv2d":
        return cls(module.weight, module.bias, name, config, stride=module.stride, padding=module.padding,
                   dilation=module.dilation, groups=module.groups, padding_mode=module.padding_mode)

    @property
    def kernel_size(self) -> tuple[int, int]:
        return tuple(self.weight.shape[2:])

    def matrices(self):
        co, cg, kh, kw = self.weight.shape
        og = co // self.groups
        return [self.weight[g * og:(g + 1) * og].permute(2, 3, 1, 0).reshape(kh * kw * cg, og) for g in range(self.groups)]

    def _pads(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom), as ``F.pad`` wants them."""
        if self.padding == "valid":
            return 0, 0, 0, 0
        if self.padding == "same":  # PyTorch's rule: the odd one at the end
            (th, tw) = (self.dilation[a] * (self.kernel_size[a] - 1) for a in (0, 1))
            return tw // 2, tw - tw // 2, th // 2, th - th // 2
        ph, pw = self.padding
        return pw, pw, ph, ph

    def vectors(self, x):
        pads = self._pads()
        if any(pads):
            x = F.pad(x, pads, mode="constant" if self.padding_mode == "zeros" else self.padding_mode)
        N, C, H, W = x.shape
        kh, kw = self.kernel_size
        Ho = (H - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        Wo = (W - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        (dh, dw), (sh, sw) = self.dilation, self.stride
        # windows as a strided view (N, C, Ho, Wo, kh, kw), then one copy in (kh, kw, channel) order
        win = x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)[..., ::dh, ::dw]
        cg = C // self.groups
        win = win.reshape(N, self.groups, cg, Ho, Wo, kh, kw).permute(1, 0, 3, 4, 5, 6, 2)
        cols = win.reshape(self.groups, N * Ho * Wo, kh * kw * cg)
        return list(cols), (N, Ho, Wo)

    def assemble(self, Y, shape):
        N, Ho, Wo = shape
        return Y.reshape(N, Ho, Wo, -1).permute(0, 3, 1, 2)

    def _digital_kwargs(self):
        co, cg = self.weight.shape[:2]
        return dict(in_channels=cg * self.groups, out_channels=co, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, groups=self.groups, bias=self.bias is not None,
                    padding_mode=self.padding_mode, device=self.weight.device, dtype=self.weight.dtype)

    def digital(self):
        m = nn.Conv2d(kernel_size=self.kernel_size, **self._digital_kwargs())
        return _copy_weights(m, self)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}")


class AnalogConv1d(AnalogConv2d):
    """``nn.Conv1d`` on crossbars: the 2-D layer on a height-1 input."""

    @classmethod
    def from_module(cls, module: nn.Conv1d, name: str, config: AnalogConfig) -> "AnalogConv1d":
        pad = module.padding if isinstance(module.padding, str) else (0, module.padding[0])
        return cls(module.weight, module.bias, name, config, stride=(1, module.stride[0]), padding=pad,
                   dilation=(1, module.dilation[0]), groups=module.groups, padding_mode=module.padding_mode)

    @property
    def kernel_size(self) -> tuple[int, int]:
        return 1, int(self.weight.shape[2])

    def matrices(self):
        co, cg, k = self.weight.shape
        og = co // self.groups
        return [self.weight[g * og:(g + 1) * og].permute(2, 1, 0).reshape(k * cg, og) for g in range(self.groups)]

    def vectors(self, x):
        return super().vectors(x.unsqueeze(2))

    def assemble(self, Y, shape):
        return super().assemble(Y, shape).squeeze(2)

    def digital(self):
        kw = self._digital_kwargs()
        kw.update(stride=self.stride[1], dilation=self.dilation[1],
                  padding=self.padding if isinstance(self.padding, str) else self.padding[1])
        return _copy_weights(nn.Conv1d(kernel_size=self.kernel_size[1], **kw), self)


def _copy_weights(digital: nn.Module, analog: AnalogModule) -> nn.Module:
    with torch.no_grad():
        digital.weight.copy_(analog.weight)
        if analog.bias is not None:
            digital.bias.copy_(analog.bias)
    return digital
