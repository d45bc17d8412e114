"""The embedded default job (``xbarsolve demo``, ``make demo``): the whole story in one run.

On the paper's reference arrays (Zhang & Hu 2022, Sec. 4.1: G uniform in [1/300k, 1/15k] S,
1-ohm wire segments, R_in = R_out = 1 ohm, inputs uniform in [0, 0.4] V) the demo shows

* how far the exact column currents of the plainly mapped array are from the ideal
  product ``V @ G``, and how much of that :func:`xbarsolve.convert` and conversion +
  :class:`xbarsolve.Calibration` remove, on held-out random inputs (calibration fitted
  on other inputs), with the paper's metrics (:mod:`xbarsolve.metrics`: error relative
  to each column's output range);
* the 576 x 64 array at a wire resistance where every cell can be converted
  (:data:`FEASIBLE_R_WIRE`), and, in one line, what happens at the paper's 1-ohm wires;
* an ngspice spot check of one array and one vector: agreement and run time.

:func:`run_demo` returns everything as a :class:`DemoResult`; :func:`write_figure` draws
the figure; :func:`format_report` the text the command prints.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .calibration import Calibration
from .conversion import Conversion, constant_signal, convert
from .crossbar import Crossbar
from .metrics import summary
from .reference import G_MAX, G_MIN, N_CALIBRATION, R_WIRE, V_MAX  # Zhang & Hu 2022, Sec. 4.1
from .solve import solve, transfer_matrix

__all__ = [
    "G_MIN", "G_MAX", "V_MAX", "R_WIRE", "FEASIBLE_R_WIRE", "CONVERSION_AMPLITUDE", "N_CALIBRATION",
    "reference_crossbar", "warm_up", "DemoCase", "DemoRow", "SpiceCheck", "DemoResult",
    "evaluate_case", "spice_check", "run_demo", "format_report", "write_figure",
]

#: Wire segment (ohm) at which a 576 x 64 reference array converts without a single cell
#: needing a memristor voltage <= 0.  Measured over seeds 0-2: 0.15 ohm is the largest
#: value tried that converts (smallest memristor voltage 1.4-2.4 mV for a 0.04 V signal,
#: G' up to 26 x 1/R_on), 0.2 ohm leaves 40 % of the cells unconvertible; at 0.1 ohm the
#: smallest memristor voltage is 14 mV and G' stays below 2.9 x 1/R_on.
FEASIBLE_R_WIRE = 0.1
#: Conversion signal: every row at this fraction of V_MAX (the paper's "all-0.1").
CONVERSION_AMPLITUDE = 0.1

Method = Literal["plain", "conversion", "conversion + calibration"]
METHODS: tuple[Method, ...] = ("plain", "conversion", "conversion + calibration")


def reference_crossbar(m: int, n: int, rng, *, r_wire: float = R_WIRE) -> Crossbar:
    """An m x n 1R array with the paper's reference parameters and uniformly random G (S).

    ``r_wire`` (ohm) sets the wire segments and the driver and sense resistances alike.
    """
    rng = np.random.default_rng(rng)
    return Crossbar(rng.uniform(G_MIN, G_MAX, (m, n)), r_row=r_wire, r_col=r_wire, r_in=r_wire, r_out=r_wire)


def warm_up() -> float:
    """Run every compiled kernel the demo uses once on a 4 x 3 array; returns the wall time (s).

    On a fresh install this is Numba's compilation; afterwards it loads the compiled code
    from Numba's disk cache (``scripts/setup.sh`` runs it once after installing).
    """
    t0 = time.perf_counter()
    xbar = reference_crossbar(4, 3, 0)
    v = np.full(4, V_MAX)
    conv = convert(xbar, constant_signal(4, CONVERSION_AMPLITUDE), on_clip="ignore")
    for x in (xbar, conv.crossbar):
        transfer_matrix(x)
        solve(x, v, full=True)
        solve(x, v, method="block")
    return time.perf_counter() - t0


@dataclass(frozen=True)
class DemoRow:
    """One row of the table: a method's relative errors (dimensionless, :mod:`xbarsolve.metrics`)."""

    method: Method
    mean_relative_error: float
    worst_relative_error: float


@dataclass(frozen=True, eq=False)
class DemoCase:
    """One array of the demo, with everything needed to recompute its table rows.

    Attributes
    ----------
    name : str
        ``"144x16, 1 ohm"``.
    crossbar : Crossbar
        The plainly mapped array (``G`` are the target conductances, S).
    r_wire : float
        Wire segment, driver and sense resistance (ohm).
    v_conv : ndarray, shape (m,)
        Conversion signal (V).
    V_calibration, V_test : ndarray, shape (samples, m)
        Calibration inputs and the held-out inputs the errors are scored on (V).
    conversion : Conversion
        ``convert(crossbar, v_conv)`` (no conductance bounds).
    relative : dict
        Method -> relative errors (samples, n) on ``V_test``.
    rows : tuple of DemoRow
        Plain, conversion, conversion + calibration.
    setup_s : float
        Wall time (s) of the plain array's set-up (its transfer matrix).
    conversion_s : float
        Wall time (s) of the conversion and the converted array's transfer matrix.
    solve_s : float
        Wall time (s) of solving ``V_test`` and ``V_calibration`` on both arrays.
    """

    name: str
    crossbar: Crossbar
    r_wire: float
    v_conv: np.ndarray
    V_calibration: np.ndarray
    V_test: np.ndarray
    conversion: Conversion
    relative: dict
    rows: tuple
    setup_s: float
    conversion_s: float
    solve_s: float

    @property
    def g_prime_ratio(self) -> float:
        """Largest converted conductance over 1/R_on (dimensionless)."""
        return float(self.conversion.g_prime.max() / G_MAX)


def evaluate_case(xbar: Crossbar, V_calibration, V_test, *, name: str, r_wire: float) -> DemoCase:
    """Score plain mapping, conversion and conversion + calibration of ``xbar`` on ``V_test`` (V).

    The conversion uses the all-0.1 signal (:data:`CONVERSION_AMPLITUDE`) without
    conductance bounds; the calibration (per column) is fitted on ``V_calibration``.
    """
    t0 = time.perf_counter()
    transfer_matrix(xbar)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    conv = convert(xbar, constant_signal(xbar.m, CONVERSION_AMPLITUDE, v_max=V_MAX))
    transfer_matrix(conv.crossbar)
    conversion_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = solve(xbar, V_test).currents
    converted = solve(conv.crossbar, V_test).currents
    converted_cal = solve(conv.crossbar, V_calibration).currents
    solve_s = time.perf_counter() - t0
    ideal = xbar.ideal_currents(V_test)
    cal = Calibration().fit(converted_cal, xbar.ideal_currents(V_calibration))
    outputs = {"plain": plain, "conversion": converted, "conversion + calibration": cal.transform(converted)}
    stats = {k: summary(v, ideal) for k, v in outputs.items()}
    rows = tuple(DemoRow(k, s.mean_relative_error, s.worst_relative_error) for k, s in stats.items())
    return DemoCase(name, xbar, float(r_wire), conv.v_conv, np.asarray(V_calibration), np.asarray(V_test), conv,
                    {k: s.relative for k, s in stats.items()}, rows, setup, conversion_s, solve_s)


@dataclass(frozen=True)
class SpiceCheck:
    """ngspice against the exact solver on one array and one vector.

    ``skipped`` holds the reason when ngspice is absent (the other fields are then nan).
    """

    array: str
    max_relative_difference: float
    ngspice_s: float
    ours_s: float
    skipped: str = ""


def spice_check(xbar: Crossbar, v, *, name: str) -> SpiceCheck:
    """Solve one input vector ``v`` (V) with ngspice and with :func:`xbarsolve.solve` (direct
    block solve, no cached transfer matrix; best of three); compare the column currents and
    the wall times (ngspice's includes writing the deck and starting the ``ngspice -b`` process)."""
    from . import spice
    from .spice.run import NgspiceError, ngspice_executable

    try:
        ngspice_executable()
    except NgspiceError:
        return SpiceCheck(name, float("nan"), float("nan"), float("nan"),
                          skipped="ngspice not found (apt-get install ngspice); spot check skipped")
    t0 = time.perf_counter()
    ref = spice.solve(xbar, v).currents
    t_spice = time.perf_counter() - t0
    t_ours = np.inf
    for _ in range(3):  # best of three, each on a fresh copy (no cached factors)
        fresh = xbar.with_conductances(xbar.G)
        t0 = time.perf_counter()
        ours = solve(fresh, v, method="block").currents
        t_ours = min(t_ours, time.perf_counter() - t0)
    diff = float(np.abs(ours - ref).max() / np.abs(ref).max())
    return SpiceCheck(name, diff, t_spice, t_ours)


@dataclass(frozen=True, eq=False)
class DemoResult:
    """Everything :func:`run_demo` computed.

    Attributes
    ----------
    cases : tuple of DemoCase
        The 144 x 16 array at 1 ohm and the 576 x 64 array at :data:`FEASIBLE_R_WIRE`.
    compile_s : float
        Wall time (s) of :func:`warm_up`: JIT compilation, or loading Numba's cache.
    infeasible : Conversion
        The conversion of a 576 x 64 array at the paper's 1-ohm wires.
    cell_voltages : ndarray, shape (m, n)
        Cell voltages (V) of the plain 144 x 16 array with every input at ``V_MAX``.
    spice : SpiceCheck or None
        The ngspice spot check (``None`` when not asked for).
    files : tuple of Path
        What was written.
    """

    cases: tuple
    compile_s: float
    infeasible: Conversion
    cell_voltages: np.ndarray
    spice: SpiceCheck | None
    files: tuple = ()


def run_demo(
    out: str | Path | None = None,
    *,
    batch: int = 1000,
    seed: int = 0,
    spice: bool = True,
    figure: bool = True,
) -> DemoResult:
    """Run the demo; write ``demo.json`` and ``demo.png`` into ``out`` when given.

    Parameters
    ----------
    out : path, optional
        Folder for the results (created).
    batch : int
        Held-out random input vectors per array (>= 2); the calibration uses
        :data:`N_CALIBRATION` other ones.
    seed : int
        Seed of the arrays and inputs.
    spice : bool
        Run the ngspice spot check (skipped with a reason when ngspice is absent).
    figure : bool
        Write ``demo.png`` (needs ``out``).
    """
    if int(batch) < 2:
        raise ValueError(f"batch must be >= 2 input vectors (the output range needs two); got {batch!r}")
    rng = np.random.default_rng(seed)
    compile_s = warm_up()
    cases = []
    for (m, n), r in (((144, 16), R_WIRE), ((576, 64), FEASIBLE_R_WIRE)):
        xbar = reference_crossbar(m, n, rng, r_wire=r)
        V_cal = rng.uniform(0.0, V_MAX, (N_CALIBRATION, m))
        V_test = rng.uniform(0.0, V_MAX, (int(batch), m))
        cases.append(evaluate_case(xbar, V_cal, V_test, name=f"{m}x{n}, {r:g} ohm", r_wire=r))
    paper = reference_crossbar(576, 64, rng, r_wire=R_WIRE)
    infeasible = convert(paper, constant_signal(paper.m, CONVERSION_AMPLITUDE, v_max=V_MAX), on_clip="ignore")
    first = cases[0]
    cell_v = solve(first.crossbar, np.full(first.crossbar.m, V_MAX), full=True).cell_voltages[0]
    check = spice_check(first.conversion.crossbar, first.V_test[0], name=f"{first.name}, converted") if spice else None
    result = DemoResult(tuple(cases), compile_s, infeasible, cell_v, check)
    if out is None:
        return result
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [_write_json(result, out / "demo.json")]
    if figure:
        files.append(write_figure(result, out / "demo.png"))
    return DemoResult(result.cases, compile_s, infeasible, cell_v, check, tuple(files))


def _write_json(result: DemoResult, path: Path) -> Path:
    doc = {
        "parameters": {"g_min_S": G_MIN, "g_max_S": G_MAX, "v_max_V": V_MAX,
                       "conversion_amplitude": CONVERSION_AMPLITUDE, "n_calibration": N_CALIBRATION},
        "compile_s": result.compile_s,
        "cases": [{"array": c.name, "r_wire_ohm": c.r_wire, "samples": int(c.V_test.shape[0]),
                   "setup_s": c.setup_s, "conversion_s": c.conversion_s, "g_prime_over_g_max": c.g_prime_ratio,
                   "rows": [{"method": r.method, "mean_relative_error": r.mean_relative_error,
                             "worst_relative_error": r.worst_relative_error} for r in c.rows]}
                  for c in result.cases],
        "paper_576x64_1ohm": {"unconvertible_fraction": result.infeasible.n_nonpositive / result.infeasible.g_prime.size,
                              "report": result.infeasible.report()},
        "spice": None if result.spice is None else {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in vars(result.spice).items()},
    }
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    return path


def format_report(result: DemoResult) -> str:
    """The text ``xbarsolve demo`` prints: timing lines, the table, the 1-ohm line, ngspice."""
    lines = [f"JIT compile (or load from Numba's cache): {result.compile_s:.2f} s"]
    for c in result.cases:
        lines.append(f"set-up {c.name}: transfer matrix {c.setup_s:.3f} s, conversion + converted transfer matrix "
                     f"{c.conversion_s:.3f} s, {c.V_test.shape[0] + c.V_calibration.shape[0]} vectors x 2 arrays "
                     f"solved in {c.solve_s:.3f} s")
    lines += [
        "",
        "Relative error against the ideal product V @ G (|error| / range of the column's ideal outputs),",
        f"on {result.cases[0].V_test.shape[0]} held-out random inputs in [0, {V_MAX:g}] V; G uniform in "
        f"[{G_MIN * 1e6:.2f}, {G_MAX * 1e6:.1f}] uS;",
        f"conversion signal all-{CONVERSION_AMPLITUDE:g} (x {V_MAX:g} V); calibration per column on "
        f"{N_CALIBRATION} other inputs.",
        f"{'array, wires':<18} {'method':<26} {'mean':>10} {'worst':>10}",
    ]
    for c in result.cases:
        for r in c.rows:
            lines.append(f"{c.name:<18} {r.method:<26} {r.mean_relative_error:>10.4%} {r.worst_relative_error:>10.4%}")
    lines.append("(conversion needs G' up to " + ", ".join(f"{c.g_prime_ratio:.2f} x 1/R_on ({c.name})" for c in result.cases) + ")")
    inf = result.infeasible
    lines += ["", f"The paper's 576x64 at 1-ohm wires: {inf.n_nonpositive / inf.g_prime.size:.1%} of the cells cannot be "
                  f"converted (they need a memristor voltage <= 0); {inf.report()}"]
    s = result.spice
    if s is not None:
        if s.skipped:
            lines.append(f"ngspice: {s.skipped}")
        else:
            lines.append(f"ngspice spot check ({s.array}, 1 vector): max |difference| / max |I| = {s.max_relative_difference:.1e}; "
                         f"ngspice {s.ngspice_s:.3f} s, xbarsolve {s.ours_s * 1e3:.2f} ms "
                         f"({s.ngspice_s / s.ours_s:.0f}x faster)")
    return "\n".join(lines)


def write_figure(result: DemoResult, path: str | Path) -> Path:
    """Cell-voltage map of the plain 144 x 16 array beside the error histograms (before and
    after conversion and calibration) of each array; written as a PNG at 110 dpi."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    cases = result.cases
    fig, axes = plt.subplots(1, 1 + len(cases), figsize=(5.0 * (1 + len(cases)), 4.4),
                             gridspec_kw={"width_ratios": [0.8] + [1.0] * len(cases)})
    ax = axes[0]
    v = result.cell_voltages
    im = ax.imshow(v, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel("column j")
    ax.set_ylabel("row i")
    ax.set_title(f"cell voltage, plain {cases[0].name}\n(all inputs at {V_MAX:g} V)", fontsize=10)
    fig.colorbar(im, ax=ax, label="V(row node) - V(column node) (V)")
    colors = {"plain": "tab:red", "conversion": "tab:blue", "conversion + calibration": "tab:green"}
    styles = {"plain": "-", "conversion": "--", "conversion + calibration": "-"}
    for ax, case in zip(axes[1:], cases):
        rel = {k: np.maximum(r.ravel(), 1e-12) for k, r in case.relative.items()}
        lo = max(1e-9, min(np.quantile(r, 0.001) for r in rel.values()))
        hi = max(r.max() for r in rel.values())
        bins = np.logspace(np.log10(lo), np.log10(hi * 1.01), 60)
        for row in case.rows:
            ax.hist(rel[row.method], bins=bins, histtype="step", lw=1.6, color=colors[row.method], ls=styles[row.method],
                    zorder=3 if row.method == "conversion" else 2,  # dashed on top of the line it overlaps
                    label=f"{row.method} (mean {100 * row.mean_relative_error:.3g} %)")
        ax.set_xscale("log")
        ax.set_xlabel("relative error (|error| / output range)")
        ax.set_ylabel("outputs per bin")
        ax.set_title(f"{case.name} wires, {case.V_test.shape[0]} held-out inputs", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".part.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
