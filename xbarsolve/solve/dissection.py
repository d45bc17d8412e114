"""Transfer matrix of square and large linear arrays by nested dissection.

The block elimination of :mod:`xbarsolve.solve.linear` costs O(max(m, n) min(m, n)^3):
fast for tall or wide arrays, slow for square ones.  Here the array is cut recursively
into rectangles of cells, and the interior of each rectangle is eliminated onto its
boundary, keeping the terminals (the driven row ends and sensed column ends) to the end.

Structure used: row wires join top nodes ``T(i, j)`` horizontally and column wires join
bottom nodes ``B(i, j)`` vertically.  A rectangle of cells ``[r0, r1) x [c0, c1)`` owns
its cells, the row-wire segments leaving its top nodes to the right (into column
``c1``) and the column-wire segments leaving its bottom nodes downwards (into row
``r1``).  Its boundary, in this order, is

- ``L``: ``T(r0:r1, c0)``, shared with the left neighbour (or the left drive terminals),
- ``R``: ``T(r0:r1, c1)``, the right neighbour's first top nodes (at the right edge of the
  array: ``T(r0:r1, n-1)`` when the right end is driven),
- ``Top``: ``B(r0, c0:c1)``, shared with the upper neighbour (or the top sense terminals),
- ``Bot``: ``B(r1, c0:c1)`` (at the bottom edge: ``B(m-1, c0:c1)`` when sensed there).

A side on the edge of the array without a terminal is eliminated with the interior.
Two neighbours share exactly one side (the left one's ``R`` is the right one's ``L``),
so merging them adds their dense boundary matrices and eliminates that separator: one
column's top nodes (``h`` of them) for a vertical cut, one row's bottom nodes for a
horizontal cut.  At the top the Schur complement ``S`` onto the m (2m for
``drive="both"``) drive and n (2n) sense terminals remains; the terminal conductances go
on its diagonal and ``T`` follows from it and the unit sources by the block formula
(:func:`_transfer_from_schur`).

Exactness: until the terminals, every matrix is the nodal matrix of a network without
ground (a Laplacian: rows sum to zero), and so is every Schur complement of it.  The
pivots and diagonals are therefore taken from the off-diagonal row sums (the
Grassmann-Taksar-Heyman form), so that no step subtracts the ~10 uS cells from the ~1 S
wires; the results agree with an extended-precision reference to the same ~1e-13 as the
block elimination.

Work: O((m n)^1.5) dense flops (O(p q^2) on a p x q strip), in large LAPACK/BLAS calls at
the top levels and in compiled loops over the many small matrices of the lower levels,
batched by shape.  BLAS runs on one thread: two threads were 2.3x slower in wall time
on the loaded 2-core machine (1024 x 1024: 35 s against 15 s), as
:func:`~xbarsolve.solve.linear.single_thread_blas` explains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy.linalg import blas as _blas, lapack as _lapack

from ..crossbar import Crossbar
from . import _dissection_kernels as _kernels
from .linear import CellLadder, cell_ladder, single_thread_blas

__all__ = ["transfer_matrix_dissection", "prefer_dissection", "Dissection", "LEAF"]

#: Largest leaf side (cells).  Leaves are eliminated in batches of equal shape.
LEAF = 4
#: Merged matrices at least this large are eliminated one at a time by LAPACK Cholesky
#: and BLAS; smaller ones in the compiled batch kernel (measured: 160, 250 and 400 within
#: 15% of each other on 256 x 256 to 1024 x 1024; 250 the fastest at 512 x 512).
_BIG = 250


def prefer_dissection(m: int, n: int) -> bool:
    """Whether :func:`transfer_matrix_dissection` beats the block elimination on an m x n array.

    With ``q = min(m, n)`` and ``p = max(m, n)`` the block elimination costs ~ p q^3 and
    the dissection ~ p q^2 on a strip (``(m n)^1.5`` when square), so the dissection
    wins from some ``q`` on, less and less as the array gets taller.  Measured (CPU
    time of factorization + ``T`` against the dissection, best of 3, on this project's
    2-core machine): block / dissection = 0.12 at 16 x 16, 0.7 at 48 x 48, 1.6 at
    64 x 64, 1.3 at 128 x 64, 1.7 at 256 x 64, 1.05 at 576 x 64, 4.2 at 128 x 128, 3.6 at
    512 x 128, 2.5 at 1024 x 128, 7.2 at 1024 x 256; hence ``q >= 64`` and
    ``p <= q^2 / 8`` (the block elimination keeps 576 x 64, a tie).
    """
    q, p = min(m, n), max(m, n)
    return q >= 64 and 8 * p <= q * q



def _require_dissectable(xbar: Crossbar, what: str) -> None:
    """Raise unless ``xbar`` is linear, with every resistance > 0 ohm and m, n >= 2."""
    if not xbar.is_linear:
        raise TypeError(f"{what} needs a linear crossbar; a nonlinear array has no transfer matrix")
    if xbar.has_zero_resistance:
        raise ValueError("the dissection needs every resistance > 0 ohm; zero resistances take the sparse path")
    if min(xbar.shape) < 2:
        raise ValueError(f"the dissection needs m, n >= 2; got shape {xbar.shape} (use xbarsolve.transfer_matrix)")

def transfer_matrix_dissection(xbar: Crossbar) -> np.ndarray:
    """Transfer matrix ``T`` (S), shape (m, n), by nested dissection: column currents are ``V @ T``.

    Exact to round-off, like :func:`xbarsolve.transfer_matrix`; faster for square and
    large arrays (see :func:`prefer_dissection`).

    Parameters
    ----------
    xbar : Crossbar
        A linear crossbar with m, n >= 2 and every resistance > 0 ohm.

    Returns
    -------
    ndarray, shape (m, n)
        ``T[i, j]``: current (A) into the sense ground(s) of column ``j`` per volt on row ``i``.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> from xbarsolve.solve.dissection import transfer_matrix_dissection
    >>> xbar = xs.Crossbar(np.full((16, 16), 20e-6), r_row=2.0, r_col=2.0)
    >>> bool(np.allclose(transfer_matrix_dissection(xbar), xs.transfer_matrix(xbar), rtol=1e-12, atol=0))
    True
    """
    _require_dissectable(xbar, "transfer_matrix_dissection")
    lad = cell_ladder(xbar, rows_first=True)
    with single_thread_blas():  # threaded BLAS measured slower here, see module docstring
        S, sides = _terminal_schur(lad)
        return _transfer_from_schur(lad, S, sides)


# --------------------------------------------------------------------- the tree
@dataclass(frozen=True)
class _Net:
    """The array's conductances (S) in row-major form and which ends carry terminals."""

    m: int
    n: int
    g: np.ndarray  # (m, n) cells
    wr: np.ndarray  # (m, n-1) row wire segments
    wc: np.ndarray  # (m-1, n) column wire segments
    left: bool
    right: bool
    top: bool
    bottom: bool


def _net(lad: CellLadder) -> _Net:
    if not lad.rows_first:
        raise ValueError("the dissection reads the ladder in row orientation (rows_first=True)")
    return _Net(lad.p, lad.q, lad.g, lad.wp, lad.c, bool(lad.tp0.any()), bool(lad.tp1.any()),
                bool(lad.ts0.any()), bool(lad.ts1.any()))


def _splits(size: int) -> tuple[int, int]:
    return size // 2, size - size // 2


def _levels(m: int, n: int) -> list[tuple[int, np.ndarray]]:
    """Rectangles of every level, root first; children of rectangle k are 2k and 2k+1.

    Returns ``[(axis, boxes), ...]`` where ``boxes`` is (count, 4) of ``r0, r1, c0, c1``
    and ``axis`` says how the level's rectangles split into the next level's (0: rows,
    1: columns, -1: leaves).  All rectangles of a level split along the same axis.
    """
    levels = []
    boxes = np.array([[0, m, 0, n]])
    while True:
        h = (boxes[:, 1] - boxes[:, 0]).max()
        w = (boxes[:, 3] - boxes[:, 2]).max()
        if max(h, w) <= LEAF:
            levels.append((-1, boxes))
            return levels
        axis = 0 if h >= w else 1
        levels.append((axis, boxes))
        lo, hi = (0, 1) if axis == 0 else (2, 3)
        mid = boxes[:, lo] + (boxes[:, hi] - boxes[:, lo]) // 2
        a, b = boxes.copy(), boxes.copy()
        a[:, hi] = mid
        b[:, lo] = mid
        boxes = np.stack([a, b], axis=1).reshape(-1, 4)


def _sides(net: _Net, box) -> tuple[int, int, int, int]:
    """Sizes of the boundary sides (L, R, Top, Bot) of rectangle ``box``."""
    r0, r1, c0, c1 = (int(v) for v in box)
    h, w = r1 - r0, c1 - c0
    return (
        h if (c0 > 0 or net.left) else 0,
        h if (c1 < net.n or net.right) else 0,
        w if (r0 > 0 or net.top) else 0,
        w if (r1 < net.m or net.bottom) else 0,
    )


# ---------------------------------------------------------------- elimination
def _schur_one(C: np.ndarray, r: int) -> np.ndarray:
    """Schur complement of one Laplacian onto its first ``r`` nodes (LAPACK Cholesky).

    The trailing block is positive definite (every node reaches the kept ones); the
    diagonal of the result is taken from its zero row sums, as in the compiled kernels.
    """
    return _cholesky_schur(C, r)[0]


def _cholesky_schur(C: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_schur_one`'s ``S`` with the Cholesky factor ``L`` of the trailing block and
    ``Y = L^-1 C[r:, :r]`` (the eliminated nodes' potentials are ``-L^-T Y`` times the kept ones)."""
    L, info = _lapack.dpotrf(C[r:, r:], lower=1, clean=1, overwrite_a=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"nodal block not positive definite (dpotrf info {info})")
    Y = sla.solve_triangular(L, C[r:, :r], lower=True, check_finite=False)
    S = _blas.dsyrk(-1.0, Y, beta=1.0, c=np.array(C[:r, :r], order="F"), trans=1, lower=0)
    S = np.triu(S, 1)
    S += S.T
    S[np.diag_indices(r)] = -S.sum(axis=1)  # a Laplacian: rows sum to zero (no cancellation)
    return S, L, Y


def _schur_big(C: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((C.shape[0], C.shape[1] - k, C.shape[1] - k))
    for t in range(C.shape[0]):
        out[t] = _schur_one(C[t], C.shape[1] - k)
    return out


# ---------------------------------------------------------------------- leaves
def _leaf_stencil(net: _Net, box) -> tuple:
    """Local assembly of one leaf shape: node order (boundary first) and its branches.

    Returns ``(N, n_boundary, sides, edges)``; ``edges`` is an (E, 5) int array of rows
    ``(kind, i, j, a, b)``: the conductance ``kind[r0 + i, c0 + j]`` (kind 0: cell,
    1: row wire, 2: column wire) joins local nodes ``a`` and ``b``.
    """
    r0, r1, c0, c1 = (int(v) for v in box)
    h, w = r1 - r0, c1 - c0
    r_ext, b_ext = c1 < net.n, r1 < net.m
    t = lambda i, j: i * w + j  # noqa: E731
    t_ext = lambda i: h * w + i  # noqa: E731
    nb0 = h * w + (h if r_ext else 0)
    b = lambda i, j: nb0 + i * w + j  # noqa: E731
    b_ext_node = lambda j: nb0 + h * w + j  # noqa: E731
    n_all = nb0 + h * w + (w if b_ext else 0)
    nL, nR, nT, nB = _sides(net, box)
    boundary = []
    boundary += [t(i, 0) for i in range(h)] if nL else []
    boundary += ([t_ext(i) for i in range(h)] if r_ext else [t(i, w - 1) for i in range(h)]) if nR else []
    boundary += [b(0, j) for j in range(w)] if nT else []
    boundary += ([b_ext_node(j) for j in range(w)] if b_ext else [b(h - 1, j) for j in range(w)]) if nB else []
    interior = sorted(set(range(n_all)) - set(boundary))
    order = np.empty(n_all, dtype=np.int64)
    order[np.array(boundary + interior, dtype=np.int64)] = np.arange(n_all)
    edges = []
    for i in range(h):
        for j in range(w):
            edges.append((0, i, j, t(i, j), b(i, j)))
            if j < w - 1:
                edges.append((1, i, j, t(i, j), t(i, j + 1)))
            elif r_ext:
                edges.append((1, i, j, t(i, j), t_ext(i)))
            if i < h - 1:
                edges.append((2, i, j, b(i, j), b(i + 1, j)))
            elif b_ext:
                edges.append((2, i, j, b(i, j), b_ext_node(j)))
    e = np.array(edges, dtype=np.int64)
    e[:, 3] = order[e[:, 3]]
    e[:, 4] = order[e[:, 4]]
    return n_all, len(boundary), (nL, nR, nT, nB), e


def _group_keys(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group identical rows: ``(representative row index per group, group of each row)``."""
    _, first, group = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return first, group.ravel()


def _leaf_values(net: _Net, boxes: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Branch conductances (S), (P, E), of the leaves ``boxes`` (P, 4) of one stencil ``e``."""
    vals = np.empty((len(boxes), len(e)))
    for kind, arr in enumerate((net.g, net.wr, net.wc)):
        sel = np.flatnonzero(e[:, 0] == kind)
        vals[:, sel] = arr[boxes[:, 0, None] + e[sel, 1], boxes[:, 2, None] + e[sel, 2]]
    return vals


def _eliminate_leaves(net: _Net, boxes: np.ndarray):
    """Boundary Schur complements of every leaf, grouped by shape.

    Returns ``(group_of, pos_of, groups)``: leaf ``k`` is matrix ``pos_of[k]`` of group
    ``group_of[k]``; each group is ``(sides, matrices (P, nb, nb))``.
    """
    r0, r1, c0, c1 = boxes.T
    key = np.stack([r1 - r0, c1 - c0, c0 == 0, c1 == net.n, r0 == 0, r1 == net.m], axis=1)
    first, group_of = _group_keys(key)
    pos_of = np.empty(len(boxes), dtype=np.int64)
    groups = []
    for gid, rep in enumerate(first):
        members = np.flatnonzero(group_of == gid)
        pos_of[members] = np.arange(members.size)
        N, nb, sides, e = _leaf_stencil(net, boxes[rep])
        vals = _leaf_values(net, boxes[members], e)
        groups.append((sides, _kernels.leaf_schur(vals, e[:, 3].copy(), e[:, 4].copy(), N, nb)))
    return group_of, pos_of, groups


# ---------------------------------------------------------------------- merges
def _merge_maps(axis: int, sa: tuple, sb: tuple):
    """Where two children's boundary nodes go in the merged matrix (separator last).

    ``axis`` 1: ``a`` is left of ``b`` (they share ``a.R == b.L``); axis 0: ``a`` is above
    ``b`` (``a.Bot == b.Top``).  Returns ``(map_a, map_b, merged_sides, n_total, n_sep)``.
    """
    La, Ra, Ta, Ba = sa
    Lb, Rb, Tb, Bb = sb
    offa = np.cumsum([0, La, Ra, Ta])
    offb = np.cumsum([0, Lb, Rb, Tb])
    ia = lambda side, sz: np.arange(offa[side], offa[side] + sz)  # noqa: E731
    ib = lambda side, sz: np.arange(offb[side], offb[side] + sz)  # noqa: E731
    if axis == 1:
        assert Ra == Lb
        kept = [("a", ia(0, La)), ("b", ib(1, Rb)), ("a", ia(2, Ta)), ("b", ib(2, Tb)),
                ("a", ia(3, Ba)), ("b", ib(3, Bb))]
        sep = (ia(1, Ra), ib(0, Lb))
        sides = (La, Rb, Ta + Tb, Ba + Bb)
    else:
        assert Ba == Tb
        kept = [("a", ia(0, La)), ("b", ib(0, Lb)), ("a", ia(1, Ra)), ("b", ib(1, Rb)),
                ("a", ia(2, Ta)), ("b", ib(3, Bb))]
        sep = (ia(3, Ba), ib(2, Tb))
        sides = (La + Lb, Ra + Rb, Ta, Bb)
    map_a = np.empty(sum(sa), dtype=np.int64)
    map_b = np.empty(sum(sb), dtype=np.int64)
    pos = 0
    for who, idx in kept:
        (map_a if who == "a" else map_b)[idx] = np.arange(pos, pos + idx.size)
        pos += idx.size
    n_sep = sep[0].size
    map_a[sep[0]] = np.arange(pos, pos + n_sep)
    map_b[sep[1]] = np.arange(pos, pos + n_sep)
    return map_a, map_b, sides, pos + n_sep, n_sep


def _merge_level(axis: int, n_parents: int, group_of, pos_of, groups):
    """Merge children ``2k, 2k+1`` into parent ``k`` for every parent, batched by signature."""
    first, parent_group = _group_keys(group_of.reshape(n_parents, 2))
    parent_pos = np.empty(n_parents, dtype=np.int64)
    new_groups = []
    for gid, rep in enumerate(first):
        members = np.flatnonzero(parent_group == gid)
        parent_pos[members] = np.arange(members.size)
        sa, Ma = groups[group_of[2 * rep]]
        sb, Mb = groups[group_of[2 * rep + 1]]
        map_a, map_b, sides, N, n_sep = _merge_maps(axis, sa, sb)
        sel_a, sel_b = pos_of[2 * members], pos_of[2 * members + 1]
        if N >= _BIG:
            C = _kernels.pair_schur(Ma, sel_a, map_a, Mb, sel_b, map_b, N, 0)
            S = _schur_big(C, n_sep)
        else:
            S = _kernels.pair_schur(Ma, sel_a, map_a, Mb, sel_b, map_b, N, n_sep)
        new_groups.append((sides, S))
    return parent_group, parent_pos, new_groups


def _terminal_schur(lad: CellLadder) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Schur complement of the wires and cells onto the terminal nodes, and its sides.

    The terminals' own conductances (drivers, sense resistors) are not yet on its diagonal.
    """
    net = _net(lad)
    levels = _levels(net.m, net.n)
    _, leaves = levels[-1]
    group_of, pos_of, groups = _eliminate_leaves(net, leaves)
    for axis, boxes in reversed(levels[:-1]):
        group_of, pos_of, groups = _merge_level(axis, len(boxes), group_of, pos_of, groups)
    (sides, M), = groups
    return M[0], sides


def _transfer_from_schur(lad: CellLadder, S: np.ndarray, sides) -> np.ndarray:
    """``T`` from the terminal Schur complement ``S`` (drive nodes D first, sense nodes E).

    With the terminal conductances on the diagonal, ``S = [[A, B], [B^T, C]]`` and the
    unit sources inject ``R`` into D, the sense-node voltages are
    ``X_E = -(C - B^T A^{-1} B)^{-1} B^T A^{-1} R``: two Cholesky factorizations, and
    every product combines entries of one sign (``B <= 0``, ``A^{-1} >= 0``, ``R >= 0``).
    """
    m, n = lad.p, lad.q
    nL, nR, nT, nB = sides
    nD = nL + nR
    S = S.copy()
    S[np.diag_indices_from(S)] += np.concatenate(
        [lad.tp0 if nL else [], lad.tp1 if nR else [], lad.ts0 if nT else [], lad.ts1 if nB else []])
    R = np.zeros((nD, m))
    if nL:
        R[np.arange(m), np.arange(m)] = lad.tp0
    if nR:
        R[nL + np.arange(m), np.arange(m)] = lad.tp1
    L = sla.cholesky(S[:nD, :nD], lower=True, check_finite=False)
    Y = sla.solve_triangular(L, np.hstack([S[:nD, nD:], R]), lower=True, check_finite=False)
    YE, Z = Y[:, : nT + nB], Y[:, nT + nB :]
    X_E = -sla.cho_solve(sla.cho_factor(S[nD:, nD:] - YE.T @ YE, lower=True, check_finite=False),
                         YE.T @ Z, check_finite=False)
    T = np.zeros((m, n))
    if nT:
        T += X_E[:n].T * lad.ts0
    if nB:
        T += X_E[nT:].T * lad.ts1
    return T


# ------------------------------------------------------- kept elimination (adjoint)
class Dissection:
    """The nested dissection of a linear crossbar, kept: its transfer matrix and the exact
    gradient of the column currents with respect to the cell conductances.

    The elimination is :func:`transfer_matrix_dissection`'s; in addition every step
    keeps how the potentials of the nodes it eliminates follow from those it keeps
    (``Z``: the interior of a rectangle from its boundary).  The terminals being the
    only sources, every node potential is then a linear map ``Phi`` of the terminal
    potentials, and for a batch of inputs ``V`` (batch, m) and current gradients ``gI``
    (batch, n) the gradient of ``sum_k gI_k . I(V_k)`` with respect to cell ``c`` is
    ``-sum_k dv_k(c) dphi_k(c)`` (cell voltage ``dv`` of the forward solution, ``dphi``
    of the adjoint one, whose sources are the sense ends: the nodal matrix is symmetric,
    so the adjoint network is the array itself driven from its sense ends).  Both are
    ``Phi`` of terminal potentials, linear in ``V_k`` and ``gI_k``, so the gradient
    depends on the batch only through ``C = V^T gI`` (m, n) and is obtained by pushing
    ``Phi C Phi^T`` down the dissection tree to the cells
    (:meth:`conductance_vjp`): about twice the elimination's work, whatever the batch.

    Memory: the kept maps, about ``3 m n log2(m n) / 2`` floats (784 x 512: ~0.2 GiB).

    Parameters
    ----------
    xbar : Crossbar
        A linear 1R crossbar (scheme A) with m, n >= 2 and every resistance > 0 ohm.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> from xbarsolve.solve.dissection import Dissection
    >>> xbar = xs.Crossbar(np.full((16, 12), 20e-6), r_row=2.0, r_col=2.0)
    >>> d = Dissection(xbar)
    >>> bool(np.allclose(d.transfer_matrix(), xs.transfer_matrix(xbar), rtol=1e-12, atol=0))
    True
    >>> V, gI = np.full((3, 16), 0.2), np.ones((3, 12))
    >>> d.conductance_vjp(V, gI).shape  # d(sum of all currents)/dG, per S
    (16, 12)
    """

    def __init__(self, xbar: Crossbar):
        _require_dissectable(xbar, "Dissection")
        self.xbar = xbar
        lad = self._ladder = cell_ladder(xbar, rows_first=True)
        net = _net(lad)
        levels = _levels(net.m, net.n)
        with single_thread_blas():
            group_of, pos_of, groups, self._leaves = _leaves_kept(net, levels[-1][1])
            self._merges = []
            for axis, boxes in reversed(levels[:-1]):
                shapes = [(len(M), len(M[0])) for _, M in groups]
                parent_group, parent_pos, groups, kept = _merge_level_kept(axis, len(boxes), group_of, pos_of, groups)
                self._merges.append((shapes, kept))
                group_of, pos_of = parent_group, parent_pos
        (sides, M), = groups
        self._S, self._sides = M[0], sides
        self._T = self._terminal_maps = None

    def transfer_matrix(self) -> np.ndarray:
        """Transfer matrix ``T`` (S), (m, n): column currents are ``V @ T`` (equal to
        :func:`transfer_matrix_dissection`)."""
        if self._T is None:
            with single_thread_blas():
                self._T = _transfer_from_schur(self._ladder, self._S, self._sides)
        return self._T

    def _terminals(self) -> tuple[np.ndarray, np.ndarray]:
        """Terminal potentials (V) per volt on each row, (n_terminals, m), and per volt
        driving each column's sense end(s) through its sense resistor, (n_terminals, n)."""
        if self._terminal_maps is None:
            lad, (nL, nR, nT, nB) = self._ladder, self._sides
            m, n = lad.p, lad.q
            S = self._S.copy()
            S[np.diag_indices_from(S)] += np.concatenate(
                [lad.tp0 if nL else [], lad.tp1 if nR else [], lad.ts0 if nT else [], lad.ts1 if nB else []])
            drive, sense = np.zeros((len(S), m)), np.zeros((len(S), n))
            for on, off, g, rhs in ((nL, 0, lad.tp0, drive), (nR, nL, lad.tp1, drive),
                                    (nT, nL + nR, lad.ts0, sense), (nB, nL + nR + nT, lad.ts1, sense)):
                if on:
                    rhs[off + np.arange(len(g)), np.arange(len(g))] = g
            with single_thread_blas():
                f = sla.cho_factor(S, lower=True, check_finite=False)
                self._terminal_maps = (sla.cho_solve(f, drive, check_finite=False),
                                       sla.cho_solve(f, sense, check_finite=False))
        return self._terminal_maps

    def conductance_vjp(self, V: np.ndarray, gI: np.ndarray) -> np.ndarray:
        """``dL/dG`` (per S), (m, n), of ``L = sum_k gI_k . I(V_k)``.

        Parameters
        ----------
        V : ndarray, shape (batch, m)
            Row voltages (V).
        gI : ndarray, shape (batch, n)
            Gradient of a loss with respect to the column currents ``I(V)`` (per A).

        Returns
        -------
        ndarray, shape (m, n)
            ``-sum_k dv_k * dphi_k`` over the cells (forward cell voltages times adjoint
            ones), as :func:`xbarsolve.torch._adjoint.crossbar_vjp_transposed` computes it
            from the node voltages of every vector.  Down the tree the terminal potentials
            of the batch travel as two (nodes, batch) factors while a boundary has more
            than twice as many nodes as the batch has vectors, then as their product.
        """
        m, n = self.xbar.shape
        V, gI = np.asarray(V, dtype=np.float64), np.asarray(gI, dtype=np.float64)
        if V.ndim != 2 or gI.ndim != 2 or V.shape[1] != m or gI.shape[1] != n or len(V) != len(gI):
            raise ValueError(f"V and gI must have shapes (batch, {m}) and (batch, {n}); got {V.shape} and {gI.shape}")
        Au, Aw = self._terminals()
        width = len(V)
        with single_thread_blas():
            X = (Au @ V.T, Aw @ gI.T)
            Xs = [X[0] @ X[1].T if len(Au) <= 2 * width else tuple(f[None] for f in X)]
            if not isinstance(Xs[0], tuple):
                Xs = [Xs[0][None]]
            for shapes, kept in reversed(self._merges):
                Xs = _push_down(Xs, shapes, kept, width)
            out = np.empty((m, n))
            for leaf, X in zip(self._leaves, Xs):
                D = leaf.D
                if isinstance(X, tuple):
                    val = -np.einsum("pck,pck->pc", D @ X[0], D @ X[1])
                else:
                    val = -np.einsum("pcb,pcb->pc", D @ X, D)
                out[leaf.r0[:, None] + leaf.ci, leaf.c0[:, None] + leaf.cj] = val
        return out


@dataclass(frozen=True, eq=False)
class _KeptLeaves:
    """One group of leaves: their corners and, per cell, its voltage per boundary potential."""

    r0: np.ndarray  # (P,)
    c0: np.ndarray  # (P,)
    ci: np.ndarray  # (cells,) row offset of each cell in the leaf
    cj: np.ndarray  # (cells,)
    D: np.ndarray  # (P, cells, nb)


@dataclass(frozen=True, eq=False)
class _KeptMerge:
    """One group of merged pairs: where their children sit and the separator's map ``Z``."""

    ga: int
    gb: int
    pos_a: np.ndarray  # (P,) positions of the children in their groups
    pos_b: np.ndarray
    map_a: np.ndarray
    map_b: np.ndarray
    Z: np.ndarray  # (P, n_sep, n_kept): separator potentials per kept (boundary) potential


def _gth_maps(C: np.ndarray, r: int) -> np.ndarray:
    """``Z`` (P, N - r, r) from matrices ``C`` (P, N, N) after
    :func:`~xbarsolve.solve._dissection_kernels._eliminate_trailing` (nodes ``r..``):
    node ``p`` was eliminated against nodes ``< p`` with weights ``-C[p, i] / pivot``
    (non-negative, summing to one), so forward substitution adds numbers of one sign."""
    P, N, _ = C.shape
    Z = np.empty((P, N - r, r))
    for p in range(r, N):
        w = -C[:, p, :p]
        w = w / w.sum(axis=1, keepdims=True)
        Z[:, p - r] = w[:, :r] + np.einsum("pi,pik->pk", w[:, r:], Z[:, :p - r])
    return Z


def _eliminate_kept(C: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Schur complements onto the first ``r`` nodes (P, r, r) and the maps ``Z``
    (P, N - r, r) of a batch of Laplacians ``C`` (P, N, N) (overwritten)."""
    P, N, _ = C.shape
    S = np.empty((P, r, r))
    if N >= _BIG:
        Z = np.empty((P, N - r, r))
        for t in range(P):
            S[t], L, Y = _cholesky_schur(C[t], r)
            Z[t] = -sla.solve_triangular(L, Y, lower=True, trans="T", check_finite=False)
        return S, Z
    for t in range(P):
        _kernels._eliminate_trailing(C[t], r)
        _kernels._lower_to_out(C[t], S[t])
    return S, _gth_maps(C, r)


def _leaves_kept(net: _Net, boxes: np.ndarray, chunk: int = 2048):
    """:func:`_eliminate_leaves` keeping, per leaf, every cell's voltage per boundary potential."""
    r0, r1, c0, c1 = boxes.T
    key = np.stack([r1 - r0, c1 - c0, c0 == 0, c1 == net.n, r0 == 0, r1 == net.m], axis=1)
    first, group_of = _group_keys(key)
    pos_of = np.empty(len(boxes), dtype=np.int64)
    groups, kept = [], []
    for gid, rep in enumerate(first):
        members = np.flatnonzero(group_of == gid)
        pos_of[members] = np.arange(members.size)
        N, nb, sides, e = _leaf_stencil(net, boxes[rep])
        cell = e[:, 0] == 0
        S = np.empty((members.size, nb, nb))
        D = np.empty((members.size, int(cell.sum()), nb))
        lo, hi = e[:, 3], e[:, 4]
        for s in range(0, members.size, chunk):
            sel = members[s:s + chunk]
            vals = _leaf_values(net, boxes[sel], e)
            C = np.zeros((sel.size, N, N))
            for k in range(len(e)):
                C[:, e[k, 3], e[k, 3]] += vals[:, k]
                C[:, e[k, 4], e[k, 4]] += vals[:, k]
                C[:, lo[k], hi[k]] -= vals[:, k]
                C[:, hi[k], lo[k]] -= vals[:, k]
            S[s:s + sel.size], Z = _eliminate_kept(C, nb)
            Phi = np.concatenate([np.broadcast_to(np.eye(nb), (sel.size, nb, nb)), Z], axis=1)
            D[s:s + sel.size] = Phi[:, e[cell, 3]] - Phi[:, e[cell, 4]]
        groups.append((sides, S))
        kept.append(_KeptLeaves(r0[members], c0[members], e[cell, 1], e[cell, 2], D))
    return group_of, pos_of, groups, kept


def _merge_level_kept(axis: int, n_parents: int, group_of, pos_of, groups):
    """:func:`_merge_level` keeping each separator's map ``Z``."""
    first, parent_group = _group_keys(group_of.reshape(n_parents, 2))
    parent_pos = np.empty(n_parents, dtype=np.int64)
    new_groups, kept = [], []
    for gid, rep in enumerate(first):
        members = np.flatnonzero(parent_group == gid)
        parent_pos[members] = np.arange(members.size)
        ga, gb = int(group_of[2 * rep]), int(group_of[2 * rep + 1])
        (sa, Ma), (sb, Mb) = groups[ga], groups[gb]
        map_a, map_b, sides, N, n_sep = _merge_maps(axis, sa, sb)
        sel_a, sel_b = pos_of[2 * members], pos_of[2 * members + 1]
        S, Z = _eliminate_kept(_kernels.pair_schur(Ma, sel_a, map_a, Mb, sel_b, map_b, N, 0), N - n_sep)
        new_groups.append((sides, S))
        kept.append(_KeptMerge(ga, gb, sel_a, sel_b, map_a, map_b, Z))
    return parent_group, parent_pos, new_groups, kept


def _push_down(Xs: list, shapes: list, kept: list, width: int) -> list:
    """The children's terminal-potential data from their parents'.

    Per group, either the factors ``(Phi U, Phi W)`` (P, nb, width) of the batch's forward
    and adjoint potentials on the boundary, or their product ``Phi U W^T Phi^T``
    (P, nb, nb), taken once ``nb <= 2 width`` (then cheaper to carry).  ``shapes`` are
    the child groups' (count, boundary size)."""
    as_product = [nb <= 2 * width for _, nb in shapes]
    for rec, X in zip(kept, Xs):
        if not isinstance(X, tuple):
            as_product[rec.ga] = as_product[rec.gb] = True
    out = [np.empty((count, nb, nb)) if prod else (np.empty((count, nb, width)), np.empty((count, nb, width)))
           for (count, nb), prod in zip(shapes, as_product)]
    for rec, X in zip(kept, Xs):
        Zt = np.swapaxes(rec.Z, 1, 2)
        if isinstance(X, tuple):
            U, W = (np.concatenate([F, rec.Z @ F], axis=1) for F in X)
        else:
            nk = X.shape[1]
            ZM = rec.Z @ X
            Mext = np.empty((len(X), nk + Zt.shape[2], nk + Zt.shape[2]))
            Mext[:, :nk, :nk] = X
            Mext[:, :nk, nk:] = X @ Zt
            Mext[:, nk:, :nk] = ZM
            Mext[:, nk:, nk:] = ZM @ Zt
        for g, pos, mp in ((rec.ga, rec.pos_a, rec.map_a), (rec.gb, rec.pos_b, rec.map_b)):
            if not isinstance(X, tuple):
                out[g][pos] = Mext[:, mp[:, None], mp[None, :]]
            elif as_product[g]:
                out[g][pos] = U[:, mp] @ np.swapaxes(W[:, mp], 1, 2)
            else:
                out[g][0][pos], out[g][1][pos] = U[:, mp], W[:, mp]
    return out
