"""CNNs on simulated crossbars: mapping, exact digital layers, converters, model and data
loaders, and the analog network with per-layer error propagation.

>>> from xbarsolve.cnn import AnalogConfig, AnalogNetwork, mnist_cnn4   # doctest: +SKIP

Submodules: :mod:`~xbarsolve.cnn.layers` (digital layers, :class:`Model`),
:mod:`~xbarsolve.cnn.config` (:class:`AnalogConfig` and its parts),
:mod:`~xbarsolve.cnn.mapping` (dense/sparse, shift/differential, tiling),
:mod:`~xbarsolve.cnn.quantization` (DAC/ADC), :mod:`~xbarsolve.cnn.models` (Keras HDF5,
PyTorch, the shipped MNIST CNN), :mod:`~xbarsolve.cnn.datasets` (MNIST, CIFAR-10),
:mod:`~xbarsolve.cnn.network` (the analog network), :mod:`~xbarsolve.cnn.plotting`.
"""

from __future__ import annotations

from .config import CircuitConfig, CompensationConfig, ConverterConfig, MappingConfig, NoiseConfig
from .datasets import cifar10_keras_input, data_dir, load_cifar10, load_mnist, mnist_input
from .layers import LinearLayer, Model, Node, fold_batchnorm
from .mapping import G_MAX, G_MIN, MappedMatrix, map_weights, quantize_weights, tile_slices, toeplitz_matrix
from .models import load_keras_h5, load_torch_resnet, mnist_cnn4
from .network import AnalogConfig, AnalogNetwork, ErrorReport, LayerError, ProgrammedCrossbar, default_crossbar_factory
from .quantization import Quantizer, quantize

__all__ = [
    "AnalogConfig", "CircuitConfig", "MappingConfig", "ConverterConfig", "CompensationConfig", "NoiseConfig",
    "AnalogNetwork", "ErrorReport", "LayerError", "ProgrammedCrossbar", "default_crossbar_factory",
    "LinearLayer", "Model", "Node", "fold_batchnorm", "G_MIN", "G_MAX", "MappedMatrix", "map_weights", "quantize_weights", "tile_slices",
    "toeplitz_matrix", "load_keras_h5", "load_torch_resnet", "mnist_cnn4", "data_dir", "load_mnist",
    "load_cifar10", "mnist_input", "cifar10_keras_input", "Quantizer", "quantize",
]
