"""Peripheral cost tables: energy, power, area and timing of converters, cells and digital
units, with the unit in every field's name.

A :class:`CostTable` holds figures at a reference resolution for each converter and a
rule for other resolutions (:func:`scale`):

- ``"exponential"``: ``x(b) = x_ref * 2**(b - b_ref)`` (a DAC's or a flash ADC's
  resistor/comparator count doubles per bit; Zhang & Hu scale ISAAC's 1-bit DAC this way);
- ``"linear"``: ``x(b) = x_ref * b / b_ref`` (a SAR ADC's cycles per conversion grow
  with the bits);
- ``"constant"``: ``x(b) = x_ref``.

Built in: :data:`ISAAC` (Shafiee et al., ISCA 2016, 32 nm) and :data:`ZHANG_HU_TABLE2`
(ISAAC as Zhang & Hu's Table 2 applies it).  Load your own with :func:`load_table`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["CostTable", "Converter", "ISAAC", "ZHANG_HU_TABLE2", "load_table", "scale", "UNIT_SUFFIXES"]

Rule = Literal["exponential", "linear", "constant"]
_RULES = ("exponential", "linear", "constant")

#: Unit suffixes a numeric field (and a JSON key) must end with.
UNIT_SUFFIXES = ("_pJ", "_mW", "_um2", "_ns", "_bits", "_count")
#: Keys without a unit: text fields.
_TEXT_FIELDS = ("name", "source", "adc_rule", "dac_rule")


def scale(value: float, bits: int, ref_bits: int, rule: Rule) -> float:
    """A converter figure at ``bits`` from its value at ``ref_bits`` by ``rule`` (see the
    module docstring)."""
    if rule == "exponential":
        return value * 2.0 ** (bits - ref_bits)
    if rule == "linear":
        return value * bits / ref_bits
    if rule == "constant":
        return value
    raise ValueError(f"rule must be one of {_RULES}; got {rule!r}")


@dataclass(frozen=True)
class Converter:
    """One converter at a given resolution: energy per conversion, static power, area."""

    bits: int
    energy_pJ: float
    power_mW: float
    area_um2: float


@dataclass(frozen=True)
class CostTable:
    """Energy, power, area and timing figures of a crossbar accelerator.

    Parameters
    ----------
    name, source : str
        What the table is and where its figures come from.
    cell_area_um2 : float
        Area of one crossbar cell (um^2).
    cell_read_power_mW : float
        Static read power per cell (mW), used by Table 2-style estimates
        (:func:`~xbarsolve.cost.layer_overhead`); :func:`~xbarsolve.cost.network_cost`
        computes the read power of the actual circuit instead.
    array_area_um2 : float
        Area per crossbar beyond its cells (um^2).
    adc_ref_bits, adc_energy_pJ, adc_power_mW, adc_area_um2, adc_rule
        ADC at its reference resolution: energy per conversion (pJ), power (mW), area
        (um^2) and the rule for other resolutions.
    adc_columns_count : int
        Analog outputs one ADC converts per read cycle (time multiplexed).
    dac_ref_bits, dac_energy_pJ, dac_power_mW, dac_area_um2, dac_rule
        DAC (one per crossbar row), likewise.
    sample_hold_energy_pJ, sample_hold_power_mW, sample_hold_area_um2 : float
        Sample-and-hold per analog output (pJ per sample, mW, um^2).
    shift_add_energy_pJ, shift_add_power_mW, shift_add_area_um2 : float
        Shift-and-add unit (pJ per operation, mW, um^2).
    adcs_per_shift_add_count : int
        ADCs served by one shift-and-add unit.
    buffer_energy_pJ : float
        Energy of one buffer (eDRAM) access (pJ).
    buffer_access_bits : int
        Bits moved per buffer access.
    read_cycle_ns : float
        Duration of one crossbar read (ns): the clock of the analog array.
    """

    name: str
    source: str
    cell_area_um2: float
    cell_read_power_mW: float
    array_area_um2: float
    adc_ref_bits: int
    adc_energy_pJ: float
    adc_power_mW: float
    adc_area_um2: float
    adc_rule: Rule
    adc_columns_count: int
    dac_ref_bits: int
    dac_energy_pJ: float
    dac_power_mW: float
    dac_area_um2: float
    dac_rule: Rule
    sample_hold_energy_pJ: float
    sample_hold_power_mW: float
    sample_hold_area_um2: float
    shift_add_energy_pJ: float
    shift_add_power_mW: float
    shift_add_area_um2: float
    adcs_per_shift_add_count: int
    buffer_energy_pJ: float
    buffer_access_bits: int
    read_cycle_ns: float

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("name", "source"):
                if not isinstance(v, str):
                    raise TypeError(f"{f.name} must be a string; got {v!r}")
            elif f.name.endswith("_rule"):
                if v not in _RULES:
                    raise ValueError(f"{f.name} must be one of {_RULES}; got {v!r}")
            elif f.name.endswith(("_bits", "_count")):
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"{f.name} must be an integer >= 1; got {v!r}")
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise ValueError(f"{f.name} must be a finite number >= 0; got {v!r}")
        if not self.read_cycle_ns > 0:
            raise ValueError(f"read_cycle_ns must be > 0; got {self.read_cycle_ns!r}")

    def adc(self, bits: int | None = None) -> Converter:
        """The ADC at ``bits`` (default: the reference resolution)."""
        return self._converter("adc", bits)

    def dac(self, bits: int | None = None) -> Converter:
        """The DAC at ``bits`` (default: the reference resolution)."""
        return self._converter("dac", bits)

    def _converter(self, kind: str, bits: int | None) -> Converter:
        ref = getattr(self, f"{kind}_ref_bits")
        bits = ref if bits is None else bits
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
            raise ValueError(f"{kind} bits must be an integer >= 1; got {bits!r}")
        rule = getattr(self, f"{kind}_rule")
        return Converter(bits, *(scale(getattr(self, f"{kind}_{q}"), bits, ref, rule) for q in ("energy_pJ", "power_mW", "area_um2")))

    def to_json(self, path: str | Path) -> None:
        """Write the table as JSON (the format :func:`load_table` reads)."""
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")


def load_table(path: str | Path) -> CostTable:
    """Read a :class:`CostTable` from a JSON object with one key per field.

    Raises
    ------
    ValueError
        Naming the key: a key without a unit suffix (one of :data:`UNIT_SUFFIXES`; text
        keys ``name``, ``source``, ``adc_rule``, ``dac_rule`` excepted), an unknown key,
        a missing key or a bad value.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a cost table is a JSON object of key: value pairs")
    known = {f.name for f in dataclasses.fields(CostTable)}
    for key in data:
        if key not in _TEXT_FIELDS and not key.endswith(UNIT_SUFFIXES):
            raise ValueError(f"{path}: key {key!r} has no unit suffix (one of {', '.join(UNIT_SUFFIXES)})")
        if key not in known:
            raise ValueError(f"{path}: unknown key {key!r}; known keys: {', '.join(sorted(known))}")
    missing = sorted(known - set(data))
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(map(repr, missing))}")
    try:
        return CostTable(**data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


_MM2 = 1e6  # um^2 per mm^2
_ISAAC_CELLS = 8 * 128 * 128  # one IMA: 8 crossbars of 128 x 128
_ISAAC_DACS = 8 * 128

#: ISAAC's 32 nm figures (Shafiee et al., "ISAAC: A Convolutional Neural Network
#: Accelerator with In-Situ Analog Arithmetic in Crossbars", ISCA 2016, Table of IMA
#: components), per unit: the IMA's 8 crossbars of 128 x 128 (2.4 mW, 0.0002 mm^2) per
#: cell; 8 ADCs of 8 bits at 1.2 GS/s (16 mW, 0.0096 mm^2) per ADC, 1.67 pJ per
#: conversion; 8 x 128 one-bit DACs (4 mW, 0.00017 mm^2) per DAC, 0.417 pJ per
#: conversion; 8 x 128 sample-and-holds (10 uW, 0.00004 mm^2) per unit, energy = power x
#: read cycle; 4 shift-and-add units (0.2 mW, 0.00024 mm^2), 0.021 pJ per operation; eDRAM
#: 20.45 pJ per 256-bit access; 100 ns crossbar read (10 MHz).  The per-event energies are
#: the ones public hardware-component libraries tabulate from the same paper.  ADC rule
#: "linear": those libraries list 0.79 pJ at 4 bits and 1.20 pJ at 6 bits, within 6 % of
#: linear scaling (0.835, 1.25), while their areas (361, 627 um^2) fall faster than linear.
ISAAC = CostTable(
    name="ISAAC 32 nm",
    source="Shafiee et al., ISCA 2016 (IMA component table); per-event energies as tabulated from it",
    cell_area_um2=0.0002 * _MM2 / _ISAAC_CELLS,
    cell_read_power_mW=2.4 / _ISAAC_CELLS,
    array_area_um2=0.0,
    adc_ref_bits=8, adc_energy_pJ=1.67, adc_power_mW=16.0 / 8, adc_area_um2=0.0096 * _MM2 / 8, adc_rule="linear",
    adc_columns_count=128,
    dac_ref_bits=1, dac_energy_pJ=0.417, dac_power_mW=4.0 / _ISAAC_DACS, dac_area_um2=0.00017 * _MM2 / _ISAAC_DACS,
    dac_rule="exponential",
    sample_hold_energy_pJ=10e-3 / _ISAAC_DACS * 100e-9 * 1e9,  # mW * ns = pJ
    sample_hold_power_mW=10e-3 / _ISAAC_DACS, sample_hold_area_um2=0.00004 * _MM2 / _ISAAC_DACS,
    shift_add_energy_pJ=0.021, shift_add_power_mW=0.2 / 4, shift_add_area_um2=0.00024 * _MM2 / 4,
    adcs_per_shift_add_count=2,
    buffer_energy_pJ=20.45, buffer_access_bits=256,
    read_cycle_ns=100.0,
)

#: ISAAC as Zhang & Hu's Table 2 applies it (see docs/cost.md): the 8-crossbar figures
#: (2.4 mW, 0.0002 mm^2) taken per single 128 x 128 crossbar, and an 8-bit DAC of 256x
#: the 1-bit DAC (1 mW, 42.5 um^2; the exponential rule ``2**(8-1)`` gives 128x).  Every
#: other figure is ISAAC's.
ZHANG_HU_TABLE2 = dataclasses.replace(
    ISAAC,
    name="ISAAC as applied in Zhang & Hu 2022, Table 2",
    source="ISAAC (Shafiee et al., ISCA 2016) with the two factors Zhang & Hu's Table 2 implies",
    cell_area_um2=0.0002 * _MM2 / (128 * 128),
    cell_read_power_mW=2.4 / (128 * 128),
    dac_ref_bits=8, dac_energy_pJ=0.417 * 256, dac_power_mW=4.0 / _ISAAC_DACS * 256,
    dac_area_um2=0.00017 * _MM2 / _ISAAC_DACS * 256,
)
