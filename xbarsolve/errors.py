"""Exceptions raised by xbarsolve.

Every error names the offending argument and, where one exists, the allowed range.
"""

from __future__ import annotations

__all__ = ["XbarsolveError", "SingularNetworkError", "ConvergenceError", "FormatError", "LockError"]


class XbarsolveError(Exception):
    """Base class of all xbarsolve errors."""


class SingularNetworkError(XbarsolveError, ValueError):
    """The nodal system has no unique solution (a floating node or a short between sources)."""


class ConvergenceError(XbarsolveError, RuntimeError):
    """An iterative solve (Newton) did not reach its tolerance.

    Attributes
    ----------
    vector : int
        Index of the first input vector in the batch that did not converge.
    iterations : int
        Iterations spent on it.
    residual : float
        KCL residual reached (A, infinity norm).
    """

    def __init__(self, message: str, *, vector: int = -1, iterations: int = 0, residual: float = float("nan")):
        super().__init__(message)
        self.vector = vector
        self.iterations = iterations
        self.residual = residual


class FormatError(XbarsolveError, ValueError):
    """A file is corrupt, of an unknown format, or written by a newer xbarsolve."""


class LockError(XbarsolveError, RuntimeError):
    """An output is in use by another run of a batch job (its lock file is held).

    Attributes
    ----------
    lock : str
        Path of the lock file.
    owner : dict
        What the lock file says about its holder (``pid``, ``host``, ``time``), if readable.
    """

    def __init__(self, message: str, *, lock: str = "", owner: dict | None = None):
        super().__init__(message)
        self.lock = lock
        self.owner = dict(owner or {})
