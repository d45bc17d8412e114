"""Chunking and thread policy of the Newton solver (private; see :mod:`xbarsolve.solve.newton`)."""

from __future__ import annotations

import contextlib
import os

import numba

from .linear import _blas_controller


def chunk_size(requested: int | None, cells: int) -> int:
    """Vectors iterated together: ``requested``, or by default 32, or more for small arrays
    (``2**18 / cells`` vectors; see :class:`~xbarsolve.solve.options.NewtonOptions`)."""
    return max(32, 2**18 // cells) if requested is None else int(requested)


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
