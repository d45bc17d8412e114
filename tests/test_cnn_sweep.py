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


def test_paper_amplitudes_are_the_default_and_a_uniform_one_is_a_task_field():
    """The job converts with the paper's per-layer amplitudes unless told otherwise; a
    uniform amplitude becomes part of the task (a record of its own)."""
    default = job.build_tasks(["mnist_cnn4"], [64], [0.0], [0], 10, 10)
    assert all("v_conv" not in t for t in default)
    uniform = job.build_tasks(["mnist_cnn4"], [64], [0.0], [0], 10, 10, v_conv=0.1)
    assert {t["v_conv"] for t in uniform} == {0.1}
    with pytest.raises(ValueError, match="v_conv must be 'paper', 'none' or an amplitude > 0 V; got -1"):
        job.build_tasks(["mnist_cnn4"], [64], [0.0], [0], 10, 10, v_conv=-1)


def test_paper_amplitudes_of_the_networks(data_dir):
    """Tables 4-5 by kernel shape: the MNIST CNN's four layers, and every ResNet-20 layer
    (3x3 kernels by channel counts, 1x1 shortcuts and the dense layer at 0.1 V)."""
    from xbarsolve.cnn.models import load_keras_h5, mnist_cnn4, paper_conversion_amplitudes

    assert paper_conversion_amplitudes(mnist_cnn4()) == {"conv1": 0.1, "conv2": 0.01, "conv3": 0.001, "conv4": 0.01}
    model = load_keras_h5(data_dir / "models" / "keras_resnet_cifar10" / "resnet20v1_cifar10.h5", name="resnet20")
    amps = paper_conversion_amplitudes(model)
    by_shape = {}
    for nd in model.linear_nodes:
        shape = tuple(getattr(nd.layer, "kernel").shape)
        by_shape.setdefault(shape, set()).add(amps[nd.name])
    assert by_shape[(3, 3, 64, 64)] == {0.01} and by_shape[(3, 3, 32, 32)] == {0.05} and by_shape[(3, 3, 3, 16)] == {0.1}
    assert by_shape[(64, 10)] == {0.1}
    assert all(a == {0.1} for s, a in by_shape.items() if s[:2] == (1, 1))


def test_linear_conversion_does_not_depend_on_the_amplitude(rng):
    """Why records made at the former uniform 0.1 V stand for the paper's amplitudes: with
    linear devices G' depends on the conversion signal's pattern, not its amplitude."""
    import numpy as np

    import xbarsolve as xs

    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (20, 8)), r_row=1.0, r_col=1.0)
    a = xs.convert(xbar, np.full(20, 0.1), on_clip="ignore").g_prime
    b = xs.convert(xbar, np.full(20, 0.001), on_clip="ignore").g_prime
    np.testing.assert_allclose(a, b, rtol=1e-9)


def test_nonlinear_conversion_depends_on_the_amplitude(rng):
    """Why the job has a nonlinear-device axis: with sinh devices G' does depend on the
    conversion amplitude, so the paper's per-layer amplitudes change the result."""
    import numpy as np

    import xbarsolve as xs

    xbar = xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (20, 8)), r_row=1.0, r_col=1.0,
                       device=xs.devices.Sinh(a=job.SINH_A))
    a = xs.convert(xbar, np.full(20, 0.1), on_clip="ignore").g_prime
    b = xs.convert(xbar, np.full(20, 0.001), on_clip="ignore").g_prime
    assert np.max(np.abs(a / b - 1)) > 1e-3


def test_device_and_conversion_axes_keep_the_reference_records():
    """Linear devices with the paper's amplitudes keep the task fields they always had
    (their records stay valid); sinh devices, uniform amplitudes and no conversion are
    fields of their own, one task set per choice."""
    ref = job.build_tasks(["mnist_cnn4"], [64], [0.0], [0, 8], 10, 10)
    both = job.build_tasks(["mnist_cnn4"], [64], [0.0], [0, 8], 10, 10, v_conv=["paper", 0.2, "none"],
                           devices=["linear", "sinh"])
    assert len(both) == 2 * 3 * 2
    assert [t for t in both if t.get("device", "linear") == "linear" and "v_conv" not in t
            and "conversion" not in t] == ref
    sinh = [t for t in both if t.get("device") == "sinh"]
    assert {t["nonlinearity"] for t in sinh} == {job.SINH_A}
    assert sorted(str(t.get("v_conv", t.get("conversion", "paper"))) for t in sinh if t["bits"] == 0) == \
        ["0.2", "False", "paper"]
    with pytest.raises(ValueError, match="device must be one of 'linear', 'sinh'"):
        job.build_tasks(["mnist_cnn4"], [64], [0.0], [0], 10, 10, devices=["poly"])
    with pytest.raises(ValueError, match="sinh_a must be a nonlinearity > 0"):
        job.build_tasks(["mnist_cnn4"], [64], [0.0], [0], 10, 10, devices=["sinh"], sinh_a=0.0)
    with pytest.raises(ValueError, match="v_conv must be 'paper', 'none' or an amplitude > 0 V; got 'half'"):
        job.build_tasks(["mnist_cnn4"], [64], [0.0], [0], 10, 10, v_conv=["paper", "half"])


def test_bad_v_conv_on_the_command_line_is_one_line(tmp_path, data_dir, capsys):
    args = _args(tmp_path, data_dir, extra=["--v-conv", "paper", "-0.1"])
    assert job.cnn_main(args) == 2
    out = capsys.readouterr().out
    assert out.strip() == "xbarsolve reproduce cnn: v_conv must be 'paper', 'none' or an amplitude > 0 V; got '-0.1'"
    assert not (tmp_path / "out").exists()


def test_reproduce_cnn_sinh_devices_and_amplitudes(tmp_path, data_dir, capsys):
    """A tiny nonlinear run (sinh devices, MNIST CNN on 64x64 tiles, 4 images): the paper's
    amplitudes, a uniform one and no conversion each give a record, the conversion table
    and the per-layer error figure; the amplitude changes the converted crossbars (layer
    errors differ) and a rerun resumes."""
    import numpy as np

    from xbarsolve.sweeps._runner import read_records

    extra = ["--devices", "sinh", "--v-conv", "paper", "0.2", "none", "--bits", "0", "--sigmas", "0",
             "--n-mnist", "4", "--n-cal", "4"]
    assert job.cnn_main(_args(tmp_path, data_dir, extra=extra)) == 0
    out = capsys.readouterr().out
    for conv in ("paper (Tables 4-5)", "uniform 0.2 V", "none (calibration only)"):
        assert f"| 4-layer CNN (MNIST) | 64x64 tiles | sinh a=2/V | {conv} | 4 |" in out
    assert "Per-layer mean relative error" in out
    records = read_records(tmp_path / "out" / "cnn_results.h5")
    assert len(records) == 3 and all(t["device"] == "sinh" and t["nonlinearity"] == 2.0 for t, _ in records)
    by = {str(t.get("v_conv", t.get("conversion", "paper"))): r for t, r in records}
    assert by["False"]["n_clipped"] == 0  # nothing converted, nothing clipped
    assert not np.allclose(by["paper"]["mean_alone"], by["0.2"]["mean_alone"], rtol=1e-6)
    assert (tmp_path / "out" / "conversion.md").is_file()
    assert not (tmp_path / "out" / "table6.md").exists()  # no reference (linear, paper) rows in this run
    assert (tmp_path / "out" / "fig_conversion_layer_errors_mnist_cnn4_tile64_sinh.png").is_file()
    assert job.cnn_main(_args(tmp_path, data_dir, extra=extra + ["--no-plots"])) == 0
    assert "0 task(s) run, 3 already stored" in capsys.readouterr().out
