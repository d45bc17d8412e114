"""``xbarsolve demo``: the embedded default job (:mod:`xbarsolve.demo`) on the command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for demo.json and demo.png (default out/demo)")
    p.add_argument("--batch", type=int, default=1000, help="held-out random input vectors per array (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the arrays and inputs (default 0)")
    p.add_argument("--no-spice", action="store_true", help="skip the ngspice spot check")


def cli_main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    from .demo import format_report, run_demo

    try:
        result = run_demo(args.out, batch=args.batch, seed=args.seed, spice=not args.no_spice)
    except ValueError as exc:  # bad arguments: one line, no traceback
        raise SystemExit(f"xbarsolve demo: --{exc}") from None
    print(format_report(result))
    print(f"\nwrote {', '.join(str(p) for p in result.files)}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0
