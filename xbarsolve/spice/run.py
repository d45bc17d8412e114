"""Run ngspice on a crossbar deck: batch binary or shared library, same result type.

When ngspice fails to find an operating point at the tight tolerances of
:data:`~xbarsolve.spice.OPTIONS`, the deck is run once more at the looser
:data:`RETRY_OPTIONS` (with a ``RuntimeWarning`` when that succeeds: the reference is then
less precise); if that fails too, the :class:`NgspiceError` says what was tried.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from ..crossbar import Crossbar
from ..errors import XbarsolveError
from ..results import SolveResult
from ..topology import topology
from .netlist import OPTIONS, RAW_FILE, Deck, _alter_commands, build_deck, model_options
from .raw import canonical_name, read_raw

__all__ = ["solve", "NgspiceError", "ngspice_executable", "RETRY_OPTIONS"]

#: Tolerances of the one retry after ngspice failed to converge (ngspice's defaults are
#: reltol 1e-3, abstol 1e-12 A, vntol 1e-6 V, itl1 100: these are still far tighter).
RETRY_OPTIONS: dict[str, float | int] = {"reltol": 1e-9, "abstol": 1e-15, "vntol": 1e-12, "itl1": 2000}

Backend = Literal["batch", "shared"]

_INSTALL_HINT = "install it with `apt-get install ngspice libngspice0 libngspice0-dev` (Debian/Ubuntu)"
_WORKER = Path(__file__).with_name("_shared_worker.py")


class NgspiceError(XbarsolveError, RuntimeError):
    """ngspice failed, or its output does not match the deck (the message quotes its output)."""


class _NoOperatingPoint(NgspiceError):
    """ngspice ran but did not produce every operating point (worth one retry)."""


def ngspice_executable() -> str:
    """Path of the ``ngspice`` binary (``$XBARSOLVE_NGSPICE`` or the one on ``PATH``).

    Raises
    ------
    NgspiceError
        If ``$XBARSOLVE_NGSPICE`` is set but is not an executable file, or no ngspice is
        on ``PATH``.
    """
    env = os.environ.get("XBARSOLVE_NGSPICE")
    if env:
        exe = shutil.which(env)
        if exe is None:
            where = Path(env)
            why = ("is a folder" if where.is_dir() else "is not executable") if where.exists() else "does not exist"
            raise NgspiceError(f"XBARSOLVE_NGSPICE={env!r} {why}; point it at the ngspice binary, "
                               f"or unset it to use ngspice from PATH")
        return exe
    exe = shutil.which("ngspice")
    if not exe:
        raise NgspiceError(f"the ngspice binary was not found on PATH; {_INSTALL_HINT}")
    return exe


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run_batch(deck: Deck, V: np.ndarray, timeout: float | None) -> dict[str, np.ndarray]:
    exe = ngspice_executable()
    with tempfile.TemporaryDirectory(prefix="xbarsolve-ngspice-") as tmp:
        Path(tmp, "deck.cir").write_text(deck.text)
        try:
            proc = subprocess.run(
                [exe, "-b", "deck.cir"], cwd=tmp, capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise NgspiceError(f"ngspice did not finish within timeout={timeout} s") from None
        except OSError as exc:
            raise NgspiceError(f"cannot run ngspice {exe!r}: {exc.strerror or exc}") from None
        output = proc.stdout + proc.stderr
        raw = Path(tmp, RAW_FILE)
        if proc.returncode != 0 or not raw.exists():
            raise _NoOperatingPoint(f"ngspice -b exited with status {proc.returncode}:\n{_tail(output)}")
        plots = read_raw(raw)
    if len(plots) != V.shape[0] or any(p.plotname != "Operating Point" for p in plots):
        names = sorted({p.plotname for p in plots})
        raise _NoOperatingPoint(
            f"ngspice wrote {len(plots)} plot(s) {names} for {V.shape[0]} input vector(s); "
            f"an operating point failed:\n{_tail(output)}"
        )
    if any(p.names != plots[0].names for p in plots):
        raise NgspiceError("ngspice wrote different vectors for different input vectors")
    table = np.stack([p.data[-1] for p in plots])  # (batch, variables): the last (only) point
    return {canonical_name(name): table[:, k] for k, name in enumerate(plots[0].names)}


def _run_shared(deck: Deck, V: np.ndarray, timeout: float | None) -> dict[str, np.ndarray]:
    try:  # fail early, in this process, with an install hint
        import importlib.util

        if importlib.util.find_spec("PySpice") is None:
            raise ImportError
    except ImportError:
        raise NgspiceError("backend='shared' needs PySpice: pip install 'pyspice>=1.5'; "
                           f"and the ngspice shared library: {_INSTALL_HINT}") from None
    vectors, v_prev = [], None
    for v in V:
        vectors.append(_alter_commands(deck.sources, v_prev, v) if v_prev is not None else [])
        v_prev = v
    with tempfile.TemporaryDirectory(prefix="xbarsolve-ngspice-") as tmp:
        request, result = Path(tmp, "request.json"), Path(tmp, "result.npz")
        request.write_text(json.dumps({"deck": deck.text, "vectors": vectors}))
        try:
            proc = subprocess.run(
                [sys.executable, str(_WORKER), str(request), str(result)],
                cwd=tmp, capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise NgspiceError(f"the ngspice shared-library worker did not finish within timeout={timeout} s") from None
        if proc.returncode != 0 or not result.exists():
            hint = f"\n(ngspice shared library missing? {_INSTALL_HINT})" if "libngspice" in proc.stderr else ""
            error = NgspiceError if hint else _NoOperatingPoint
            raise error(
                f"the ngspice shared-library worker failed (status {proc.returncode}):\n"
                f"{_tail(proc.stdout + proc.stderr)}{hint}"
            )
        with np.load(result, allow_pickle=False) as data:
            names = [str(s) for s in data["names"]]
            table = np.array(data["values"], dtype=np.float64).reshape(V.shape[0], len(names))
            _shared_info.update(pid=int(data["pid"]), setcirc=str(data["setcirc"]),
                                plots=[str(s) for s in data["plots"]])
    return {canonical_name(name): table[:, k] for k, name in enumerate(names)}


#: Diagnostics of the last shared-library run (worker pid, ngspice's ``setcirc`` listing,
#: plots left in memory), for tests that check the worker design bounds memory.
_shared_info: dict = {}


def _assemble(xbar: Crossbar, V: np.ndarray, deck: Deck, values: dict[str, np.ndarray], full: bool) -> SolveResult:
    def get(key: str) -> np.ndarray:
        try:
            return values[key]
        except KeyError:
            raise NgspiceError(f"ngspice's output has no vector {key!r}") from None

    # Self-check: every source node must sit exactly at its input voltage; a failed
    # `alter` would show up here instead of as a plausible wrong answer.
    # ngspice's number parser may be off by an ulp or two, hence the 1e-14 relative slack.
    v_in = np.stack([get(f"v({name})") for name in deck.inputs], axis=1)
    bad = np.abs(v_in - V) > 1e-14 * np.abs(V).max(axis=1, keepdims=True)
    if bad.any():
        k, i = (int(x) for x in np.argwhere(bad)[0])
        raise NgspiceError(
            f"ngspice solved vector {k} with source vin_{i} at {float(v_in[k, i])!r} V instead of {float(V[k, i])!r} V"
        )
    m, n = xbar.shape
    currents = np.zeros((V.shape[0], n))
    for j, ammeter in deck.sense:
        currents[:, j] += get(f"i({ammeter})")
    if not full:
        return SolveResult(inputs=V, currents=currents, method="ngspice")

    def voltages(names: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
        out = np.empty((V.shape[0], m, n))
        for i in range(m):
            for j in range(n):
                name = names[i, j]
                if name == "0":
                    out[:, i, j] = 0.0
                elif name == "" and fallback is not None:
                    out[:, i, j] = fallback[:, i, j]
                else:
                    out[:, i, j] = get(f"v({name})")
        return out

    v_top, v_bottom = voltages(deck.top), voltages(deck.bottom)
    # An open cell's middle node is absent: it floats at the bottom node's potential.
    v_mid = None if deck.mid is None else voltages(deck.mid, fallback=v_bottom)
    G = np.broadcast_to(xbar.G, v_top.shape)
    drop = v_top - (v_bottom if v_mid is None else v_mid)
    cell = np.where(G > 0, xbar.device.current(drop, G), 0.0)
    _, opened = topology(xbar).switching(V, xbar.transistor)
    if opened is not None:
        # cells switched off by an open channel are left out of the deck (build_deck), so
        # they carry nothing whatever the node voltages around them
        cell = np.where(~opened[:, :, None], cell, 0.0)
    return SolveResult(
        inputs=V, currents=currents, v_top=v_top, v_bottom=v_bottom, v_mid=v_mid,
        cell_currents=cell, method="ngspice",
    )


def solve(
    xbar: Crossbar,
    V,
    *,
    full: bool = False,
    backend: Backend = "batch",
    options: dict | None = None,
    timeout: float | None = None,
) -> SolveResult:
    """Solve a crossbar with ngspice (the reference our exact solver is checked against).

    Parameters
    ----------
    xbar : Crossbar
        Any crossbar whose device and transistor models can write themselves into a
        netlist (``spice_element``).
    V : array_like, shape (m,) or (batch, m)
        Input source voltages (V).  All vectors go into one deck (one ``op`` each).
    full : bool
        Also return node voltages ``v_top``, ``v_bottom``, ``v_mid`` (V) and the cell
        currents (A), computed from the node voltages with ``xbar.device.current``.
    backend : {"batch", "shared"}
        ``"batch"``: run the ``ngspice -b`` binary in a temporary directory and read the
        binary raw file it writes (robust for large decks, no Python dependency).
        ``"shared"``: ngspice's shared library through PySpice (GPL-3), driven from a
        short-lived worker process so that loaded circuits never accumulate.
    options : dict, optional
        ngspice options overriding :data:`xbarsolve.spice.OPTIONS`.
    timeout : float, optional
        Wall-clock limit (s) for the ngspice run.

    Returns
    -------
    SolveResult
        ``method="ngspice"``; ``currents`` (batch, n) in amperes, the total current out of
        each column into its sense ground(s), read from the 0-V ammeters.

    Raises
    ------
    NgspiceError
        If ngspice (or, for ``backend="shared"``, PySpice or libngspice) is missing, fails,
        or returns an answer inconsistent with the deck.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> xbar = xs.Crossbar(np.full((8, 4), 20e-6))
    >>> V = np.full(8, 0.2)
    >>> ref = xs.spice.solve(xbar, V)                                  # doctest: +SKIP
    >>> np.allclose(ref.currents, xs.solve(xbar, V).currents, rtol=1e-9)  # doctest: +SKIP
    True
    """
    from ..solve import as_batch

    V = as_batch(xbar, V)
    if backend not in ("batch", "shared"):
        raise ValueError(f"backend must be 'batch' or 'shared'; got {backend!r}")
    run, analysis = (_run_batch, "control") if backend == "batch" else (_run_shared, "none")
    save = "all" if full else "currents"  # without node voltages the raw file holds only what is read
    deck = build_deck(xbar, V, options=options, analysis=analysis, save=save)
    try:
        values = run(deck, V, timeout)
    except _NoOperatingPoint as first:
        tried = {**OPTIONS, **model_options(xbar), **(options or {})}
        looser = _looser(tried)
        tight = _options_text(tried, RETRY_OPTIONS)
        if not looser:
            raise NgspiceError(f"ngspice failed at {tight} (already at or looser than the retry tolerances, "
                               f"so not retried): {first}") from None
        deck = build_deck(xbar, V, options={**(options or {}), **looser}, analysis=analysis, save=save)
        try:
            values = run(deck, V, timeout)
        except _NoOperatingPoint as second:
            raise NgspiceError(f"ngspice failed at {tight} and again at the looser {_options_text(looser, looser)}: "
                               f"{second}") from None
        warnings.warn(f"ngspice failed at {tight} and converged only at the looser {_options_text(looser, looser)}; "
                      f"this reference is less precise than usual", RuntimeWarning, stacklevel=2)
    return _assemble(xbar, V, deck, values, full)


def _looser(tried: dict) -> dict:
    """The retry options that loosen what was tried (tolerances up, iteration limit up)."""
    out = {}
    for key, value in RETRY_OPTIONS.items():
        current = tried.get(key)
        if not isinstance(current, (int, float)) or current < value:
            out[key] = value
    return out


def _options_text(options: dict, keys) -> str:
    return ", ".join(f"{k}={options[k]:g}" for k in keys if k in options)
