"""Validation against measured array data.

* :mod:`.schema`: the HDF5 schema of measured data and :class:`Measurement`;
* :mod:`.importers`: CSV and NPZ importers;
* :mod:`.sensitivity`: exact (adjoint) derivatives of column currents w.r.t. parasitics;
* :mod:`.fit`: :func:`fit_parasitics`, nonlinear least squares with identifiability verdicts;
* :mod:`.report`: the ``xbarsolve validate FILE.h5`` report;
* :mod:`.synthetic`: a generator of synthetic measurement files that uses ngspice.

Importing this package loads neither matplotlib nor PySpice.
"""

from __future__ import annotations

from .fit import FitResult, ParameterEstimate, fit_parasitics
from .importers import from_csv, from_npz
from .schema import FORMAT_VERSION, Measurement
from .sensitivity import PARAMETERS, Sensitivities, column_current_sensitivities

__all__ = [
    "Measurement", "FORMAT_VERSION", "from_csv", "from_npz", "fit_parasitics", "FitResult",
    "ParameterEstimate", "column_current_sensitivities", "Sensitivities", "PARAMETERS",
]
