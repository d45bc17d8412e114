"""Numba options in one place (see STYLE.md): every compiled kernel uses these."""

from __future__ import annotations

#: Options for serial kernels. ``cache`` keeps compiled code between processes.
NJIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
#: Options for kernels that split independent work over threads with ``prange``.
NJIT_PARALLEL = dict(NJIT, parallel=True)
