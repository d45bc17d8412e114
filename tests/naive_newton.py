"""Slow, obviously correct twin of the Newton solver, for tests and as the benchmark baseline.

``naive_newton`` writes KCL at every node of the full nodal system of docs/model.md section 1
(``T``, ``M`` and ``B`` of every cell, ``3 m n`` unknowns; the boundary nodes are the
fixed source and ground potentials behind ``r_in`` / ``r_out``) with SciPy sparse
matrices, and runs plain Newton: one sparse LU of the full Jacobian per iteration and
per vector, with step halving when the residual grows.

The built-in device and transistor laws are written here again in NumPy, straight from
their docstrings and ngspice's ``mos1load.c``, so the compiled kernels are checked
against an independent implementation; models written by users are evaluated through
their own ``current``/``didv`` methods.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

import xbarsolve as xs


# ----------------------------------------------------------------------- models
def device_iv(device, v, G):
    """Current (A) and dI/dV (S) of a memristor model, NumPy arrays."""
    if isinstance(device, xs.devices.Sinh):
        if device.a == 0:
            return G * v, G + 0 * v
        k = G * device.v_read / np.sinh(device.a * device.v_read)
        return k * np.sinh(device.a * v), k * device.a * np.cosh(device.a * v)
    if isinstance(device, xs.devices.Poly):
        return G * v + device.a2 * v**2 + device.a3 * v**3, G + 2 * device.a2 * v + 3 * device.a3 * v**2
    if isinstance(device, xs.devices.Linear):
        return G * v, G + 0 * v
    return device.current(v, G), device.didv(v, G)


def level1_ids(tr, vd, vs, vg):
    """ngspice level-1 NMOS channel current (A) drain -> source, d/dvd, d/dvs (S); gamma = 0."""
    beta = tr.kp * tr.w / tr.l
    lam = tr.lambda_
    normal = vd >= vs
    vgst = np.where(normal, vg - vs, vg - vd) - tr.vto
    vds = np.abs(vd - vs)
    betap = beta * (1 + lam * vds)
    sat = vgst <= vds
    cd = np.where(sat, 0.5 * betap * vgst**2, betap * vds * (vgst - 0.5 * vds))
    gm = np.where(sat, betap * vgst, betap * vds)
    gds = np.where(sat, 0.5 * lam * beta * vgst**2, betap * (vgst - vds) + lam * beta * vds * (vgst - 0.5 * vds))
    off = vgst <= 0
    cd, gm, gds = (np.where(off, 0.0, x) for x in (cd, gm, gds))
    i = np.where(normal, cd, -cd)
    di_dvd = np.where(normal, gds, gm + gds)
    di_dvs = np.where(normal, -gm - gds, -gds)
    return i, di_dvd, di_dvs


def junction(tr, v):
    """ngspice bulk junction (bulk at 0 V) of a terminal at v: current out of it (A), derivative (S)."""
    vb = -v
    vt = tr.vt
    e = np.exp(np.minimum(709.0, vb / vt))
    rev = vb <= -3 * vt
    cb = np.where(rev, tr.gmin * vb - tr.is_, tr.is_ * (e - 1) + tr.gmin * vb)
    gb = np.where(rev, tr.gmin, tr.is_ * e / vt + tr.gmin)
    return -cb, gb


def transistor_iv(tr, vd, vs, vg):
    """(i, di/dvd, di/dvs) of the channel and the drain / source junctions ((i, g) each)."""
    if isinstance(tr, xs.transistors.Level1):
        return level1_ids(tr, vd, vs, vg), junction(tr, vd), junction(tr, vs)
    if isinstance(tr, xs.transistors.Resistor):
        g = 1.0 / tr.r_on
        z = 0 * vd
        return (g * (vd - vs), g + z, -g + z), (z, z), (z, z)
    ids = tr.kernel
    p = tr.parameters()
    out = np.array([ids(a, b, c, p) for a, b, c in zip(vd.ravel(), vs.ravel(), vg.ravel())]).reshape(vd.shape + (3,))
    z = 0 * vd
    return (out[..., 0], out[..., 1], out[..., 2]), (z, z), (z, z)



def cell_system(xbar, v_top, v_mid, v_bottom):
    """Per-cell terms of the condensed Newton system at node voltages (..., m, n), NumPy.

    A cell with a middle node draws ``im`` out of T, ``fM = ids + jd - im`` out of M and
    ``js - ids`` out of B; eliminating ``dM`` from the M row,
    ``dM = (-fM + gm dT - gs dB) / (gm + gd + gjd)``, leaves the T row
    ``cT dT - cTB dB = -fT + rT`` and the B row ``-cBT dT + cB dB = -fB + rB``.  Returns a
    dict of ``fM``, ``m0``, ``mT``, ``mB`` (``dM = m0 + mT dT + mB dB``), ``cT``, ``cTB``,
    ``cBT``, ``cB``, ``rT``, ``rB`` and ``i_col`` (what the cell delivers to its column
    node, A), straight from the laws above (the compiled kernels'
    ``_newton_kernels._cell`` and ``evaluate_3t``)."""
    tr = xbar.transistor
    m = xbar.shape[0]
    gates = tr.gate_voltages(m)
    vg = np.broadcast_to((np.zeros(m) if gates is None else gates)[:, None], v_top.shape[-2:])
    im, gm = device_iv(xbar.device, v_top - v_mid, xbar.G)
    (ids, gd, gs), (jd, gjd), (js, gjs) = transistor_iv(tr, v_mid, v_bottom, vg)
    fM = ids + jd - im
    den = gm + gd + gjd
    return dict(fM=fM, m0=-fM / den, mT=gm / den, mB=-gs / den,
                cT=gm * (gd + gjd) / den, cTB=-gm * gs / den, cBT=gd * gm / den, cB=-gs * (gm + gjd) / den + gjs,
                rT=-gm * fM / den, rB=-gd * fM / den, i_col=ids - js)


# ---------------------------------------------------------------------- network
def _wires(xbar):
    """Conductance matrix A (S) of the wires and terminals on the T and B nodes, and the
    matrix R mapping the source voltages to injected currents: KCL_wire = A x - R V."""
    m, n = xbar.shape
    N = 2 * m * n
    T = np.arange(m * n).reshape(m, n)
    B = T + m * n
    rows, cols, vals = [], [], []
    rr, rc, rv = [], [], []

    def branch(a, b, g):
        a, b, g = (np.ravel(x) for x in np.broadcast_arrays(a, b, g))
        rows.extend([a, b, a, b]); cols.extend([a, b, b, a]); vals.extend([g, g, -g, -g])

    def to_fixed(a, g, src=None):
        a, g = (np.ravel(x) for x in np.broadcast_arrays(a, g))
        rows.append(a); cols.append(a); vals.append(g)
        if src is not None:
            rr.append(a); rc.append(np.ravel(src)); rv.append(g)

    branch(T[:, :-1], T[:, 1:], 1.0 / xbar.r_row_segments)
    branch(B[:-1, :], B[1:, :], 1.0 / xbar.r_col_segments)
    left, right = xbar.drive_ends
    top, bottom = xbar.sense_ends
    g_in, g_out = 1.0 / xbar.r_in_rows, 1.0 / xbar.r_out_columns
    if left:
        to_fixed(T[:, 0], g_in, np.arange(m))
    if right:
        to_fixed(T[:, -1], g_in, np.arange(m))
    if top:
        to_fixed(B[0, :], g_out)
    if bottom:
        to_fixed(B[-1, :], g_out)
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(N, N))
    R = sp.csr_matrix((np.concatenate(rv), (np.concatenate(rr), np.concatenate(rc))), shape=(N, m))
    return A, R


def naive_residual(xbar, V, v_top, v_mid, v_bottom):
    """Largest |KCL residual| (A) of one input vector ``V`` (m,) at node voltages (m, n)."""
    m, n = xbar.shape
    A, R = _wires(xbar)
    x = np.concatenate([v_top.ravel(), v_bottom.ravel()])
    F = A @ x - R @ np.asarray(V, dtype=np.float64)
    FT, FB = F[: m * n].reshape(m, n), F[m * n:].reshape(m, n)
    tr = xbar.transistor
    has_mid = tr is not None and not tr.is_short
    lower = v_mid if has_mid else v_bottom
    im, _ = device_iv(xbar.device, v_top - lower, xbar.G)
    FT = FT + im
    if not has_mid:
        return max(np.abs(FT).max(), np.abs(FB - im).max())
    gates = tr.gate_voltages(m)
    vg = np.repeat((np.zeros(m) if gates is None else gates)[:, None], n, axis=1)
    (ids, _, _), (jd, _), (js, _) = transistor_iv(tr, v_mid, v_bottom, vg)
    FM = -im + ids + jd
    FB = FB - ids + js
    return max(np.abs(FT).max(), np.abs(FM).max(), np.abs(FB).max())


def naive_newton(xbar, V, *, tol=1e-13, max_iter=60, history=None, first_step=False):
    """Column currents (A), shape (k, n), and node voltages of a nonlinear crossbar.

    Plain damped Newton on the full nodal system, sparse LU per iteration and vector.
    ``first_step``: return instead the iterate after one undamped step from 0 V (the
    exact solution of the circuit linearised at 0 V).

    Returns ``(currents, v_top, v_mid, v_bottom)`` (node voltages (k, m, n), V; ``v_mid``
    equals ``v_bottom`` without a middle node).  ``history``, a list, receives the
    largest KCL residual (A) of every iteration of the first vector.
    """
    m, n = xbar.shape
    mn = m * n
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    A, R = _wires(xbar)
    tr = xbar.transistor
    has_mid = tr is not None and not tr.is_short
    gates = tr.gate_voltages(m) if has_mid else None
    vg = np.repeat((np.zeros(m) if gates is None else gates)[:, None], n, axis=1).ravel()
    G = xbar.G.ravel()
    N = 3 * mn if has_mid else 2 * mn
    iT, iB, iM = np.arange(mn), mn + np.arange(mn), 2 * mn + np.arange(mn)
    out = []
    for kv, v in enumerate(V):
        inj = R @ v

        def system(x):
            F = np.zeros(N)
            F[: 2 * mn] = A @ x[: 2 * mn] - inj
            xT, xB = x[iT], x[iB]
            xM = x[iM] if has_mid else xB
            im, gm = device_iv(xbar.device, xT - xM, G)
            rows = [iT, iT]; cols = [iT, iM if has_mid else iB]; vals = [gm, -gm]
            F[iT] += im
            if has_mid:
                (ids, gd, gs), (jd, gjd), (js, gjs) = transistor_iv(tr, xM, xB, vg)
                F[iM] += -im + ids + jd
                F[iB] += -ids + js
                rows += [iM, iM, iM, iB, iB]
                cols += [iT, iM, iB, iM, iB]
                vals += [-gm, gm + gd + gjd, gs, -gd, -gs + gjs]
            else:
                F[iB] -= im
                rows += [iB, iB]; cols += [iT, iB]; vals += [-gm, gm]
            J = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(N, N))
            J = J + sp.block_diag([A, sp.csr_matrix((N - 2 * mn, N - 2 * mn))], format="csc")
            return F, J

        x = np.zeros(N)
        F, J = system(x)
        if first_step:
            out.append(splu(J).solve(-F))
            continue
        for _ in range(max_iter):
            r = np.abs(F).max()
            if history is not None and kv == 0:
                history.append(r)
            dx = splu(J).solve(-F)
            lam = 1.0
            while True:
                x_new = x + lam * dx
                F_new, J_new = system(x_new)
                if np.isfinite(F_new).all() and (np.abs(F_new).max() <= r or lam < 1e-3):
                    break
                lam /= 2
            x, F, J = x_new, F_new, J_new
            if np.abs(lam * dx).max() <= tol * max(np.abs(v).max(), 1e-3):
                break
        else:
            raise RuntimeError(f"naive Newton did not converge for vector {kv}")
        out.append(x)
    X = np.array(out)
    v_top = X[:, iT].reshape(-1, m, n)
    v_bottom = X[:, iB].reshape(-1, m, n)
    v_mid = X[:, iM].reshape(-1, m, n) if has_mid else v_bottom
    top, bottom = xbar.sense_ends
    g_out = 1.0 / xbar.r_out_columns
    currents = g_out * (v_bottom[:, -1, :] * bottom + v_bottom[:, 0, :] * top)
    return currents, v_top, v_mid, v_bottom
