"""Least-squares fitting of unknown parasitics to measured column currents.

:func:`fit_parasitics` minimises ``sum ((I_model(theta) - I_measured) / sigma)^2`` over the
logarithms of the chosen resistances with :func:`scipy.optimize.least_squares` (trust
region reflective, bounds respected), using the exact adjoint Jacobian of
:mod:`.sensitivity`.  At the optimum it reports, per parameter, the estimate, its standard
error from the Gauss-Newton covariance ``s^2 (J^T J)^-1`` and a verdict on whether the data
determine it; the singular values of the column-scaled Jacobian give the condition number
and the directions the data cannot see (for example ``r_in`` against ``r_out`` when both
always carry the same current: then only their sum is determined).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np

from ..crossbar import Crossbar
from .schema import Measurement
from .sensitivity import column_current_sensitivities, parameter_values, with_parameters

__all__ = ["FitResult", "ParameterEstimate", "fit_parasitics"]

Verdict = Literal["identified", "poorly identified", "not identifiable", "at bound"]


@dataclass(frozen=True)
class ParameterEstimate:
    """One fitted parameter.

    Attributes
    ----------
    name : str
        Parameter name (``r_row``, ``r_col``, ``r_in``, ``r_out``, ``r_on``, ``a``, ``kp``
        or ``vto``).
    value : float
        Estimate (ohm for resistances; 1/V, A/V^2, V for ``a``, ``kp``, ``vto``).  For a parameter that is not identifiable this is one point of a
        set of equally good values, not a measurement.
    stderr : float
        Standard error (units of ``value``), ``inf`` when the data do not determine it.
    initial : float
        Starting (nominal) value (units of ``value``).
    verdict : str
        ``"identified"`` (relative standard error <= ``rel_tol``), ``"poorly identified"``
        (larger, but below 100 %), ``"not identifiable"`` (in a direction the data cannot
        see, or uncertainty above 100 %) or ``"at bound"`` (stopped at a bound; the
        standard error then means little).
    note : str
        Plain-language explanation of the verdict.
    """

    name: str
    value: float
    stderr: float
    initial: float
    verdict: str
    note: str = ""

    @property
    def relative_stderr(self) -> float:
        """``stderr / |value|`` (dimensionless)."""
        return self.stderr / abs(self.value) if self.value else float("inf")

    @property
    def identified(self) -> bool:
        """True when the verdict is ``"identified"``."""
        return self.verdict == "identified"


@dataclass(frozen=True, eq=False)
class FitResult:
    """Result of :func:`fit_parasitics`.

    Attributes
    ----------
    crossbar : Crossbar
        The model with the fitted parameters.
    estimates : tuple of ParameterEstimate
        One per fitted parameter, in the order asked.
    residuals : ndarray, shape (k, n)
        ``I_model - I_measured`` at the optimum (A).
    sigma : float
        Noise scale used to weight the residuals (A): the file's ``noise_rms`` when known,
        else the rms residual at the optimum.
    condition_number : float
        Ratio of the largest to the smallest singular value of the Jacobian with respect to
        the log-parameters, columns scaled to unit norm (``inf`` when rank deficient).
    singular_values : ndarray
        Those singular values, largest first.
    null_directions : ndarray, shape (q, p)
        Directions of (relative) parameter change the data cannot see, rows of unit norm in
        log-parameter space; empty when the problem is well posed.
    correlation : ndarray, shape (p, p)
        Correlation matrix of the estimates (NaN where undetermined).
    nfev : int
        Model evaluations.
    status : int
        :func:`scipy.optimize.least_squares` status.
    message : str
        Its message.
    """

    crossbar: Crossbar
    estimates: tuple[ParameterEstimate, ...]
    residuals: np.ndarray
    sigma: float
    condition_number: float
    singular_values: np.ndarray
    null_directions: np.ndarray
    correlation: np.ndarray
    nfev: int
    status: int
    message: str

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the fitted parameters."""
        return tuple(e.name for e in self.estimates)

    @property
    def values(self) -> dict[str, float]:
        """Estimates by name (ohm)."""
        return {e.name: e.value for e in self.estimates}

    @property
    def stderrs(self) -> dict[str, float]:
        """Standard errors by name (ohm)."""
        return {e.name: e.stderr for e in self.estimates}

    @property
    def rms_residual(self) -> float:
        """Root-mean-square residual (A)."""
        return float(np.sqrt(np.mean(self.residuals**2)))

    def __getitem__(self, name: str) -> ParameterEstimate:
        for e in self.estimates:
            if e.name == name:
                return e
        raise KeyError(f"{name!r} was not fitted; fitted: {self.params}")

    def summary(self) -> str:
        """A table of the estimates, standard errors and verdicts."""
        lines = [f"{'parameter':<10}{'initial':>12}{'estimate':>14}{'std. error':>14}{'rel.':>9}  verdict"]
        for e in self.estimates:
            rel = f"{100 * e.relative_stderr:8.2f}%" if np.isfinite(e.relative_stderr) else f"{'inf':>9}"
            lines.append(f"{e.name:<10}{e.initial:>12.5g}{e.value:>14.6g}{e.stderr:>14.3g}{rel}  {e.verdict}")
            if e.note:
                lines.append(f"{'':<10}  {e.note}")
        lines.append(f"rms residual {self.rms_residual:.4g} A (noise scale {self.sigma:.4g} A); "
                     f"condition number {self.condition_number:.3g}; {self.nfev} evaluations")
        return "\n".join(lines)


#: Unit of each fittable parameter, for messages.
_UNIT = {"r_row": "ohm", "r_col": "ohm", "r_in": "ohm", "r_out": "ohm", "r_on": "ohm", "a": "1/V", "kp": "A/V^2", "vto": "V"}


def _bounds(bounds, params, init) -> tuple[np.ndarray, np.ndarray]:
    lo = np.empty(len(params))
    hi = np.empty(len(params))
    bounds = dict(bounds or {})
    for k in bounds:
        if k not in params:
            raise ValueError(f"bounds: {k!r} is not among the fitted params {params}")
    for a, p in enumerate(params):
        low, high = bounds.get(p, (init[p] / 100.0, init[p] * 100.0))
        unit = _UNIT.get(p, "")
        if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):
            raise ValueError(f"bounds[{p!r}] must be finite with 0 < low < high ({unit}); got ({low!r}, {high!r})")
        if not low <= init[p] <= high:
            raise ValueError(f"bounds[{p!r}] = ({low:g}, {high:g}) {unit} must contain the initial value {init[p]:g} {unit}")
        lo[a], hi[a] = np.log(low), np.log(high)
    return lo, hi


def fit_parasitics(
    measured: Measurement,
    params: Sequence[str] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    *,
    initial: Mapping[str, float] | None = None,
    vectors=None,
    rel_tol: float = 0.1,
    rcond: float = 1e-8,
    xtol: float = 1e-10,
    max_nfev: int = 50,
    model: Crossbar | None = None,
) -> FitResult:
    """Fit unknown parasitic resistances to measured column currents.

    Parameters
    ----------
    measured : Measurement
        The measurement (see :mod:`xbarsolve.validation.schema`); its conductance map and
        nominal resistances define the model.
    params : sequence of str, optional
        Parameters to fit, from ``("r_row", "r_col", "r_in", "r_out", "r_on")`` and, with a
        nonlinear ``model``, ``("a", "kp", "vto")``; default: every parameter of the model
        the file does not list as ``known``.
    bounds : mapping, optional
        ``name -> (low, high)`` in ohm, ``0 < low < high``; default a factor 100 either
        side of the initial value.
    initial : mapping, optional
        Starting values (ohm); default the file's nominal values.
    vectors : index, slice or None
        Fit on these input vectors only (the rest can serve to test the prediction).
    rel_tol : float
        Largest relative standard error (dimensionless) for the verdict ``"identified"``.
    rcond : float
        Singular values of the column-scaled Jacobian below ``rcond`` times the largest
        mark directions the data cannot see.
    xtol : float
        Relative step tolerance of the optimiser (on the log-parameters).
    max_nfev : int
        Most model evaluations.
    model : Crossbar, optional
        Circuit model to fit instead of the file's linear one (its conductances are
        replaced by the measured map): e.g. a :class:`~xbarsolve.devices.Sinh` memristor
        or a :class:`~xbarsolve.transistors.Level1` transistor, whose ``a``, ``kp`` and
        ``vto`` (> 0) can then be fitted too; starting values are the model's own.
        Nonlinear models cost one sparse LU per vector and evaluation.

    Returns
    -------
    FitResult

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> from xbarsolve.validation import Measurement
    >>> rng = np.random.default_rng(0)
    >>> G = rng.uniform(5e-6, 60e-6, (16, 8)); V = rng.uniform(0, 0.3, (20, 16))
    >>> chip = xs.Crossbar(G, r_row=2.5, r_col=1.5, r_in=10.0, r_out=10.0)
    >>> meas = Measurement(G, V, xs.solve(chip, V).currents, r_row=1.0, r_col=1.0, r_in=10.0,
    ...                    r_out=10.0, known=("r_in", "r_out"))
    >>> fit = xs.fit_parasitics(meas)
    >>> round(fit["r_row"].value, 6), round(fit["r_col"].value, 6)
    (2.5, 1.5)
    """
    from scipy.optimize import least_squares

    if not isinstance(measured, Measurement):
        raise TypeError(f"measured must be a validation.Measurement; got {type(measured).__name__}")
    if model is None:
        init = dict(measured.nominal)
        base_model = measured.crossbar()
    else:
        if not isinstance(model, Crossbar) or model.shape != measured.shape:
            raise ValueError(f"model must be a Crossbar of the measured shape {measured.shape}; got {model!r:.80}")
        base_model = model.with_conductances(measured.conductance)
        init = parameter_values(base_model)
    if params is None:
        params = [p for p in init if p not in measured.known]
    params = tuple(params)
    available = tuple(init)
    for p in params:
        if p not in available:
            raise ValueError(f"params: {p!r} is not a parameter of this {measured.cell if model is None else 'model'} "
                             f"array; allowed: {available}")
    if not params:
        raise ValueError("params is empty: nothing to fit (every resistance is known)")
    if not 0 < rel_tol:
        raise ValueError(f"rel_tol must be > 0; got {rel_tol!r}")
    for k, v in dict(initial or {}).items():
        if k not in init:
            raise ValueError(f"initial: unknown parameter {k!r}; allowed: {available}")
        init[k] = float(v)
    for p in params:
        if not init[p] > 0:
            raise ValueError(f"initial value of {p} must be > 0 ohm to fit it on a log scale; got {init[p]!r}")
    lo, hi = _bounds(bounds, params, init)
    base = with_parameters(base_model, {p: init[p] for p in params})
    V = measured.inputs if vectors is None else measured.inputs[vectors]
    I_meas = measured.currents if vectors is None else measured.currents[vectors]
    if V.ndim != 2 or V.shape[0] < 1:
        raise ValueError("vectors must select at least one input vector")
    scale = measured.noise_rms if measured.noise_rms else float(np.std(I_meas)) or 1.0

    cache: dict = {}

    def evaluate(x):
        key = x.tobytes()
        if key not in cache:
            cache.clear()
            values = dict(zip(params, np.exp(x)))
            s = column_current_sensitivities(with_parameters(base, values), V, params)
            cache[key] = s
        return cache[key]

    def fun(x):
        return ((evaluate(x).currents - I_meas) / scale).ravel()

    def jac(x):
        # d/dlog(r) = r d/dr
        return (evaluate(x).jacobian * np.exp(x)).reshape(-1, len(params)) / scale

    x0 = np.log([init[p] for p in params])
    sol = least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac", xtol=xtol,
                        ftol=1e-12, gtol=1e-12, max_nfev=max_nfev)
    x = sol.x
    values = dict(zip(params, np.exp(x)))
    fitted = with_parameters(base, values)
    s = evaluate(x)
    residuals = s.currents - I_meas
    J = (s.jacobian * np.exp(x)).reshape(-1, len(params))  # A per unit log-parameter
    N, P = J.shape
    dof = max(N - P, 1)
    sigma = measured.noise_rms if measured.noise_rms else float(np.sqrt(np.sum(residuals**2) / dof))
    # Noise variance for the covariance: from the residuals (honest when the model misfits).
    s2 = float(np.sum(residuals**2) / dof)
    norms = np.linalg.norm(J, axis=0)
    norms_safe = np.where(norms > 0, norms, 1.0)
    Js = J / norms_safe
    _, sv, Vt = np.linalg.svd(Js, full_matrices=False)
    small = sv <= rcond * sv[0] if sv[0] > 0 else np.ones_like(sv, bool)
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 and not small.any() else float("inf")
    null = Vt[small]
    # Covariance of the log-parameters on the identifiable subspace (pseudo-inverse).
    keep = ~small
    cov_s = (Vt[keep].T / sv[keep] ** 2) @ Vt[keep] * s2
    cov = cov_s / np.outer(norms_safe, norms_safe)
    se_log = np.sqrt(np.clip(np.diag(cov), 0, None))
    in_null = (np.abs(null) > 0.1).any(axis=0) if null.size else np.zeros(P, bool)
    in_null |= norms == 0
    se_log = np.where(in_null, np.inf, se_log)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    corr[in_null, :] = np.nan
    corr[:, in_null] = np.nan

    estimates = []
    for a, p in enumerate(params):
        value = float(values[p])
        # Delta method: se(r) = r se(log r) for small errors; exact bounds would be exp(x +- se).
        se = float(value * se_log[a]) if np.isfinite(se_log[a]) else float("inf")
        rel = se / value
        note = ""
        if in_null[a]:
            verdict = "not identifiable"
            note = _null_note(a, params, null, values, norms)
        elif sol.active_mask[a] != 0:
            verdict = "at bound"
            side = "lower" if sol.active_mask[a] < 0 else "upper"
            limit = np.exp(lo[a] if sol.active_mask[a] < 0 else hi[a])
            note = (f"stopped at the {side} bound {limit:.4g} {_UNIT.get(p, '')}; widen bounds or fix it "
                    f"(parameters at their bounds often mean the data's units are off)")
        elif rel > 1.0:
            verdict = "not identifiable"
            note = f"relative standard error {100 * rel:.0f} % exceeds 100 %: the data do not constrain it at this noise level"
        elif rel > rel_tol:
            verdict = "poorly identified"
            note = f"relative standard error {100 * rel:.1f} % exceeds rel_tol = {100 * rel_tol:.3g} %"
        else:
            verdict = "identified"
        estimates.append(ParameterEstimate(p, value, se, float(init[p]), verdict, note))
    return FitResult(
        crossbar=fitted, estimates=tuple(estimates), residuals=residuals, sigma=float(sigma),
        condition_number=cond, singular_values=sv, null_directions=null, correlation=corr,
        nfev=int(sol.nfev), status=int(sol.status), message=str(sol.message),
    )


def _null_note(a: int, params, null: np.ndarray, values: dict, norms: np.ndarray) -> str:
    if norms[a] == 0:
        return "the measured currents do not depend on it at all"
    # Null direction in ohm: d r_i = r_i d(log r_i) = r_i u_i / ||J_i||.
    for u in null:
        if abs(u[a]) <= 0.1:
            continue
        dr = np.array([values[p] * u[i] / (norms[i] if norms[i] else 1.0) for i, p in enumerate(params)])
        dr /= np.max(np.abs(dr))
        involved = [i for i in range(len(params)) if abs(dr[i]) > 0.05]
        if len(involved) == 2:
            i, j = involved
            # The data see the combination orthogonal to the null direction.
            ci, cj = abs(dr[j]), abs(dr[i])
            sign = "+" if dr[i] * dr[j] < 0 else "-"
            ci, cj = ci / max(ci, cj), cj / max(ci, cj)
            combo = f"{'' if np.isclose(ci, 1) else f'{ci:.3g}*'}{params[i]} {sign} {'' if np.isclose(cj, 1) else f'{cj:.3g}*'}{params[j]}"
            return f"only {combo} is determined by these data (they trade off exactly)"
        names = ", ".join(f"{dr[i]:+.2f} {params[i]}" for i in involved)
        return f"the currents do not change along ({names}); only combinations across that direction are determined"
    return "not determined by these data"
