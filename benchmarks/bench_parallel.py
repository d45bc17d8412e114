#!/usr/bin/env python3
"""All tiles of a layer in one call, parallel tiles and Dask workers (issue 13).

Every case runs the same images through one analog forward pass (``logits``) on 1-ohm-wire
64x64 tiles with conversion and calibration, by several methods, in interleaved passes
(method A, B, ..., then again; the median of ``--repeat`` passes), so the ratios hold on a
machine whose speed drifts:

* linear devices, ResNet-20 (CIFAR-10) and the MNIST CNN: the tile-by-tile pipeline (the
  code before issue 13, ``AnalogMatrix._serial_tiles``) against one GEMM per layer with
  the folded matrix (:meth:`AnalogMatrix.folded_matrix`);
* linear devices, ResNet-20 with 8-bit DAC and ADC (no fold): the tile-by-tile pipeline
  with threaded BLAS (the code before) against the tile pipelines on the tile threads with
  BLAS on one thread (default thread count, 1, ``--threads``);
* sinh devices (a = 2 /V, Newton), the MNIST CNN and ResNet-20: the serial tile loop
  (the Newton solver on its default kernel threads) against the tiles solved side by side
  on ``--threads`` threads (one kernel thread each), as before (every layer on the pool,
  its first tile solved alone before the others start: ``network._FIRST_JOB_ALONE``,
  ``_JOBS_PER_THREAD = 1``) and now (layers with fewer than 4 solves per thread one tile
  after the other on the kernel threads);
* Dask, a CNN evaluation (MNIST CNN, sinh devices): the in-process run against a
  ``distributed.LocalCluster`` of 1 and 2 worker processes with 1 thread each (and the
  in-process run on one thread, as one worker's task runs)
  (:func:`xbarsolve.cnn.distributed.local_cluster`, :func:`~xbarsolve.cnn.distributed.logits`,
  one task per batch).  First the pickled
  network's size, and each fresh worker's first image (the network sent, unpickled and
  run once; which kernels it compiled); the timed calls then find the network on the
  workers.  A row with the network sent again on every call (the behaviour before) shows
  what sending it costs;
* Dask, a batch job (``xbarsolve reproduce dse --quick``, its dense tasks with 4- and
  6-bit converters: 4 tasks, no crossbar cache): in process against ``--workers 1`` and
  ``--workers 2`` (:func:`xbarsolve.sweeps._runner.run_tasks`; each run starts its own
  cluster, and that start is timed; printed first: what starting and closing one costs).

Prints one table: case, method, workers/threads, ms per image, ratio to the first
(serial) method of the case, max abs difference of the logits against it.  The first row
is a control for the shared machine: a pure nogil Numba loop run ``--threads`` times one
after the other and on ``--threads`` threads at once (ratio 0.5 on two free cores; near
1 when other jobs hold the cores, and then no parallel method can gain either).

    python benchmarks/bench_parallel.py [--data DIR] [--repeat 3] [--images 20]
        [--mnist-images 50] [--nonlinear-images 16] [--nonlinear-resnet-images 2]
        [--dask-images 16] [--dask-batch 4] [--threads 2] [--skip-linear] [--skip-nonlinear]
        [--skip-dask] [--skip-jobs] [--profile]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xbarsolve.cnn import AnalogConfig, AnalogNetwork  # noqa: E402
from xbarsolve.cnn.datasets import cifar10_keras_input, data_dir, load_cifar10, load_mnist, mnist_input  # noqa: E402
from xbarsolve.cnn.models import load_keras_h5, mnist_cnn4  # noqa: E402


def _serial(net, on: bool) -> None:
    for al in net.layers.values():
        al._serial_tiles = on


def _in_process(net, serial: bool, threads: int | None):
    def run(x, batch):
        _serial(net, serial)
        net.tile_threads = threads
        try:
            return np.concatenate([net.logits(x[i:i + batch]) for i in range(0, len(x), batch)])
        finally:
            _serial(net, False)
            net.tile_threads = None
    return run


def _pool_before(run):
    """``run`` on the tile pool as it was before: every nonlinear layer on the pool
    (``network._JOBS_PER_THREAD = 1``), its first tile solved in the calling thread
    before the others start (``network._FIRST_JOB_ALONE``)."""
    from xbarsolve.cnn import network

    def wrapped(x, batch):
        saved = network._FIRST_JOB_ALONE, network._JOBS_PER_THREAD
        network._FIRST_JOB_ALONE, network._JOBS_PER_THREAD = True, 1
        try:
            return run(x, batch)
        finally:
            network._FIRST_JOB_ALONE, network._JOBS_PER_THREAD = saved
    return wrapped


def _on_dask(net, client, resend=False):
    from xbarsolve.cnn import distributed

    def run(x, batch):
        if resend:  # forget the copy on the workers: the network is sent again
            distributed._SENT.pop(net, None)
        return distributed.logits(net, x, client=client, batch_size=batch)
    return run


def _one_thread(run):
    """``run`` on one Numba and one BLAS thread (as a worker's task)."""
    from xbarsolve.solve._threads import kernel_threads

    def wrapped(x, batch):
        with kernel_threads(1):
            return run(x, batch)
    return wrapped


def _pickle_sizes(net) -> None:
    """The pickled network's size, and what the crossbars' rebuilt forms would add."""
    import pickle

    from xbarsolve.crossbar import _REBUILT_AFTER_PICKLING

    lean = len(pickle.dumps(net, protocol=5))
    forms = sum(len(pickle.dumps({k: v for k, v in t.crossbar._cache.items() if k in _REBUILT_AFTER_PICKLING}, protocol=5))
                for al in net.layers.values() for t in al.tiles)
    print(f"  pickled MNIST sinh network: {lean / 1e6:.1f} MB (its crossbars' topology and Newton forms, left out, "
          f"would add {forms / 1e6:.1f} MB)", flush=True)


def _fresh_workers(label, client, net, x) -> None:
    """Send the network to fresh workers and run one image on each: the seconds of the
    send and of each worker's first image, and the kernels each compiled."""
    from xbarsolve.cnn import distributed

    t0 = time.perf_counter()
    remote = distributed._on_workers(client, net)
    workers = list(client.scheduler_info()["workers"])
    futures = [client.submit(distributed._timed_logits, remote, x[:1], workers=[w], pure=False, allow_other_workers=False)
               for w in workers]
    results = client.gather(futures)
    sent = time.perf_counter() - t0
    for w, (_, compiled, seconds) in zip(workers, results):
        print(f"  {label}, fresh worker {w}: first image {seconds:.2f} s, compiled kernels {compiled or 'none'}")
    print(f"  {label}: network sent and one image on every worker in {sent:.2f} s", flush=True)


def _job_methods(data):
    """In process, ``--workers 1`` and ``--workers 2`` for the dense tasks of the quick
    DSE preset with 4- and 6-bit converters; each run writes a fresh results file."""
    import functools
    import tempfile

    from xbarsolve.sweeps import dse
    from xbarsolve.sweeps._runner import read_records, run_tasks

    preset = dict(dse.PRESETS["quick"], mappings=["dense"], bits=[4, 6])
    tasks = dse.build_tasks(**preset)
    fn = functools.partial(dse.run_task, data=str(data), cache=None)
    folder = Path(tempfile.mkdtemp(prefix="bench_parallel_jobs_"))
    count = iter(range(1 << 30))

    def method(workers):
        def run(x, batch):
            path = folder / f"run{next(count)}.h5"
            run_tasks(tasks[:len(x)], fn, path, workers=workers, progress=False)
            recs = sorted(read_records(path), key=lambda tr: sorted(tr[0].items()))
            return np.array([[r["accuracy_analog"], r["energy_pJ"], r["latency_ns"]] for _, r in recs])
        return run
    return tasks, [("in process", "1", method(None)), ("--workers 1", "1 worker", method(1)),
                   ("--workers 2", "2 workers", method(2))]


def _interleaved(methods, x, batch, repeat):
    """{key: (median s per image, logits of the last pass)}, passes interleaved."""
    for _, run in methods:
        run(x[:min(2, len(x))], batch)  # warm-up
    times = {key: [] for key, _ in methods}
    out = {}
    for _ in range(repeat):
        for key, run in methods:
            t0 = time.perf_counter()
            out[key] = run(x, batch)
            times[key].append((time.perf_counter() - t0) / len(x))
    return {key: (float(np.median(times[key])), out[key]) for key, _ in methods}


def _rows(case, methods, x, batch, repeat):
    res = _interleaved([((m[0], m[1]), m[2]) for m in methods], x, batch, repeat)
    base_t, base_y = res[methods[0][:2]]
    rows = []
    for label, workers, _ in methods:
        t, y = res[label, workers]
        rows.append((case, label, workers, 1e3 * t, t / base_t, float(np.abs(y - base_y).max())))
    _print(rows)
    return rows


def _loop_profile(case, net, x, batch):
    """Where the tile-by-tile loop spends its time: the tiles' ``V @ T`` GEMMs against the
    whole pass (cProfile, so both are a little inflated)."""
    import cProfile
    import pstats

    run = _in_process(net, True, None)
    prof = cProfile.Profile()
    prof.runcall(run, x, batch)
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())  # tottime of everything
    gemm = sum(v[2] for k, v in stats.items() if k[2] == "currents" and k[0].endswith("network.py"))
    print(f"  profile of the tile loop, {case}: {1e3 * total / len(x):.2f} ms/image, of which the tiles' "
          f"V @ T GEMMs {1e3 * gemm / len(x):.2f} ms ({100 * gemm / total:.0f} %)", flush=True)


def _control(threads: int, repeat: int) -> None:
    """Whether the machine has free cores now: the same pure nogil Numba loop ``threads``
    times, one after the other and on ``threads`` threads at once (ideal ratio 1/threads)."""
    import threading

    from numba import njit

    @njit(nogil=True)
    def spin(n):
        s = 0.0
        for i in range(n):
            s += np.sin(i * 1e-9)
        return s

    spin(10)
    n = 20_000_000

    def serial(x, batch):
        for _ in range(threads):
            spin(n)
        return np.zeros(1)

    def parallel(x, batch):
        pool = [threading.Thread(target=spin, args=(n,)) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return np.zeros(1)

    _rows("control: nogil Numba loop", [("one after the other", "1", serial),
                                                          (f"on {threads} threads", str(threads), parallel)],
          np.zeros(1), 1, repeat)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--images", type=int, default=20, help="CIFAR-10 images, linear ResNet-20")
    ap.add_argument("--mnist-images", type=int, default=50, help="MNIST images, linear")
    ap.add_argument("--nonlinear-images", type=int, default=16, help="MNIST images, sinh devices")
    ap.add_argument("--nonlinear-resnet-images", type=int, default=2, help="CIFAR-10 images, sinh devices")
    ap.add_argument("--dask-images", type=int, default=16, help="MNIST images, sinh devices, on Dask")
    ap.add_argument("--dask-batch", type=int, default=4, help="images per Dask task")
    ap.add_argument("--threads", type=int, default=2, help="tile threads of the parallel rows")
    ap.add_argument("--skip-linear", action="store_true")
    ap.add_argument("--skip-nonlinear", action="store_true")
    ap.add_argument("--skip-dask", action="store_true", help="no Dask CNN evaluation")
    ap.add_argument("--skip-jobs", action="store_true", help="no Dask batch job")
    ap.add_argument("--profile", action="store_true", help="also profile the linear tile loop (GEMM share)")
    args = ap.parse_args(argv)
    d = data_dir(args.data)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    _print([], header=True)
    _control(args.threads, args.repeat)

    folder = d / "models" / "keras_resnet_cifar10"
    resnet = load_keras_h5(folder / "resnet20v1_cifar10.h5", name="resnet20")
    xc, _ = load_cifar10(d, n=max(args.images, args.nonlinear_resnet_images) + 10)
    X = cifar10_keras_input(xc, np.load(folder / "cifar10_x_train_mean.npy"))
    xtr, _ = load_mnist(d, "train")
    xte, _ = load_mnist(d, "test")
    Xm = mnist_input(xte[:max(args.mnist_images, args.nonlinear_images, args.dask_images)])
    Xcal = mnist_input(xtr[:100])
    mnist = mnist_cnn4()
    tiles = dict(rows_max=64, cols_max=64)

    for title, model, xcal, xs_ in () if args.skip_linear else (
            ("ResNet-20, linear", resnet, X[-10:], X[:args.images]), ("MNIST CNN, linear", mnist, Xcal, Xm[:args.mnist_images])):
        net = AnalogNetwork(model, AnalogConfig(**tiles)).prepare(xcal)
        if args.profile:
            _loop_profile(title, net, xs_, 50)
        _rows(f"{title} ({net.n_crossbars} tiles)", [("tile loop", "1", _in_process(net, True, None)),
                                                       ("folded matrix", "1", _in_process(net, False, None))],
              xs_, 50, args.repeat)
        if model is resnet:  # 8-bit converters: no fold; the tile pipelines on tile threads
            net.set_quantization(dac_bits=8, adc_bits=8)
            _rows(f"{title}, 8-bit DAC and ADC", [
                ("tile loop, threaded BLAS", "1", _in_process(net, True, None)),
                ("tile threads, BLAS 1 thread", "default", _in_process(net, False, None)),
                ("tile threads, BLAS 1 thread", "1", _in_process(net, False, 1)),
                ("tile threads, BLAS 1 thread", str(args.threads), _in_process(net, False, args.threads))],
                xs_, 50, args.repeat)

    if not args.skip_nonlinear or not args.skip_dask:
        from xbarsolve.devices import Sinh

        sinh = AnalogConfig(device=Sinh(a=2.0), n_range_samples=256, **tiles)
        mnist_sinh = AnalogNetwork(mnist, sinh).prepare(Xcal)
    if not args.skip_nonlinear:
        for title, model, xcal, xs_ in (("MNIST CNN, sinh", None, None, Xm[:args.nonlinear_images]),
                                        ("ResNet-20, sinh", resnet, X[-10:], X[:args.nonlinear_resnet_images])):
            if len(xs_):
                net = mnist_sinh if model is None else AnalogNetwork(model, sinh).prepare(xcal)
                _rows(f"{title} ({net.n_crossbars} tiles)",
                      [("tile loop (Newton default threads)", "1", _in_process(net, True, None)),
                       (f"tiles on {args.threads} threads (before)", str(args.threads),
                        _pool_before(_in_process(net, False, args.threads))),
                       (f"tiles on {args.threads} threads", str(args.threads), _in_process(net, False, args.threads))],
                      xs_, len(xs_), args.repeat)

    if not args.skip_dask:
        from xbarsolve.cnn.distributed import local_cluster

        xs_ = Xm[:args.dask_images]
        _pickle_sizes(mnist_sinh)
        with local_cluster(1) as one, local_cluster(2) as two:
            for label, client in (("1 worker", one), ("2 workers", two)):
                _fresh_workers(label, client, mnist_sinh, xs_)
            _rows(f"MNIST CNN, sinh, batches of {args.dask_batch}",
                  [("in process", "default", _in_process(mnist_sinh, False, None)),
                   ("in process, one thread", "1", _one_thread(_in_process(mnist_sinh, False, None))),
                   ("Dask LocalCluster", "1 worker", _on_dask(mnist_sinh, one)),
                   ("Dask LocalCluster", "2 workers", _on_dask(mnist_sinh, two)),
                   ("Dask, network sent every call", "2 workers", _on_dask(mnist_sinh, two, resend=True))],
                  xs_, args.dask_batch, args.repeat)
    if not args.skip_jobs:
        from xbarsolve.cnn.distributed import local_cluster

        for n in (1, 2):
            t0 = time.perf_counter()
            with local_cluster(n):
                started = time.perf_counter() - t0
            print(f"  a local cluster of {n} worker(s): started in {started:.2f} s, closed in "
                  f"{time.perf_counter() - t0 - started:.2f} s (each --workers run pays both)", flush=True)
        tasks, methods = _job_methods(d)
        _rows(f"reproduce dse --quick, {len(tasks)} dense tasks (ms/task)", methods, np.zeros(len(tasks)), 1,
              args.repeat)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def _print(rows, header=False):
    if header:
        print(f"{'case':<42} {'method':<36} {'workers/threads':>15} {'ms/image':>10} {'ratio':>7} {'max |diff|':>11}")
    for case, method, workers, ms, ratio, diff in rows:
        print(f"{case:<42} {method:<36} {workers:>15} {ms:10.2f} {ratio:7.3f} {diff:11.2e}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
