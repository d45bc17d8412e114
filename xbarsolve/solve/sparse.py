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
    """Two-terminal branches of a linear crossbar (:meth:`xbarsolve.topology.Topology.branches`).

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
    a, b, r, n_nodes = branches(xbar)
    nodes = topology(xbar).nodes()
    index, nu = merge_zero_branches(a, b, r, nodes)  # the nodes 0-ohm branches join are one
    n_idx = nu + m + 1  # unknowns, then the fixed potentials [V_0..V_{m-1}, 0]
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
    A, R = nodal_matrices(ia, ib, g, nu, m + 1)
    fixed_values = np.concatenate([V, np.zeros((V.shape[0], 1))], axis=1)  # (k, m+1)
    x = splu(A).solve(np.asarray(R @ fixed_values.T)) if nu else np.zeros((0, V.shape[0]))  # (nu, k)
    phi = np.concatenate([x, fixed_values.T])  # potential of every unknown and fixed index
    node_v = phi[index[: 2 * m * n]].T  # (k, 2mn)
    v_top = node_v[:, : m * n].reshape(-1, m, n)
    v_bottom = node_v[:, m * n :].reshape(-1, m, n)
    g_cell = xbar.cell_conductance()
    cell = g_cell * (v_top - v_bottom)
    # By KCL the column wire j receives current only from its cells, so the total
    # current into its sense ground(s) is their sum, whatever the wire resistances.
    currents = cell.sum(axis=1)
    if not full:
        return SolveResult(inputs=V, currents=currents, method="sparse")
    return _with_cells(xbar, V, currents, v_top, v_bottom, "sparse")
