"""The validation report: ``xbarsolve validate FILE.h5 [--out DIR]``.

1. Fit the unknown parasitics (:func:`~xbarsolve.validation.fit_parasitics`) on a
   training share of the measured vectors.
2. Compare three models with the measurement, on the held-out vectors and on all:
   (a) the ideal product ``V @ G``, (b) the circuit with the file's nominal resistances,
   (c) the fitted circuit.  Errors: rms (A), rms over the file's noise floor, and the
   paper's mean relative error (|simulated - measured| over the range of the measured
   column); per column, per input vector, and residual maps.
3. The closed loop: conversion ``G -> G'`` computed on the fitted model (and, for
   comparison, on the nominal one), programmed into the chip, read with the chip's own
   read-out, calibrated per column on 10 shuffled samples; the mean relative error against
   the ideal product before (plain linear mapping: program ``G``, read) and after.

What "the chip" is.  A real chip cannot be reprogrammed from a file, so for a real file
the report stops after step 2 and writes the converted map ``G'`` for the user to program.
A synthetic file carries its hidden truth (:mod:`.synthetic`), and the closed loop then
programs the hidden chip (with its programming error), solves the hidden true circuit with
**our exact solver** and passes the currents through the chip's TIA/ADC model.  We use our
solver rather than ngspice here because it agrees with ngspice to ~1e-13 relative on linear
arrays (``docs/spice.md``), nine orders below the read noise, while ngspice needs ~20 s per
operating point of a 128 x 64 array; the circularity that matters -- fitting our model to
data our model made -- is avoided because the *measured* currents of the file came from
ngspice.

Outputs in ``--out`` (default ``validation_<file stem>/``): ``report.txt``,
``validation.h5`` (every number and array of the report), ``scatter.png`` (simulated vs
measured currents, the paper's Fig. 7), ``errors.png`` (per column and per input),
``residuals.png`` (residual maps) and ``closed_loop.png``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fit import FitResult, fit_parasitics
from .schema import Measurement

__all__ = ["ValidationReport", "ModelError", "ClosedLoop", "validate", "add_validate_arguments", "validate_main"]


@dataclass(frozen=True, eq=False)
class ModelError:
    """Error of one model against the measured currents.

    Attributes
    ----------
    name : str
        ``"ideal"``, ``"nominal"`` or ``"fitted"``.
    simulated : ndarray, shape (k, n)
        Model column currents (A) for every measured vector.
    error : ndarray, shape (k, n)
        ``simulated - measured`` (A).
    test : ndarray of bool, shape (k,)
        Held-out vectors (not used by the fit).
    column_range : ndarray, shape (n,)
        Range of the measured currents of each column (A), the metric's denominator.
    """

    name: str
    simulated: np.ndarray
    error: np.ndarray
    test: np.ndarray
    column_range: np.ndarray

    def rms(self, subset: str = "test") -> float:
        """RMS error (A) over ``"test"`` (held-out) or ``"all"`` vectors."""
        e = self.error[self.test] if subset == "test" else self.error
        return float(np.sqrt(np.mean(e**2)))

    def mean_relative_error(self, subset: str = "test") -> float:
        """Mean of ``|error| / column range`` (dimensionless), the paper's metric."""
        e = self.error[self.test] if subset == "test" else self.error
        return float(np.mean(np.abs(e) / self.column_range))

    @property
    def per_column_rms(self) -> np.ndarray:
        """RMS error of each column over all vectors (A), shape (n,)."""
        return np.sqrt(np.mean(self.error**2, axis=0))

    @property
    def per_input_rms(self) -> np.ndarray:
        """RMS error of each input vector over the columns (A), shape (k,)."""
        return np.sqrt(np.mean(self.error**2, axis=1))


@dataclass(frozen=True, eq=False)
class ClosedLoop:
    """Measured mean relative errors (dimensionless) of the chip against the ideal product.

    Attributes
    ----------
    mean_relative_error : dict
        Strategy -> mean relative error over the evaluation vectors: ``"plain"`` (program
        ``G``, read), ``"calibration"`` (plain + per-column calibration),
        ``"conversion (nominal)"``, ``"conversion (nominal) + calibration"``,
        ``"conversion (fitted)"`` and ``"conversion (fitted) + calibration"`` (conversion
        computed on the nominal or the fitted model).
    worst_relative_error : dict
        The same strategies -> worst relative error.
    n_clipped : int
        Cells whose ``G'`` (fitted model) left the programmable range and were clipped.
    g_prime : ndarray, shape (m, n)
        Converted conductances from the fitted model (S).
    evaluated : ndarray of int
        Indices of the vectors the errors are measured on (calibration samples excluded).
    """

    mean_relative_error: dict
    worst_relative_error: dict
    n_clipped: int
    g_prime: np.ndarray
    evaluated: np.ndarray

    @property
    def improvement(self) -> float:
        """Plain over conversion (fitted) + calibration mean relative error."""
        return self.mean_relative_error["plain"] / self.mean_relative_error["conversion (fitted) + calibration"]


@dataclass(frozen=True, eq=False)
class ValidationReport:
    """Everything :func:`validate` computed.

    Attributes
    ----------
    measured : Measurement
    fit : FitResult
        Fitted on the training vectors (``~models["fitted"].test``).
    models : dict
        ``"ideal"``, ``"nominal"``, ``"fitted"`` -> :class:`ModelError`.
    closed_loop : ClosedLoop or None
        None for a real chip's file (no hidden chip to program).
    g_prime : ndarray, shape (m, n)
        Conversion of the measured map on the fitted model (S), to program a real chip.
    notes : list of str
        Remarks (why a step was skipped, clipping).
    """

    measured: Measurement
    fit: FitResult
    models: dict
    closed_loop: ClosedLoop | None
    g_prime: np.ndarray
    notes: list = field(default_factory=list)

    def text(self) -> str:
        """The printed report."""
        meas = self.measured
        m, n = meas.shape
        test = self.models["fitted"].test
        lines = [f"xbarsolve validation report: {meas.title or '(untitled)'}",
                 f"array {m}x{n} ({meas.cell}), {meas.n_vectors} measured vectors: {int((~test).sum())} fit, "
                 f"{int(test.sum())} held out", ""]
        lines.append("Fitted parameters")
        lines.append(self.fit.summary())
        lines.append("")
        noise = meas.noise_rms
        lines.append(f"Error against the measured column currents (held-out vectors{'' if noise is None else f'; noise floor {noise:.4g} A rms'})")
        lines.append(f"{'model':<10}{'rms error (A)':>15}{'rms / noise':>13}{'mean rel. err':>15}{'(all vectors)':>15}")
        for name in ("ideal", "nominal", "fitted"):
            e = self.models[name]
            ratio = f"{e.rms() / noise:13.3f}" if noise else f"{'n/a':>13}"
            lines.append(f"{name:<10}{e.rms():>15.4g}{ratio}{100 * e.mean_relative_error():>14.4f}%"
                         f"{100 * e.mean_relative_error('all'):>14.4f}%")
        lines.append("")
        cl = self.closed_loop
        if cl is None:
            lines.append("Closed loop: skipped (a real chip cannot be reprogrammed from a file). "
                         "validation.h5 holds g_prime, the conversion on the fitted model, to program.")
        else:
            lines.append(f"Closed loop on the hidden chip ({cl.evaluated.size} vectors, ideal product as reference)")
            for k, v in cl.mean_relative_error.items():
                lines.append(f"  {k:<38} mean {100 * v:8.4f}%   worst {100 * cl.worst_relative_error[k]:8.4f}%")
            lines.append(f"  improvement over plain linear mapping: {cl.improvement:.1f}x; "
                         f"{cl.n_clipped} cell(s) of G' clipped to the range")
        lines.extend(f"note: {x}" for x in self.notes)
        return "\n".join(lines)


def _split(k: int, holdout: float, rng: np.random.Generator) -> np.ndarray:
    test = np.zeros(k, bool)
    n_test = int(round(holdout * k))
    if n_test >= k:
        raise ValueError(f"holdout = {holdout} leaves no vector to fit on (k = {k})")
    test[rng.permutation(k)[:n_test]] = True
    if not n_test:
        test[:] = True  # nothing held out: report errors on all vectors
    return test


def validate(
    measured: Measurement,
    *,
    params=None,
    holdout: float = 0.25,
    v_conv: float = 0.1,
    n_calibration: int = 10,
    g_range: tuple[float, float] | None = None,
    headroom: float = 0.75,
    seed: int = 0,
) -> ValidationReport:
    """Fit, compare the models with the measurement, and run the closed loop.

    Parameters
    ----------
    measured : Measurement
        The file's contents.
    params : sequence of str, optional
        Parameters to fit; default every resistance the file does not list as known.
    holdout : float
        Fraction of the vectors (dimensionless, in [0, 1)) kept out of the fit to measure
        the prediction error; 0 fits and reports on all.
    v_conv : float
        Amplitude (V) of the constant conversion signal.
    n_calibration : int
        Calibration samples (>= 2), drawn from the shuffled measured inputs.
    g_range : (float, float), optional
        Programmable conductance range (S) for the conversion; default the synthetic
        chip's, else the range of the measured map.
    headroom : float
        The closed loop maps the measured conductance map linearly onto
        ``[g_min, g_min + headroom (g_max - g_min)]`` as its target weights (in (0, 1]),
        so that the conversion can raise conductances to cancel IR drop.
    seed : int
        Seed of the hold-out split, the calibration draw and the closed loop's noise.

    Returns
    -------
    ValidationReport
    """
    from .. import metrics
    from ..calibration import Calibration
    from ..conversion import constant_signal, convert
    from ..solve import solve
    from .synthetic import SyntheticChip

    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1); got {holdout!r}")
    if int(n_calibration) < 2:
        raise ValueError(f"n_calibration must be >= 2; got {n_calibration!r}")
    rng = np.random.default_rng(seed)
    k = measured.n_vectors
    test = _split(k, holdout, rng)
    train = ~test if test.sum() < k else test
    fit = fit_parasitics(measured, params=params, vectors=np.flatnonzero(train))
    V, I = measured.inputs, measured.currents
    col_range = I.max(axis=0) - I.min(axis=0)
    col_range = np.where(col_range > 0, col_range, np.max(np.abs(I)) or 1.0)
    sims = {
        "ideal": V @ measured.conductance,
        "nominal": solve(measured.crossbar(), V).currents,
        "fitted": solve(fit.crossbar, V).currents,
    }
    models = {name: ModelError(name, s, s - I, test, col_range) for name, s in sims.items()}
    notes = []
    try:
        chip = SyntheticChip.from_measurement(measured)
    except ValueError:
        chip = None
    if g_range is None:
        g_range = (chip.g_min, chip.g_max) if chip else (float(measured.conductance.min()), float(measured.conductance.max()))
    g_min, g_max = g_range
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be in (0, 1]; got {headroom!r}")
    # The weights to map: the measured map rescaled into the lower `headroom` share of the
    # range, leaving room for G' above G (IR drop and r_on ask for larger conductances).
    G = measured.conductance
    span = float(G.max() - G.min()) or 1.0
    G_target = g_min + (G - G.min()) / span * headroom * (g_max - g_min)
    signal = constant_signal(measured.shape[0], v_conv)
    conv_fit = convert(fit.crossbar.with_conductances(G_target), signal, g_min=g_min, g_max=g_max, refine=True,
                        on_clip="ignore")
    if conv_fit.n_clipped:
        notes.append(f"conversion on the fitted model clipped {conv_fit.n_clipped} cell(s) to [{g_min:.4g}, {g_max:.4g}] S")
    closed = None
    if chip is not None:
        conv_nom = convert(measured.crossbar().with_conductances(G_target), signal, g_min=g_min, g_max=g_max, refine=True,
                        on_clip="ignore")
        ideal = V @ G_target
        order = rng.permutation(k)
        cal_idx, ev = order[:n_calibration], np.sort(order[n_calibration:])
        rng_chip = np.random.default_rng(seed + 1)

        def chip_outputs(G):
            return chip.measure(chip.program(G, rng_chip), V, rng_chip, simulator="xbarsolve")

        plain = chip_outputs(G_target)
        outputs = {
            "plain": plain,
            "calibration": Calibration(per="column").fit(plain[cal_idx], ideal[cal_idx]).transform(plain),
        }
        for label, conv in (("nominal", conv_nom), ("fitted", conv_fit)):
            out = chip_outputs(conv.g_prime)
            outputs[f"conversion ({label})"] = out
            outputs[f"conversion ({label}) + calibration"] = Calibration(per="column").fit(out[cal_idx], ideal[cal_idx]).transform(out)
        rng_ideal = metrics.output_range(ideal)
        mean_e, worst_e = {}, {}
        for label, out in outputs.items():
            s = metrics.summary(out[ev], ideal[ev], rng_ideal)
            mean_e[label], worst_e[label] = s.mean_relative_error, s.worst_relative_error
        closed = ClosedLoop(mean_e, worst_e, int(conv_fit.n_clipped), np.asarray(conv_fit.g_prime), ev)
    return ValidationReport(measured, fit, models, closed, np.asarray(conv_fit.g_prime), notes)


# ----------------------------------------------------------------------------- outputs
def save_report(report: ValidationReport, out: str | os.PathLike, *, plots: bool = True) -> list[Path]:
    """Write ``report.txt``, ``validation.h5`` and (with ``plots``) the PNG figures to ``out``.

    Returns
    -------
    list of Path
        The files written.
    """
    from .._atomic import atomic_hdf5

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.txt"]
    written[0].write_text(report.text() + "\n")
    h5 = out / "validation.h5"
    fit = report.fit
    with atomic_hdf5(h5) as f:  # checksummed datasets, never half a file
        f.attrs["format"] = "xbarsolve-validation-report"
        f.attrs["format_version"] = 1
        f.attrs["report"] = report.text()
        g = f.create_group("fit")
        for e in fit.estimates:
            p = g.create_group(e.name)
            for key in ("value", "stderr", "initial"):
                p.attrs[key] = getattr(e, key)
            p.attrs["units"] = "ohm"
            p.attrs["verdict"] = e.verdict
            p.attrs["note"] = e.note
        g.attrs["condition_number"] = fit.condition_number
        g.attrs["sigma"] = fit.sigma
        _ds(g, "singular_values", fit.singular_values, "1")
        _ds(g, "correlation", fit.correlation, "1")
        _ds(f, "measured", report.measured.currents, "A")
        _ds(f, "test_vectors", report.models["fitted"].test.astype(np.int8), "1")
        for name, e in report.models.items():
            mg = f.create_group(f"models/{name}")
            _ds(mg, "simulated", e.simulated, "A")
            _ds(mg, "error", e.error, "A")
            _ds(mg, "per_column_rms", e.per_column_rms, "A")
            _ds(mg, "per_input_rms", e.per_input_rms, "A")
            mg.attrs["rms_test"] = e.rms()
            mg.attrs["mean_relative_error_test"] = e.mean_relative_error()
            mg.attrs["mean_relative_error_all"] = e.mean_relative_error("all")
        _ds(f, "g_prime", report.g_prime, "S")
        if report.closed_loop is not None:
            cg = f.create_group("closed_loop")
            for key, v in report.closed_loop.mean_relative_error.items():
                cg.attrs[f"mean_relative_error: {key}"] = v
                cg.attrs[f"worst_relative_error: {key}"] = report.closed_loop.worst_relative_error[key]
            cg.attrs["improvement"] = report.closed_loop.improvement
            cg.attrs["n_clipped"] = report.closed_loop.n_clipped
    written.append(h5)
    if plots:
        written.extend(_plots(report, out))
    return written


def _ds(group, name, data, units):
    from .._atomic import create_dataset

    ds = create_dataset(group, name, data)
    ds.attrs["units"] = units
    return ds


def _plots(report: ValidationReport, out: Path) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    I = report.measured.currents
    colors = {"ideal": "tab:red", "nominal": "tab:orange", "fitted": "tab:blue"}
    files = []

    def save(fig, name):
        FigureCanvasAgg(fig)
        path = out / name
        fig.savefig(path, dpi=110)
        files.append(path)

    # Fig. 7: simulated vs measured.
    fig = Figure(figsize=(12, 4), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    lim = [0, 1e6 * max(I.max(), max(e.simulated.max() for e in report.models.values()))]
    for ax, name in zip(axes, ("ideal", "nominal", "fitted")):
        e = report.models[name]
        ax.plot(1e6 * I.ravel(), 1e6 * e.simulated.ravel(), ".", ms=1.5, color=colors[name], rasterized=True)
        ax.plot(lim, lim, "k-", lw=0.8)
        ax.set_title(f"{name}: mean rel. err {100 * e.mean_relative_error('all'):.3g} %")
        ax.set_xlabel("measured column current (uA)")
    axes[0].set_ylabel("simulated column current (uA)")
    save(fig, "scatter.png")
    # Per-column and per-input errors.
    fig = Figure(figsize=(12, 4), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    for name, e in report.models.items():
        a1.semilogy(1e6 * e.per_column_rms, label=name, color=colors[name])
        a2.semilogy(1e6 * e.per_input_rms, ".", label=name, color=colors[name], ms=3)
    if report.measured.noise_rms:
        for ax in (a1, a2):
            ax.axhline(1e6 * report.measured.noise_rms, color="k", ls="--", lw=0.8, label="noise floor")
    a1.set_xlabel("column"); a1.set_ylabel("rms error over the input vectors (uA)")
    a2.set_xlabel("input vector"); a2.set_ylabel("rms error over the columns (uA)")
    a1.set_title("per column"); a2.set_title("per input vector")
    fig.legend(*a1.get_legend_handles_labels(), loc="outside right center", title="model")
    save(fig, "errors.png")
    # Residual maps (vectors x columns), in units of the noise floor when known.
    scale = report.measured.noise_rms or 1e-6
    unit = "multiples of the noise rms" if report.measured.noise_rms else "uA"
    fig = Figure(figsize=(12, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, name in zip(axes, ("nominal", "fitted")):
        r = report.models[name].error / scale
        v = float(np.max(np.abs(r))) or 1.0
        im = ax.imshow(r, aspect="auto", cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
        ax.set_title(f"{name} model residual ({unit})")
        ax.set_xlabel("column"); ax.set_ylabel("input vector")
        fig.colorbar(im, ax=ax, label=f"simulated - measured ({unit})")
    save(fig, "residuals.png")
    if report.closed_loop is not None:
        cl = report.closed_loop
        labels = list(cl.mean_relative_error)
        fig = Figure(figsize=(8, 1.2 + 0.45 * len(labels)), layout="constrained")
        ax = fig.subplots()
        y = np.arange(len(labels))[::-1]  # first method on top
        mean = [100 * cl.mean_relative_error[x] for x in labels]
        worst = [100 * cl.worst_relative_error[x] for x in labels]
        ax.barh(y, mean, color="tab:blue", label="mean")
        ax.plot(worst, y, "kd", label="worst")
        for yi, m_, w_ in zip(y, mean, worst):
            ax.annotate(f"{m_:.3g} % / {w_:.3g} %", (w_, yi), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize=8)
        ax.set_yticks(y, labels)
        ax.set_xscale("log"); ax.set_xlabel("relative error (% of the output range), mean / worst")
        ax.set_xlim(0.5 * min(mean), 6 * max(worst))
        ax.legend(loc="lower right")
        ax.set_title(f"closed loop on the chip: {cl.improvement:.1f}x better than plain mapping", fontsize=10)
        save(fig, "closed_loop.png")
    return files


# ---------------------------------------------------------------------------------- CLI
def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xbarsolve validate``."""
    parser.add_argument("file", help="measured-array HDF5 file (format xbarsolve-measured-array)")
    parser.add_argument("--out", help="output folder (default validation_<file stem>)")
    parser.add_argument("--params", help="comma-separated parameters to fit (default: those the file does not mark known)")
    parser.add_argument("--holdout", type=float, default=0.25, help="fraction of vectors held out of the fit (default 0.25)")
    parser.add_argument("--v-conv", type=float, default=0.1, help="conversion signal amplitude in V (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, calibration draw and chip noise")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")


def validate_main(args: argparse.Namespace) -> int:
    """Run ``xbarsolve validate``; returns the exit status (2 on an unreadable file)."""
    import sys

    from ..errors import FormatError

    try:
        measured = Measurement.load(args.file)
    except FormatError as exc:
        print(f"xbarsolve validate: {exc}", file=sys.stderr)
        return 2
    params = [p.strip() for p in args.params.split(",")] if args.params else None
    report = validate(measured, params=params, holdout=args.holdout, v_conv=args.v_conv, seed=args.seed)
    out = Path(args.out) if args.out else Path(f"validation_{Path(args.file).stem}")
    files = save_report(report, out, plots=not args.no_plots)
    print(report.text())
    print("\nwrote " + ", ".join(str(p) for p in files))
    return 0
