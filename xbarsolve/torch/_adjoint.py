"""Vector-Jacobian products of a crossbar's column currents (pure NumPy, no torch).

For column currents ``I = f(V, G)`` of one programmed array and an upstream gradient
``gI`` (batch, n), :func:`crossbar_vjp` returns ``gV = gI dI/dV`` (batch, m) and ``gG =
sum_batch gI dI/dG`` (m, n) exactly, by the adjoint of the nodal system.  The nodal matrix
of a resistive network is symmetric, so the adjoint network is the array itself (for a
nonlinear device: the linear array of its small-signal conductances ``didv`` at each
vector's operating point) driven from its sense ends by ``gI``; its currents into the row
sources are ``gV`` and its cell voltages ``dphi`` give ``dL/dG_ab = -sum_batch dv_ab
dphi_ab di/dG`` (``di/dG = dv``, the forward cell voltage, for a linear device), the same
rule as :mod:`xbarsolve.validation.sensitivity` uses for wire resistances.

Linear arrays reuse the elimination that gave the forward pass its transfer matrix
(:func:`adjoint_state`, one per re-programming):

* :class:`~xbarsolve.solve.dissection.Dissection` (square and large arrays): ``gV = gI
  T^T`` and ``gG`` from ``V`` and ``gI`` pushed down the kept dissection tree, with no
  node-voltage solve per vector
  (:meth:`~xbarsolve.solve.dissection.Dissection.conductance_vjp`);
* :class:`~xbarsolve.solve.linear.Factorization` (tall or wide arrays): the forward node
  voltages and, from the same factors, the adjoint ones
  (:meth:`~xbarsolve.solve.linear.Factorization.solve_from_sense`).

:func:`crossbar_vjp_transposed` is the former route (a second factorization, of the
transposed array, for the adjoint; full node voltages of both), kept as the reference.

Cell currents must be affine in ``G`` (true of :class:`~xbarsolve.devices.Linear`,
:class:`~xbarsolve.devices.Sinh` and :class:`~xbarsolve.devices.Poly`).  Arrays with an
access transistor, or of a crossbar scheme other than the plain ladder, go to the generic
adjoint of the full nodal system (:mod:`xbarsolve.torch._adjoint_nodal`).
"""

from __future__ import annotations

import numpy as np

from ..crossbar import Crossbar
from ..topology import topology

__all__ = ["crossbar_vjp", "crossbar_vjp_transposed", "adjoint_state"]

_DRIVE_TO_SENSE = {"left": "top", "right": "bottom", "both": "both"}
_SENSE_TO_DRIVE = {"bottom": "right", "top": "left", "both": "both"}


def adjoint_state(xbar: Crossbar):
    """``(state, T)`` of a linear array with every resistance > 0: the elimination
    :func:`crossbar_vjp` reuses (a kept :class:`~xbarsolve.solve.dissection.Dissection`
    for scheme A where :func:`~xbarsolve.solve.dissection.prefer_dissection` says so, else a block
    :class:`~xbarsolve.solve.linear.Factorization`) and the transfer matrix (S) from it."""
    from ..solve import factorize
    from ..solve.dissection import Dissection, prefer_dissection

    state = Dissection(xbar) if topology(xbar).is_ladder and prefer_dissection(*xbar.shape) else factorize(xbar)
    return state, state.transfer_matrix()


def _needs_nodal(xbar: Crossbar) -> bool:
    """Supply lines, paired rows or access transistors: the generic adjoint of the full
    nodal system (:func:`~xbarsolve.torch._adjoint_nodal.nodal_vjp`), not the ladder's."""
    return not topology(xbar).is_ladder or xbar.transistor is not None


def crossbar_vjp(xbar: Crossbar, V: np.ndarray, gI: np.ndarray, *, need_g: bool = True,
                 factorization=None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(gV, gG)`` of the column currents of ``xbar`` at inputs ``V`` (batch, m; V) for
    the upstream gradient ``gI`` (batch, n; per A); ``gG`` (m, n; per S) is None unless
    ``need_g``.  ``factorization``: the ``state`` of :func:`adjoint_state` (or any
    ``xs.factorize(xbar)``) if the caller has one; made here otherwise (linear arrays)."""
    from ..solve.dissection import Dissection

    if _needs_nodal(xbar):
        from ._adjoint_nodal import nodal_vjp
        return nodal_vjp(xbar, V, gI, need_g=need_g)
    if not xbar.is_linear or xbar.has_zero_resistance:
        return crossbar_vjp_transposed(xbar, V, gI, need_g=need_g)
    V = np.ascontiguousarray(V, dtype=np.float64)
    gI = np.ascontiguousarray(gI, dtype=np.float64)
    state = adjoint_state(xbar)[0] if factorization is None else factorization
    if isinstance(state, Dissection):
        return gI @ state.transfer_matrix().T, (state.conductance_vjp(V, gI) if need_g else None)
    adj = state.solve_from_sense(gI, full=need_g)
    if not need_g:
        return adj.currents, None
    fwd = state.solve(V, full=True)
    return adj.currents, -np.einsum("kab,kab->ab", fwd.v_top - fwd.v_bottom, adj.v_top - adj.v_bottom)


def _small_signal_transposed(xbar: Crossbar, G: np.ndarray) -> Crossbar:
    """The linear array of cell conductances ``G`` (S) with rows and columns exchanged:
    its inputs drive the original sense ends, its outputs are the original drivers."""
    return Crossbar(
        np.ascontiguousarray(G.T), r_row=np.ascontiguousarray(xbar.r_col_segments.T),
        r_col=np.ascontiguousarray(xbar.r_row_segments.T), r_in=xbar.r_out_columns.copy(),
        r_out=xbar.r_in_rows.copy(), drive=_SENSE_TO_DRIVE[xbar.sense], sense=_DRIVE_TO_SENSE[xbar.drive],
    )


def crossbar_vjp_transposed(xbar: Crossbar, V: np.ndarray, gI: np.ndarray, *, need_g: bool = True,
                            factorization=None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`crossbar_vjp` by the transposed small-signal array: its own solve (a second
    factorization for a linear array) with ``gI`` as inputs, full node voltages of the
    forward and adjoint solutions (``factorization``: ``xs.factorize(xbar)``, reused for
    the forward ones).  The reference of the faster routes; the route of nonlinear arrays."""
    from ..solve import solve

    if _needs_nodal(xbar):
        raise NotImplementedError("crossbar_vjp_transposed takes 1R arrays of the plain ladder (scheme A); "
                                  "crossbar_vjp sends other arrays to the nodal adjoint")
    V = np.ascontiguousarray(V, dtype=np.float64)
    gI = np.ascontiguousarray(gI, dtype=np.float64)
    G = np.asarray(xbar.G)
    if xbar.is_linear:
        adj = solve(_small_signal_transposed(xbar, G), gI, full=need_g)
        if not need_g:
            return adj.currents, None
        fwd = solve(xbar, V, full=True) if factorization is None else factorization.solve(V, full=True)
        dv = fwd.v_top - fwd.v_bottom
        dphi = (adj.v_bottom - adj.v_top).transpose(0, 2, 1)
        return adj.currents, -np.einsum("kab,kab->ab", dv, dphi)
    fwd = solve(xbar, V, full=True)
    dv = fwd.v_top - fwd.v_bottom
    dev = xbar.device
    gV = np.empty_like(V)
    gG = np.zeros_like(G) if need_g else None
    for k in range(V.shape[0]):
        adj = solve(_small_signal_transposed(xbar, dev.didv(dv[k], G)), gI[k:k + 1], full=need_g)
        gV[k] = adj.currents[0]
        if need_g:
            didg = dev.current(dv[k], 1.0) - dev.current(dv[k], 0.0)  # cell current affine in G
            gG -= didg * (adj.v_bottom[0] - adj.v_top[0]).T
    return gV, gG
