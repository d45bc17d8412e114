"""Calibration (per column / per crossbar), sample drawing, and shift mapping."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.calibration import draw_samples
from xbarsolve.mapping import scale_inputs, shift_map, with_unit_column


def test_recovers_known_slope_and_offset_per_column(rng):
    ideal = rng.normal(size=(10, 5))
    slope = np.array([0.5, 2.0, -1.0, 3.0, 1.0])
    offset = np.array([1.0, -2.0, 0.0, 5e-3, 7.0])
    actual = (ideal - offset) / slope  # so that ideal = slope * actual + offset exactly
    cal = xs.Calibration().fit(actual, ideal)
    np.testing.assert_allclose(cal.slope, slope, rtol=1e-12)
    np.testing.assert_allclose(cal.offset, offset, rtol=1e-12, atol=1e-14)
    new = rng.normal(size=(7, 5))
    np.testing.assert_allclose(cal.transform((new - offset) / slope), new, rtol=1e-11, atol=1e-13)


def test_per_crossbar_shares_one_pair(rng):
    ideal = rng.normal(size=(12, 4)) * 1e-4  # amperes
    actual = 0.8 * ideal + 3e-6
    cal = xs.Calibration(per="crossbar").fit(actual, ideal)
    np.testing.assert_allclose(cal.slope, 1 / 0.8, rtol=1e-12)
    np.testing.assert_allclose(cal.offset, -3e-6 / 0.8, rtol=1e-10)
    # different gains per column: one pair cannot fit them all, per-column can
    actual2 = ideal * np.array([0.8, 0.9, 1.0, 1.1])
    res_x = np.abs(xs.Calibration(per="crossbar").fit_transform(actual2, ideal) - ideal).max()
    res_c = np.abs(xs.Calibration().fit_transform(actual2, ideal) - ideal).max()
    assert res_c < 1e-18 and res_x > 1e-6


def test_least_squares_with_noise(rng):
    x = rng.uniform(0, 1, (200, 1))
    y = 3 * x + 1 + rng.normal(scale=0.01, size=x.shape)
    cal = xs.Calibration().fit(x, y)
    want = np.polyfit(x[:, 0], y[:, 0], 1)
    np.testing.assert_allclose([cal.slope[0], cal.offset[0]], want, rtol=1e-10)


def test_calibration_errors():
    with pytest.raises(ValueError, match="per must be"):
        xs.Calibration(per="row")
    with pytest.raises(ValueError, match="same shape"):
        xs.Calibration().fit(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        xs.Calibration().fit(np.ones((1, 2)), np.ones((1, 2)))
    with pytest.raises(RuntimeError, match="before fit"):
        xs.Calibration().transform(np.ones((2, 2)))
    cal = xs.Calibration().fit(np.ones((3, 1)), np.array([[1.0], [2.0], [3.0]]))
    assert cal.slope[0] == 1.0 and cal.offset[0] == pytest.approx(1.0)


def test_draw_samples(rng):
    data = rng.uniform(0, 0.4, (50, 8))
    s = draw_samples(data, rng=1)
    assert s.shape == (10, 8)
    rows = {tuple(r) for r in data}
    assert all(tuple(r) in rows for r in s) and len({tuple(r) for r in s}) == 10
    r = draw_samples(m=16, kind="random", rng=2)
    assert r.shape == (10, 16) and r.min() >= 0 and r.max() <= 0.4
    d = draw_samples(m=16, kind="random_decreasing", n_samples=4, rng=3)
    assert (np.diff(d, axis=1) <= 0).all()
    with pytest.raises(ValueError, match="n_samples"):
        draw_samples(data, n_samples=100)


def test_shift_map_round_trip_digital_and_unit_column(rng):
    A = rng.normal(size=(20, 6))
    sm = shift_map(A, 1 / 300e3, 1 / 15e3)
    assert sm.G.min() == pytest.approx(1 / 300e3) and sm.G.max() == pytest.approx(1 / 15e3)
    np.testing.assert_allclose(sm.matrix(), A, rtol=1e-12, atol=1e-12)
    V = rng.uniform(0, 0.4, (9, 20))
    np.testing.assert_allclose(sm.outputs(V @ sm.G, V.sum(axis=1)), V @ A, rtol=1e-9, atol=1e-12)
    Gu = with_unit_column(sm.G, sm.g_zero)
    I = V @ Gu
    np.testing.assert_allclose(sm.outputs_unit_column(I[:, :-1], I[:, -1]), V @ A, rtol=1e-9, atol=1e-12)
    # with parasitics, the unit column (simulated as an extra column) shares the columns' IR drop
    xbar = xs.Crossbar(Gu, r_row=1.0, r_col=1.0)
    I = xs.solve(xbar, V).currents
    y = sm.outputs_unit_column(I[:, :-1], I[:, -1])
    assert np.abs(y - V @ A).max() < 0.05 * np.abs(V @ A).max()


def test_shift_map_errors_and_input_scaling():
    with pytest.raises(ValueError, match="g_min < g_max"):
        shift_map(np.eye(2), 1e-4, 1e-5)
    with pytest.raises(ValueError, match="constant"):
        shift_map(np.ones((2, 2)))
    with pytest.raises(ValueError, match="a_range must be increasing"):
        shift_map(np.eye(2), a_range=(1.0, 1.0))
    # tiles of one matrix share its range, so their scale and zero conductance agree
    A = np.array([[-2.0, 0.5], [1.0, 3.0]])
    whole, tile = shift_map(A), shift_map(A[:1], a_range=(A.min(), A.max()))
    assert tile.scale == whole.scale and tile.g_zero == whole.g_zero
    np.testing.assert_array_equal(tile.G, whole.G[:1])
    sc = scale_inputs(np.array([0.0, 2.0, 4.0]), v_max=0.4)
    np.testing.assert_allclose(sc.to_volts([4.0, 1.0]), [0.4, 0.1])
    assert sc.to_units(0.4) == pytest.approx(4.0)


def test_calibration_after_conversion_improves_error(rng):
    A = rng.normal(size=(64, 8))
    sm = shift_map(A)
    xbar = xs.Crossbar(sm.G, r_row=1.0, r_col=1.0)
    conv = xs.convert(xbar, 0.04)
    assert conv.n_clipped == 0
    V = rng.uniform(0, 0.4, (200, 64)) * (rng.random((200, 64)) > 0.5)
    ideal = sm.ideal_outputs(V)
    actual = sm.outputs(xs.solve(conv.crossbar, V).currents, V.sum(axis=1))
    samples = draw_samples(np.arange(200)[:, None], rng=4)[:, 0].astype(int)
    cal = xs.Calibration().fit(actual[samples], ideal[samples])
    before = xs.metrics.summary(actual, ideal).mean_relative_error
    after = xs.metrics.summary(cal.transform(actual), ideal).mean_relative_error
    assert after < before


def test_one_mapping_type():
    """The crossbar study's shift mapping and the CNN's weight mapping are one type with one
    decoding: map_weights(shift) equals shift_map, and its outputs() equals decode()."""
    from xbarsolve.cnn import MappedMatrix
    from xbarsolve.cnn.mapping import map_weights
    from xbarsolve.mapping import ShiftMapping, differential_map

    assert ShiftMapping is MappedMatrix
    A = np.array([[-2.0, 0.5, 1.0], [1.0, 3.0, -0.25]])
    sm, mw = shift_map(A), map_weights(A, "shift")
    assert type(sm) is type(mw) is MappedMatrix
    assert (sm.scale, sm.shift, sm.g_zero) == (mw.scale, mw.shift, mw.b) and mw.a == sm.scale
    np.testing.assert_array_equal(sm.G, mw.G)
    V = np.array([[0.1, 0.3], [0.4, 0.0]])
    np.testing.assert_array_equal(sm.outputs(V @ sm.G, V.sum(axis=1)), mw.decode(mw.analog_output(V @ mw.G), V.sum(axis=1)))
    ref = sm.with_reference_column()
    assert ref.reference and ref.G.shape == (2, 4)
    np.testing.assert_allclose(ref.outputs(V @ ref.G), V @ A, rtol=1e-12, atol=1e-12)
    dm = differential_map(A)
    assert dm.scheme == "differential" and dm.G.shape == (2, 6) and dm.g_zero == 0.0
    np.testing.assert_allclose(dm.outputs(V @ dm.G), V @ A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dm.matrix(), A, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="v_sum"):
        sm.outputs(V @ sm.G)
    with pytest.raises(ValueError, match="reference=True"):
        MappedMatrix(dm.G, dm.scale, 0.0, dm.g_min, dm.g_max, scheme="differential", reference=True)
    with pytest.raises(ValueError, match="scheme"):
        MappedMatrix(sm.G, sm.scale, sm.shift, sm.g_min, sm.g_max, scheme="balanced")


def test_reference_parameters_have_one_home():
    """The defaults that stand for the paper's array read xbarsolve.reference."""
    import inspect

    from xbarsolve import reference
    from xbarsolve.cnn import AnalogConfig, G_MAX, G_MIN
    from xbarsolve.sweeps.crossbar import REFERENCE

    assert (G_MIN, G_MAX) == (reference.G_MIN, reference.G_MAX) == (1 / 300e3, 1 / 15e3)
    cfg = AnalogConfig()
    assert (cfg.g_min, cfg.g_max, cfg.v_max, cfg.r_row, cfg.r_in, cfg.r_out) == (
        reference.G_MIN, reference.G_MAX, reference.V_MAX, reference.R_WIRE, reference.R_IN, reference.R_OUT)
    assert REFERENCE == dict(r_on=15e3, r_off=300e3, r_wire=1.0, r_in=1.0, r_out=1.0, v_max=0.4, v_read=0.2)
    sig = inspect.signature(shift_map).parameters
    assert (sig["g_min"].default, sig["g_max"].default) == (reference.G_MIN, reference.G_MAX)
    assert inspect.signature(scale_inputs).parameters["v_max"].default == reference.V_MAX
    assert cfg.n_calibration == inspect.signature(draw_samples).parameters["n_samples"].default == reference.N_CALIBRATION == 10
