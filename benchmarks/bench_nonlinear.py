"""Nonlinear solve time per input vector: xbarsolve's Newton vs a SciPy Newton and ngspice.

Arrays: the paper's parameters (G uniform in [3.33, 66.7] uS, 1-ohm wire segments,
r_in = r_out = 1 ohm), sinh memristors (a = 2 /V, v_read = 0.2 V) and level-1 access
transistors (vto 0.7 V, kp 100 uA/V^2, w/l = 2/0.5 um, lambda 0.02 /V, gate 3.3 V), or
with ``--cells 1R`` the sinh memristors alone; inputs uniform in [0, 0.4] V.

For each size and batch (1 and 256 vectors) the table gives

* ``xbarsolve``: wall time per vector of ``xs.solve`` (default options) and the CPU time
  of this process per vector (the machine is shared: CPU time is what the solve costs);
* ``dev ref``: largest relative deviation of its column currents from the converged
  reference (exact Newton, ``iteration="newton"``, ``rtol=1e-13``) on a few vectors spread
  over the batch (the first, the last and between);
* ``chord``: wall time per vector with ``iteration="chord"`` (the default before the
  line relaxation) and the ratio of it to the default's;
* ``--compare`` (an older or alternative path, CPU time per vector, the sweeps it took and
  the ratio of its CPU time to the default's; its currents are asserted to agree with the
  default's to 1e-9): ``before`` (default), the line relaxation as it was before issue
  13's item 3 (one Gauss-Seidel pass per sweep, the cell Jacobian in float64; private
  flags ``_PASSES`` and ``_SINGLE`` of ``xbarsolve.solve._lines``); ``one-pass`` and
  ``float64``, each of those alone; ``linear-start``, the line relaxation started from
  the exact solution of the circuit linearised at 0 V (``_lines._START``); ``generic``,
  the generic scalar residual kernel for cells with a middle node (the path before the
  vectorised ``evaluate_3t``; ``xbarsolve.solve._net._GENERIC_CELLS``; ``-`` for 1R cells,
  which take the vectorised two-terminal kernel either way); ``gemm-start``, the linear
  start as one GEMM with the array's start matrix (``_lines._START = "gemm"``);
  ``two-pass-last``, every sweep with two passes (``_lines._LAST_PASS = False``: no single
  pass in a sweep predicted to be the last); ``iterate-zeros``, all-zero inputs iterated
  like the others (``newton._SKIP_ZERO = False``); ``before-last-pass``, both of these
  (the code before the BENCHMARKS.md section 10 subsection on the sinh CNN tiles);
  ``s-blocks-8``, the S-chain kernels splitting the chains into 8 blocks whatever the
  thread count (``_lines._S_BLOCKS = 8``; now one block per thread); ``scratch-f64``, the
  passes' scratch in float64 (``_lines._SCRATCH``; now float32); ``separate-exp``, the
  residual kernel of sinh + Level1 cells with one pass per exponential
  (``_newton_kernels.separate_exponentials()``; now the three in one pass);
  ``with-i-col``, every residual evaluation writing each cell's column current
  (``_lines._SKIP_I_COL = False``; now only a workspace's first); ``two-passes-mid``,
  cells with a middle node on two passes per sweep whatever the passes' contraction
  (``_lines._PASSES_MID = None``; now three once two contracted by more than
  ``_MID_RATE``); ``before-kernels``, all five (the code before the BENCHMARKS.md
  subsection on the pass kernels); ``rhs-f64``, the sweeps' right-hand sides and the
  middle nodes' ``m0`` stored in float64 (``_lines._SINGLE_RHS = False``; now float32);
  ``cell-loops``, the two-terminal residual kernel with its loops per cell
  (``_newton_kernels.cell_loops()``; now per P chain, ``_ROW_LOOPS``); ``p-chains-before``,
  the P chains' pass kernels with float64 pivots computed in the forward substitution's
  loop (``_newton_kernels.p_chains_before()``; now in the cell Jacobian's precision, in
  a loop of their own: ``_P_PIVOTS_FIRST``); ``chunk-32``, cells with a middle node
  iterated 32 vectors at a time like two-terminal ones (``_threads._MID_CHUNK``; now 64);
* times are medians over ``--passes`` interleaved passes (default, chord, compared path,
  then again), so that a drift of the shared machine's speed affects every column alike;
* ``SciPy``: plain Newton on the full nodal system with a sparse LU of the Jacobian per
  iteration and per vector (``tests/naive_newton.py``), on a few vectors, and the
  speed-up of xbarsolve over it;
* ``ngspice``: ``xs.spice.solve`` on one vector (``ngspice -b``, tightened options, gmin
  matched to the model), skipped when it exceeds the time limit, and the deviation.

Run: ``python benchmarks/bench_nonlinear.py [--cells 1T1M|1R] [--sizes 576x64,...] [--passes 3]
[--no-baselines] [--threads N] [--compare NAME]`` (NAME: one of the paths above) (``--quick`` for a
smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import xbarsolve as xs  # noqa: E402
from naive_newton import naive_newton  # noqa: E402
from xbarsolve.solve import _lines, _net, _threads, newton  # noqa: E402
from xbarsolve.solve import _newton_kernels as _nk  # noqa: E402

SIZES = [(64, 64), (144, 16), (288, 32), (576, 64), (128, 128)]


def array(m: int, n: int, rng, cells: str = "1T1M") -> xs.Crossbar:
    G = rng.uniform(1 / 300e3, 1 / 15e3, (m, n))
    tr = None
    if cells == "1T1M":
        tr = xs.transistors.Level1(vto=0.7, kp=100e-6, w=2e-6, l=0.5e-6, lambda_=0.02, v_gate=3.3)
    return xs.Crossbar(G, r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0, device=xs.devices.Sinh(a=2.0, v_read=0.2),
                       transistor=tr)


def timed(fn, *args, **kw):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - w0, time.process_time() - c0


#: The paths ``--compare`` offers: the (module, flag, value) settings in force while the
#: compared solve runs.
COMPARE = {"before": ((_lines, "_PASSES", 1), (_lines, "_SINGLE", False)),
           "one-pass": ((_lines, "_PASSES", 1),), "float64": ((_lines, "_SINGLE", False),),
           "linear-start": ((_lines, "_START", "linear"),), "generic": ((_net, "_GENERIC_CELLS", True),),
           "gemm-start": ((_lines, "_START", "gemm"),), "two-pass-last": ((_lines, "_LAST_PASS", False),),
           "iterate-zeros": ((newton, "_SKIP_ZERO", False),),
           "before-last-pass": ((_lines, "_LAST_PASS", False), (newton, "_SKIP_ZERO", False)),
           "s-blocks-8": ((_lines, "_S_BLOCKS", 8),), "scratch-f64": ((_lines, "_SCRATCH", np.float64),),
           "separate-exp": ((_nk, "evaluate_3t", _nk.separate_exponentials()),),
           "with-i-col": ((_lines, "_SKIP_I_COL", False),),
           "two-passes-mid": ((_lines, "_PASSES_MID", None),),
           "rhs-f64": ((_lines, "_SINGLE_RHS", False),),
           "cell-loops": ((_nk, "evaluate_2t", _nk.cell_loops()),),
           "chunk-32": ((_threads, "_MID_CHUNK", 32),),
           "p-chains-before": tuple((_nk, name, kernel) for name, kernel in zip(("lines_p", "lines_pre_p"),
                                                                                _nk.p_chains_before())),
           "before-kernels": ((_lines, "_S_BLOCKS", 8), (_lines, "_SCRATCH", np.float64), (_lines, "_SKIP_I_COL", False),
                              (_nk, "evaluate_3t", _nk.separate_exponentials()), (_lines, "_PASSES_MID", None))}


@contextlib.contextmanager
def compared(name: str):
    """Run the body on the compared path ``name`` (see :data:`COMPARE`)."""
    saved = [(module, flag, getattr(module, flag)) for module, flag, _ in COMPARE[name]]
    for module, flag, value in COMPARE[name]:
        setattr(module, flag, value)
    try:
        yield
    finally:
        for module, flag, value in saved:
            setattr(module, flag, value)


def rel(a, b) -> float:
    return float(np.abs(a / b - 1).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small batches, no SciPy/ngspice on large sizes")
    ap.add_argument("--scipy-vectors", type=int, default=2, help="vectors for the SciPy Newton baseline")
    ap.add_argument("--ngspice-timeout", type=float, default=120.0, help="time limit of one ngspice run (s)")
    ap.add_argument("--cells", choices=("1T1M", "1R"), default="1T1M", help="sinh memristor with or without Level1 NMOS")
    ap.add_argument("--sizes", default=",".join(f"{m}x{n}" for m, n in SIZES), help="comma-separated m x n sizes")
    ap.add_argument("--passes", type=int, default=3, help="interleaved timing passes (medians are printed)")
    ap.add_argument("--no-baselines", action="store_true", help="skip the SciPy Newton and ngspice baselines")
    ap.add_argument("--threads", type=int, default=None, help="threads of xbarsolve's kernels (default: its own policy)")
    ap.add_argument("--compare", choices=tuple(COMPARE), default="before",
                    help="the older or alternative path timed beside the default")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rng = np.random.default_rng(2026)
    batches = (1, 16) if args.quick else (1, 256)
    print(f"# bench_nonlinear ({args.cells} cells): load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at start")
    # compile (and cache) the kernels outside the timings
    small = array(8, 8, rng, args.cells)
    for other in (False, True):
        with compared(args.compare) if other else contextlib.nullcontext():
            for it in ("auto", "chord", "newton"):
                for k in (2, 16):  # the generic kernel and, from 8 vectors, the vectorised ones
                    xs.solve(small, rng.uniform(0, 0.4, (k, 8)), iteration=it, threads=args.threads)

    header = (f"{'size':>8} {'batch':>5} | {'ms/vec':>8} {'cpu ms/vec':>10} {'iters':>5} {'dev ref':>8} | "
              f"{'chord ms/vec':>12} {'ratio':>6} | {args.compare + ' cpu ms':>20} {'iters':>5} {'ratio':>6} | "
              f"{'SciPy ms/vec':>12} {'speed-up':>8} {'dev':>8} | {'ngspice s/vec':>13} {'dev':>8}")
    print(header)
    print("-" * len(header))
    for m, n in sizes:
        xbar = array(m, n, rng, args.cells)
        V = rng.uniform(0.0, 0.4, (max(batches), m))
        n_ref = 2 if args.quick else 4
        # reference vectors spread over the batch (the later chunks iterate differently:
        # the single last pass needs the passes' rate seen in an earlier chunk)
        ridx = np.unique(np.linspace(0, max(batches) - 1, n_ref).astype(int))
        ref, _, _ = timed(xs.solve, xbar, V[ridx], iteration="newton", rtol=1e-13)
        scipy_ms = scipy_dev = None
        if not (args.no_baselines or (args.quick and m * n > 64 * 64)):
            k = args.scipy_vectors
            (cur, *_), w, _ = timed(naive_newton, xbar, V[ridx[:k]])
            scipy_ms, scipy_dev = w / k * 1e3, rel(cur, ref.currents[:k])
        sp_s = sp_dev = None
        if not (args.no_baselines or (args.quick and m * n > 64 * 64)):
            try:
                opts = {"gmin": xbar.transistor.gmin} if xbar.transistor is not None else None
                out, w, _ = timed(xs.spice.solve, xbar, V[:1], options=opts, timeout=args.ngspice_timeout)
                sp_s, sp_dev = w, rel(out.currents, ref.currents[:1])
            except Exception as err:  # noqa: BLE001 - a timeout or a failed run is reported, not fatal
                sp_s = f"> {args.ngspice_timeout:.0f} s" if "timeout" in str(err) else type(err).__name__
        for k in batches:
            t = {"auto": [], "cpu": [], "chord": [], "other": []}
            other_its = None
            for _ in range(args.passes):
                res, w, c = timed(xs.solve, xbar, V[:k], threads=args.threads)
                t["auto"].append(w)
                t["cpu"].append(c)
                t["chord"].append(timed(xs.solve, xbar, V[:k], iteration="chord", threads=args.threads)[1])
                if args.cells == "1T1M" or args.compare != "generic":
                    with compared(args.compare):
                        old, _, c_old = timed(xs.solve, xbar, V[:k], threads=args.threads)
                    t["other"].append(c_old)
                    other_its = int(old.iterations.max())
                    assert rel(old.currents, res.currents) < 1e-9  # the same solution, to the tolerance
            w, c, w_chord = (float(np.median(t[key])) for key in ("auto", "cpu", "chord"))
            c_gen = float(np.median(t["other"])) if t["other"] else None
            gen = (f"{c_gen / k * 1e3:20.2f} {other_its:5d} {c_gen / c:5.1f}x" if c_gen
                   else f"{'-':>20} {'-':>5} {'-':>6}")
            sel = ridx < k
            dev = rel(res.currents[ridx[sel]], ref.currents[sel])
            ms = w / k * 1e3
            speed = f"{scipy_ms / ms:8.0f}x" if scipy_ms else f"{'-':>9}"
            sp = (f"{sp_s:13.2f}" if isinstance(sp_s, float) else f"{sp_s or '-':>13}")
            print(f"{m:>4}x{n:<3} {k:>5} | {ms:8.2f} {c / k * 1e3:10.2f} {int(res.iterations.max()):5d} {dev:8.1e} | "
                  f"{w_chord / k * 1e3:12.2f} {w_chord / w:5.1f}x | {gen} | "
                  f"{scipy_ms if scipy_ms else float('nan'):12.1f} {speed} {scipy_dev if scipy_dev is not None else float('nan'):8.1e} | "
                  f"{sp} {sp_dev if sp_dev is not None else float('nan'):8.1e}", flush=True)
    policy = '1 (machine oversubscribed)' if os.getloadavg()[0] > (os.cpu_count() or 1) else 'numba default'
    print(f"# load average {os.getloadavg()[0]:.1f} at end; xbarsolve threads: {args.threads or policy}")


if __name__ == "__main__":
    main()
