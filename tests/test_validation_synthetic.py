"""The fitter and the report on the stored synthetic (ngspice-generated) measurement files.

Tolerances: the issue's targets (wire 2 %, R_in/R_out 5 %, r_on 5 %, prediction within
1.5x the injected noise floor, closed loop >= 5x).  The stated noise of the files is the
TIA noise plus uniform ADC quantization (``noise_rms`` in the file); with 12 800 readings
the parameter standard errors are well inside these bounds (the fit reports them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.validation import Measurement, fit_parasitics
from xbarsolve.validation.synthetic import SyntheticChip, generate, ngspice_transfer_matrix

DATA = Path(__file__).resolve().parents[1] / "validation_data" / "measured"
FILE64 = DATA / "synthetic_64x64.h5"
FILE128 = DATA / "synthetic_128x64.h5"


def _load(path: Path) -> Measurement:
    assert path.is_file(), f"{path} is missing: run validation_data/measured/make_synthetic.py --all"
    return Measurement.load(path)


@pytest.fixture(scope="module")
def meas64() -> Measurement:
    return _load(FILE64)


@pytest.fixture(scope="module", params=[FILE64, FILE128], ids=["64x64", "128x64"])
def synthetic(request) -> tuple[Measurement, SyntheticChip]:
    meas = _load(request.param)
    return meas, SyntheticChip.from_measurement(meas)


@pytest.mark.parametrize("path, shape", [(FILE64, (64, 64)), (FILE128, (128, 64))])
def test_files_are_marked_synthetic_and_small(path, shape):
    meas = _load(path)
    assert "SYNTHETIC" in meas.title and meas.synthetic is not None
    assert path.stat().st_size < 2e6
    assert meas.shape == shape and meas.n_vectors == 200


def test_fit_recovers_hidden_parameters(synthetic):
    meas64, chip64 = synthetic
    fit = fit_parasitics(meas64)
    for name, tol in (("r_row", 0.02), ("r_col", 0.02), ("r_in", 0.05), ("r_out", 0.05), ("r_on", 0.05)):
        true = getattr(chip64, name)
        assert fit[name].value == pytest.approx(true, rel=tol), (name, fit[name].value, true)
        assert fit[name].verdict == "identified", fit.summary()
        # The reported uncertainty is honest: the truth lies within 4 standard errors.
        assert abs(fit[name].value - true) < 4 * fit[name].stderr, (name, fit.summary())
    # The nominal values were far off: the test could fail.
    assert abs(meas64.r_on - chip64.r_on) / chip64.r_on > 0.2


def test_prediction_error_within_noise_floor(synthetic):
    meas64, _ = synthetic
    rng = np.random.default_rng(0)
    order = rng.permutation(meas64.n_vectors)
    train, test = order[:150], order[150:]
    fit = fit_parasitics(meas64, vectors=train)
    err = xs.solve(fit.crossbar, meas64.inputs[test]).currents - meas64.currents[test]
    rms = np.sqrt(np.mean(err**2))
    assert rms < 1.5 * meas64.noise_rms, (rms, meas64.noise_rms)
    nominal = xs.solve(meas64.crossbar(), meas64.inputs[test]).currents - meas64.currents[test]
    assert np.sqrt(np.mean(nominal**2)) > 5 * meas64.noise_rms  # the nominal model does not explain the chip


def test_cli_report_and_closed_loop(meas64, tmp_path):
    import h5py

    from xbarsolve.cli import main

    out = tmp_path / "report"
    assert main(["validate", str(FILE64), "--out", str(out)]) == 0
    for name in ("report.txt", "validation.h5", "scatter.png", "errors.png", "residuals.png", "closed_loop.png"):
        assert (out / name).is_file(), name
    with h5py.File(out / "validation.h5") as f:
        cl = f["closed_loop"].attrs
        plain = cl["mean_relative_error: plain"]
        after = cl["mean_relative_error: conversion (fitted) + calibration"]
        assert plain / after >= 5.0, (plain, after)
        fitted = f["models/fitted"].attrs["rms_test"]
        ideal = f["models/ideal"].attrs["rms_test"]
        assert fitted < 1.5 * meas64.noise_rms < ideal
    text = (out / "report.txt").read_text()
    assert "conversion (fitted) + calibration" in text and "identified" in text


def test_cli_rejects_bad_file(tmp_path, capsys):
    from xbarsolve.cli import main

    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    assert main(["validate", str(bad)]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err


@pytest.mark.ngspice
def test_generator_transfer_matrix_is_ngspice_exact(require_ngspice, rng):
    chip = SyntheticChip()
    G = chip.program(rng.uniform(chip.g_min, chip.g_max, (12, 7)), rng)
    xbar = chip.crossbar(G)
    V = rng.uniform(0, 0.4, (3, 12))
    T = ngspice_transfer_matrix(xbar, check=V)  # raises unless direct ngspice ops agree to 1e-9
    np.testing.assert_allclose(T, xs.transfer_matrix(xbar), rtol=1e-9)


@pytest.mark.ngspice
def test_generated_readings_follow_the_noise_model(require_ngspice):
    meas = generate(12, 7, 40, seed=5)
    chip = SyntheticChip.from_measurement(meas)
    G_true = meas.synthetic["conductance"]
    I_true = xs.solve(chip.crossbar(G_true), meas.inputs).currents
    z = (meas.currents - I_true) / meas.noise_rms
    assert abs(z.mean()) < 0.25 and 0.8 < z.std() < 1.2  # 280 readings
    np.testing.assert_allclose(np.round(meas.currents / chip.adc_lsb) * chip.adc_lsb, meas.currents, rtol=0, atol=1e-18)
    rel = meas.conductance / G_true - 1
    assert 0.5 * chip.readback_sigma < rel.std() < 1.5 * chip.readback_sigma
