"""PyTorch models on simulated crossbars: :func:`convert` any ``nn.Module``, run it, train
through the exact circuit, and :func:`to_digital` back.

Every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` becomes an analog layer
(:class:`AnalogLinear`, :class:`AnalogConv1d`, :class:`AnalogConv2d`) that runs its matrix
product through the NumPy engine's mapping, tiling, conversion, calibration and converters
(:class:`xbarsolve.cnn.network.AnalogMatrix`), with exact gradients through the circuit.
See ``docs/torch.md``.  Needs PyTorch (``pip install 'xbarsolve[torch]'``).
"""

from __future__ import annotations

from .convert import SUPPORTED, convert, needs_calibration_data, to_digital
from .modules import AnalogConv1d, AnalogConv2d, AnalogLinear, AnalogModule

__all__ = ["convert", "to_digital", "needs_calibration_data", "SUPPORTED", "AnalogModule", "AnalogLinear",
           "AnalogConv1d", "AnalogConv2d"]
