"""Write the ngspice reference decks and ngspice's results for them.

Run from the repository root (needs the ngspice binary)::

    python netlists/make_reference.py

Writes ``netlists/reference/<case>.cir`` (the exact decks ngspice ran, one operating point per
input vector) and ``validation_data/ngspice_reference.npz``: for every case the array spec
(``<case>/G``, ``r_row``, ``r_col``, ``r_in``, ``r_out`` in S and ohm, ``drive``, ``sense``,
``r_on``: the 1T1R on-resistance in ohm or NaN for 1R), the inputs ``V`` (V) and ngspice's
``currents`` (A), ``v_top`` and ``v_bottom`` (V).  ``tests/test_spice.py`` checks that our
solver reproduces them without ngspice.  Deterministic: a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import xbarsolve as xs
from xbarsolve.spice.netlist import build_deck
from xbarsolve.spice.run import _assemble, _run_batch

ROOT = Path(__file__).resolve().parents[1]
from xbarsolve.reference import G_MAX, G_MIN  # the reference conductance range


def cases(rng: np.random.Generator) -> dict[str, tuple[xs.Crossbar, np.ndarray]]:
    out = {}
    out["r8x8_reference_parameters"] = (xs.Crossbar(rng.uniform(G_MIN, G_MAX, (8, 8))), rng.uniform(0, 0.4, (3, 8)))
    m, n = 16, 12
    out["r16x12_nonuniform_wires"] = (
        xs.Crossbar(rng.uniform(G_MIN, G_MAX, (m, n)), r_row=rng.uniform(0.5, 5, (m, n - 1)),
                    r_col=rng.uniform(0.5, 5, (m - 1, n)), r_in=rng.uniform(1, 20, m), r_out=rng.uniform(1, 20, n)),
        rng.uniform(0, 0.4, (2, m)),
    )
    out["t12x10_1t1r_both_ends"] = (
        xs.Crossbar(rng.uniform(G_MIN, G_MAX, (12, 10)), r_row=2.0, r_col=2.0, r_in=3.0, r_out=3.0,
                    drive="both", sense="both", transistor=xs.transistors.Resistor(r_on=2e3)),
        rng.uniform(0, 0.4, (2, 12)),
    )
    G = rng.uniform(G_MIN, G_MAX, (6, 8))
    G[rng.random(G.shape) < 0.25] = 0.0
    G[0] = G_MAX
    out["r6x8_zero_io_open_cells"] = (
        xs.Crossbar(G, r_row=1.0, r_col=1.0, r_in=0.0, r_out=0.0, drive="right", sense="top"),
        rng.uniform(0, 0.4, (2, 6)),
    )
    return out


def main() -> None:
    rng = np.random.default_rng(20261123)
    ref_dir = ROOT / "netlists" / "reference"
    ref_dir.mkdir(parents=True, exist_ok=True)
    store: dict[str, np.ndarray] = {}
    names = []
    for name, (xbar, V) in cases(rng).items():
        deck = build_deck(xbar, V, analysis="control", title=f"xbarsolve reference {name}")
        (ref_dir / f"{name}.cir").write_text(deck.text)
        res = _assemble(xbar, V, deck, _run_batch(deck, V, timeout=600), full=True)
        exact = xs.solve(xbar, V).currents
        print(f"{name:28s} max |ngspice - exact| / |exact| = {np.max(np.abs(res.currents - exact) / np.abs(exact)):.2e}")
        r_on = xbar.transistor.r_on if xbar.transistor is not None else np.nan
        fields = dict(
            G=xbar.G, r_row=np.asarray(xbar.r_row), r_col=np.asarray(xbar.r_col), r_in=np.asarray(xbar.r_in),
            r_out=np.asarray(xbar.r_out), drive=np.array(xbar.drive), sense=np.array(xbar.sense),
            r_on=np.array(r_on), V=V, currents=res.currents, v_top=res.v_top, v_bottom=res.v_bottom,
        )
        store.update({f"{name}/{k}": v for k, v in fields.items()})
        names.append(name)
    store["cases"] = np.array(names)
    out = ROOT / "validation_data" / "ngspice_reference.npz"
    np.savez_compressed(out, **store)
    print(f"wrote {out.relative_to(ROOT)} and {len(names)} decks in {ref_dir.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
