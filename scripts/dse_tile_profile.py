"""Per-tile cost of the sparse mapping's two solver calls, on random 64 x 64 tiles with
1-ohm wires: the transfer matrix (programming), the read power of 5 vectors by nodal
solves (costing, as ``network_cost`` does for a sparse tile), the quadratic forms and a
read by the forms once they exist.  Prints milliseconds per tile (mean of 29 tiles).

Usage::

    python scripts/dse_tile_profile.py
"""

from __future__ import annotations

import time

import numpy as np


def main() -> None:
    from xbarsolve.cost.power import power_matrices, read_power
    from xbarsolve.crossbar import Crossbar
    from xbarsolve.solve import transfer_matrix

    rng = np.random.default_rng(0)

    def tile():
        return Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (64, 64)), r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0)

    def forms_read(x):
        return read_power(x, rng.uniform(0, 0.3, (5, 64)), method="forms")

    cases = [("transfer_matrix", transfer_matrix, False),
             ("read_power, 5 vectors, solve", lambda x: read_power(x, rng.uniform(0, 0.3, (5, 64)), method="solve"), False),
             ("power_matrices (the forms)", power_matrices, False),
             ("read_power, 5 vectors, forms", forms_read, True)]
    for name, f, needs_forms in cases:
        xs = [tile() for _ in range(30)]
        if needs_forms:
            for x in xs:
                power_matrices(x)
        f(xs[0])
        t0 = time.perf_counter()
        for x in xs[1:]:
            f(x)
        print(f"{name:32s} {(time.perf_counter() - t0) / 29 * 1e3:8.1f} ms per tile")


if __name__ == "__main__":
    main()
