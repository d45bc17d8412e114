"""The embedded default job: every table row is what xs.convert / xs.Calibration give."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve import demo
from xbarsolve.conversion import constant_signal


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return demo.run_demo(out, batch=40, seed=3, spice=False), out


def test_each_row_is_what_convert_and_calibration_give(result):
    res, _ = result
    assert [c.crossbar.shape for c in res.cases] == [(144, 16), (576, 64)]
    assert [c.r_wire for c in res.cases] == [demo.R_WIRE, demo.FEASIBLE_R_WIRE]
    for case in res.cases:
        xbar, V, Vc = case.crossbar, case.V_test, case.V_calibration
        assert V.shape == (40, xbar.m) and Vc.shape == (demo.N_CALIBRATION, xbar.m)
        # the calibration inputs are not the scored ones
        assert not any(np.array_equal(a, b) for a in Vc for b in V)
        ideal = V @ xbar.G
        conv = xs.convert(xbar, constant_signal(xbar.m, demo.CONVERSION_AMPLITUDE))
        plain = xs.solve(xbar, V, method="sparse").currents
        converted = xs.solve(conv.crossbar, V, method="sparse").currents
        cal = xs.Calibration().fit(xs.solve(conv.crossbar, Vc, method="sparse").currents, Vc @ xbar.G)
        expected = {
            "plain": xs.metrics.summary(plain, ideal),
            "conversion": xs.metrics.summary(converted, ideal),
            "conversion + calibration": xs.metrics.summary(cal.transform(converted), ideal),
        }
        assert [r.method for r in case.rows] == list(expected)
        for row in case.rows:
            e = expected[row.method]
            assert row.mean_relative_error == pytest.approx(e.mean_relative_error, rel=1e-6)
            assert row.worst_relative_error == pytest.approx(e.worst_relative_error, rel=1e-6)
        # the story the table tells: conversion removes almost all of the parasitic error
        rows = {r.method: r for r in case.rows}
        assert rows["conversion"].mean_relative_error < 1e-2 * rows["plain"].mean_relative_error
        # feasible: no cell needs a memristor voltage <= 0
        assert case.conversion.n_nonpositive == 0


def test_paper_576x64_at_1_ohm_is_reported_infeasible(result):
    res, _ = result
    inf = res.infeasible
    assert inf.g_prime.shape == (576, 64) and inf.original.r_col_segments.max() == demo.R_WIRE
    assert inf.n_nonpositive / inf.g_prime.size > 0.8
    text = demo.format_report(res)
    assert f"{inf.n_nonpositive / inf.g_prime.size:.1%} of the cells cannot be converted" in text
    assert text.splitlines()[0].startswith("JIT compile")


def test_figure_and_json_are_written(result):
    res, out = result
    png = out / "demo.png"
    assert png in res.files and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "demo.json").read_text())
    row = doc["cases"][1]["rows"][2]
    assert row["method"] == "conversion + calibration"
    assert row["mean_relative_error"] == res.cases[1].rows[2].mean_relative_error


@pytest.mark.ngspice
def test_spice_spot_check_agrees(require_ngspice):
    xbar = demo.reference_crossbar(12, 5, 0)
    check = demo.spice_check(xbar, np.full(12, 0.3), name="12x5")
    assert not check.skipped
    assert check.max_relative_difference < 1e-9
    assert check.ngspice_s > 0 and check.ours_s > 0


def test_spice_spot_check_skips_with_one_line_without_ngspice(monkeypatch):
    monkeypatch.setenv("XBARSOLVE_NGSPICE", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    check = demo.spice_check(demo.reference_crossbar(4, 3, 0), np.full(4, 0.3), name="4x3")
    assert check.skipped.startswith("ngspice not found") and "\n" not in check.skipped


def test_batch_below_two_is_refused():
    with pytest.raises(ValueError, match="batch must be >= 2"):
        demo.run_demo(None, batch=1)
