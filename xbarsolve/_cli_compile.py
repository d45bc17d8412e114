"""``xbarsolve compile``: compile the Numba kernels into Numba's disk cache now.

``scripts/setup.sh`` runs it once after installing, so that the first demo and the first
nonlinear solves of a fresh install load compiled code instead of spending seconds to
minutes compiling it; after a plain ``pip install``, run it once yourself.
"""

from __future__ import annotations

import argparse


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-newton", action="store_true",
                        help="only the demo's and the linear solver's kernels (seconds), not the Newton solver's "
                             "(about 1.5 min on two cores the first time)")


def cli_main(args: argparse.Namespace) -> int:
    from .demo import warm_up

    print(f"compiled (or loaded from the cache) the demo's and the linear solver's kernels in {warm_up():.1f} s",
          flush=True)
    if not args.no_newton:
        from .solve.newton import warm_up as warm_up_newton

        print(f"compiled (or loaded from the cache) the Newton solver's kernels in {warm_up_newton():.1f} s", flush=True)
    return 0
