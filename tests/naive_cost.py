"""Plain NumPy twins of the compiled kernels of ``xbarsolve.cost`` (used only by tests)."""

from __future__ import annotations

import numpy as np


def junction_currents(transistor, v_mid, v_bottom):
    """``j(v_mid) + j(v_bottom)`` per cell, calling the transistor's junction law per node."""
    law, p = transistor.junction_kernel, np.asarray(transistor.parameters(), dtype=np.float64)
    one = np.vectorize(lambda v: law(float(v), p)[0])
    return one(v_mid) + one(v_bottom)
