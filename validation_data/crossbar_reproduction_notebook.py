"""Write ``notebooks/crossbar_reproduction.ipynb`` (no outputs; run it to draw the figures).

    python validation_data/crossbar_reproduction_notebook.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CELLS = [
    ("markdown", """# Single-crossbar reproduction (Zhang & Hu 2022, Figs. 11-18)

This notebook reads the records of `xbarsolve reproduce crossbar` and redraws the figures of
the paper's single-crossbar study. If no results file is found it runs the `--quick` grid
(seconds). For the full grid run, from the repository root,

```
xbarsolve reproduce crossbar --out out/crossbar            # ~4 min on 2 cores
xbarsolve reproduce crossbar --out out/crossbar-0.1ohm --r-wire 0.1
```

and point `RESULTS` below at `out/crossbar/crossbar.h5`. The numbers beside the paper's
are in `validation_data/crossbar_reproduction.md`."""),
    ("code", """%matplotlib inline
import os
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt

import xbarsolve as xs
from xbarsolve import plotting
from xbarsolve.sweeps import read_records
from xbarsolve.sweeps.crossbar import reproduce_crossbar

ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
RESULTS = Path(os.environ.get("XBARSOLVE_CROSSBAR_RESULTS", ROOT / "out" / "crossbar" / "crossbar.h5"))
if not RESULTS.exists():
    RESULTS = reproduce_crossbar(ROOT / "out" / "crossbar-quick", quick=True, plots=False, progress=False)
records = read_records(RESULTS)
print(RESULTS, len(records), "tasks")"""),
    ("markdown", """## Fig. 11: the conversion signal

With a linear device the converted conductances `G'` depend only on the *pattern* of the
conversion signal, not on its amplitude: the all-1 and all-0.1 panels are identical (the
paper reports +-20 % vs +-0.2 %; that difference needs device nonlinearity or clipping,
see the report)."""),
    ("code", """plotting.fig11_conversion_signal(records);"""),
    ("markdown", """## Fig. 12-13: outputs and error distributions per method

`plain` is the mapped array without compensation, `conversion` the original conversion,
`conversion+calibration` the paper's method. On 144x16 conversion works; on 576x64 with the
stated 1-ohm wires it cannot (most cells would need a memristor voltage <= 0)."""),
    ("code", """sizes = sorted({f"{t['m']}x{t['n']}" for t, _ in records}, key=lambda s: int(s.split('x')[0]) * int(s.split('x')[1]))
for size in sizes[-2:]:
    plotting.fig12_methods_scatter(records, size=size)
plt.figure(); plotting.fig13_error_distribution(records, size=sizes[1] if len(sizes) > 1 else sizes[0], g_range="free", ax=plt.gca());"""),
    ("markdown", """## Fig. 14-18: error vs amplitude, sparsity, size and kernel type"""),
    ("code", """g = "free"
fig, axs = plt.subplots(2, 2, figsize=(11, 8))
plotting.fig14_error_vs_amplitude(records, g_range=g, ax=axs[0, 0])
plotting.fig15_error_vs_sparsity(records, g_range=g, ax=axs[0, 1])
plotting.fig16_worst_vs_sparsity(records, g_range=g, ax=axs[1, 0])
plotting.fig18_error_vs_kernel_type(records, g_range=g, ax=axs[1, 1])
fig.tight_layout()
plotting.fig17_error_vs_size(records, g_range=g);"""),
    ("markdown", """## Why 576x64 fails with the stated parameters

Convert a dense 576x64 array (G in [3.33, 66.7] uS, 1-ohm segments) and look at the memristor
voltage each cell would need. Negative voltage = no conductance can deliver the ideal
current: the column wires drop more than the rows supply."""),
    ("code", """from xbarsolve.mapping import shift_map
from xbarsolve import generators
A = generators.kernel(1, (576, 64), rng=0)
sm = shift_map(A)
fig, axs = plt.subplots(1, 3, figsize=(13, 4))
for ax, r_wire in zip(axs, (1.0, 0.2, 0.1)):
    conv = xs.convert(xs.Crossbar(sm.G, r_row=r_wire, r_col=r_wire), 0.04, on_clip="ignore")
    im = ax.imshow(conv.v_memristor, aspect="auto", cmap="RdBu", vmin=-0.2, vmax=0.2)
    ax.set_title(f"{r_wire:g} ohm: {100 * conv.clipped_fraction:.0f} % clipped", fontsize=9)
    ax.set_xlabel("column"); ax.set_ylabel("row")
fig.colorbar(im, ax=axs, label="required memristor voltage (V), 0.04 V signal")
print(conv.report())"""),
]


def main() -> None:
    cells = []
    for kind, src in CELLS:
        cell = {"cell_type": kind, "metadata": {}, "source": src.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                                       "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    out = ROOT / "notebooks" / "crossbar_reproduction.ipynb"
    out.write_text(json.dumps(nb, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
