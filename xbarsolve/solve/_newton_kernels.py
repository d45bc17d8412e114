"""Compiled kernels of the Newton solver for nonlinear arrays (private).

Everything works in *ladder coordinates* (see :mod:`xbarsolve.solve.linear`): ``p`` chains
of the eliminated family ("P", each a tridiagonal chain of ``q`` nodes) and the nodes of
the other family ("S") grouped in ``p`` blocks of ``q``, with cell ``(a, b)`` joining
``P(a, b)`` and ``S(a, b)``.  Node arrays have shape ``(p, q, k)`` with the batch of
``k`` input vectors last, so a block solve for the whole batch is a sequence of GEMMs.

Kernels take arrays, scalars and the models' compiled scalar functions only.  Their
NumPy twin is ``tests/naive_newton.py``.
"""

from __future__ import annotations

from types import FunctionType

import numpy as np
from numba import njit, prange

from .._config import NJIT, NJIT_PARALLEL, NJIT_SIMD, NJIT_SIMD_PARALLEL
from ..devices import _linear_current, _linear_didv, _poly_current, _poly_didv, _sinh_iv
from ..transistors import _level1_ids, _level1_junction, _no_junction, _resistor_ids

# The residual kernel calls the models through the module globals ``_iv`` (a device's
# current and derivative), ``_ids`` and ``_junction``.  Here they dispatch the built-in
# models on a code stored as the last parameter, so that the kernel is compiled once and
# cached on disk; for models written by users, :func:`specialise` compiles a copy of the
# kernel whose globals are the user's functions (once per process and model pair).
DEVICE_CODES = {"Linear": 0.0, "Sinh": 1.0, "Poly": 2.0}
TRANSISTOR_CODES = {"Resistor": 0.0, "Level1": 1.0}


@njit(inline="always", **NJIT)
def _iv(v, G, p):  # pragma: no cover - compiled
    code = p[p.size - 1]
    if code == 1.0:
        return _sinh_iv(v, G, p)
    if code == 2.0:
        return _poly_current(v, G, p), _poly_didv(v, G, p)
    return _linear_current(v, G, p), _linear_didv(v, G, p)


# A user's device: its two kernels, bound by :func:`specialise` (the linear law here only
# so that the module is complete).
_user_current = _linear_current
_user_didv = _linear_didv


@njit(inline="always", **NJIT)
def _user_iv(v, G, p):  # pragma: no cover - compiled
    return _user_current(v, G, p), _user_didv(v, G, p)


@njit(**NJIT)
def _ids(vd, vs, vg, p):  # pragma: no cover - compiled
    if p[p.size - 1] == 1.0:
        return _level1_ids(vd, vs, vg, p)
    return _resistor_ids(vd, vs, vg, p)


@njit(**NJIT)
def _junction(v, p):  # pragma: no cover - compiled
    if p[p.size - 1] == 1.0:
        return _level1_junction(v, p)
    return _no_junction(v, p)


@njit(inline="always", **NJIT)
def _cell(vT, vB, vm, g, vg, pd, pt, has_mid):  # pragma: no cover - compiled
    """KCL terms of one cell at potentials ``vT``, ``vB`` (and ``vm`` of its middle node).

    Returns ``(fT, fB, fM, cT, cTB, cBT, cB, rT, rB, m0, mT, mB, i_col, inv)``: the
    currents the cell draws out of its top, bottom and middle nodes (A); the condensed
    Jacobian (S), whose T equation reads ``+cT dT - cTB dB`` and B equation
    ``-cBT dT + cB dB``; the condensed right-hand sides ``rT``, ``rB`` (A) the middle-node
    elimination adds; the middle-node update ``dM = m0 + mT dT + mB dB``; the current the
    cell delivers to its column node (A); and ``1 / (middle node's conductance)`` (ohm;
    0 without a middle node).
    """
    if has_mid:
        im, gm = _iv(vT - vm, g, pd)
        r = _ids(vm, vB, vg, pt)
        jm = _junction(vm, pt)
        jb = _junction(vB, pt)
        fM = r[0] + jm[0] - im
        gd = r[1]
        gs = r[2]
        inv = 1.0 / (gm + gd + jm[1])
        return (im, jb[0] - r[0], fM,
                gm * (gd + jm[1]) * inv, -gm * gs * inv, gd * gm * inv, -gs * (gm + jm[1]) * inv + jb[1],
                -gm * fM * inv, -gd * fM * inv, -fM * inv, gm * inv, -gs * inv, r[0] - jb[0], inv)
    im, gm = _iv(vT - vB, g, pd)
    return (im, -im, 0.0, gm, gm, gm, gm, 0.0, 0.0, 0.0, 0.0, 0.0, im, 0.0)


@njit(inline="always", **NJIT)
def _with_i_col(i_col, p, q, k):  # pragma: no cover - compiled
    """Whether ``i_col`` is an output (p, q, k) rather than a placeholder (see :func:`evaluate`)."""
    return i_col.shape[0] == p and i_col.shape[1] == q and i_col.shape[2] == k


@njit(inline="always", **NJIT)
def _wires(a, b, p, q, wp, tp0, tp1, c, ts0, ts1):  # pragma: no cover - compiled
    """The wires at the nodes P(a, b) and S(a, b): neighbour indices along the P chain
    (``bl``, ``br``: the node itself at the ends), conductances to the neighbours and
    terminals (S: ``wl``, ``wr``, ``tP`` on the P chain; ``cu``, ``cd``, ``tS`` on the
    S chain, 0 where there is none), their sums ``gP``, ``gS`` and reciprocals (ohm,
    inf for an isolated node).  The cells' own conductance is left out of ``gP``, ``gS``:
    a residual scaled by their reciprocals bounds the correction the node alone would need."""
    bl = b - 1 if b > 0 else b
    br = b + 1 if b < q - 1 else b
    wl = wp[a, b - 1] if b > 0 else 0.0
    wr = wp[a, b] if b < q - 1 else 0.0
    tP = (tp0[a] if b == 0 else 0.0) + (tp1[a] if b == q - 1 else 0.0)
    cu = c[a - 1, b] if a > 0 else 0.0
    cd = c[a, b] if a < p - 1 else 0.0
    tS = (ts0[b] if a == 0 else 0.0) + (ts1[b] if a == p - 1 else 0.0)
    gP = wl + wr + tP
    gS = cu + cd + tS
    rgP = 1.0 / gP if gP > 0.0 else np.inf
    rgS = 1.0 / gS if gS > 0.0 else np.inf
    return bl, br, wl, wr, tP, cu, cd, tS, gP, gS, rgP, rgS


@njit(**NJIT_PARALLEL)
def evaluate(xP, xS, xM, srcP, srcS, wp, tp0, tp1, c, ts0, ts1, G, vgc, pd, pt, top_is_P, has_mid,
             rP, rS, m0, mP, mS, cells, cellv, res, res_v, i_col):  # pragma: no cover - compiled
    """KCL residual and the condensed Newton system of every vector of the batch.

    Parameters
    ----------
    xP, xS, xM : (p, q, k)
        Potentials (V) of the P, S and middle nodes (``xM`` unused without middle nodes).
    srcP : (p, k), srcS : (q, k)
        Fixed potential (V) behind the terminal conductances of each P / S chain.
    wp : (p, q-1), tp0, tp1 : (p,), c : (p-1, q), ts0, ts1 : (q,)
        Wire and terminal conductances (S).
    G : (p, q)
        Memristor states (S).  ``vgc`` : (p, q) gate voltage of each cell (V).
    pd, pt : 1-D float64
        Device and transistor parameters; for the built-in models the last entry of
        each is the model code (see :func:`specialise` for models written by users).
    top_is_P : bool
        True when the P nodes are the row (top) nodes.
    has_mid : bool
        True when the cells have a middle node (a transistor that is not a short).

    Outputs (written in place)
    --------------------------
    rP, rS : (p, q, k)
        Right-hand side of the condensed Newton system: ``-F`` with the middle-node KCL
        eliminated (A).
    m0, mP, mS : (p, q, k)
        The middle-node update is ``dM = m0 + mP dP + mS dS`` (V, 1, 1); untouched
        without middle nodes.
    cells : (4, p, q)
        Sum over the batch of the condensed cell Jacobian ``(eP, eS, u, w)`` (S): the P
        equation of cell (a, b) reads ``+eP dP - u dS``, its S equation ``-w dP + eS dS``.
    cellv : (3, p, q, k), (4, p, q, k) or (3, 1, 1, 1)
        ``(eP, eS, w)`` of every vector when its shape is ``(3, p, q, k)``, and ``u``
        as a fourth plane when it has one (``cells`` is then left at 0); untouched
        otherwise.
    res : (p, k)
        Largest |KCL residual| (A) over the nodes of block ``a`` for each vector (NaN
        counts as infinite).
    res_v : (p, k)
        Largest |KCL residual| divided by the node's wire and terminal conductance (the
        middle nodes': their total small-signal conductance) (V): a bound of the voltage
        correction each node alone would need.
    i_col : (p, q, k)
        Net current (A) each cell delivers to its column node (channel current less the
        column-side junction leak); summed along a column it is the column current up to
        the KCL residuals, and accurate to the precision of the cell voltages.  Not
        written when it has another shape (the line relaxation, which takes the currents
        from :func:`column_deliveries`, passes a (1, 1, 1) placeholder: one stream of
        output fewer).
    """
    p = xP.shape[0]
    for a in prange(p):
        _evaluate_block(a, xP, xS, xM, srcP, srcS, wp, tp0, tp1, c, ts0, ts1, G, vgc, pd, pt, top_is_P, has_mid,
                        rP, rS, m0, mP, mS, cells, cellv, res, res_v, i_col)


@njit(**NJIT)
def _evaluate_block(a, xP, xS, xM, srcP, srcS, wp, tp0, tp1, c, ts0, ts1, G, vgc, pd, pt, top_is_P, has_mid,
                    rP, rS, m0, mP, mS, cells, cellv, res, res_v, i_col):  # pragma: no cover - compiled
    p, q, k = xP.shape
    per_vector = cellv.shape[1] == p and cellv.shape[3] == k
    with_u = per_vector and cellv.shape[0] == 4
    with_i = _with_i_col(i_col, p, q, k)
    for t in range(k):
        res[a, t] = 0.0
        res_v[a, t] = 0.0
    # neighbours along the S chain (a -/+ 1) and their conductances, 0 S at the ends
    # (a prange index may be unsigned: mixing it with signed integers would give floats)
    ia = np.int64(a)
    al = ia - 1 if ia > 0 else ia
    ar = ia + 1 if ia < p - 1 else ia
    for b in range(q):
        g = G[a, b]
        vg = vgc[a, b]
        bl, br, wl, wr, tP, cu, cd, tS, gP, gS, rgP, rgS = _wires(a, b, p, q, wp, tp0, tp1, c, ts0, ts1)
        sP = 0.0
        sS = 0.0
        su = 0.0
        sw = 0.0
        for t in range(k):
            vp = xP[a, b, t]
            vs = xS[a, b, t]
            # wire and terminal currents leaving P(a, b) and S(a, b)
            fp = gP * vp - wl * xP[a, bl, t] - wr * xP[a, br, t] - tP * srcP[a, t]
            fs = gS * vs - cu * xS[al, b, t] - cd * xS[ar, b, t] - tS * srcS[b, t]
            vm = xM[a, b, t] if has_mid else 0.0
            if top_is_P:
                fT, fB, fM, cT, cTB, cBT, cB, rT, rB, mm0, mT, mB, ic, inv = _cell(vp, vs, vm, g, vg, pd, pt, has_mid)
                fp += fT
                fs += fB
                rP[a, b, t] = rT - fp
                rS[a, b, t] = rB - fs
                eP, eS, u, w = cT, cB, cTB, cBT
            else:
                fT, fB, fM, cT, cTB, cBT, cB, rT, rB, mm0, mT, mB, ic, inv = _cell(vs, vp, vm, g, vg, pd, pt, has_mid)
                fp += fB
                fs += fT
                rP[a, b, t] = rB - fp
                rS[a, b, t] = rT - fs
                eP, eS, u, w = cB, cT, cBT, cTB
            if with_i:
                i_col[a, b, t] = ic
            if has_mid:
                m0[a, b, t] = mm0
                # stored as the coefficients of dP and dS
                mP[a, b, t] = mT if top_is_P else mB
                mS[a, b, t] = mB if top_is_P else mT
            if per_vector:  # (no batch sums: a serial reduction keeps the loop scalar)
                cellv[0, a, b, t] = eP
                cellv[1, a, b, t] = eS
                cellv[2, a, b, t] = w
                if with_u:
                    cellv[3, a, b, t] = u
            else:
                sP += eP
                sS += eS
                su += u
                sw += w
            m_abs = max(abs(fp), abs(fs), abs(fM))
            v_abs = max(abs(fp) * rgP, abs(fs) * rgS)
            if has_mid:
                v_abs = max(v_abs, abs(fM * inv))
            if not (m_abs == m_abs):  # NaN
                m_abs = np.inf
            if not (v_abs == v_abs):
                v_abs = np.inf
            if m_abs > res[a, t]:
                res[a, t] = m_abs
            if v_abs > res_v[a, t]:
                res_v[a, t] = v_abs
        cells[0, a, b] = sP
        cells[1, a, b] = sS
        cells[2, a, b] = su
        cells[3, a, b] = sw


# ------------------------------------------------------------------ two-terminal cells
# Cells without a middle node and a built-in device: each vector's cell conductance is
# the whole condensed Jacobian (eP = eS = u = w = dI/dV), and the loops over the batch
# are written so that LLVM vectorises them, the exponential of the sinh law included
# (libm's exp is a scalar call, ~3.5 ns; this one ~1 ns in AVX-512 lanes).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXP_MAX = 709.782712893384  # log of the largest float64


@njit(inline="always", **NJIT_SIMD)
def _exp_rows(x, scale, out, lo, hi):  # pragma: no cover - compiled
    """``out[t] = exp(scale * x[t])`` to ~1 ulp, in two vectorisable passes (Cody-Waite
    reduction to |r| <= ln2/2, degree-13 Taylor polynomial, then the power of two
    ``2^n = 2^lo 2^hi`` from exponent bits written to the int64 scratch ``lo``, ``hi``:
    two halves, so that n = +/-1024 at the ends of the range stays representable); inf
    above the float64 range, 0 below it.  NaN arguments give finite values: callers
    detect NaN potentials elsewhere."""
    _exp_core(x, scale, out, lo, hi, lo.view(np.float64), hi.view(np.float64))


@njit(inline="always", **NJIT_SIMD)
def _exp_core(x, scale, out, lo, hi, flo, fhi):  # pragma: no cover - compiled
    """:func:`_exp_rows` with the float64 views ``flo``, ``fhi`` of ``lo``, ``hi`` (which
    may be longer than ``x``) made by the caller."""
    k = x.size
    for t in range(k):
        z = min(max(scale * x[t], -_EXP_MAX), _EXP_MAX)
        n = np.floor(z * _LOG2E + 0.5)
        r = (z - n * _LN2_HI) - n * _LN2_LO
        e = 1.0 / 6227020800.0
        e = e * r + 1.0 / 479001600.0
        e = e * r + 1.0 / 39916800.0
        e = e * r + 1.0 / 3628800.0
        e = e * r + 1.0 / 362880.0
        e = e * r + 1.0 / 40320.0
        e = e * r + 1.0 / 5040.0
        e = e * r + 1.0 / 720.0
        e = e * r + 1.0 / 120.0
        e = e * r + 1.0 / 24.0
        e = e * r + 1.0 / 6.0
        e = e * r + 0.5
        e = e * r + 1.0
        e = e * r + 1.0
        out[t] = e
        ni = np.int64(n)
        h = ni >> 1
        lo[t] = (h + 1023) << 52
        hi[t] = (ni - h + 1023) << 52
    for t in range(k):
        y = scale * x[t]
        e = out[t] * flo[t] * fhi[t]
        e = np.inf if y > _EXP_MAX else e
        out[t] = 0.0 if y < -_EXP_MAX else e


@njit(inline="always", **NJIT_SIMD)
def _sinh_rows(e, gk, aa, cur, dd):  # pragma: no cover - compiled
    """The sinh law from its exponentials ``e[t] = exp(aa v[t])`` (``e`` may be ``cur``):
    ``cur[t] = gk (e - 1/e)`` (A) and ``dd[t] = gk aa (e + 1/e)`` (S), ``gk`` half the
    law's prefactor (``G p[1] / 2``, A), ``aa`` its ``a`` (1/V)."""
    for t in range(cur.size):
        x = e[t]
        r = 1.0 / x
        cur[t] = gk * (x - r)
        dd[t] = gk * aa * (x + r)


@njit(inline="always", **NJIT_SIMD)
def _device_rows(code, pd, g, v, cur, dd, lo, hi):  # pragma: no cover - compiled
    """A built-in device's current ``cur[t]`` (A) and ``dd[t] = dI/dV`` (S) at the cell
    voltages ``v[t]`` of a batch (``lo``, ``hi``: int64 scratch of :func:`_exp_rows`)."""
    if code == 1.0 and pd[0] != 0.0:  # the sinh law's exponentials, into cur
        _exp_rows(v, pd[0], cur, lo, hi)
    _law_rows(code, pd, g, cur, v, cur, dd)


@njit(inline="always", **NJIT_SIMD)
def _law_rows(code, pd, g, e, v, cur, dd):  # pragma: no cover - compiled
    """:func:`_device_rows` once the sinh law's exponentials ``e[t] = exp(a v[t])`` are
    computed (read only for that law; ``e`` and ``cur`` may be ``v``)."""
    if code == 1.0 and pd[0] != 0.0:  # Sinh: I = G p1 sinh(a v)
        _sinh_rows(e, 0.5 * g * pd[1], pd[0], cur, dd)
    elif code == 2.0:  # Poly
        _poly_rows(pd, g, v, cur, dd)
    else:  # Linear (or sinh with a = 0)
        for t in range(v.size):
            cur[t] = g * v[t]
            dd[t] = g


@njit(inline="always", **NJIT_SIMD)
def _poly_rows(pd, g, v, cur, dd):  # pragma: no cover - compiled
    """The Poly law ``cur[t] = g v + p0 v^2 + p1 v^3`` (A), ``dd[t] = dI/dV`` (S) at the
    voltages ``v[t]`` (``cur`` may be ``v``)."""
    for t in range(v.size):
        u = v[t]
        cur[t] = u * (g + u * (pd[0] + u * pd[1]))
        dd[t] = g + u * (2.0 * pd[0] + 3.0 * u * pd[1])


#: The two-terminal residual kernel takes the cell voltages and their exponentials of a
#: whole P chain in one loop each over its ``q k`` values, rather than cell by cell over
#: ``k``: each loop costs a fixed ~20 ns (the vectoriser's run-time overlap checks and
#: remainders), ~110 ns per cell in all with a loop per cell and quantity, i.e. most of
#: an evaluation at 8 vectors and a third at 32 (one thread: 576 x 64 at 32 vectors 4.6
#: -> 3.9 ns per cell and vector, 64 x 51 at 80 vectors, the MNIST CNN's conv tiles, 2.6
#: -> 2.1; the results bit for bit the same).  Up to ``_ROW_VALUES`` values per chain:
#: beyond, the chain's scratch leaves the L1/L2 caches and the per-cell loops are faster
#: (576 x 64 at 80 vectors: 3.5 against 3.8).  Compile-time constants; False is the path
#: before.  (The same for cells with a middle node was measured and not kept: 0.82-0.99x
#: at 32 vectors and 1.1-1.5x slower at 80, its per-cell loops being fewer and longer.)
_ROW_LOOPS = True
_ROW_VALUES = 4096


@njit(**NJIT_SIMD_PARALLEL)
def evaluate_2t(xP, xS, srcP, srcS, wp, tp0, tp1, c, ts0, ts1, G, pd, top_is_P, rP, rS, D, res, res_v,
                i_col):  # pragma: no cover - compiled
    """:func:`evaluate` for cells without a middle node and a built-in device.

    Outputs ``rP``, ``rS``, ``res``, ``res_v``, ``i_col`` as :func:`evaluate`; ``D``
    (p, q, k): each vector's cell conductance dI/dV (S), which is every entry of the
    condensed cell Jacobian.
    """
    p, q, k = xP.shape
    rows = _ROW_LOOPS and q * k <= _ROW_VALUES
    n = q * k if rows else k
    for a in prange(p):
        v = np.empty(n)
        e = np.empty(n)
        lo = np.empty(n, dtype=np.int64)
        hi = np.empty(n, dtype=np.int64)
        _evaluate_2t_block(a, xP, xS, srcP, srcS, wp, tp0, tp1, c, ts0, ts1, G, pd, top_is_P, rP, rS, D, res[a],
                           res_v[a], i_col, rows, v, e, lo, hi)


@njit(**NJIT_SIMD)
def _evaluate_2t_block(a, xP, xS, srcP, srcS, wp, tp0, tp1, c, ts0, ts1, G, pd, top_is_P, rP, rS, D, res, res_v,
                       i_col, rows, v, e, lo, hi):  # pragma: no cover - compiled
    """One P chain of :func:`evaluate_2t`: with ``rows`` (:data:`_ROW_LOOPS`) the cell
    voltages and their exponentials in one loop each over the chain's ``q k`` values
    (scratch ``v``, ``e``, ``lo``, ``hi`` of that size), else cell by cell (scratch of
    ``k``); the law and KCL per cell."""
    p, q, k = xP.shape
    code = pd[pd.size - 1]
    sinh = code == 1.0 and pd[0] != 0.0
    aa = pd[0]
    sgn = 1.0 if top_is_P else -1.0  # cell voltage = sgn * (P - S)
    with_i = _with_i_col(i_col, p, q, k)
    ia = np.int64(a)
    al = ia - 1 if ia > 0 else ia
    ar = ia + 1 if ia < p - 1 else ia
    flo, fhi = lo.view(np.float64), hi.view(np.float64)
    xpa = xP[a].reshape(q * k)
    xsa = xS[a].reshape(q * k)
    if rows:
        for j in range(q * k):
            v[j] = sgn * (xpa[j] - xsa[j])
        if sinh:
            _exp_core(v, aa, e, lo, hi, flo, fhi)
    for t in range(k):
        res[t] = 0.0
        res_v[t] = 0.0
    for b in range(q):
        bl, br, wl, wr, tP, cu, cd, tS, gP, gS, rgP, rgS = _wires(a, b, p, q, wp, tp0, tp1, c, ts0, ts1)
        g = G[a, b]
        o = b * k if rows else 0
        if not rows:
            for t in range(k):
                v[t] = sgn * (xpa[b * k + t] - xsa[b * k + t])
            if sinh:
                _exp_core(v, aa, e, lo, hi, flo, fhi)
        dd = D[a, b]
        cur = v[o:o + k]  # the cell's voltages, overwritten with its currents
        _law_rows(code, pd, g, e[o:o + k], cur, cur, dd)
        xp = xP[a, b]
        xs = xS[a, b]
        xpl = xP[a, bl]
        xpr = xP[a, br]
        xsu = xS[al, b]
        xsd = xS[ar, b]
        sp = srcP[a]
        ss = srcS[b]
        orP = rP[a, b]
        orS = rS[a, b]
        for t in range(k):
            im = cur[t]
            fp = gP * xp[t] - wl * xpl[t] - wr * xpr[t] - tP * sp[t] + sgn * im
            fs = gS * xs[t] - cu * xsu[t] - cd * xsd[t] - tS * ss[t] - sgn * im
            orP[t] = -fp
            orS[t] = -fs
            m = max(abs(fp), abs(fs))
            m = m if m == m else np.inf  # NaN counts as infinite
            vv = max(abs(fp) * rgP, abs(fs) * rgS)
            vv = vv if vv == vv else np.inf
            res[t] = max(res[t], m)
            res_v[t] = max(res_v[t], vv)
        if with_i:  # (a store of the currents in the loop above slowed it by 10-20 %)
            oI = i_col[a, b]
            for t in range(k):
                oI[t] = cur[t]


# ------------------------------------------------------------------ cells with a middle node
#: Sinh memristor + Level1: the cell's three exponentials in one pass over ``3 k``
#: arguments (a compile-time constant; :func:`separate_exponentials` is the kernel without).
_MERGE_EXP = True

# Built-in device and built-in transistor (Level1 or Resistor): the same laws as
# :func:`_cell`, written as batch loops with selects instead of branches so that LLVM
# vectorises them, the three exponentials (sinh law, drain and source junctions) included.


@njit(inline="always", **NJIT_SIMD)
def _junction_rows(v, pt, ji, jg, z, lo, hi):  # pragma: no cover - compiled
    """:func:`xbarsolve.transistors._level1_junction` for a batch: current out of a
    terminal at ``v[t]`` into the grounded bulk ``ji[t]`` (A), its derivative ``jg[t]`` (S);
    ``z``: float scratch."""
    k = v.size
    for t in range(k):
        z[t] = min(709.0, -v[t] * pt[6])
    _exp_rows(z, 1.0, ji, lo, hi)
    _junction_select(v, pt, ji, jg)


@njit(inline="always", **NJIT_SIMD)
def _junction_select(v, pt, ji, jg):  # pragma: no cover - compiled
    """The rest of :func:`_junction_rows` once ``ji[t]`` holds ``exp(min(709, -v[t] / vt))``:
    both branches of the junction law, then selected (written into ``ji``, ``jg``)."""
    k = v.size
    i_s = pt[3]
    gmin = pt[4]
    lim = -3.0 * pt[5]
    for t in range(k):
        vb = -v[t]
        e = ji[t]
        # both branches computed, then selected: LLVM vectorises a select, not a branch
        rev = vb <= lim
        c_rev = i_s - gmin * vb
        c_fwd = -(i_s * (e - 1.0) + gmin * vb)
        g_fwd = i_s * e * pt[6] + gmin
        ji[t] = c_rev if rev else c_fwd
        jg[t] = gmin if rev else g_fwd


@njit(inline="always", **NJIT_SIMD)
def _level1_rows(vd, vs, vg, pt, i, gd, gs):  # pragma: no cover - compiled
    """:func:`xbarsolve.transistors._level1_ids` for a batch (gate ``vg`` shared):
    channel current drain -> source ``i[t]`` (A) and its derivatives ``gd[t]``, ``gs[t]``
    with respect to the drain and source potentials (S)."""
    k = vd.size
    vto = pt[0]
    beta = pt[1]
    lam = pt[2]
    for t in range(k):
        d = vd[t]
        s = vs[t]
        vds = d - s
        # every branch computed, then selected (LLVM vectorises selects, not branches)
        pos = vds >= 0.0
        low = s if pos else d
        vgst = vg - low - vto
        nvds = -vds
        v = vds if pos else nvds
        betap = beta * (1.0 + lam * v)
        sat = vgst <= v
        half = vgst - 0.5 * v
        c_sat = betap * vgst * vgst * 0.5
        c_lin = betap * v * half
        g_sat = betap * vgst
        g_lin = betap * v
        d_sat = lam * beta * vgst * vgst * 0.5
        d_lin = betap * (vgst - v) + lam * beta * v * half
        cdrain = c_sat if sat else c_lin
        gm = g_sat if sat else g_lin
        gds = d_sat if sat else d_lin
        off = vgst <= 0.0
        ncd = -cdrain
        gmd = gm + gds
        ngmd = -gmd
        ngds = -gds
        i_on = cdrain if pos else ncd
        gd_on = gds if pos else gmd
        gs_on = ngmd if pos else ngds
        i[t] = 0.0 if off else i_on
        gd[t] = 0.0 if off else gd_on
        gs[t] = 0.0 if off else gs_on


@njit(**NJIT_SIMD_PARALLEL)
def evaluate_3t(xP, xS, xM, srcP, srcS, wp, tp0, tp1, c, ts0, ts1, G, vgc, pd, pt, top_is_P,
                rP, rS, m0, mP, mS, cells, cellv, res, res_v, i_col):  # pragma: no cover - compiled
    """:func:`evaluate` for cells with a middle node, a built-in device and a built-in
    transistor (``pt[-1]``: 1 Level1, 0 Resistor); the same arguments and outputs
    (``has_mid`` True)."""
    p, q, k = xP.shape
    for a in prange(p):
        w = np.empty((11, k))
        wj = np.empty((4, k), dtype=cellv.dtype)  # the Jacobian rows, in cellv's precision
        lo = np.empty(3 * k, dtype=np.int64)
        hi = np.empty(3 * k, dtype=np.int64)
        w3 = np.empty((4, 3 * k))
        _evaluate_3t_block(a, xP, xS, xM, srcP, srcS, wp, tp0, tp1, c, ts0, ts1, G, vgc, pd, pt, top_is_P,
                           rP, rS, m0, mP, mS, cells, cellv, res[a], res_v[a], i_col, w, wj, lo, hi, w3)


@njit(**NJIT_SIMD)
def _evaluate_3t_block(a, xP, xS, xM, srcP, srcS, wp, tp0, tp1, c, ts0, ts1, G, vgc, pd, pt, top_is_P,
                       rP, rS, m0, mP, mS, cells, cellv, res, res_v, i_col, w, wj, lo3, hi3,
                       w3):  # pragma: no cover - compiled
    p, q, k = xP.shape
    per_vector = cellv.shape[1] == p and cellv.shape[3] == k
    with_u = per_vector and cellv.shape[0] == 4
    code = pd[pd.size - 1]
    level1 = pt[pt.size - 1] == 1.0
    # Sinh memristor and Level1: the three exponentials of a cell (the sinh law's, the two
    # junctions') in one pass over 3 k arguments (on 576 x 64, 32 vectors, one pass of 96
    # instead of three of 32: fewer loops per cell, longer vector loops)
    merged = _MERGE_EXP and level1 and code == 1.0 and pd[0] != 0.0
    with_i = _with_i_col(i_col, p, q, k)
    top = top_is_P
    vmem, im, gmem, z, r0, r1, r2 = w[0], w[1], w[2], w[3], w[4], w[5], w[6]
    fMs, invs, fps, fss = w[7], w[8], w[9], w[10]
    z3, e3, v2, j2 = w3[0], w3[1], w3[2], w3[3]  # exp arguments and values (3 k); junction voltages (2 k)
    lo, hi = lo3[:k], hi3[:k]
    flo3, fhi3 = lo3.view(np.float64), hi3.view(np.float64)
    # the junctions (middle node, bottom node): currents over their exponentials (e3's
    # last two thirds), conductances in j2's halves
    jm, jb, gjm, gjb = e3[k:2 * k], e3[2 * k:], j2[:k], j2[k:2 * k]
    e_sinh, e_junc, v_junc, g_junc = e3[:k], e3[k:], v2[:2 * k], j2[:2 * k]
    aa = pd[0]
    pt6 = pt[6] if level1 else 0.0  # 1 / vt (a Resistor's parameters stop at pt[1])
    eP_, eS_, u_, w_ = wj[0], wj[1], wj[2], wj[3]
    if not level1:
        jm[:] = 0.0
        gjm[:] = 0.0
        jb[:] = 0.0
        gjb[:] = 0.0
    ia = np.int64(a)
    al = ia - 1 if ia > 0 else ia
    ar = ia + 1 if ia < p - 1 else ia
    for t in range(k):
        res[t] = 0.0
        res_v[t] = 0.0
    for b in range(q):
        bl, br, wl, wr, tP, cu, cd, tS, gP, gS, rgP, rgS = _wires(a, b, p, q, wp, tp0, tp1, c, ts0, ts1)
        g = G[a, b]
        xp = xP[a, b]
        xs = xS[a, b]
        xm = xM[a, b]
        vT = xp if top else xs
        vB = xs if top else xp
        if merged:
            gk = 0.5 * g * pd[1]
            for t in range(k):
                vm = vT[t] - xm[t]
                vmem[t] = vm
                z3[t] = aa * vm
                z3[k + t] = min(709.0, -xm[t] * pt6)
                z3[2 * k + t] = min(709.0, -vB[t] * pt6)
                v2[t] = xm[t]
                v2[k + t] = vB[t]
            _exp_core(z3, 1.0, e3, lo3, hi3, flo3, fhi3)
            _sinh_rows(e_sinh, gk, aa, im, gmem)
            _junction_select(v_junc, pt, e_junc, g_junc)  # both junctions
            _level1_rows(xm, vB, vgc[a, b], pt, r0, r1, r2)
        else:
            for t in range(k):
                vmem[t] = vT[t] - xm[t]
            _device_rows(code, pd, g, vmem, im, gmem, lo, hi)
            if level1:
                _junction_rows(xm, pt, jm, gjm, z, lo, hi)
                _junction_rows(vB, pt, jb, gjb, z, lo, hi)
                _level1_rows(xm, vB, vgc[a, b], pt, r0, r1, r2)
            else:  # Resistor: g (vd - vs), g, -g
                gr = pt[0]
                for t in range(k):
                    r0[t] = gr * (xm[t] - vB[t])
                    r1[t] = gr
                    r2[t] = -gr
        if per_vector:
            oeP = cellv[0, a, b]
            oeS = cellv[1, a, b]
            ow = cellv[2, a, b]
            ou = cellv[3, a, b] if with_u else u_
        else:
            ou = u_
            oeP = eP_
            oeS = eS_
            ow = w_
        xpl = xP[a, bl]
        xpr = xP[a, br]
        xsu = xS[al, b]
        xsd = xS[ar, b]
        sp = srcP[a]
        ss = srcS[b]
        orP = rP[a, b]
        orS = rS[a, b]
        oI = i_col[a, b] if with_i else z  # (z is free by now)
        om0 = m0[a, b]
        omP = mP[a, b]
        omS = mS[a, b]
        # Several short loops rather than one long one: LLVM vectorises a loop only when it
        # can check at run time that its arrays do not overlap, and gives up on too many.
        for t in range(k):  # the middle node: its KCL residual and its update dM
            gm = gmem[t]
            gs = r2[t]
            fM = r0[t] + jm[t] - im[t]
            inv = 1.0 / (gm + r1[t] + gjm[t])
            fMs[t] = fM
            invs[t] = inv
            om0[t] = -fM * inv
            mT = gm * inv
            mB = -gs * inv
            omP[t] = mT if top else mB
            omS[t] = mB if top else mT
        for t in range(k):  # the condensed cell Jacobian
            gm = gmem[t]
            gd = r1[t]
            gs = r2[t]
            inv = invs[t]
            cT = gm * (gd + gjm[t]) * inv
            cB = -gs * (gm + gjm[t]) * inv + gjb[t]
            cTB = -gm * gs * inv
            cBT = gd * gm * inv
            oeP[t] = cT if top else cB
            oeS[t] = cB if top else cT
            ow[t] = cBT if top else cTB
            ou[t] = cTB if top else cBT
        for t in range(k):  # KCL at the P nodes
            fB = jb[t] - r0[t]
            fT = im[t]
            fps[t] = gP * xp[t] - wl * xpl[t] - wr * xpr[t] - tP * sp[t] + (fT if top else fB)
        for t in range(k):  # KCL at the S nodes
            fB = jb[t] - r0[t]
            fT = im[t]
            fss[t] = gS * xs[t] - cu * xsu[t] - cd * xsd[t] - tS * ss[t] + (fB if top else fT)
        for t in range(k):  # right-hand sides, column currents, residual norms
            fp = fps[t]
            fs = fss[t]
            fM = fMs[t]
            inv = invs[t]
            rT = -gmem[t] * fM * inv
            rB = -r1[t] * fM * inv
            orP[t] = (rT if top else rB) - fp
            orS[t] = (rB if top else rT) - fs
            oI[t] = r0[t] - jb[t]
            m_abs = max(abs(fp), abs(fs), abs(fM))
            v_abs = max(abs(fp) * rgP, abs(fs) * rgS)
            v_abs = max(v_abs, abs(fM * inv))
            m_abs = m_abs if m_abs == m_abs else np.inf  # NaN counts as infinite
            v_abs = v_abs if v_abs == v_abs else np.inf
            res[t] = max(res[t], m_abs)
            res_v[t] = max(res_v[t], v_abs)
        sP = 0.0  # batch sums, in the order of the generic kernel (0 with per_vector)
        sS = 0.0
        su = 0.0
        sw = 0.0
        if not per_vector:
            for t in range(k):
                sP += eP_[t]
                sS += eS_[t]
                su += u_[t]
                sw += w_[t]
        cells[0, a, b] = sP
        cells[1, a, b] = sS
        cells[2, a, b] = su
        cells[3, a, b] = sw


@njit(**NJIT_SIMD_PARALLEL)
def column_deliveries(xP, xS, xM, G, vgc, pd, pt, top_is_P, has_mid, out):  # pragma: no cover - compiled
    """``i_col`` of :func:`evaluate` alone, for built-in models: the current (A) each
    cell delivers to its column node at the potentials ``xP``, ``xS`` (and ``xM``), the
    device current without a middle node, else the channel current less the column-side
    junction's; written into ``out`` (p, q, k).  A fraction of an evaluation's cost (no
    sinh law with a middle node), so that the line relaxation can take the currents of
    the iterate its last update produced rather than of the one before."""
    p, q, k = xP.shape
    code = pd[pd.size - 1]
    level1 = pt[pt.size - 1] == 1.0
    sgn = 1.0 if top_is_P else -1.0  # cell voltage = sgn * (P - S) without a middle node
    for a in prange(p):
        v = np.empty(k)
        cur = np.empty(k)
        dd = np.empty(k)
        z = np.empty(k)
        lo = np.empty(k, dtype=np.int64)
        hi = np.empty(k, dtype=np.int64)
        for b in range(q):
            xp = xP[a, b]
            xs = xS[a, b]
            o = out[a, b]
            if has_mid:
                xm = xM[a, b]
                vB = xs if top_is_P else xp
                if level1:
                    _level1_rows(xm, vB, vgc[a, b], pt, cur, dd, z)
                    _junction_rows(vB, pt, v, dd, z, lo, hi)
                    for t in range(k):
                        o[t] = cur[t] - v[t]
                else:
                    gr = pt[0]
                    for t in range(k):
                        o[t] = gr * (xm[t] - vB[t])
            else:
                for t in range(k):
                    v[t] = sgn * (xp[t] - xs[t])
                _device_rows(code, pd, G[a, b], v, cur, dd, lo, hi)
                for t in range(k):
                    o[t] = cur[t]


#: The P chains' solve with its reciprocal pivots in the precision of the cell Jacobian
#: ``eP`` (float32 in the line relaxation, like the S chains' pivots:
#: :data:`._lines._SCRATCH`) and computed for the whole chain before the forward
#: substitution, in loops of their own.  Either alone gained nothing; together the loops
#: run in 16-wide float32 lanes (lines_pre_p on a 64 x 51 tile, 80 vectors, one thread:
#: 1.0 against 1.8 ns per cell and vector).  From ``_P_SPLIT_MIN`` vectors: on fewer
#: the second loop's overhead per node costs more than it saves (one vector: 1.05-1.09x
#: the solve time).  Compile-time constant; False is the path before (float64 pivots,
#: one loop for both).
_P_PIVOTS_FIRST = True
_P_SPLIT_MIN = 8


@njit(**NJIT_SIMD, inline="always")
def _p_pivots(e):  # pragma: no cover - compiled
    """Scratch for one P chain's reciprocal pivots, shaped like its cell Jacobian ``e``
    (q, k): of its dtype (``_P_PIVOTS_FIRST``), else float64."""
    if _P_PIVOTS_FIRST:
        return np.empty_like(e)
    return np.empty(e.shape)


@njit(**NJIT_SIMD, inline="always")
def _p_chain_solve(d, e, wp, src, r, inv):  # pragma: no cover - compiled
    """``r = tridiag(-wp, d + e, -wp)^-1 src`` along one P chain (q nodes, k vectors;
    ``src`` may be ``r``), with the reciprocal pivots in the scratch ``inv`` (q, k)."""
    q, k = r.shape
    if _P_PIVOTS_FIRST and k >= _P_SPLIT_MIN:
        for t in range(k):
            inv[0, t] = 1.0 / (d[0] + e[0, t])
        for b in range(1, q):
            wb = wp[b - 1]
            ww = wb * wb
            d0 = d[b]
            ip, ib, eb = inv[b - 1], inv[b], e[b]
            for t in range(k):
                ib[t] = 1.0 / (d0 + eb[t] - ww * ip[t])
        for t in range(k):
            r[0, t] = src[0, t]
        for b in range(1, q):
            wb = wp[b - 1]
            rp, rb, sb, ip = r[b - 1], r[b], src[b], inv[b - 1]
            for t in range(k):
                rb[t] = sb[t] + wb * rp[t] * ip[t]
    else:
        for t in range(k):
            inv[0, t] = 1.0 / (d[0] + e[0, t])
            r[0, t] = src[0, t]
        for b in range(1, q):
            wb = wp[b - 1]
            d0 = d[b]
            for t in range(k):
                r[b, t] = src[b, t] + wb * r[b - 1, t] * inv[b - 1, t]
                inv[b, t] = 1.0 / (d0 + e[b, t] - wb * wb * inv[b - 1, t])
    for t in range(k):
        r[q - 1, t] *= inv[q - 1, t]
    for b in range(q - 2, -1, -1):
        wb = wp[b]
        for t in range(k):
            r[b, t] = (r[b, t] + wb * r[b + 1, t]) * inv[b, t]


@njit(**NJIT_SIMD, inline="always")
def _s_chains_forward(s_diag, e, c, z, piv, b0, b1):  # pragma: no cover - compiled
    """Forward elimination of ``tridiag(-c, s_diag + e, -c) x = z`` along the S chains
    ``b0 <= b < b1`` (axis 0), in place in ``z``, with the reciprocal pivots in ``piv``
    (which may be ``e``: each entry of ``e`` is read before its pivot is written)."""
    p, _, k = z.shape
    for b in range(b0, b1):
        for t in range(k):
            piv[0, b, t] = 1.0 / (s_diag[0, b] + e[0, b, t])
    for a in range(1, p):
        for b in range(b0, b1):
            ca = c[a - 1, b]
            d0 = s_diag[a, b]
            for t in range(k):
                z[a, b, t] += ca * z[a - 1, b, t] * piv[a - 1, b, t]
                piv[a, b, t] = 1.0 / (d0 + e[a, b, t] - ca * ca * piv[a - 1, b, t])


@njit(**NJIT_SIMD_PARALLEL)
def lines_p(p_diag, eP, wp, rP, w, rS):  # pragma: no cover - compiled
    """First half of a line-relaxation sweep, in place: solve
    ``tridiag(-wp, p_diag + eP, -wp) dP = rP`` along every P chain (axis 1; ``p_diag``
    (p, q), each vector's ``eP`` (p, q, k)), leaving dP in ``rP``, and add the
    coupling ``w dP`` of each cell to the S right-hand sides ``rS``."""
    p, q, k = rP.shape
    for a in prange(p):
        inv = _p_pivots(eP[a])
        r = rP[a]
        _p_chain_solve(p_diag[a], eP[a], wp[a], r, r, inv)
        ws = w[a]
        rs = rS[a]
        for b in range(q):
            for t in range(k):
                rs[b, t] += ws[b, t] * r[b, t]


@njit(**NJIT_SIMD_PARALLEL)
def lines_s(s_diag, eS, c, rS, xP, xS, xM, dP, m0, mP, mS, has_mid, step, n_blocks):  # pragma: no cover - compiled
    """Second half of a line-relaxation sweep: solve ``tridiag(-c, s_diag + eS, -c) dS
    = rS`` along every S chain (axis 0) in place, then apply the sweep's update:
    ``xP += dP``, ``xS += dS``, ``xM += m0 + mP dP + mS dS``.  Writes the largest
    |update| (V) of each chain and vector into ``step`` (q, k) (NaN as inf).  ``eS`` is
    overwritten (by the reciprocal pivots).

    The chains are solved side by side, ``q / n_blocks`` of them per step along axis 0
    (a (q / n_blocks, k) block of contiguous memory), threads taking blocks of chains:
    one block per thread is best (576 x 64, 32 vectors, one thread: 5.0 ns per cell and
    vector with one block, 7.6 with 8; see :data:`._lines._S_BLOCKS`).
    """
    p, q, k = rS.shape
    n_blocks = max(1, min(q, n_blocks))
    for blk in prange(n_blocks):
        b0 = blk * q // n_blocks
        b1 = (blk + 1) * q // n_blocks
        for b in range(b0, b1):
            for t in range(k):
                step[b, t] = 0.0
        _s_chains_forward(s_diag, eS, c, rS, eS, b0, b1)  # the pivots overwrite eS
        for b in range(b0, b1):
            for t in range(k):
                rS[p - 1, b, t] *= eS[p - 1, b, t]
        for a in range(p - 2, -1, -1):
            for b in range(b0, b1):
                ca = c[a, b]
                for t in range(k):
                    rS[a, b, t] = (rS[a, b, t] + ca * rS[a + 1, b, t]) * eS[a, b, t]
        for a in range(p):
            for b in range(b0, b1):
                for t in range(k):
                    d1 = dP[a, b, t]
                    d2 = rS[a, b, t]
                    xP[a, b, t] += d1
                    xS[a, b, t] += d2
                    big = max(abs(d1), abs(d2))
                    if has_mid:
                        d3 = m0[a, b, t] + mP[a, b, t] * d1 + mS[a, b, t] * d2
                        xM[a, b, t] += d3
                        big = max(big, abs(d3))
                    big = big if big == big else np.inf
                    step[b, t] = max(step[b, t], big)


@njit(**NJIT_SIMD_PARALLEL)
def lines_pre_p(p_diag, eP, wp, src, w, rS, out, zS):  # pragma: no cover - compiled
    """P half of a Gauss-Seidel pass before the last one of a sweep (see
    :func:`lines_pre_s`): ``out = tridiag(-wp, p_diag + eP, -wp)^-1 src`` along every
    P chain and ``zS = rS + w out``; ``src`` (the residual ``rP``, or ``out`` itself
    from an earlier pass) and ``rS`` are left as they are."""
    p, q, k = src.shape
    for a in prange(p):
        inv = _p_pivots(eP[a])
        r = out[a]
        _p_chain_solve(p_diag[a], eP[a], wp[a], src[a], r, inv)
        ws = w[a]
        rs = rS[a]
        z = zS[a]
        for b in range(q):
            for t in range(k):
                z[b, t] = rs[b, t] + ws[b, t] * r[b, t]


@njit(**NJIT_SIMD_PARALLEL)
def lines_pre_s(s_diag, eS, c, zS, piv, rP, u, out, n_blocks):  # pragma: no cover - compiled
    """S half of a Gauss-Seidel pass before the last one: solve
    ``tridiag(-c, s_diag + eS, -c) dS = zS`` along every S chain in place (reciprocal
    pivots in the scratch ``piv``; ``eS`` is left as it is), then write the next pass's
    P right-hand side ``out = rP + u dS``.

    A sweep of ``n`` passes is ``n - 1`` of these pairs, then :func:`lines_p` on
    ``out`` and :func:`lines_s`: block Gauss-Seidel on the sweep's Newton system, whose
    error falls by the coupling of the wire families per pass while the residual is
    evaluated once per sweep.  ``n_blocks``: as in :func:`lines_s`.
    """
    p, q, k = zS.shape
    n_blocks = max(1, min(q, n_blocks))
    for blk in prange(n_blocks):
        b0 = blk * q // n_blocks
        b1 = (blk + 1) * q // n_blocks
        _s_chains_forward(s_diag, eS, c, zS, piv, b0, b1)
        for b in range(b0, b1):
            for t in range(k):
                zS[p - 1, b, t] *= piv[p - 1, b, t]
                out[p - 1, b, t] = rP[p - 1, b, t] + u[p - 1, b, t] * zS[p - 1, b, t]
        for a in range(p - 2, -1, -1):
            for b in range(b0, b1):
                ca = c[a, b]
                for t in range(k):
                    d = (zS[a, b, t] + ca * zS[a + 1, b, t]) * piv[a, b, t]
                    zS[a, b, t] = d
                    out[a, b, t] = rP[a, b, t] + u[a, b, t] * d


@njit(**NJIT)
def lines_status(res, res_v, steps, itol, vtol, prev, ok, shrink):  # pragma: no cover - compiled
    """Bookkeeping of a line-relaxation sweep, per vector: ``ok``: converged (KCL
    residual ``res`` (A) at most ``itol``, scaled residual ``res_v`` and the largest
    update of the per-chain ``steps`` (q, k) at most ``vtol``, V); ``prev`` (the previous
    sweep's largest update) becomes this one's.  Returns the number converged and whether
    every other vector's update failed to shrink by the factor ``shrink`` (NaN counts as
    such)."""
    q, k = steps.shape
    n_ok = 0
    all_slow = True
    for t in range(k):
        st = 0.0
        for b in range(q):
            st = max(st, steps[b, t])
        good = res[t] <= itol[t] and res_v[t] <= vtol[t] and st <= vtol[t]
        ok[t] = good
        if good:
            n_ok += 1
        elif st <= shrink * prev[t]:
            all_slow = False
        prev[t] = st
    return n_ok, all_slow


@njit(**NJIT_PARALLEL)
def update(xP, xS, xM, dP, dS, m0, mP, mS, has_mid, scale):  # pragma: no cover - compiled
    """Apply ``scale`` times the update in place: ``xP += dP``, ``xS += dS`` and
    ``xM += m0 + mP dP + mS dS``; returns the largest |update| (V) of each vector (k,)."""
    p, q, k = xP.shape
    part = np.zeros((p, k))
    for a in prange(p):
        for b in range(q):
            for t in range(k):
                d1 = scale * dP[a, b, t]
                d2 = scale * dS[a, b, t]
                xP[a, b, t] += d1
                xS[a, b, t] += d2
                big = max(abs(d1), abs(d2))
                if has_mid:
                    d3 = scale * (m0[a, b, t] + mP[a, b, t] * dP[a, b, t] + mS[a, b, t] * dS[a, b, t])
                    xM[a, b, t] += d3
                    big = max(big, abs(d3))
                if not (big == big):
                    big = np.inf
                if big > part[a, t]:
                    part[a, t] = big
    out = np.zeros(k)
    for a in range(p):
        for t in range(k):
            if part[a, t] > out[t]:
                out[t] = part[a, t]
    return out


_SPECIALISED: dict = {}

#: The kernels that call the models, callers after callees, with their options.
_MODEL_KERNELS = (("_cell", dict(NJIT, inline="always")), ("_evaluate_block", NJIT), ("evaluate", NJIT_PARALLEL))


def specialise(current, didv, ids, junction):
    """:func:`evaluate` compiled for user-written model functions (memoised per process)."""
    key = (current, didv, ids, junction)
    fns = _SPECIALISED.get(key)
    if fns is None:
        g = dict(globals())
        g.update(_user_current=current, _user_didv=didv, _ids=ids, _junction=junction)
        py = getattr(_user_iv, "py_func", _user_iv)
        g["_iv"] = njit(inline="always", **dict(NJIT, cache=False))(FunctionType(py.__code__, g, py.__name__))
        fns = _SPECIALISED[key] = _recompiled(_MODEL_KERNELS, g)["evaluate"]
    return fns


def _recompiled(kernels, g: dict) -> dict:
    """Copies of the ``kernels`` ((name, options), callers after callees) compiled with
    the globals ``g`` (not cached on disk); returns ``g`` holding them."""
    for name, opts in kernels:
        f = globals()[name]
        py = getattr(f, "py_func", f)  # plain functions under NUMBA_DISABLE_JIT
        g[name] = njit(**dict(opts, cache=False))(FunctionType(py.__code__, g, py.__name__))
    return g


def _variant(key: str, flags: dict, kernels, entry: str | tuple[str, ...]):
    """The ``kernels`` ((name, options), callers after callees) recompiled with the module
    flags ``flags`` (the paths before, for the benchmark's comparison); returns the
    kernel ``entry`` (a tuple of them for a tuple of names), compiled on its first call
    and memoised per process."""
    fn = _SPECIALISED.get(key)
    if fn is None:
        g = _recompiled(kernels, dict(globals(), **flags))
        fn = _SPECIALISED[key] = tuple(g[e] for e in entry) if isinstance(entry, tuple) else g[entry]
    return fn


def separate_exponentials():
    """:func:`evaluate_3t` with its three exponentials per cell in three passes (module
    flag ``_MERGE_EXP`` off: the kernel before they were merged)."""
    return _variant("separate", {"_MERGE_EXP": False},
                    (("_evaluate_3t_block", NJIT_SIMD), ("evaluate_3t", NJIT_SIMD_PARALLEL)), "evaluate_3t")


def cell_loops():
    """:func:`evaluate_2t` with its loops per cell (module flag ``_ROW_LOOPS`` off: the
    kernel before the row loops)."""
    return _variant("cell_loops", {"_ROW_LOOPS": False}, (("evaluate_2t", NJIT_SIMD_PARALLEL),), "evaluate_2t")


def p_chains_before():
    """:func:`lines_p` and :func:`lines_pre_p` with the P chains' pivots in float64 and
    computed in the forward substitution's loop (module flag ``_P_PIVOTS_FIRST`` off:
    the kernels before)."""
    kernels = (("_p_pivots", dict(NJIT_SIMD, inline="always")), ("_p_chain_solve", dict(NJIT_SIMD, inline="always")),
               ("lines_p", NJIT_SIMD_PARALLEL), ("lines_pre_p", NJIT_SIMD_PARALLEL))
    return _variant("p_chains_before", {"_P_PIVOTS_FIRST": False}, kernels, ("lines_p", "lines_pre_p"))


@njit(**NJIT_PARALLEL)
def tri_factor(diag, wp):  # pragma: no cover - compiled
    """Reciprocal pivots of many symmetric tridiagonal matrices ``tridiag(-wp, diag, -wp)``.

    ``diag`` is (p, q, k) (one matrix per chain and vector); returns (p, q, k).
    """
    p, q, k = diag.shape
    inv = np.empty_like(diag)
    for a in prange(p):
        for t in range(k):
            alpha = diag[a, 0, t]
            inv[a, 0, t] = 1.0 / alpha
            for b in range(1, q):
                wb = wp[a, b - 1]
                alpha = diag[a, b, t] - wb * wb * inv[a, b - 1, t]
                inv[a, b, t] = 1.0 / alpha
    return inv


@njit(**NJIT_PARALLEL)
def tri_solve(inv, wp, r):  # pragma: no cover - compiled
    """Solve ``tridiag(-wp, diag, -wp) x = r`` in place for every chain and vector.

    ``inv`` (p, q, kk) from :func:`tri_factor` with ``kk`` 1 (shared by the batch) or
    ``k``; ``r`` (p, q, k) is overwritten by the solution.
    """
    p, q, k = r.shape
    shared = inv.shape[2] == 1
    for a in prange(p):
        for b in range(1, q):
            wb = wp[a, b - 1]
            for t in range(k):
                tt = 0 if shared else t
                r[a, b, t] += wb * r[a, b - 1, t] * inv[a, b - 1, tt]
        for t in range(k):
            tt = 0 if shared else t
            r[a, q - 1, t] *= inv[a, q - 1, tt]
        for b in range(q - 2, -1, -1):
            wb = wp[a, b]
            for t in range(k):
                tt = 0 if shared else t
                r[a, b, t] = (r[a, b, t] + wb * r[a, b + 1, t]) * inv[a, b, tt]


@njit(**NJIT_PARALLEL)
def schur_general(W, u, w, s_diag):  # pragma: no cover - compiled
    """Schur blocks ``K[a] = diag(s_diag[a]) - diag(w[a]) W[a] diag(u[a])`` (S)."""
    p, q = u.shape
    K = np.empty((p, q, q))
    for a in prange(p):
        for i in range(q):
            wi = w[a, i]
            for j in range(q):
                K[a, i, j] = -wi * W[a, i, j] * u[a, j]
            K[a, i, i] += s_diag[a, i]
    return K


@njit(**NJIT_PARALLEL)
def add_scaled(out, scale, x):  # pragma: no cover - compiled
    """``out += scale * x`` with ``scale`` (p, q, kk), kk 1 or k; all (p, q, k)."""
    p, q, k = out.shape
    shared = scale.shape[2] == 1
    for a in prange(p):
        for b in range(q):
            for t in range(k):
                out[a, b, t] += scale[a, b, 0 if shared else t] * x[a, b, t]


@njit(**NJIT_PARALLEL)
def scaled(scale, x):  # pragma: no cover - compiled
    """``scale * x`` with ``scale`` (p, q, kk), kk 1 or k; x (p, q, k)."""
    p, q, k = x.shape
    out = np.empty_like(x)
    shared = scale.shape[2] == 1
    for a in prange(p):
        for b in range(q):
            for t in range(k):
                out[a, b, t] = scale[a, b, 0 if shared else t] * x[a, b, t]
    return out
