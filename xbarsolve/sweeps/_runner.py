"""A generic, resumable task runner writing one HDF5 record per task.

Used by every batch job (``xbarsolve reproduce crossbar``, ``xbarsolve reproduce cnn``).

API
---
``run_tasks(tasks, fn, path, *, scheduler=None, workers=None, progress=True, desc=None, file_attrs=None)``

* ``tasks``: list of dicts of JSON-able scalars (str, int, float, bool).  A task's
  identity is its content: :func:`task_key` hashes the canonical JSON (sorted keys), so
  the same task always has the same key and reordering the list changes nothing.
* ``fn(task) -> record``: a module-level (picklable) function returning a dict whose
  values are NumPy arrays (stored as datasets), scalars or strings (stored as
  attributes), or nested dicts of the same (stored as subgroups).
* ``path``: the results file.  Tasks whose key is already in it are skipped.
* ``scheduler``: ``None`` runs the tasks one after the other in this process (with a
  tqdm progress bar); a Dask scheduler address (``"tcp://host:8786"``) or a
  ``dask.distributed.Client`` runs them on that cluster; the driver writes each record
  as its future completes.
* ``workers``: ``N`` starts a ``dask.distributed.LocalCluster`` of ``N`` worker
  processes with one thread each for the run (:func:`xbarsolve.cnn.distributed.local_cluster`;
  not with ``scheduler``); every task runs on one Numba and one BLAS thread there, so
  ``N`` workers share ``N`` cores without oversubscribing them.  The jobs' command lines take ``--scheduler ADDRESS`` or
  ``--workers N`` (:func:`add_cluster_arguments`).
* Returns a :class:`RunSummary` (tasks run, skipped, seconds).

Read results with :func:`read_records` (a list of ``(task, record)`` pairs, nested dicts
of arrays and scalars) or :func:`records_table` (one array per scalar field).

Crash safety
------------
Each finished task is written to its own small file ``<path>.parts/<key>.h5``: written
under a temporary name of its own (unique per writer), fsynced, then atomically renamed,
so a part file either exists complete or not at all.  Parts are merged into ``path`` at the start and the end of every
run (and by :func:`read_records`): the merged file is written beside ``path`` and
atomically renamed over it, and only then are the merged parts deleted; a record whose
key is already in ``path`` is never copied twice.  A ``kill -9`` at any moment therefore
loses at most the task in flight and never duplicates a record; rerunning resumes.
Every dataset carries a Fletcher-32 checksum; a record whose bytes changed is refused
(:class:`~xbarsolve.errors.FormatError`) when read.

One run at a time
-----------------
A run holds the lock file ``<path>.lock`` (created with ``O_CREAT | O_EXCL``; it records
the pid, host and start time) from its first merge to its last.  A second run into the
same file is refused with a :class:`~xbarsolve.errors.LockError` naming the holder, and
nothing of the first run is touched.  A lock left by a run that died (its pid no longer
exists on this host) is stale and is taken over; on another host the lock is honoured
until it is deleted by hand.  Stale temporary files are deleted only under the lock.
:func:`read_records` of a file in use reads the merged records and the finished parts
without writing anything.

File layout: ``/records/<key>`` groups with attribute ``task`` (the task as JSON), the
task's fields as attributes ``task.<name>``, the record's scalars as attributes and its
arrays as datasets; root attributes ``format = "xbarsolve-records"``, ``version = 1``
and whatever ``file_attrs`` the job adds.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .._atomic import atomic_hdf5, create_dataset, read_dataset
from ..errors import FormatError, LockError

__all__ = ["task_key", "run_tasks", "run_job", "report_job", "read_records", "records_table", "RunSummary", "merge_parts",
           "add_cluster_arguments"]

FORMAT = "xbarsolve-records"
VERSION = 1


def task_key(task: dict) -> str:
    """Stable key of a task: the first 20 hex digits of the SHA-1 of its canonical JSON."""
    try:
        text = json.dumps(task, sort_keys=True, separators=(",", ":"))
    except TypeError as exc:
        raise TypeError(f"task fields must be JSON scalars (str, int, float, bool); got {task!r}") from exc
    return hashlib.sha1(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class RunSummary:
    """What :func:`run_tasks` did: ``total`` tasks, ``run`` now, ``skipped`` (already stored), ``seconds``."""

    total: int
    run: int
    skipped: int
    seconds: float
    path: str


def _parts_dir(path: Path) -> Path:
    return path.with_name(path.name + ".parts")


def _write_group(group, data: dict) -> None:
    for name, value in data.items():
        if not isinstance(name, str) or "/" in name or name.startswith("task"):
            raise ValueError(f"record field names must be strings without '/' and not start with 'task'; got {name!r}")
        if isinstance(value, dict):
            _write_group(group.create_group(name), value)
        elif isinstance(value, str):
            group.attrs[name] = value
        elif np.ndim(value) == 0 and not isinstance(value, np.ndarray):
            group.attrs[name] = np.asarray(value)[()]
        else:
            arr = np.asarray(value)
            if arr.dtype == object:
                raise TypeError(f"record field {name!r} must be numeric or string; got an object array")
            create_dataset(group, name, arr, **({"compression": "gzip"} if arr.size > 256 and arr.ndim else {}))


def _write_part(parts: Path, key: str, task: dict, record: dict) -> None:
    parts.mkdir(parents=True, exist_ok=True)
    with atomic_hdf5(parts / f"{key}.h5") as f:
        g = f.create_group(key)
        g.attrs["task"] = json.dumps(task, sort_keys=True)
        for k, v in task.items():
            g.attrs[f"task.{k}"] = v
        _write_group(g, record)


def _stored_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with _open(path) as f:
        _check_format(f, path)
        return set(f["records"].keys()) if "records" in f else set()


def _check_format(f, path) -> None:
    from ..io import format_version

    fmt = f.attrs.get("format")
    if fmt is not None and fmt != FORMAT:
        raise FormatError(f"{path} is not an xbarsolve records file (format {fmt!r})")
    version = format_version(f.attrs.get("version", VERSION), path)
    if version > VERSION:
        raise FormatError(f"{path} was written by a newer xbarsolve (records version {version})")
    if version < 1:
        raise FormatError(f"{path} has an invalid records version {version} (versions start at 1)")


def _open(file: Path):
    """Open an HDF5 file for reading; :class:`FormatError` when it is not one."""
    import h5py

    try:
        return h5py.File(file, "r")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise FormatError(f"{file} is not a readable HDF5 file: {exc}") from None


# ------------------------------------------------------------------------- lock
#: Locks this process holds: lock path -> (token, depth), so nested users share one.
_HELD: dict[str, tuple[str, int]] = {}


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _start_time(pid: int) -> str | None:
    """Kernel start time of a process (Linux ``/proc``), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(owner: dict) -> bool:
    """True when the lock's holder is certainly gone: a dead (or reused) pid on this host."""
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return False
    pid = owner["pid"]
    if not _alive(pid):
        return True
    started = owner.get("started")
    return started is not None and _start_time(pid) not in (None, started)


def _read_owner(lock: Path) -> dict | None:
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


@contextlib.contextmanager
def _locked(path: Path):
    """Hold ``<path>.lock`` for the block (re-entrant within this process)."""
    lock = _lock_path(path)
    key = str(lock.resolve())
    if key in _HELD:
        token, depth = _HELD[key]
        _HELD[key] = (token, depth + 1)
        try:
            yield
        finally:
            token, depth = _HELD[key]
            _HELD[key] = (token, depth - 1)
        return
    token = _acquire(lock)
    _HELD[key] = (token, 1)
    try:
        yield
    finally:
        del _HELD[key]
        owner = _read_owner(lock)
        if owner is not None and owner.get("token") == token:
            lock.unlink(missing_ok=True)


def _acquire(lock: Path) -> str:
    lock.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": _start_time(os.getpid()),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "argv": sys.argv[:8], "token": token}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read_owner(lock)
            if owner is None:  # being written this instant, or left empty by a crash
                try:
                    age = time.time() - lock.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age < 10.0:
                    time.sleep(0.2)
                    continue
                lock.unlink(missing_ok=True)
                continue
            if _is_stale(owner):
                # Re-read just before removing, so that a lock another process took over in
                # the meantime is not removed.
                if _read_owner(lock) == owner:
                    lock.unlink(missing_ok=True)
                continue
            raise LockError(
                f"{lock.with_suffix('')} is in use by another run (pid {owner.get('pid')} on {owner.get('host')}, "
                f"since {owner.get('time')}); wait for it to finish or write elsewhere; if that run is gone, "
                f"delete {lock}", lock=str(lock), owner=owner,
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return token
    raise LockError(f"could not take the lock {lock}: another process keeps creating it; delete it if no run is "
                    f"writing {lock.with_suffix('')}", lock=str(lock))


def _remove_stale_temporaries(path: Path, parts_dir: Path) -> None:
    """Delete temporary files of runs that died (only called under the lock)."""
    patterns = [(path.parent, f".{path.name}.????????.tmp"), (path.parent, f"{path.name}.merge-*")]
    if parts_dir.is_dir():
        patterns += [(parts_dir, ".*.h5.????????.tmp"), (parts_dir, "*.h5.tmp-*")]
    for folder, pattern in patterns:
        for stale in folder.glob(pattern):
            stale.unlink(missing_ok=True)


def merge_parts(path, file_attrs: dict | None = None) -> int:
    """Merge finished part files into ``path`` atomically; returns the number merged.

    Raises
    ------
    LockError
        If another run holds ``path``'s lock.
    """
    import h5py

    path = Path(path)
    parts_dir = _parts_dir(path)
    with _locked(path):
        _remove_stale_temporaries(path, parts_dir)
        parts = sorted(parts_dir.glob("*.h5")) if parts_dir.is_dir() else []
        if not parts and path.exists() and not file_attrs:
            return 0
        merged = 0
        with atomic_hdf5(path, copy_of=path if path.exists() else None) as f:
            _check_format(f, path)
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            for k, v in (file_attrs or {}).items():
                f.attrs[k] = v
            records = f.require_group("records")
            for part in parts:
                key = part.name[: -len(".h5")]
                if key in records:
                    continue
                with h5py.File(part, "r") as p:
                    p.copy(p[key], records, name=key)
                merged += 1
        for part in parts:
            part.unlink(missing_ok=True)
        try:
            parts_dir.rmdir()
        except OSError:
            pass
    return merged


def run_tasks(
    tasks: Iterable[dict],
    fn: Callable[[dict], dict],
    path,
    *,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
    desc: str | None = None,
    file_attrs: dict | None = None,
) -> RunSummary:
    """Run every task not yet stored in ``path`` and store one record per task.

    Parameters
    ----------
    tasks : iterable of dict
        Tasks (JSON scalars only); duplicates are run once.
    fn : callable
        ``fn(task) -> dict`` (module-level, picklable for Dask).
    path : str or Path
        The HDF5 results file (created if missing; parent folders too).
    scheduler : str or dask.distributed.Client, optional
        Dask scheduler address or client; ``None`` runs locally, in order.
    workers : int, optional
        Run on a new local Dask cluster of this many single-threaded worker processes
        (>= 1; see the module notes); not together with ``scheduler``.
    progress : bool
        Show a tqdm progress bar.
    desc : str, optional
        Label of the progress bar.
    file_attrs : dict, optional
        Root attributes to set on the results file (e.g. the job's parameters).

    Returns
    -------
    RunSummary

    Raises
    ------
    LockError
        If another run is writing ``path`` (see "One run at a time" in the module notes).
    ValueError
        If ``workers`` is not an integer >= 1, or is given with ``scheduler``.
    """
    if workers is not None:
        from ..cnn.quantization import check_count  # the cluster needs the cnn package anyway

        workers = check_count(workers, "workers")
        if scheduler is not None:
            raise ValueError(f"pass either scheduler or workers, not both; got scheduler={scheduler!r} and workers={workers}")
    t0 = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    unique: dict[str, dict] = {}
    for task in tasks:
        unique.setdefault(task_key(task), dict(task))
    with _locked(path):
        merge_parts(path, file_attrs)
        done = _stored_keys(path)
        pending = [(k, t) for k, t in unique.items() if k not in done]
        parts = _parts_dir(path)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(pending), desc=desc or path.name, unit="task")
        try:
            if scheduler is None and workers is None:
                for key, task in pending:
                    _write_part(parts, key, task, fn(task))
                    if bar is not None:
                        bar.update()
            elif pending:
                _run_dask(pending, fn, parts, scheduler, workers, bar)
        finally:
            if bar is not None:
                bar.close()
            merge_parts(path)
    return RunSummary(total=len(unique), run=len(pending), skipped=len(unique) - len(pending),
                      seconds=time.perf_counter() - t0, path=str(path))


def run_job(tasks: list[dict], fn, path, *, job: str, preset: dict, scheduler=None, workers: int | None = None,
            progress: bool = True) -> tuple[RunSummary, list[tuple[dict, dict]]]:
    """Run a batch job's tasks into ``path`` (:func:`run_tasks`) and return the summary and
    the records of exactly these tasks (a results file may also hold other presets').

    ``job`` names the job in the progress bar and the file's ``job`` attribute; ``preset``
    (JSON-serialisable) is stored as the file's ``preset`` attribute.
    """
    summary = run_tasks(tasks, fn, path, scheduler=scheduler, workers=workers, progress=progress, desc=job,
                        file_attrs={"job": job, "preset": json.dumps(preset)})
    wanted = {json.dumps(t, sort_keys=True) for t in tasks}
    records = [(t, r) for t, r in read_records(path) if json.dumps(t, sort_keys=True) in wanted]
    return summary, records


def report_job(out: Path, path, summary: RunSummary, table_name: str, table: str, figures=None) -> int:
    """Write a job's markdown table to ``out / table_name`` and print it, then the files of
    ``figures`` (an iterable of paths written, or None for no plots) and the run summary.
    Returns 0 (the job's exit status)."""
    (Path(out) / table_name).write_text(table + "\n")
    print(table)
    for f in figures or ():
        print(f"wrote {f}")
    print(f"{summary.run} task(s) run, {summary.skipped} already stored, {summary.seconds:.0f} s; results in {path}")
    return 0


def add_cluster_arguments(p) -> None:
    """The batch jobs' ``--scheduler ADDRESS`` and ``--workers N`` options (one of them)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="Dask scheduler address, e.g. tcp://host:8786 (default: run in this process)")
    where.add_argument("--workers", type=_workers_count, default=None, metavar="N",
                       help="run on a local Dask cluster of N single-threaded worker processes (one per core)")


def _workers_count(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (worker processes); got {text!r}")
    return n


def _run_dask(pending, fn, parts: Path, scheduler, workers: int | None, bar) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("running on a cluster needs Dask: pip install 'dask[distributed]'") from exc
    with contextlib.ExitStack() as stack:
        if workers is not None:
            from ..cnn.distributed import local_cluster

            client = stack.enter_context(local_cluster(workers))
            fn = functools.partial(_on_one_thread, fn)
        else:
            client = scheduler if isinstance(scheduler, Client) else stack.enter_context(Client(scheduler))
        futures = {client.submit(fn, task, key=f"xbarsolve-{key}", pure=False): (key, task) for key, task in pending}
        for fut in as_completed(futures):
            key, task = futures[fut]
            _write_part(parts, key, task, fut.result())
            fut.release()
            if bar is not None:
                bar.update()


def _on_one_thread(fn, task: dict) -> dict:
    """``fn(task)`` on one Numba and one BLAS thread (a worker of ``--workers``: one per core)."""
    from ..solve._threads import kernel_threads

    with kernel_threads(1):
        return fn(task)


def _read_group(group, path) -> dict:
    import h5py

    out: dict = {}
    for k, v in group.attrs.items():
        if not k.startswith("task"):
            out[k] = v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)
    for k, v in group.items():
        out[k] = _read_group(v, path) if isinstance(v, h5py.Group) else read_dataset(v, path)
    return out


def read_records(path, *, merge: bool = True) -> list[tuple[dict, dict]]:
    """All stored ``(task, record)`` pairs of a results file, in key order.

    ``merge=True`` first merges finished part files of an interrupted run (this writes
    to ``path``); while another run holds the file, nothing is written and the finished
    parts are read beside the merged records.  With ``merge=False`` only the merged file
    is read.
    """
    path = Path(path)
    parts: list[Path] = []
    if merge and _parts_dir(path).is_dir():
        try:
            merge_parts(path)
        except LockError:
            parts = sorted(_parts_dir(path).glob("*.h5"))
    if not path.exists() and not parts:
        raise FileNotFoundError(f"no results file at {path}")
    found: dict[str, tuple[dict, dict]] = {}
    # Parts first: one that the other run merges and deletes meanwhile is in path by then.
    for file in parts + ([path] if path.exists() else []):
        try:
            f = _open(file)
        except FileNotFoundError:  # a part merged by the other run meanwhile; it is in path now
            continue
        with f:
            if file == path:
                _check_format(f, path)
            groups = f["records"] if file == path and "records" in f else (f if file != path else {})
            for key in groups.keys():
                if key not in found:
                    g = groups[key]
                    found[key] = (json.loads(g.attrs["task"]), _read_group(g, file))
    return [found[k] for k in sorted(found)]


def records_table(records: list[tuple[dict, dict]], fields: Iterable[str]) -> dict[str, np.ndarray]:
    """One array per task field and per requested record field (``"a/b"`` reaches into
    nested dicts), rows in the order of ``records``."""
    records = list(records)
    table: dict[str, list] = {}
    task_fields = sorted({k for t, _ in records for k in t})
    for k in task_fields:
        table[k] = [t.get(k) for t, _ in records]
    for field_ in fields:
        col = []
        for _, r in records:
            v: Any = r
            for part in field_.split("/"):
                v = v[part]
            col.append(v)
        table[field_] = col
    return {k: np.asarray(v) for k, v in table.items()}
