"""Solvers: the exact linear paths (block elimination, nested dissection for square and
large arrays, a preconditioned CG for a few vectors on a fresh array, the transfer
matrix), the sparse path for zero resistances, and dispatch to Newton for nonlinear
arrays.  ``solve`` and ``transfer_matrix`` pick the fastest exact path by size and batch
(crossovers measured, see ``prefer_dissection`` and ``prefer_iterative``)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..crossbar import Crossbar
from ..results import SolveResult
from ..topology import topology
from . import _memory, _torch_dense
from ._torch_dense import Device
from .linear import Factorization, factorize
from .options import NewtonOptions
from .sparse import solve_sparse

__all__ = ["solve", "transfer_matrix", "factorize", "Factorization", "as_batch", "NewtonOptions", "Device"]

Method = Literal["auto", "transfer", "block", "iterative", "sparse"]
TransferMethod = Literal["auto", "block", "dissection"]


def as_batch(xbar: Crossbar, V, name: str = "V") -> np.ndarray:
    """Validate inputs (V; bits in scheme B) and return them as a float64 (batch, n_inputs) array."""
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


def transfer_matrix(xbar: Crossbar, method: TransferMethod = "auto", device: Device = "auto") -> np.ndarray:
    """Transfer matrix ``T`` (S), shape (m, n), of a linear crossbar: ``I = V @ T``.

    Exact to round-off; computed once per crossbar and cached on it.

    Parameters
    ----------
    xbar : Crossbar
        A linear crossbar.
    method : {"auto", "block", "dissection"}
        How a ``T`` not cached yet is computed: ``"block"`` the block elimination
        (:func:`factorize`), ``"dissection"`` the nested dissection
        (:func:`xbarsolve.solve.dissection.transfer_matrix_dissection`), ``"auto"`` the
        faster of the two for the array's shape (square and large arrays: dissection).
        Zero resistances always take the exact sparse path.  A cached ``T`` is returned
        whatever the method.
    device : {"auto", "cpu", "cuda"}
        Where the block elimination runs (docs/gpu.md): ``"cuda"`` on a CUDA device
        through PyTorch, ``"cpu"`` here, ``"auto"`` on a CUDA device when one is present
        and ``min(m, n) >= 512``, else on the CPU.  The dissection and the sparse path run
        on the CPU.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> xbar = xs.Crossbar(np.full((8, 4), 20e-6), r_row=2.0, r_col=2.0)
    >>> V = np.full(8, 0.2)
    >>> bool(np.allclose(V @ xs.transfer_matrix(xbar), xs.solve(xbar, V).currents[0], rtol=1e-12))
    True
    """
    if method not in ("auto", "block", "dissection"):
        raise ValueError(f"method must be 'auto', 'block' or 'dissection'; got {method!r}")
    _torch_dense.check_device(device)
    if method == "dissection" and device == "cuda":
        raise ValueError("method='dissection' runs on the CPU only; on device='cuda' use method='block' or 'auto'")
    T = xbar._cache.get("T")
    if T is None:
        if not xbar.is_linear:
            raise TypeError("transfer_matrix needs a linear crossbar; a nonlinear array has no transfer matrix")
        topo = topology(xbar)
        if topo.inputs_switch_cells:
            raise ValueError(f"scheme {xbar.scheme!r} has no transfer matrix: its input bits switch cells on and off, so the "
                             "column currents are not a linear map of the inputs (solve each bit vector with xs.solve)")
        from .dissection import prefer_dissection, transfer_matrix_dissection

        if topo.has_zero_resistance or not topo.is_ladder:  # C: linear in V, through the nodal system
            T = solve_sparse(xbar, np.eye(xbar.n_inputs)).currents
        elif method != "dissection" and (dev := _torch_dense.choose(device, _torch_dense.pays_off(*xbar.shape))):
            T = _torch_dense.transfer_matrix(xbar, dev)
        elif method == "dissection" or (method == "auto" and prefer_dissection(xbar.m, xbar.n)):
            _memory.require(_memory.dissection_doubles(xbar.m, xbar.n),
                            f"the nested-dissection transfer matrix of a {xbar.m}x{xbar.n} array",
                            "split the array into tiles")
            T = transfer_matrix_dissection(xbar)
        else:
            p, q = max(xbar.shape), min(xbar.shape)
            _memory.require(_memory.factorization_doubles(p, q) + _memory.transfer_doubles(p, q),
                            f"the transfer matrix of a {xbar.m}x{xbar.n} array", _memory.array_hint(xbar.m, xbar.n))
            T = factorize(xbar).transfer_matrix()
        T.setflags(write=False)
        xbar._cache["T"] = T
    return T


def solve(xbar: Crossbar, V, *, full: bool = False, method: Method = "auto", device: Device = "auto",
          **newton_options) -> SolveResult:
    """Solve a crossbar for one or many input vectors.

    Parameters
    ----------
    xbar : Crossbar
        The array.
    V : array_like, shape (m,) or (batch, m)
        Source voltages (V).
    full : bool
        Also return node voltages and cell currents (always computed directly).
    method : {"auto", "transfer", "block", "iterative", "sparse"}
        Linear arrays only (any other value for a nonlinear array is an error).
        ``"auto"`` uses the cached transfer matrix; on a fresh array it runs the
        preconditioned CG (``"iterative"``, driven to round-off) for a few vectors, builds
        ``T`` when the batch is at least as large as the block size (``V @ T`` then costs
        less than a direct solve), and solves by block elimination in between; ``full``
        results come from the block or sparse solver.  Zero resistances always take the
        exact sparse path, as do schemes B and C (``method="block"`` and
        ``method="iterative"`` refuse them).
    device : {"auto", "cpu", "cuda"}
        Linear arrays only: where the dense steps run (docs/gpu.md), the block
        elimination, ``T`` and ``V @ T``: ``"cuda"`` on a CUDA device through PyTorch,
        ``"cpu"`` here, ``"auto"`` on a CUDA device when one is present and the step is
        large (``min(m, n) >= 512``; for ``V @ T``, ``batch * m * n >= 2**28``), else on
        the CPU.  The CG and the sparse path run on the CPU (``method="iterative"`` or
        ``"sparse"`` with ``device="cuda"`` is an error).
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
    _torch_dense.check_device(device)
    if not xbar.is_linear:
        if device != "auto":
            raise ValueError(f"device={device!r} applies to linear arrays only; Newton runs on the CPU")
        if method != "auto":
            raise ValueError(f"method={method!r} applies to linear arrays only; a nonlinear array is solved by Newton "
                             "(choose its iteration with iteration=...)")
        from .newton import solve_newton

        return solve_newton(xbar, V, full=full, **newton_options)
    if newton_options:
        raise TypeError(f"unexpected options for a linear array: {sorted(newton_options)}")
    if method not in ("auto", "transfer", "block", "iterative", "sparse"):
        raise ValueError(f"method must be 'auto', 'transfer', 'block', 'iterative' or 'sparse'; got {method!r}")
    if method in ("iterative", "sparse") and device == "cuda":
        raise ValueError(f"method={method!r} runs on the CPU only; device='cuda' takes method 'auto', 'transfer' or 'block'")
    topo = topology(xbar)
    if method in ("block", "iterative"):
        topo.require_ladder(f"method={method!r}")
    if method == "sparse" or (
            (topo.has_zero_resistance or not topo.is_ladder) and not (method == "transfer" and not full)):
        return solve_sparse(xbar, V, full=full)
    if method == "iterative" and full:
        raise ValueError("method='iterative' returns column currents only; use full=False, or method='block' for node voltages")
    from .iterative import prefer_iterative, solve_small_batch

    if method == "iterative" or (method == "auto" and not full and "T" not in xbar._cache
                                 and prefer_iterative(xbar.m, xbar.n, V.shape[0])):
        return SolveResult(inputs=V, currents=solve_small_batch(xbar, V), method="iterative")
    if not full and (
        method == "transfer" or (method == "auto" and ("T" in xbar._cache or V.shape[0] >= min(xbar.shape)))
    ):
        T = transfer_matrix(xbar, device=device)
        dev = _torch_dense.choose(device, V.shape[0] * T.size >= _torch_dense.AUTO_MIN_PRODUCT)
        return SolveResult(inputs=V, currents=V @ T if dev is None else _torch_dense.product(V, T, dev), method="transfer")
    if dev := _torch_dense.choose(device, _torch_dense.pays_off(*xbar.shape)):
        return _torch_dense.factorize(xbar, dev, full=full).solve(xbar, V, full=full)
    return factorize(xbar).solve(V, full=full)
