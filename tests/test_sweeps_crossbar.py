"""The generic task runner (records, resume, kill -9, Dask) and the crossbar batch job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from xbarsolve.sweeps import merge_parts, read_records, records_table, run_tasks, task_key
from xbarsolve.sweeps import crossbar as job

ROOT = Path(__file__).resolve().parents[1]


def square(task: dict) -> dict:
    """A module-level task function (picklable for Dask)."""
    x = task["x"]
    return {"y": x * x, "arr": np.arange(3) * x, "label": f"x={x}", "nested": {"z": np.ones((2, 2)) * x}}


def test_task_key_is_content_based():
    assert task_key({"a": 1, "b": "s"}) == task_key({"b": "s", "a": 1})
    assert task_key({"a": 1}) != task_key({"a": 2})
    with pytest.raises(TypeError, match="JSON scalars"):
        task_key({"a": object()})


def test_runner_writes_records_and_skips_done_tasks(tmp_path):
    path = tmp_path / "out" / "r.h5"
    tasks = [{"x": i} for i in range(5)]
    s = run_tasks(tasks + [{"x": 0}], square, path, progress=False)
    assert (s.total, s.run, s.skipped) == (5, 5, 0)
    recs = read_records(path)
    assert sorted(t["x"] for t, _ in recs) == list(range(5))
    t, r = next(p for p in recs if p[0]["x"] == 3)
    assert r["y"] == 9 and r["label"] == "x=3"
    np.testing.assert_array_equal(r["arr"], [0, 3, 6])
    np.testing.assert_array_equal(r["nested"]["z"], np.full((2, 2), 3.0))
    calls = []

    def counting(task):
        calls.append(task["x"])
        return square(task)

    s = run_tasks([{"x": i} for i in range(7)], counting, path, progress=False)
    assert sorted(calls) == [5, 6] and s.skipped == 5
    tab = records_table(read_records(path), ["y"])
    np.testing.assert_array_equal(np.sort(tab["y"]), np.arange(7) ** 2)
    assert not (tmp_path / "out" / "r.h5.parts").exists()


def test_merge_never_duplicates_and_drops_partial_writes(tmp_path):
    path = tmp_path / "r.h5"
    run_tasks([{"x": 1}, {"x": 2}], square, path, progress=False)
    # State after a kill between the atomic rename of the merged file and the deletion of
    # its parts: a part whose record is already merged, plus a half-written temporary part.
    parts = tmp_path / "r.h5.parts"
    parts.mkdir()
    key = task_key({"x": 1})
    with h5py.File(parts / f"{key}.h5", "w") as f:
        g = f.create_group(key)
        g.attrs["task"] = '{"x": 1}'
        g.attrs["y"] = -1  # would show up if merged twice
    (parts / f"{task_key({'x': 9})}.h5.tmp-12345").write_bytes(b"\x89HDF garbage")
    (tmp_path / "r.h5.merge-999").write_bytes(b"stale")
    assert merge_parts(path) == 0
    recs = read_records(path)
    assert sorted(t["x"] for t, _ in recs) == [1, 2]
    assert {r["y"] for _, r in recs} == {1, 4}
    assert not parts.exists() and not (tmp_path / "r.h5.merge-999").exists()


def test_crossbar_job_resumes_after_kill_9(tmp_path):
    out = tmp_path / "job"
    script = textwrap.dedent(f"""
        import time
        from xbarsolve.sweeps import run_tasks
        from xbarsolve.sweeps import crossbar as job

        def slow(task):
            time.sleep(0.4)
            return job.run_task(task)

        run_tasks(job.QUICK.tasks(), slow, {str(out / 'crossbar.h5')!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    parts = out / "crossbar.h5.parts"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not parts.is_dir() or len(list(parts.glob("*.h5"))) < 3):
        assert proc.poll() is None, "the job ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(list(parts.glob("*.h5")))
    tasks = job.QUICK.tasks()
    assert 3 <= n_done < len(tasks)
    # rerun the real command: it must resume, not redo
    from xbarsolve.cli import main

    assert main(["reproduce", "crossbar", "--quick", "--out", str(out), "--no-plots", "--no-progress"]) == 0
    with h5py.File(out / "crossbar.h5", "r") as f:
        keys = sorted(f["records"].keys())
    assert keys == sorted(task_key(t) for t in tasks)  # none lost, none duplicated
    s = run_tasks(tasks, job.run_task, out / "crossbar.h5", progress=False)
    assert s.run == 0 and s.skipped == len(tasks)


def test_runner_on_a_dask_cluster(tmp_path):
    import dask.distributed as distributed  # a test dependency: never skipped
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        s = run_tasks([{"x": i} for i in range(6)], square, tmp_path / "d.h5", scheduler=cluster.scheduler_address,
                      progress=False)
    assert s.run == 6
    assert sorted(r["y"] for _, r in read_records(tmp_path / "d.h5")) == [0, 1, 4, 9, 16, 25]


def test_quick_crossbar_reproduction(tmp_path):
    from xbarsolve.cli import main

    out = tmp_path / "quick"
    assert main(["reproduce", "crossbar", "--quick", "--out", str(out), "--no-progress"]) == 0
    recs = read_records(out / "crossbar.h5")
    assert len(recs) == len(job.QUICK.tasks())
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(figs) == 8 and figs[0].startswith("fig11")
    for task, rec in recs:
        # conversion removes most of the IR-drop error on these feasible small arrays ...
        assert rec["conversion_stats"]["n_clipped"] == 0
        assert rec["conversion"]["mean"] < 0.01 * rec["plain"]["mean"]
        assert 0 <= rec["conversion"]["mean"] <= rec["conversion"]["worst"]
        assert rec["conversion"]["mean_bits"] == pytest.approx(np.log2(1 / rec["conversion"]["mean"] + 1))
    # ... and with linear devices the conversion amplitude changes nothing (same data, same G').
    for task, rec in recs:
        if task["amplitude"] == 1.0:
            twin = [r for t, r in recs if t["amplitude"] == 0.1 and all(t[k] == task[k] for k in ("m", "kernel_type", "sparsity"))]
            assert twin[0]["conversion"]["mean"] == pytest.approx(rec["conversion"]["mean"], rel=1e-6)


def test_task_grid_and_argument_errors():
    full = job.FULL.tasks()
    assert len(full) == 4 * 4 * 10 * 3 * 2
    assert len({task_key(t) for t in full}) == len(full)
    assert (full[0]["m"], full[0]["n"]) == (576, 64)
    t = dict(job.QUICK.tasks()[0], device="memristive-magic")
    with pytest.raises(ValueError, match="device must be"):
        job.run_task(t)


def test_generators(rng):
    from xbarsolve import generators

    k1 = generators.kernel(1, (300, 20), rng=1)
    assert abs(k1.mean()) < 0.05 and abs(k1.std() - 1) < 0.05
    k2 = generators.kernel(2, (300, 20), rng=1)
    assert np.abs(k2).min() >= 0.5 and np.abs(k2).max() <= 1 and (k2 < 0).any()
    k3 = generators.kernel(3, (300, 20), rng=1)
    assert set(np.unique(k3)) == {-1.0, 0.0, 1.0}
    V = generators.inputs(400, 50, sparsity=0.7, rng=2)
    assert V.min() >= 0 and V.max() <= 0.4 and abs((V == 0).mean() - 0.7) < 0.02
    np.testing.assert_array_equal(generators.inputs(3, 4, rng=5), generators.inputs(3, 4, rng=5))
    X = generators.activation_inputs(lambda k, r: np.maximum(r.normal(size=(k, 9)), 0), 20, rng=3)
    assert X.shape == (20, 9) and X.max() == pytest.approx(0.4)
    with pytest.raises(ValueError, match="kind must be 1"):
        generators.kernel(4, (2, 2))
    with pytest.raises(ValueError, match="sparsity"):
        generators.inputs(2, 2, sparsity=1.0)


def test_reproduction_notebook_runs(tmp_path, monkeypatch):
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = job.reproduce_crossbar(tmp_path / "nb", quick=True, plots=False, progress=False)
    monkeypatch.setenv("XBARSOLVE_CROSSBAR_RESULTS", str(path))
    nb = json.loads((ROOT / "notebooks" / "crossbar_reproduction.ipynb").read_text())
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    scope: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]).replace("%matplotlib inline", ""), "notebook", "exec"), scope)
    plt.close("all")
    assert len(scope["records"]) == len(job.QUICK.tasks())


@pytest.mark.parametrize("r_wire,feasible", [(1.0, False), (0.1, True)])
def test_headline_576x64_depends_on_wire_resistance(r_wire, feasible):
    # The report's central claim: with the stated 1-ohm segments a dense 576x64 conversion is
    # infeasible (most cells need a memristor voltage <= 0); with 0.1-ohm segments it is not.
    task = dict(job.QUICK.tasks()[0], m=576, n=64, r_wire=r_wire, amplitude=0.1, sparsity=0.0, kernel_type=1,
                n_samples=200)
    rec = job.run_task(task)
    stats = rec["conversion_stats"]
    if feasible:
        assert stats["n_clipped"] == 0
        assert rec["conversion+calibration"]["mean"] < 1e-3 < rec["plain"]["mean"]
    else:
        assert stats["clipped_fraction"] > 0.85 and stats["n_nonpositive"] == stats["n_clipped"]
        assert stats["min_v_memristor"] < 0
        assert rec["conversion+calibration"]["mean"] > 0.05
