"""Adjoint sensitivities against finite differences; the fitter on exact data; identifiability."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.transistors import Resistor
from xbarsolve.validation import Measurement, column_current_sensitivities, fit_parasitics
from xbarsolve.validation.sensitivity import PARAMETERS, with_parameters


def _fd(xbar, V, name, rel=1e-2):
    """Five-point central difference (truncation ~rel^4, well below 1e-6 at rel = 1e-2)."""
    value = xs.validation.sensitivity.parameter_values(xbar)[name]
    h = rel * value

    def f(d):
        # Shift every branch of the family by d, as the adjoint derivative is defined.
        if name == "r_on":
            return xs.solve(with_parameters(xbar, {"r_on": value + d}), V, method="sparse").currents
        changed = xs.Crossbar(**{**{k: getattr(xbar, k) for k in ("G", "r_row", "r_col", "r_in", "r_out", "drive",
                                                                     "sense", "transistor")},
                                 name: np.asarray(getattr(xbar, name)) + d})
        return xs.solve(changed, V, method="sparse").currents

    return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)


@pytest.mark.parametrize("k", [3, 12])  # 12 > m: the transfer-matrix path
@pytest.mark.parametrize("drive, sense", [("left", "bottom"), ("right", "top"), ("both", "both"), ("left", "both")])
def test_sensitivities_match_finite_differences(rng, drive, sense, k):
    m, n = 7, 5
    G = rng.uniform(3e-6, 67e-6, (m, n))
    G[2, 3] = 0.0  # an open cell
    xbar = xs.Crossbar(G, r_row=rng.uniform(0.5, 2.0, (m, n - 1)), r_col=1.7, r_in=rng.uniform(5, 20, m),
                       r_out=15.0, drive=drive, sense=sense, transistor=Resistor(2e3))
    V = rng.uniform(0, 0.4, (k, m))
    s = column_current_sensitivities(xbar, V, PARAMETERS)
    np.testing.assert_allclose(s.currents, xs.solve(xbar, V).currents, rtol=1e-12)
    for a, name in enumerate(PARAMETERS):
        fd = _fd(xbar, V, name)
        err = np.max(np.abs(fd - s.jacobian[:, :, a])) / np.max(np.abs(fd))
        assert err < 1e-6, (name, err)


def test_total_current_falls_with_driver_and_sense_resistance(rng):
    # One source: by Rayleigh monotonicity the total current cannot rise with any resistance.
    # (Per column it can: a longer row wire can raise the nearest column's current.)
    xbar = xs.Crossbar(rng.uniform(5e-6, 60e-6, (8, 6)), r_row=1.0, r_col=1.0, r_in=3.0, r_out=3.0,
                       transistor=Resistor(1e3))
    V = np.zeros((1, 8))
    V[0, 3] = 0.3
    s = column_current_sensitivities(xbar, V, PARAMETERS)
    assert (s.jacobian.sum(axis=1) < 0).all()


def test_sensitivity_argument_errors(rng):
    xbar = xs.Crossbar(np.full((3, 3), 1e-5))
    with pytest.raises(ValueError, match="'r_on' needs a transistors.Resistor"):
        column_current_sensitivities(xbar, np.ones(3) * 0.1, ["r_on"])
    with pytest.raises(ValueError, match="unknown parameter 'r_foo'"):
        column_current_sensitivities(xbar, np.ones(3) * 0.1, ["r_foo"])


def _exact_measurement(rng, m=16, n=8, k=30, **true):
    G = rng.uniform(5e-6, 60e-6, (m, n))
    V = rng.uniform(0, 0.3, (k, m))
    hidden = dict(r_row=2.5, r_col=1.5, r_in=12.0, r_out=7.0, r_on=1500.0)
    hidden.update(true)
    chip = xs.Crossbar(G, transistor=Resistor(hidden.pop("r_on")), **hidden)
    return Measurement(G, V, xs.solve(chip, V).currents, r_row=1.0, r_col=1.0, r_in=5.0, r_out=5.0, r_on=1e3)


def test_fit_recovers_exact_parameters(rng):
    meas = _exact_measurement(rng)
    fit = fit_parasitics(meas)
    truth = dict(r_row=2.5, r_col=1.5, r_in=12.0, r_out=7.0, r_on=1500.0)
    for name, value in truth.items():
        assert fit[name].value == pytest.approx(value, rel=1e-7), name
        assert fit[name].verdict == "identified"
    assert fit.rms_residual < 1e-12 * np.abs(meas.currents).max()
    assert np.isfinite(fit.condition_number)
    np.testing.assert_allclose(xs.solve(fit.crossbar, meas.inputs).currents, meas.currents, rtol=1e-8)


def test_fit_respects_known_and_bounds(rng):
    meas = _exact_measurement(rng)
    meas = Measurement(**{**{f: getattr(meas, f) for f in ("conductance", "inputs", "currents", "r_row", "r_col",
                                                           "r_on")}, "r_in": 12.0, "r_out": 7.0,
                          "known": ("r_in", "r_out")})
    fit = fit_parasitics(meas)
    assert fit.params == ("r_row", "r_col", "r_on")
    with pytest.raises(ValueError, match=r"bounds\['r_row'\].*must contain the initial value"):
        fit_parasitics(meas, params=["r_row"], bounds={"r_row": (2.0, 3.0)})
    with pytest.raises(ValueError, match="not a parameter of this 1T1R array"):
        fit_parasitics(meas, params=["r_gate"])
    # A bound that excludes the truth: the estimate stops there and says so.
    fit = fit_parasitics(meas, params=["r_row", "r_col", "r_on"], bounds={"r_row": (0.5, 2.0)})
    assert fit["r_row"].verdict == "at bound" and fit["r_row"].value == pytest.approx(2.0)


def test_sum_only_parameters_are_reported_not_identifiable(rng):
    # One conducting cell: r_in and r_out carry the same current, only their sum matters.
    G = np.zeros((4, 4))
    G[1, 2] = 40e-6
    chip = xs.Crossbar(G, r_row=2.5, r_col=1.5, r_in=300.0, r_out=200.0)
    V = rng.uniform(0.05, 0.3, (10, 4))
    noise = 1e-10
    I = xs.solve(chip, V).currents + rng.normal(0, noise, (10, 4))
    meas = Measurement(G, V, I, r_row=2.5, r_col=1.5, r_in=250.0, r_out=150.0, known=("r_row", "r_col"),
                       noise_rms=noise)
    fit = fit_parasitics(meas)
    for name in ("r_in", "r_out"):
        assert fit[name].verdict == "not identifiable"
        assert fit[name].stderr == np.inf
        assert "only r_in + r_out is determined" in fit[name].note
    assert fit.condition_number == np.inf and fit.null_directions.shape == (1, 2)
    # The sum itself is determined (to the noise level).
    assert fit["r_in"].value + fit["r_out"].value == pytest.approx(500.0, abs=20.0)
    assert "not identifiable" in fit.summary()


def test_weak_parameter_is_not_claimed(rng):
    # Tiny wire resistance next to large noise: the data cannot resolve r_row.
    G = rng.uniform(5e-6, 60e-6, (6, 4))
    V = rng.uniform(0.05, 0.3, (20, 6))
    chip = xs.Crossbar(G, r_row=0.01, r_col=0.01, r_in=50.0, r_out=50.0)
    noise = 1e-8
    I = xs.solve(chip, V).currents + rng.normal(0, noise, (20, 4))
    meas = Measurement(G, V, I, r_row=0.02, r_col=0.01, r_in=50.0, r_out=50.0, known=("r_col",), noise_rms=noise)
    fit = fit_parasitics(meas, params=["r_row", "r_in"])
    assert fit["r_row"].verdict in ("not identifiable", "at bound")
    assert fit["r_in"].verdict == "identified"


@pytest.mark.parametrize(
    "transistor, device",
    [(xs.transistors.Level1(), xs.devices.Sinh(a=2.0)), (Resistor(1500.0), xs.devices.Sinh(a=3.0)),
     (xs.transistors.Level1(kp=150e-6, vto=0.5), xs.devices.Linear())],
)
def test_nonlinear_sensitivities_match_finite_differences(rng, transistor, device):
    m, n = 6, 5
    xbar = xs.Crossbar(rng.uniform(3e-6, 67e-6, (m, n)), r_row=1.3, r_col=0.8, r_in=20.0, r_out=15.0,
                       transistor=transistor, device=device, sense="both")
    V = rng.uniform(0, 0.4, (3, m))
    values = xs.validation.sensitivity.parameter_values(xbar)
    s = column_current_sensitivities(xbar, V, list(values))
    np.testing.assert_allclose(s.currents, xs.solve(xbar, V, rtol=1e-12).currents, rtol=1e-9)
    for a, (name, value) in enumerate(values.items()):
        h = 1e-2 * abs(value)

        def f(d):
            return column_current_sensitivities(with_parameters(xbar, {name: value + d}), V, [name]).currents

        fd = (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)
        err = np.max(np.abs(fd - s.jacobian[:, :, a])) / np.max(np.abs(fd))
        assert err < 1e-6, (name, err)


def test_fit_nonlinear_device_parameter(rng):
    m, n, k = 8, 6, 16
    G = rng.uniform(5e-6, 60e-6, (m, n))
    V = rng.uniform(0, 0.4, (k, m))
    truth = xs.Crossbar(G, r_row=2.0, r_col=1.5, r_in=10.0, r_out=8.0, device=xs.devices.Sinh(a=3.0))
    noise = 1e-9
    I = xs.solve(truth, V, rtol=1e-12).currents + rng.normal(0, noise, (k, n))
    meas = Measurement(G, V, I, r_row=1.0, r_col=1.0, r_in=10.0, r_out=8.0, known=("r_in", "r_out"), noise_rms=noise)
    model = xs.Crossbar(G, r_row=1.0, r_col=1.0, r_in=10.0, r_out=8.0, device=xs.devices.Sinh(a=2.0))
    fit = fit_parasitics(meas, model=model)
    assert fit.params == ("r_row", "r_col", "a")
    for name, true in (("r_row", 2.0), ("r_col", 1.5), ("a", 3.0)):
        assert abs(fit[name].value - true) < 4 * fit[name].stderr, fit.summary()
    assert fit["a"].verdict == "identified"
    assert fit.rms_residual < 1.5 * noise
