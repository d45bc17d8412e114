"""Solvers: the exact linear path (block elimination, transfer matrix), the sparse path
for zero resistances, and dispatch to Newton for nonlinear arrays."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..crossbar import Crossbar
from ..results import SolveResult
from . import _memory
from .linear import Factorization, factorize
from .options import NewtonOptions
from ..topology import topology
from .sparse import solve_sparse

__all__ = ["solve", "transfer_matrix", "factorize", "Factorization", "as_batch", "NewtonOptions"]

Method = Literal["auto", "transfer", "block", "sparse"]


def as_batch(xbar: Crossbar, V, name: str = "V") -> np.ndarray:
    """Validate inputs (V; bits in scheme B) and return them as a float64 (batch, n_inputs) array."""
    from ..topology import topology

    arr = np.asarray(V, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    k, topo = xbar.n_inputs, topology(xbar)
    if arr.ndim != 2 or arr.shape[1] != k:
        raise ValueError(f"{name} must have shape ({k},) or (batch, {k}) {topo.input_unit} for a {xbar.m}x{xbar.n} array; "
                         f"got shape {np.shape(V)}")
    if not np.isfinite(arr).all():
        idx = tuple(int(k) for k in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite; {name}{list(idx)} = {float(arr[idx])!r}")
    topo.check_inputs(arr, name)
    return np.ascontiguousarray(arr)


def transfer_matrix(xbar: Crossbar) -> np.ndarray:
    """Transfer matrix ``T`` (S), shape (m, n), of a linear crossbar: ``I = V @ T``.

    Exact to round-off; computed once per crossbar and cached on it.

    Parameters
    ----------
    xbar : Crossbar
        A linear crossbar.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> xbar = xs.Crossbar(np.full((8, 4), 20e-6), r_row=2.0, r_col=2.0)
    >>> V = np.full(8, 0.2)
    >>> bool(np.allclose(V @ xs.transfer_matrix(xbar), xs.solve(xbar, V).currents[0], rtol=1e-12))
    True
    """
    T = xbar._cache.get("T")
    if T is None:
        if not xbar.is_linear:
            raise TypeError("transfer_matrix needs a linear crossbar; a nonlinear array has no transfer matrix")
        topo = topology(xbar)
        if topo.inputs_switch_cells:
            raise ValueError(f"scheme {xbar.scheme!r} has no transfer matrix: its input bits switch cells on and off, so the "
                             "column currents are not a linear map of the inputs (solve each bit vector with xs.solve)")
        if topo.has_zero_resistance or not topo.is_ladder:  # C: linear in V, through the nodal system
            T = solve_sparse(xbar, np.eye(xbar.n_inputs)).currents
        else:
            p, q = max(xbar.shape), min(xbar.shape)
            _memory.require(_memory.factorization_doubles(p, q) + _memory.transfer_doubles(p, q),
                            f"the transfer matrix of a {xbar.m}x{xbar.n} array", _memory.array_hint(xbar.m, xbar.n))
            T = factorize(xbar).transfer_matrix()
        T.setflags(write=False)
        xbar._cache["T"] = T
    return T


def solve(xbar: Crossbar, V, *, full: bool = False, method: Method = "auto", **newton_options) -> SolveResult:
    """Solve a crossbar for one or many input vectors.

    Parameters
    ----------
    xbar : Crossbar
        The array.
    V : array_like, shape (m,) or (batch, m)
        Source voltages (V).
    full : bool
        Also return node voltages and cell currents (always computed directly).
    method : {"auto", "transfer", "block", "sparse"}
        Linear arrays only (any other value for a nonlinear array is an error).  ``"auto"`` uses the cached transfer matrix, or builds it when
        the batch is at least as large as the block size (when ``V @ T`` costs less than
        a direct block solve), else solves directly; zero resistances always take the
        exact sparse path, as do schemes B and C (``method="block"`` refuses them).
    **newton_options
        Nonlinear arrays only: ``options=`` a :class:`NewtonOptions`, or its fields as
        keywords (``iteration=``, ``rtol=``, ...), passed to
        :func:`xbarsolve.solve.newton.solve_newton`.

    Returns
    -------
    SolveResult
        ``currents`` has shape (batch, n) in amperes.
    """
    V = as_batch(xbar, V)
    if not xbar.is_linear:
        if method != "auto":
            raise ValueError(f"method={method!r} applies to linear arrays only; a nonlinear array is solved by Newton "
                             "(choose its iteration with iteration=...)")
        from .newton import solve_newton

        return solve_newton(xbar, V, full=full, **newton_options)
    if newton_options:
        raise TypeError(f"unexpected options for a linear array: {sorted(newton_options)}")
    if method not in ("auto", "transfer", "block", "sparse"):
        raise ValueError(f"method must be 'auto', 'transfer', 'block' or 'sparse'; got {method!r}")
    topo = topology(xbar)
    if method == "block":
        topo.require_ladder("method='block'")
    if method == "sparse" or (
            (topo.has_zero_resistance or not topo.is_ladder) and not (method == "transfer" and not full)):
        return solve_sparse(xbar, V, full=full)
    if not full and (
        method == "transfer" or (method == "auto" and ("T" in xbar._cache or V.shape[0] >= min(xbar.shape)))
    ):
        return SolveResult(inputs=V, currents=V @ transfer_matrix(xbar), method="transfer")
    return factorize(xbar).solve(V, full=full)
