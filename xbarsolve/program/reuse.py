"""Partial weight reuse (ARAS, Sabri, Riera, Gonzalez 2024): re-encode each layer's
weight codes so that consecutive layers look alike in their most significant cells.

When a layer overwrites another on a crossbar, a cell costs pulses in proportion to its
level change.  Trained weights cluster around a centre, so if every layer's codes are
shifted to one *common* centre ``c`` the most significant cell (the two most significant
bits of an INT8 code on 2-bit cells) of most weights equals that of ``c`` in every layer,
and those cells keep their level across rewrites.

* A layer's centre is the median of its codes (:func:`layer_centre`); the shift is
  ``s = c - centre``; shifted codes are clipped to ``0 .. 2**bits - 1`` (the only loss).
* The first layer is not shifted (nothing is overwritten before it).
* De-quantization undoes the shift: ``W = lo + (code - s) * step``
  (:attr:`xbarsolve.program.network.MappedLayer.weights`), exact where nothing was clipped.
* ARAS's six candidate centres are :data:`ARAS_CENTRES`; each lies inside one band of the
  most significant cell (64..127 or 128..191), away from the band edges; the scheduler
  picks the one that costs the fewest pulses (:func:`xbarsolve.program.schedule.compare`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .network import MappedLayer, MappedNetwork

__all__ = ["ARAS_CENTRES", "layer_centre", "reencode_layer", "reencode", "n_clipped"]

#: ARAS's candidate common centres (codes of 0..255).
ARAS_CENTRES = (88, 104, 96, 160, 152, 168)


def layer_centre(codes: np.ndarray) -> int:
    """Centre of a layer's codes: their median, rounded down to an integer."""
    return int(np.floor(np.median(np.asarray(codes))))


def reencode_layer(layer: MappedLayer, centre: int, weight_bits: int = 8) -> MappedLayer:
    """Shift ``layer``'s codes so that their centre moves to ``centre`` (clipped to the
    code range); the returned layer's ``shift`` undoes it in de-quantization."""
    top = 2 ** int(weight_bits) - 1
    if isinstance(centre, bool) or int(centre) != centre or not 0 <= centre <= top:
        raise ValueError(f"centre must be an integer code in 0..{top}; got {centre!r}")
    base = layer.codes - layer.shift  # re-encoding twice starts from the original codes
    s = int(centre) - layer_centre(base)
    return replace(layer, codes=np.clip(base + s, 0, top), shift=s)


def reencode(network: MappedNetwork, centre: int, weight_bits: int = 8) -> MappedNetwork:
    """Every layer but the first shifted to the common ``centre``."""
    first, *rest = network.layers
    return replace(network, layers=(first, *(reencode_layer(L, centre, weight_bits) for L in rest)),
                   name=f"{network.name}@{int(centre)}")


def n_clipped(original: MappedNetwork, reencoded: MappedNetwork) -> int:
    """Weights whose code the re-encoding clipped (their de-quantized value changed)."""
    return int(sum(np.count_nonzero(a.codes - a.shift != b.codes - b.shift) for a, b in zip(original.layers, reencoded.layers)))
