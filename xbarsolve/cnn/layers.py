"""Exact digital layers of a CNN and the graph (:class:`Model`) that chains them.

Tensors are NHWC float64 arrays (batch, height, width, channels), the Keras layout.
Convolution kernels are HWIO ``(kh, kw, cin, cout)``; a convolution is computed as
``im2col(x) @ kernel.reshape(kh*kw*cin, cout)``, which is exactly the matrix product a
crossbar performs on one sliding window (dense mapping, :mod:`xbarsolve.cnn.mapping`).

Padding follows the frameworks exactly:

* Keras ``"valid"``: no padding.
* Keras ``"same"``: output size ``ceil(n / stride)``; the total padding
  ``max((out - 1) * stride + k - n, 0)`` is split with the smaller half *before*
  (so a 3x3 stride-2 convolution of a 32-wide input pads 0 before and 1 after).
* PyTorch ``padding=p``: explicit symmetric ``((p, p), (p, p))``; any explicit
  ``((top, bottom), (left, right))`` pair is accepted.

Linear layers (:class:`LinearLayer`: convolution and dense) are the ones an analog
network maps onto crossbars; everything else (batch-norm, activations, pooling, residual
add) stays exact digital.  A new linear layer type (a 1-D or grouped convolution, say)
subclasses :class:`LinearLayer` and defines its weight matrix and input vectors; the
analog network needs nothing else.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal, Union

import numpy as np

__all__ = [
    "Padding", "same_padding", "resolve_padding", "conv_output_size", "im2col",
    "Layer", "LinearLayer", "Conv2D", "Dense", "BatchNorm", "Activation", "MaxPool2D", "AvgPool2D",
    "GlobalAvgPool2D", "Add", "Flatten", "ShortcutPadA", "Node", "Model",
    "relu", "softmax", "fold_batchnorm",
]

Padding = Union[Literal["same", "valid"], tuple[tuple[int, int], tuple[int, int]]]


def _ro(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def same_padding(n: int, k: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow ``"same"`` padding ``(before, after)`` of one spatial axis.

    Parameters
    ----------
    n, k, stride : int
        Input size, kernel (or pool) size and stride along the axis.
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


def resolve_padding(padding: Padding, in_hw: tuple[int, int], k_hw: tuple[int, int],
                    strides: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Explicit ``((top, bottom), (left, right))`` padding for a Keras or PyTorch spec."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return (same_padding(in_hw[0], k_hw[0], strides[0]), same_padding(in_hw[1], k_hw[1], strides[1]))
    try:
        (t, b), (l, r) = padding
        pads = (int(t), int(b)), (int(l), int(r))
    except (TypeError, ValueError):
        raise ValueError(f"padding must be 'same', 'valid' or ((top, bottom), (left, right)); got {padding!r}") from None
    if min(pads[0] + pads[1]) < 0:
        raise ValueError(f"padding must be >= 0; got {padding!r}")
    return pads


def conv_output_size(n: int, k: int, stride: int, pad: tuple[int, int]) -> int:
    """Output size of a convolution or pooling along one axis."""
    return (n + pad[0] + pad[1] - k) // stride + 1


def im2col(x: np.ndarray, k_hw: tuple[int, int], strides: tuple[int, int],
           pads: tuple[tuple[int, int], tuple[int, int]], pad_value: float = 0.0) -> np.ndarray:
    """Sliding windows of an NHWC tensor, shape (N, Ho, Wo, kh*kw*C), ordered (kh, kw, C).

    The last axis matches ``kernel.reshape(kh*kw*C, cout)`` of an HWIO kernel.
    """
    x = np.asarray(x, dtype=np.float64)
    kh, kw = k_hw
    sh, sw = strides
    (pt, pb), (pl, pr) = pads
    if pt or pb or pl or pr:
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, H', W', C, kh, kw
    win = win[:, ::sh, ::sw]
    N, Ho, Wo, C = win.shape[:4]
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(N, Ho, Wo, kh * kw * C)


def relu(x: np.ndarray) -> np.ndarray:
    """Rectified linear unit."""
    return np.maximum(x, 0.0)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (numerically stable)."""
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Layer:
    """Base of all layers: ``forward(*inputs)`` maps NHWC (or (N, F)) arrays to an array."""

    #: True for the :class:`LinearLayer` s (mapped to crossbars in an analog network).
    is_linear_layer: ClassVar[bool] = False

    def forward(self, *inputs: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class LinearLayer(Layer, abc.ABC):
    """A layer that is one matrix product per input vector, plus a digital bias:
    ``finish(patches(x) @ weight_matrix)``.  The analog network puts :attr:`weight_matrix`
    on crossbars and feeds them the vectors of :meth:`patches`.

    Subclasses define :attr:`weight_matrix` and :meth:`patches`, hold the bias as
    ``bias`` (array of the output count, or None), and may override :meth:`unrolled`
    (the sparse mapping).
    """

    is_linear_layer: ClassVar[bool] = True
    bias: np.ndarray | None = None

    @property
    @abc.abstractmethod
    def weight_matrix(self) -> np.ndarray:
        """The (rows, outputs) matrix that one input vector multiplies."""

    @abc.abstractmethod
    def patches(self, x: np.ndarray) -> np.ndarray:
        """The input vectors of a batch ``x``, shape (N, *grid, rows): one per output
        position of the grid (sliding windows of a convolution, ``grid == ()`` for a dense
        layer)."""

    def finish(self, y: np.ndarray) -> np.ndarray:
        """The layer output from the products ``y`` (N, *grid, outputs): adds the bias."""
        return y if self.bias is None else y + self.bias

    def unrolled(self, input_shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
        """The layer as one matrix over a whole flattened input sample of shape
        ``input_shape`` (the *sparse* mapping), and the output grid its columns fill.

        The default, ``(weight_matrix, ())``, holds for layers whose only vector is the
        sample itself (dense layers); a layer with a grid of vectors must override it.

        Raises
        ------
        NotImplementedError
            For a layer with more than one vector per sample that does not override it.
        """
        grid = self.patches(np.zeros((1, *input_shape))).shape[1:-1]
        if grid:
            raise NotImplementedError(f"{type(self).__name__} has {grid} vectors per sample and defines no unrolled "
                                      "matrix, so it has no sparse mapping; use conv_mapping='dense'")
        return self.weight_matrix, ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.finish(self.patches(x) @ self.weight_matrix)


@dataclass(frozen=True, eq=False)
class Conv2D(LinearLayer):
    """2-D convolution (cross-correlation, as in Keras and PyTorch).

    Parameters
    ----------
    kernel : array_like, shape (kh, kw, cin, cout)
        HWIO weights.
    bias : array_like, shape (cout,) or None
        Added digitally after the matrix product.
    strides : (int, int)
    padding : "same", "valid" or ((top, bottom), (left, right))
    """

    kernel: np.ndarray
    bias: np.ndarray | None = None
    strides: tuple[int, int] = (1, 1)
    padding: Padding = "valid"

    def __post_init__(self):
        k = _ro(self.kernel)
        if k.ndim != 4:
            raise ValueError(f"Conv2D kernel must have shape (kh, kw, cin, cout); got {k.shape}")
        object.__setattr__(self, "kernel", k)
        if self.bias is not None:
            b = _ro(self.bias)
            if b.shape != (k.shape[3],):
                raise ValueError(f"Conv2D bias must have shape ({k.shape[3]},); got {b.shape}")
            object.__setattr__(self, "bias", b)
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        if isinstance(self.padding, str) and self.padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same', 'valid' or explicit pairs; got {self.padding!r}")

    @property
    def weight_matrix(self) -> np.ndarray:
        """The (kh*kw*cin, cout) matrix of the dense mapping."""
        kh, kw, ci, co = self.kernel.shape
        return self.kernel.reshape(kh * kw * ci, co)

    def pads(self, in_hw: tuple[int, int]):
        """Explicit padding for an input of spatial size ``in_hw``."""
        return resolve_padding(self.padding, in_hw, self.kernel.shape[:2], self.strides)

    def patches(self, x: np.ndarray) -> np.ndarray:
        """Sliding windows (N, Ho, Wo, kh*kw*cin): the crossbar input vectors."""
        return im2col(x, self.kernel.shape[:2], self.strides, self.pads(x.shape[1:3]))

    def unrolled(self, input_shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
        """The Toeplitz matrix of the convolution of one (H, W, cin) input
        (:func:`xbarsolve.cnn.mapping.toeplitz_matrix`) and the output grid (Ho, Wo)."""
        from .mapping import toeplitz_matrix

        pads = self.pads(tuple(input_shape[:2]))
        grid = tuple(conv_output_size(input_shape[a], self.kernel.shape[a], self.strides[a], pads[a]) for a in (0, 1))
        return toeplitz_matrix(self.kernel, tuple(input_shape), self.strides, self.padding), grid


@dataclass(frozen=True, eq=False)
class Dense(LinearLayer):
    """Fully connected layer ``y = x @ kernel + bias`` on (N, F) inputs.

    Parameters
    ----------
    kernel : array_like, shape (F, units)
    bias : array_like, shape (units,) or None
    """

    kernel: np.ndarray
    bias: np.ndarray | None = None

    def __post_init__(self):
        k = _ro(self.kernel)
        if k.ndim != 2:
            raise ValueError(f"Dense kernel must have shape (in, units); got {k.shape}")
        object.__setattr__(self, "kernel", k)
        if self.bias is not None:
            object.__setattr__(self, "bias", _ro(self.bias))

    @property
    def weight_matrix(self) -> np.ndarray:
        return self.kernel

    def patches(self, x: np.ndarray) -> np.ndarray:
        """The inputs themselves, (N, F): one vector per sample."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.kernel.shape[0]:
            raise ValueError(f"Dense expects (N, {self.kernel.shape[0]}) inputs; got {x.shape}")
        return x


@dataclass(frozen=True, eq=False)
class BatchNorm(Layer):
    """Inference batch normalization over the last axis: ``gamma (x - mean)/sqrt(var + eps) + beta``."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-3

    def __post_init__(self):
        for name in ("gamma", "beta", "mean", "var"):
            object.__setattr__(self, name, _ro(getattr(self, name)))

    @property
    def scale(self) -> np.ndarray:
        return self.gamma / np.sqrt(self.var + self.eps)

    @property
    def shift(self) -> np.ndarray:
        return self.beta - self.mean * self.scale

    def forward(self, x):
        return (x - self.mean) * self.scale + self.beta


@dataclass(frozen=True, eq=False)
class Activation(Layer):
    """Elementwise activation: ``"relu"``, ``"softmax"`` (last axis) or ``"linear"``."""

    kind: Literal["relu", "softmax", "linear"] = "relu"

    def __post_init__(self):
        if self.kind not in ("relu", "softmax", "linear"):
            raise ValueError(f"unsupported activation {self.kind!r}; supported: relu, softmax, linear")

    def forward(self, x):
        if self.kind == "relu":
            return relu(x)
        if self.kind == "softmax":
            return softmax(x)
        return x


@dataclass(frozen=True, eq=False)
class _Pool2D(Layer):
    pool: tuple[int, int] = (2, 2)
    strides: tuple[int, int] | None = None
    padding: Padding = "valid"

    def _windows(self, x, fill):
        strides = tuple(self.strides or self.pool)
        pads = resolve_padding(self.padding, x.shape[1:3], self.pool, strides)
        win = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=fill) if any(pads[0] + pads[1]) else x
        win = np.lib.stride_tricks.sliding_window_view(win, tuple(self.pool), axis=(1, 2))[:, ::strides[0], ::strides[1]]
        return win, pads, strides


@dataclass(frozen=True, eq=False)
class MaxPool2D(_Pool2D):
    """Max pooling (padding, if any, never wins)."""

    def forward(self, x):
        win, _, _ = self._windows(x, -np.inf)
        return win.max(axis=(4, 5))


@dataclass(frozen=True, eq=False)
class AvgPool2D(_Pool2D):
    """Average pooling; with ``"same"`` padding the padded cells are not counted (Keras)."""

    def forward(self, x):
        win, pads, strides = self._windows(x, 0.0)
        s = win.sum(axis=(4, 5))
        if not any(pads[0] + pads[1]):
            return s / (self.pool[0] * self.pool[1])
        ones = np.ones((1,) + x.shape[1:3] + (1,))
        cnt, _, _ = self._windows(ones, 0.0)
        return s / cnt.sum(axis=(4, 5))


@dataclass(frozen=True, eq=False)
class GlobalAvgPool2D(Layer):
    """Mean over the spatial axes: (N, H, W, C) -> (N, C)."""

    def forward(self, x):
        return x.mean(axis=(1, 2))


@dataclass(frozen=True, eq=False)
class Add(Layer):
    """Residual addition of two or more tensors."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


@dataclass(frozen=True, eq=False)
class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C) in NHWC (Keras ``channels_last``) order."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


@dataclass(frozen=True, eq=False)
class ShortcutPadA(Layer):
    """PyTorch CIFAR ResNet "option A" shortcut: subsample by 2 and zero-pad channels.

    ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`` in NCHW.
    """

    pad_channels: int = 0

    def forward(self, x):
        y = x[:, ::2, ::2, :]
        p = self.pad_channels
        return np.pad(y, ((0, 0), (0, 0), (0, 0), (p, p)))


@dataclass(frozen=True)
class Node:
    """One layer in a :class:`Model` graph, fed by the outputs of the named nodes
    (``inputs == ()`` means the model input)."""

    name: str
    layer: Layer
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Model:
    """A feed-forward CNN as a topologically ordered graph of :class:`Node`.

    Parameters
    ----------
    nodes : tuple of Node
        In execution order; the last node is the output.
    input_shape : tuple of int
        Shape of one input sample (e.g. ``(32, 32, 3)``).
    name : str
    preprocess : dict
        How raw data become the model input (documentation for loaders, e.g.
        ``{"scale": 1/255, "mean": ...}``); not applied by :meth:`forward`.
    """

    nodes: tuple[Node, ...]
    input_shape: tuple[int, ...]
    name: str = "model"
    preprocess: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "nodes", tuple(self.nodes))
        seen: set[str] = set()
        for nd in self.nodes:
            if nd.name in seen:
                raise ValueError(f"duplicate node name {nd.name!r}")
            for src in nd.inputs:
                if src not in seen:
                    raise ValueError(f"node {nd.name!r} reads {src!r}, which is not an earlier node")
            seen.add(nd.name)

    @property
    def linear_nodes(self) -> tuple[Node, ...]:
        """The convolution and dense nodes (the ones mapped onto crossbars)."""
        return tuple(nd for nd in self.nodes if isinstance(nd.layer, LinearLayer))

    @property
    def logits_node(self) -> str:
        """Name of the node whose output is the logits (the output, minus a final softmax)."""
        last = self.nodes[-1]
        if isinstance(last.layer, Activation) and last.layer.kind == "softmax":
            return last.inputs[0]
        return last.name

    def node(self, name: str) -> Node:
        for nd in self.nodes:
            if nd.name == name:
                return nd
        raise KeyError(f"no node named {name!r} in model {self.name!r}")

    def forward(self, x: np.ndarray, *, linear=None, keep: bool = False) -> dict[str, np.ndarray] | np.ndarray:
        """Run the model.

        Parameters
        ----------
        x : ndarray, shape (N, *input_shape)
        linear : callable or None
            ``linear(node, x) -> y`` replaces the exact computation of every convolution
            and dense node (the analog network passes its crossbar evaluation here).
        keep : bool
            Return every node's output as a dict (plus ``"input"``) instead of the output.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1:] != tuple(self.input_shape):
            raise ValueError(f"model {self.name!r} expects inputs of shape (N, {', '.join(map(str, self.input_shape))}); got {x.shape}")
        acts: dict[str, np.ndarray] = {"input": x}
        consumers: dict[str, int] = {}
        for nd in self.nodes:
            for s in nd.inputs or ("input",):
                consumers[s] = consumers.get(s, 0) + 1
        for nd in self.nodes:
            args = [acts[s] for s in (nd.inputs or ("input",))]
            if linear is not None and isinstance(nd.layer, LinearLayer):
                y = linear(nd, args[0])
            else:
                y = nd.layer.forward(*args)
            acts[nd.name] = y
            if not keep:
                for s in nd.inputs or ("input",):
                    consumers[s] -= 1
                    if consumers[s] == 0 and s != self.logits_node:
                        del acts[s]
        return acts if keep else acts[self.nodes[-1].name]

    def logits(self, x: np.ndarray, *, linear=None) -> np.ndarray:
        """Pre-softmax output of the model."""
        return self.forward(x, linear=linear, keep=True)[self.logits_node]

    def predict(self, x: np.ndarray, batch_size: int = 100, *, linear=None) -> np.ndarray:
        """Predicted class indices, computed in batches."""
        out = [np.argmax(self.logits(x[i:i + batch_size], linear=linear), axis=-1) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=int)


def fold_batchnorm(model: Model) -> Model:
    """Fold every batch-norm that directly follows a convolution or dense layer (and is
    that layer's only consumer) into its weights and bias.  Exact up to round-off."""
    consumers: dict[str, list[str]] = {}
    for nd in model.nodes:
        for s in nd.inputs:
            consumers.setdefault(s, []).append(nd.name)
    by_name = {nd.name: nd for nd in model.nodes}
    fold: dict[str, str] = {}  # bn name -> linear name
    for nd in model.nodes:
        if isinstance(nd.layer, BatchNorm) and len(nd.inputs) == 1:
            src = by_name[nd.inputs[0]]
            if isinstance(src.layer, (Conv2D, Dense)) and consumers.get(src.name) == [nd.name]:
                fold[nd.name] = src.name
    new_layers: dict[str, Layer] = {}
    for bn_name, lin_name in fold.items():
        bn, lin = by_name[bn_name].layer, by_name[lin_name].layer
        b = np.zeros(lin.kernel.shape[-1]) if lin.bias is None else lin.bias
        new_layers[lin_name] = replace(lin, kernel=lin.kernel * bn.scale, bias=b * bn.scale + bn.shift)
    rename = {bn: lin for bn, lin in fold.items()}
    nodes = []
    for nd in model.nodes:
        if nd.name in fold:
            continue
        ins = tuple(rename.get(s, s) for s in nd.inputs)
        nodes.append(Node(nd.name, new_layers.get(nd.name, nd.layer), ins))
    return replace(model, nodes=tuple(nodes), name=model.name + "-folded")
