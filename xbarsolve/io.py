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
Models are stored as ``{"class": "module:QualName", "params": {...}}``; a user's own
model loads when its module is importable.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .crossbar import Crossbar
from .errors import FormatError
from .results import SolveResult

__all__ = ["FORMAT_VERSION", "save", "load", "write_crossbar", "read_crossbar", "write_result", "read_result"]

FORMAT_VERSION = 1
_UNITS = {
    "G": "S", "r_row": "ohm", "r_col": "ohm", "r_in": "ohm", "r_out": "ohm",
    "inputs": "V", "currents": "A", "v_top": "V", "v_bottom": "V", "v_mid": "V",
    "cell_currents": "A", "converged": "1", "iterations": "1", "residual": "A",
}


def _model_to_json(model) -> str:
    if model is None:
        return "null"
    cls = type(model)
    params = {f.name: _jsonable(getattr(model, f.name)) for f in dataclasses.fields(model)} if dataclasses.is_dataclass(model) else {}
    return json.dumps({"class": f"{cls.__module__}:{cls.__qualname__}", "params": params})


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _model_from_json(text: str, field: str):
    spec = json.loads(text)
    if spec is None:
        return None
    module, _, qualname = spec["class"].partition(":")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise FormatError(f"{field} model {spec['class']!r} cannot be imported: {exc}") from None
    params = {k: (np.asarray(v["__array__"]) if isinstance(v, dict) and "__array__" in v else v) for k, v in spec["params"].items()}
    return obj(**params)


def _write(group, name: str, value) -> None:
    ds = group.create_dataset(name, data=np.asarray(value))
    if name in _UNITS:
        ds.attrs["units"] = _UNITS[name]


def _read(group, name: str, expect_units: bool = True):
    if name not in group:
        raise FormatError(f"{group.name}/{name} is missing")
    ds = group[name]
    if expect_units and ds.attrs.get("units") != _UNITS[name]:
        raise FormatError(f"{ds.name} must carry units = {_UNITS[name]!r}; found {ds.attrs.get('units')!r}")
    value = ds[()]
    return float(value) if np.ndim(value) == 0 and name.startswith("r_") else np.asarray(value)


def write_crossbar(group, xbar: Crossbar) -> None:
    """Write ``xbar`` into an open h5py group (datasets with units, models as JSON)."""
    for name in ("G", "r_row", "r_col", "r_in", "r_out"):
        _write(group, name, getattr(xbar, name))
    group.attrs["drive"] = xbar.drive
    group.attrs["sense"] = xbar.sense
    group.attrs["device"] = _model_to_json(xbar.device)
    group.attrs["transistor"] = _model_to_json(xbar.transistor)


def read_crossbar(group) -> Crossbar:
    """Read a :class:`Crossbar` written by :func:`write_crossbar` from an h5py group."""
    try:
        kw = {name: _read(group, name) for name in ("G", "r_row", "r_col", "r_in", "r_out")}
        return Crossbar(
            **kw, drive=str(group.attrs["drive"]), sense=str(group.attrs["sense"]),
            device=_model_from_json(group.attrs["device"], "device"),
            transistor=_model_from_json(group.attrs["transistor"], "transistor"),
        )
    except KeyError as exc:
        raise FormatError(f"{group.name} lacks attribute {exc}") from None


def write_result(group, result: SolveResult) -> None:
    """Write a :class:`SolveResult` into an open h5py group."""
    group.attrs["method"] = result.method
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray):
            _write(group, f.name, value)


def read_result(group) -> SolveResult:
    """Read a :class:`SolveResult` written by :func:`write_result`."""
    kw = {}
    for f in dataclasses.fields(SolveResult):
        if f.name == "method":
            continue
        if f.name in ("inputs", "currents") or f.name in group:
            kw[f.name] = _read(group, f.name)
    return SolveResult(method=str(group.attrs.get("method", "")), **kw)


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
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = "xbarsolve"
            f.attrs["format_version"] = FORMAT_VERSION
            from . import __version__

            f.attrs["xbarsolve_version"] = __version__
            if crossbar is not None:
                write_crossbar(f.create_group("crossbar"), crossbar)
            if result is not None:
                write_result(f.create_group("result"), result)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_header(f, path) -> None:
    """Raise :class:`FormatError` unless an open file is an xbarsolve file we can read."""
    if f.attrs.get("format") != "xbarsolve":
        raise FormatError(f"{path} is not an xbarsolve file (no format='xbarsolve' attribute)")
    version = int(f.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise FormatError(f"{path} has format version {version}, newer than this xbarsolve reads ({FORMAT_VERSION}); upgrade xbarsolve")
    if version < 1:
        raise FormatError(f"{path} has an invalid format version {version}")


def load(path) -> dict:
    """Load an HDF5 file written by :func:`save`.

    Returns
    -------
    dict
        ``{"crossbar": Crossbar or None, "result": SolveResult or None}``.

    Raises
    ------
    FormatError
        If the file is not a readable HDF5 file, is not an xbarsolve file, was written by
        a newer format version, or lacks a required dataset or unit.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path} is not a readable HDF5 file: {exc}") from None
    with f:
        check_header(f, path)
        try:
            return {
                "crossbar": read_crossbar(f["crossbar"]) if "crossbar" in f else None,
                "result": read_result(f["result"]) if "result" in f else None,
            }
        except (OSError, KeyError, TypeError) as exc:
            raise FormatError(f"{path} is corrupt: {exc}") from None
