"""Exact linear solver: block elimination of the crossbar's nodal system.

A linear array is a "ladder" of two families of wire chains joined by cells.  We
eliminate the chains of one family (each a tridiagonal system, inverted in O(q^2)),
which leaves a symmetric block-tridiagonal system on the nodes of the other family with
dense q x q diagonal blocks and diagonal couplings.  The blocks run along the longer side
of the array, so q = min(m, n) and the cost is O(max(m, n) q^3) dense work
(docs/model.md section 3).

Orientation "rows" eliminates the row chains (P = rows, S = columns); orientation
"columns" eliminates the column chains (P = columns, S = rows).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..crossbar import Crossbar
from ..results import SolveResult
from ..topology import Ladder, topology
from . import _kernels, _memory

__all__ = ["Factorization", "factorize"]


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_thread_blas():
    """Context that runs BLAS/LAPACK on one thread.

    The factorization makes hundreds of small LAPACK calls (q <= a few hundred); threaded
    OpenBLAS gains little there and, on a busy machine, loses 10-50x to thread
    synchronisation (measured: a 256 x 256 ``inv`` took 2 ms on one thread and 28-100 ms
    on two while another process was running).
    """
    return _blas_controller().limit(limits=1, user_api="blas")


@dataclass(frozen=True, eq=False)
class CellLadder:
    """A linear crossbar's :class:`~xbarsolve.topology.Ladder` with its cell conductances
    ``g`` (S, shape (p, q), ladder order): what the linear solvers eliminate."""

    ladder: Ladder
    g: np.ndarray

    rows_first = property(lambda self: self.ladder.rows_first)
    p = property(lambda self: self.ladder.p)
    q = property(lambda self: self.ladder.q)
    wp = property(lambda self: self.ladder.wp)
    tp0 = property(lambda self: self.ladder.tp0)
    tp1 = property(lambda self: self.ladder.tp1)
    c = property(lambda self: self.ladder.c)
    ts0 = property(lambda self: self.ladder.ts0)
    ts1 = property(lambda self: self.ladder.ts1)
    p_diag = property(lambda self: self.ladder.p_diag)
    s_diag = property(lambda self: self.ladder.s_diag)


def cell_ladder(xbar: Crossbar, rows_first: bool) -> CellLadder:
    """The ladder form of a linear crossbar with its cells (see :class:`CellLadder`)."""
    lad = topology(xbar).ladder(rows_first)
    return CellLadder(lad, lad.orient(xbar.cell_conductance()))


class Factorization:
    """The factored nodal system of a linear crossbar, reusable for any number of inputs.

    Build it with :func:`factorize`.  Holds O(max(m, n) min(m, n)^2) floats.

    Parameters
    ----------
    xbar : Crossbar
        A linear crossbar whose resistances are all > 0 (zero resistances use the sparse
        path, :func:`xbarsolve.solve.sparse.solve_sparse`).
    orientation : {"auto", "rows", "columns"}
        Which chains to eliminate; ``"auto"`` makes the blocks run along the shorter side.
    """

    def __init__(self, xbar: Crossbar, orientation: str = "auto"):
        if not xbar.is_linear:
            raise TypeError("Factorization needs a linear crossbar; nonlinear arrays are solved by Newton")
        if xbar.has_zero_resistance:
            raise ValueError("the block solver needs every resistance > 0 ohm; use the sparse path for zero resistances")
        if orientation == "auto":
            rows_first = xbar.n <= xbar.m
        elif orientation in ("rows", "columns"):
            rows_first = orientation == "rows"
        else:
            raise ValueError(f"orientation must be 'auto', 'rows' or 'columns'; got {orientation!r}")
        p, q = (xbar.m, xbar.n) if rows_first else (xbar.n, xbar.m)
        _memory.require(_memory.factorization_doubles(p, q), f"the block factorization of a {xbar.m}x{xbar.n} array",
                        _memory.array_hint(xbar.m, xbar.n))
        self.xbar = xbar
        lad = self._ladder = cell_ladder(xbar, rows_first)
        g = self._g = lad.g  # (p, q) cell conductances
        # P chains: tridiagonal with the cells (to S nodes, grounded for the Schur step) and terminals.
        self._W = _kernels.chain_inverses(g + lad.p_diag, np.ascontiguousarray(lad.wp))
        # S chains: their own wire and terminal conductances on the block diagonal.
        K = _kernels.schur_blocks(self._W, g, lad.s_diag)
        with single_thread_blas():
            self._Kinv = _kernels.block_factor(K, np.ascontiguousarray(lad.c))
        # h[a] maps the P terminal potential of chain a to its injection into the S block.
        self._h = g * (lad.tp0[:, None] * self._W[:, :, 0] + lad.tp1[:, None] * self._W[:, :, -1])

    @property
    def rows_first(self) -> bool:
        """True when the row chains are eliminated (blocks of size n)."""
        return self._ladder.rows_first

    @property
    def ladder(self) -> CellLadder:
        """The eliminated ladder (orientation, wire, terminal and cell conductances)."""
        return self._ladder

    @property
    def block_size(self) -> int:
        """Size q of the dense blocks."""
        return self._ladder.q

    # ------------------------------------------------------------------ solves
    def transfer_matrix(self) -> np.ndarray:
        """Transfer matrix ``T`` (S), shape (m, n): column currents are ``V @ T``.

        Computed with one block solve whose q right-hand sides are the sense (or, in
        the transposed orientation, the drive) terminals; by reciprocity the same
        solve serves both orientations.
        """
        lad = self._ladder
        _memory.require(_memory.transfer_doubles(lad.p, lad.q), f"the transfer matrix of a {self.xbar.m}x{self.xbar.n} array",
                        _memory.array_hint(self.xbar.m, self.xbar.n))
        with single_thread_blas():  # q x q x q products: small, see single_thread_blas
            if lad.ts0.any():
                F = np.zeros((lad.p, lad.q, lad.q))
                F[0] = np.diag(lad.ts0)
                F[-1] += np.diag(lad.ts1)
                Y = _kernels.block_solve(self._Kinv, lad.c, F)
            else:
                Y = _kernels.block_solve_last(self._Kinv, lad.c, np.diag(lad.ts1))
        M = _kernels.project_blocks(self._h, Y)
        return M if lad.rows_first else np.ascontiguousarray(M.T)

    def solve(self, V: np.ndarray, full: bool = False) -> SolveResult:
        """Solve for a batch of inputs ``V`` (volts), shape (batch, m).

        Parameters
        ----------
        V : ndarray, shape (batch, m)
            Source voltages (V).
        full : bool
            Also return node voltages and cell currents.
        """
        lad = self._ladder
        xbar = self.xbar
        V = np.asarray(V, dtype=np.float64)
        k = V.shape[0]
        p, q = lad.p, lad.q
        _memory.require((3 + (6 if full else 0)) * p * q * k, f"a block solve of {k} vectors on a {xbar.m}x{xbar.n} array",
                        "solve the batch in smaller parts")
        F = np.zeros((p, q, k))
        if lad.rows_first:
            F += self._h[:, :, None] * V.T[:, None, :]
        else:
            F[0] += lad.ts0[:, None] * V.T
            F[-1] += lad.ts1[:, None] * V.T
        with single_thread_blas():  # p small GEMMs in sequence; see single_thread_blas
            U = _kernels.block_solve(self._Kinv, lad.c, F)  # (p, q, k) S-node voltages
        if lad.rows_first:
            currents = (lad.ts0[:, None] * U[0] + lad.ts1[:, None] * U[-1]).T
        else:
            currents = np.einsum("aq,aqk->ka", self._h, U)
        if not full:
            return SolveResult(inputs=V, currents=np.ascontiguousarray(currents), method="block")
        # P-node voltages: x[a] = W[a] (g[a] * U[a] + terminal injections).
        X = np.einsum("apq,aqk->apk", self._W, self._g[:, :, None] * U)
        if lad.rows_first:
            X += (lad.tp0[:, None] * self._W[:, :, 0] + lad.tp1[:, None] * self._W[:, :, -1])[:, :, None] * V.T[:, None, :]
            v_top = np.moveaxis(X, 2, 0)  # (k, m, n)
            v_bottom = np.moveaxis(U, 2, 0)
        else:
            v_top = np.moveaxis(U, 2, 0).transpose(0, 2, 1)
            v_bottom = np.moveaxis(X, 2, 0).transpose(0, 2, 1)
        return _with_cells(xbar, V, currents, np.ascontiguousarray(v_top), np.ascontiguousarray(v_bottom), "block")

    def node_voltages(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Node voltages (V) of a batch ``V`` (batch, m) in ladder order, for callers that
        reduce them right away (the read power, :mod:`xbarsolve.cost.fields`).

        Returns ``(X, U)``, each (p, q, batch): the P-chain and S-chain node voltages
        (:attr:`rows_first`: X the cells' top nodes, U their bottom nodes; otherwise the
        other way round).  The values of ``solve(V, full=True)``, without its reordered
        copies and cell arrays, and with the P-chain products as batched matrix products
        (BLAS) instead of an ``einsum``.
        """
        lad = self._ladder
        V = np.asarray(V, dtype=np.float64)
        k = V.shape[0]
        p, q = lad.p, lad.q
        _memory.require(5 * p * q * k, f"the node voltages of {k} vectors on a {self.xbar.m}x{self.xbar.n} array",
                        "solve the batch in smaller parts")
        if lad.rows_first:
            F = np.multiply(self._h[:, :, None], V.T[:, None, :], out=np.empty((p, q, k)))
        else:
            F = np.zeros((p, q, k))
            F[0] += lad.ts0[:, None] * V.T
            F[-1] += lad.ts1[:, None] * V.T
        with single_thread_blas():
            U = _kernels.block_solve(self._Kinv, lad.c, F)
            # x[a] = W[a] (g[a] * u[a] + terminal injections), one product per chain.
            F = np.multiply(self._g[:, :, None], U, out=F)  # reused
            if lad.rows_first:
                F[:, 0] += lad.tp0[:, None] * V.T
                F[:, -1] += lad.tp1[:, None] * V.T
            X = np.matmul(self._W, F)
        return X, U

    def solve_from_sense(self, U: np.ndarray, full: bool = False) -> SolveResult:
        """Solve the array driven from its sense ends: voltages ``U`` (V), shape (batch, n),
        behind the sense resistors, the row sources held at 0 V.

        The nodal matrix is symmetric, so this is the adjoint of :meth:`solve`: with ``U``
        the gradient of a loss with respect to the column currents (per A), the currents
        (A), shape (batch, m), into the row sources are its gradient with respect to the
        row voltages (per V), ``U @ T.T``, and the node voltages are the adjoint
        potentials.  Same factorization, same cost as :meth:`solve`.
        """
        lad = self._ladder
        xbar = self.xbar
        U = np.asarray(U, dtype=np.float64)
        if U.ndim != 2 or U.shape[1] != xbar.n:
            raise ValueError(f"U must have shape (batch, {xbar.n}) (V); got {U.shape}")
        k = U.shape[0]
        p, q = lad.p, lad.q
        _memory.require((3 + (6 if full else 0)) * p * q * k, f"a block solve of {k} vectors on a {xbar.m}x{xbar.n} array",
                        "solve the batch in smaller parts")
        F = np.zeros((p, q, k))
        if lad.rows_first:  # the sense ends are the ends of the S chains
            F[0] += lad.ts0[:, None] * U.T
            F[-1] += lad.ts1[:, None] * U.T
        else:  # ... or of the P chains
            F += self._h[:, :, None] * U.T[:, None, :]
        with single_thread_blas():
            Y = _kernels.block_solve(self._Kinv, lad.c, F)
        if lad.rows_first:
            currents = np.einsum("aq,aqk->ka", self._h, Y)
        else:
            currents = (lad.ts0[:, None] * Y[0] + lad.ts1[:, None] * Y[-1]).T
        if not full:
            return SolveResult(inputs=U, currents=np.ascontiguousarray(currents), method="block")
        X = np.einsum("apq,aqk->apk", self._W, self._g[:, :, None] * Y)
        if lad.rows_first:
            v_top, v_bottom = np.moveaxis(X, 2, 0), np.moveaxis(Y, 2, 0)
        else:
            X += (lad.tp0[:, None] * self._W[:, :, 0] + lad.tp1[:, None] * self._W[:, :, -1])[:, :, None] * U.T[:, None, :]
            v_top, v_bottom = np.moveaxis(Y, 2, 0).transpose(0, 2, 1), np.moveaxis(X, 2, 0).transpose(0, 2, 1)
        return _with_cells(xbar, U, currents, np.ascontiguousarray(v_top), np.ascontiguousarray(v_bottom), "block")

def _with_cells(xbar: Crossbar, V, currents, v_top, v_bottom, method: str, cell=None) -> SolveResult:
    """Attach cell currents (``cell``, A, when the caller has them) and middle-node
    voltages of a linear array to node voltages."""
    if cell is None:
        cell = xbar.cell_conductance() * (v_top - v_bottom)
    v_mid = None
    if xbar.transistor is not None:
        G = xbar.G
        with np.errstate(divide="ignore", invalid="ignore"):
            drop = np.where(G > 0, cell / np.where(G > 0, G, 1.0), v_top - v_bottom)
        v_mid = v_top - drop
    return SolveResult(
        inputs=V, currents=np.ascontiguousarray(currents), v_top=v_top, v_bottom=v_bottom,
        v_mid=v_mid, cell_currents=cell, method=method,
    )


def factorize(xbar: Crossbar, orientation: str = "auto") -> Factorization:
    """Factor the nodal system of a linear crossbar once, for many solves.

    Parameters
    ----------
    xbar : Crossbar
        Linear array with all resistances > 0 ohm.
    orientation : {"auto", "rows", "columns"}
        Elimination order; ``"auto"`` picks blocks along the shorter side.

    Returns
    -------
    Factorization
        Call ``.solve(V)`` or ``.transfer_matrix()`` on it.
    """
    return Factorization(xbar, orientation)
