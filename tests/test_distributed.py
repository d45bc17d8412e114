"""Dask without waste: lean pickles of crossbars and networks (the same results), the
network sent to the workers once per client, fresh workers that load every kernel from
Numba's disk cache, and the batch jobs' ``--workers N`` local cluster."""

from __future__ import annotations

import gc
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.cnn import AnalogConfig, AnalogNetwork
from xbarsolve.cnn import distributed as D
from xbarsolve.cnn import layers as L
from xbarsolve.devices import Sinh
from xbarsolve.sweeps._runner import read_records, run_tasks


def _model(rng):
    """conv 3x3 (18 rows) - relu - flatten - dense (80 x 4): several tiles of 7 rows."""
    return L.Model((L.Node("conv", L.Conv2D(rng.normal(size=(3, 3, 2, 5)), rng.normal(size=5), (1, 1), "same")),
                    L.Node("relu", L.Activation("relu"), ("conv",)), L.Node("flat", L.Flatten(), ("relu",)),
                    L.Node("fc", L.Dense(rng.normal(size=(80, 4)), rng.normal(size=4)), ("flat",))),
                   (4, 4, 2), "tiny")


def _sinh_net(rng):
    x = np.abs(rng.normal(size=(10, 4, 4, 2)))
    cfg = AnalogConfig(device=Sinh(a=2.0), rows_max=18, cols_max=5, n_range_samples=32)
    return AnalogNetwork(_model(rng), cfg).prepare(x[:3]), x


@pytest.fixture(scope="module")
def client():
    with D.local_cluster(2) as c:  # Dask: a test dependency, never skipped
        yield c


# --------------------------------------------------------------------- lean pickles
def test_pickled_crossbar_leaves_out_the_forms_it_rebuilds(rng):
    """The topology and Newton forms stay behind (rebuilt on first use, same currents bit
    for bit); the transfer matrix travels (it costs a solve, and picks the solver)."""
    G = rng.uniform(10e-6, 100e-6, size=(12, 5))
    V = rng.uniform(0, 0.3, size=(3, 12))
    sinh = xs.Crossbar(G, device=Sinh(a=2.0))
    want = xs.solve(sinh, V).currents
    assert {"topology", "newton"} <= set(sinh._cache)
    blob = pickle.dumps(sinh, protocol=5)
    assert b"Topology" not in blob and b"_Net" not in blob
    back = pickle.loads(blob)
    assert back._cache == {} and back.G.flags.writeable is False
    np.testing.assert_array_equal(xs.solve(back, V).currents, want)
    assert {"topology", "newton"} <= set(back._cache)
    linear = xs.Crossbar(G)
    T = xs.transfer_matrix(linear)
    back = pickle.loads(pickle.dumps(linear, protocol=5))
    assert set(back._cache) == {"T"}
    np.testing.assert_array_equal(back._cache["T"], T)
    np.testing.assert_array_equal(xs.solve(back, V).currents, xs.solve(linear, V).currents)


def test_pickled_network_is_lean_and_gives_the_same_logits(rng):
    net, x = _sinh_net(rng)
    want = net.logits(x)  # fills every crossbar's topology and Newton forms
    blob = pickle.dumps(net, protocol=5)
    assert b"Topology" not in blob and b"_Net" not in blob
    back = pickle.loads(blob)
    for name, al in back.layers.items():
        # the dense mapping's matrix came back as a view of the layer's weights, as built
        assert np.shares_memory(al.matrix, al.layer.weight_matrix)
        np.testing.assert_array_equal(al.matrix, net.layers[name].matrix)
        assert all(t.crossbar._cache == {} for t in al.tiles)
    np.testing.assert_array_equal(back.logits(x), want)


# --------------------------------------------------------------------- on a cluster
def test_network_is_sent_once_per_client_and_again_when_it_changes(client, rng, monkeypatch):
    net, x = _sinh_net(rng)
    labels = rng.integers(0, 4, size=len(x))
    want = net.evaluate(x, labels, batch_size=4)
    scatters = []
    real = client.scatter
    monkeypatch.setattr(client, "scatter", lambda *a, **k: scatters.append(type(a[0]).__name__) or real(*a, **k))
    first = net.evaluate(x, labels, batch_size=4, client=client)
    second = net.evaluate(x, labels, batch_size=4, client=client)
    y = D.logits(net, x, batch_size=3, client=client)
    assert scatters == ["AnalogNetwork"]
    assert first == replace(want, seconds=first.seconds) and second == replace(want, seconds=second.seconds)
    np.testing.assert_array_equal(y, np.concatenate([net.logits(x[i:i + 3]) for i in range(0, len(x), 3)]))
    # a changed network is sent again, and the workers use the new one
    net.set_quantization(dac_bits=4, adc_bits=4)
    quantized = D.logits(net, x, batch_size=4, client=client)
    assert len(scatters) == 2
    np.testing.assert_array_equal(quantized, np.concatenate([net.logits(x[i:i + 4]) for i in range(0, len(x), 4)]))
    assert not np.array_equal(quantized, y)
    D.logits(net, x[:2], batch_size=4, client=client)
    assert len(scatters) == 2
    # the copy on the workers goes with the network
    key = D._SENT[net][client.id][1].key
    assert key in client.who_has()
    del net
    gc.collect()
    assert len(D._SENT) == 0
    client.sync(_released, client, key)


async def _released(client, key, timeout=10.0):
    import asyncio

    for _ in range(int(timeout / 0.05)):
        if not (await client.scheduler.who_has(keys=[key])).get(key):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} is still on the workers {timeout} s after its network was collected")


def test_a_fresh_worker_loads_every_kernel_from_the_disk_cache(rng):
    """After the client's process ran the network (which fills Numba's disk cache), a new
    worker process evaluates it without compiling anything."""
    import dask.distributed as distributed

    net, x = _sinh_net(rng)
    want = net.logits(x)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        y, compiled, seconds = c.submit(D._timed_logits, D._on_workers(c, net), x, pure=False).result()
    np.testing.assert_array_equal(y, want)
    assert compiled == {}, f"a fresh worker compiled {compiled} ({seconds:.1f} s)"
    Sinh(a=2.0).current(np.ones(2), np.full(2, 1e-5))  # a kernel compiled per process: counted
    assert D._compiled_in_this_process().get("xbarsolve.devices._evaluate", 0) >= 1


# --------------------------------------------------------------------- batch jobs
def _where_and_threads(task: dict) -> dict:
    import numba
    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    return {"pid": os.getpid(), "numba_threads": numba.get_num_threads(), "blas_threads": max(blas),
            "y": task["x"] ** 2, "trim": os.environ.get("MALLOC_TRIM_THRESHOLD_", "unset")}


def test_run_tasks_on_a_local_cluster_of_single_threaded_workers(tmp_path, monkeypatch):
    # the workers import this module to run its function
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # left here by clusters of Dask's defaults
    s = run_tasks([{"x": i} for i in range(8)], _where_and_threads, tmp_path / "w.h5", workers=2, progress=False)
    assert s.run == 8
    recs = [r for _, r in read_records(tmp_path / "w.h5")]
    assert sorted(r["y"] for r in recs) == [i * i for i in range(8)]
    assert os.getpid() not in {r["pid"] for r in recs} and len({r["pid"] for r in recs}) <= 2
    assert {r["numba_threads"] for r in recs} == {1} and {r["blas_threads"] for r in recs} == {1}
    assert {r["trim"] for r in recs} == {"unset"}  # Dask's default for its workers is left out
    with pytest.raises(ValueError, match="workers must be an integer >= 1; got 0"):
        run_tasks([{"x": 1}], _where_and_threads, tmp_path / "e.h5", workers=0)
    with pytest.raises(ValueError, match="pass either scheduler or workers, not both"):
        run_tasks([{"x": 1}], _where_and_threads, tmp_path / "e.h5", workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="n_workers must be an integer >= 1; got 1.5"):
        with D.local_cluster(1.5):
            pass


def test_reproduce_dse_quick_on_two_workers_and_resume(tmp_path, data_dir, capsys):
    """``--workers 2``: the quick preset's dense tasks run in two worker processes, the
    records equal an in-process run of the same task, and a rerun resumes."""
    from xbarsolve.cli import main
    from xbarsolve.sweeps import dse as job

    out = tmp_path / "out"
    argv = ["reproduce", "dse", "--quick", "--mappings", "dense", "--n-mnist", "10", "--n-cost", "1", "--data",
            str(data_dir), "--out", str(out), "--no-progress", "--no-plots"]
    assert main([*argv, "--workers", "2"]) == 0
    assert "3 task(s) run, 0 already stored" in capsys.readouterr().out
    records = read_records(out / "dse_results.h5")
    assert len(records) == 3
    task, rec = next((t, r) for t, r in records if t["wire"] == 0.0)  # ideal wires: the cheapest task
    here = job.run_task(task, data=str(data_dir), cache=None)
    for k, v in here.items():
        if not k.endswith("_seconds"):
            np.testing.assert_array_equal(rec[k], v, err_msg=k)
    assert main([*argv, "--workers", "2"]) == 0
    assert "0 task(s) run, 3 already stored" in capsys.readouterr().out
    assert main([*argv, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "argument --scheduler: not allowed with argument --workers" in capsys.readouterr().err
    assert main([*argv, "--workers", "0"]) == 2
    assert "argument --workers: must be an integer >= 1 (worker processes); got '0'" in capsys.readouterr().err


def test_reproduce_crossbar_takes_workers(tmp_path, monkeypatch, capsys):
    """``reproduce crossbar --workers N`` hands N to the task runner, and refuses it beside
    ``--scheduler`` with the same one-line error as the other jobs."""
    from xbarsolve.cli import main
    from xbarsolve.sweeps import crossbar as job

    seen = {}

    def fake_run_tasks(tasks, fn, path, **kw):
        seen.update(kw)

    monkeypatch.setattr(job, "run_tasks", fake_run_tasks)
    argv = ["reproduce", "crossbar", "--quick", "--out", str(tmp_path), "--no-progress", "--no-plots"]
    assert main([*argv, "--workers", "2"]) == 0
    assert seen["workers"] == 2 and seen["scheduler"] is None
    assert main(argv) == 0
    assert seen["workers"] is None
    assert main([*argv, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "argument --scheduler: not allowed with argument --workers" in capsys.readouterr().err
