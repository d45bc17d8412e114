"""``xbarsolve reproduce dse``: task list, Pareto front, the quick preset's records, table,
figures and resume."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from xbarsolve.sweeps import dse as job


def _args(tmp_path, data_dir, extra=()):
    p = argparse.ArgumentParser()
    job.add_dse_arguments(p)
    return p.parse_args(["--quick", "--data", str(data_dir), "--out", str(tmp_path / "out"), "--no-progress", *extra])


def test_build_tasks_one_at_a_time_around_the_baseline():
    tasks = job.build_tasks(["mnist_cnn4", "resnet20"], ["dense", "sparse"], [64, 0], wires=[0.0, 0.5, 1.0],
                            sigmas=[1e-6], read_noises=[1e-7], bits=[4, 8, 0], n_mnist=100, n_cifar=50, n_cost=5)
    # per network x mapping x tile: baseline + 2 wires + 1 sigma + 1 noise + 2 bits (8 is the baseline's)
    assert len(tasks) == 2 * 2 * 2 * (1 + 2 + 1 + 1 + 2)
    sparse64 = job.build_tasks(["mnist_cnn4"], ["dense", "sparse"], [64, 0], [], [], [], [], 10, 10, 2, sparse_tiles=[64])
    assert sorted((t["mapping"], t["tile"]) for t in sparse64) == [("dense", 0), ("dense", 64), ("sparse", 64)]
    base = [t for t in tasks if (t["wire"], t["sigma"], t["read_noise"], t["bits"]) == (1.0, 0.0, 0.0, 8)]
    assert len(base) == 8
    changed = [sum(t[k] != v for k, v in job.BASELINE.items()) for t in tasks]
    assert max(changed) == 1
    assert {t["n_images"] for t in tasks if t["network"] == "resnet20"} == {50}
    assert all(t["n_cost"] == 5 for t in tasks)


def test_pareto_front():
    pts = np.array([[1.0, 50.0], [2.0, 60.0], [3.0, 55.0], [0.5, 40.0], [2.0, 70.0], [5.0, 70.0]])
    assert job.pareto_front(pts).tolist() == [3, 0, 4]


def tiny_network(network, data, n_cal):
    """A 3x3x1x4 convolution on 6x6 inputs (sparse: one 36 x 64 Toeplitz matrix), ReLU and
    a 64 -> 3 dense layer; labels are the software model's predictions."""
    from xbarsolve.cnn import Model, Node
    from xbarsolve.cnn.layers import Activation, Conv2D, Dense, Flatten

    rng = np.random.default_rng(7)
    model = Model((Node("conv1", Conv2D(rng.normal(size=(3, 3, 1, 4)))), Node("relu", Activation("relu"), ("conv1",)),
                   Node("flat", Flatten(), ("relu",)), Node("fc", Dense(rng.normal(size=(64, 3))), ("flat",))),
                  (6, 6, 1), name=f"tiny-{network}")
    X = rng.uniform(0.0, 1.0, (40, 6, 6, 1))
    return model, X[:n_cal], X[10:], model.predict(X[10:])


def test_reproduce_dse_on_a_tiny_network_and_resume(tmp_path, monkeypatch, capsys):
    """The job's machinery (both mappings, records, table, figures, resume) on a tiny model."""
    from xbarsolve.sweeps._runner import read_records

    monkeypatch.setattr(job, "_load_network", tiny_network)
    argv = ["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress", "--networks", "mnist_cnn4",
            "--tiles", "16", "0", "--sparse-tiles", "16", "0", "--wires", "0", "--sigmas", "1e-6", "--read-noises", "1e-6", "--bits", "4",
            "--n-mnist", "30", "--n-cost", "3"]
    p = argparse.ArgumentParser()
    job.add_dse_arguments(p)
    assert job.dse_main(p.parse_args(argv)) == 0
    out = capsys.readouterr().out
    records = read_records(tmp_path / "out" / "dse_results.h5")
    assert len(records) == 2 * 2 * 5
    for task, rec in records:
        assert 0 <= rec["accuracy_analog"] <= 1 and rec["accuracy_software"] == 1.0
        assert rec["energy_pJ"] == pytest.approx(rec["read_pJ"] + rec["dac_pJ"] + rec["adc_pJ"] + rec["digital_pJ"])
        assert rec["layer_energy_pJ"].sum() == pytest.approx(rec["energy_pJ"])
        assert rec["layers"] == "conv1,fc" and rec["read_pJ"] > 0
    by = {(t["mapping"], t["tile"], t["wire"], t["bits"], t["sigma"], t["read_noise"]): r for t, r in records}
    dense, sparse = by["dense", 0, 1.0, 8, 0.0, 0.0], by["sparse", 0, 1.0, 8, 0.0, 0.0]
    # conv1: 16 windows of 9 rows (dense) or one vector of 36 rows (sparse), one pass each
    # (non-negative images); fc: one vector. Latency = reads x 100 ns.
    assert dense["latency_ns"] == (16 + 1) * 100.0 and sparse["latency_ns"] == (1 + 1) * 100.0
    assert (dense["n_cells"], sparse["n_cells"]) == (9 * 5 + 64 * 4, 36 * 65 + 64 * 4)
    assert by["dense", 0, 0.0, 8, 0.0, 0.0]["read_pJ"] < dense["read_pJ"]  # no wire losses
    assert by["sparse", 16, 1.0, 8, 0.0, 0.0]["n_crossbars"] > sparse["n_crossbars"]
    assert "| 4-layer CNN (MNIST) | sparse | layer | 1 | 8 |" in out
    for name in ("dse_accuracy_vs_energy.png", "dse_vs_tile.png", "dse_vs_noise.png", "dse_dense_vs_sparse.png",
                 "dse_table.md"):
        assert (tmp_path / "out" / name).is_file()
    assert job.dse_main(p.parse_args([*argv, "--no-plots"])) == 0
    assert "0 task(s) run, 20 already stored" in capsys.readouterr().out
    # Baselines only (no noise variants, as in the quick preset): the figures still draw.
    (tmp_path / "base").mkdir()
    base = [(t, r) for t, r in records if all(t[k] == v for k, v in job.BASELINE.items())]
    assert len(job.save_figures(base, tmp_path / "base")) == 4


@pytest.mark.slow
def test_reproduce_dse_quick_and_resume(tmp_path, data_dir, capsys):
    from xbarsolve.sweeps._runner import read_records

    assert job.dse_main(_args(tmp_path, data_dir)) == 0
    out = capsys.readouterr().out
    records = read_records(tmp_path / "out" / "dse_results.h5")
    tasks = job.build_tasks(**job.PRESETS["quick"])
    assert len(records) == len(tasks) == 6
    for task, rec in records:
        assert 0 <= rec["accuracy_analog"] <= 1
        assert rec["energy_pJ"] == pytest.approx(rec["read_pJ"] + rec["dac_pJ"] + rec["adc_pJ"] + rec["digital_pJ"])
        assert rec["read_pJ"] > 0 and rec["area_um2"] > 0 and rec["latency_ns"] > 0
        assert rec["layers"] == "conv1,conv2,conv3,conv4"
        assert rec["layer_energy_pJ"].sum() == pytest.approx(rec["energy_pJ"])
    by = {(t["mapping"], t["wire"], t["bits"]): r for t, r in records}
    # The sparse mapping reads each convolution once per image: far fewer cycles, many more cells.
    assert by["sparse", 1.0, 8]["latency_ns"] < by["dense", 1.0, 8]["latency_ns"] / 10
    assert by["sparse", 1.0, 8]["n_cells"] > 10 * by["dense", 1.0, 8]["n_cells"]
    # Ideal wires dissipate nothing outside the cells, so the read energy drops.
    assert by["dense", 0.0, 8]["read_pJ"] < by["dense", 1.0, 8]["read_pJ"]
    # 4-bit converters cost less converter energy than 8-bit ones.
    assert by["dense", 1.0, 4]["adc_pJ"] + by["dense", 1.0, 4]["dac_pJ"] < by["dense", 1.0, 8]["adc_pJ"] + by["dense", 1.0, 8]["dac_pJ"]
    assert "| 4-layer CNN (MNIST) | sparse | 64 | 1 | 8 |" in out
    for name in ("dse_accuracy_vs_energy.png", "dse_vs_tile.png", "dse_vs_noise.png", "dse_dense_vs_sparse.png",
                 "dse_table.md"):
        assert (tmp_path / "out" / name).is_file()
    assert job.dse_main(_args(tmp_path, data_dir, ["--no-plots"])) == 0
    assert "0 task(s) run, 6 already stored" in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    p = argparse.ArgumentParser()
    job.add_dse_arguments(p)
    args = p.parse_args(["--quick", "--out", str(tmp_path / "o"), "--wires", "-1", "--no-progress"])
    assert job.dse_main(args) == 2
    assert "--wires must be finite and >= 0; got -1.0" in capsys.readouterr().out
    args = p.parse_args(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--no-progress"])
    assert job.dse_main(args) == 2
    assert "XBARSOLVE_DATA" in capsys.readouterr().out


def test_sparse_resnet_is_refused_with_its_memory(data_dir):
    from xbarsolve.cnn.models import load_keras_h5

    model = load_keras_h5(data_dir / "models" / "keras_resnet_cifar10" / "resnet20v1_cifar10.h5", name="resnet20")
    assert job.sparse_matrix_bytes(model) == 8 * 16384 * 16384  # 3x3x16x16 'same' on 32x32x16
    with pytest.raises(MemoryError, match="2.0 GiB"):
        job.run_task(dict(network="resnet20", mapping="sparse", tile=64, n_images=1, n_cost=1, n_cal=50, seed=0,
                          **job.BASELINE), str(data_dir), None)


def test_sparse_resnet_is_skipped_by_the_job(tmp_path, data_dir, capsys):
    p = argparse.ArgumentParser()
    job.add_dse_arguments(p)
    args = p.parse_args(["--data", str(data_dir), "--out", str(tmp_path / "o"), "--networks", "resnet20",
                         "--mappings", "sparse", "--no-progress"])
    assert job.dse_main(args) == 0
    out = capsys.readouterr().out
    assert "skipping resnet20 with the sparse mapping: its largest Toeplitz matrix takes 2.0 GiB" in out
    assert "0 task(s) run, 0 already stored" in out
