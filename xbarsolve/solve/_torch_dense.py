"""The dense parts of the exact linear solver in PyTorch (float64), for a CUDA device (private).

:mod:`xbarsolve.solve.linear` eliminates one family of wire chains and factors the
block-tridiagonal Schur system that remains: ``p = max(m, n)`` sequential steps, each a
``q x q`` pivot inverse and a few ``q x q`` products (``q = min(m, n)``), O(p q^3) dense
work in all.  Large dense steps are what a GPU does well, so this module runs the same
elimination step for step on torch tensors: the chain inverses (the kernel's recurrences,
vectorised over the chains), the Schur blocks, the pivot inverses, the back-substitution
for the transfer matrix ``T`` or for a batch (node voltages included), and the product
``V @ T``.  It runs on any torch device: ``"cuda"`` in use, torch's ``"cpu"`` in the tests
(the hook :data:`_AS_CUDA`), which compare it with the NumPy path.

The nested dissection (:mod:`xbarsolve.solve.dissection`) has no torch twin: its lower
levels eliminate thousands of tiny matrices pivot by pivot (the Grassmann-Taksar-Heyman
form that keeps it exact), a sequential loop per matrix that batched tensor operations
do not express.  On a CUDA device the block elimination takes its place.

Memory on the device: the pivot inverses, ``p q^2`` doubles (1024 x 1024: 8 GiB), and a
chunk of chain inverses of at most :data:`_CHUNK_DOUBLES`; the node voltages of a batch
keep the chain inverses too (another ``p q^2``).  The back-substitution for ``T`` keeps
one block at a time (when the S chains have terminals at both ends, the forward sweep's
right-hand sides as well, ``p q^2``).

torch is imported only inside the functions that use it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from typing import Literal, get_args

import numpy as np

from ..crossbar import Crossbar
from ..results import SolveResult
from . import _memory
from .linear import CellLadder, _with_cells, cell_ladder

__all__ = ["Device", "check_device", "choose", "pays_off", "transfer_matrix", "factorize", "product",
           "AUTO_MIN_SIDE", "AUTO_MIN_PRODUCT"]

#: Where the dense steps of a linear solve run: ``"auto"`` (a CUDA device when one is
#: present and the array is large enough, else the CPU), ``"cpu"`` (NumPy and the
#: compiled kernels), ``"cuda"`` (PyTorch on the current CUDA device).
Device = Literal["auto", "cpu", "cuda"]

#: ``device="auto"`` builds ``T`` or factors on a CUDA device when ``min(m, n)`` is at
#: least this.  A guess, not yet measured on a GPU (``benchmarks/bench_gpu.py`` measures
#: it): every block step launches ~10 small kernels (~10 us each), so the q x q work per
#: step must outweigh them, and the CPU's nested dissection is fast below ~512 x 512
#: (256 x 256 in ~0.15 s on 2 cores).
AUTO_MIN_SIDE = 512
#: ``device="auto"`` computes ``V @ T`` on a CUDA device when ``batch * m * n`` is at
#: least this (256 vectors on a 1024 x 1024 array); below it the host-device transfer of
#: ``V``, ``T`` and the currents costs more than the product saves.  A guess, not yet measured.
AUTO_MIN_PRODUCT = 2**28
#: Largest chunk of chain inverses built at once (doubles; 2^29 = 4 GiB): bounds the
#: memory beyond the pivot inverses, while few chunks keep the number of kernel launches
#: of the chain recurrences (q per chunk) low.
_CHUNK_DOUBLES = 2**29

#: Test hook: the torch device that stands for the CUDA device (``"cpu"`` in the tests,
#: so that the path runs without a GPU); None: probe for CUDA.
_AS_CUDA: str | None = None


def _torch():
    import torch

    return torch


@functools.cache
def _probe_cuda() -> bool:
    """Whether PyTorch is installed and sees a CUDA device.

    On Linux without an NVIDIA driver (no ``/proc/driver/nvidia``, no ``/dev/nvidiactl``)
    and torch not imported yet, the answer is no without importing torch (seconds).
    """
    if importlib.util.find_spec("torch") is None:
        return False
    if ("torch" not in sys.modules and sys.platform.startswith("linux")
            and not any(os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl"))):
        return False
    return bool(_torch().cuda.is_available())


def cuda_device() -> str | None:
    """The torch device that ``device="cuda"`` runs on: ``"cuda"`` when PyTorch is installed
    and sees a CUDA device, else None (the test hook :data:`_AS_CUDA` overrides it)."""
    if _AS_CUDA is not None:
        return _AS_CUDA
    return "cuda" if _probe_cuda() else None


def check_device(device) -> None:
    """Raise ValueError for a ``device`` outside :data:`Device`, and for ``"cuda"`` where
    there is none (naming why)."""
    if device == "auto" or device == "cpu":  # the common case, on every solve: nothing to probe
        return
    allowed = get_args(Device)
    if not isinstance(device, str) or device not in allowed:
        raise ValueError(f"device must be {', '.join(map(repr, allowed[:-1]))} or {allowed[-1]!r}; got {device!r}")
    if device == "cuda" and cuda_device() is None:
        if importlib.util.find_spec("torch") is None:
            raise ValueError("device='cuda' needs PyTorch: pip install 'xbarsolve[torch]' (with a CUDA build of torch)")
        torch = _torch()
        raise ValueError(f"device='cuda' needs a CUDA device, but torch {torch.__version__} sees none "
                         "(torch.cuda.is_available() is False); use device='auto' or 'cpu'")


def pays_off(m: int, n: int) -> bool:
    """Whether ``device="auto"`` builds ``T`` or factors an m x n array on a CUDA device
    (``min(m, n) >= AUTO_MIN_SIDE``; a guess, see :data:`AUTO_MIN_SIDE`)."""
    return min(m, n) >= AUTO_MIN_SIDE


def choose(device: Device, work: bool) -> str | None:
    """The torch device for a dense step, or None for the NumPy path.

    ``device`` is the user's option (checked with :func:`check_device` first); ``work``
    says whether the step is large enough to pay on a GPU, which only ``"auto"`` reads.
    ``"auto"`` never imports torch for a step too small to pay.
    """
    if device == "cpu" or (device == "auto" and not work):
        return None
    return cuda_device()


# ------------------------------------------------------------------------ helpers
def _require(doubles: float, what: str, hint: str, dev: str) -> None:
    """:func:`xbarsolve.solve._memory.require` for the memory of torch device ``dev``."""
    torch = _torch()
    device = torch.device(dev)
    if device.type != "cuda":
        _memory.require(doubles, what, hint)
        return
    free, _ = torch.cuda.mem_get_info(device)
    need = doubles * 8
    if need > free:
        raise MemoryError(f"{what} needs about {_memory._size(need)} of GPU memory but {_memory._size(free)} is free on "
                          f"{torch.cuda.get_device_name(device)}; {hint}")


def _chain_pivots(d, w):
    """Pivots of elimination from the top (``alpha``) and from the bottom (``beta``) of the
    tridiagonal chains ``tridiag(-w, d, -w)``, (p, q) each: the recurrences of
    :func:`xbarsolve.solve._kernels.chain_inverses`, one step for all chains at once."""
    torch = _torch()
    q = d.shape[1]
    alpha, beta = torch.empty_like(d), torch.empty_like(d)
    alpha[:, 0] = d[:, 0]
    for k in range(1, q):
        alpha[:, k] = d[:, k] - w[:, k - 1] * w[:, k - 1] / alpha[:, k - 1]
    beta[:, q - 1] = d[:, q - 1]
    for k in range(q - 2, -1, -1):
        beta[:, k] = d[:, k] - w[:, k] * w[:, k] / beta[:, k + 1]
    return alpha, beta


def _chain_inverses(alpha, beta, d, w, out):
    """Inverses of the chains into ``out`` (b, q, q), from their pivots (the kernel's
    formulas: ``W[k, k] = 1 / (alpha_k + beta_k - d_k)``, ``W[i, j] = W[i+1, j] w_i / alpha_i``)."""
    torch = _torch()
    q = d.shape[1]
    out.zero_()
    out.diagonal(dim1=1, dim2=2).copy_(1.0 / (alpha + beta - d))
    for i in range(q - 2, -1, -1):
        out[:, i, i + 1:] = out[:, i + 1, i + 1:] * w[:, i, None] / alpha[:, i, None]
    out.add_(torch.triu(out, 1).transpose(1, 2))
    return out


class _Blocks:
    """The block elimination of one ladder on a torch device: pivot inverses ``Kinv``
    (p, q, q), terminal injections ``h`` (p, q) and, with ``keep_w``, the chain inverses.

    ``reverse`` eliminates the blocks from the other end (the transfer matrix then needs no
    forward sweep when the S chains have terminals at one end only); solves need
    ``reverse=False``.
    """

    def __init__(self, lad: CellLadder, dev: str, *, keep_w: bool = False, reverse: bool = False):
        torch = _torch()
        self.ladder, self.dev, self.reverse = lad, dev, reverse
        p, q = lad.p, lad.q
        flip = (lambda a: a[::-1]) if reverse else (lambda a: a)
        t = lambda a: torch.tensor(np.array(a, dtype=np.float64), device=dev)  # noqa: E731
        self.g, self.c = t(flip(lad.g)), t(flip(lad.c))
        self.tp0, self.tp1 = t(flip(lad.tp0)), t(flip(lad.tp1))
        self.ts0, self.ts1 = (t(lad.ts1), t(lad.ts0)) if reverse else (t(lad.ts0), t(lad.ts1))
        d, w, s_diag = t(flip(lad.g + lad.p_diag)), t(flip(lad.wp)), t(flip(lad.s_diag))
        chunk = max(1, min(p, _CHUNK_DOUBLES // max(q * q, 1)))
        _require((1 + keep_w) * p * q * q + 2 * chunk * q * q,
                 f"the block factorization of a {p}x{q} ladder on {dev}", _memory.array_hint(p, q), dev)
        alpha, beta = _chain_pivots(d, w)
        self.W = torch.empty((p, q, q), dtype=torch.float64, device=dev) if keep_w else None
        self.Kinv = torch.empty((p, q, q), dtype=torch.float64, device=dev)
        self.h = torch.empty((p, q), dtype=torch.float64, device=dev)
        buf = None if keep_w else torch.empty((chunk, q, q), dtype=torch.float64, device=dev)
        infos = []
        for a0 in range(0, p, chunk):
            a1 = min(p, a0 + chunk)
            W = self.W[a0:a1] if keep_w else buf[:a1 - a0]
            _chain_inverses(alpha[a0:a1], beta[a0:a1], d[a0:a1], w[a0:a1], W)
            g = self.g[a0:a1]
            self.h[a0:a1] = g * (self.tp0[a0:a1, None] * W[:, :, 0] + self.tp1[a0:a1, None] * W[:, :, -1])
            # Schur blocks diag(g + s_diag) - diag(g) W diag(g), in place unless W is kept.
            K = W.clone() if keep_w else W
            K.mul_(-g[:, :, None]).mul_(g[:, None, :])
            K.diagonal(dim1=1, dim2=2).add_(g + s_diag[a0:a1])
            for a in range(a0, a1):
                Ka = K[a - a0]
                if a > 0:
                    ca = self.c[a - 1]
                    Ka -= ca[:, None] * self.Kinv[a - 1] * ca[None, :]
                # Cholesky, not LU: the pivot blocks are positive definite, and torch's LU
                # inverse (MKL) was measured 2-4x less exact in T (1.3e-12 against 3e-13
                # relative to the dissection on 128 x 128); error flags checked once at the
                # end, so that CUDA does not synchronise at every block.
                L, info = torch.linalg.cholesky_ex(Ka)
                self.Kinv[a] = torch.cholesky_inverse(L)
                infos.append(info)
        if infos and bool(torch.stack(infos).any()):
            raise np.linalg.LinAlgError("a pivot block of the block elimination is not positive definite")

    def transfer_matrix(self) -> np.ndarray:
        """``T`` (S), (m, n), from the factored blocks: the back-substitution of
        :meth:`xbarsolve.solve.linear.Factorization.transfer_matrix`, one block at a time."""
        torch = _torch()
        lad, Kinv, c, h = self.ladder, self.Kinv, self.c, self.h
        p, q = lad.p, lad.q
        M = torch.empty((p, q), dtype=torch.float64, device=self.dev)
        if bool(self.ts0.any()):  # terminals at both ends of the S chains: forward sweep first
            _require(p * q * q, f"the transfer matrix's right-hand sides of a {p}x{q} ladder on {self.dev}",
                     _memory.array_hint(p, q), self.dev)
            F = torch.zeros((p, q, q), dtype=torch.float64, device=self.dev)
            F[0] = torch.diag(self.ts0)
            for a in range(1, p):
                F[a] = c[a - 1, :, None] * (Kinv[a - 1] @ F[a - 1])
            F[p - 1] += torch.diag(self.ts1)
            Y = Kinv[p - 1] @ F[p - 1]
        else:
            F = None
            Y = Kinv[p - 1] * self.ts1[None, :]
        M[p - 1] = h[p - 1] @ Y
        for a in range(p - 2, -1, -1):
            r = c[a, :, None] * Y
            if F is not None:
                r += F[a]
            Y = Kinv[a] @ r
            M[a] = h[a] @ Y
        if self.reverse:
            M = M.flip(0)
        M = M.cpu().numpy()
        return M if lad.rows_first else np.ascontiguousarray(M.T)

    def solve(self, xbar: Crossbar, V: np.ndarray, full: bool = False) -> SolveResult:
        """:meth:`xbarsolve.solve.linear.Factorization.solve` on the device: currents (A),
        and with ``full`` node voltages and cell currents, for inputs ``V`` (batch, m)."""
        if self.reverse:
            raise ValueError("a reversed elimination serves the transfer matrix only")
        if full and self.W is None:
            raise ValueError("node voltages need the chain inverses: build with keep_w=True")
        torch = _torch()
        lad, Kinv, c, h = self.ladder, self.Kinv, self.c, self.h
        V = np.asarray(V, dtype=np.float64)
        k = V.shape[0]
        p, q = lad.p, lad.q
        _require((3 + (6 if full else 0)) * p * q * k, f"a block solve of {k} vectors on a {xbar.m}x{xbar.n} array on "
                 f"{self.dev}", "solve the batch in smaller parts", self.dev)
        Vt = torch.from_numpy(np.ascontiguousarray(V.T)).to(self.dev)  # (m, k)
        if lad.rows_first:
            F = h[:, :, None] * Vt[:, None, :]
        else:
            F = torch.zeros((p, q, k), dtype=torch.float64, device=self.dev)
            F[0] += self.ts0[:, None] * Vt
            F[-1] += self.ts1[:, None] * Vt
        for a in range(1, p):
            F[a] += c[a - 1, :, None] * (Kinv[a - 1] @ F[a - 1])
        U = torch.empty_like(F)
        U[p - 1] = Kinv[p - 1] @ F[p - 1]
        for a in range(p - 2, -1, -1):
            U[a] = Kinv[a] @ (F[a] + c[a, :, None] * U[a + 1])
        if lad.rows_first:
            currents = (self.ts0[:, None] * U[0] + self.ts1[:, None] * U[-1]).T
        else:
            currents = torch.einsum("aq,aqk->ka", h, U)
        currents = np.ascontiguousarray(currents.cpu().numpy())
        if not full:
            return SolveResult(inputs=V, currents=currents, method="block")
        X = self.W @ (self.g[:, :, None] * U)  # P-node voltages: x[a] = W[a] (g[a] u[a] + terminal injections)
        if lad.rows_first:
            X += (self.tp0[:, None] * self.W[:, :, 0] + self.tp1[:, None] * self.W[:, :, -1])[:, :, None] * Vt[:, None, :]
            v_top, v_bottom = X.permute(2, 0, 1), U.permute(2, 0, 1)  # (k, m, n)
        else:
            v_top, v_bottom = U.permute(2, 1, 0), X.permute(2, 1, 0)
        return _with_cells(xbar, V, currents, np.ascontiguousarray(v_top.cpu().numpy()),
                           np.ascontiguousarray(v_bottom.cpu().numpy()), "block")


# ------------------------------------------------------------------- public entry points
def _rows_first(xbar: Crossbar) -> bool:
    return xbar.n <= xbar.m  # as Factorization's "auto": the blocks run along the shorter side


def transfer_matrix(xbar: Crossbar, dev: str) -> np.ndarray:
    """Transfer matrix ``T`` (S), (m, n), of a linear ladder crossbar with every resistance
    > 0 ohm, by the block elimination on torch device ``dev`` (host-device transfers
    included): :meth:`xbarsolve.solve.linear.Factorization.transfer_matrix`'s result to
    round-off."""
    lad = cell_ladder(xbar, _rows_first(xbar))
    reverse = bool(lad.ts0.any()) and not bool(lad.ts1.any())
    return _Blocks(lad, dev, reverse=reverse).transfer_matrix()


def factorize(xbar: Crossbar, dev: str, *, full: bool = False) -> _Blocks:
    """The block elimination of ``xbar`` on torch device ``dev``, for batch solves
    (``full``: keep the chain inverses for node voltages); call ``.solve(xbar, V, full)``."""
    return _Blocks(cell_ladder(xbar, _rows_first(xbar)), dev, keep_w=full)


def product(V: np.ndarray, T: np.ndarray, dev: str) -> np.ndarray:
    """``V @ T`` (A) on torch device ``dev``: V (batch, m) volts, T (m, n) siemens."""
    torch = _torch()
    _require(V.size + T.size + V.shape[0] * T.shape[1], f"the product of {V.shape[0]} vectors with a {T.shape[0]}x"
             f"{T.shape[1]} transfer matrix on {dev}", "solve the batch in smaller parts", dev)
    t = lambda a: torch.tensor(np.array(a, dtype=np.float64), device=dev)  # noqa: E731
    return (t(V) @ t(T)).cpu().numpy()
