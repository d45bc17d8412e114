"""The full nodal system of a crossbar as a sparse residual and Jacobian (private).

Unknowns: the potentials of every node ``T``, ``M`` (cells with an access transistor)
and ``B`` of :meth:`xbarsolve.topology.Topology.nodes`, with the nodes that 0-ohm
branches join merged into one unknown, as the sparse linear path does (a class that
contains a source or the ground takes its fixed potential).  Used by

* :func:`solve_merged`: exact, damped Newton for nonlinear arrays with 0-ohm branches
  (one sparse LU per iteration and vector; the ladder-form solvers need every
  resistance > 0);
* :mod:`xbarsolve.validation.sensitivity`: the adjoint of the operating point.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ..crossbar import Crossbar
from ..topology import merge_zero_branches, topology

__all__ = ["Nodal", "solve_merged"]


class Nodal:
    """Residual ``F`` (A, the current leaving each unknown) and Jacobian ``dF/dx`` (S) of
    the nodal system; ``x`` holds one potential (V) per unknown (merged) node."""

    def __init__(self, xbar: Crossbar):
        self.xbar = xbar
        tr = xbar.transistor
        self.has_mid = tr is not None and not tr.is_short
        topo = self.topo = topology(xbar)
        nodes = self.nodes = topo.nodes(self.has_mid)
        self.T, self.M, self.B, self.N = nodes.T, nodes.M, nodes.B, nodes.n_unknown
        fams = topo.families(nodes)
        self.index, self.nu = merge_zero_branches(np.concatenate([f.a for f in fams]), np.concatenate([f.b for f in fams]),
                                                  np.concatenate([f.r for f in fams]), nodes)
        # the 0-ohm branches merge nodes instead of carrying a conductance
        self.families = [dataclasses.replace(f, a=f.a[f.r > 0], b=f.b[f.r > 0], r=f.r[f.r > 0]) for f in fams]

    def potentials(self, x: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Potential (V) of every node of :attr:`nodes`, fixed ones included, for the
        input vector ``V`` (n_inputs,)."""
        return np.concatenate([x, self.topo.source_values(V)[0], [0.0]])[self.index]

    def unknowns(self, v_top: np.ndarray, v_mid: np.ndarray | None, v_bottom: np.ndarray) -> np.ndarray:
        """``x`` from node potentials (V), each (m, n)."""
        x = np.zeros(self.nu)
        parts = [(self.T, v_top), (self.B, v_bottom)] + ([(self.M, v_mid)] if self.has_mid else [])
        for nodes, v in parts:
            idx = self.index[nodes.ravel()]
            own = idx < self.nu
            x[idx[own]] = np.ravel(v)[own]
        return x

    def assemble(self, x: np.ndarray, V: np.ndarray):
        """``F`` (A), the sparse Jacobian ``A = dF/dx`` (S, csc) and the cell quantities at ``x``."""
        xbar, index, nu = self.xbar, self.index, self.nu
        xa = self.potentials(x, V)
        F = np.zeros(nu)
        rows, cols, vals = [], [], []

        def stamp(a, b, i, ga, gb):
            # current i leaves node a and enters node b; di/dv_a = ga, di/dv_b = gb
            ia, ib = index[a], index[b]
            ua, ub = ia < nu, ib < nu
            np.add.at(F, ia[ua], i[ua])
            np.add.at(F, ib[ub], -i[ub])
            both = ua & ub
            rows.extend([ia[ua], ia[both], ib[both], ib[ub]])
            cols.extend([ia[ua], ib[both], ia[both], ib[ub]])
            vals.extend([ga[ua], gb[both], -ga[both], -gb[ub]])

        for fam in self.families:
            g = 1.0 / fam.r
            stamp(fam.a, fam.b, g * (xa[fam.a] - xa[fam.b]), g, -g)
        T, B = self.T.ravel(), self.B.ravel()
        Mid = self.M.ravel() if self.has_mid else B
        G = xbar.G.ravel()
        v = xa[T] - xa[Mid]
        i_mem, g_mem = xbar.device.current(v, G), xbar.device.didv(v, G)
        # the cells the inputs switch off (Topology.switching): a gate at 0 V, which the
        # transistor model computes, or an open channel (1R, no middle node: an open cell)
        gates, opened = self.topo.switching(V, xbar.transistor)
        closed = None if opened is None else np.repeat(~opened[0], xbar.n)
        if closed is not None and not self.has_mid:
            i_mem, g_mem = i_mem * closed, g_mem * closed
        stamp(T, Mid, i_mem, g_mem, -g_mem)
        cells = {"v_mem": v, "G": G, "i_col": i_mem}
        if self.has_mid:
            tr = xbar.transistor
            vg = np.zeros(T.size) if gates is None else np.repeat(gates[0], xbar.n)
            i, gd, gs = tr.ids(xa[Mid], xa[B], vg)
            if closed is not None:  # an open channel
                i, gd, gs = i * closed, gd * closed, gs * closed
                # its middle node then hangs on the memristor alone and sits at T; a 1 S tie to T
                # carries no current at the solution and keeps an open memristor (G = 0) from floating
                off = ~closed
                g1 = np.ones(int(off.sum()))
                stamp(T[off], Mid[off], xa[T[off]] - xa[Mid[off]], g1, -g1)
            stamp(Mid, B, i, gd, gs)
            for node in (Mid, B):  # junction leakage into the grounded bulk
                j, gj = tr.junction(xa[node])
                idx = index[node]
                own = idx < nu
                np.add.at(F, idx[own], j[own])
                rows.append(idx[own]); cols.append(idx[own]); vals.append(gj[own])
            # the column node receives the channel current less its own junction's leak
            cells.update(vd=xa[Mid], vs=xa[B], vg=vg, i_col=i - j)
        A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nu, nu))
        return F, A, cells

    def cell_results(self, X: np.ndarray, V: np.ndarray):
        """Node potentials (V) and cell currents (A) of the solutions ``X`` (k, nu) for the
        inputs ``V`` (k, n_inputs): ``v_top``, ``v_mid`` (None for a 1R array),
        ``v_bottom`` and the cell currents, (k, m, n) each."""
        xbar = self.xbar
        phi = np.stack([self.potentials(x, v) for x, v in zip(X, V)])  # (k, nodes)
        m, n = xbar.shape
        v_top, v_bottom = (phi[:, nodes.ravel()].reshape(-1, m, n) for nodes in (self.T, self.B))
        if self.has_mid:
            v_mid = phi[:, self.M.ravel()].reshape(-1, m, n)
        else:
            v_mid = None if xbar.transistor is None else v_bottom.copy()
        _, opened = self.topo.switching(V, xbar.transistor)
        if opened is not None and v_mid is not None and not self.has_mid:
            v_mid = np.where(~opened[:, :, None], v_mid, v_top)  # an open switch's memristor carries nothing
        lower = v_bottom if v_mid is None else v_mid
        cell = xbar.device.current(v_top - lower, np.broadcast_to(xbar.G, v_top.shape))
        if opened is not None and v_mid is None:  # 1R: an open cell
            cell = cell * ~opened[:, :, None]
        return v_top, v_mid, v_bottom, cell


def solve_merged(xbar: Crossbar, V: np.ndarray, vtol: np.ndarray, itol: np.ndarray, max_iter: int, callback):
    """Exact, damped Newton per vector on the merged nodal system, from 0 V.

    Returns ``(currents (k, n), x (k, nu), converged, iterations, residual, reasons)``
    with the convergence test of :mod:`xbarsolve.solve.newton`: every node's KCL residual
    over its total conductance and the last update at most ``vtol`` (V), the largest
    residual at most ``itol`` (A).
    """
    from scipy.sparse.linalg import splu

    net = xbar._cache.get("nodal")
    if net is None:
        net = xbar._cache["nodal"] = Nodal(xbar)
    k, n = V.shape[0], xbar.n  # V: (k, n_inputs)
    currents = np.full((k, n), np.nan)
    X = np.zeros((k, net.nu))
    converged = np.zeros(k, dtype=bool)
    iterations = np.zeros(k, dtype=np.int64)
    residual = np.full(k, np.inf)
    reasons: dict[int, str] = {}

    def measure(F, A):
        res = float(np.abs(F).max()) if F.size else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            res_v = float(np.max(np.abs(F) / np.abs(A.diagonal()))) if F.size else 0.0
        return res, res_v

    for t in range(k):
        x = np.zeros(net.nu)
        F, A, cells = net.assemble(x, V[t])
        res, res_v = measure(F, A)
        step = np.inf if net.nu else 0.0  # every node merged into a source or the ground: nothing to solve
        for it in range(max_iter + 1):
            if callback is not None:
                callback(np.array([t]), np.array([res]))
            iterations[t], residual[t] = it, res
            if not np.isfinite(res):
                reasons[t] = "the KCL residual is not finite (a device model overflowed)"
                break
            if res <= itol[t] and res_v <= vtol[t] and step <= vtol[t]:
                converged[t] = True
                break
            if it == max_iter:
                reasons[t] = f"no convergence within max_iterations={max_iter}"
                break
            try:
                with np.errstate(all="ignore"):
                    dx = splu(A).solve(F)
            except RuntimeError:  # SuperLU: "Factor is exactly singular"
                dx = np.full(net.nu, np.nan)
            if not np.isfinite(dx).all():
                reasons[t] = "the Jacobian is singular"
                break
            lam = 1.0
            while True:  # backtracking line search on the largest KCL residual
                trial = x - lam * dx
                F_t, A_t, cells_t = net.assemble(trial, V[t])
                r_t, rv_t = measure(F_t, A_t)
                if np.isfinite(r_t) and (r_t <= (1.0 - 1e-4 * lam) * res or res_v <= vtol[t] or rv_t <= vtol[t]):
                    break
                lam *= 0.5
                if lam < 1e-6:
                    break
            if lam < 1e-6:
                reasons[t] = "the line search found no decrease of the KCL residual"
                break
            step = lam * float(np.abs(dx).max()) if dx.size else 0.0
            x, F, A, cells, res, res_v = trial, F_t, A_t, cells_t, r_t, rv_t
        X[t] = x
        currents[t] = cells["i_col"].reshape(xbar.shape).sum(axis=0)
    return currents, X, converged, iterations, residual, reasons, net
