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
from ..topology import nodal_matrices, topology
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
    n_fixed0 = 2 * m * n  # first fixed node
    # Merge the nodes joined by 0-ohm branches.
    zero = r == 0
    adj = sp.coo_matrix((np.ones(zero.sum()), (a[zero], b[zero])), shape=(n_nodes, n_nodes))
    _, label = connected_components(adj, directed=False)
    # Fixed potential of each class: index into [V_0..V_{m-1}, 0] or -1.
    fixed_of_class = np.full(label.max() + 1, -1)
    for node in range(n_fixed0, n_nodes):
        cls = label[node]
        if fixed_of_class[cls] not in (-1, node - n_fixed0):
            raise SingularNetworkError("a zero-resistance path shorts two ideal sources (or a source to ground)")
        fixed_of_class[cls] = node - n_fixed0
    unknown_classes = np.flatnonzero(fixed_of_class < 0)
    col_of_class = np.full(label.max() + 1, -1)
    col_of_class[unknown_classes] = np.arange(unknown_classes.size)
    nu = unknown_classes.size

    ca, cb, g = label[a[~zero]], label[b[~zero]], 1.0 / r[~zero]
    keep = ca != cb
    ca, cb, g = ca[keep], cb[keep], g[keep]
    # Every class must reach a fixed potential.
    n_cls = label.max() + 1
    graph = sp.coo_matrix((g, (ca, cb)), shape=(n_cls, n_cls))
    _, comp = connected_components(graph, directed=False)
    grounded = np.zeros(comp.max() + 1, bool)
    grounded[comp[fixed_of_class >= 0]] = True
    if not grounded[comp].all():
        raise SingularNetworkError("some nodes have no path to a source or to ground; the nodal system is singular")

    # Unknown classes first, then the fixed potentials [V_0..V_{m-1}, 0].
    index_of_class = np.where(fixed_of_class >= 0, nu + fixed_of_class, col_of_class)
    A, R = nodal_matrices(index_of_class[ca], index_of_class[cb], g, nu, m + 1)
    fixed_values = np.concatenate([V, np.zeros((V.shape[0], 1))], axis=1)  # (k, m+1)
    if nu:
        x = splu(A).solve(np.asarray(R @ fixed_values.T))  # (nu, k)
    else:
        x = np.zeros((0, V.shape[0]))
    # Potential of every class, then of every node.
    phi = np.empty((n_cls, V.shape[0]))
    phi[unknown_classes] = x
    fixed_cls = np.flatnonzero(fixed_of_class >= 0)
    phi[fixed_cls] = fixed_values.T[fixed_of_class[fixed_cls]]
    node_v = phi[label[: 2 * m * n]].T  # (k, 2mn)
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
