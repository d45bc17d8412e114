"""A CNN evaluation spread over the workers of a Dask cluster.

The prepared :class:`~xbarsolve.cnn.network.AnalogNetwork` (programmed crossbars,
transfer matrices, calibrations) is sent to every worker; the images are cut into the
same batches as the in-process run and every batch is one task.  Each task returns small
per-layer statistics and the predictions, which the client merges in batch order, so the
result equals :meth:`AnalogNetwork.evaluate` without a client bit for bit, on the same
number of BLAS threads as the tasks (``threads``; more threads may round a large GEMM
differently in the last bits).

The network is sent once per client: later calls with the same client reuse the copy on
the workers as long as the network is unchanged (the same pickled bytes, compared by a
BLAKE2 digest: 25 ms for the MNIST sinh CNN); a changed network (``set_quantization``, a
new ``prepare``) is sent again.  The copy is released when the network is garbage
collected or replaced.  The pickle leaves out what a worker rebuilds in milliseconds and
deterministically on first use (each crossbar's topology and Newton ladder forms: 39 MB
down to 11 MB for the MNIST CNN with sinh devices on 64x64 tiles), so the results stay
the same.  A fresh worker loads the compiled kernels from Numba's disk cache (filled by
any earlier run on this installation, e.g. the client's ``prepare``), so its first task
compiles nothing.

Workers started by Dask's nanny get ``MALLOC_TRIM_THRESHOLD_=65536`` by default
(``distributed.nanny.pre-spawn-environ``), which turns off glibc's adaptive mmap threshold:
every large temporary array is then mapped and faulted in anew.  The Newton solves of the
MNIST sinh CNN took 10x the page faults and 1.5x the CPU time that way (ad-hoc
``getrusage``).  :func:`local_cluster` starts workers without it; for a cluster of your own,
set that configuration value to ``None``.

Dask is an optional dependency (``pip install 'xbarsolve[dask]'``), imported only here.

>>> from xbarsolve.cnn.distributed import local_cluster               # doctest: +SKIP
>>> with local_cluster(2) as client:
...     report = net.evaluate(x_test, y_test, client=client)           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import time
import weakref
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    from .network import AnalogNetwork, ErrorReport

__all__ = ["evaluate", "logits", "predict", "local_cluster"]

#: Networks on the workers: network -> {client id: (digest of its pickle, future)}.
_SENT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def evaluate(net: AnalogNetwork, x: np.ndarray, labels: np.ndarray | None = None, *, client, batch_size: int = 50,
             progress: bool = False, layer_alone: bool = True, threads: int = 1) -> ErrorReport:
    """:meth:`AnalogNetwork.evaluate` with the batches run on the workers of ``client``.

    Parameters
    ----------
    net : AnalogNetwork
        A prepared network.
    x, labels, batch_size, progress, layer_alone
        As :meth:`AnalogNetwork.evaluate` (``progress`` counts finished batches).
    client : dask.distributed.Client
    threads : int
        Compiled-kernel and BLAS threads of each task (>= 1); 1 suits workers that run
        one task per core.

    Returns
    -------
    ErrorReport
        Equal to the in-process report on ``threads`` BLAS threads (``seconds``: the wall
        time here).

    Raises
    ------
    ValueError
        With read noise (one noise stream runs through all batches in order, which
        workers cannot share), ``batch_size < 1`` or ``threads < 1``; ``evaluate`` also
        without images.
    """
    t0 = time.perf_counter()
    results = _run(net, x, client, batch_size, threads, progress, layer_alone, "evaluate")
    return net._report(results, labels, layer_alone, time.perf_counter() - t0)


def logits(net: AnalogNetwork, x: np.ndarray, *, client, batch_size: int = 50, threads: int = 1) -> np.ndarray:
    """:meth:`AnalogNetwork.logits` of ``x`` in batches of ``batch_size`` images run on the
    workers of ``client`` (equal to the in-process batches' logits; arguments as
    :func:`evaluate`)."""
    parts = _run(net, x, client, batch_size, threads, False, False, "logits")
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def predict(net: AnalogNetwork, x: np.ndarray, *, client, batch_size: int = 50, threads: int = 1) -> np.ndarray:
    """:meth:`AnalogNetwork.predict` with the batches run on the workers of ``client``
    (same classes; arguments as :func:`evaluate`)."""
    parts = _run(net, x, client, batch_size, threads, False, False, "logits")
    return np.concatenate([np.argmax(y, axis=-1) for y in parts]) if parts else np.zeros(0, dtype=int)


@contextlib.contextmanager
def local_cluster(n_workers: int) -> Iterator:
    """A ``dask.distributed.LocalCluster`` of ``n_workers`` worker processes with one
    thread each (one per core), and a client of it, closed on exit.

    Unlike Dask's default, the workers keep glibc's adaptive malloc thresholds (no
    ``MALLOC_TRIM_THRESHOLD_``, see the module notes) unless that variable is set in this
    process's environment; the dashboard (if installed) on a free port.

    Raises
    ------
    ValueError
        If ``n_workers`` is not an integer >= 1.
    """
    from .quantization import check_count

    n_workers = check_count(n_workers, "n_workers")
    _client_class()
    import dask
    from dask.distributed import Client, LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
            LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        yield client


def _client_class():
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise ImportError("evaluating on a Dask cluster needs Dask: pip install 'xbarsolve[dask]' "
                          "(or 'dask[distributed]')") from exc
    return Client


def _run(net, x, client, batch_size, threads, progress, layer_alone, what) -> list:
    Client = _client_class()
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client; got {client!r}")
    net._check()
    if net.config.noise.read_noise_sigma > 0:
        raise ValueError(f"read_noise_sigma={net.config.noise.read_noise_sigma} > 0: the read noise is one random stream "
                         "through all batches in order, which workers cannot share; evaluate without client")
    for name, value in (("batch_size", batch_size), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    x = np.asarray(x, dtype=np.float64)
    from dask.distributed import as_completed

    remote = _on_workers(client, net)
    futures = [client.submit(_batch_task, remote, x[i:i + batch_size], what, layer_alone, int(threads), pure=False)
               for i in range(0, len(x), batch_size)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(futures), desc=net.model.name, unit="batch")
    try:
        for _ in as_completed(futures):
            if bar is not None:
                bar.update()
        return client.gather(futures)
    finally:
        if bar is not None:
            bar.close()
        client.cancel(futures)


def _on_workers(client, net: AnalogNetwork):
    """The future of ``net`` on every worker of ``client``: scattered on the first call and
    again only when the network's pickle changed (or the copy was lost)."""
    digest = hashlib.blake2b(pickle.dumps(net, protocol=5), digest_size=16).hexdigest()
    sent = _SENT.setdefault(net, {})
    for cid in [c for c, (_, f) in sent.items() if f.client.status in ("closing", "closed")]:
        del sent[cid]
    known = sent.get(client.id)
    if known is not None and known[0] == digest and known[1].status == "finished":
        return known[1]
    remote = client.scatter(net, broadcast=True, hash=False)
    sent[client.id] = (digest, remote)  # the previous copy is released with its future
    return remote


def _batch_task(net, xb: np.ndarray, what: str, layer_alone: bool, threads: int):
    """One batch on a worker, on ``threads`` kernel and BLAS threads."""
    from ..solve._threads import kernel_threads

    with kernel_threads(threads):
        if what == "logits":
            return net.logits(xb)
        return net._evaluate_batch(xb, None, layer_alone)


def _compiled_in_this_process() -> dict[str, int]:
    """The xbarsolve kernels this process compiled instead of loading them from Numba's
    disk cache, ``{name: signatures}``: cached kernels' cache misses, every signature of
    the kernels that are not cached on disk, and the Newton solver's specialisations for
    user-written models.  ``{}`` on a worker means that it compiled nothing."""
    import sys

    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    out = {}
    for name, mod in list(sys.modules.items()):
        if not name.startswith("xbarsolve"):
            continue
        for attr, d in list(vars(mod).items()):
            if isinstance(d, CPUDispatcher) and d.signatures:
                n = len(d.signatures) if isinstance(d._cache, NullCache) else sum(d.stats.cache_misses.values())
                if n:
                    out[f"{name}.{attr}"] = n
    specialised = getattr(sys.modules.get("xbarsolve.solve._newton_kernels"), "_SPECIALISED", None)
    if specialised:
        out["xbarsolve.solve._newton_kernels.specialise"] = len(specialised)
    return out


def _timed_logits(net: AnalogNetwork, x: np.ndarray) -> tuple[np.ndarray, dict[str, int], float]:
    """On a worker: the logits of ``x``, :func:`_compiled_in_this_process` afterwards, and
    the seconds the call took."""
    t0 = time.perf_counter()
    y = net.logits(x)
    return y, _compiled_in_this_process(), time.perf_counter() - t0

