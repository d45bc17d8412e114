"""Batch jobs (docs/model.md section 8): resumable sweeps, locally or on a Dask cluster.

* :func:`run_tasks` (``sweeps/_runner.py``): the generic task runner, one HDF5 record per
  task, crash-safe resume, local with a progress bar or on Dask; see its module docstring.
* :mod:`xbarsolve.sweeps.crossbar`: the single-crossbar study (``xbarsolve reproduce
  crossbar``).

Importing this package is light (NumPy only); h5py, tqdm and Dask load when used.
"""

from __future__ import annotations

from ._runner import RunSummary, merge_parts, read_records, records_table, run_tasks, task_key

__all__ = ["run_tasks", "read_records", "records_table", "task_key", "merge_parts", "RunSummary"]
