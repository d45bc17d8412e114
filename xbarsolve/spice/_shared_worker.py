"""Worker process of the shared-library route (run as a script, never imported by xbarsolve).

``python _shared_worker.py request.json result.npz`` loads ngspice's shared library through
PySpice, loads the deck once, and for every input vector sends the ``alter`` commands, runs
``op``, copies the operating point out of ngspice's memory and destroys the plot.  The process
then exits, which is what frees the circuit: libngspice keeps every loaded circuit until the
process ends, so one short-lived process per deck bounds the memory whatever the caller does.

PySpice's own log messages (it calls ngspice-39 an unsupported version) and ngspice's console
output stay in this process's stdout/stderr, which the parent only shows on failure.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np


def _plot_vectors(ng, ffi, plot: str) -> tuple[list[str], list[float]]:
    lib = ng._ngspice_shared
    names_c = lib.ngSpice_AllVecs(plot.encode())
    names, values = [], []
    k = 0
    while names_c[k] != ffi.NULL:
        name = ffi.string(names_c[k]).decode()
        info = lib.ngGet_Vec_Info(f"{plot}.{name}".encode())
        if info != ffi.NULL and info.v_realdata != ffi.NULL and info.v_length >= 1:
            names.append(name)
            values.append(float(info.v_realdata[info.v_length - 1]))
        k += 1
    return names, values


def main(request_path: str, result_path: str) -> None:
    with open(request_path) as fh:
        request = json.load(fh)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi
    ng = NgSpiceShared.new_instance()
    ng.load_circuit(request["deck"])
    names: list[str] | None = None
    rows = []
    for commands in request["vectors"]:
        for command in commands:
            ng.exec_command(command)
        ng.exec_command("op")
        plot = ng.last_plot
        if not plot.startswith("op"):
            raise RuntimeError(f"ngspice op produced no operating point (current plot {plot!r}): {ng.stdout}")
        vec_names, values = _plot_vectors(ng, ffi, plot)
        if names is None:
            names = vec_names
        elif vec_names != names:
            raise RuntimeError("ngspice returned a different set of vectors for a later input vector")
        rows.append(values)
        ng.exec_command(f"destroy {plot}")
    circuits = [line for line in ng.exec_command("setcirc", join_lines=False) if line.strip()]
    np.savez(
        result_path, names=np.array(names or [], dtype=str), values=np.array(rows, dtype=np.float64),
        pid=os.getpid(), setcirc="\n".join(circuits), plots=np.array(ng.plot_names, dtype=str),
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
