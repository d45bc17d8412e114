"""``xbarsolve solve``: the command-line face of the exact solver (``xbarsolve demo`` is in ``_cli_demo``)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .crossbar import Crossbar
from .reference import G_MAX, G_MIN, R_WIRE, V_MAX
from .solve import solve
from .transistors import Resistor


@dataclass(frozen=True)
class Deviation:
    """How far the exact column currents are from the ideal product ``V @ G``.

    ``relative`` divides by the ideal current of each output; ``of_range`` divides by the
    range of the ideal outputs of each column over the batch (the paper's output error).
    """

    mean_relative: float
    max_relative: float
    mean_of_range: float
    max_of_range: float

    @classmethod
    def between(cls, exact: np.ndarray, ideal: np.ndarray) -> "Deviation":
        diff = exact - ideal
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.abs(diff) / np.abs(ideal)
        relative = relative[np.isfinite(relative)]
        span = ideal.max(axis=0) - ideal.min(axis=0)
        of_range = np.abs(diff) / np.where(span > 0, span, np.abs(ideal).max(axis=0))
        return cls(float(relative.mean()), float(relative.max()), float(of_range.mean()), float(of_range.max()))


def _parse_size(text: str) -> tuple[int, int]:
    try:
        m, n = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 144x16; got {text!r}") from None
    if m < 1 or n < 1:
        raise argparse.ArgumentTypeError(f"size must have m, n >= 1; got {text!r}")
    return m, n


def _load_inputs(path: Path, m: int) -> np.ndarray:
    if path.suffix == ".npy":
        V = np.load(path)
    elif path.suffix in (".csv", ".txt"):
        V = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    elif path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            V = f["inputs"][()] if "inputs" in f else f["result/inputs"][()]
    else:
        raise SystemExit(f"--inputs: unknown file type {path.suffix!r}; use .npy, .csv, .txt or .h5")
    return np.atleast_2d(V)


# ------------------------------------------------------------------------ solve
def add_solve_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("array (load one, or generate one with the reference parameters)")
    src.add_argument("--crossbar", type=Path, help="HDF5 file written by xbarsolve (xs.save)")
    src.add_argument("--size", type=_parse_size, default=(144, 16), help="m x n of a generated array (default 144x16)")
    src.add_argument("--g-min", type=float, default=G_MIN, help="min conductance, S (default 1/300k)")
    src.add_argument("--g-max", type=float, default=G_MAX, help="max conductance, S (default 1/15k)")
    src.add_argument("--r-row", type=float, default=R_WIRE, help="row wire segment, ohm (default 1)")
    src.add_argument("--r-col", type=float, default=R_WIRE, help="column wire segment, ohm (default 1)")
    src.add_argument("--r-in", type=float, default=R_WIRE, help="driver resistance, ohm (default 1)")
    src.add_argument("--r-out", type=float, default=R_WIRE, help="sense resistance, ohm (default 1)")
    src.add_argument("--r-on", type=float, default=None, help="access-transistor on-resistance, ohm (default: 1R array)")
    src.add_argument("--drive", choices=["left", "right", "both"], default="left")
    src.add_argument("--sense", choices=["bottom", "top", "both"], default="bottom")
    inp = p.add_argument_group("inputs (load them, or draw random ones)")
    inp.add_argument("--inputs", type=Path, help="(batch, m) volts in .npy, .csv, .txt or .h5 (dataset 'inputs')")
    inp.add_argument("--batch", type=int, default=256, help="number of random input vectors (default 256)")
    inp.add_argument("--v-max", type=float, default=V_MAX, help="random inputs uniform in [0, v_max] V (default 0.4)")
    inp.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", action="store_true", help="also compute node voltages and cell currents")
    p.add_argument("--out", type=Path, help="save the array and the result to this HDF5 file")
    p.add_argument("--print", dest="print_rows", type=int, default=4, help="vectors of currents to print (default 4)")


def solve_main(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    if args.crossbar:
        from .io import load

        xbar = load(args.crossbar)["crossbar"]
        if xbar is None:
            raise SystemExit(f"--crossbar: {args.crossbar} holds no crossbar")
    else:
        m, n = args.size
        if not 0 <= args.g_min < args.g_max:
            raise SystemExit(f"--g-min/--g-max: need 0 <= g_min < g_max S; got {args.g_min}, {args.g_max}")
        xbar = Crossbar(
            rng.uniform(args.g_min, args.g_max, (m, n)), r_row=args.r_row, r_col=args.r_col, r_in=args.r_in,
            r_out=args.r_out, drive=args.drive, sense=args.sense,
            transistor=None if args.r_on is None else Resistor(args.r_on),
        )
    if args.inputs:
        V = _load_inputs(args.inputs, xbar.m)
    else:
        if args.batch < 1:
            raise SystemExit(f"--batch must be >= 1; got {args.batch}")
        V = rng.uniform(0.0, args.v_max, (args.batch, xbar.m))
    t0 = time.perf_counter()
    res = solve(xbar, V, full=args.full)
    elapsed = time.perf_counter() - t0
    dev = Deviation.between(res.currents, xbar.ideal_currents(res.inputs))
    print(f"{xbar.m}x{xbar.n} array, {res.batch_size} vector(s), method {res.method}: "
          f"{elapsed:.3f} s ({elapsed / res.batch_size * 1e6:.1f} us per vector)")
    with np.printoptions(precision=4, linewidth=120):
        for k in range(min(args.print_rows, res.batch_size)):
            print(f"I[{k}] (uA) = {res.currents[k] * 1e6}")
    print(f"deviation from the ideal product V @ G: mean {dev.mean_relative:.3%}, max {dev.max_relative:.3%} "
          f"(of the output range: mean {dev.mean_of_range:.3%}, max {dev.max_of_range:.3%})")
    if args.out:
        from .io import save

        print(f"wrote {save(args.out, crossbar=xbar, result=res)}")
    return 0
