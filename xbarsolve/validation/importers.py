"""Importers of measured array data from CSV and NPZ files into :class:`Measurement`.

CSV convention (one file per array)
-----------------------------------
* Plain text, comma-separated numbers, one matrix row per line; blank lines and further
  lines starting with ``#`` are ignored.
* The first non-blank line must state the units: ``# units: uS`` (case-sensitive symbol).
  Allowed: conductance ``S, mS, uS, nS``; voltages ``V, mV``; currents ``A, mA, uA, nA``.
* ``conductance``: m lines of n values (line ``i`` = row/input ``i``, value ``j`` =
  column/output ``j``).  ``inputs``: k lines of m values (one applied vector per line).
  ``currents``: k lines of n values (line ``p`` = the column currents measured for input
  line ``p``; positive out of the array into the sense ground).
* Everything else (read voltage, nominal resistances, drive and sense ends, provenance,
  licence) is given as keyword arguments, exactly the fields of :class:`Measurement`.

NPZ convention
--------------
* Arrays ``conductance`` (m, n), ``inputs`` (k, m), ``currents`` (k, n), each with a
  string entry ``<name>_units`` using the unit symbols above (so ``conductance_units =
  "uS"`` means the values are in microsiemens).
* Optional scalar entries in SI units: ``read_voltage`` (V), ``r_row, r_col, r_in, r_out,
  r_on`` (ohm), ``v_gate`` (V), ``temperature`` (K), ``noise_rms`` (A); optional strings
  ``drive``, ``sense``, ``title``, ``description``, ``source``, ``licence`` and a string
  array ``known``.  Unknown entries are an error (a typo would otherwise be ignored).
  Keyword arguments override entries.  Files are opened with ``allow_pickle=False``.

Plausibility
------------
Whatever the route, the values are checked against what a memristor crossbar can
measure (:func:`~xbarsolve.validation.schema.check_plausible`): conductances of 60 "S"
are refused with ``values 3.33 to 66.7 S look like microsiemens; multiply by 1e-6 or
label them uS``, and likewise volts, amperes, ohms, and currents that disagree with
``inputs @ conductance`` by a unit factor.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FormatError
from .schema import Measurement

__all__ = ["from_csv", "from_npz", "UNITS"]

#: Unit symbols accepted by the importers: quantity -> {symbol: factor to SI}.
UNITS = {
    "conductance": {"S": 1.0, "mS": 1e-3, "uS": 1e-6, "nS": 1e-9},
    "inputs": {"V": 1.0, "mV": 1e-3},
    "currents": {"A": 1.0, "mA": 1e-3, "uA": 1e-6, "nA": 1e-9},
}
_ARRAYS = ("conductance", "inputs", "currents")
_NPZ_SCALARS = ("read_voltage", "r_row", "r_col", "r_in", "r_out", "r_on", "v_gate", "temperature", "noise_rms",
                "conductance_uncertainty")
_NPZ_STRINGS = ("drive", "sense", "title", "description", "source", "licence")


def _factor(quantity: str, unit: str, where: str) -> float:
    table = UNITS[quantity]
    if unit not in table:
        raise FormatError(f"{where}: unknown unit {unit!r} for {quantity}; allowed: {', '.join(table)}")
    return table[unit]


def _read_csv(path: Path, quantity: str) -> np.ndarray:
    where = f"{quantity} file {path}"
    try:
        text = path.read_text()
    except OSError as exc:
        raise FormatError(f"{where}: cannot be read ({exc.strerror})") from None
    lines = text.splitlines()
    unit = None
    rows: list[list[float]] = []
    width = None
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if unit is None:
            head = line.lstrip("#").strip()
            if not line.startswith("#") or not head.lower().startswith("units"):
                raise FormatError(f"{where}: missing units: the first line must be '# units: <unit>' "
                                  f"with <unit> one of {', '.join(UNITS[quantity])}; got {raw!r}")
            unit = head.split(":", 1)[-1].split("=", 1)[-1].strip()
            _factor(quantity, unit, where)
            continue
        if line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split(",")]
        values = []
        for col, cell in enumerate(cells, 1):
            try:
                x = float(cell)
            except ValueError:
                raise FormatError(f"{where}, line {lineno}, value {col}: {cell!r} is not a number") from None
            if not np.isfinite(x):
                raise FormatError(f"{where}, line {lineno}, value {col}: {cell!r} is not finite")
            values.append(x)
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise FormatError(f"{where}, line {lineno}: {len(values)} values, but earlier lines have {width} (ragged rows)")
        rows.append(values)
    if unit is None:
        raise FormatError(f"{where}: the file is empty (no '# units:' line and no data)")
    if not rows:
        raise FormatError(f"{where}: no data lines after the units line")
    return np.array(rows) * _factor(quantity, unit, where)


def from_csv(
    conductance: str | os.PathLike,
    inputs: str | os.PathLike,
    currents: str | os.PathLike,
    **fields,
) -> Measurement:
    """Build a :class:`Measurement` from three CSV files (conventions in the module docstring).

    Parameters
    ----------
    conductance : path
        m x n conductance map with a ``# units:`` line (``S``, ``mS``, ``uS`` or ``nS``).
    inputs : path
        k x m applied input vectors (``V`` or ``mV``).
    currents : path
        k x n measured column currents (``A``, ``mA``, ``uA`` or ``nA``).
    **fields
        Any other field of :class:`Measurement` (SI units), e.g. ``read_voltage=0.2``,
        ``r_row=1.0``, ``r_on=1e3``, ``drive="left"``, ``licence="CC-BY-4.0"``.

    Raises
    ------
    FormatError
        Naming the file, line and value: missing units line, unknown unit, non-numeric or
        non-finite value, ragged rows, a shape mismatch between the files, a negative
        conductance, or physically implausible values with the likely unit mistake
        (:func:`~xbarsolve.validation.schema.check_plausible`).
    """
    for bad in _ARRAYS:
        if bad in fields:
            raise TypeError(f"{bad} is given as a file, not as a keyword field")
    files = dict(zip(_ARRAYS, (Path(conductance), Path(inputs), Path(currents))))
    arrays = {q: _read_csv(p, q) for q, p in files.items()}
    try:
        return Measurement(**arrays, **fields)
    except FormatError as exc:
        quantity = str(exc).split(":", 1)[0]
        if quantity in files:  # "conductance: values ... look like ...": name the file they came from
            raise FormatError(f"{quantity} file {files[quantity]}: {exc}") from None
        raise


def from_npz(path: str | os.PathLike, **fields) -> Measurement:
    """Build a :class:`Measurement` from an ``.npz`` file (conventions in the module docstring).

    Parameters
    ----------
    path : path
        The ``.npz`` archive.
    **fields
        Fields of :class:`Measurement` (SI units) that override or complete the file's.

    Raises
    ------
    FormatError
        Naming the entry: missing array or ``<name>_units``, unknown unit or entry,
        non-numeric data, shape mismatch, NaN, negative conductance, or physically
        implausible values with the likely unit mistake.
    """
    path = Path(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path}: not a readable .npz file ({exc})") from None
    kw: dict = {}
    with npz:
        keys = set(npz.files)
        for q in _ARRAYS:
            if q not in keys:
                raise FormatError(f"{path}: array {q!r} is missing")
            ukey = f"{q}_units"
            if ukey not in keys:
                raise FormatError(f"{path}: entry {ukey!r} is missing: state the units of {q!r} "
                                  f"(one of {', '.join(UNITS[q])})")
            unit = str(npz[ukey])
            data = npz[q]
            if not np.issubdtype(data.dtype, np.number):
                raise FormatError(f"{path}: array {q!r} must be numeric; got dtype {data.dtype}")
            kw[q] = data.astype(np.float64) * _factor(q, unit, f"{path}: entry {ukey!r}")
            keys -= {q, ukey}
        for name in sorted(keys):
            value = npz[name]
            if name in _NPZ_SCALARS:
                if value.ndim != 0 or not np.issubdtype(value.dtype, np.number):
                    raise FormatError(f"{path}: entry {name!r} must be a numeric scalar (SI units); got {value.dtype} {value.shape}")
                kw[name] = float(value)
            elif name in _NPZ_STRINGS:
                kw[name] = str(value)
            elif name == "known":
                kw[name] = tuple(str(v) for v in np.atleast_1d(value))
            else:
                allowed = ", ".join(_ARRAYS + tuple(f"{q}_units" for q in _ARRAYS) + _NPZ_SCALARS + _NPZ_STRINGS + ("known",))
                raise FormatError(f"{path}: unknown entry {name!r}; allowed: {allowed}")
    kw.update(fields)
    try:
        return Measurement(**kw)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
