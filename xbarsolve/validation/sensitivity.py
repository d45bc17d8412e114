"""Exact derivatives of the column currents with respect to circuit parameters (adjoint method).

For a linear resistive network the column current into sense ground ``j`` depends on a
branch conductance ``g_b`` as

    dI_j / dg_b = -dv_b * dphi_jb,

where ``dv_b`` is the voltage across branch ``b`` in the forward solve and ``dphi_jb`` the
voltage across it in the *adjoint* solve: every source at 0 V and the sense terminal(s) of
column ``j`` raised to 1 V (the derivative of the Kron-reduced port admittance,
``dY/dg_b = Phi^T (e_a - e_b)(e_a - e_b)^T Phi``).  A parameter ``theta`` that sets many
branches gives ``dI_j/dtheta = -sum_b (dg_b/dtheta) dv_b dphi_jb``.

The n adjoint solves are one batched solve of the *transposed* crossbar (columns become
rows, sense ends become drive ends) with the n unit vectors as inputs, on the same
block factorization the forward solve uses; the Jacobian of all ``k x n`` currents with
respect to each parameter is then one dense product ``(k, B) @ (B, n)`` over the ``B``
branches the parameter touches.  When there are more vectors than rows (``k > m``) the
forward solve runs on the m unit vectors instead, which gives ``dT/dtheta`` (m x n), and
the batch follows as ``V @ dT/dtheta``: m + n solves per evaluation whatever ``k``.
No finite differences anywhere.

Parameters (all in ohm, the derivative is with respect to adding the same amount to every
branch the name covers, which for a uniform array is the uniform value itself):

``r_row``  row wire segments;      ``r_col``  column wire segments;
``r_in``   driver resistances;     ``r_out``  sense resistances;
``r_on``   access-transistor on-resistance (:class:`~xbarsolve.transistors.Resistor`).

Nonlinear models (Level-1 ``kp``/``vto``, sinh ``a``) fit the same scheme: at the
converged operating point of each input vector, the adjoint runs on the small-signal
(Jacobian) network and a cell parameter contributes ``-(di_cell/dtheta)|_v * dphi``.  That
needs one adjoint per vector (the small-signal network differs between vectors); add a
``_TERMS`` entry and a per-vector adjoint when those models land.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..crossbar import Crossbar
from ..transistors import Resistor

__all__ = ["PARAMETERS", "Sensitivities", "column_current_sensitivities", "parameter_values", "with_parameters"]

#: Parameters whose sensitivities are available (ohm).
PARAMETERS = ("r_row", "r_col", "r_in", "r_out", "r_on")

_DRIVE_T = {"left": "top", "right": "bottom", "both": "both"}
_SENSE_T = {"bottom": "right", "top": "left", "both": "both"}


@dataclass(frozen=True, eq=False)
class Sensitivities:
    """Column currents and their exact derivatives.

    Attributes
    ----------
    params : tuple of str
        Parameter names, in the order of the last axis of ``jacobian``.
    currents : ndarray, shape (k, n)
        Column currents (A).
    jacobian : ndarray, shape (k, n, p)
        ``d currents / d param`` (A/ohm).
    """

    params: tuple[str, ...]
    currents: np.ndarray
    jacobian: np.ndarray


def parameter_values(xbar: Crossbar) -> dict[str, float]:
    """Current values (ohm) of the scalar parameters of ``xbar`` that :data:`PARAMETERS` names.

    Non-uniform wires report their mean; ``r_on`` appears only for a
    :class:`~xbarsolve.transistors.Resistor` transistor.
    """
    out = {
        "r_row": float(np.mean(xbar.r_row_segments)) if xbar.n > 1 else float(np.mean(xbar.r_row)),
        "r_col": float(np.mean(xbar.r_col_segments)) if xbar.m > 1 else float(np.mean(xbar.r_col)),
        "r_in": float(np.mean(xbar.r_in_rows)),
        "r_out": float(np.mean(xbar.r_out_columns)),
    }
    if isinstance(xbar.transistor, Resistor):
        out["r_on"] = xbar.transistor.r_on
    return out


def with_parameters(xbar: Crossbar, values: dict[str, float]) -> Crossbar:
    """A copy of ``xbar`` with the named scalar parameters (ohm) replaced.

    Parameters
    ----------
    xbar : Crossbar
        The model.
    values : dict
        Name -> value (ohm) for names in :data:`PARAMETERS`; ``r_on`` needs a
        :class:`~xbarsolve.transistors.Resistor` (or :class:`~xbarsolve.transistors.Switch`
        / None, which it turns into a ``Resistor``).
    """
    changes = {}
    for name, value in values.items():
        if name not in PARAMETERS:
            raise ValueError(f"unknown parameter {name!r}; allowed: {PARAMETERS}")
        value = float(value)
        if name == "r_on":
            changes["transistor"] = Resistor(value)
        else:
            changes[name] = value
    return dataclasses.replace(xbar, **changes)


def _transposed(xbar: Crossbar) -> Crossbar:
    """The same circuit with rows and columns exchanged: sense ends become drive ends.

    Driving its row ``j`` at 1 V (all other rows at 0 V) raises the sense terminal(s) of
    the original column ``j`` to 1 V with every original source grounded: the adjoint.
    """
    return Crossbar(
        xbar.G.T, r_row=np.ascontiguousarray(xbar.r_col_segments.T), r_col=np.ascontiguousarray(xbar.r_row_segments.T),
        r_in=xbar.r_out_columns.copy(), r_out=xbar.r_in_rows.copy(),
        drive=_SENSE_T[xbar.sense], sense=_DRIVE_T[xbar.drive], transistor=xbar.transistor, device=xbar.device,
    )


def _check(xbar: Crossbar, params) -> tuple[str, ...]:
    params = tuple(params)
    if not params:
        raise ValueError("params must name at least one parameter")
    for p in params:
        if p not in PARAMETERS:
            raise ValueError(f"params: unknown parameter {p!r}; allowed: {PARAMETERS}")
        if p == "r_on" and not isinstance(xbar.transistor, Resistor):
            raise ValueError(f"params: 'r_on' needs a transistors.Resistor access transistor; this crossbar has "
                             f"{type(xbar.transistor).__name__ if xbar.transistor is not None else 'none (1R)'}")
    if len(set(params)) != len(params):
        raise ValueError(f"params must not repeat a name; got {params}")
    if not xbar.is_linear:
        raise NotImplementedError("adjoint sensitivities of nonlinear arrays need the per-vector small-signal adjoint "
                                  "(see the module docstring); only linear arrays are supported yet")
    return params


def column_current_sensitivities(xbar: Crossbar, V, params=PARAMETERS[:4]) -> Sensitivities:
    """Column currents of a linear crossbar and their exact parameter derivatives.

    Parameters
    ----------
    xbar : Crossbar
        A linear crossbar (any drive/sense option, uniform or non-uniform wires).
    V : array_like, shape (m,) or (k, m)
        Source voltages (V).
    params : sequence of str
        Names from :data:`PARAMETERS`.  The derivative with respect to ``r_row`` is that of
        adding the same resistance (ohm) to every row segment; likewise for the others.

    Returns
    -------
    Sensitivities
        ``currents`` (k, n) in A and ``jacobian`` (k, n, p) in A/ohm.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> from xbarsolve.validation.sensitivity import column_current_sensitivities
    >>> xbar = xs.Crossbar(np.full((8, 4), 50e-6), r_row=2.0, r_col=2.0, r_in=5.0, r_out=5.0)
    >>> s = column_current_sensitivities(xbar, np.full(8, 0.2), ["r_out"])
    >>> bool((s.jacobian < 0).all())   # more sense resistance, less current
    True
    """
    from ..solve import as_batch, solve

    params = _check(xbar, params)
    V_in = as_batch(xbar, V)
    m, n = xbar.shape
    # Everything is linear in V: for more vectors than rows, differentiate the transfer
    # matrix instead (forward solves for the m unit vectors) and map the batch with a GEMM,
    # so the cost does not grow with the number of measured vectors.
    via_transfer = V_in.shape[0] > m
    V = np.eye(m) if via_transfer else V_in
    fwd = solve(xbar, V, full=True)
    adj = solve(_transposed(xbar), np.eye(n), full=True)
    vT, vB = fwd.v_top, fwd.v_bottom  # (k, m, n)
    pT = np.ascontiguousarray(adj.v_bottom.transpose(0, 2, 1))  # (n, m, n): original T under adjoint j
    pB = np.ascontiguousarray(adj.v_top.transpose(0, 2, 1))  # original B
    k = V.shape[0]

    def contract(dv, dphi, w):
        # sum_b w_b dv[k, b] dphi[j, b]  ->  (k, n)
        return (dv.reshape(k, -1) * w.reshape(1, -1)) @ dphi.reshape(n, -1).T

    J = np.empty((k, n, len(params)))
    left, right = xbar.drive_ends
    top, bottom = xbar.sense_ends
    for a, name in enumerate(params):
        # -dg_b/dtheta for each family of branches: 1/r_b^2 for resistors, g_cell^2 for r_on.
        if name == "r_row":
            w = 1.0 / xbar.r_row_segments**2
            J[:, :, a] = contract(vT[:, :, :-1] - vT[:, :, 1:], pT[:, :, :-1] - pT[:, :, 1:], w) if n > 1 else 0.0
        elif name == "r_col":
            w = 1.0 / xbar.r_col_segments**2
            J[:, :, a] = contract(vB[:, :-1, :] - vB[:, 1:, :], pB[:, :-1, :] - pB[:, 1:, :], w) if m > 1 else 0.0
        elif name == "r_in":
            w = 1.0 / xbar.r_in_rows**2
            acc = np.zeros((k, n))
            for used, c in ((left, 0), (right, -1)):
                if used:
                    acc += contract(V - vT[:, :, c], -pT[:, :, c], w)
            J[:, :, a] = acc
        elif name == "r_out":
            w = 1.0 / xbar.r_out_columns**2
            acc = np.zeros((k, n))
            for used, r in ((top, 0), (bottom, -1)):
                if used:
                    acc += contract(vB[:, r, :], pB[:, r, :] - np.eye(n), w)
            J[:, :, a] = acc
        else:  # r_on
            g = xbar.cell_conductance()
            J[:, :, a] = contract(vT - vB, pT - pB, g**2)
    if via_transfer:  # J and currents are those of the unit vectors: dT/dtheta and T
        return Sensitivities(params=params, currents=V_in @ fwd.currents,
                             jacobian=np.einsum("ki,ijp->kjp", V_in, J, optimize=True))
    return Sensitivities(params=params, currents=fwd.currents, jacobian=J)
