"""The mapping overhead of one convolution layer: Zhang & Hu's Table 2 rule.

One crossbar holds the whole layer: dense (im2col) mapping ``(kh kw cin) x cout``, sparse
(Toeplitz) mapping ``(H W cin) x (Ho Wo cout)``.  Every row has its own DAC, one ADC
serves ``table.adc_columns_count`` columns, the crossbar's read power and area scale with
its cells, and the totals add the converters' static power and area (Zhang & Hu 2022,
Table 2: "adopted from ISAAC; DAC scaled exponentially to 8 bit; area and power of
crossbar, ADC and DAC scaled proportionally").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .tables import ISAAC, CostTable

__all__ = ["LayerOverhead", "layer_overhead", "mapped_shape"]

Mapping = Literal["dense", "sparse"]


@dataclass(frozen=True)
class LayerOverhead:
    """Crossbar, converter and total power (mW) and area (mm^2) of one mapped layer."""

    mapping: Mapping
    crossbar_shape: tuple[int, int]
    crossbar_power_mW: float
    crossbar_area_mm2: float
    n_adc: int
    n_dac: int
    adc_power_mW: float
    dac_power_mW: float
    adc_area_mm2: float
    dac_area_mm2: float

    @property
    def total_power_mW(self) -> float:
        """Crossbar, ADCs and DACs (mW)."""
        return self.crossbar_power_mW + self.adc_power_mW + self.dac_power_mW

    @property
    def total_area_mm2(self) -> float:
        """Crossbar, ADCs and DACs (mm^2)."""
        return self.crossbar_area_mm2 + self.adc_area_mm2 + self.dac_area_mm2


def _shape4(kernel_shape) -> tuple[int, int, int, int]:
    k = tuple(int(v) for v in kernel_shape)
    if len(k) != 4 or min(k) < 1:
        raise ValueError(f"kernel_shape must be (kh, kw, cin, cout) with every entry >= 1; got {kernel_shape!r}")
    return k


def mapped_shape(kernel_shape, input_shape, mapping: Mapping = "dense", strides=(1, 1), padding="valid") -> tuple[int, int]:
    """Crossbar (rows, columns) of a convolution under the dense or sparse mapping.

    The sparse shape is that of :func:`xbarsolve.cnn.toeplitz_matrix` (computed without
    building the matrix).

    Parameters
    ----------
    kernel_shape : (kh, kw, cin, cout)
    input_shape : (H, W, cin)
    mapping : {"dense", "sparse"}
    strides, padding : as :class:`xbarsolve.cnn.layers.Conv2D`
    """
    from ..cnn.layers import conv_output_size, resolve_padding

    kh, kw, ci, co = _shape4(kernel_shape)
    if mapping == "dense":
        return kh * kw * ci, co
    if mapping != "sparse":
        raise ValueError(f"mapping must be 'dense' or 'sparse'; got {mapping!r}")
    H, W, C = (int(v) for v in input_shape)
    if C != ci:
        raise ValueError(f"input_shape {tuple(input_shape)} has {C} channels; the kernel expects {ci}")
    pads = resolve_padding(padding, (H, W), (kh, kw), tuple(strides))
    Ho, Wo = (conv_output_size((H, W)[a], (kh, kw)[a], strides[a], pads[a]) for a in (0, 1))
    if Ho < 1 or Wo < 1:
        raise ValueError(f"a {kh}x{kw} kernel leaves no output on a {H}x{W} input with padding {padding!r}")
    return H * W * C, Ho * Wo * co


def layer_overhead(kernel_shape, input_shape, mapping: Mapping = "dense", table: CostTable = ISAAC, *,
                   dac_bits: int = 8, adc_bits: int = 8, strides=(1, 1), padding="valid") -> LayerOverhead:
    """Power and area of one convolution layer on one crossbar (Zhang & Hu's Table 2 rule).

    Parameters
    ----------
    kernel_shape : (kh, kw, cin, cout)
        HWIO kernel.
    input_shape : (H, W, cin)
        HWC input.
    mapping : {"dense", "sparse"}
        im2col or Toeplitz mapping.
    table : CostTable
        Figures: ``cell_read_power_mW``, ``cell_area_um2``, ``array_area_um2``, the ADC and
        DAC at ``adc_bits`` / ``dac_bits`` by the table's rules, ``adc_columns_count``.
    dac_bits, adc_bits : int
        Converter resolutions (paper: 8).
    strides, padding
        Of the convolution (the paper's sparse shapes are 'valid' stride-1 convolutions).

    Examples
    --------
    >>> from xbarsolve.cost import layer_overhead, ZHANG_HU_TABLE2
    >>> o = layer_overhead((3, 3, 64, 64), (8, 8, 64), "sparse", ZHANG_HU_TABLE2)
    >>> o.crossbar_shape, o.n_adc, o.n_dac, round(o.total_power_mW, 1)
    ((4096, 2304), 18, 4096, 5514.4)
    """
    rows, cols = mapped_shape(kernel_shape, input_shape, mapping, strides, padding)
    adc, dac = table.adc(adc_bits), table.dac(dac_bits)
    n_adc = math.ceil(cols / table.adc_columns_count)
    n_dac = rows
    return LayerOverhead(
        mapping=mapping,
        crossbar_shape=(rows, cols),
        crossbar_power_mW=rows * cols * table.cell_read_power_mW,
        crossbar_area_mm2=(rows * cols * table.cell_area_um2 + table.array_area_um2) * 1e-6,
        n_adc=n_adc,
        n_dac=n_dac,
        adc_power_mW=n_adc * adc.power_mW,
        dac_power_mW=n_dac * dac.power_mW,
        adc_area_mm2=n_adc * adc.area_um2 * 1e-6,
        dac_area_mm2=n_dac * dac.area_um2 * 1e-6,
    )
