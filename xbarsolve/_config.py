"""Numba options in one place: every compiled kernel uses these."""

from __future__ import annotations

#: Options for serial kernels. ``cache`` keeps compiled code between processes.
NJIT = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
#: Options for kernels that split independent work over threads with ``prange``.
NJIT_PARALLEL = dict(NJIT, parallel=True)
#: For kernels that take another compiled function as an argument (a device's or a
#: transistor's law).  Numba's disk cache keys such a specialisation by the argument's type,
#: and stale index entries from earlier processes raised ``ReferenceError: underlying
#: object has vanished``; these kernels compile once per process instead.
NJIT_FUNCTION_ARGS = dict(NJIT, cache=False)
#: For loops written to be vectorised (SIMD): lets LLVM fuse multiply-adds (results stay
#: deterministic and NaN/inf keep their IEEE meaning, unlike full ``fastmath``).
NJIT_SIMD = dict(NJIT, fastmath={"contract"})
NJIT_SIMD_PARALLEL = dict(NJIT_SIMD, parallel=True)
