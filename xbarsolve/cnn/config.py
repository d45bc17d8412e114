"""How the linear layers of a network are put on crossbars: :class:`AnalogConfig` and its parts.

An :class:`AnalogConfig` is five frozen parts and a seed, each part validating its own
fields once:

* :class:`CircuitConfig`: the simulated circuit of every crossbar (wire, driver and sense
  resistances, device and access-transistor models);
* :class:`MappingConfig`: weights to conductances (range, negative-weight scheme,
  reference column, dense or Toeplitz convolution mapping, tile size, weight bits);
* :class:`ConverterConfig`: DAC and ADC (full scale, resolutions, how ADC ranges are set);
* :class:`CompensationConfig`: the conversion ``G -> G'`` and the per-column calibration;
* :class:`NoiseConfig`: programming error and read noise.

The flat keywords of earlier versions still construct and read a configuration:
``AnalogConfig(r_row=0.5, adc_bits=6).adc_bits`` is ``config.converter.adc_bits``; a flat
keyword given beside a part overrides that part's field (so ``dataclasses.replace(cfg,
adc_bits=6)`` works).  Weight bit slicing lives in :class:`MappingConfig` (``n_slices``,
``bits_per_cell``), input bit slicing in :class:`ConverterConfig` (``input_bits``); options
of later features (cost tables) belong in the part they concern, or in a new part added
to :data:`PARTS`.

>>> from xbarsolve.cnn.config import AnalogConfig, CircuitConfig
>>> cfg = AnalogConfig(CircuitConfig(r_row=2.0, r_col=2.0), adc_bits=6)
>>> cfg.circuit.r_row, cfg.r_col, cfg.converter.adc_bits, cfg.adc_bits
(2.0, 2.0, 6, 6)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Literal, Mapping

import numpy as np

from ..devices import Device
from ..mapping import Scheme
from ..reference import G_MAX, G_MIN, N_CALIBRATION, R_IN, R_OUT, R_WIRE, V_CONV, V_MAX
from ..transistors import Transistor
from .quantization import check_count

__all__ = [
    "AnalogConfig", "CircuitConfig", "MappingConfig", "ConverterConfig", "CompensationConfig", "NoiseConfig",
    "PARTS", "DEFAULT_V_CONV",
]

#: Default conversion-signal amplitude (V) of every layer.  The paper tabulates per-layer
#: amplitudes (Tables 4 and 5) that we could not obtain; 0.1 V is its best uniform choice
#: (Fig. 11).  For linear devices and a uniform signal ``G'`` does not depend on it.
DEFAULT_V_CONV = V_CONV


def _nonnegative(obj, name: str, unit: str) -> None:
    value = getattr(obj, name)
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not (np.isfinite(x) and x >= 0):
        raise ValueError(f"{name} must be a finite number >= 0 {unit}; got {value!r}")
    object.__setattr__(obj, name, x)


def _count(obj, name: str, low: int, none_ok: bool) -> None:
    object.__setattr__(obj, name, check_count(getattr(obj, name), name, low, none_ok=none_ok))


def _choice(obj, name: str, allowed: tuple[str, ...]) -> None:
    if getattr(obj, name) not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {getattr(obj, name)!r}")


@dataclass(frozen=True)
class CircuitConfig:
    """The simulated circuit of every crossbar.  SI units.

    Parameters
    ----------
    r_row, r_col, r_in, r_out : float
        Wire segment, driver and sense resistances (ohm), >= 0; default 1 ohm (the
        reference).  All 0 gives the ideal crossbar ``T = G`` (no solve, no conversion).
    device : Device or None
        Memristor model (:mod:`xbarsolve.devices`); None is the crossbar's default, linear.
    transistor : Transistor or None
        Access-transistor model (:mod:`xbarsolve.transistors`); None is a 1R array.
    """

    r_row: float = R_WIRE
    r_col: float = R_WIRE
    r_in: float = R_IN
    r_out: float = R_OUT
    device: Device | None = None
    transistor: Transistor | None = None

    def __post_init__(self):
        for name in ("r_row", "r_col", "r_in", "r_out"):
            _nonnegative(self, name, "ohm")
        if self.device is not None and not isinstance(self.device, Device):
            raise TypeError(f"device must be an xbarsolve.devices.Device or None; got {self.device!r}")
        if self.transistor is not None and not isinstance(self.transistor, Transistor):
            raise TypeError(f"transistor must be an xbarsolve.transistors.Transistor or None; got {self.transistor!r}")

    @property
    def ideal_wires(self) -> bool:
        """True when every resistance is 0 ohm (the crossbar computes ``V @ G`` exactly)."""
        return self.r_row == 0 and self.r_col == 0 and self.r_in == 0 and self.r_out == 0

    @property
    def is_linear(self) -> bool:
        """True when the device and the transistor (if any) are linear."""
        return bool((self.device is None or self.device.is_linear)
                    and (self.transistor is None or self.transistor.is_linear))


@dataclass(frozen=True)
class MappingConfig:
    """How weight matrices become conductances and crossbars.

    Parameters
    ----------
    g_min, g_max : float
        Conductance range (S), ``0 <= g_min < g_max``; default ``[1/300 kOhm, 1/15 kOhm]``.
    scheme : {"shift", "differential"}
        Negative-weight mapping (:mod:`xbarsolve.mapping`).
    shift_reference : {"column", "digital"}
        Shift scheme: undo the shift with an analog unit column in every crossbar whose
        current is subtracted before the ADC (the default: the ADC then sees only the
        signal), or with the digital ``sum(V)`` after the ADC (the paper's equation; the
        ADC must then digitize the common mode ``b * sum(V)`` too, and 4-6 bit
        converters lose most of their resolution to it).
    conv_mapping : {"dense", "sparse"}
        Convolution mapping: im2col (one vector per window) or Toeplitz (one per image).
    rows_max, cols_max : int or None
        Largest crossbar (cells), >= 1; None = whole layer on one crossbar.
    weight_bits : int or None
        Weight quantization (levels ``2**bits``) before mapping; None = exact weights.
    n_slices : int
        Weight bit slicing (:mod:`xbarsolve.cnn.slicing`): the ``weight_bits`` codes are
        split into ``n_slices`` cells of :attr:`cell_bits` bits each, every slice on its
        own crossbars, recombined digitally with powers of ``2**cell_bits``; >= 1, 1 =
        no slicing.  Slicing needs ``weight_bits``.
    bits_per_cell : int or None
        Bits per cell of a sliced weight, >= 1; None = ``weight_bits / n_slices`` (must
        divide exactly).  When given, ``weight_bits == n_slices * bits_per_cell``.
    """

    g_min: float = G_MIN
    g_max: float = G_MAX
    scheme: Scheme = "shift"
    shift_reference: Literal["digital", "column"] = "column"
    conv_mapping: Literal["dense", "sparse"] = "dense"
    rows_max: int | None = None
    cols_max: int | None = None
    weight_bits: int | None = None
    n_slices: int = 1
    bits_per_cell: int | None = None

    def __post_init__(self):
        for name in ("g_min", "g_max"):
            _nonnegative(self, name, "S")
        if not self.g_min < self.g_max:
            raise ValueError(f"need g_min < g_max (S); got g_min={self.g_min!r}, g_max={self.g_max!r}")
        _choice(self, "scheme", ("shift", "differential"))
        _choice(self, "shift_reference", ("digital", "column"))
        _choice(self, "conv_mapping", ("dense", "sparse"))
        _count(self, "rows_max", 1, True)
        _count(self, "cols_max", 1, True)
        _count(self, "weight_bits", 1, True)
        _count(self, "n_slices", 1, False)
        _count(self, "bits_per_cell", 1, True)
        wb, n, bc = self.weight_bits, self.n_slices, self.bits_per_cell
        if (n > 1 or bc is not None) and wb is None:
            raise ValueError(f"weight slicing (n_slices={n}, bits_per_cell={bc}) needs weight_bits; got weight_bits=None")
        if bc is None and wb is not None and wb % n:
            raise ValueError(f"n_slices={n} must divide weight_bits={wb} (or give bits_per_cell with "
                             "weight_bits == n_slices * bits_per_cell)")
        if bc is not None and wb != n * bc:
            raise ValueError(f"need weight_bits == n_slices * bits_per_cell; got weight_bits={wb}, "
                             f"n_slices={n}, bits_per_cell={bc}")

    @property
    def cell_bits(self) -> int | None:
        """Bits per cell of each weight slice (``weight_bits / n_slices``); None without
        weight quantization."""
        return None if self.weight_bits is None else self.weight_bits // self.n_slices

    @property
    def sliced(self) -> bool:
        """True when the weights are split over more than one cell (``n_slices > 1``)."""
        return self.n_slices > 1

    @property
    def reference_column(self) -> bool:
        """True when every crossbar carries an analog unit column (shift scheme, ``"column"``)."""
        return self.scheme == "shift" and self.shift_reference == "column"

    @property
    def columns_per_output(self) -> int:
        """Physical columns per output: 2 for differential pairs, else 1."""
        return 2 if self.scheme == "differential" else 1


@dataclass(frozen=True)
class ConverterConfig:
    """DAC (inputs) and ADC (analog outputs).

    Parameters
    ----------
    v_max : float
        DAC full scale (V), > 0: the largest input of the calibration data maps to it
        (reference 0.4 V).
    dac_bits, adc_bits : int or None
        Converter resolutions, >= 1; None = ideal.  The ADC digitizes every crossbar pass
        (every weight slice and input bit).
    input_bits : int or None
        Input bit slicing, >= 1 (:mod:`xbarsolve.cnn.slicing`): a bit-serial DAC.  Inputs
        are quantized to ``input_bits`` bits of the full scale and applied one bit per
        crossbar pass (each input 0 or ``v_max``), the passes recombined digitally with
        powers of 2.  None = one pass per input sign with the ``dac_bits`` DAC; it
        replaces ``dac_bits`` (give one of the two).
    adc_range : {"calibration", "max"}
        ADC range from the calibration pass or the max-range rule
        (:meth:`xbarsolve.mapping.MappedMatrix.analog_range`).
    n_range_samples : int
        Input vectors of the calibration images used to find the ADC ranges (a random
        subset when there are more), >= 1.  The DAC full scale is the largest input of
        all of them.
    """

    v_max: float = V_MAX
    dac_bits: int | None = None
    adc_bits: int | None = None
    adc_range: Literal["calibration", "max"] = "calibration"
    n_range_samples: int = 20000
    input_bits: int | None = None

    def __post_init__(self):
        _nonnegative(self, "v_max", "V")
        if not self.v_max > 0:
            raise ValueError(f"v_max must be > 0 V; got {self.v_max!r}")
        _count(self, "dac_bits", 1, True)
        _count(self, "adc_bits", 1, True)
        _choice(self, "adc_range", ("calibration", "max"))
        _count(self, "n_range_samples", 1, False)
        _count(self, "input_bits", 1, True)
        if self.input_bits is not None and self.dac_bits is not None:
            raise ValueError(f"input_bits={self.input_bits} (a bit-serial DAC) replaces dac_bits; "
                             f"give one of them, got dac_bits={self.dac_bits}")


@dataclass(frozen=True)
class CompensationConfig:
    """Conversion ``G -> G'`` and per-column calibration (Zhang & Hu, Sec. 3.3).

    Parameters
    ----------
    conversion : bool
        Convert ``G -> G'`` to pre-compensate the parasitics.
    v_conv : float or mapping of node name -> float
        Conversion-signal amplitude per layer (V), uniform over rows; names not in a
        mapping use :data:`DEFAULT_V_CONV`.
    refine : bool
        Ask the conversion for its active-set refinement of clipped cells.
    calibration : bool
        Fit per-column slope and offset after programming (paper Sec. 3.3.3).
    n_calibration : int
        Calibration samples (input vectors) per tile, >= 2 (paper: 10).
    """

    conversion: bool = True
    v_conv: float | Mapping[str, float] = DEFAULT_V_CONV
    refine: bool = False
    calibration: bool = True
    n_calibration: int = N_CALIBRATION

    def __post_init__(self):
        amps = self.v_conv.values() if isinstance(self.v_conv, Mapping) else [self.v_conv]
        for a in amps:
            if not (isinstance(a, (int, float, np.floating, np.integer)) and np.isfinite(a) and a > 0):
                raise ValueError(f"v_conv must be an amplitude > 0 V or a mapping of layer name -> amplitude; "
                                 f"got {self.v_conv!r}")
        _count(self, "n_calibration", 2, False)

    def amplitude(self, name: str) -> float:
        """Conversion amplitude (V) of the layer called ``name``."""
        if isinstance(self.v_conv, Mapping):
            return float(self.v_conv.get(name, DEFAULT_V_CONV))
        return float(self.v_conv)


@dataclass(frozen=True)
class NoiseConfig:
    """Programming error and read noise.

    Parameters
    ----------
    programming_sigma : float
        Std of the Gaussian programming error (S), >= 0, clipped to ``[g_min, g_max]``.
    programming_stage : {"after", "before"}
        Apply it to ``G'`` after conversion, or to ``G`` before it.
    read_noise_sigma : float
        Std of additive Gaussian noise on every analog output current per MVM (A), >= 0.
    """

    programming_sigma: float = 0.0
    programming_stage: Literal["after", "before"] = "after"
    read_noise_sigma: float = 0.0

    def __post_init__(self):
        _nonnegative(self, "programming_sigma", "S")
        _nonnegative(self, "read_noise_sigma", "A")
        _choice(self, "programming_stage", ("after", "before"))


#: The parts of an :class:`AnalogConfig`, by attribute name.
PARTS: dict[str, type] = {
    "circuit": CircuitConfig, "mapping": MappingConfig, "converter": ConverterConfig,
    "compensation": CompensationConfig, "noise": NoiseConfig,
}
#: Flat field name -> the part that holds it.
_FLAT: dict[str, str] = {f.name: part for part, cls in PARTS.items() for f in fields(cls)}
#: Fields that do not change the programmed crossbars or calibrations (not in the cache key).
_NOT_PROGRAMMING = ("dac_bits", "adc_bits", "read_noise_sigma")
#: Bit-slicing fields and their defaults: left out of the cache key at their defaults, so
#: that an unsliced configuration keeps the key it had before slicing existed.
_SLICING_DEFAULTS = {"n_slices": 1, "bits_per_cell": None, "input_bits": None}
_UNSET = object()


@dataclass(frozen=True, init=False)
class AnalogConfig:
    """How the linear layers are put on crossbars: five parts and a seed (module docstring).

    Parameters
    ----------
    circuit, mapping, converter, compensation, noise
        The parts (:class:`CircuitConfig`, :class:`MappingConfig`,
        :class:`ConverterConfig`, :class:`CompensationConfig`, :class:`NoiseConfig`);
        each defaults to its own defaults.
    seed : int
        Seed (>= 0) of the programming and read noise and of the calibration sampling.
    r_row, r_col, r_in, r_out, device, transistor, g_min, g_max, scheme, shift_reference, \
conv_mapping, rows_max, cols_max, weight_bits, n_slices, bits_per_cell, v_max, dac_bits, adc_bits, \
adc_range, n_range_samples, input_bits, conversion, v_conv, refine, calibration, n_calibration, \
programming_sigma, programming_stage, read_noise_sigma
        Flat keywords: set that field of its part (documented there), overriding a part
        given beside it.  Every flat name also reads as an attribute.
    """

    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    converter: ConverterConfig = field(default_factory=ConverterConfig)
    compensation: CompensationConfig = field(default_factory=CompensationConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    seed: int = 0

    def __init__(self, circuit: CircuitConfig | None = None, mapping: MappingConfig | None = None,
                 converter: ConverterConfig | None = None, compensation: CompensationConfig | None = None,
                 noise: NoiseConfig | None = None, *, seed: int = 0,
                 r_row=_UNSET, r_col=_UNSET, r_in=_UNSET, r_out=_UNSET, device=_UNSET, transistor=_UNSET,
                 g_min=_UNSET, g_max=_UNSET, scheme=_UNSET, shift_reference=_UNSET, conv_mapping=_UNSET,
                 rows_max=_UNSET, cols_max=_UNSET, weight_bits=_UNSET, n_slices=_UNSET, bits_per_cell=_UNSET,
                 v_max=_UNSET, dac_bits=_UNSET, adc_bits=_UNSET, adc_range=_UNSET, n_range_samples=_UNSET,
                 input_bits=_UNSET,
                 conversion=_UNSET, v_conv=_UNSET, refine=_UNSET, calibration=_UNSET, n_calibration=_UNSET,
                 programming_sigma=_UNSET, programming_stage=_UNSET, read_noise_sigma=_UNSET):
        given = {k: v for k, v in locals().items() if k in _FLAT and v is not _UNSET}
        parts = dict(circuit=circuit, mapping=mapping, converter=converter, compensation=compensation, noise=noise)
        for name, cls in PARTS.items():
            part = parts[name]
            if part is None:
                part = cls()
            elif not isinstance(part, cls):
                raise TypeError(f"{name} must be a {cls.__name__} or None; got {part!r}")
            changes = {k: v for k, v in given.items() if _FLAT[k] == name}
            object.__setattr__(self, name, replace(part, **changes) if changes else part)
        object.__setattr__(self, "seed", check_count(seed, "seed", 0))

    @property
    def ideal_wires(self) -> bool:
        """True when every resistance is 0 ohm (:attr:`CircuitConfig.ideal_wires`)."""
        return self.circuit.ideal_wires

    @property
    def is_linear(self) -> bool:
        """True for linear devices and transistors (:attr:`CircuitConfig.is_linear`)."""
        return self.circuit.is_linear

    def amplitude(self, name: str) -> float:
        """Conversion amplitude (V) of the layer called ``name``."""
        return self.compensation.amplitude(name)

    def flat(self) -> dict:
        """Every field of every part by its flat name, plus ``seed``."""
        d = {name: getattr(getattr(self, part), name) for name, part in _FLAT.items()}
        d["seed"] = self.seed
        return d

    def programming_key(self) -> dict:
        """The fields that determine the programmed crossbars and calibrations (cache key):
        :meth:`flat` without the converter resolutions and the read noise, models as their
        ``repr``, bit-slicing fields only where they differ from no slicing."""
        d = self.flat()
        for k in _NOT_PROGRAMMING:
            d.pop(k)
        for k, default in _SLICING_DEFAULTS.items():
            if d[k] == default:
                d.pop(k)
        d["v_conv"] = dict(self.v_conv) if isinstance(self.v_conv, Mapping) else self.v_conv
        d["device"] = repr(self.device)
        d["transistor"] = repr(self.transistor)
        return d


def _flat_property(part: str, name: str) -> property:
    return property(lambda self: getattr(getattr(self, part), name),
                    doc=f"``{part}.{name}`` (see :class:`{PARTS[part].__name__}`).")


for _name, _part in _FLAT.items():
    setattr(AnalogConfig, _name, _flat_property(_part, _name))
del _name, _part
