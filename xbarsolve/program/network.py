"""A network as the accelerator sees it: per linear layer, its integer weight codes and
how many input vectors (sliding windows) one image sends through them.

:func:`map_model` builds it from a :class:`xbarsolve.cnn.layers.Model` (every
convolution and dense node in execution order; a convolution's dense im2col matrix
``(kh*kw*cin, cout)`` has one input vector per output pixel, a dense layer one per
image).  Each layer is quantized to ``weight_bits`` codes over its own weight range.
:meth:`MappedLayer.tiles` splits a layer into crossbar-sized tiles, each weight taking
``cells_per_weight`` adjacent cells of a row (:func:`xbarsolve.program.cells.cell_matrix`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .accelerator import Accelerator
from .cells import cell_matrix, code_weights, weight_codes

__all__ = ["MappedLayer", "MappedNetwork", "map_model", "with_weights"]


@dataclass(frozen=True, eq=False)
class MappedLayer:
    """One linear layer on crossbars.

    Parameters
    ----------
    name : str
    codes : ndarray of int, shape (rows, outputs)
        Weight codes ``0 .. 2**weight_bits - 1`` of the layer's matrix.
    windows : int
        Input vectors per image (output pixels of a convolution; 1 for a dense layer).
    lo, step : float
        De-quantization ``W = lo + (codes - shift) * step``.
    shift : int
        Code shift of a re-encoding (:mod:`xbarsolve.program.reuse`); 0 when none.
    kernel_shape : tuple of int or None
        Shape of the original kernel (HWIO for a convolution), to rebuild it.
    """

    name: str
    codes: np.ndarray
    windows: int
    lo: float = 0.0
    step: float = 1.0
    shift: int = 0
    kernel_shape: tuple[int, ...] | None = None

    def __post_init__(self):
        c = np.asarray(self.codes)
        if c.ndim != 2 or c.size == 0:
            raise ValueError(f"layer {self.name!r}: codes must be a non-empty 2-D matrix; got shape {c.shape}")
        if not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"layer {self.name!r}: codes must be integers; got dtype {c.dtype}")
        if c.min() < 0:
            raise ValueError(f"layer {self.name!r}: codes must be >= 0; got {c.min()}")
        c = np.array(c, dtype=np.int64)
        c.setflags(write=False)
        object.__setattr__(self, "codes", c)
        if isinstance(self.windows, bool) or int(self.windows) != self.windows or self.windows < 1:
            raise ValueError(f"layer {self.name!r}: windows must be a positive integer; got {self.windows!r}")
        object.__setattr__(self, "windows", int(self.windows))

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    @property
    def weights(self) -> np.ndarray:
        """De-quantized weights of the codes, shift undone."""
        return code_weights(self.codes, self.lo, self.step, self.shift)

    def tiles(self, acc: Accelerator) -> list[tuple[slice, slice]]:
        """(row slice, output slice) of each crossbar tile (row tiles of one output block
        are summed digitally)."""
        from ..cnn.mapping import tile_slices

        return tile_slices(self.shape[0], self.shape[1], acc.rows, acc.cols, acc.cells_per_weight)

    def tile_levels(self, acc: Accelerator) -> list[np.ndarray]:
        """Cell levels of each tile, shape (tile rows, tile outputs * cells_per_weight)."""
        top = 2 ** acc.weight_bits - 1
        if self.codes.max() > top:
            raise ValueError(f"layer {self.name!r}: codes up to {self.codes.max()} exceed {acc.weight_bits}-bit weights")
        return [cell_matrix(self.codes[rs, cs], acc.bits_per_cell, acc.cells_per_weight) for rs, cs in self.tiles(acc)]


@dataclass(frozen=True, eq=False)
class MappedNetwork:
    """The linear layers of a network, in execution order (``folded``: batch-norm folded
    into the weights first, :func:`map_model`)."""

    name: str
    layers: tuple[MappedLayer, ...]
    folded: bool = False

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError("a network needs at least one layer")

    @property
    def n_weights(self) -> int:
        return int(sum(L.codes.size for L in self.layers))

    def n_tiles(self, acc: Accelerator) -> int:
        """Crossbars needed to hold the whole network at once."""
        return sum(len(L.tiles(acc)) for L in self.layers)


def map_model(model, weight_bits: int = 8, *, fold_bn: bool = True) -> MappedNetwork:
    """The :class:`MappedNetwork` of a :class:`xbarsolve.cnn.layers.Model`.

    Parameters
    ----------
    model : xbarsolve.cnn.layers.Model
    weight_bits : int
        Code width of every layer (per-layer range).
    fold_bn : bool
        Fold every batch-norm that follows a convolution into its weights and bias first
        (:func:`xbarsolve.cnn.layers.fold_batchnorm`), as a deployed network stores them.
        Quantizing the raw kernels instead lets a batch-norm of tiny variance amplify
        the rounding error of its channel (INT8 ResNet-56 drops to chance accuracy).

    Window counts come from one forward pass of a zero image (shapes only).
    """
    from ..cnn.layers import Conv2D, fold_batchnorm

    if fold_bn:
        model = fold_batchnorm(model)

    windows: dict[str, int] = {}

    def record(node, x):
        layer = node.layer
        if isinstance(layer, Conv2D):
            windows[node.name] = int(np.prod(layer.patches(x[:1]).shape[1:3]))
        else:
            windows[node.name] = 1
        return layer.forward(x)

    model.forward(np.zeros((1, *model.input_shape)), linear=record)
    layers = []
    for nd in model.linear_nodes:
        W = nd.layer.weight_matrix
        codes, lo, step = weight_codes(W, weight_bits)
        layers.append(MappedLayer(nd.name, codes, windows[nd.name], lo, step, 0, tuple(nd.layer.kernel.shape)))
    return MappedNetwork(model.name, tuple(layers), folded=bool(fold_bn))


def with_weights(model, network: MappedNetwork):
    """A copy of ``model`` whose convolution and dense kernels are the de-quantized codes
    of ``network`` (:attr:`MappedLayer.weights`, re-encoding shift undone; biases and
    every other layer unchanged).  With :func:`map_model`'s network this is the model
    with INT8 weights; with a re-encoded one, the weights partial reuse actually stores.
    A network built with batch-norm folded is put into the folded model.
    """
    from dataclasses import replace

    from ..cnn.layers import Model, fold_batchnorm

    if not isinstance(model, Model):
        raise TypeError(f"model must be an xbarsolve.cnn Model; got {type(model).__name__}")
    if network.folded:
        model = fold_batchnorm(model)
    by_name = {L.name: L for L in network.layers}
    nodes = []
    for nd in model.nodes:
        L = by_name.get(nd.name)
        if nd.layer.is_linear_layer and L is not None:
            shape = nd.layer.kernel.shape
            if L.shape != nd.layer.weight_matrix.shape:
                raise ValueError(f"layer {nd.name!r}: network codes {L.shape} do not match the model's matrix "
                                 f"{nd.layer.weight_matrix.shape}")
            nd = replace(nd, layer=replace(nd.layer, kernel=L.weights.reshape(shape)))
        nodes.append(nd)
    missing = set(by_name) - {nd.name for nd in model.linear_nodes}
    if missing:
        raise ValueError(f"network layers {sorted(missing)} are not linear nodes of model {model.name!r}")
    return replace(model, nodes=tuple(nodes), name=f"{model.name}[{network.name}]")
