"""The accelerator an offline schedule runs on: processing elements of crossbars.

Defaults are the ARAS accelerator (Sabri, Riera, Gonzalez 2024): 32 nm at 1 GHz, 96
processing elements of 6 x 4 crossbars each, crossbars of 128 x 128 two-bit cells, INT8
weights on 4 cells, 96 cycles per crossbar matrix-vector product (one input vector) and
768,000 cycles to write a crossbar row by row (:data:`xbarsolve.program.cost.ARAS_PULSE_DURATION_S`).

Our assumptions where ARAS gives no figure in our notes (docs/program.md):

* ``write_parallelism`` (crossbars written at the same time): one per processing element.
* ``compute_energy_j`` (one crossbar product): the converters of ISAAC (Shafiee et al.
  2016), 128 columns x 8 input bits conversions of a 6-bit ADC at 1.20 pJ plus 128 rows x
  8 bits of a 1-bit DAC at 0.417 pJ: 1.656 nJ.
* ``static_power_w`` (per crossbar, charged for the whole run): ISAAC's array power per
  crossbar, 2.4 mW / 8 = 0.3 mW.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cells import n_cells
from .cost import WriteParams

__all__ = ["Accelerator", "ISAAC_MVM_ENERGY_J"]

#: ISAAC converter energies per crossbar product: 128 x 8 ADC (6 bit, 1.20 pJ) + 128 x 8 DAC (1 bit, 0.417 pJ).
ISAAC_MVM_ENERGY_J = 128 * 8 * 1.20e-12 + 128 * 8 * 0.417e-12


def _positive_int(name, v):
    if isinstance(v, bool) or int(v) != v or v < 1:
        raise ValueError(f"{name} must be a positive integer; got {v!r}")


@dataclass(frozen=True)
class Accelerator:
    """A resource-limited ReRAM accelerator (SI units; defaults: ARAS, module docstring).

    Parameters
    ----------
    n_pe : int
        Processing elements.
    crossbars_per_pe : int
        Crossbars per processing element.
    rows, cols : int
        Cells of one crossbar.
    bits_per_cell, weight_bits : int
        Cell resolution and weight code width; ``weight_bits / bits_per_cell`` cells
        (side by side in a row) hold one weight.
    compute_cycles : int
        Cycles of one crossbar matrix-vector product.
    clock_hz : float
        Clock frequency (Hz).
    write : WriteParams
        Per-pulse programming model; the time of a full-swing write of a whole crossbar
        is :attr:`write_cycles`.
    write_parallelism : int or None
        Crossbars written at the same time (None: one per processing element).
    compute_energy_j : float
        Energy of one crossbar matrix-vector product (J).
    static_power_w : float
        Background power of one crossbar with its periphery (W), charged for the whole run.
    """

    n_pe: int = 96
    crossbars_per_pe: int = 24
    rows: int = 128
    cols: int = 128
    bits_per_cell: int = 2
    weight_bits: int = 8
    compute_cycles: int = 96
    clock_hz: float = 1e9
    write: WriteParams = WriteParams()
    write_parallelism: int | None = None
    compute_energy_j: float = ISAAC_MVM_ENERGY_J
    static_power_w: float = 0.3e-3

    def __post_init__(self):
        for name in ("n_pe", "crossbars_per_pe", "rows", "cols", "compute_cycles"):
            _positive_int(name, getattr(self, name))
        if self.write_parallelism is not None:
            _positive_int("write_parallelism", self.write_parallelism)
        k = n_cells(self.weight_bits, self.bits_per_cell)
        if self.cols < k:
            raise ValueError(f"cols={self.cols} cannot hold one weight of {k} cells")
        if not self.clock_hz > 0:
            raise ValueError(f"clock_hz must be > 0; got {self.clock_hz!r}")
        for name in ("compute_energy_j", "static_power_w"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}")
        if not isinstance(self.write, WriteParams):
            raise TypeError(f"write must be a WriteParams; got {type(self.write).__name__}")

    @property
    def n_crossbars(self) -> int:
        """Crossbars in the accelerator."""
        return self.n_pe * self.crossbars_per_pe

    @property
    def cells_per_weight(self) -> int:
        return n_cells(self.weight_bits, self.bits_per_cell)

    @property
    def weights_per_row(self) -> int:
        """Weights one crossbar row holds."""
        return self.cols // self.cells_per_weight

    @property
    def parallel_writes(self) -> int:
        """Crossbars written at the same time."""
        return self.n_pe if self.write_parallelism is None else min(self.write_parallelism, self.n_crossbars)

    @property
    def compute_latency_s(self) -> float:
        """One crossbar matrix-vector product (s)."""
        return self.compute_cycles / self.clock_hz

    @property
    def write_cycles(self) -> float:
        """Cycles of a full-swing write of one crossbar: every row, each cell moving by
        the largest level change (ARAS: 768,000)."""
        return self.rows * (2 ** self.bits_per_cell - 1) * self.write.pulse_duration_s * self.clock_hz
