"""The reference parameters of Zhang & Hu 2022 (Sec. 4.1; docs/model.md section 6), SI
units: one definition.

Every default that stands for "the paper's array" reads these names: the conductance
range of the mappings (:mod:`xbarsolve.mapping`, :mod:`xbarsolve.cnn`), the input range
of the DACs and the input generators, the parasitics of the studies
(:mod:`xbarsolve.sweeps`) and of the CLI's random arrays.

>>> from xbarsolve import reference
>>> round(reference.G_MIN * 1e6, 2), round(reference.G_MAX * 1e6, 2)
(3.33, 66.67)
"""

from __future__ import annotations

__all__ = ["R_ON", "R_OFF", "G_MIN", "G_MAX", "R_WIRE", "R_IN", "R_OUT", "V_MAX", "V_READ", "V_CONV", "N_CALIBRATION"]

#: Low-resistance (on) state of a memristor (ohm).
R_ON = 15e3
#: High-resistance (off) state of a memristor (ohm).
R_OFF = 300e3
#: Smallest programmable conductance (S), ``1 / R_OFF`` = 3.33 uS.
G_MIN = 1.0 / R_OFF
#: Largest programmable conductance (S), ``1 / R_ON`` = 66.7 uS.
G_MAX = 1.0 / R_ON
#: Wire segment resistance between neighbouring cells, rows and columns alike (ohm).
R_WIRE = 1.0
#: Driver (input) resistance of every row (ohm).
R_IN = 1.0
#: Sense (output) resistance of every column (ohm).
R_OUT = 1.0
#: Largest input voltage (V): DAC full scale, top of the input range.
V_MAX = 0.4
#: Read voltage (V) at which a memristor's conductance ``G = I(V_READ) / V_READ`` is defined.
V_READ = 0.2
#: Default amplitude of the conversion signal (V); the paper's best uniform choice (Fig. 11).
V_CONV = 0.1
#: Calibration samples (input vectors) per crossbar.
N_CALIBRATION = 10

