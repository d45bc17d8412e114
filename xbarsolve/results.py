"""Result objects returned by the solvers (ours and ngspice's).

Arrays always keep the batch axis: a single input vector comes back with batch size 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SolveResult"]


@dataclass(frozen=True, eq=False)
class SolveResult:
    """Solution of a crossbar for a batch of input vectors.

    Attributes
    ----------
    inputs : ndarray, shape (batch, m)
        Applied source voltages (V).
    currents : ndarray, shape (batch, n)
        Column currents (A): total current out of each column into its sense ground(s).
    v_top, v_bottom : ndarray, shape (batch, m, n), or None
        Voltages (V) of the row-wire nodes ``T(i, j)`` and column-wire nodes ``B(i, j)``;
        present when the solve was asked for node voltages (``full=True``).
    v_mid : ndarray, shape (batch, m, n), or None
        Voltage (V) of the node between memristor and transistor; None for a 1R array or
        when node voltages were not requested.
    cell_currents : ndarray, shape (batch, m, n), or None
        Current (A) through each cell from ``T`` to ``B``.
    method : str
        How the result was computed: ``"transfer"``, ``"block"``, ``"sparse"``,
        ``"newton"`` or ``"ngspice"``.
    converged : ndarray of bool, shape (batch,), or None
        Per-vector convergence flag of an iterative solve; None for direct solves.
    iterations : ndarray of int, shape (batch,), or None
        Iterations per vector of an iterative solve.
    residual : ndarray, shape (batch,), or None
        Final KCL residual per vector (A, infinity norm) of an iterative solve.
    """

    inputs: np.ndarray
    currents: np.ndarray
    v_top: np.ndarray | None = None
    v_bottom: np.ndarray | None = None
    v_mid: np.ndarray | None = None
    cell_currents: np.ndarray | None = None
    method: str = ""
    converged: np.ndarray | None = None
    iterations: np.ndarray | None = None
    residual: np.ndarray | None = None

    @property
    def batch_size(self) -> int:
        """Number of input vectors."""
        return self.currents.shape[0]

    @property
    def column_currents(self) -> np.ndarray:
        """Alias of :attr:`currents` (A), shape (batch, n)."""
        return self.currents

    @property
    def cell_voltages(self) -> np.ndarray:
        """Voltage across each cell, ``v_top - v_bottom`` (V), shape (batch, m, n)."""
        if self.v_top is None or self.v_bottom is None:
            raise ValueError("node voltages were not computed; solve with full=True")
        return self.v_top - self.v_bottom
