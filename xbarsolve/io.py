"""HDF5 files of crossbars and solve results (h5py).

Layout (format version 1)::

    /                     attrs: format = "xbarsolve", format_version = 1, xbarsolve_version
    /crossbar             attrs: drive, sense, device (JSON), transistor (JSON or "null")
    /crossbar/G           (m, n) float64, attrs units = "S"
    /crossbar/r_row       () or (m, n-1) float64, units = "ohm"; likewise r_col, r_in, r_out
    /result               attrs: method
    /result/inputs        (batch, m), units = "V"
    /result/currents      (batch, n), units = "A"
    /result/v_top, v_bottom, v_mid (batch, m, n) "V"; cell_currents "A"   (when computed)
    /result/converged, iterations, residual (batch,)                     (iterative solves)

Files are written to a temporary name and renamed, so a crash never leaves half a file.
Every non-scalar dataset carries HDF5's Fletcher-32 checksum and every scalar one a
``checksum_crc32`` attribute; a file whose data fail them is refused (:class:`FormatError`).
Models are stored as ``{"class": NAME, "params": {...}}`` with ``NAME`` a name of
:mod:`xbarsolve.registry` (built-ins, or user models registered with
:func:`xbarsolve.register_model`); loading never imports or calls anything a file names.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ._atomic import atomic_hdf5, attribute_text as _text, create_dataset, read_dataset
from .crossbar import Crossbar
from .errors import FormatError
from .registry import model_from_json, model_to_json
from .results import SolveResult
from .topology import SCHEME_SPECS, scheme_spec

__all__ = ["FORMAT_VERSION", "save", "load", "write_crossbar", "read_crossbar", "write_result", "read_result"]

#: Newest format this version reads and writes.  Version 2 adds the array scheme (an attribute)
#: and the crossbar fields a scheme reads beyond the common ones (``SchemeSpec.params``: B's
#: supply lines and read voltage); a file whose crossbar needs neither (scheme A) is still
#: written as version 1 (``SchemeSpec.format_version``), so earlier xbarsolve versions keep
#: reading it.
FORMAT_VERSION = 2
#: The crossbar datasets every file holds; a scheme's ``r_*`` parameters are datasets too.
_CROSSBAR = ("G", "r_row", "r_col", "r_in", "r_out")
_UNITS = {
    "G": "S", "r_row": "ohm", "r_col": "ohm", "r_in": "ohm", "r_out": "ohm",
    **{name: "ohm" for spec in SCHEME_SPECS.values() for name in spec.params if name.startswith("r_")},
    "inputs": "V", "currents": "A", "v_top": "V", "v_bottom": "V", "v_mid": "V",
    "cell_currents": "A", "converged": "1", "iterations": "1", "residual": "A",
}


def _write(group, name: str, value) -> None:
    ds = create_dataset(group, name, value)
    if name in _UNITS:
        ds.attrs["units"] = _UNITS[name]


def _read(group, name: str, path, expect_units: bool = True):
    if name not in group:
        raise FormatError(f"{path}: {group.name}/{name} is missing")
    ds = group[name]
    if not hasattr(ds, "dtype"):
        raise FormatError(f"{path}: {ds.name} must be a dataset, not a group")
    if expect_units and _text(ds.attrs.get("units")) != _UNITS[name]:
        raise FormatError(f"{path}: {ds.name} must carry units = {_UNITS[name]!r}; found {ds.attrs.get('units')!r}")
    value = read_dataset(ds, path)
    dtype = np.asarray(value).dtype
    if not (np.issubdtype(dtype, np.number) or dtype == bool) or np.issubdtype(dtype, np.complexfloating):
        raise FormatError(f"{path}: {ds.name} must be real numbers ({_UNITS[name]}); got dtype {dtype}")
    return float(value) if np.ndim(value) == 0 and name.startswith("r_") else np.asarray(value)


def write_crossbar(group, xbar: Crossbar) -> None:
    """Write ``xbar`` into an open h5py group (datasets with units, models as JSON)."""
    for name in _CROSSBAR:
        _write(group, name, getattr(xbar, name))
    group.attrs["drive"] = xbar.drive
    group.attrs["sense"] = xbar.sense
    spec = scheme_spec(xbar.scheme)
    if spec.format_version > 1:  # format version 2; absent means scheme A
        group.attrs["scheme"] = xbar.scheme
    for name in spec.params:
        if name in _UNITS:
            _write(group, name, getattr(xbar, name))
        else:
            group.attrs[name] = getattr(xbar, name)
    group.attrs["device"] = model_to_json(xbar.device)
    group.attrs["transistor"] = model_to_json(xbar.transistor)


def read_crossbar(group, path="") -> Crossbar:
    """Read a :class:`Crossbar` written by :func:`write_crossbar` from an h5py group.

    ``path`` names the file in error messages.
    """
    where = f"{path}: {group.name}" if path else group.name
    kw = {name: _read(group, name, path or group.file.filename) for name in _CROSSBAR}
    for name in ("drive", "sense", "device", "transistor"):
        if name not in group.attrs:
            raise FormatError(f"{where} lacks attribute {name!r}")
    models = {name: model_from_json(group.attrs[name], where=f"{where} attribute {name!r}") for name in ("device", "transistor")}
    if "scheme" in group.attrs:
        kw["scheme"] = _text(group.attrs["scheme"])
        spec = SCHEME_SPECS.get(kw["scheme"])  # an unknown scheme: Crossbar names the valid ones
        for name in spec.params if spec is not None else ():
            if name in _UNITS:
                kw[name] = _read(group, name, path or group.file.filename)
            elif name not in group.attrs:
                raise FormatError(f"{where} lacks attribute {name!r} (scheme {spec.name})")
            else:
                kw[name] = group.attrs[name]
    try:
        return Crossbar(**kw, drive=_text(group.attrs["drive"]), sense=_text(group.attrs["sense"]), **models)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{where} does not describe a valid crossbar: {exc}") from None


def write_result(group, result: SolveResult) -> None:
    """Write a :class:`SolveResult` into an open h5py group."""
    group.attrs["method"] = result.method
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray):
            _write(group, f.name, value)


def read_result(group, path="") -> SolveResult:
    """Read a :class:`SolveResult` written by :func:`write_result`."""
    kw = {}
    for f in dataclasses.fields(SolveResult):
        if f.name == "method":
            continue
        if f.name in ("inputs", "currents") or f.name in group:
            kw[f.name] = _read(group, f.name, path or group.file.filename)
    try:
        return SolveResult(method=_text(group.attrs.get("method", "")), **kw)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{path}: {group.name} does not describe a valid solve result: {exc}") from None


def save(path, *, crossbar: Crossbar | None = None, result: SolveResult | None = None) -> Path:
    """Save a crossbar and/or a solve result to an HDF5 file, atomically.

    Parameters
    ----------
    path : str or Path
        Target file; replaced if it exists.
    crossbar : Crossbar, optional
    result : SolveResult, optional

    Returns
    -------
    Path
        The written file.
    """
    from . import __version__

    path = Path(path)
    with atomic_hdf5(path) as f:
        f.attrs["format"] = "xbarsolve"
        f.attrs["format_version"] = scheme_spec(crossbar.scheme).format_version if crossbar is not None else 1
        f.attrs["xbarsolve_version"] = __version__
        if crossbar is not None:
            write_crossbar(f.create_group("crossbar"), crossbar)
        if result is not None:
            write_result(f.create_group("result"), result)
    return path


def format_version(value, where) -> int:
    """The integer a ``format_version`` attribute holds; :class:`FormatError` unless it is one."""
    try:
        arr = np.asarray(value)
        number = arr.item() if arr.size == 1 else None
    except (TypeError, ValueError):
        number = None
    if isinstance(number, bytes):
        number = None
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if not isinstance(number, (int, np.integer)) or isinstance(number, bool):
        raise FormatError(f"{where}: attribute format_version must be an integer; got {value!r:.80}")
    return int(number)


def check_header(f, path) -> None:
    """Raise :class:`FormatError` unless an open file is an xbarsolve file we can read."""
    if _text(f.attrs.get("format")) != "xbarsolve":
        raise FormatError(f"{path} is not an xbarsolve file (no format='xbarsolve' attribute)")
    if "format_version" not in f.attrs:
        raise FormatError(f"{path}: attribute format_version is missing")
    version = format_version(f.attrs["format_version"], path)
    if version > FORMAT_VERSION:
        raise FormatError(f"{path} has format version {version}, newer than this xbarsolve reads ({FORMAT_VERSION}); upgrade xbarsolve")
    if version < 1:
        raise FormatError(f"{path} has an invalid format version {version} (versions start at 1)")


def load(path) -> dict:
    """Load an HDF5 file written by :func:`save`.

    Returns
    -------
    dict
        ``{"crossbar": Crossbar or None, "result": SolveResult or None}``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FormatError
        If the file is not a readable HDF5 file, is not an xbarsolve file, was written by
        a newer format version, lacks a required dataset or unit, fails a checksum, or
        names a model that is not registered (:func:`xbarsolve.register_model`).
    """
    import h5py

    if not Path(path).exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path} is not a readable HDF5 file: {exc}") from None
    with f:
        try:
            check_header(f, path)
            return {
                "crossbar": read_crossbar(_group(f, "crossbar", path), path) if "crossbar" in f else None,
                "result": read_result(_group(f, "result", path), path) if "result" in f else None,
            }
        except FormatError:
            raise
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise FormatError(f"{path} is corrupt: {exc}") from None


def _group(f, name: str, path):
    import h5py

    obj = f[name]
    if not isinstance(obj, h5py.Group):
        raise FormatError(f"{path}: /{name} must be a group")
    return obj
