"""Gram matrices of a layer's crossbar input vectors, for the exact read energy.

The read energy of a linear crossbar summed over input vectors ``v_w`` is
``sum_w v_w^T P v_w = <P, C>`` with the Gram matrix ``C = sum_w v_w v_w^T`` of the vectors
(restricted to the crossbar's row block).  :func:`row_block_grams` forms ``C`` from the
vectors (``V^T V``, which NumPy evaluates with BLAS ``syrk``: ``batch m^2 / 2``
multiply-adds).

The vectors of a stride-1 convolution are the im2col windows of its input feature map, and
their Gram matrix needs no windows (:class:`Windows`): the block of kernel positions
``(a, b)`` and ``(a + d, b + e)`` is ``sum x[u, v] x[u + d, v + e]^T`` (channels x
channels, summed over the images) over the pixels ``(u, v)`` that kernel position
``(a, b)`` covers in some window, the rectangle ``[a, a + Ho) x [b, b + Wo)`` of the padded
map.  Each axis is cut at the rectangles' edges into segments; per shift ``(d, e)`` and
pair of segments one product ``x^T x_shifted`` is formed and added to the blocks whose
rectangles hold the pair.  Every term is a product of two input entries, as in ``V^T V``,
but formed once per shift instead of once per pair of kernel positions: 13 shifts instead
of 81 position pairs for a 3 x 3 kernel (``(2k - 1)^2 / 2`` against ``k^4 / 2`` products
of channel blocks per pixel), and only the shifts that the row blocks need (one, ``(0, 0)``,
when every block holds whole kernel positions: 576-row layers on 64-row tiles).

The maps are laid out as rows of C channels, ``(Hp, N, Wq)`` pixels with at least
``k_w - 1`` zero columns (padding, or guard columns) between the data of two lines, so that a shift is a constant row offset
(``d`` lines and ``e`` rows) and every pixel's partner outside the map reads 0.  The
products over the widest column segment then run on slices of one array, in chunks that
stay in cache through all shifts; they cover every column of the lines, and the other
(border) column segments, gathered separately, are subtracted.  The terms are products of
non-negative voltages, so the subtraction loses nothing; the result equals ``V^T V`` of the
windows to round-off (tested to 1e-12).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

__all__ = ["row_block_grams", "Windows", "window_grams"]

Block = tuple[int, int]

#: Rows x channels per product in :meth:`Windows.grams` (256 kB): the rows and their
#: shifted partners stay in cache through the products of every shift.
_CHUNK_ENTRIES = 32768

#: Maps with fewer channels are unfolded (:class:`Windows`): products of 3 channels (an RGB
#: input) ran at a third of the speed of 9 (measured 4.0 against 2.1 ms per 32 x 32 x 3 batch
#: of 50, and 2.9 ms for ``V^T V`` of the windows).
_UNFOLD_BELOW_CHANNELS = 8


def row_block_grams(V: np.ndarray, blocks) -> dict[Block, np.ndarray]:
    """``{(r0, r1): V[:, r0:r1]^T V[:, r0:r1]}`` for the row blocks ``blocks`` of the
    vectors ``V`` (batch, rows)."""
    out = {}
    for r0, r1 in blocks:
        Vb = V[:, r0:r1]
        out[r0, r1] = Vb.T @ Vb
    return out


def _segments(k: int, n_out: int, lo: int, n_real: int) -> list[tuple[int, int, frozenset]]:
    """Segments ``(start, stop, offsets)`` of one padded axis: the pixels between
    consecutive edges of the windows' rectangles ``[a, a + n_out)``, ``a < k``, that hold
    input data (not padding, ``[lo, lo + n_real)``), with the kernel offsets ``a`` whose
    rectangle holds them."""
    cuts = sorted({lo, lo + n_real} | set(range(k)) | {a + n_out for a in range(k)})
    out = []
    for s, t in zip(cuts, cuts[1:]):
        if s < lo or t > lo + n_real:
            continue
        offsets = frozenset(a for a in range(k) if a <= s and t <= a + n_out)
        if offsets:
            out.append((s, t, offsets))
    return out


class Windows:
    """The stride-1 im2col windows of a batch of feature maps, for their Gram matrices.

    Parameters
    ----------
    shape : (N, H, W, C)
        Shape of the feature maps.
    kernel_hw : (int, int)
        Kernel height and width.
    pads : ((int, int), (int, int))
        Zero padding ``((top, bottom), (left, right))``.

    :meth:`arrange` lays maps out for :meth:`grams`; an elementwise map that sends 0 to 0
    (the DAC's, :meth:`xbarsolve.cnn.AnalogMatrix._voltages`) may be applied in between.
    """

    def __init__(self, shape: tuple[int, int, int, int], kernel_hw: tuple[int, int], pads,
                 unfold: bool | None = None):
        N, H, W, C = (int(n) for n in shape)
        kh, kw = (int(k) for k in kernel_hw)
        (pt, pb), (pl, pr) = ((int(a), int(b)) for a, b in pads)
        if kh < 1 or kw < 1 or H + pt + pb < kh or W + pl + pr < kw or min(pt, pb, pl, pr) < 0:
            raise ValueError(f"a {kh}x{kw} kernel does not fit the {H}x{W} input padded by {pads}")
        self.shape = (N, H, W, C)
        self.kernel_hw = (kh, kw)
        self._w_pads = (pl, pr)
        #: Few channels: the kernel's columns are unfolded into channels (a kh x 1 kernel on
        #: maps of kw*C channels, one column per window column), for wider products.
        self.unfold = C < _UNFOLD_BELOW_CHANNELS if unfold is None else bool(unfold)
        if self.unfold:
            W, C, kw, pl, pr = W + pl + pr - kw + 1, kw * C, 1, 0, 0
        self.N, self.H, self.W, self.C, self.kh, self.kw, self.pt, self.pl = N, H, W, C, kh, kw, pt, pl
        self.Hp, self.Wp = H + pt + pb, W + pl + pr
        self.Ho, self.Wo = self.Hp - kh + 1, self.Wp - kw + 1
        # Pixels per line: at least kw - 1 zero columns (padding or guard) between the
        # lines' data, where a shifted partner beyond a line's end or start lands.
        self.Wq = W + max(pl + pr, kw - 1)
        self.line = N * self.Wq  # rows per image row of the batch
        self.guard = kw - 1  # zero rows before and after the map

    def arrange(self, x: np.ndarray) -> np.ndarray:
        """The maps ``x`` (N, H, W, C) as the (rows, C) array that :meth:`grams` reads."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != self.shape:
            raise ValueError(f"x must have shape {self.shape}; got {x.shape}")
        flat = np.zeros((self.Hp * self.line + 2 * self.guard, self.C))
        grid = flat[self.guard:self.guard + self.Hp * self.line].reshape(self.Hp, self.N, self.Wq, self.C)
        rows = slice(self.pt, self.pt + self.H)
        if not self.unfold:
            grid[rows, :, self.pl:self.pl + self.W] = x.transpose(1, 0, 2, 3)
            return flat
        (pl, _), W0, C0 = self._w_pads, x.shape[2], x.shape[3]
        cols = grid.reshape(self.Hp, self.N, self.Wq, self.kernel_hw[1], C0)
        for b in range(self.kernel_hw[1]):  # window column j holds padded input columns j + b
            j0, j1 = max(0, pl - b), min(self.W, W0 + pl - b)
            cols[rows, :, j0:j1, b] = x[:, :, j0 + b - pl:j1 + b - pl].transpose(1, 0, 2, 3)
        return flat

    def _rows(self, u0: int, u1: int, v0: int, v1: int) -> np.ndarray:
        """Row indices of the pixels ``[u0, u1) x [v0, v1)`` of every image."""
        u = np.arange(u0, u1)[:, None, None]
        n = np.arange(self.N)[None, :, None]
        v = np.arange(v0, v1)[None, None, :]
        return (self.guard + (u * self.N + n) * self.Wq + v).ravel()

    def grams(self, flat: np.ndarray, blocks) -> dict[Block, np.ndarray]:
        """Gram matrices of the windows of arranged maps, per row block.

        Parameters
        ----------
        flat : ndarray
            Maps laid out by :meth:`arrange` (then possibly mapped elementwise, 0 to 0).
        blocks : iterable of (int, int)
            Row ranges ``(r0, r1)`` of the window vectors, ordered (kh, kw, C) as
            :func:`xbarsolve.cnn.layers.im2col` orders them.

        Returns
        -------
        dict
            ``{(r0, r1): P[:, r0:r1]^T P[:, r0:r1]}`` with ``P`` the (N*Ho*Wo, kh*kw*C)
            windows.
        """
        C, kw, line = self.C, self.kw, self.line
        blocks = [(int(r0), int(r1)) for r0, r1 in blocks]
        if any(not 0 <= r0 < r1 <= self.kh * kw * C for r0, r1 in blocks):
            raise ValueError(f"row blocks must lie in [0, {self.kh * kw * C}); got {blocks}")
        # The pairs of kernel positions p <= q that some row block needs, by shift q - p.
        pairs: dict[tuple[int, int], set] = defaultdict(set)
        for r0, r1 in blocks:
            positions = range(r0 // C, (r1 - 1) // C + 1)
            for p in positions:
                for q in positions:
                    if q >= p:
                        (a, b), (a2, b2) = divmod(p, kw), divmod(q, kw)
                        pairs[a2 - a, b2 - b].add((a, b))
        seg_u = _segments(self.kh, self.Ho, self.pt, self.H)
        seg_v = _segments(kw, self.Wo, self.pl, self.W)
        iw = max(range(len(seg_v)), key=lambda k: seg_v[k][1] - seg_v[k][0])  # the widest
        border = [k for k in range(len(seg_v)) if k != iw]
        chunk = max(1, _CHUNK_ENTRIES // C)
        G = np.zeros((self.kh, kw, C, self.kh, kw, C))
        for u0, u1, au in seg_u:
            # Per shift: the blocks that each column segment adds to.
            jobs = []
            for (d, e), starts in pairs.items():
                hits = [[(a, b) for a, b in starts if a in au and b in bv] for _, _, bv in seg_v]
                if any(hits):
                    jobs.append((d, e, hits))
            if not jobs:
                continue
            sums = {(d, e): [None] * len(seg_v) for d, e, _ in jobs}
            # Border column segments, gathered: their own sums, and what the full lines
            # hold beyond the widest segment.
            for k in border:
                rows = self._rows(u0, u1, *seg_v[k][:2])
                A = flat[rows]
                for d, e, _ in jobs:
                    sums[d, e][k] = A.T @ A if d == e == 0 else A.T @ flat[rows + d * line + e]
            # Full lines, in chunks that stay in cache through the shifts' products.
            full = {(d, e): np.zeros((C, C)) for d, e, hits in jobs if hits[iw]}
            lo, hi = self.guard + u0 * line, self.guard + u1 * line
            for r in range(lo, hi, chunk):
                A = flat[r:min(hi, r + chunk)]
                for (d, e), S in full.items():
                    S += A.T @ A if d == e == 0 else A.T @ flat[r + d * line + e:r + d * line + e + len(A)]
            for (d, e), S in full.items():
                sums[d, e][iw] = S - sum(sums[d, e][k] for k in border)
            for d, e, hits in jobs:
                for k, hit in enumerate(hits):
                    for a, b in hit:
                        G[a, b, :, a + d, b + e] += sums[d, e][k]
        m = self.kh * kw * C
        G = G.reshape(m, m)
        for (d, e), starts in pairs.items():  # the blocks below the diagonal: transposes
            if (d, e) != (0, 0):
                for a, b in starts:
                    p, q = a * kw + b, (a + d) * kw + b + e
                    G[q * C:(q + 1) * C, p * C:(p + 1) * C] = G[p * C:(p + 1) * C, q * C:(q + 1) * C].T
        return {(r0, r1): G[r0:r1, r0:r1] for r0, r1 in blocks}


def window_grams(x: np.ndarray, kernel_hw: tuple[int, int], pads, blocks) -> dict[Block, np.ndarray]:
    """Gram matrices of the stride-1 im2col windows of the feature maps ``x`` (N, H, W, C)
    with a ``kernel_hw`` kernel and zero padding ``pads``, per row block ``(r0, r1)``
    (:meth:`Windows.grams`)."""
    w = Windows(np.shape(x), kernel_hw, pads)
    return w.grams(w.arrange(x), blocks)
