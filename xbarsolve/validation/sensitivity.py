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

Nonlinear arrays (any device or transistor model; parameters ``a`` of
:class:`~xbarsolve.devices.Sinh`, ``kp`` and ``vto`` of
:class:`~xbarsolve.transistors.Level1` besides the resistances): at the operating point
of each vector (Newton, polished with exact Newton steps on the full nodal system
``F(x) = 0``), ``dI_j/dtheta = dc_j/dtheta - lambda_j^T dF/dtheta`` with the adjoint
``A^T lambda_j = dc_j/dx`` on the (non-symmetric: the transistor is a controlled source)
Jacobian ``A = dF/dx``; a cell parameter enters through ``di_cell/dtheta`` at fixed node
voltages.  This costs one sparse LU per vector, so it is meant for modest arrays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..crossbar import Crossbar
from ..solve._nodal import Nodal
from ..solve.linear import single_thread_blas
from ..topology import topology
from ..transistors import Resistor

__all__ = ["PARAMETERS", "MODEL_PARAMETERS", "Sensitivities", "column_current_sensitivities", "parameter_values", "with_parameters"]

#: Resistance parameters (ohm), available for every array.
PARAMETERS = ("r_row", "r_col", "r_in", "r_out", "r_on")
#: Model parameters of nonlinear arrays: sinh nonlinearity ``a`` (1/V) of
#: :class:`~xbarsolve.devices.Sinh`, ``kp`` (A/V^2) and ``vto`` (V) of
#: :class:`~xbarsolve.transistors.Level1`.
MODEL_PARAMETERS = ("a", "kp", "vto")

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
    for model in _models(xbar):  # r_on of a Resistor, a of Sinh, kp and vto of Level1, ...
        out.update({name: float(getattr(model, name)) for name in model.parameter_names})
    return out


def _models(xbar: Crossbar) -> list:
    """The cell models of ``xbar``: its device and, if any, its transistor."""
    return [m for m in (xbar.device, xbar.transistor) if m is not None]


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
    device, transistor = xbar.device, xbar.transistor
    for name, value in values.items():
        value = float(value)
        if name == "r_on":
            transistor = Resistor(value)
        elif name in PARAMETERS:
            changes[name] = value
        elif name in MODEL_PARAMETERS:
            if name in device.parameter_names:
                device = dataclasses.replace(device, **{name: value})
            elif transistor is not None and name in transistor.parameter_names:
                transistor = dataclasses.replace(transistor, **{name: value})
            else:
                raise ValueError(f"{name!r} is not a parameter of this crossbar's models (device "
                                 f"{type(device).__name__}, transistor {type(transistor).__name__})")
        else:
            raise ValueError(f"unknown parameter {name!r}; allowed: {PARAMETERS + MODEL_PARAMETERS}")
    return dataclasses.replace(xbar, device=device, transistor=transistor, **changes)


def _transposed(xbar: Crossbar) -> Crossbar:
    """The same circuit with rows and columns exchanged: sense ends become drive ends.

    Driving its row ``j`` at 1 V (all other rows at 0 V) raises the sense terminal(s) of
    the original column ``j`` to 1 V with every original source grounded: the adjoint.
    """
    topo = topology(xbar)
    drive, sense = topo.transposed_ends
    return Crossbar(
        xbar.G.T, r_row=np.ascontiguousarray(topo.r_col.T), r_col=np.ascontiguousarray(topo.r_row.T),
        r_in=xbar.r_out_columns.copy(), r_out=xbar.r_in_rows.copy(),
        drive=drive, sense=sense, transistor=xbar.transistor, device=xbar.device,
    )


def _check(xbar: Crossbar, params) -> tuple[str, ...]:
    params = tuple(params)
    topology(xbar).require_ladder("column_current_sensitivities")  # its adjoints are those of scheme A
    if not params:
        raise ValueError("params must name at least one parameter")
    available = tuple(parameter_values(xbar))
    for p in params:
        if p not in PARAMETERS + MODEL_PARAMETERS:
            raise ValueError(f"params: unknown parameter {p!r}; allowed: {PARAMETERS + MODEL_PARAMETERS}")
        if p == "r_on" and p not in available:
            raise ValueError(f"params: 'r_on' needs a transistors.Resistor access transistor; this crossbar has "
                             f"{type(xbar.transistor).__name__ if xbar.transistor is not None else 'none (1R)'}")
        if p not in available:
            raise ValueError(f"params: {p!r} is not a parameter of this crossbar's models; available: {available}")
    if len(set(params)) != len(params):
        raise ValueError(f"params must not repeat a name; got {params}")
    return params


def column_current_sensitivities(xbar: Crossbar, V, params=PARAMETERS[:4], *, rtol: float = 1e-10) -> Sensitivities:
    """Column currents of a linear crossbar and their exact parameter derivatives.

    Parameters
    ----------
    xbar : Crossbar
        A linear crossbar (any drive/sense option, uniform or non-uniform wires).
    V : array_like, shape (m,) or (k, m)
        Source voltages (V).
    params : sequence of str
        Names from :data:`PARAMETERS` or, for the models that have them,
        :data:`MODEL_PARAMETERS`.  The derivative with respect to ``r_row`` is that of
        adding the same resistance (ohm) to every row segment; likewise for the others.
    rtol : float
        Newton tolerance of the forward solve of a nonlinear array (it is then polished
        by exact Newton steps); unused for linear arrays.

    Returns
    -------
    Sensitivities
        ``currents`` (k, n) in A and ``jacobian`` (k, n, p) in A per unit of each
        parameter (A/ohm for resistances, A V for ``a``, V^3 for ``kp``, S for ``vto``).

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> from xbarsolve.validation.sensitivity import column_current_sensitivities
    >>> xbar = xs.Crossbar(np.full((8, 4), 50e-6), r_row=2.0, r_col=2.0, r_in=5.0, r_out=5.0)
    >>> s = column_current_sensitivities(xbar, np.full(8, 0.2), ["r_out"])
    >>> bool((s.jacobian < 0).all())   # more sense resistance, less current
    True
    """
    from ..solve import as_batch

    params = _check(xbar, params)
    V_in = as_batch(xbar, V)
    # Many modest GEMMs: threaded OpenBLAS on a busy machine lost 10-40x to spin-waiting
    # (measured: 0.11 s per 128 x 64 evaluation on one thread, 0.3-4.3 s on two).
    with single_thread_blas():
        if not xbar.is_linear:
            return _nonlinear_sensitivities(xbar, V_in, params, rtol)
        return _linear_sensitivities(xbar, V_in, params)


def _linear_sensitivities(xbar: Crossbar, V_in: np.ndarray, params) -> Sensitivities:
    from ..solve import solve

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
    topo = topology(xbar)
    for a, name in enumerate(params):
        # -dg_b/dtheta for each family of branches: 1/r_b^2 for resistors, g_cell^2 for r_on.
        if name == "r_row":
            w = topo.g_row**2
            J[:, :, a] = contract(vT[:, :, :-1] - vT[:, :, 1:], pT[:, :, :-1] - pT[:, :, 1:], w) if n > 1 else 0.0
        elif name == "r_col":
            w = topo.g_col**2
            J[:, :, a] = contract(vB[:, :-1, :] - vB[:, 1:, :], pB[:, :-1, :] - pB[:, 1:, :], w) if m > 1 else 0.0
        elif name == "r_in":
            J[:, :, a] = sum((contract(V - vT[:, :, t.index], -pT[:, :, t.index], t.g**2) for t in topo.drives),
                             np.zeros((k, n)))
        elif name == "r_out":
            J[:, :, a] = sum((contract(vB[:, t.index, :], pB[:, t.index, :] - np.eye(n), t.g**2) for t in topo.senses),
                             np.zeros((k, n)))
        else:  # r_on
            g = xbar.cell_conductance()
            J[:, :, a] = contract(vT - vB, pT - pB, g**2)
    if via_transfer:  # J and currents are those of the unit vectors: dT/dtheta and T
        return Sensitivities(params=params, currents=V_in @ fwd.currents,
                             jacobian=np.einsum("ki,ijp->kjp", V_in, J, optimize=True))
    return Sensitivities(params=params, currents=fwd.currents, jacobian=J)


# ------------------------------------------------------------------- nonlinear arrays
def _nonlinear_sensitivities(xbar: Crossbar, V: np.ndarray, params, rtol: float) -> Sensitivities:
    from scipy.sparse.linalg import splu

    from ..solve import solve

    m, n = xbar.shape
    if topology(xbar).has_zero_resistance:
        raise ValueError("sensitivities need every wire, r_in and r_out resistance > 0 ohm (a derivative with "
                         "respect to a 0-ohm branch's resistance is infinite)")
    net = Nodal(xbar)
    res = solve(xbar, V, full=True, rtol=rtol)
    k = V.shape[0]
    currents = np.empty((k, n))
    J = np.zeros((k, n, len(params)))
    for q in range(k):
        x = net.unknowns(res.v_top[q], res.v_mid[q] if net.has_mid else None, res.v_bottom[q])
        for _ in range(4):  # exact Newton polish: quadratic, so round-off after one or two steps
            F, A, cells = net.assemble(x, V[q])
            lu = splu(A)
            dx = lu.solve(F)
            x = x - dx
            if np.max(np.abs(dx)) <= 1e-15 * max(1.0, np.max(np.abs(x))):
                break
        F, A, cells = net.assemble(x, V[q])
        lu = splu(A)
        xa = net.potentials(x, V[q])
        # dc_j/dx: the sense branch currents x_B / r_out of column j.
        C = np.zeros((net.N, n))
        for t in topology(xbar).senses:
            C[net.B[t.index, :], np.arange(n)] += t.g
        currents[q] = sum(x[net.B[t.index, :]] * t.g for t in topology(xbar).senses)
        lam = lu.solve(C, trans="T")  # (N, n)
        lam_a = np.concatenate([lam, np.zeros((m + 1, n))])  # fixed nodes: lambda = 0

        def cell_term(p_nodes, q_nodes, di):
            # -sum_cells di/dtheta (lambda_p - lambda_q)
            return -(di @ (lam_a[p_nodes] - lam_a[q_nodes]))

        T, B = net.T.ravel(), net.B.ravel()
        Mid = net.M.ravel() if net.has_mid else B
        for a_i, name in enumerate(params):
            if name in PARAMETERS[:4]:
                total = np.zeros(n)
                for fam in net.families:
                    if fam.name != name:
                        continue
                    a, b, r = fam.a, fam.b, fam.r
                    dv = xa[a] - xa[b]
                    total += (dv / r**2) @ (lam_a[a] - lam_a[b])
                    if fam.name == "r_out":
                        total -= dv / r**2  # dc_j/dr_out: the sense current itself
                J[q, :, a_i] = total
            elif name in xbar.device.parameter_names:  # a memristor parameter, T -> M
                di = xbar.device.parameter_derivative(name, cells["v_mem"], cells["G"])
                J[q, :, a_i] = cell_term(T, Mid, di)
            else:  # a transistor parameter, M -> B
                di = xbar.transistor.parameter_derivative(name, cells["vd"], cells["vs"], cells["vg"])
                J[q, :, a_i] = cell_term(Mid, B, di)
    return Sensitivities(params=params, currents=currents, jacobian=J)
