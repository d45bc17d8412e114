"""Regenerate the synthetic measurement files beside this script (uses ngspice).

    python validation_data/measured/make_synthetic.py            # 64x64 file only
    python validation_data/measured/make_synthetic.py --all      # also 128x64 (~30 min)

The hidden truth (parasitics, transistor on-resistance, noise model) is the default
:class:`xbarsolve.validation.synthetic.SyntheticChip`; README.md beside this script lists
it.  The files are synthetic stand-ins, not chip data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from xbarsolve.validation.synthetic import SyntheticChip, generate

HERE = Path(__file__).resolve().parent
FILES = {
    # name: (m, n, k, seed)
    "synthetic_64x64.h5": (64, 64, 200, 1),
    "synthetic_128x64.h5": (128, 64, 200, 2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also the 128x64 file (64 ngspice operating points of ~20 s)")
    args = parser.parse_args()
    chip = SyntheticChip()
    for name, (m, n, k, seed) in FILES.items():
        if m == 128 and not args.all:
            continue
        t = time.time()
        meas = generate(m, n, k, chip=chip, seed=seed)
        meas.save(HERE / name)
        print(f"{name}: {m}x{n}, {k} vectors, noise {meas.noise_rms:.3g} A rms, {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
