"""Rerun recorded ``xbarsolve reproduce dse`` tasks with the current code and compare.

Records made by an earlier version of the code stay in a results file (a task's identity
is its definition, not the code).  This reruns a few of them without the programming
cache and prints every scalar field beside the stored one with the relative difference,
and the time each took then and now, so a report can say whether old and new records
agree.

Usage::

    XBARSOLVE_DATA=... python scripts/dse_recheck.py RESULTS.h5 \
        --where network=mnist_cnn4 mapping=dense tile=64 wire=1 sigma=0 read_noise=0 bits=8
"""

from __future__ import annotations

import argparse
import sys

FIELDS = ("accuracy_analog", "accuracy_software", "energy_pJ", "read_pJ", "dac_pJ", "adc_pJ", "digital_pJ",
          "area_um2", "latency_ns", "n_crossbars", "n_clipped")


def _matches(task: dict, where: dict) -> bool:
    for k, v in where.items():
        if k not in task:
            raise KeyError(f"--where: tasks have no field {k!r}; fields: {sorted(task)}")
        if str(task[k]) != v and not (isinstance(task[k], (int, float)) and float(task[k]) == float(v)):
            return False
    return True


def main(argv=None) -> int:
    from xbarsolve.cnn.datasets import data_dir
    from xbarsolve.sweeps._runner import read_records
    from xbarsolve.sweeps.dse import run_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="results file of xbarsolve reproduce dse")
    p.add_argument("--where", nargs="*", default=[], metavar="FIELD=VALUE", help="task fields to match (all of them)")
    p.add_argument("--data", default=None, help="data folder (default $XBARSOLVE_DATA)")
    p.add_argument("--max", type=int, default=1, help="at most this many matching tasks")
    args = p.parse_args(argv)
    where = dict(w.split("=", 1) for w in args.where)
    data = str(data_dir(args.data))
    chosen = [(t, r) for t, r in read_records(args.results, merge=False) if _matches(t, where)][: args.max]
    if not chosen:
        print(f"dse_recheck: no record of {args.results} matches {where}")
        return 2
    worst = 0.0
    for task, old in chosen:
        new = run_task(task, data, cache=None)
        print(task)
        print(f"  {'field':18s} {'recorded':>14s} {'now':>14s} {'rel. diff':>10s}")
        for f in FIELDS:
            a, b = float(old[f]), float(new[f])
            rel = abs(a - b) / max(abs(a), abs(b)) if max(abs(a), abs(b)) > 0 else 0.0
            worst = max(worst, rel)
            print(f"  {f:18s} {a:14.6g} {b:14.6g} {rel:10.2e}")
        for f in ("prepare_seconds", "evaluate_seconds", "cost_seconds"):
            print(f"  {f:18s} {old[f]:14.1f} {new[f]:14.1f}")
    print(f"largest relative difference: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
