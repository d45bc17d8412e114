"""Error metrics exactly as Zhang & Hu 2022 define them (Sec. 3.3.2; docs/model.md section 5).

For outputs of shape (samples, n) (one column per kernel):

* output error ``e = (actual - ideal) / range``, where ``range`` is the range
  ``max - min`` of the *ideal* outputs of that column over the data set;
* relative error ``|e|``;
* bit accuracy ``log2(1 / relative error + 1)``.

"Mean" and "worst" are the mean and the maximum of the relative error over the samples
(per column) or over samples and columns (per crossbar).  The bit accuracy of a mean or
worst error is that formula applied to it (0.25 % -> 8.6 bits, 1.2 % -> 6.4 bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["output_range", "output_error", "relative_error", "bit_accuracy", "ErrorSummary", "summary"]


def _pair(actual, ideal) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(ideal, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if b.ndim == 1:
        b = b[:, None]
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"actual and ideal must have the same shape (samples, n); got {np.shape(actual)} and {np.shape(ideal)}")
    return a, b


def output_range(ideal) -> np.ndarray:
    """Range ``max - min`` of the ideal outputs of each column over the samples, shape (n,)."""
    b = np.asarray(ideal, dtype=np.float64)
    if b.ndim == 1:
        b = b[:, None]
    return b.max(axis=0) - b.min(axis=0)


def output_error(actual, ideal, output_range_=None) -> np.ndarray:
    """Output error ``(actual - ideal) / range`` (dimensionless), shape (samples, n).

    Parameters
    ----------
    actual, ideal : array_like, shape (samples, n) or (samples,)
        Outputs in any common unit (A, or the matrix product's units).
    output_range_ : array_like, shape (n,), optional
        Range of each column's ideal outputs over the data set; computed from ``ideal``
        when omitted (then ``samples`` must be >= 2).

    Raises
    ------
    ValueError
        If a column's range is 0 (its ideal outputs are all equal).
    """
    a, b = _pair(actual, ideal)
    rng = output_range(b) if output_range_ is None else np.broadcast_to(np.asarray(output_range_, np.float64), (b.shape[1],))
    if (rng <= 0).any():
        j = int(np.argwhere(rng <= 0)[0, 0])
        raise ValueError(f"the ideal outputs of column {j} have no range over the data set (range {rng[j]!r}); "
                         "the output error is undefined")
    return (a - b) / rng


def relative_error(actual, ideal, output_range_=None) -> np.ndarray:
    """Relative error ``|output error|`` (dimensionless), shape (samples, n)."""
    return np.abs(output_error(actual, ideal, output_range_))


def bit_accuracy(rel) -> np.ndarray:
    """Bit accuracy ``log2(1 / rel + 1)`` of relative error(s) ``rel`` (``inf`` at 0)."""
    r = np.asarray(rel, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log2(1.0 / r + 1.0)


@dataclass(frozen=True, eq=False)
class ErrorSummary:
    """Mean and worst relative errors, per column and per crossbar.

    Attributes
    ----------
    relative : ndarray, shape (samples, n)
        Relative error of every output.
    column_mean, column_worst : ndarray, shape (n,)
        Mean and maximum relative error of each column over the samples.
    """

    relative: np.ndarray
    column_mean: np.ndarray
    column_worst: np.ndarray

    @property
    def mean_relative_error(self) -> float:
        """Mean relative error over all samples and columns (the crossbar's mean)."""
        return float(self.relative.mean())

    @property
    def worst_relative_error(self) -> float:
        """Worst (largest) relative error over all samples and columns."""
        return float(self.relative.max())

    @property
    def mean_bits(self) -> float:
        """Bit accuracy of the mean relative error."""
        return float(bit_accuracy(self.mean_relative_error))

    @property
    def worst_bits(self) -> float:
        """Bit accuracy of the worst relative error."""
        return float(bit_accuracy(self.worst_relative_error))

    @property
    def column_mean_bits(self) -> np.ndarray:
        """Bit accuracy of each column's mean relative error, shape (n,)."""
        return bit_accuracy(self.column_mean)

    @property
    def column_worst_bits(self) -> np.ndarray:
        """Bit accuracy of each column's worst relative error, shape (n,)."""
        return bit_accuracy(self.column_worst)


def summary(actual, ideal, output_range_=None) -> ErrorSummary:
    """All the paper's error statistics of ``actual`` against ``ideal`` outputs.

    Examples
    --------
    >>> import numpy as np
    >>> from xbarsolve import metrics
    >>> ideal = np.array([[0.0], [1.0], [2.0]])
    >>> s = metrics.summary(ideal + 0.02, ideal)
    >>> round(s.mean_relative_error, 6), round(s.mean_bits, 3)
    (0.01, 6.658)
    """
    rel = relative_error(actual, ideal, output_range_)
    return ErrorSummary(relative=rel, column_mean=rel.mean(axis=0), column_worst=rel.max(axis=0))
