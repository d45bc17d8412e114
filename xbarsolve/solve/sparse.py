"""General sparse nodal solver (assemble, SuperLU, solve the batch).

This path is what badcrossbar and MemTorch do.  We keep it for what the block solver
cannot take (zero resistances, which are exact here: the nodes a 0-ohm branch joins are
merged) and as the baseline of the benchmarks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

from ..crossbar import Crossbar
from ..errors import SingularNetworkError
from ..results import SolveResult
from ..topology import merge_zero_branches, nodal_matrices, topology
from .linear import _with_cells

__all__ = ["solve_sparse", "branches"]


def branches(xbar: Crossbar) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Two-terminal branches of a linear crossbar (:meth:`xbarsolve.topology.Topology.branches`),
    every cell on (no input switching a cell off).

    Node numbering (:meth:`~xbarsolve.topology.Topology.nodes`): ``T(i, j) = i n + j``,
    ``B(i, j) = m n + i n + j``, source ``i`` at ``2 m n + i`` and ground at ``2 m n + m``.

    Returns
    -------
    a, b : ndarray of int
        End nodes of each branch.
    r : ndarray
        Branch resistances (ohm); a cell of conductance 0 S is left out.
    n_nodes : int
        Number of nodes, fixed ones included.
    """
    topo = topology(xbar)
    nodes = topo.nodes()
    return (*topo.branches(xbar.cell_conductance(), nodes), nodes.n_nodes)


def solve_sparse(xbar: Crossbar, V: np.ndarray, full: bool = False) -> SolveResult:
    """Solve a linear crossbar by sparse LU of its full nodal system.

    Parameters
    ----------
    xbar : Crossbar
        Any linear crossbar; zero resistances are allowed.
    V : ndarray, shape (batch, m)
        Source voltages (V).
    full : bool
        Also return node voltages and cell currents.

    Raises
    ------
    SingularNetworkError
        If two fixed potentials are shorted or a node has no path to a fixed potential.
    """
    m, n = xbar.shape
    V = np.asarray(V, dtype=np.float64)
    topo = topology(xbar)
    nodes = topo.nodes()
    g_cell = xbar.cell_conductance()
    # the rows whose cells the inputs open (Topology.switching; linear transistors open
    # their channels, 1R cells open); one factorization per pattern
    _, opened = topo.switching(V, xbar.transistor)
    on = None if opened is None else ~opened
    groups = [(np.arange(V.shape[0]), None)] if on is None else [
        (np.flatnonzero((on == row).all(axis=1)), row) for row in np.unique(on, axis=0)]
    u = np.concatenate([topo.source_values(V), np.zeros((V.shape[0], 1))], axis=1)  # fixed potentials (k, n_fixed)
    v_top, v_bottom = np.zeros((V.shape[0], m, n)), np.zeros((V.shape[0], m, n))
    for sel, row in groups:
        abr = branches(xbar)[:3] if row is None else topo.branches(g_cell * row[:, None], nodes)
        v_top[sel], v_bottom[sel] = _node_voltages(nodes, *abr, u[sel])
    cells_g = g_cell if on is None else g_cell[None] * on[:, :, None]
    cell = cells_g * (v_top - v_bottom)
    # By KCL the column wire j receives current only from its cells, so the total
    # current into its sense ground(s) is their sum, whatever the wire resistances.
    currents = cell.sum(axis=1)
    if not full:
        return SolveResult(inputs=V, currents=currents, method="sparse")
    return _with_cells(xbar, V, currents, v_top, v_bottom, "sparse", cell=cell)


def _node_voltages(nodes, a, b, r, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Potentials (V) of every cell's top and bottom node, (k, m, n) each, for the
    branches ``a``, ``b``, ``r`` (ohm) and the fixed potentials ``u`` (k, n_fixed)."""
    index, nu = merge_zero_branches(a, b, r, nodes)  # the nodes 0-ohm branches join are one
    n_fixed = nodes.n_nodes - nodes.n_unknown
    n_idx = nu + n_fixed  # unknowns, then the fixed potentials [sources..., 0]
    zero = r == 0
    ia, ib, g = index[a[~zero]], index[b[~zero]], 1.0 / r[~zero]
    keep = ia != ib
    ia, ib, g = ia[keep], ib[keep], g[keep]
    # Every unknown must reach a fixed potential.
    _, comp = connected_components(sp.coo_matrix((g, (ia, ib)), shape=(n_idx, n_idx)), directed=False)
    grounded = np.zeros(comp.max() + 1, bool)
    grounded[comp[nu:]] = True
    if not grounded[comp[:nu]].all():
        raise SingularNetworkError("some nodes have no path to a source or to ground; the nodal system is singular")
    A, R = nodal_matrices(ia, ib, g, nu, n_fixed)
    x = splu(A).solve(np.asarray(R @ u.T)) if nu else np.zeros((0, u.shape[0]))  # (nu, k)
    phi = np.concatenate([x, u.T])  # potential of every unknown and fixed index
    return phi[index[nodes.T]].transpose(2, 0, 1), phi[index[nodes.B]].transpose(2, 0, 1)
