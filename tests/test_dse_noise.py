"""scripts/dse_noise_sensitivity.py: task list, paired statistics, a tiny run and resume."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from test_dse import tiny_network

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "dse_noise_sensitivity.py"
_spec = importlib.util.spec_from_file_location("dse_noise_sensitivity", _PATH)
noise = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(noise)


def test_tasks_one_noise_at_a_time_with_seeds():
    tasks = noise.build_tasks(100, 3, 64, 0.0, sigmas=(1e-6, 2e-6), read_noises=(1e-6,))
    assert len(tasks) == 2 * (1 + 3 * 3)
    assert all(not (t["sigma"] and t["read_noise"]) for t in tasks)
    assert sorted({t["seed"] for t in tasks if t["sigma"]}) == [0, 1, 2]
    assert len({tuple(sorted(t.items())) for t in tasks}) == len(tasks)


def _rec(mapping, correct, sigma=0.0, read_noise=0.0, seed=0):
    return (dict(mapping=mapping, sigma=sigma, read_noise=read_noise, seed=seed),
            {"correct": np.asarray(correct, dtype=np.uint8)})


def test_paired_drops_and_standard_errors_by_hand():
    clean_d = [1, 1, 1, 1]
    clean_s = [1, 1, 1, 0]
    recs = [_rec("dense", clean_d), _rec("sparse", clean_s),
            _rec("dense", [1, 1, 1, 0], sigma=1e-6, seed=0), _rec("dense", [1, 1, 0, 0], sigma=1e-6, seed=1),
            _rec("sparse", [1, 0, 0, 0], sigma=1e-6, seed=0), _rec("sparse", [0, 0, 1, 0], sigma=1e-6, seed=1)]
    rows = {(r["mapping"], r["kind"]): r for r in noise.summarise(recs)}
    d, s = rows["dense", "programming"], rows["sparse", "programming"]
    assert d["accuracy"] == pytest.approx(0.625) and s["accuracy"] == pytest.approx(0.25)
    # drops per image: dense 1 - mean over seeds = [0, 0, .5, 1]; sparse [.5, 1, .5, 0]
    np.testing.assert_allclose(d["drop_per_image"], [0, 0, 0.5, 1])
    np.testing.assert_allclose(s["drop_per_image"], [0.5, 1, 0.5, 0])
    assert d["drop"] == pytest.approx(0.375) and s["drop"] == pytest.approx(0.5)
    se_seeds = np.std([0.75, 0.5], ddof=1) / np.sqrt(2)
    assert d["drop_se"] == pytest.approx(np.hypot(se_seeds, np.std([0, 0, 0.5, 1], ddof=1) / 2))
    assert rows["dense", "none"]["drop"] == 0.0 and rows["sparse", "none"]["accuracy"] == 0.75
    table = noise.table_markdown(list(rows.values()))
    # sparse - dense drop: mean of [.5, 1, 0, -1] = +12.5 points
    assert "| programming sigma 1 uS | 62.50 (" in table and "| +12.50 (" in table


def test_a_tiny_run_resumes_and_plots(tmp_path, monkeypatch, capsys):
    from xbarsolve.sweeps import dse

    monkeypatch.setattr(dse, "_load_network", tiny_network)
    noise._data.cache_clear()
    noise._network.cache_clear()
    argv = ["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--n-images", "20", "--seeds", "2", "--tile", "16",
            "--sigmas", "2e-6", "--read-noises", "1e-6", "--no-progress"]
    assert noise.main(argv) == 0
    out = capsys.readouterr().out
    assert "10 task(s) run, 0 already stored" in out
    assert "| none | 100.00 (0.00) | 100.00 (0.00) |" in out  # labels are the software predictions
    assert "| read noise 1 uA |" in out and "| programming sigma 2 uS |" in out
    assert (tmp_path / "o" / "dse_noise_sensitivity.png").is_file()
    assert noise.main(argv) == 0
    assert "0 task(s) run, 10 already stored" in capsys.readouterr().out
    assert noise.main([*argv[:-1], "--seeds", "1"]) == 2
    assert "--seeds must be >= 2; got 1" in capsys.readouterr().out
    # 6-bit converters, read noise only: new tasks (bits in the key), the cached programming reused
    argv6 = [*argv[:2], "--out", str(tmp_path / "o6"), "--cache", str(tmp_path / "o" / "cache"), *argv[4:],
             "--bits", "6", "--sigmas"]
    assert noise.main(argv6) == 0
    out = capsys.readouterr().out
    assert "6 task(s) run, 0 already stored" in out and "programming sigma" not in out
    assert noise.main([*argv6, "--bits", "-1"]) == 2
    assert "--bits must be >= 0; got -1" in capsys.readouterr().out
