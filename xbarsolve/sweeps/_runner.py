"""A generic, resumable task runner writing one HDF5 record per task.

Used by every batch job (``xbarsolve reproduce crossbar``, ``xbarsolve reproduce cnn``).

API
---
``run_tasks(tasks, fn, path, *, scheduler=None, progress=True, desc=None, file_attrs=None)``

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
* Returns a :class:`RunSummary` (tasks run, skipped, seconds).

Read results with :func:`read_records` (a list of ``(task, record)`` pairs, nested dicts
of arrays and scalars) or :func:`records_table` (one array per scalar field).

Crash safety
------------
Each finished task is written to its own small file ``<path>.parts/<key>.h5``: written
under a temporary name, closed, then atomically renamed, so a part file either exists
complete or not at all.  Parts are merged into ``path`` at the start and the end of every
run (and by :func:`read_records`): the merged file is written beside ``path`` and
atomically renamed over it, and only then are the merged parts deleted; a record whose
key is already in ``path`` is never copied twice.  A ``kill -9`` at any moment therefore
loses at most the task in flight and never duplicates a record; rerunning resumes.

File layout: ``/records/<key>`` groups with attribute ``task`` (the task as JSON), the
task's fields as attributes ``task.<name>``, the record's scalars as attributes and its
arrays as datasets; root attributes ``format = "xbarsolve-records"``, ``version = 1``
and whatever ``file_attrs`` the job adds.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["task_key", "run_tasks", "read_records", "records_table", "RunSummary", "merge_parts"]

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
    import h5py  # noqa: F401

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
            group.create_dataset(name, data=arr, compression="gzip" if arr.size > 256 else None)


def _write_part(parts: Path, key: str, task: dict, record: dict) -> None:
    import h5py

    parts.mkdir(parents=True, exist_ok=True)
    final = parts / f"{key}.h5"
    tmp = parts / f"{key}.h5.tmp-{os.getpid()}"
    with h5py.File(tmp, "w") as f:
        g = f.create_group(key)
        g.attrs["task"] = json.dumps(task, sort_keys=True)
        for k, v in task.items():
            g.attrs[f"task.{k}"] = v
        _write_group(g, record)
    os.replace(tmp, final)


def _stored_keys(path: Path) -> set[str]:
    import h5py

    if not path.exists():
        return set()
    with h5py.File(path, "r") as f:
        _check_format(f, path)
        return set(f["records"].keys()) if "records" in f else set()


def _check_format(f, path) -> None:
    from ..errors import FormatError

    fmt = f.attrs.get("format")
    if fmt is not None and fmt != FORMAT:
        raise FormatError(f"{path} is not an xbarsolve records file (format {fmt!r})")
    if int(f.attrs.get("version", VERSION)) > VERSION:
        raise FormatError(f"{path} was written by a newer xbarsolve (records version {f.attrs['version']})")


def merge_parts(path, file_attrs: dict | None = None) -> int:
    """Merge finished part files into ``path`` atomically; returns the number merged."""
    import h5py

    path = Path(path)
    parts_dir = _parts_dir(path)
    for stale in path.parent.glob(path.name + ".merge-*"):
        stale.unlink(missing_ok=True)
    parts = sorted(parts_dir.glob("*.h5")) if parts_dir.is_dir() else []
    if parts_dir.is_dir():
        for stale in parts_dir.glob("*.h5.tmp-*"):  # a writer killed mid-write
            stale.unlink(missing_ok=True)
    if not parts and path.exists() and not file_attrs:
        return 0
    tmp = path.with_name(f"{path.name}.merge-{os.getpid()}")
    if path.exists():
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 24):
                dst.write(chunk)
    merged = 0
    with h5py.File(tmp, "a") as f:
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
        f.flush()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
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
    progress : bool
        Show a tqdm progress bar.
    desc : str, optional
        Label of the progress bar.
    file_attrs : dict, optional
        Root attributes to set on the results file (e.g. the job's parameters).

    Returns
    -------
    RunSummary
    """
    t0 = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    unique: dict[str, dict] = {}
    for task in tasks:
        unique.setdefault(task_key(task), dict(task))
    merge_parts(path, file_attrs)
    done = _stored_keys(path)
    pending = [(k, t) for k, t in unique.items() if k not in done]
    parts = _parts_dir(path)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), desc=desc or path.name, unit="task")
    try:
        if scheduler is None:
            for key, task in pending:
                _write_part(parts, key, task, fn(task))
                if bar is not None:
                    bar.update()
        else:
            _run_dask(pending, fn, parts, scheduler, bar)
    finally:
        if bar is not None:
            bar.close()
        merge_parts(path)
    return RunSummary(total=len(unique), run=len(pending), skipped=len(unique) - len(pending),
                      seconds=time.perf_counter() - t0, path=str(path))


def _run_dask(pending, fn, parts: Path, scheduler, bar) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("running on a cluster needs Dask: pip install 'dask[distributed]'") from exc
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        futures = {client.submit(fn, task, key=f"xbarsolve-{key}", pure=False): (key, task) for key, task in pending}
        for fut in as_completed(futures):
            key, task = futures[fut]
            _write_part(parts, key, task, fut.result())
            fut.release()
            if bar is not None:
                bar.update()
    finally:
        if own:
            client.close()


def _read_group(group) -> dict:
    import h5py

    out: dict = {}
    for k, v in group.attrs.items():
        if not k.startswith("task"):
            out[k] = v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)
    for k, v in group.items():
        out[k] = _read_group(v) if isinstance(v, h5py.Group) else v[()]
    return out


def read_records(path, *, merge: bool = True) -> list[tuple[dict, dict]]:
    """All stored ``(task, record)`` pairs of a results file, in key order.

    ``merge=True`` first merges finished part files of an interrupted run (this writes
    to ``path``); with ``merge=False`` only the merged file is read.
    """
    import h5py

    path = Path(path)
    if merge and _parts_dir(path).is_dir():
        merge_parts(path)
    if not path.exists():
        raise FileNotFoundError(f"no results file at {path}")
    out = []
    with h5py.File(path, "r") as f:
        _check_format(f, path)
        for key in sorted(f["records"].keys()) if "records" in f else []:
            g = f["records"][key]
            out.append((json.loads(g.attrs["task"]), _read_group(g)))
    return out


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
