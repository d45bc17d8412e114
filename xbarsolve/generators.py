"""Kernels and input data for the single-crossbar studies (Zhang & Hu 2022, Sec. 4).

* Kernel types: 1 Gaussian weights, 2 weights kept away from zero, 3 ternary weights.
* Inputs: uniform in ``[0, v_max]`` volts (paper: 0.4 V) with a given sparsity (fraction
  of exact zeros, 0 to 0.9), or real post-ReLU activations of a CNN layer scaled into
  ``[0, v_max]`` (:func:`activation_inputs`; any callable producing activations works, so
  the CNN package can provide layers later).

All generators take ``rng`` (a seed or a NumPy ``Generator``) and are deterministic for a
given seed.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np

from .reference import V_MAX

__all__ = ["KERNEL_TYPES", "kernel", "inputs", "activation_inputs"]

#: Kernel types of the paper's study, by number.
KERNEL_TYPES = {1: "Gaussian", 2: "away from zero", 3: "ternary"}


def kernel(kind: Literal[1, 2, 3], shape: tuple[int, int], *, rng=None, gap: float = 0.5) -> np.ndarray:
    """A random kernel matrix (dimensionless weights) of type 1, 2 or 3.

    Parameters
    ----------
    kind : {1, 2, 3}
        1: standard normal.  2: random sign times a magnitude uniform in ``[gap, 1]``
        (no weight closer to zero than ``gap``).  3: ternary, ``-1``, ``0``, ``+1`` with
        equal probability.
    shape : (m, n)
        Rows (inputs) and columns (kernels).
    rng : seed or Generator, optional
    gap : float
        Smallest magnitude of a type-2 weight, in (0, 1).
    """
    rng = np.random.default_rng(rng)
    m, n = (int(s) for s in shape)
    if m < 1 or n < 1:
        raise ValueError(f"shape must be (m, n) with m, n >= 1; got {shape!r}")
    if kind == 1:
        return rng.standard_normal((m, n))
    if kind == 2:
        if not 0 < gap < 1:
            raise ValueError(f"gap must lie in (0, 1); got {gap!r}")
        return rng.choice([-1.0, 1.0], (m, n)) * rng.uniform(gap, 1.0, (m, n))
    if kind == 3:
        return rng.integers(-1, 2, (m, n)).astype(np.float64)
    raise ValueError(f"kind must be 1 (Gaussian), 2 (away from zero) or 3 (ternary); got {kind!r}")


def inputs(n_samples: int, m: int, *, sparsity: float = 0.0, v_max: float = V_MAX, rng=None) -> np.ndarray:
    """Random input vectors (V), shape (n_samples, m): uniform in ``[0, v_max]``, with each
    entry set to 0 V with probability ``sparsity`` (0 <= sparsity < 1)."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must lie in [0, 1); got {sparsity!r}")
    if not np.isfinite(v_max) or v_max <= 0:
        raise ValueError(f"v_max must be a voltage > 0 V; got {v_max!r}")
    rng = np.random.default_rng(rng)
    V = rng.uniform(0.0, float(v_max), (int(n_samples), int(m)))
    V[rng.random(V.shape) < sparsity] = 0.0
    return V


def activation_inputs(layer: Callable[[int, np.random.Generator], np.ndarray], n_samples: int, *,
                      v_max: float = V_MAX, rng=None) -> np.ndarray:
    """Real post-ReLU activations as input vectors (V).

    Parameters
    ----------
    layer : callable
        ``layer(n_samples, rng) -> X`` returning non-negative activations of shape
        (n_samples, m), e.g. the im2col patches feeding one CNN layer (the CNN package
        provides these).
    n_samples : int
        Number of vectors.
    v_max : float
        The largest activation is mapped to ``v_max`` volts (paper: 0.4 V).
    """
    rng = np.random.default_rng(rng)
    X = np.asarray(layer(int(n_samples), rng), dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != int(n_samples):
        raise ValueError(f"layer must return an array of shape ({n_samples}, m); got {X.shape}")
    if (X < 0).any():
        raise ValueError("activations must be non-negative (post-ReLU)")
    top = X.max()
    return X * (float(v_max) / top) if top > 0 else X
