"""``xbarsolve reproduce cnn`` on a tiny task list: records, table, figures and resume."""

from __future__ import annotations

import argparse

import pytest

from xbarsolve.sweeps import cnn as job


def _args(tmp_path, data_dir, **kw):
    p = argparse.ArgumentParser()
    job.add_cnn_arguments(p)
    argv = ["--data", str(data_dir), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
            "--networks", "mnist_cnn4", "--tiles", "64", "--bits", "0", "4", "--sigmas", "0", "1e-6",
            "--n-mnist", "20", "--no-progress"]
    return p.parse_args(argv + kw.get("extra", []))


def test_build_tasks_covers_the_studies():
    tasks = job.build_tasks(["mnist_cnn4", "resnet20"], [0, 64], [0.0, 1e-6], [0, 6, 4], 100, 50)
    assert len(tasks) == 2 * 2 * (3 + 1)
    assert sum(t["errors"] for t in tasks) == 2 * 2 * 2  # ideal converters: sigma 0 and 1 uS
    assert {t["n_images"] for t in tasks if t["network"] == "resnet20"} == {50}


def test_reproduce_cnn_tiny_and_resume(tmp_path, data_dir, capsys):
    from xbarsolve.sweeps._runner import read_records

    assert job.cnn_main(_args(tmp_path, data_dir)) == 0
    out = capsys.readouterr().out
    assert "| 4-layer CNN (MNIST) | 64x64 tiles | 20 |" in out
    records = read_records(tmp_path / "out" / "cnn_results.h5")
    assert len(records) == 3
    for task, rec in records:
        assert rec["layers"] == "conv1,conv2,conv3,conv4"
        assert 0 <= rec["accuracy_analog"] <= 1
    for name in ("fig19_error_propagation_tile64.png", "fig20_accuracy_vs_sigma_tile64.png",
                 "fig21_accuracy_vs_bits_tile64.png", "table6.md"):
        assert (tmp_path / "out" / name).is_file()
    assert list((tmp_path / "cache").glob("mnist_cnn4-*.h5"))
    # resume: nothing left to run
    assert job.cnn_main(_args(tmp_path, data_dir, extra=["--no-plots"])) == 0
    assert "0 task(s) run, 3 already stored" in capsys.readouterr().out


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    p = argparse.ArgumentParser()
    job.add_cnn_arguments(p)
    args = p.parse_args(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--no-progress"])
    assert job.cnn_main(args) == 2
    assert "XBARSOLVE_DATA" in capsys.readouterr().out
