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


def test_map_model_of_the_torch_and_keras_resnet20(data_dir, torch):
    from xbarsolve.cnn.models import load_keras_h5, load_torch_resnet
    from xbarsolve.program import Accelerator, map_model

    acc = Accelerator()
    (path,) = sorted((data_dir / "models" / "torch_resnet_cifar10").glob("resnet20-*.th"))
    t = map_model(load_torch_resnet(path))
    # option-A shortcuts have no weights: 19 convolutions and the dense layer
    assert len(t.layers) == 20 and t.layers[0].shape == (27, 16) and t.layers[-1].shape == (64, 10)
    assert [L.windows for L in t.layers[:2]] == [32 * 32, 32 * 32] and t.layers[-1].windows == 1
    assert t.layers[-2].windows == 8 * 8
    k = map_model(load_keras_h5(data_dir / "models" / "keras_resnet_cifar10" / "resnet20v1_cifar10.h5"))
    assert len(k.layers) == 22  # plus two 1x1 projection shortcuts
    assert t.n_tiles(acc) == sum(-(-L.shape[0] // 128) * -(-L.shape[1] // 32) for L in t.layers) == 87
    assert k.n_tiles(acc) == 90
