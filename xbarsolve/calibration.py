"""First-order calibration of crossbar outputs (Zhang & Hu 2022, Sec. 3.3.3).

After conversion, a crossbar's outputs still deviate from the ideal ones, mostly by a
per-column gain and offset.  :class:`Calibration` fits ``ideal ~ slope * actual + offset``
(least squares) on a few calibration samples, per column (default) or one pair per
crossbar, and applies it to later outputs.  The samples are drawn with
:func:`draw_samples`: by default 10 vectors of the shuffled input data, or the paper's
alternatives, a random signal and a random decreasing signal.

Shift-mapped signed matrices (:mod:`xbarsolve.mapping`) are calibrated the same way on
their column currents (before the shift is undone) or on the signed outputs; both are
affine maps of each other, so the fitted outputs agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .reference import N_CALIBRATION, V_MAX

__all__ = ["Calibration", "draw_samples"]

Per = Literal["column", "crossbar"]
SampleKind = Literal["data", "random", "random_decreasing"]


@dataclass(eq=False)
class Calibration:
    """Per-column (or per-crossbar) 1st-order polynomial from actual to ideal outputs.

    Parameters
    ----------
    per : {"column", "crossbar"}
        One (slope, offset) pair per column, or one pair shared by all columns.

    Attributes
    ----------
    slope : ndarray, shape (n,)
        Fitted gains (output units of ``ideal`` per unit of ``actual``); set by :meth:`fit`.
    offset : ndarray, shape (n,)
        Fitted offsets (units of ``ideal``).  With ``per="crossbar"`` both arrays repeat
        one value.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> ideal = np.arange(20.0).reshape(10, 2)
    >>> cal = xs.Calibration().fit(0.5 * ideal - 1.0, ideal)
    >>> bool(np.allclose(cal.slope, 2.0) and np.allclose(cal.offset, 2.0))
    True
    """

    per: Per = "column"
    slope: np.ndarray | None = field(default=None, init=False)
    offset: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.per not in ("column", "crossbar"):
            raise ValueError(f"per must be 'column' or 'crossbar'; got {self.per!r}")

    def fit(self, actual, ideal) -> "Calibration":
        """Fit ``ideal ~ slope * actual + offset`` by least squares.

        Parameters
        ----------
        actual : array_like, shape (samples, n)
            Crossbar outputs (A, or output units) for the calibration samples.
        ideal : array_like, shape (samples, n)
            The ideal outputs for the same samples (any unit; the fitted map converts).

        Returns
        -------
        Calibration
            ``self``, fitted.

        Raises
        ------
        ValueError
            On mismatched shapes, fewer than 2 samples, or non-finite values.  A column
            whose actual outputs do not vary gets slope 1 and the mean difference as offset.
        """
        a = np.asarray(actual, dtype=np.float64)
        b = np.asarray(ideal, dtype=np.float64)
        if a.ndim == 1:
            a, b = a[:, None], (b[:, None] if b.ndim == 1 else b)
        if a.ndim != 2 or a.shape != b.shape:
            raise ValueError(f"actual and ideal must have the same shape (samples, n); got {np.shape(actual)} and {np.shape(ideal)}")
        if a.shape[0] < 2:
            raise ValueError(f"calibration needs at least 2 samples; got {a.shape[0]}")
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise ValueError("actual and ideal must be finite")
        n = a.shape[1]
        if self.per == "crossbar":
            s, o = _line(a.ravel(), b.ravel())
            self.slope, self.offset = np.full(n, s), np.full(n, o)
        else:
            slope, offset = np.empty(n), np.empty(n)
            for j in range(n):
                slope[j], offset[j] = _line(a[:, j], b[:, j])
            self.slope, self.offset = slope, offset
        return self

    def transform(self, actual) -> np.ndarray:
        """Calibrated outputs ``slope * actual + offset``, shape (samples, n)."""
        if self.slope is None:
            raise RuntimeError("Calibration.transform called before fit")
        a = np.asarray(actual, dtype=np.float64)
        if a.shape[-1] != self.slope.shape[0]:
            raise ValueError(f"actual must have {self.slope.shape[0]} columns (the fitted width); got shape {a.shape}")
        return a * self.slope + self.offset

    def fit_transform(self, actual, ideal) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same outputs."""
        return self.fit(actual, ideal).transform(actual)


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    sxx = float(dx @ dx)
    if sxx <= (1e-300 + 1e-24 * float(x @ x)):
        return 1.0, float(ym - xm)
    s = float(dx @ (y - ym)) / sxx
    return s, float(ym - s * xm)


def draw_samples(
    data=None,
    n_samples: int = N_CALIBRATION,
    *,
    kind: SampleKind = "data",
    m: int | None = None,
    v_max: float = V_MAX,
    rng=None,
) -> np.ndarray:
    """Calibration input vectors (V), shape (n_samples, m).

    Parameters
    ----------
    data : array_like, shape (batch, m), optional
        Input data (V) to draw from (needed for ``kind="data"``; gives ``m`` otherwise).
    n_samples : int
        Number of vectors, >= 2 (paper: 10).
    kind : {"data", "random", "random_decreasing"}
        ``"data"``: ``n_samples`` distinct vectors of the shuffled data.  ``"random"``:
        uniform in ``[0, v_max]``.  ``"random_decreasing"``: uniform values sorted in
        decreasing order along the rows (largest input on row 0, nearest the drivers of
        a left-driven array).
    m : int, optional
        Number of rows when ``data`` is not given.
    v_max : float
        Top of the input range (V) for the random kinds.
    rng : seed or numpy Generator, optional
    """
    rng = np.random.default_rng(rng)
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2; got {n_samples}")
    if kind == "data":
        if data is None:
            raise ValueError("kind='data' needs the input data (batch, m) to draw from")
        X = np.atleast_2d(np.asarray(data, dtype=np.float64))
        if X.shape[0] < n_samples:
            raise ValueError(f"data has {X.shape[0]} vectors; need at least n_samples={n_samples}")
        return X[rng.permutation(X.shape[0])[:n_samples]].copy()
    if kind not in ("random", "random_decreasing"):
        raise ValueError(f"kind must be 'data', 'random' or 'random_decreasing'; got {kind!r}")
    if m is None:
        if data is None:
            raise ValueError("give m (number of rows) or data for the random sample kinds")
        m = np.atleast_2d(np.asarray(data)).shape[1]
    if not np.isfinite(v_max) or v_max <= 0:
        raise ValueError(f"v_max must be a voltage > 0 V; got {v_max!r}")
    X = rng.uniform(0.0, float(v_max), (n_samples, int(m)))
    if kind == "random_decreasing":
        X = -np.sort(-X, axis=1)
    return X
