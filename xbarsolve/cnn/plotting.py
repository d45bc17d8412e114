"""Figures and tables of the CNN study from ``xbarsolve reproduce cnn`` records.

Every plotting function takes the ``(task, record)`` pairs of
:func:`xbarsolve.sweeps._runner.read_records` and an optional matplotlib ``ax``;
matplotlib is imported only inside them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["table6_markdown", "plot_error_propagation", "plot_accuracy_vs_sigma", "plot_accuracy_vs_bits", "save_figures"]

_LABEL = {"mnist_cnn4": "4-layer CNN (MNIST)", "resnet20": "ResNet-20", "resnet32": "ResNet-32", "resnet56": "ResNet-56"}


def _tile_label(tile: int, task: dict | None = None) -> str:
    label = "one crossbar per layer" if not tile else f"{tile}x{tile} tiles"
    if task is not None and task.get("wire", 1.0) != 1.0:
        label += f", {task['wire']:g}-ohm wires"
    if task is not None and task.get("shift_reference", "digital") != "digital":
        label += ", unit reference column"
    return label


def _select(records, **match):
    """Records whose task matches; tasks with non-default wires or shift reference only
    when asked for explicitly."""
    match.setdefault("wire", 1.0)
    match.setdefault("shift_reference", "digital")
    defaults = {"wire": 1.0, "shift_reference": "digital"}
    return [(t, r) for t, r in records if all(t.get(k, defaults.get(k)) == v for k, v in match.items())]


def table6_markdown(records) -> str:
    """Table 6: accuracy (%) for software, analog without quantization and each ADC/DAC
    resolution, one row per network and crossbar size, at zero programming error."""
    rows = {}
    bits_seen = set()
    for t, r in records:
        if t["sigma"] != 0:
            continue
        key = (t["network"], t["tile"], t["n_images"], t.get("wire", 1.0), t.get("shift_reference", "digital"))
        row = rows.setdefault(key, {})
        row["software"] = r["accuracy_software"]
        row[t["bits"]] = r["accuracy_analog"]
        row.setdefault("clipped", (r["n_clipped"], r["n_cells"]))
        row.setdefault("task", t)
        bits_seen.add(t["bits"])
    bits = [0] + sorted((b for b in bits_seen if b), reverse=True)
    head = ["network", "crossbars", "images", "software", *("analog" if b == 0 else f"{b}-bit" for b in bits), "clipped cells"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {n: i for i, n in enumerate(_LABEL)}
    for (net, tile, n, *_), row in sorted(rows.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1], -kv[0][3], kv[0][4] != "digital")):
        cells = [_LABEL.get(net, net), _tile_label(tile, row["task"]), str(n), f"{100 * row['software']:.1f}"]
        cells += [f"{100 * row[b]:.1f}" if b in row else "-" for b in bits]
        c, total = row["clipped"]
        cells.append(f"{c} / {total} ({100 * c / max(total, 1):.1f} %)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_error_propagation(records, network: str, tile: int = 0, ax=None, *, wire: float = 1.0,
                           shift_reference: str = "digital", legend: bool = True):
    """Fig. 19: per-layer mean and worst relative error (% of the output range), layer alone
    and accumulated.  ``legend=False`` leaves the legend to the caller (one per figure)."""
    import matplotlib.pyplot as plt

    sel = _select(records, network=network, tile=tile, sigma=0.0, bits=0, wire=wire, shift_reference=shift_reference)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    if not sel:
        ax.set_title(f"{_LABEL.get(network, network)}: no records")
        return ax
    _, r = sel[0]
    names = r["layers"].split(",")
    k = np.arange(len(names))
    for key, style, label in (("mean_alone", "o-", "mean, layer alone"), ("worst_alone", "o--", "worst, layer alone"),
                              ("mean_accumulated", "s-", "mean, accumulated"), ("worst_accumulated", "s--", "worst, accumulated")):
        ax.semilogy(k, 100 * np.asarray(r[key]), style, label=label, ms=3)
    ax.set_xticks(k)
    ax.set_xticklabels(names, rotation=90, fontsize=7 if len(names) <= 40 else 6)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylabel("relative error\n(% of output range)")
    ax.set_title(f"{_LABEL.get(network, network)}, {_tile_label(tile, sel[0][0])}")
    if legend:
        ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return ax


def _finish_accuracy_axes(ax, tile: int, wire: float, shift_reference: str):
    """Shared ending of the accuracy figures: y label, title, legend (if any), grid."""
    ax.set_ylabel("accuracy (%)")
    ax.set_title(_tile_label(tile, {"wire": wire, "shift_reference": shift_reference}))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return ax


def plot_accuracy_vs_sigma(records, tile: int = 0, ax=None, *, wire: float = 1.0, shift_reference: str = "digital"):
    """Fig. 20: accuracy vs programming-error sigma (uS), recalibrated, ideal converters."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for net in _LABEL:
        sel = sorted(_select(records, network=net, tile=tile, bits=0, wire=wire, shift_reference=shift_reference),
                     key=lambda tr: tr[0]["sigma"])
        if sel:
            ax.plot([1e6 * t["sigma"] for t, _ in sel], [100 * r["accuracy_analog"] for _, r in sel], "o-", label=_LABEL[net])
    ax.set_xlabel("programming error sigma (uS)")
    return _finish_accuracy_axes(ax, tile, wire, shift_reference)


def plot_accuracy_vs_bits(records, tile: int = 0, ax=None, *, wire: float = 1.0, shift_reference: str = "digital"):
    """Fig. 21: accuracy vs ADC/DAC resolution; the dashed line is ideal converters."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    dashed = False
    for net in _LABEL:
        sel = _select(records, network=net, tile=tile, sigma=0.0, wire=wire, shift_reference=shift_reference)
        q = sorted((t["bits"], r["accuracy_analog"]) for t, r in sel if t["bits"])
        if q:
            line, = ax.plot([b for b, _ in q], [100 * a for _, a in q], "o-", label=_LABEL[net])
            ideal = [r["accuracy_analog"] for t, r in sel if not t["bits"]]
            if ideal:
                ax.axhline(100 * ideal[0], color=line.get_color(), ls="--", lw=0.8)
                dashed = True
    if dashed:  # one legend entry explains every dashed line
        ax.plot([], [], color="0.4", ls="--", lw=0.8, label="ideal converters")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("ADC/DAC bits")
    return _finish_accuracy_axes(ax, tile, wire, shift_reference)


def save_figures(records, out) -> list[Path]:
    """Write Figs. 19-21 as PNG files into ``out``, one set per crossbar size and variant
    (wire resistance, shift reference); returns the paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out)
    paths = []
    variants = sorted({(t["tile"], t.get("wire", 1.0), t.get("shift_reference", "digital")) for t, _ in records})
    nets = [n for n in _LABEL if any(t["network"] == n for t, _ in records)]
    for tile, wire, ref in variants:
        kw = dict(wire=wire, shift_reference=ref)
        suffix = f"tile{tile}" + (f"_wire{wire:g}" if wire != 1.0 else "") + ("_refcol" if ref != "digital" else "")
        fig, axes = plt.subplots(len(nets), 1, figsize=(10, 0.6 + 3.2 * max(len(nets), 1)), squeeze=False)
        for ax, net in zip(axes[:, 0], nets):
            plot_error_propagation(records, net, tile, ax=ax, legend=False, **kw)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=4, fontsize=9, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
        p = out / f"fig19_error_propagation_{suffix}.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
        sel = _select(records, tile=tile, **kw)
        has = {"fig20_accuracy_vs_sigma": len({t.get("sigma", 0.0) for t, _ in sel if not t.get("bits", 0)}) > 1,
               "fig21_accuracy_vs_bits": any(t.get("bits", 0) for t, _ in sel)}
        for name, fn in (("fig20_accuracy_vs_sigma", plot_accuracy_vs_sigma), ("fig21_accuracy_vs_bits", plot_accuracy_vs_bits)):
            if not has[name]:  # nothing to draw for this variant: no empty axes
                continue
            fig, ax = plt.subplots(figsize=(5, 3.5))
            fn(records, tile, ax=ax, **kw)
            fig.tight_layout()
            p = out / f"{name}_{suffix}.png"
            fig.savefig(p, dpi=120)
            plt.close(fig)
            paths.append(p)
    return paths
