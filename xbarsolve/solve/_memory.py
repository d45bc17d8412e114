"""Memory estimates of the solvers, checked before the large allocations (private).

A solve that cannot fit fails here, before any work, with how much it needs and how
much the machine has, instead of a bare ``MemoryError`` deep in a factorization.
"""

from __future__ import annotations

import os

_DOUBLE = 8  # bytes
#: Needs below this (bytes) are not checked: they fit wherever the interpreter runs.
_CHECK_FROM = 32 * 2**20


def available_bytes() -> int | None:
    """Memory available to a new allocation (bytes): Linux's ``MemAvailable``, else the free
    physical pages (``os.sysconf``); None where neither can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} B"


def require(doubles: float, what: str, hint: str) -> None:
    """Raise ``MemoryError`` naming ``what``, the need and the available memory when
    ``doubles`` float64 values do not fit in the available memory."""
    need = doubles * _DOUBLE
    if need < _CHECK_FROM:  # reading /proc/meminfo costs tens of microseconds
        return
    available = available_bytes()
    if available is not None and need > available:
        raise MemoryError(f"{what} needs about {_size(need)} of memory but {_size(available)} is available; {hint}")


def factorization_doubles(p: int, q: int) -> int:
    """The block factorization of a p x q ladder: chain inverses, Schur blocks and their
    factors, three (p, q, q) arrays."""
    return 3 * p * q * q


def transfer_doubles(p: int, q: int) -> int:
    """The transfer matrix's block solve on top of the factorization: right-hand sides and
    solution, two (p, q, q) arrays."""
    return 2 * p * q * q


def dissection_doubles(m: int, n: int) -> int:
    """The nested dissection's transfer matrix: a few dense Schur complements on the
    boundary of the largest subdomains, about ``2 (m + n)`` nodes each (measured peak at
    1024 x 1024: 0.53 GiB, against this estimate's 0.5 GiB)."""
    return 4 * (2 * (m + n)) ** 2


def array_hint(m: int, n: int) -> str:
    q = min(m, n)
    return (f"the block solver holds O(max(m, n) min(m, n)^2) numbers (min(m, n) = {q} for this {m}x{n} array): "
            "split the array into tiles, or solve smaller batches")
