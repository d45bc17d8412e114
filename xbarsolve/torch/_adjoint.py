"""Vector-Jacobian products of a crossbar's column currents (pure NumPy, no torch).

For column currents ``I = f(V, G)`` of one programmed array and an upstream gradient
``gI`` (batch, n), :func:`crossbar_vjp` returns ``gV = gI dI/dV`` (batch, m) and ``gG =
sum_batch gI dI/dG`` (m, n) exactly, by the adjoint of the nodal system:

* forward: the node voltages of the solve (``xs.solve(..., full=True)``), giving every
  cell's voltage ``dv`` and its small-signal conductance ``didv(dv, G)``;
* adjoint: the small-signal network (the linear array itself; for a nonlinear device the
  linear array of conductances ``didv`` at each vector's operating point) transposed, so
  that its sense ends are driven, solved with ``gI`` as its inputs.  By reciprocity its
  column currents are ``gI dI/dV`` and its cell voltages ``dphi`` give
  ``dL/dG_ab = -sum_batch dphi_ab di_ab/dG_ab`` (``di/dG = dv`` for a linear device), the
  same rule as :mod:`xbarsolve.validation.sensitivity` uses for wire resistances.

Cell currents must be affine in ``G`` (true of :class:`~xbarsolve.devices.Linear`,
:class:`~xbarsolve.devices.Sinh` and :class:`~xbarsolve.devices.Poly`).  Arrays with an
access transistor, or of a crossbar scheme other than the plain ladder, go to the generic
adjoint of the full nodal system (:mod:`xbarsolve.torch._adjoint_nodal`).
"""

from __future__ import annotations

import numpy as np

from ..crossbar import Crossbar
from ..topology import topology

__all__ = ["crossbar_vjp"]

_DRIVE_TO_SENSE = {"left": "top", "right": "bottom", "both": "both"}
_SENSE_TO_DRIVE = {"bottom": "right", "top": "left", "both": "both"}


def _small_signal_transposed(xbar: Crossbar, G: np.ndarray) -> Crossbar:
    """The linear array of cell conductances ``G`` (S) with rows and columns exchanged:
    its inputs drive the original sense ends, its outputs are the original drivers."""
    return Crossbar(
        np.ascontiguousarray(G.T), r_row=np.ascontiguousarray(xbar.r_col_segments.T),
        r_col=np.ascontiguousarray(xbar.r_row_segments.T), r_in=xbar.r_out_columns.copy(),
        r_out=xbar.r_in_rows.copy(), drive=_SENSE_TO_DRIVE[xbar.sense], sense=_DRIVE_TO_SENSE[xbar.drive],
    )


def crossbar_vjp(xbar: Crossbar, V: np.ndarray, gI: np.ndarray, *, need_g: bool = True,
                 factorization=None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(gV, gG)`` of the column currents of ``xbar`` at inputs ``V`` (batch, m; V) for
    the upstream gradient ``gI`` (batch, n; per A); ``gG`` (m, n; per S) is None unless
    ``need_g``.  ``factorization``: ``xs.factorize(xbar)`` if the caller has one (linear
    arrays), reused for the forward node voltages."""
    from ..solve import solve

    if not topology(xbar).is_ladder or xbar.transistor is not None:  # supply lines, paired rows, access transistors
        from ._adjoint_nodal import nodal_vjp  # the generic adjoint of the full nodal system
        return nodal_vjp(xbar, V, gI, need_g=need_g)
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
