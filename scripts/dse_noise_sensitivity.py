"""Is the sparse (Toeplitz) mapping more sensitive to noise than the dense (im2col) one?

A dedicated experiment for ``validation_data/dse_reproduction.md``: the MNIST CNN on
``tile x tile`` crossbars with either convolution mapping, one non-ideality at a time:

* programming error sigma (S) on every programmed conductance (after conversion, then
  recalibrated; :class:`xbarsolve.cnn.NoiseConfig`), several programming seeds;
* read noise sigma (A) on every analog output current, several noise draws of one
  programmed network (programmed once, reloaded from the cache for every sigma).

Every task records the per-image correctness on the same ``n_images`` test images, so
the accuracy drops of the two mappings are paired; one HDF5 record per task
(:func:`xbarsolve.sweeps._runner.run_tasks`: incremental, atomic, resumes).  Prints the
table (mean accuracy over seeds, its standard error, the drop from the noise-free
network) and writes a plot.

Usage::

    XBARSOLVE_DATA=... python scripts/dse_noise_sensitivity.py --out validation_data/dse \
        [--n-images 2000] [--seeds 5] [--tile 64] [--wire 0] [--bits 8] [--sigmas ...] [--read-noises ...]

Converters are ideal unless ``--bits`` is given (the ADC ranges are calibrated per tile
column in either case); ``--sigmas`` with no value leaves the programming-error tasks out.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

MAPPINGS = ("dense", "sparse")
SIGMAS = (0.5e-6, 1e-6, 2e-6)       # programming error (S)
READ_NOISES = (0.5e-6, 1e-6, 2e-6)  # read noise (A)


def build_tasks(n_images: int, seeds: int, tile: int, wire: float, sigmas=SIGMAS, read_noises=READ_NOISES,
                bits: int = 0) -> list[dict]:
    """One noise-free task per mapping, then every (sigma, seed) and (read noise, seed).
    ``bits`` (ADC/DAC resolution, 0 = ideal converters) enters a task only when set, so
    that the ideal-converter tasks keep their keys."""
    tasks = []
    for mapping in MAPPINGS:
        base = dict(mapping=mapping, tile=int(tile), wire=float(wire), n_images=int(n_images), sigma=0.0,
                    read_noise=0.0, seed=0, **({"bits": int(bits)} if bits else {}))
        tasks.append(base)
        tasks += [{**base, "read_noise": float(s), "seed": k} for s in read_noises for k in range(seeds)]
        tasks += [{**base, "sigma": float(s), "seed": k} for s in sigmas for k in range(seeds)]
    return tasks


@functools.lru_cache(maxsize=1)
def _data(data: str, n_images: int):
    from xbarsolve.sweeps.dse import _load_network

    model, x_cal, X, y = _load_network("mnist_cnn4", data, 100)
    return model, x_cal, X[:n_images], np.asarray(y[:n_images])


@functools.lru_cache(maxsize=1)
def _network(data: str, n_images: int, mapping: str, tile: int, wire: float, sigma: float, read_noise: float,
             seed: int, cache: str, bits: int = 0):
    """The prepared network (kept while tasks share it).  Only the noise-free programming
    is cached on disk: the read-noise tasks load it (read noise is not part of the
    programming, nor are the converters), a programming-error network is programmed afresh
    for its seed."""
    from xbarsolve.cnn import AnalogConfig, AnalogNetwork

    model, x_cal, _, _ = _data(data, n_images)
    cfg = AnalogConfig(rows_max=tile, cols_max=tile, conv_mapping=mapping, r_row=wire, r_col=wire, r_in=wire,
                       r_out=wire, programming_sigma=sigma, read_noise_sigma=read_noise, seed=seed,
                       dac_bits=bits or None, adc_bits=bits or None)
    net = AnalogNetwork(model, cfg, cache_dir=cache if sigma == 0 else None)
    return net.prepare(x_cal)


def run_task(task: dict, data: str, cache: str) -> dict:
    """Per-image correctness of one task (module level, so the runner can call it)."""
    t0 = time.perf_counter()
    model, _, X, y = _data(data, task["n_images"])
    net = _network(data, task["n_images"], task["mapping"], task["tile"], task["wire"], task["sigma"],
                   task["read_noise"], task["seed"] if task["sigma"] else 0, cache, task.get("bits", 0))
    prep = time.perf_counter() - t0
    # read noise: one stream per seed (the programming is the same for all seeds)
    rng = np.random.default_rng([task["seed"], 7]) if task["read_noise"] > 0 else None
    t0 = time.perf_counter()
    pred = np.concatenate([np.argmax(net.logits(X[i:i + 50], rng), axis=-1) for i in range(0, len(X), 50)])
    correct = (pred == y).astype(np.uint8)
    return {"correct": correct, "accuracy": float(correct.mean()), "n_clipped": int(net.n_clipped),
            "n_crossbars": int(net.n_crossbars), "prepare_seconds": prep, "evaluate_seconds": time.perf_counter() - t0}


def summarise(records) -> list[dict]:
    """One row per (mapping, noise kind, level): mean accuracy over seeds, its standard
    error (seeds and images), and the drop from the same mapping's noise-free network,
    paired on the images."""
    clean = {t["mapping"]: r["correct"].astype(float) for t, r in records if t["sigma"] == 0 and t["read_noise"] == 0}
    groups: dict = {}
    for t, r in records:
        kind, level = ("programming", t["sigma"]) if t["sigma"] else ("read", t["read_noise"]) if t["read_noise"] \
            else ("none", 0.0)
        groups.setdefault((t["mapping"], kind, level), []).append(r["correct"].astype(float))
    rows = []
    for (mapping, kind, level), cs in sorted(groups.items()):
        C = np.array(cs)                       # (seeds, images)
        acc = C.mean(axis=1)
        drop_per_image = clean[mapping] - C.mean(axis=0)
        n_img = C.shape[1]
        se_seeds = acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else 0.0
        se_images = drop_per_image.std(ddof=1) / np.sqrt(n_img)
        rows.append(dict(mapping=mapping, kind=kind, level=level, seeds=len(acc), accuracy=acc.mean(),
                         se=float(np.hypot(se_seeds, C.mean(axis=0).std(ddof=1) / np.sqrt(n_img))),
                         drop=float(drop_per_image.mean()), drop_se=float(np.hypot(se_seeds, se_images)),
                         drop_per_image=drop_per_image, acc_per_seed=acc))
    return rows


def table_markdown(rows) -> str:
    """Accuracy and drop per mapping and level, and the sparse-minus-dense difference of
    the drops (paired on the images; standard errors in brackets)."""
    by = {(r["mapping"], r["kind"], r["level"]): r for r in rows}
    lines = ["| non-ideality | dense acc % | sparse acc % | dense drop (pt) | sparse drop (pt) | "
             "sparse - dense (pt) |", "|---|---|---|---|---|---|"]
    for kind, unit, scale in (("none", "", 1), ("programming", "uS", 1e6), ("read", "uA", 1e6)):
        for level in sorted({r["level"] for r in rows if r["kind"] == kind}):
            d, s = by.get(("dense", kind, level)), by.get(("sparse", kind, level))
            if d is None or s is None:
                continue
            name = "none" if kind == "none" else f"{'programming sigma' if kind == 'programming' else 'read noise'} " \
                                                   f"{level * scale:g} {unit}"
            diff = s["drop_per_image"] - d["drop_per_image"]
            seeds = sum(np.var(r["acc_per_seed"], ddof=1) / r["seeds"] for r in (d, s) if r["seeds"] > 1)
            se_diff = np.sqrt(seeds + np.var(diff, ddof=1) / len(diff))
            lines.append(f"| {name} | {100 * d['accuracy']:.2f} ({100 * d['se']:.2f}) | {100 * s['accuracy']:.2f} "
                         f"({100 * s['se']:.2f}) | {100 * d['drop']:.2f} ({100 * d['drop_se']:.2f}) | "
                         f"{100 * s['drop']:.2f} ({100 * s['drop_se']:.2f}) | {100 * diff.mean():+.2f} "
                         f"({100 * se_diff:.2f}) |")
    return "\n".join(lines)


def plot(rows, path: Path, tile: int, wire: float, bits: int = 0) -> Path:
    """Accuracy against programming error and read noise, both mappings, error bars 1 SE
    (the sparse points shifted right a little so that the bars do not hide each other)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(kind, label) for kind, label in (("programming", "programming error sigma (uS)"),
                                                 ("read", "read noise sigma (uA)")) if any(r["kind"] == kind for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels) + 0.5, 3.6), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (kind, label) in zip(axes, panels):
        dx = 0.015 * max(r["level"] for r in rows if r["kind"] == kind) * 1e6
        for mapping, marker, shift in (("dense", "o", 0.0), ("sparse", "s", dx)):
            sel = sorted([r for r in rows if r["mapping"] == mapping and r["kind"] in ("none", kind)],
                         key=lambda r: r["level"])
            ax.errorbar([r["level"] * 1e6 + shift for r in sel], [100 * r["accuracy"] for r in sel],
                        yerr=[100 * r["se"] for r in sel], marker=marker, capsize=3, label=mapping)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(frameon=False)
    conv = f"{bits}-bit ADC/DAC" if bits else "ideal converters"
    fig.suptitle(f"MNIST CNN, {tile} x {tile} tiles, {wire:g}-ohm wires, {conv}:\ndense vs sparse mapping under "
                 "noise (mean of seeds, 1 SE)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    from xbarsolve.cnn.datasets import data_dir
    from xbarsolve.sweeps._runner import read_records, run_tasks

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="data folder (default $XBARSOLVE_DATA)")
    p.add_argument("--out", default="out/dse_noise", help="folder of the records, table and plot")
    p.add_argument("--cache", default=None, help="cache of the noise-free programming (default OUT/cache)")
    p.add_argument("--n-images", type=int, default=2000, help="MNIST test images (the first of the test set)")
    p.add_argument("--seeds", type=int, default=5, help="programming seeds / read-noise draws per level")
    p.add_argument("--tile", type=int, default=64, help="tile size (rows and columns)")
    p.add_argument("--wire", type=float, default=0.0, help="wire, driver and sense resistance (ohm)")
    p.add_argument("--sigmas", nargs="*", type=float, default=list(SIGMAS),
                   help="programming error sigmas (S); none: no programming-error tasks")
    p.add_argument("--read-noises", nargs="*", type=float, default=list(READ_NOISES),
                   help="read noise sigmas (A); none: no read-noise tasks")
    p.add_argument("--bits", type=int, default=0, help="ADC/DAC bits (0 = ideal converters, default)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    for name in ("n_images", "seeds", "tile"):
        if getattr(args, name) < (2 if name == "seeds" else 1):
            print(f"dse_noise_sensitivity: --{name.replace('_', '-')} must be >= {2 if name == 'seeds' else 1}; "
                  f"got {getattr(args, name)}")
            return 2
    for name in ("wire", "sigmas", "read_noises"):
        bad = [v for v in np.atleast_1d(getattr(args, name)) if not (np.isfinite(v) and v >= 0)]
        if bad or (name != "wire" and 0.0 in getattr(args, name)):
            print(f"dse_noise_sensitivity: --{name.replace('_', '-')} must be finite and "
                  f"{'>= 0' if name == 'wire' else '> 0'}; got {(bad or [0.0])[0]}")
            return 2
    data = str(data_dir(args.data))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = args.cache if args.cache is not None else str(out / "cache")
    if args.bits < 0:
        print(f"dse_noise_sensitivity: --bits must be >= 0; got {args.bits}")
        return 2
    tasks = build_tasks(args.n_images, args.seeds, args.tile, args.wire, args.sigmas, args.read_noises, args.bits)
    path = out / "dse_noise_results.h5"
    summary = run_tasks(tasks, functools.partial(run_task, data=data, cache=cache), path,
                        progress=not args.no_progress, desc="dse noise",
                        file_attrs={"job": "dse noise sensitivity", "preset": json.dumps(vars(args))})
    wanted = {json.dumps(t, sort_keys=True) for t in tasks}
    records = [(t, r) for t, r in read_records(path) if json.dumps(t, sort_keys=True) in wanted]
    rows = summarise(records)
    table = table_markdown(rows)
    (out / "dse_noise_table.md").write_text(table + "\n")
    print(table)
    print(f"wrote {plot(rows, out / 'dse_noise_sensitivity.png', args.tile, args.wire, args.bits)}")
    secs = {m: sum(r["prepare_seconds"] + r["evaluate_seconds"] for t, r in records if t["mapping"] == m) for m in MAPPINGS}
    print(f"{summary.run} task(s) run, {summary.skipped} already stored, {summary.seconds:.0f} s "
          f"(task seconds: dense {secs['dense']:.0f}, sparse {secs['sparse']:.0f}); results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
