"""Netlists of a :class:`~xbarsolve.Crossbar` for ngspice, and the simulator options.

The deck is filled into the text template ``netlists/crossbar.cir.tmpl`` (kept in the
repository so that a person can read what we hand to ngspice).  Each cell is written only
through the model protocol (``device.spice_element``, ``transistor.spice_element``, their
``spice_preamble`` and ``transistor.gate_voltages``), so new memristor or transistor
models need no change here.

Many input vectors go into one deck: a ``.control`` block that ``alter``\\ s the input
sources, runs ``op`` and appends each operating point to one binary raw file
(``set appendwrite``).  The deck is parsed once by one ngspice process, which saves a
process start and a parse per vector (each ``op`` still re-orders the sparse matrix, the
dominant cost from 32x32 on; see ``docs/spice.md``).  ``destroy all`` after each ``write``
keeps ngspice's memory flat and leaves no older operating point that a failed ``op`` could
write again; the runner counts the plots and checks every source voltage besides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Literal

import numpy as np

from ..crossbar import Crossbar
from ..topology import topology

__all__ = ["OPTIONS", "write_netlist", "Deck", "build_deck", "model_options", "RAW_FILE", "Save"]

Save = Literal["all", "currents"]

#: Simulator options written into every deck (``.options`` card).  ngspice accepts all of
#: them as given (``option`` in its console echoes them unclamped; see ``docs/spice.md``).
OPTIONS: dict[str, float | int] = {
    # Relative convergence tolerance of node voltages and branch currents between Newton
    # iterations (default 1e-3).  A linear network converges in one iteration whatever the
    # value; for nonlinear devices 1e-12 puts the Newton error well below the 1e-10 level
    # and still above the round-off jitter of successive iterates (~1e-15 relative).
    "reltol": 1e-12,
    # Absolute current tolerance (A, default 1e-12).  Cell currents are ~1e-6 A; 1e-18 A
    # keeps the absolute term from dominating reltol for any current that matters.
    "abstol": 1e-18,
    # Absolute voltage tolerance (V, default 1e-6).  Node voltages are ~0.01-1 V.
    "vntol": 1e-15,
    # Conductance (S) ngspice adds across every pn junction of semiconductor devices
    # (default 1e-12); linear elements and B-sources never see it.  A transistor model that
    # carries its own ``gmin`` (Level1) overrides this with its value (``model_options``),
    # so ngspice and our model leak the same; for any other model 1e-24 S makes the leak
    # (1e-12 A per volt at the default, 1e-6 of a microampere cell) vanish.
    "gmin": 1e-24,
    # Parallel conductance to ground at every node (S).  ngspice's default is none; written
    # explicitly so that no init file can add a leak.
    "gshunt": 0.0,
    # DC iteration limit (default 100): tight tolerances on nonlinear arrays need a few
    # more Newton steps before gmin/source stepping would kick in.
    "itl1": 500,
    # Digits of printed (ASCII) output.  The raw files we read are binary float64 and are
    # exact regardless; this only makes `print` in an interactive session show all digits.
    "numdgt": 17,
}

#: Name of the raw file the control block writes, relative to ngspice's working directory.
RAW_FILE = "xbar.raw"

#: The template as package data: in a checkout a symbolic link to the repository's
#: ``netlists/crossbar.cir.tmpl`` (the one file to edit), in a wheel a copy of it.
_TEMPLATE_PATH = Path(__file__).resolve().parent / "crossbar.cir.tmpl"


def _template() -> Template:
    try:
        return Template(_TEMPLATE_PATH.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"netlist template not found at {_TEMPLATE_PATH}: the package data of xbarsolve.spice "
            "(a link to netlists/crossbar.cir.tmpl in a checkout) is missing; reinstall xbarsolve"
        ) from None


def _num(x: float) -> str:
    """A float in the shortest form that reads back to the same double (``repr``)."""
    return repr(float(x))


@dataclass(frozen=True)
class Deck:
    """A netlist with the bookkeeping needed to read its results back.

    Attributes
    ----------
    text : str
        The netlist.
    top, bottom : ndarray of str, shape (m, n)
        ngspice node name of ``T(i, j)`` and ``B(i, j)`` (after merging 0-ohm branches).
    mid : ndarray of str, shape (m, n), or None
        Node name of ``M(i, j)``; ``""`` for open cells (G == 0); None for a 1R array.
    inputs : tuple of str
        Node name of each input's source node (``in_i``; scheme B: the node of bit ``i``;
        scheme C: the ``+V`` row of pair ``i``).
    sources : tuple of str
        Name of each input's source (``vin_i``), the ones ``alter`` sets.
    sense : tuple of (int, str)
        ``(column, ammeter name)`` of every 0-V sense source in the deck.
    """

    text: str
    top: np.ndarray
    bottom: np.ndarray
    mid: np.ndarray | None
    inputs: tuple[str, ...]
    sources: tuple[str, ...]
    sense: tuple[tuple[int, str], ...]

    def alter_commands(self, v_prev: np.ndarray | None, v_next: np.ndarray) -> list[str]:
        """ngspice ``alter`` commands that change the sources from ``v_prev`` to ``v_next`` (V)."""
        return _alter_commands(self.sources, v_prev, v_next)


def _alter_commands(sources, v_prev, v_next) -> list[str]:
    return [
        f"alter {name} dc = {_num(v)}"
        for k, (name, v) in enumerate(zip(sources, v_next))
        if v_prev is None or v_prev[k] != v
    ]


class _Merger:
    """Union-find over node names joined by 0-ohm branches; the representative of a
    class is its highest-priority name (source node, then sense node, then the rest)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    @staticmethod
    def _rank(name: str) -> tuple[int, str]:
        return (0 if name.startswith(_SOURCE_PREFIXES) else 1 if name.startswith("s_") else 2, name)

    def find(self, x: str) -> str:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            keep, drop = sorted((ra, rb), key=self._rank)
            self.parent[drop] = keep


def model_options(xbar: Crossbar) -> dict[str, float]:
    """ngspice options the cell models need for ngspice to compute what they compute: the
    union of their ``spice_options()`` (e.g. :class:`~xbarsolve.transistors.Level1` sets
    ngspice's one global ``gmin`` to its own, which it puts across its junctions as ngspice
    does).  Precedence when writing a deck: :data:`OPTIONS` < these < the caller's ``options``.
    """
    out: dict[str, float] = {}
    for model in (xbar.device, xbar.transistor):
        if model is not None:
            out.update({str(k).lower(): v for k, v in model.spice_options().items()})
    return out


#: The deck's sections of resistive branches, in order (``Family.kind.section``).
_SECTIONS = ("drivers", "rows", "columns", "sense")


#: Name prefixes of the source nodes (:func:`_source_name`).
_SOURCE_PREFIXES = ("in_", "inn_", "ing_", "sup_")


def _source_name(s: int, inp: int, gain: float) -> str:
    """Node name of source ``s`` of :meth:`Topology.source_map`: ``in_i`` at input ``i``,
    ``inn_i`` at ``-V_i``, ``ing_s`` at another multiple, ``sup_s`` at a constant."""
    if inp < 0:
        return f"sup_{s}"
    return f"in_{inp}" if gain == 1 else f"inn_{inp}" if gain == -1 else f"ing_{s}"


def _node_names(topo, nodes) -> np.ndarray:
    """ngspice name of every node of ``nodes`` (before merging): ``t_i_j``, ``m_i_j``,
    ``b_l_j`` (``l`` the column wire's node, the row pair in scheme C), the sources
    (:func:`_source_name`), ground ``0``."""
    names = np.empty(nodes.n_nodes, dtype=object)
    for arr, prefix in ((nodes.T, "t"), (nodes.M, "m"), (nodes.lines, "b")):
        if arr is not None:
            for (i, j), k in np.ndenumerate(arr):
                names[k] = f"{prefix}_{i}_{j}"
    names[nodes.src] = [_source_name(s, *sg) for s, sg in enumerate(zip(*topo.source_map()[:2]))]
    names[nodes.gnd] = "0"
    return names


def _resistive_branches(topo) -> list[tuple[str, str, str, float, str]]:
    """The wire, driver and sense branches of :meth:`Topology.families` as (name, node a,
    node b, ohm, section), in deck order: drivers and senses line by line (left before
    right, bottom before top), rows row-major, columns column-major; a sense resistor
    ends at its ammeter's node ``s_e_j``."""
    n = topo.n
    nodes = topo.nodes()
    names = _node_names(topo, nodes)
    base = nodes.lines[0, 0]
    keyed = []
    for order, fam in enumerate(topo.families(nodes)):
        kind, term = fam.kind, fam.terminal
        section = _SECTIONS.index(kind.section)
        for a, b, r in zip(fam.a.tolist(), fam.b.tolist(), fam.r.tolist()):
            i, j = divmod(a if a < base else a - base, n)  # the first node is T(i, j) or a column node
            line, pos = (i, j) if kind.along == "row" else (j, i)
            if term is None:
                name, key, ends = f"{kind.prefix}_{i}_{j}", (section, line, pos), (names[a], names[b])
            else:
                name, key = f"{kind.prefix}_{term.tag}_{line}", (section, line, order)
                # a driver from its source node; a sense resistor to its ammeter's node
                ends = (names[a], f"s_{term.tag}_{j}") if term.kind == "sense" else (names[b], names[a])
            keyed.append((key, (name, *ends, r, kind.section)))
    return [entry for _, entry in sorted(keyed, key=lambda kv: kv[0])]


def build_deck(
    xbar: Crossbar,
    V: np.ndarray,
    *,
    options: dict | None = None,
    analysis: Literal["control", "op", "none"] = "control",
    raw_file: str = RAW_FILE,
    title: str | None = None,
    save: Save = "all",
) -> Deck:
    """Build the deck of :func:`write_netlist` with its node bookkeeping (see there)."""
    from .. import __version__
    from ..solve import as_batch

    V = as_batch(xbar, V)
    if analysis not in ("control", "op", "none"):
        raise ValueError(f"analysis must be 'control', 'op' or 'none'; got {analysis!r}")
    if save not in ("all", "currents"):
        raise ValueError(f"save must be 'all' or 'currents'; got {save!r}")
    if analysis == "op" and V.shape[0] != 1:
        raise ValueError(f"analysis='op' writes a single operating point; V holds {V.shape[0]} vectors (use 'control')")
    opts = dict(OPTIONS)
    opts.update(model_options(xbar))
    for key, value in (options or {}).items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"options keys must be ngspice option names; got {key!r}")
        opts[key.lower()] = value
    m, n = xbar.shape
    topo = topology(xbar)
    branches = _resistive_branches(topo)
    sense_ends = [t.tag for t in topo.senses]

    merge = _Merger()
    for _, a, b, r, _ in branches:
        if r == 0:
            merge.union(a, b)
    node = merge.find

    lines: dict[str, list[str]] = {k: [] for k in ("drivers", "rows", "columns", "sense")}
    for name, a, b, r, section in branches:
        if r == 0:
            lines[section].append(f"* {name} {a} {b} 0 ohm: merged into node {node(a)}")
        elif node(a) == node(b):
            lines[section].append(f"* {name} {a} {b} {_num(r)} ohm: shorted by 0-ohm branches, carries no current")
        else:
            lines[section].append(f"{name} {node(a)} {node(b)} {_num(r)}")
    sense: list[tuple[int, str]] = []
    seen: set[str] = set()
    for j in range(n):
        for end in sense_ends:
            s = node(f"s_{end}_{j}")
            if s in seen:  # both ends merged: one ammeter carries the whole column current
                lines["sense"].append(f"* vsense_{end}_{j}: node {s} already has an ammeter")
                continue
            seen.add(s)
            sense.append((j, f"vsense_{end}_{j}"))
            lines["sense"].append(f"vsense_{end}_{j} {s} 0 0")

    # Input sources: vin_i sets input i at in_i; the other source nodes of the topology
    # follow it through ideal VCVSs (gain != 1) or sit at constants.
    k_in = xbar.n_inputs
    sources = tuple(f"vin_{i}" for i in range(k_in))
    inputs = [node(f"in_{i}") for i in range(k_in)]
    source_lines = [f"{sources[i]} {inputs[i]} 0 dc {_num(V[0, i])}" for i in range(k_in)]
    for s_, (inp, gain, offset) in enumerate(zip(*topo.source_map())):
        name = _source_name(s_, int(inp), float(gain))
        if inp < 0:
            source_lines.append(f"v{name} {node(name)} 0 dc {_num(offset)}")
        elif gain != 1:
            source_lines.append(f"e{name} {node(name)} 0 {inputs[inp]} 0 {_num(gain)}")

    # Cells, through the model protocol only.
    device, transistor = xbar.device, xbar.transistor
    preamble: list[str] = []
    preamble += list(device.spice_preamble())
    gates = None
    if transistor is not None:
        preamble += list(transistor.spice_preamble())
        gates = transistor.gate_voltages(m)
    gate_node = ["0"] * m
    # The cells the inputs switch off (Topology.switching): by the gate (the transistor
    # model's off state) or by an open channel (1R: an open cell), left out of the deck.
    _, opened = topo.switching(V, transistor)
    if opened is not None and (opened != opened[0]).any():
        raise ValueError(f"scheme {topo.scheme!r} with a gate-less transistor model (None, Switch, Resistor): a 0 bit "
                         "leaves its row's cells open in the deck, so one deck holds one bit pattern; V has "
                         f"{len(np.unique(opened, axis=0))} different ones (write one deck per pattern)")
    if gates is not None:
        gates = np.broadcast_to(np.asarray(gates, dtype=np.float64), (m,))
        if topo.inputs_switch_cells and opened is None:
            # the gates do the switching: gate i at v_gate times bit i, an ideal VCVS of the bit's source
            source_lines += [f"egate_{i} g_{i} 0 {inputs[i]} 0 {_num(gates[i])}" for i in range(m)]
            gate_node = [f"g_{i}" for i in range(m)]
        elif np.all(gates == gates[0]):
            source_lines.append(f"vgate g 0 dc {_num(gates[0])}")
            gate_node = ["g"] * m
        else:
            source_lines += [f"vgate_{i} g_{i} 0 dc {_num(gates[i])}" for i in range(m)]
            gate_node = [f"g_{i}" for i in range(m)]
    G = xbar.G
    nodes = topo.nodes()
    names = _node_names(topo, nodes)
    top = np.array([[node(names[nodes.T[i, j]]) for j in range(n)] for i in range(m)], dtype=object)
    bottom = np.array([[node(names[nodes.B[i, j]]) for j in range(n)] for i in range(m)], dtype=object)
    mid = None if transistor is None else np.full((m, n), "", dtype=object)
    cells: list[str] = []
    n_open = int((G == 0).sum())
    if n_open:
        cells.append(f"* {n_open} open cell(s) with G = 0 S are left out")
    off = np.zeros(m, bool) if opened is None else opened[0]
    if off.any():
        cells.append(f"* scheme {topo.scheme}: the bits open rows {np.flatnonzero(off).tolist()}: their cells' transistors "
                     "(1R: the cells) are left out")
    for i in range(m):
        for j in range(n):
            g = float(G[i, j])
            if g == 0 or (off[i] and transistor is None):
                continue
            if transistor is None:
                cells.append(device.spice_element(f"mem_{i}_{j}", top[i, j], bottom[i, j], g))
            else:
                mid[i, j] = f"m_{i}_{j}"
                cells.append(device.spice_element(f"mem_{i}_{j}", top[i, j], mid[i, j], g))
                if not off[i]:
                    cells.append(transistor.spice_element(f"acc_{i}_{j}", mid[i, j], gate_node[i], bottom[i, j]))

    if analysis == "control":
        ctl = [".control", "set filetype=binary", "set appendwrite"]
        v_prev = None
        for k, v in enumerate(V):
            ctl.append(f"* vector {k}")
            ctl += [] if v_prev is None else _alter_commands(sources, v_prev, v)
            ctl += ["op", f"write {raw_file}", "destroy all"]
            v_prev = v
        ctl += ["quit", ".endc"]  # quit: exit status 0 although no .print/.plot card ran
        analysis_text = "\n".join(["* ---- analysis: one operating point per input vector, appended to " + raw_file, *ctl])
    elif analysis == "op":
        analysis_text = "* ---- analysis\n.op"
    else:
        analysis_text = "* ---- analysis: none (the caller runs op after altering the sources)"

    if transistor is None:
        cell_desc = f"1R, device {type(device).__name__}"
    else:
        cell_desc = f"1T1M, device {type(device).__name__}, transistor {type(transistor).__name__}"
    text = _template().substitute(
        title=title or f"xbarsolve crossbar {m}x{n}",
        version=__version__,
        m=m, n=n, cell=cell_desc, drive=xbar.drive, sense_side=xbar.sense,
        options=".options " + " ".join(f"{k}={_num(v) if isinstance(v, float) else v}" for k, v in opts.items()),
        preamble="\n".join(["* ---- models", *preamble]) if preamble else "* ---- models: none",
        sources="\n".join(source_lines),
        scheme=topo.description,
        drivers="\n".join(lines["drivers"]),
        rows="\n".join(lines["rows"]) or "* (none: one column)",
        columns="\n".join(lines["columns"]) or "* (none: one row)",
        sense="\n".join(lines["sense"]),
        cells="\n".join(cells) or "* (no cells)",
        analysis=analysis_text,
        save=_save_card(save, inputs, [name for _, name in sense]),
    )
    return Deck(
        text=text, top=top, bottom=bottom, mid=mid,
        inputs=tuple(inputs), sources=sources, sense=tuple(sense),
    )


def _save_card(save: Save, inputs: list[str], ammeters: list[str]) -> str:
    """The ``.save`` card: none (ngspice saves every node voltage and source current), or
    only the source nodes (the runner checks them) and the sense ammeters."""
    if save == "all":
        return "* ---- saved vectors: all (node voltages and source currents)"
    names = [f"v({a})" for a in dict.fromkeys(inputs)] + [f"i({a})" for a in ammeters]
    return "* ---- saved vectors: the source nodes and the sense ammeters only\n.save " + " ".join(names)


def write_netlist(
    xbar: Crossbar,
    V,
    *,
    options: dict | None = None,
    analysis: Literal["control", "op", "none"] = "control",
    raw_file: str = RAW_FILE,
    title: str | None = None,
    save: Save = "all",
) -> str:
    """An ngspice netlist of a crossbar driven by one or many input vectors.

    Parameters
    ----------
    xbar : Crossbar
        The array; each cell is written through ``xbar.device.spice_element`` and
        ``xbar.transistor.spice_element`` (memristor straight from ``t_i_j`` to ``b_i_j``
        for a 1R array).  Cells with G == 0 S are left out (open).
    V : array_like, shape (m,) or (batch, m)
        Input source voltages (V).
    options : dict, optional
        ngspice ``.options`` overriding or extending :data:`OPTIONS`.
    analysis : {"control", "op", "none"}
        ``"control"``: a ``.control`` block that runs ``op`` for every vector (``alter``\\ ing
        the sources between them) and appends each operating point to the binary raw file
        ``raw_file``; run it with ``ngspice -b deck.cir``.  ``"op"``: a plain ``.op`` card for
        a single vector, for ``ngspice -b -r out.raw deck.cir``.  ``"none"``: no analysis
        (for the shared library, which runs ``op`` itself).
    raw_file : str
        Raw file written by the control block, relative to ngspice's working directory.
    title : str, optional
        First line of the deck.
    save : {"all", "currents"}
        ``"all"``: ngspice keeps every node voltage (what full results need);
        ``"currents"``: a ``.save`` card keeps only the source nodes and the sense
        ammeters (column currents), which makes the raw file of a large array
        ``O(m + n)`` instead of ``O(m n)`` per vector.

    Returns
    -------
    str
        The netlist.  Node names: ``in_i``, ``t_i_j``, ``m_i_j``, ``b_i_j``, ``s_b_j`` /
        ``s_t_j``; sources ``vin_i``; 0-V ammeters ``vsense_b_j`` / ``vsense_t_j`` whose
        current is the column current (positive out of the array into ground).  Nodes
        joined by 0-ohm branches are merged (a 0-ohm resistor is invalid in SPICE).

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> deck = xs.spice.write_netlist(xs.Crossbar(np.full((2, 2), 1e-5)), [0.1, 0.2])
    >>> "vin_1 in_1 0 dc 0.2" in deck
    True
    """
    return build_deck(xbar, V, options=options, analysis=analysis, raw_file=raw_file, title=title, save=save).text
