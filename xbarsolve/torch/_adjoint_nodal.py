"""Vector-Jacobian products of the column currents through the full nodal system (pure
NumPy, no torch): any scheme, any access transistor, linear or not.

:func:`nodal_vjp` is the generic twin of :func:`xbarsolve.torch._adjoint.crossbar_vjp`'s
1R ladder adjoint, for the arrays that one refuses (an access transistor, schemes B and
C).  For column currents ``I = c(x(V, G), V, G)`` and an upstream gradient ``gI`` (batch,
n) it returns ``gV = gI dI/dV`` (batch, n_inputs) and ``gG = sum_batch gI dI/dG`` (m, n),
exactly, on the merged nodal system ``F(x; V, G) = 0`` of
:class:`xbarsolve.solve._nodal.Nodal` (``x``: one potential per merged unknown node):

* forward: the operating point ``x`` of each vector (linear arrays: one solve of the
  constant Jacobian; nonlinear ones: ``xs.solve(..., full=True)`` polished by exact
  Newton steps on ``F``);
* the column current of column ``j`` is the current its cells deliver into its column
  line, ``c_j = -sum over the line's nodes of F_cells`` (``F_cells``: the cell branches'
  share of ``F``: memristor, transistor channel, its junction leakage), equal to the
  sensed current at the operating point whatever the sense resistances (0 ohm included);
* adjoint: ``A^T lambda = (dc/dx)^T gI`` with ``A = dF/dx``; then
  ``gV = gI dc/dV - lambda^T dF/dV`` (through the source potentials,
  :meth:`~xbarsolve.topology.Topology.source_map`) and
  ``gG = gI dc/dG - lambda^T dF/dG``, where a cell's memristor current is affine in its
  ``G`` (:class:`~xbarsolve.devices.Linear`, :class:`~xbarsolve.devices.Sinh`,
  :class:`~xbarsolve.devices.Poly`), so ``dF/dG`` is the current at ``G = 1 S`` less the
  one at ``G = 0`` between the cell's top and middle (or bottom) node.

Every derivative is read off :meth:`Nodal.assemble` itself, evaluated on the unmerged
nodes (every node its own unknown, the fixed ones included) with the resistive branches
(``F``, ``dF/dx``, ``dF/dV``) or without them (the cells' share); nothing of the circuit
is written a second time here.

Scheme B: the inputs are bits that switch the cells (gates); the currents do not depend
on a bit's value, only on whether it is 0, so ``gV`` is 0 (the derivative where a bit is
1; at a 0 bit the currents jump and no derivative exists).  ``gG`` is exact.

Cost: one sparse LU of ``A`` per vector for nonlinear arrays (per distinct bit vector in
scheme B, once for other linear arrays), so this is meant for modest arrays.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from ..crossbar import Crossbar
from ..solve._nodal import Nodal

__all__ = ["nodal_vjp"]

#: Exact Newton steps that polish a nonlinear operating point (quadratic convergence:
#: round-off after one or two).
_POLISH_STEPS = 4


class _Lift:
    """The nodal system of ``net`` on its unmerged nodes, and the maps between the two.

    ``P`` (raw nodes x unknowns) and ``Q`` (raw nodes x fixed potentials: sources, then
    the ground) give every node's potential ``y = P x + Q u``; ``P^T`` sums a raw residual
    into the merged unknowns.  ``L`` (n x raw nodes) sums the column lines' nodes.
    """

    def __init__(self, net: Nodal):
        self.net = net
        index, nu = net.index, net.nu
        n_raw = index.size
        raw = np.arange(n_raw)
        unknown = index < nu
        self.P = sp.csr_matrix((np.ones(int(unknown.sum())), (raw[unknown], index[unknown])), shape=(n_raw, nu))
        self.n_fixed = n_raw - net.N
        self.Q = sp.csr_matrix((np.ones(int((~unknown).sum())), (raw[~unknown], index[~unknown] - nu)),
                               shape=(n_raw, self.n_fixed))
        lines = net.nodes.lines
        n = lines.shape[1]
        self.L = sp.csr_matrix((np.ones(lines.size), (np.tile(np.arange(n), lines.shape[0]), lines.ravel())),
                               shape=(n, n_raw))
        # each cell's memristor: from its top node to its middle node (its bottom node in a 1R cell)
        self.top = net.T.ravel()
        self.mid = (net.M if net.has_mid else net.B).ravel()
        xbar = net.xbar
        self.full = self._view(net.families)
        self.cells = self._view([])
        self.cells_g1 = self._view([], xbar.with_conductances(np.ones(xbar.shape)))
        self.cells_g0 = self._view([], xbar.with_conductances(np.zeros(xbar.shape)))

    def _view(self, families, xbar: Crossbar | None = None) -> Nodal:
        """``net`` with every node its own unknown (so :meth:`Nodal.assemble` keeps the
        rows and columns of the fixed nodes too), the given resistive branches and,
        optionally, other conductances."""
        view = copy.copy(self.net)
        view.index, view.nu, view.families = np.arange(self.net.index.size), self.net.index.size, families
        if xbar is not None:
            view.xbar = xbar
        return view

    def jacobians(self, y: np.ndarray, V: np.ndarray):
        """``dF/dy`` of the whole system and of the cells alone, at node potentials ``y``."""
        return self.full.assemble(y, V)[1], self.cells.assemble(y, V)[1]

    def didg(self, y: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Each cell's ``d i_mem / dG`` (A/S) at node potentials ``y``: its memristor
        current at 1 S less that at 0 S (the current is affine in ``G``)."""
        return self.cells_g1.assemble(y, V)[0][self.top] - self.cells_g0.assemble(y, V)[0][self.top]

    def factor(self, Jf):
        """Sparse LU of the merged Jacobian ``A = P^T dF/dy P``."""
        return splu((self.P.T @ Jf @ self.P).tocsc())

    def adjoint(self, Jf, Jc, gI_t: np.ndarray, lu=None):
        """For upstream gradients ``gI_t`` (n, k): the adjoint potential ``w`` of every
        node (raw nodes, k) and the gradient of the fixed potentials (n_fixed, k)."""
        LgI = np.asarray(self.L.T @ gI_t)  # c = -L F_cells: d(gI . c)/dF_cells = -LgI
        k = gI_t.shape[1]
        if self.net.nu:
            lu = self.factor(Jf) if lu is None else lu
            lam = lu.solve(np.ascontiguousarray(-(self.P.T @ (Jc.T @ LgI))), trans="T")
        else:  # every node merged into a source or the ground
            lam = np.zeros((0, k))
        mu = np.asarray(self.P @ lam)
        g_fixed = -np.asarray(self.Q.T @ (Jc.T @ LgI + Jf.T @ mu))
        return mu + LgI, g_fixed


def nodal_vjp(xbar: Crossbar, V: np.ndarray, gI: np.ndarray, *, need_g: bool = True
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(gV, gG)`` of the column currents of any crossbar (module docstring).

    Parameters
    ----------
    xbar : Crossbar
        Any scheme, transistor and device whose current is affine in ``G``.
    V : ndarray, shape (batch, n_inputs)
        Inputs (V; scheme B: bits).
    gI : ndarray, shape (batch, n)
        Upstream gradient (per A).
    need_g : bool
        Also return ``gG``.

    Returns
    -------
    gV : ndarray, shape (batch, n_inputs)
        Per V (0 in scheme B).
    gG : ndarray, shape (m, n), or None
        Per S, summed over the batch.
    """
    from ..solve import as_batch

    V = as_batch(xbar, V)
    gI = np.ascontiguousarray(gI, dtype=np.float64).reshape(V.shape[0], xbar.n)
    net = xbar._cache.get("nodal")
    if net is None:
        net = xbar._cache["nodal"] = Nodal(xbar)
    lift = xbar._cache.get("nodal_lift")
    if lift is None:
        lift = xbar._cache["nodal_lift"] = _Lift(net)
    topo = net.topo
    inp, gain, _ = topo.source_map()
    n_src = inp.size
    U = np.concatenate([topo.source_values(V), np.zeros((V.shape[0], 1))], axis=1)  # fixed potentials (k, n_fixed)
    gV = np.zeros_like(V)
    gG = np.zeros(xbar.shape) if need_g else None

    def accumulate(sel, w, g_fixed, d):
        # gV through the sources, gG through each memristor (d: (k, cells) of d i_mem / dG)
        src = inp >= 0
        gV[sel] += (g_fixed[:n_src][src].T * gain[src]) @ np.eye(V.shape[1])[inp[src]]
        if need_g:
            gG[...] -= np.einsum("kc,ck->c", d, w[lift.top] - w[lift.mid]).reshape(xbar.shape)

    if xbar.is_linear:
        # constant Jacobians (per bit vector in scheme B): one LU for the whole group
        groups = [np.arange(V.shape[0])] if not topo.inputs_switch_cells else [
            np.flatnonzero((V == row).all(axis=1)) for row in np.unique(V, axis=0)]
        y0 = np.zeros(lift.P.shape[0])
        for sel in groups:
            Vg = V[sel[0]]
            Jf, Jc = lift.jacobians(y0, Vg)
            lu = lift.factor(Jf) if net.nu else None
            # F is linear and 0 at y = 0: F(x) = P^T Jf (P x + Q u)
            Qu = lift.Q @ U[sel].T
            x = -lu.solve(np.ascontiguousarray(lift.P.T @ (Jf @ Qu))) if net.nu else np.zeros((0, sel.size))
            Y = lift.P @ x + Qu  # node potentials (raw, k)
            w, g_fixed = lift.adjoint(Jf, Jc, gI[sel].T, lu)
            d = None
            if need_g:  # d i_mem / dG is linear in the potentials too
                D = (lift.cells_g1.assemble(y0, Vg)[1] - lift.cells_g0.assemble(y0, Vg)[1])[lift.top]
                d = np.asarray((D @ Y).T)
            accumulate(sel, w, g_fixed, d)
        return gV, gG

    from ..solve import solve

    res = solve(xbar, V, full=True)
    for k in range(V.shape[0]):
        x = net.unknowns(res.v_top[k], res.v_mid[k] if net.has_mid else None, res.v_bottom[k])
        lu = None
        for _ in range(_POLISH_STEPS if net.nu else 0):
            F, A, _ = net.assemble(x, V[k])
            lu = splu(A)
            dx = lu.solve(F)
            x = x - dx
            if np.max(np.abs(dx)) <= 1e-15 * max(1.0, float(np.max(np.abs(x)))):
                break  # a step at round-off: the Jacobian it was solved with is that at x
        else:
            lu = None
        y = net.potentials(x, V[k])
        Jf, Jc = lift.jacobians(y, V[k])
        w, g_fixed = lift.adjoint(Jf, Jc, gI[k:k + 1].T, lu)
        accumulate(np.array([k]), w, g_fixed, lift.didg(y, V[k])[None] if need_g else None)
    return gV, gG
