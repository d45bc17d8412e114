"""Reader of ngspice's raw output files (binary and ASCII).

A raw file is a sequence of plots.  Each plot is a header of ``Key: value`` lines
(``Title``, ``Date``, ``Plotname``, ``Flags``, ``No. Variables``, ``No. Points``), a
``Variables:`` table with one ``index name type`` line per vector, and then either
``Binary:`` followed by the data as little-endian float64 (point-major: all variables of
point 0, then of point 1, ...; complex plots store two float64 per value) or ``Values:``
followed by the same numbers as text.  ngspice appends one plot per ``write`` when
``appendwrite`` is set, so one file may hold many operating points.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError

__all__ = ["RawPlot", "read_raw", "canonical_name"]


def canonical_name(name: str) -> str:
    """Canonical lower-case name of a raw-file or shared-library vector.

    Node voltages become ``v(node)`` and branch currents ``i(element)``, whichever of the
    spellings ngspice used (``node``, ``v(node)``, ``element#branch``, ``i(element)``).
    """
    s = name.strip().lower()
    if s.endswith("#branch"):
        return f"i({s[:-7]})"
    if (s.startswith("v(") or s.startswith("i(")) and s.endswith(")"):
        return s
    return f"v({s})"


@dataclass(frozen=True)
class RawPlot:
    """One plot of a raw file.

    Attributes
    ----------
    title, date, plotname, flags : str
        Header fields as written by ngspice.
    names : tuple of str
        Vector names as written in the file (e.g. ``v(t_0_0)``, ``i(vsense_b_3)``).
    types : tuple of str
        Vector types (``voltage``, ``current``, ``time``...).
    data : ndarray, shape (points, variables)
        Values in SI units (float64, or complex128 for complex plots).
    """

    title: str
    date: str
    plotname: str
    flags: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    data: np.ndarray
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({canonical_name(n): k for k, n in enumerate(self.names)})

    def __getitem__(self, name: str) -> np.ndarray:
        """Values of one vector over all points, looked up by any of its spellings."""
        key = canonical_name(name)
        try:
            return self.data[:, self._index[key]]
        except KeyError:
            raise KeyError(f"no vector {name!r} in plot {self.plotname!r}") from None

    def __contains__(self, name: str) -> bool:
        return canonical_name(name) in self._index

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{canonical name: values (points,)}`` for every vector."""
        return {canonical_name(n): self.data[:, k] for k, n in enumerate(self.names)}


def _read_line(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.find(b"\n", pos)
    if end < 0:
        raise FormatError(f"raw file ends inside a header (byte {pos})")
    return buf[pos:end].decode("latin-1").rstrip("\r"), end + 1


def read_raw(path: str | os.PathLike | bytes) -> list[RawPlot]:
    """Read every plot of an ngspice raw file.

    Parameters
    ----------
    path : str, path-like or bytes
        File name, or the file's contents as ``bytes``.

    Returns
    -------
    list of RawPlot
        The plots in file order.

    Raises
    ------
    FormatError
        If the file is truncated or not a raw file.

    Examples
    --------
    >>> plots = read_raw("xbar.raw")                       # doctest: +SKIP
    >>> plots[0]["v(t_0_0)"], plots[0]["i(vsense_b_0)"]    # doctest: +SKIP
    """
    if isinstance(path, (bytes, bytearray)):
        buf = bytes(path)
    else:
        with open(path, "rb") as fh:
            buf = fh.read()
    plots: list[RawPlot] = []
    pos = 0
    while pos < len(buf):
        if not buf[pos:].strip():
            break
        header: dict[str, str] = {}
        names: list[str] = []
        types: list[str] = []
        while True:
            line, pos = _read_line(buf, pos)
            key, sep, value = line.partition(":")
            key = key.strip().lower()
            if not sep and not line.strip():
                continue
            if key == "variables":
                try:
                    n_vars = int(header["no. variables"])
                except (KeyError, ValueError):
                    raise FormatError("raw file: 'Variables:' before a valid 'No. Variables:' line") from None
                for _ in range(n_vars):
                    line, pos = _read_line(buf, pos)
                    parts = line.split()
                    if len(parts) < 3:
                        raise FormatError(f"raw file: bad variable line {line!r}")
                    names.append(parts[1])
                    types.append(parts[2])
                continue
            if key in ("binary", "values"):
                break
            if not sep:
                raise FormatError(f"raw file: unexpected header line {line!r}")
            header[key] = value.strip()
        try:
            n_vars = int(header["no. variables"])
            n_points = int(header["no. points"])
        except (KeyError, ValueError):
            raise FormatError("raw file: a plot lacks 'No. Variables' or 'No. Points'") from None
        if n_vars < 0 or n_points < 0:
            raise FormatError(f"raw file: negative counts (No. Variables {n_vars}, No. Points {n_points})")
        if len(names) != n_vars:
            raise FormatError(f"raw file: {len(names)} variables listed, header says {n_vars}")
        flags = header.get("flags", "real").lower()
        complex_ = "complex" in flags
        width = 2 if complex_ else 1
        count = n_points * n_vars * width
        if key == "binary":
            nbytes = 8 * count
            if pos + nbytes > len(buf):
                raise FormatError(
                    f"raw file is truncated: plot {len(plots)} needs {nbytes} bytes of data, {len(buf) - pos} left"
                )
            data = np.frombuffer(buf, dtype="<f8", count=count, offset=pos).copy()
            pos += nbytes
        else:
            values: list[float] = []
            while len(values) < count:
                line, pos = _read_line(buf, pos)
                fields = line.split()
                if not fields:
                    continue
                # The first value of each point is preceded by its point index.
                if len(values) % (n_vars * width) == 0 and len(fields) > width:
                    fields = fields[1:]
                try:
                    for f in fields:
                        values.extend(float(x) for x in f.split(",") if x)
                except ValueError:
                    raise FormatError(f"raw file: {line.strip()[:60]!r} is not a line of numbers") from None
            data = np.asarray(values[:count], dtype=np.float64)
        data = data.view(np.complex128) if complex_ else data
        plots.append(
            RawPlot(
                title=header.get("title", ""), date=header.get("date", ""),
                plotname=header.get("plotname", ""), flags=flags,
                names=tuple(names), types=tuple(types), data=data.reshape(n_points, n_vars),
            )
        )
    if not plots:
        raise FormatError("raw file holds no plot")
    return plots
