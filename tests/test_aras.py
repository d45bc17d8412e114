"""``xbarsolve reproduce aras`` on a tiny task list, and the accuracy plumbing of partial reuse."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from xbarsolve.sweeps import aras as job


def _args(tmp_path, data_dir, extra=()):
    p = argparse.ArgumentParser()
    job.add_aras_arguments(p)
    argv = ["--data", str(data_dir), "--out", str(tmp_path / "out"), "--networks", "mnist_cnn4", "--crossbars", "8",
            "--batches", "1", "--write-models", "incremental", "--n-mnist", "50", "--analog-networks", "--no-progress", *extra]
    return p.parse_args(argv)


def test_build_tasks():
    tasks = job.build_tasks(["mnist_cnn4", "resnet20"], [16, 64], [1, 16], ["incremental", "write_verify"], 100, 50,
                            analog_networks=["mnist_cnn4"], analog_images=10)
    sched = [t for t in tasks if t["kind"] == "schedule"]
    assert len(sched) == 2 * 2 * (2 + 1)  # write-verify at the smallest batch only
    acc = [t for t in tasks if t["kind"] == "accuracy"]
    assert len(acc) == 2 * 8 + 7  # float, int8, 6 centres digital; int8 + 6 centres analog on MNIST
    with pytest.raises(ValueError, match="multiples of 4"):
        job.build_tasks(["mnist_cnn4"], [6], [1], ["incremental"], 10, 10)


def test_reproduce_aras_tiny_and_resume(tmp_path, data_dir, capsys):
    from xbarsolve.sweeps._runner import read_records

    assert job.aras_main(_args(tmp_path, data_dir)) == 0
    out = capsys.readouterr().out
    assert "| MNIST CNN | 125 | 8 | 1 | incremental |" in out
    records = read_records(tmp_path / "out" / "aras_results.h5")
    assert len(records) == 1 + 8
    (t, r), = [(t, r) for t, r in records if t["kind"] == "schedule"]
    for v in ("naive", "overlap", "replicated", "reuse"):
        assert r[v]["latency_s"] >= r[v]["lower_bound_s"] * (1 - 1e-12)
    assert r["naive"]["speedup"] == pytest.approx(1.0)
    assert r["reuse"]["pulses"] == r["pulses_by_centre"].min() and r["centre"] in r["centres"]
    accs = {t["weights"]: r for t, r in records if t["kind"] == "accuracy"}
    assert set(accs) == {"float", "int8", "shift88", "shift104", "shift96", "shift160", "shift152", "shift168"}
    assert accs["float"]["accuracy"] > 0.9 and accs["int8"]["n_clipped"] == 0 and accs["shift96"]["n_clipped"] > 0
    assert (tmp_path / "out" / "aras_summary.md").is_file() and (tmp_path / "out" / "aras_speedup_8xbars.png").is_file()
    assert job.aras_main(_args(tmp_path, data_dir, ["--no-plots"])) == 0
    assert "0 task(s) run, 9 already stored" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    from xbarsolve.cli import main

    assert main(["reproduce", "aras", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("xbarsolve reproduce aras:") and "XBARSOLVE_DATA" in out and "\n" not in out


def test_reencoded_model_changes_only_the_clipped_weights():
    from xbarsolve.cnn import mnist_cnn4
    from xbarsolve.program import map_model, n_clipped, reencode, with_weights

    model = mnist_cnn4()
    net = map_model(model)
    q = with_weights(model, net)
    for centre in (96, 168):
        re = reencode(net, centre)
        r = with_weights(model, re)
        changed = sum(int(np.count_nonzero(a.layer.kernel != b.layer.kernel)) for a, b in zip(q.linear_nodes, r.linear_nodes))
        assert changed == n_clipped(net, re) > 0
        # a clipped weight sits at an end of the code range, and moved towards the layer's median
        for L0, L in zip(net.layers, re.layers):
            moved = L.codes - L.shift != L0.codes
            assert np.all((L.codes[moved] == 0) | (L.codes[moved] == 255))
            med = np.median(L0.codes)
            assert np.all(np.abs(L.codes[moved] - L.shift - med) < np.abs(L0.codes[moved] - med))
