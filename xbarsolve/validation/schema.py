"""The HDF5 schema of measured array data and its in-memory form, :class:`Measurement`.

Layout (format ``"xbarsolve-measured-array"``, version 1).  Every numeric dataset carries a
``units`` attribute, and a reader refuses a dataset whose units are missing or different::

    /                         attrs: format = "xbarsolve-measured-array", format_version = 1,
                                     title, description, source (provenance), licence,
                                     created (ISO 8601 UTC), xbarsolve_version
    /conductance              (m, n) float64, units "S": programmed (read-back) memristor
                              conductance of each cell; attrs read_voltage (float, V),
                              definition = "device" (series parasitics removed) and
                              relative_uncertainty (float, 1, optional)
    /inputs                   (k, m) float64, units "V": applied source voltage of each row
    /currents                 (k, n) float64, units "A": measured column currents, positive
                              out of the array into the sense virtual ground; attrs
                              noise_rms (float, A, optional: rms read noise of one reading)
    /cell_read_currents       (m, n) float64, units "A" (optional): per-cell read current at
                              /conductance's read_voltage
    /iv_sweeps/voltage        (s, p) float64, units "V" (optional): single-device I-V sweeps
    /iv_sweeps/current        (s, p) float64, units "A"
    /iv_sweeps/cells          (s, 2) int64, units "1": (row, column) of each swept device
    /conditions               attrs: drive ("left" | "right" | "both"), sense ("bottom" |
                              "top" | "both"), cell ("1R" | "1T1R"), known (list of the
                              resistances below that are measured rather than nominal),
                              device, transistor (optional: JSON of a nonlinear memristor
                              or transistor model, ``{"class": NAME, "params": {...}}`` with
                              NAME a name of :mod:`xbarsolve.registry`, or "null")
    /conditions/r_row, r_col, r_in, r_out, r_on   () float64, units "ohm": nominal (design)
                              or known values; r_on is absent for a 1R array and for a
                              1T1R array whose transistor is a stored model
    /conditions/v_gate        () float64, units "V" (optional): access-transistor gate
    /conditions/temperature   () float64, units "K" (optional)
    /synthetic                (optional) the hidden truth of a generated file: attrs
                              generator, seed; datasets with units (true conductance, the
                              hidden resistances, noise settings).  Real chips have none.

Every non-scalar dataset is stored with HDF5's Fletcher-32 checksum and every scalar one
with a ``checksum_crc32`` attribute; a reader refuses a file that fails them.  Values are
checked for physical plausibility (:func:`check_plausible`) so that a unit mistake (say
microsiemens labelled ``S``) is named instead of silently fitted.

Conventions: row ``i`` of the array is input ``i`` (word line), driven at the end(s) named
by ``drive``; column ``j`` is output ``j`` (bit line), sensed at ``sense``; all values SI.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

import numpy as np

from .._atomic import atomic_hdf5, attribute_text as _text, create_dataset, read_dataset
from ..devices import Device
from ..errors import FormatError
from ..reference import V_READ
from ..transistors import Transistor

__all__ = ["FORMAT", "FORMAT_VERSION", "Measurement", "RESISTANCES", "check_plausible"]

FORMAT = "xbarsolve-measured-array"
FORMAT_VERSION = 1
#: Resistances of the circuit model a file states (ohm); r_on only for 1T1R arrays.
RESISTANCES = ("r_row", "r_col", "r_in", "r_out", "r_on")
_DRIVES = ("left", "right", "both")
_SENSES = ("bottom", "top", "both")
_CELLS = ("1R", "1T1R")


def _array(value, name: str, units: str, ndim: int, *, allow_negative: bool = True) -> np.ndarray:
    """Validate a float array: dimensionality, finiteness and (optionally) sign."""
    try:
        arr = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        raise FormatError(f"{name} must be numeric ({units}); got {type(value).__name__}") from None
    if arr.ndim != ndim:
        raise FormatError(f"{name} must be a {ndim}-D array ({units}); got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = [int(k) for k in np.argwhere(bad)[0]]
        raise FormatError(f"{name} must be finite ({units}); {name}{idx} = {arr[tuple(idx)]!r} ({int(bad.sum())} non-finite value(s))")
    if not allow_negative and (arr < 0).any():
        idx = [int(k) for k in np.argwhere(arr < 0)[0]]
        raise FormatError(f"{name} must be >= 0 {units}; {name}{idx} = {arr[tuple(idx)]!r}")
    arr.setflags(write=False)
    return arr


def _scalar(value, name: str, units: str, *, low: float = -np.inf, optional: bool = True) -> float | None:
    if value is None:
        if optional:
            return None
        raise FormatError(f"{name} is required ({units})")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise FormatError(f"{name} must be a number ({units}); got {value!r}") from None
    if not np.isfinite(x) or x < low:
        raise FormatError(f"{name} must be finite and >= {low} {units}; got {value!r}")
    return x


@dataclass(frozen=True, eq=False)
class Measurement:
    """Measured data of one crossbar array (the in-memory form of the HDF5 schema).

    Parameters
    ----------
    conductance : array_like, shape (m, n)
        Read-back memristor conductance of each cell (S), finite and >= 0, defined at
        ``read_voltage`` with series parasitics removed.
    inputs : array_like, shape (k, m)
        Applied row source voltages (V), one vector per measurement.
    currents : array_like, shape (k, n)
        Measured column currents (A), positive out of the array into the sense ground.
    read_voltage : float
        Voltage (V) at which ``conductance`` was read, > 0.  Default 0.2 V.
    r_row, r_col, r_in, r_out : float
        Nominal (design) or known wire segment, driver and sense resistances (ohm), >= 0;
        the fit starts from these.
    r_on : float or None
        Nominal access-transistor on-resistance (ohm) of a 1T1R array; None for 1R.
    known : tuple of str
        Names among ``r_row, r_col, r_in, r_out, r_on`` whose values were measured and
        need no fitting.
    drive : {"left", "right", "both"}
        Driven end(s) of each row.
    sense : {"bottom", "top", "both"}
        Sensed end(s) of each column.
    v_gate : float or None
        Gate voltage (V) of the access transistors, when known.
    temperature : float or None
        Chip temperature (K), > 0, when known.
    noise_rms : float or None
        RMS read noise of one column-current reading (A), >= 0, when known (for example
        from repeated reads); the fit and the report compare residuals with it.
    conductance_uncertainty : float or None
        Relative standard uncertainty of ``conductance`` (dimensionless), when known.
    cell_read_currents : array_like, shape (m, n), or None
        Per-cell read currents at ``read_voltage`` (A).
    iv_voltage, iv_current : array_like, shape (s, p), or None
        Single-device I-V sweeps: voltage (V) and current (A).
    iv_cells : array_like of int, shape (s, 2), or None
        (row, column) of each swept device.
    title, description, source, licence : str
        Provenance: what the data are, who measured them and how, and the licence.
    synthetic : Mapping or None
        Hidden truth of a generated file (name -> float or array); None for real chips.
    device : Device or None
        Memristor I-V model of the cells (a registered model, see
        :func:`xbarsolve.register_model`); None for linear (ohmic) devices.
    transistor : Transistor or None
        Access-transistor model of a 1T1R array when a linear on-resistance ``r_on`` does
        not describe it (e.g. :class:`~xbarsolve.transistors.Level1`); give ``r_on`` or
        ``transistor``, not both.

    Examples
    --------
    >>> import numpy as np
    >>> from xbarsolve.validation import Measurement
    >>> G = np.full((4, 3), 20e-6)
    >>> V = np.full((2, 4), 0.1)
    >>> meas = Measurement(conductance=G, inputs=V, currents=V @ G, licence="CC0-1.0")
    >>> meas.shape, meas.n_vectors
    ((4, 3), 2)
    """

    conductance: np.ndarray
    inputs: np.ndarray
    currents: np.ndarray
    read_voltage: float = V_READ
    r_row: float = 1.0
    r_col: float = 1.0
    r_in: float = 1.0
    r_out: float = 1.0
    r_on: float | None = None
    known: tuple[str, ...] = ()
    drive: Literal["left", "right", "both"] = "left"
    sense: Literal["bottom", "top", "both"] = "bottom"
    v_gate: float | None = None
    temperature: float | None = None
    noise_rms: float | None = None
    conductance_uncertainty: float | None = None
    cell_read_currents: np.ndarray | None = None
    iv_voltage: np.ndarray | None = None
    iv_current: np.ndarray | None = None
    iv_cells: np.ndarray | None = None
    title: str = ""
    description: str = ""
    source: str = ""
    licence: str = ""
    synthetic: Mapping | None = field(default=None, repr=False)
    device: Device | None = None
    transistor: Transistor | None = None

    def __post_init__(self) -> None:
        s = object.__setattr__
        G = _array(self.conductance, "conductance", "S", 2, allow_negative=False)
        V = _array(self.inputs, "inputs", "V", 2)
        I = _array(self.currents, "currents", "A", 2)
        m, n = G.shape
        if V.shape[1] != m:
            raise FormatError(f"inputs must have shape (k, m) = (k, {m}) to match conductance {G.shape}; got {V.shape}")
        if I.shape != (V.shape[0], n):
            raise FormatError(f"currents must have shape (k, n) = ({V.shape[0]}, {n}) to match inputs {V.shape} and conductance {G.shape}; got {I.shape}")
        if V.shape[0] < 1:
            raise FormatError("inputs must hold at least one vector (k >= 1)")
        s(self, "conductance", G)
        s(self, "inputs", V)
        s(self, "currents", I)
        rv = _scalar(self.read_voltage, "read_voltage", "V", optional=False)
        if rv <= 0:
            raise FormatError(f"read_voltage must be > 0 V; got {self.read_voltage!r}")
        s(self, "read_voltage", rv)
        for name in ("r_row", "r_col", "r_in", "r_out"):
            s(self, name, _scalar(getattr(self, name), name, "ohm", low=0.0, optional=False))
        s(self, "r_on", _scalar(self.r_on, "r_on", "ohm", low=0.0))
        known = tuple(str(k) for k in self.known)
        for k in known:
            if k not in RESISTANCES or (k == "r_on" and self.r_on is None):
                allowed = RESISTANCES if self.r_on is not None else RESISTANCES[:-1]
                raise FormatError(f"known must name resistances among {allowed}; got {k!r}")
        s(self, "known", known)
        if self.drive not in _DRIVES:
            raise FormatError(f"drive must be one of {_DRIVES}; got {self.drive!r}")
        if self.sense not in _SENSES:
            raise FormatError(f"sense must be one of {_SENSES}; got {self.sense!r}")
        s(self, "v_gate", _scalar(self.v_gate, "v_gate", "V"))
        t = _scalar(self.temperature, "temperature", "K", low=0.0)
        if t is not None and t == 0:
            raise FormatError("temperature must be > 0 K")
        s(self, "temperature", t)
        s(self, "noise_rms", _scalar(self.noise_rms, "noise_rms", "A", low=0.0))
        s(self, "conductance_uncertainty", _scalar(self.conductance_uncertainty, "conductance_uncertainty", "1", low=0.0))
        if self.cell_read_currents is not None:
            c = _array(self.cell_read_currents, "cell_read_currents", "A", 2)
            if c.shape != (m, n):
                raise FormatError(f"cell_read_currents must have shape (m, n) = {(m, n)}; got {c.shape}")
            s(self, "cell_read_currents", c)
        sweeps = (self.iv_voltage, self.iv_current, self.iv_cells)
        if any(x is not None for x in sweeps):
            if any(x is None for x in sweeps):
                raise FormatError("iv_voltage, iv_current and iv_cells must be given together")
            iv_v = _array(self.iv_voltage, "iv_voltage", "V", 2)
            iv_i = _array(self.iv_current, "iv_current", "A", 2)
            cells = np.array(self.iv_cells)
            if iv_i.shape != iv_v.shape:
                raise FormatError(f"iv_current must have the shape of iv_voltage {iv_v.shape}; got {iv_i.shape}")
            if cells.shape != (iv_v.shape[0], 2) or not np.issubdtype(cells.dtype, np.integer):
                raise FormatError(f"iv_cells must be an integer array of shape ({iv_v.shape[0]}, 2); got {cells.dtype} {cells.shape}")
            if (cells < 0).any() or (cells[:, 0] >= m).any() or (cells[:, 1] >= n).any():
                raise FormatError(f"iv_cells must hold (row, column) indices inside the {m}x{n} array")
            cells = cells.astype(np.int64)
            cells.setflags(write=False)
            s(self, "iv_voltage", iv_v)
            s(self, "iv_current", iv_i)
            s(self, "iv_cells", cells)
        for name in ("title", "description", "source", "licence"):
            if not isinstance(getattr(self, name), str):
                raise FormatError(f"{name} must be a string; got {getattr(self, name)!r}")
        if self.device is not None and not isinstance(self.device, Device):
            raise FormatError(f"device must be None or an xbarsolve.devices model; got {self.device!r:.80}")
        if self.transistor is not None:
            if not isinstance(self.transistor, Transistor):
                raise FormatError(f"transistor must be None or an xbarsolve.transistors model; got {self.transistor!r:.80}")
            if self.r_on is not None:
                raise FormatError(f"give r_on (a linear on-resistance) or transistor (a model), not both; "
                                  f"got r_on={self.r_on!r} and transistor={self.transistor!r:.80}")
        check_plausible(self)

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, int]:
        """Array size ``(m, n)``."""
        return self.conductance.shape

    @property
    def n_vectors(self) -> int:
        """Number of measured input vectors ``k``."""
        return self.inputs.shape[0]

    @property
    def cell(self) -> str:
        """``"1T1R"`` when the file states a transistor on-resistance, else ``"1R"``."""
        return "1R" if self.r_on is None and self.transistor is None else "1T1R"

    @property
    def nominal(self) -> dict[str, float]:
        """Nominal (or known) resistances (ohm) by name."""
        names = RESISTANCES if self.r_on is not None else RESISTANCES[:-1]
        return {k: getattr(self, k) for k in names}

    def crossbar(self, **overrides):
        """The circuit model with the file's conductances and nominal resistances.

        Parameters
        ----------
        **overrides : float
            Resistances (ohm) to use instead of the nominal ones, by name
            (``r_row, r_col, r_in, r_out, r_on``).

        Returns
        -------
        Crossbar
        """
        from ..crossbar import Crossbar
        from ..transistors import Resistor

        values = dict(self.nominal)
        for k, v in overrides.items():
            if k not in values:
                raise ValueError(f"cannot override {k!r}; this {self.cell} model has {tuple(values)}")
            values[k] = v
        r_on = values.pop("r_on", None)
        device = {} if self.device is None else {"device": self.device}
        return Crossbar(
            self.conductance, drive=self.drive, sense=self.sense,
            transistor=self.transistor if r_on is None else Resistor(r_on), **device, **values,
        )

    def subset(self, vectors) -> "Measurement":
        """A copy holding only the input vectors selected by ``vectors`` (index or slice)."""
        idx = np.arange(self.n_vectors)[vectors]
        return dataclasses.replace(self, inputs=self.inputs[idx], currents=self.currents[idx])

    # ------------------------------------------------------------------- IO
    def save(self, path: str | os.PathLike) -> Path:
        """Write the measurement to an HDF5 file (atomically: temporary name, then rename).

        Parameters
        ----------
        path : str or path-like
            Destination ``.h5`` file; overwritten if it exists.

        Returns
        -------
        Path
        """
        import h5py

        from .. import __version__
        from ..registry import model_to_json

        path = Path(path)
        models = {name: model_to_json(getattr(self, name)) for name in ("device", "transistor")}
        with atomic_hdf5(path) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["xbarsolve_version"] = __version__
            f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            for name in ("title", "description", "source", "licence"):
                f.attrs[name] = getattr(self, name)
            ds = _put(f, "conductance", self.conductance, "S")
            ds.attrs["read_voltage"] = self.read_voltage
            ds.attrs["definition"] = "device"
            if self.conductance_uncertainty is not None:
                ds.attrs["relative_uncertainty"] = self.conductance_uncertainty
            _put(f, "inputs", self.inputs, "V")
            ds = _put(f, "currents", self.currents, "A")
            if self.noise_rms is not None:
                ds.attrs["noise_rms"] = self.noise_rms
            if self.cell_read_currents is not None:
                _put(f, "cell_read_currents", self.cell_read_currents, "A")
            if self.iv_voltage is not None:
                g = f.create_group("iv_sweeps")
                _put(g, "voltage", self.iv_voltage, "V")
                _put(g, "current", self.iv_current, "A")
                _put(g, "cells", self.iv_cells, "1")
            c = f.create_group("conditions")
            c.attrs["drive"] = self.drive
            c.attrs["sense"] = self.sense
            c.attrs["cell"] = self.cell
            c.attrs["known"] = list(self.known) if self.known else np.array([], dtype=h5py.string_dtype())
            for name, text in models.items():
                if text != "null":
                    c.attrs[name] = text
            for name, value in self.nominal.items():
                _put(c, name, value, "ohm")
            if self.v_gate is not None:
                _put(c, "v_gate", self.v_gate, "V")
            if self.temperature is not None:
                _put(c, "temperature", self.temperature, "K")
            if self.synthetic is not None:
                sg = f.create_group("synthetic")
                for key, value in self.synthetic.items():
                    if isinstance(value, str):
                        sg.attrs[key] = value
                    else:
                        unit = _SYNTHETIC_UNITS.get(key.split("/")[-1], "1")
                        _put(sg, key, value, unit)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Measurement":
        """Read and validate a measured-array HDF5 file.

        Raises
        ------
        FormatError
            Naming the offending field: not this format, a newer format version, a
            missing dataset, missing or wrong units, a shape mismatch, a non-finite value
            or a negative conductance.
        """
        import h5py

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise FormatError(f"{path}: not an HDF5 file ({exc})") from None
        with f:
            try:
                kw = _read_fields(f, path)
            except FormatError:
                raise
            except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise FormatError(f"{path}: the file is corrupt or malformed ({type(exc).__name__}: {exc})") from None
        try:
            return cls(**kw)
        except FormatError as exc:
            raise FormatError(f"{path}: {exc}") from None


def _read_fields(f, path) -> dict:
    """The keyword arguments of :class:`Measurement` stored in an open file."""
    import h5py

    from ..io import format_version
    from ..registry import model_from_json

    fmt = _text(f.attrs.get("format", ""))
    if fmt != FORMAT:
        raise FormatError(f"{path}: attribute /format is {fmt!r}, expected {FORMAT!r}")
    if "format_version" not in f.attrs:
        raise FormatError(f"{path}: attribute /format_version is missing")
    version = format_version(f.attrs["format_version"], path)
    if version > FORMAT_VERSION:
        raise FormatError(f"{path}: /format_version {version} is newer than this xbarsolve reads "
                          f"(<= {FORMAT_VERSION}); upgrade xbarsolve")
    if version < 1:
        raise FormatError(f"{path}: /format_version {version} is invalid (versions start at 1)")
    kw = {name: _text(f.attrs.get(name, "")) for name in ("title", "description", "source", "licence")}
    kw["conductance"] = _get(f, "conductance", "S", path)
    if "read_voltage" not in f["conductance"].attrs:
        raise FormatError(f"{path}: /conductance attribute read_voltage (V) is missing")
    kw["read_voltage"] = _number(f["conductance"].attrs["read_voltage"], "/conductance attribute read_voltage", path)
    definition = _text(f["conductance"].attrs.get("definition", "device"))
    if definition != "device":
        raise FormatError(f"{path}: /conductance definition {definition!r} is not supported; expected 'device'")
    if "relative_uncertainty" in f["conductance"].attrs:
        kw["conductance_uncertainty"] = _number(f["conductance"].attrs["relative_uncertainty"],
                                                "/conductance attribute relative_uncertainty", path)
    kw["inputs"] = _get(f, "inputs", "V", path)
    kw["currents"] = _get(f, "currents", "A", path)
    if "noise_rms" in f["currents"].attrs:
        kw["noise_rms"] = _number(f["currents"].attrs["noise_rms"], "/currents attribute noise_rms", path)
    if "cell_read_currents" in f:
        kw["cell_read_currents"] = _get(f, "cell_read_currents", "A", path)
    if "iv_sweeps" in f:
        kw["iv_voltage"] = _get(f, "iv_sweeps/voltage", "V", path)
        kw["iv_current"] = _get(f, "iv_sweeps/current", "A", path)
        kw["iv_cells"] = _get(f, "iv_sweeps/cells", "1", path, dtype=None)
    if "conditions" not in f or not isinstance(f["conditions"], h5py.Group):
        raise FormatError(f"{path}: group /conditions is missing")
    c = f["conditions"]
    for name in ("drive", "sense"):
        if name not in c.attrs:
            raise FormatError(f"{path}: /conditions attribute {name} is missing")
        kw[name] = _text(c.attrs[name])
    cell = _text(c.attrs.get("cell", "1R"))
    if cell not in _CELLS:
        raise FormatError(f"{path}: /conditions attribute cell must be one of {_CELLS}; got {cell!r}")
    kw["known"] = tuple(_text(k) for k in np.atleast_1d(c.attrs.get("known", [])))
    for name in ("device", "transistor"):
        if name in c.attrs:
            kw[name] = model_from_json(c.attrs[name], where=f"{path}: /conditions attribute {name!r}")
    has_r_on = cell == "1T1R" and kw.get("transistor") is None
    for name in RESISTANCES[:4] + (("r_on",) if has_r_on else ()):
        kw[name] = _number(_get(c, name, "ohm", path, where="/conditions/"), f"/conditions/{name}", path)
    for name, unit in (("v_gate", "V"), ("temperature", "K")):
        if name in c:
            kw[name] = _number(_get(c, name, unit, path, where="/conditions/"), f"/conditions/{name}", path)
    if "synthetic" in f:
        syn: dict = {k: _text(v) for k, v in f["synthetic"].attrs.items()}

        def visit(key, obj):
            if isinstance(obj, h5py.Dataset):
                syn[key] = read_dataset(obj, path)

        f["synthetic"].visititems(visit)
        kw["synthetic"] = syn
    return kw


def _number(value, field_: str, path) -> float:
    arr = np.asarray(value)
    if arr.size != 1 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise FormatError(f"{path}: {field_} must be a number; got {value!r:.80}")
    return float(arr.reshape(()))


#: Plausible magnitudes for a memristor crossbar, by quantity: (unit, smallest largest-value,
#: largest value, typical upper end used to guess a unit mistake, [(factor, word, symbol)]).
_PLAUSIBLE = {
    "conductance": ("S", 1e-11, 1e-2, 1e-3, [(1e-3, "millisiemens", "mS"), (1e-6, "microsiemens", "uS"),
                                             (1e-9, "nanosiemens", "nS")]),
    "inputs": ("V", 1e-3, 20.0, 5.0, [(1e-3, "millivolts", "mV")]),
    "currents": ("A", 1e-15, 1.0, 1e-2, [(1e-3, "milliamperes", "mA"), (1e-6, "microamperes", "uA"),
                                         (1e-9, "nanoamperes", "nA")]),
    "cell_read_currents": ("A", 1e-15, 1.0, 1e-2, [(1e-3, "milliamperes", "mA"), (1e-6, "microamperes", "uA"),
                                                   (1e-9, "nanoamperes", "nA")]),
}
#: Largest plausible value (ohm) of each resistance of the circuit model.
_MAX_RESISTANCE = {"r_row": 1e4, "r_col": 1e4, "r_in": 1e7, "r_out": 1e7, "r_on": 1e8}
#: Measured currents must lie within this factor of the ideal product V @ G (either way):
#: parasitics and nonlinearity change currents by tens of percent, a unit mistake by 1e3.
_CURRENT_RATIO = 300.0


def _unit_hint(name: str, values: np.ndarray) -> str:
    unit, _, high, typical, scales = _PLAUSIBLE[name]
    a = np.abs(values)
    top = float(a.max())
    lo = float(values.min())
    found = f"values {lo:.3g} to {float(values.max()):.3g} {unit}"
    for factor, word, symbol in scales:
        if top * factor <= typical:
            hint = f"{found} look like {word}; multiply by 1e{round(np.log10(factor))} or label them {symbol}"
            break
    else:
        hint = f"{found} are far too large"
    if name == "conductance" and top > 1e2:
        hint += " (or are they resistances in ohm? conductance is 1/R)"
    return f"{name}: {hint} (a memristor array has |{name}| <= {high:g} {unit})"


def check_plausible(meas: "Measurement") -> None:
    """Refuse values no memristor crossbar measurement can have, naming the likely unit mistake.

    Checked: the magnitude of the conductances (<= 10 mS, largest >= 10 pS), inputs
    (<= 20 V, largest >= 1 mV), currents (<= 1 A) and resistances (wire segments <= 10
    kOhm, drivers and senses <= 10 MOhm, ``r_on`` <= 100 MOhm), the read voltage
    (1 mV to 20 V), and that the measured currents are within a factor 300 of the ideal
    product ``V @ G`` (a unit mistake changes them by 1e3 or more).

    Raises
    ------
    FormatError
        Naming the quantity, the values found and the likely unit mistake.
    """
    for name in ("conductance", "inputs", "currents", "cell_read_currents"):
        values = getattr(meas, name)
        if values is None or values.size == 0:
            continue
        unit, low, high, _, _ = _PLAUSIBLE[name]
        top = float(np.abs(values).max())
        if top > high:
            raise FormatError(_unit_hint(name, values))
        if 0 < top < low:
            raise FormatError(f"{name}: values up to {top:.3g} {unit} are implausibly small for a memristor array "
                              f"(the largest should be >= {low:g} {unit}); were they given in {unit} but labelled "
                              f"with a smaller unit, or scaled twice?")
    for name, high in _MAX_RESISTANCE.items():
        value = getattr(meas, name)
        if value is not None and value > high:
            raise FormatError(f"{name} = {value:.6g} ohm is implausible for a memristor array (expected <= {high:g} ohm); "
                              f"check its unit: resistances are in ohm")
    if not 1e-3 <= meas.read_voltage <= 20.0:
        hint = "; it looks like millivolts: multiply by 1e-3" if meas.read_voltage > 20.0 else ""
        raise FormatError(f"read_voltage = {meas.read_voltage:.6g} V is implausible (expected 1 mV to 20 V){hint}")
    if meas.noise_rms is not None and meas.noise_rms > 1.0:
        raise FormatError(f"noise_rms = {meas.noise_rms:.6g} A is implausible (expected <= 1 A); noise_rms is in amperes")
    ideal = np.abs(meas.inputs @ meas.conductance).sum()
    measured = np.abs(meas.currents).sum()
    if ideal > 0 and measured > 0:
        ratio = measured / ideal
        if not 1 / _CURRENT_RATIO <= ratio <= _CURRENT_RATIO:
            exponent = int(np.round(np.log10(ratio) / 3) * 3)
            raise FormatError(
                f"currents are {ratio:.3g} times the ideal product inputs @ conductance (expected within a factor "
                f"{_CURRENT_RATIO:g}): the units of conductance, inputs and currents disagree by about 1e{exponent} "
                f"(for example uS labelled mS, mV labelled V or uA labelled mA); check the units of each"
            )


_SYNTHETIC_UNITS = {
    "conductance": "S", "r_row": "ohm", "r_col": "ohm", "r_in": "ohm", "r_out": "ohm", "r_on": "ohm",
    "noise_rms": "A", "adc_lsb": "A", "adc_full_scale": "A", "tia_noise_rms": "A", "programming_sigma": "S",
    "conductance_readback_sigma": "1", "v_gate": "V",
}


def _put(group, name: str, value, units: str):
    ds = create_dataset(group, name, value)
    ds.attrs["units"] = units
    return ds


def _get(group, name: str, units: str, path, *, where: str = "/", dtype=np.float64) -> np.ndarray:
    field_ = f"{where}{name}"
    if name not in group:
        raise FormatError(f"{path}: dataset {field_} ({units}) is missing")
    ds = group[name]
    if not hasattr(ds, "dtype"):
        raise FormatError(f"{path}: {field_} must be a dataset ({units}), not a group")
    got = ds.attrs.get("units")
    if got is None:
        raise FormatError(f"{path}: dataset {field_} has no 'units' attribute; expected {units!r}")
    if _text(got) != units:
        raise FormatError(f"{path}: dataset {field_} has units {_text(got)!r}; expected {units!r}")
    data = read_dataset(ds, path)
    if dtype is not None:
        kind = np.asarray(data).dtype
        if not np.issubdtype(kind, np.number) or np.issubdtype(kind, np.complexfloating):
            raise FormatError(f"{path}: dataset {field_} must be real numbers ({units}); got {ds.dtype}")
        data = np.asarray(data, dtype=dtype)
        if not np.isfinite(data).all():
            idx = [int(k) for k in np.argwhere(~np.isfinite(np.atleast_1d(data)))[0]]
            raise FormatError(f"{path}: dataset {field_} must be finite; {field_}{idx} is not ({int((~np.isfinite(data)).sum())} value(s))")
    return data
