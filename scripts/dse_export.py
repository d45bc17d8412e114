"""Write the records of a results file (``xbarsolve reproduce dse``,
``scripts/dse_noise_sensitivity.py``) as JSON, one record a line (the form
``validation_data`` keeps them in: text, diffable, readable without h5py).

Usage::

    python scripts/dse_export.py OUT/dse_results.h5 validation_data/dse/dse_full_records.json \
        --description "full preset, ..."
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def main(argv=None) -> int:
    from xbarsolve.sweeps._runner import read_records

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results")
    p.add_argument("out")
    p.add_argument("--description", default="records of xbarsolve reproduce dse")
    args = p.parse_args(argv)
    records = read_records(args.results, merge=False)
    lines = [json.dumps({"task": t, "record": _plain(r)}, sort_keys=True) for t, r in records]
    with open(args.out, "w") as fh:  # one record a line
        fh.write('{"description": ' + json.dumps(args.description) + ',\n"records": [\n' + ",\n".join(lines) + "\n]}\n")
    print(f"wrote {len(records)} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
