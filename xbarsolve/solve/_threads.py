"""Chunking and thread policy of the Newton solver (private; see :mod:`xbarsolve.solve.newton`)."""

from __future__ import annotations

import contextlib
import os

import numba

from .linear import _blas_controller


#: The default chunk's floor for cells with a middle node: their residual kernel
#: (``evaluate_3t``) has a fixed cost of ~200 ns per cell (a dozen short vector loops) on
#: top of ~9 ns per cell and vector (576 x 64, one thread: 16.2 ns per cell and vector at
#: 32 vectors, 12.3 at 64, 10.7 at 128), which more vectors amortise; the passes'
#: scratch per chain fits the L1 cache up to 64 x 64 values since their pivots are
#: float32.  Interleaved solves, two threads, 64 against 32 vectors: 576 x 64 0.84, 64 x
#: 576 0.82, 288 x 32 0.83, 128 x 128 0.95, 256 x 256 0.99.  Two-terminal cells keep 32
#: (128 x 128: 64 was 1.08x slower, 256 x 256 1.10x), and so do arrays of more than
#: ``_MID_CELLS`` cells, where no gain was measured and the chunk's memory doubles
#: (1024 x 1024: 8 GiB by the solver's estimate).  32 is the path before.
_MID_CHUNK = 64
_MID_CELLS = 2**16


def chunk_size(requested: int | None, cells: int, has_mid: bool = False) -> int:
    """Vectors iterated together: ``requested``, or by default 32 (``_MID_CHUNK`` for
    cells with a middle node on arrays of up to ``_MID_CELLS`` cells), or more for small
    arrays (``2**18 / cells`` vectors; see :class:`~xbarsolve.solve.options.NewtonOptions`)."""
    if requested is not None:
        return int(requested)
    return max(_MID_CHUNK if (has_mid and cells <= _MID_CELLS) else 32, 2**18 // cells)


def default_threads() -> int:
    """Numba's thread count, or 1 when the machine is oversubscribed (1-minute load average
    above the number of CPUs): there a parallel region waits for descheduled workers."""
    n = numba.get_num_threads()
    try:
        busy = os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:  # not available on this platform
        busy = False
    return 1 if busy else n


@contextlib.contextmanager
def kernel_threads(threads: int | None):
    """Run the compiled kernels and BLAS (the block GEMMs and inverses) on ``threads``
    threads (default :func:`default_threads`), restoring Numba's setting afterwards."""
    n = min(default_threads() if threads is None else int(threads), numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with _blas_controller().limit(limits=n, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(previous)
