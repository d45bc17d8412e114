"""Exact read power of a crossbar: what the row sources deliver and where it is dissipated.

Every resistive element of the circuit (see :mod:`xbarsolve.crossbar`) dissipates
``g * dv**2``: the cells (memristor and access transistor together), the row-wire and
column-wire segments, the driver resistances ``r_in`` and the sense resistances ``r_out``
(whose far side is the sense amplifier's virtual ground at 0 V).  The sources deliver
``sum_i V_i * J_i``, with ``J_i`` the current row ``i`` draws; all of it leaves the row
wire through the cells, so ``J_i = sum_j I_cell(i, j)``.  Energy conservation (Tellegen's
theorem) makes the delivered power equal to the sum of the dissipations.

A linear array's node voltages are linear in the inputs, so every term is a quadratic form
``V @ P @ V`` with a symmetric (m, m) matrix ``P`` (S) that is computed once per crossbar
from the node voltages of the m unit inputs and cached on it.  A nonlinear array is solved
by Newton's method per input vector (``full=True``) and the terms are evaluated from its
node voltages and cell currents.

Summed over a batch, a linear array's read energy needs neither the forms nor a solve per
vector: with the batch's Gram matrix ``C = sum_w V_w V_w^T`` and any factor
``C = sum_k l_k l_k^T`` (:func:`gram_factor`), ``sum_w V_w^T P V_w = <P, C> = sum_k l_k^T P l_k``,
the read power of ``r <= min(m, batch)`` synthetic vectors ``l_k``, one full solve of them
(:func:`gram_energy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..crossbar import Crossbar
from ..results import SolveResult
from ..solve.linear import single_thread_blas
from ..topology import topology

__all__ = ["ReadPower", "read_power", "power_matrices", "solution_power", "gram_factor", "gram_energy", "TERMS"]

#: The dissipation terms, in the order of :class:`ReadPower`'s fields after ``total``.
TERMS = ("cells", "row_wires", "column_wires", "drivers", "sense")

_CACHE_KEY = "xbarsolve.cost.power_matrices"


@dataclass(frozen=True, eq=False)
class ReadPower:
    """Power (W) of one read per input vector, shape (batch,) each.

    Attributes
    ----------
    total : ndarray
        Power delivered by the row sources.
    cells : ndarray
        Dissipated in the cells (memristor and access transistor).
    row_wires, column_wires : ndarray
        Dissipated in the row-wire and column-wire segments.
    drivers : ndarray
        Dissipated in the driver resistances ``r_in``.
    sense : ndarray
        Dissipated in the sense resistances ``r_out``.
    """

    total: np.ndarray
    cells: np.ndarray
    row_wires: np.ndarray
    column_wires: np.ndarray
    drivers: np.ndarray
    sense: np.ndarray

    @property
    def dissipated(self) -> np.ndarray:
        """Sum of the dissipation terms (W); equals :attr:`total` by energy conservation."""
        return self.cells + self.row_wires + self.column_wires + self.drivers + self.sense

    @property
    def wires(self) -> np.ndarray:
        """Row- and column-wire dissipation together (W)."""
        return self.row_wires + self.column_wires

    @property
    def batch_size(self) -> int:
        return self.total.shape[0]


#: BLAS on one thread (:func:`xbarsolve.solve.linear.single_thread_blas`).  The products
#: here are small (m x m forms, m <= a few hundred); on a busy machine threaded OpenBLAS
#: lost 10-100x on them to thread synchronisation (measured: 6 forms of a 64 x 64 tile on
#: 256 vectors took 134 ms on two threads under load, against well under 1 ms of arithmetic).
one_blas_thread = single_thread_blas


def _conductances(r: np.ndarray) -> np.ndarray:
    """1/r, with 0 where r == 0: a zero resistance merges its nodes and dissipates nothing."""
    r = np.asarray(r, dtype=np.float64)
    return np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)


#: Which read-power term each resistive branch family of the topology dissipates into.
_FAMILY_TERM = {"r_row": "row_wires", "r_col": "column_wires", "r_in": "drivers", "r_out": "sense"}


def _branch_drops(xbar: Crossbar, V: np.ndarray, v_top: np.ndarray, v_bottom: np.ndarray) -> dict:
    """Voltage drops (batch, k) and conductances (k,) of the row wires, column wires,
    drivers and senses, keyed by term: the branches of the crossbar's topology
    (:meth:`xbarsolve.topology.Topology.families`) between the solved node voltages."""
    topo = topology(xbar)
    nodes = topo.nodes()
    k = v_top.shape[0]
    phi = np.zeros((k, nodes.n_nodes))
    phi[:, nodes.T.ravel()] = v_top.reshape(k, -1)
    phi[:, nodes.B.ravel()] = v_bottom.reshape(k, -1)
    phi[:, nodes.src] = topo.source_values(V)
    out = {term: ([], []) for term in _FAMILY_TERM.values()}
    for fam in topo.families(nodes):
        drops, gs = out[_FAMILY_TERM[fam.name]]
        drops.append(phi[:, fam.a] - phi[:, fam.b])
        gs.append(_conductances(fam.r))
    return {term: (np.concatenate(d, axis=1), np.concatenate(g)) for term, (d, g) in out.items()}


def solution_power(xbar: Crossbar, res: SolveResult) -> ReadPower:
    """Read power (W) from a solution with node voltages (``solve(..., full=True)``).

    Works for linear and nonlinear arrays alike: the wire, driver and sense terms are
    ``g * dv**2`` of the node voltages and the source power is
    ``sum_i V_i * sum_j I_cell(i, j)``.  The cell term is ``sum I_cell * (v_top - v_bottom)``
    plus, for a transistor with bulk junctions (bulk at 0 V), ``sum (j_M + j_B) * v_bottom``:
    the junction currents ``j`` leave the cell to ground, so the column wire receives
    ``I_cell - j_M - j_B`` at ``v_bottom``.

    Parameters
    ----------
    xbar : Crossbar
        The array that was solved.
    res : SolveResult
        Its solution, with ``v_top``, ``v_bottom`` and ``cell_currents``.
    """
    if res.v_top is None or res.cell_currents is None:
        raise ValueError("solution_power needs node voltages and cell currents: solve with full=True")
    topology(xbar).require_ladder("read_power")
    V, vt, vb, ic = res.inputs, res.v_top, res.v_bottom, res.cell_currents
    d = _branch_drops(xbar, V, vt, vb)
    cells = np.einsum("kij,kij->k", ic, vt - vb)
    tr = xbar.transistor
    if tr is not None and res.v_mid is not None and not tr.is_linear:
        from ._kernels import junction_currents

        leak = junction_currents(tr.junction_kernel, np.ascontiguousarray(res.v_mid), np.ascontiguousarray(vb),
                                 np.asarray(tr.parameters(), dtype=np.float64))
        cells = cells + np.einsum("kij,kij->k", leak, vb)
    return ReadPower(
        total=np.einsum("ki,kij->k", V, ic),
        cells=cells,
        **{term: drops**2 @ g for term, (drops, g) in d.items()},
    )


def _gram(drops: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``sum_e g_e a_e a_e^T`` for the columns ``a_e`` of ``drops`` (m, E), in blocks."""
    m = drops.shape[0]
    P = np.zeros((m, m))
    step = max(1, (1 << 22) // max(m, 1))  # ~32 MB per block
    for s in range(0, drops.shape[1], step):
        B = drops[:, s:s + step] * np.sqrt(g[s:s + step])
        P += B @ B.T
    return P


def power_matrices(xbar: Crossbar) -> dict[str, np.ndarray]:
    """The quadratic forms (S) of a linear crossbar's read power: ``p = V @ P[term] @ V``.

    Keys ``"total"`` and :data:`TERMS`; each value is a symmetric read-only (m, m) array.
    Computed once from the node voltages of the m unit inputs (one solve with m right-hand
    sides, then ``O(m^3 n)`` work; about 0.7 GB of temporaries for 576 x 64) and cached on
    the crossbar.

    Parameters
    ----------
    xbar : Crossbar
        A linear array.
    """
    P = xbar._cache.get(_CACHE_KEY)
    if P is not None:
        return P
    if not xbar.is_linear:
        raise TypeError("power_matrices needs a linear crossbar; a nonlinear array's power is not a quadratic form "
                        "(read_power solves it per vector)")
    from ..solve import solve

    topology(xbar).require_ladder("power_matrices")
    m = xbar.m
    res = solve(xbar, np.eye(m), full=True)
    vt, vb = res.v_top, res.v_bottom
    g_cell = xbar.cell_conductance()
    d = _branch_drops(xbar, np.eye(m), vt, vb)
    J = np.einsum("kij,ij->ki", vt - vb, g_cell)  # row currents of the unit inputs
    P = {
        "total": 0.5 * (J + J.T),
        "cells": _gram((vt - vb).reshape(m, -1), g_cell.ravel()),
        **{term: _gram(drops, g) for term, (drops, g) in d.items()},
    }
    for a in P.values():
        a.setflags(write=False)
    xbar._cache[_CACHE_KEY] = P
    return P


Method = Literal["auto", "forms", "solve"]


def uses_forms(xbar: Crossbar, batch: int, method: Method = "auto") -> bool:
    """Whether :func:`read_power` evaluates ``batch`` vectors by the cached quadratic forms
    (linear arrays: when they are cached or ``batch >= m``, where they cost less than a
    nodal solve per vector) rather than by solving every vector."""
    if method not in ("auto", "forms", "solve"):
        raise ValueError(f"method must be 'auto', 'forms' or 'solve'; got {method!r}")
    if not xbar.is_linear or method == "solve":
        return False
    return method == "forms" or _CACHE_KEY in xbar._cache or batch >= xbar.m


def read_power(xbar: Crossbar, V, *, method: Method = "auto", rtol: float = 1e-10) -> ReadPower:
    """Exact power of reading a crossbar with input vectors ``V``, split by where it goes.

    Parameters
    ----------
    xbar : Crossbar
        The array (any drive/sense option, linear or nonlinear).
    V : array_like, shape (m,) or (batch, m)
        Source voltages (V).
    method : {"auto", "forms", "solve"}
        Linear arrays: ``"forms"`` evaluates the cached quadratic forms
        (:func:`power_matrices`, built on first use), ``"solve"`` solves every vector
        (``solve(..., full=True)``) and evaluates :func:`solution_power`; ``"auto"`` uses
        the forms when they are cached or the batch has at least m vectors.  Nonlinear
        arrays are always solved.
    rtol : float
        Relative tolerance of the Newton solve of a nonlinear array (ignored for a linear
        one, which is exact to round-off).

    Returns
    -------
    ReadPower
        ``total``, ``cells``, ``row_wires``, ``column_wires``, ``drivers``, ``sense`` in
        watts, shape (batch,) each.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> from xbarsolve.cost import read_power
    >>> xbar = xs.Crossbar(np.full((16, 8), 30e-6), r_row=1.0, r_col=1.0)
    >>> p = read_power(xbar, np.full(16, 0.2))
    >>> bool(abs(p.total[0] - p.dissipated[0]) <= 1e-12 * p.total[0])
    True
    """
    from ..solve import as_batch, solve

    V = as_batch(xbar, V)
    if not uses_forms(xbar, V.shape[0], method):
        if xbar.is_linear:
            return solution_power(xbar, solve(xbar, V, full=True))
        return solution_power(xbar, solve(xbar, V, full=True, rtol=rtol))
    P = power_matrices(xbar)
    with one_blas_thread():
        return ReadPower(**{k: ((V @ P[k]) * V).sum(axis=1) for k in ("total", *TERMS)})


#: Eigenvalues of a Gram matrix below this times its largest (and m) are round-off and
#: dropped by :func:`gram_factor`; ``eigh`` is accurate to about that anyway.
_EIG_RTOL = 1e-15


def gram_factor(C: np.ndarray) -> np.ndarray:
    """Rows ``l_k`` (r, m) with ``sum_k l_k l_k^T = C`` to round-off, for a symmetric
    positive semidefinite Gram matrix ``C`` (m, m).

    From ``eigh``: ``l_k = sqrt(lambda_k) u_k`` for the eigenvalues above ``m * 1e-15``
    times the largest (the rest, tiny negatives of round-off included, are round-off), so
    ``r`` is the numerical rank.
    """
    C = np.asarray(C, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be a square Gram matrix; got shape {C.shape}")
    if not C.any():
        return np.zeros((0, C.shape[0]))
    lam, U = np.linalg.eigh(C)
    keep = lam > _EIG_RTOL * C.shape[0] * lam[-1]
    return (U[:, keep] * np.sqrt(lam[keep])).T


def gram_energy(xbar: Crossbar, L: np.ndarray) -> np.ndarray:
    """Per-term read-power sums (W, :data:`TERMS` order) of a linear crossbar over a batch
    whose Gram matrix is ``L^T L``: the read power of the rows of ``L`` (r, m) (from
    :func:`gram_factor`, or the vectors themselves), by one full solve of them
    (:func:`xbarsolve.cost.fields.full_power`).  Equals ``<P[term], L^T L>`` with the
    forms of :func:`power_matrices` to round-off, without building them."""
    from .fields import full_power

    if not xbar.is_linear:
        raise TypeError("gram_energy needs a linear crossbar; a nonlinear array's power is not a quadratic form")
    L = np.asarray(L, dtype=np.float64)
    if L.ndim != 2 or L.shape[1] != xbar.m:
        raise ValueError(f"L must have shape (r, {xbar.m}); got {L.shape}")
    topology(xbar).require_ladder("gram_energy")
    if L.shape[0] == 0:
        return np.zeros(len(TERMS))
    p = full_power(xbar, L)
    return np.array([float(getattr(p, k).sum()) for k in TERMS])


def has_forms(xbar: Crossbar) -> bool:
    """Whether the quadratic forms of :func:`power_matrices` are cached on the crossbar."""
    return _CACHE_KEY in xbar._cache
