"""Large and square arrays: transfer matrix and one input vector on a fresh array.

Methods, timed in interleaved passes in one run (each measurement in a forked child
process, so that its peak RSS is its own):

- ``today``: ``xs.transfer_matrix`` / ``xs.solve`` as dispatched today (block elimination);
- ``dissection``: :func:`xbarsolve.solve.dissection.transfer_matrix_dissection`;
- ``pcg``: :func:`xbarsolve.solve.iterative.solve_small_batch` (one vector);
- ``superlu``: SciPy's SuperLU (COLAMD ordering) on the full nodal system, the
  badcrossbar-style baseline (``xbarsolve.solve.sparse.solve_sparse``);
- ``cholmod``: CHOLMOD (scikit-sparse, nested-dissection ordering ``nesdis``) on the
  symmetric nodal system; ``T`` from ``n`` solves with the sense terminals as
  right-hand sides (reciprocity), in chunks of 32.
- ``sor 1e-9`` / ``sor 3e-4``: the approximate fixed-point solver of CrossSim's
  parasitic-resistance model (:func:`fixed_point`), reimplemented here in NumPy from its
  published description because CrossSim cannot be installed from the package registries:
  the cell voltages are relaxed by ``gamma`` toward the drops that the wires' cumulative
  currents imply, until the largest change is below the tolerance (volts; 3e-4 V is 1e-3 of
  the 0.3 V input range).  ``gamma = 0.8`` converged in the fewest iterations at 64 and 128
  (0.5 and 1.0 were tried).

``err`` is the largest relative deviation of the column currents for one random input
vector (``V @ T`` for the transfer-matrix rows) from the reference: a sparse direct
solve (CHOLMOD, else SuperLU) refined twice with residuals in extended precision
(``np.longdouble``), so that it is exact for the float64 network to ~1e-16.  ``ratio`` is time / today's time.  Peak RSS is the measuring child
process's (it includes ~0.3 GiB of interpreter, NumPy, SciPy and Numba).

Usage::

    nice -n 10 python benchmarks/bench_large.py [--shapes 64 128 256 512 1024 576x64] [--passes 3]
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import time

import numpy as np
import scipy.sparse as sp

import xbarsolve as xs
from xbarsolve.solve.dissection import transfer_matrix_dissection
from xbarsolve.solve.iterative import solve_small_batch
from xbarsolve.solve.sparse import branches, solve_sparse

#: Largest array (m n cells) each slow method is run at.
LIMITS = {"sor": 256 * 256, "today": 512 * 512, "superlu_T": 128 * 128, "superlu_v": 512 * 512, "cholmod_T": 512 * 512}


def make_xbar(m: int, n: int, seed: int = 0) -> xs.Crossbar:
    rng = np.random.default_rng(seed)
    return xs.Crossbar(rng.uniform(1 / 300e3, 1 / 15e3, (m, n)), r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0)


def nodal_system(xbar: xs.Crossbar):
    """Symmetric nodal matrix of the 2 m n wire nodes, and the source injection matrix (m columns)."""
    m, n = xbar.shape
    a, b, r, _ = branches(xbar)
    g = 1.0 / r
    nu = 2 * m * n
    rows, cols, vals, src_r, src_c, src_v = [], [], [], [], [], []
    for x, y in ((a, b), (b, a)):
        unk = x < nu
        rows.append(x[unk]); cols.append(x[unk]); vals.append(g[unk])
        both = unk & (y < nu)
        rows.append(x[both]); cols.append(y[both]); vals.append(-g[both])
        src = unk & (y >= nu) & (y < nu + m)
        src_r.append(x[src]); src_c.append(y[src] - nu); src_v.append(g[src])
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nu, nu))
    R = sp.csc_matrix((np.concatenate(src_v), (np.concatenate(src_r), np.concatenate(src_c))), shape=(nu, m))
    return A, R


def sense_matrix(xbar: xs.Crossbar) -> sp.csc_matrix:
    """(2 m n, n): column currents are ``sense.T @ node_voltages``."""
    m, n = xbar.shape
    top, bottom = xbar.sense_ends
    g_out = 1.0 / xbar.r_out_columns
    rows, cols, vals = [], [], []
    for on, row in ((top, 0), (bottom, m - 1)):
        if on:
            rows.append(m * n + row * n + np.arange(n)); cols.append(np.arange(n)); vals.append(g_out)
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * m * n, n))


def cholmod_vector(xbar, V):
    from sksparse.cholmod import cholesky

    A, R = nodal_system(xbar)
    x = cholesky(A, ordering_method="nesdis")(np.asarray(R @ V.T))
    return np.asarray(sense_matrix(xbar).T @ x).T


def cholmod_transfer(xbar, chunk: int = 32):
    from sksparse.cholmod import cholesky

    A, R = nodal_system(xbar)
    factor = cholesky(A, ordering_method="nesdis")
    E = sense_matrix(xbar)
    T = np.empty((xbar.m, xbar.n))
    for j0 in range(0, xbar.n, chunk):
        X = factor(E[:, j0 : j0 + chunk].toarray())  # node voltages per unit sense injection
        T[:, j0 : j0 + chunk] = np.asarray(R.T @ X)  # reciprocity: T = R^T A^{-1} E
    return T


def reference_currents(xbar, V):
    """Column currents by a sparse direct solve refined twice in extended precision."""
    A, R = nodal_system(xbar)
    if HAVE_CHOLMOD:
        from sksparse.cholmod import cholesky

        solve = cholesky(A, ordering_method="nesdis")
    else:
        from scipy.sparse.linalg import splu

        solve = splu(A).solve
    b = np.asarray(R @ V.T).astype(np.longdouble)
    x = solve(b.astype(np.float64)).astype(np.longdouble)
    A_ld = A.astype(np.longdouble)
    for _ in range(2):
        x += solve((b - A_ld @ x).astype(np.float64))
    return np.asarray(sense_matrix(xbar).T.astype(np.longdouble) @ x, dtype=np.float64).T


def fixed_point(xbar: xs.Crossbar, v: np.ndarray, tol: float, gamma: float = 0.8, max_iter: int = 1000):
    """Column currents (1, n) of one input vector ``v`` (1, m) by successive under-relaxation
    of the cell voltages (CrossSim's scheme; uniform wire, driver and sense resistances,
    rows driven at the left, columns sensed at the bottom).  As CrossSim does, a run that
    does not converge (here: diverges, or takes ``max_iter`` iterations) is repeated with
    ``gamma`` reduced by 2 % until ``gamma`` falls below 0.01."""
    G = xbar.G
    r_in, r_row, r_col, r_out = (float(np.max(getattr(xbar, k))) for k in ("r_in", "r_row", "r_col", "r_out"))
    dV0 = np.repeat(v.reshape(-1, 1), xbar.n, axis=1)
    T, B = np.empty_like(dV0), np.empty_like(dV0)
    while gamma >= 0.01:
        dV = dV0.copy()
        first = None
        for _ in range(max_iter):
            current = G * dV
            along_row = np.cumsum(current[:, ::-1], axis=1)[:, ::-1]  # entering column k of row i
            T[:, 0] = dV0[:, 0] - r_in * along_row[:, 0]
            T[:, 1:] = T[:, :1] - r_row * np.cumsum(along_row[:, 1:], axis=1)
            down_col = np.cumsum(current, axis=0)  # leaving row k of column j downwards
            B[-1] = r_out * down_col[-1]
            B[:-1] = B[-1] + r_col * np.cumsum(down_col[:-1][::-1], axis=0)[::-1]
            err = T - B - dV
            e = np.abs(err).max()
            if e < tol:
                return current.sum(axis=0, keepdims=True)
            first = e if first is None else first
            if not e < 1e3 * first:  # diverging (or not finite)
                break
            dV += gamma * err
        gamma *= 0.98
    raise RuntimeError(f"the fixed point did not converge to {tol} V for any gamma >= 0.01")


def methods(shape):
    """``[(task, method, fn(xbar, v) -> currents (1, n))]`` run at this shape."""
    big = shape[0] * shape[1]
    out = []
    if big <= LIMITS["today"]:
        out.append(("T", "today", lambda x, v: v @ xs.transfer_matrix(x)))
    if min(shape) >= 2:
        out.append(("T", "dissection", lambda x, v: v @ transfer_matrix_dissection(x)))
    if big <= LIMITS["superlu_T"]:
        out.append(("T", "superlu", lambda x, v: v @ solve_sparse(x, np.eye(x.m)).currents))
    if HAVE_CHOLMOD and big <= LIMITS["cholmod_T"]:
        out.append(("T", "cholmod", lambda x, v: v @ cholmod_transfer(x)))
    if big <= LIMITS["today"]:
        out.append(("1 vector", "today", lambda x, v: xs.solve(x, v).currents))
    out.append(("1 vector", "pcg", lambda x, v: solve_small_batch(x, v)))
    if big <= LIMITS["sor"]:
        out.append(("1 vector", "sor 3e-4", lambda x, v: fixed_point(x, v, 3e-4)))
        out.append(("1 vector", "sor 1e-9", lambda x, v: fixed_point(x, v, 1e-9)))
    if big <= LIMITS["superlu_v"]:
        out.append(("1 vector", "superlu", lambda x, v: solve_sparse(x, v).currents))
    if HAVE_CHOLMOD:
        out.append(("1 vector", "cholmod", lambda x, v: cholmod_vector(x, v)))
    return out


try:
    import sksparse.cholmod  # noqa: F401

    HAVE_CHOLMOD = True
except ImportError:
    HAVE_CHOLMOD = False


def forked(fn, make):
    """Time ``fn(make())`` in a forked child; return ``(wall s, cpu s, peak RSS bytes, result)``.

    Calls are repeated while they add up to under 0.5 s (at most 5 times, each on a
    fresh array from ``make``, so nothing is cached) and the fastest is kept: a
    process's first call pays for cold caches and page faults that a running program
    does not.
    """
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rd)
        try:
            walls, cpus = [], []
            while not walls or (len(walls) < 5 and sum(walls) < 0.5):
                xbar = make()
                t0, c0 = time.perf_counter(), time.process_time()
                res = fn(xbar)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            payload = (min(walls), min(cpus), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, res)
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            payload = exc
        with os.fdopen(wr, "wb") as f:
            pickle.dump(payload, f)
        os._exit(0)
    os.close(wr)
    with os.fdopen(rd, "rb") as f:
        payload = pickle.load(f)
    os.waitpid(pid, 0)
    if isinstance(payload, BaseException):
        raise payload
    return payload


def parse_shape(s: str) -> tuple[int, int]:
    m, _, n = s.partition("x")
    return int(m), int(n or m)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["64", "128", "256", "512", "1024", "576x64"])
    ap.add_argument("--passes", type=int, default=3, help="interleaved passes (methods over 3 s run once)")
    ap.add_argument("--cholmod-T-max", type=int, default=LIMITS["cholmod_T"],
                    help="largest m n for CHOLMOD's transfer matrix (n solves; ~10x per doubling of the side)")
    args = ap.parse_args(argv)
    LIMITS["cholmod_T"] = args.cholmod_T_max
    shapes = [parse_shape(s) for s in args.shapes]
    print(f"load average at start: {os.getloadavg()}; CHOLMOD: {HAVE_CHOLMOD}")
    # Compile and warm every kernel in the parent, so that no child compiles.
    warm = make_xbar(16, 12)
    for _, _, fn in methods(warm.shape):
        fn(warm, np.ones((1, 16)))
    best: dict = {}
    vectors = {s: np.random.default_rng(1).uniform(-0.3, 0.3, (1, s[0])) for s in shapes}
    refs = {s: forked(lambda x: reference_currents(x, vectors[s]), lambda: make_xbar(*s))[3] for s in shapes}
    for p in range(args.passes):
        for shape in shapes:
            v = vectors[shape]
            for task, name, fn in methods(shape):
                key = (shape, task, name)
                if p > 0 and best[key][0] > 3.0:
                    continue
                wall, cpu, rss, cur = forked(lambda x: fn(x, v), lambda: make_xbar(*shape))  # fresh arrays
                old = best.get(key)
                best[key] = (min(wall, old[0]) if old else wall, min(cpu, old[1]) if old else cpu,
                             max(rss, old[2]) if old else rss, cur, (old[4] + 1) if old else 1)
                print(f"  pass {p} {shape[0]}x{shape[1]} {task} {name}: {wall:.4f} s", flush=True)
    print(f"load average at end: {os.getloadavg()}")
    print()
    print("| shape | task | method | wall s | CPU s | passes | ratio to today | err vs reference | peak RSS GiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for shape in shapes:
        for task in ("T", "1 vector"):
            rows = [(k[2], val) for k, val in best.items() if k[0] == shape and k[1] == task]
            ref = refs[shape]
            today = best.get((shape, task, "today"))
            for name, (wall, cpu, rss, cur, n_pass) in rows:
                ratio = f"{wall / today[0]:.3f}" if today else "-"
                err = f"{np.abs(cur - ref).max() / np.abs(ref).max():.1e}"
                print(f"| {shape[0]}x{shape[1]} | {task} | {name} | {wall:.4g} | {cpu:.4g} | {n_pass} | {ratio} | {err} | {rss / 2**30:.2f} |")


if __name__ == "__main__":
    main()
