"""The circuit topology of a :class:`~xbarsolve.Crossbar`: nodes, wires and terminals.

One place says which nodes the circuit has, how the wire segments join them and where
the sources and the sense grounds attach (the conventions are in ``docs/nonlinear.md``):
row ``i`` is a chain of top nodes ``T(i, 0..n-1)`` joined by ``r_row[i, k]`` and driven
by the source ``V_i`` through ``r_in[i]`` at its left end (``T(i, 0)``), right end
(``T(i, n-1)``) or both; column ``j`` is a chain of bottom nodes ``B(0..m-1, j)`` joined
by ``r_col[k, j]`` and sensed through ``r_out[j]`` into 0 V at its bottom end
(``B(m-1, j)``), top end (``B(0, j)``) or both; cell ``(i, j)`` joins ``T(i, j)`` to
``B(i, j)``, through the middle node ``M(i, j)`` when it has an access transistor.

Every solver and writer reads the circuit through :func:`topology` (derived once per
crossbar and cached on it):

* the linear block solver and the Newton solver read the :class:`Ladder` form
  (:meth:`Topology.ladder`);
* the sparse solver, conversion's refinement, the sensitivities and the netlist writer
  read the node numbering (:meth:`Topology.nodes`) and the branch list
  (:meth:`Topology.families`, :meth:`Topology.branches`), merge the nodes of 0-ohm
  branches with :func:`merge_zero_branches` and assemble nodal matrices with
  :func:`nodal_matrices`;
* conversion and the sensitivities read the :class:`Terminal` families
  (:attr:`Topology.drives`, :attr:`Topology.senses`).

Three schemes (``Crossbar.scheme``, the array topologies of CrossSim's manual; see
``docs/topologies.md``):

* ``"A"`` (the default, above): the inputs are the row voltages and the rows carry the
  cell currents.
* ``"B"``: the inputs are bits on the access transistors' gates (bit-serial, one solve
  per bit vector).  The gate lines carry no current; every cell hangs between its own
  node ``T(i, j)`` on the supply line of column ``j`` (parallel to the column, segments
  ``r_supply``, driven at ``v_read`` through ``r_supply_in`` at its top end ``T(0, j)``)
  and its column node ``B(i, j)``.  A bit 0 opens the cell (linear transistors) or puts
  the gate of a :class:`~xbarsolve.transistors.Level1` at 0 V.
* ``"C"``: interleaved differential pairs.  Rows ``2 i`` and ``2 i + 1`` are driven at
  ``+V_i`` and ``-V_i``; their cells in column ``j`` share the column node
  ``B(2 i, j) = B(2 i + 1, j)``, so the two signs cancel along the column.

A scheme is its :class:`SchemeSpec` (:data:`SCHEME_SPECS`: input count, column-wire
nodes, whether its inputs switch cells, the crossbar fields it reads and stores, its
validation), the node numbering, the branch families, how the inputs set the source nodes
(:meth:`Topology.source_map`) and the cells the inputs switch (:meth:`Topology.rows_on`,
:meth:`Topology.switching`); the crossbar, the file format, the nodal solvers and the
netlist writer read only those.

All quantities are SI: ohms, siemens, volts.  A 0-ohm resistance has an infinite
conductance here; the solvers that cannot take it check
:attr:`Topology.has_zero_resistance` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .crossbar import Crossbar, Drive, Sense
    from .transistors import Transistor

__all__ = ["Scheme", "SCHEMES", "SCHEME_SPECS", "SchemeSpec", "scheme_spec", "Topology", "Terminal", "Ladder", "Nodes",
           "Family", "BranchKind", "BRANCH_KINDS", "topology", "nodal_matrices", "merge_zero_branches"]


Scheme = Literal["A", "B", "C"]


def _any_shape(shape: tuple[int, int], drive: str) -> None:
    """Every crossbar shape and drive option is valid."""


def _paired_rows(shape: tuple[int, int], drive: str) -> None:
    if shape[0] % 2:
        raise ValueError(f"scheme 'C' pairs rows 2i (+V) and 2i+1 (-V): G needs an even number of rows; got shape {shape}")


def _no_row_drivers(shape: tuple[int, int], drive: str) -> None:
    if drive != "left":
        raise ValueError(f"scheme 'B' drives the supply lines at their top ends and has no row drivers: "
                         f"leave drive='left'; got {drive!r}")


@dataclass(frozen=True)
class SchemeSpec:
    """What an array scheme declares beyond its nodes and branches (which
    :meth:`Topology.nodes`, :meth:`Topology.families` and :meth:`Topology.source_map`
    give): read by :class:`~xbarsolve.Crossbar`, :mod:`xbarsolve.io` and the solvers.

    Attributes
    ----------
    name : str
        ``Crossbar.scheme``.
    rows_per_input : int
        Rows one input drives (C: 2, a differential pair): ``n_inputs = m // rows_per_input``.
    rows_per_line : int
        Rows whose cells meet at one column-wire node (C: 2): ``m_lines = m // rows_per_line``.
    ladder : bool
        The circuit is the ladder of row and column chains that the block solver, the
        transfer-matrix factorization and the ladder-form Newton take.
    switches : bool
        The inputs are bits that switch cells: input ``i`` switches the cells of row
        ``i`` on (1) or off (0) (:meth:`Topology.rows_on`).
    params : tuple of str
        Crossbar fields the scheme reads beyond ``G``, the wires, drivers, senses and
        models; files store them (``r_*`` as datasets in ohm, the rest as attributes).
    format_version : int
        HDF5 format version of a file that holds such a crossbar (version 1 files have
        no ``scheme`` attribute: they are scheme A).
    input_unit : str
        What one input is, for error messages.
    description : str
        One line on what the inputs drive (netlists print it).
    not_ladder : str
        Why the ladder-form solvers refuse the scheme (``""`` for a ladder).
    check : callable
        ``check(shape, drive)`` raises ValueError for a crossbar the scheme cannot take.
    """

    name: str
    rows_per_input: int
    rows_per_line: int
    ladder: bool
    switches: bool
    params: tuple[str, ...]
    format_version: int
    input_unit: str
    description: str
    not_ladder: str = ""
    check: Callable[[tuple[int, int], str], None] = _any_shape

    def __post_init__(self) -> None:
        if self.ladder and self.switches:  # the block solver and the transfer matrix take fixed cells
            raise ValueError(f"scheme {self.name!r}: a scheme whose inputs switch cells is no fixed ladder (ladder=False)")
        if self.ladder == bool(self.not_ladder):
            raise ValueError(f"scheme {self.name!r}: not_ladder must say why the scheme is no ladder, "
                             "and be empty for a ladder")


#: Every scheme, by name (``docs/topologies.md``).
SCHEME_SPECS: dict[str, SchemeSpec] = {s.name: s for s in (
    SchemeSpec("A", 1, 1, ladder=True, switches=False, params=(), format_version=1, input_unit="volts",
               description="A: the inputs are the row voltages"),
    SchemeSpec("B", 1, 1, ladder=False, switches=True, params=("r_supply", "r_supply_in", "v_read"), format_version=2,
               input_unit="bits (scheme B)",
               description="B: the inputs are bits on the access transistors' gates; supply lines at v_read run along "
                           "the columns, driven at their top ends",
               not_ladder="its cells hang between the supply and the summation lines, both parallel to the columns",
               check=_no_row_drivers),
    SchemeSpec("C", 2, 2, ladder=False, switches=False, params=(), format_version=2,
               input_unit="volts, one per row pair (scheme C)",
               description="C: interleaved pairs, row 2p at +V_p and row 2p+1 at -V_p, sharing their column nodes",
               not_ladder="two rows share each column node", check=_paired_rows),
)}
#: The built-in schemes' names.
SCHEMES: tuple[str, ...] = tuple(SCHEME_SPECS)


def scheme_spec(name: str) -> SchemeSpec:
    """The :class:`SchemeSpec` of ``name``; ValueError for an unknown scheme."""
    spec = SCHEME_SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"scheme must be one of {tuple(SCHEME_SPECS)}; got {name!r}")
    return spec


def _conductance(r: np.ndarray) -> np.ndarray:
    """``1 / r`` (S), ``inf`` for 0 ohm."""
    if r.size and not r.all():
        with np.errstate(divide="ignore"):
            return np.ascontiguousarray(1.0 / r)
    return np.ascontiguousarray(1.0 / r)


@dataclass(frozen=True, eq=False)
class Terminal:
    """The terminal branches at one end of every row (a driver) or column (a sense).

    Attributes
    ----------
    kind : {"drive", "sense", "supply"}
        Drivers join a row's end node to its source; senses join a column's end node to
        the virtual ground; supplies (scheme B) join a supply line's end node to
        ``v_read``.
    end : {"left", "right", "top", "bottom"}
        Which end of the lines.
    tag : str
        One-letter name of the end (``l``, ``r``, ``t``, ``b``), used in netlists.
    index : int
        Position of the end node along its line: 0 or -1 (the column of a driven top node,
        the row of a sensed bottom node or of scheme B's supplied top node).
    r, g : ndarray
        Resistance (ohm) and conductance (S) of each line's terminal, shape (m,) or (n,).
    """

    kind: Literal["drive", "sense", "supply"]
    end: Literal["left", "right", "top", "bottom"]
    tag: str
    index: int
    r: np.ndarray
    g: np.ndarray


@dataclass(frozen=True, eq=False)
class Ladder:
    """The crossbar as two families of chains, P and S, joined by the cells.

    ``rows_first``: the P chains are the rows (P = top nodes, S = bottom nodes, p = m,
    q = n); otherwise the columns are (p = n, q = m).  A cell quantity of shape (m, n)
    is brought into ladder order, shape (p, q), by :meth:`orient`.  Conductances in S.
    """

    rows_first: bool
    wp: np.ndarray  # (p, q-1) P chain wire conductances
    tp0: np.ndarray  # (p,) P terminal conductance at position 0 (0 where open)
    tp1: np.ndarray  # (p,) P terminal conductance at position q-1
    c: np.ndarray  # (p-1, q) S chain wire conductances between blocks a and a+1
    ts0: np.ndarray  # (q,) S terminal conductance at block 0
    ts1: np.ndarray  # (q,) S terminal conductance at block p-1
    p_diag: np.ndarray  # (p, q) wire + terminal conductance on the P chains
    s_diag: np.ndarray  # (p, q) the same on the S chains

    @property
    def p(self) -> int:
        return self.p_diag.shape[0]

    @property
    def q(self) -> int:
        return self.p_diag.shape[1]

    def orient(self, a: np.ndarray) -> np.ndarray:
        """An (m, n) cell array in ladder order (p, q), contiguous float64."""
        return np.ascontiguousarray(a if self.rows_first else np.asarray(a).T, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Nodes:
    """Numbering of the full nodal system.

    Unknown nodes first: ``T(i, j) = i n + j``, then the middle nodes ``M`` (when the
    cells have them), then the column nodes; after them the fixed nodes, the sources at
    ``n_unknown + s`` (scheme A: one per row; B: the one supply; C: one per row, ``+V``
    rows even) and the ground last.  ``T``, ``M``, ``B`` are the nodes of each cell's
    ends, (m, n); ``lines`` are the column wires' nodes (``B`` itself, except in scheme
    C where two rows share each column node: ``B = lines[i // 2]``).
    """

    T: np.ndarray  # (m, n) int
    M: np.ndarray | None
    B: np.ndarray
    src: np.ndarray  # (n_sources,)
    gnd: int
    n_unknown: int
    lines: np.ndarray  # (m_lines, n) int

    @property
    def n_nodes(self) -> int:
        """All nodes, the m + 1 fixed ones included."""
        return self.gnd + 1

    def potentials(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Potentials of every node (V): the unknowns ``x``, the sources ``u``
        (:meth:`Topology.source_values`), 0 V ground."""
        return np.concatenate([x, u, [0.0]])


@dataclass(frozen=True, eq=False)
class Family:
    """Resistive branches of one kind: ``name`` (the parameter that sets them: ``r_row``,
    ``r_col``, ``r_in``, ``r_out``; scheme B: ``r_supply``, ``r_supply_in``), their end nodes ``a``, ``b`` (1-D) and resistances
    ``r`` (ohm); ``terminal`` for the driver and sense families."""

    name: Literal["r_row", "r_col", "r_in", "r_out", "r_supply", "r_supply_in"]
    a: np.ndarray
    b: np.ndarray
    r: np.ndarray
    terminal: Terminal | None = None

    @property
    def kind(self) -> "BranchKind":
        """How netlists name and order these branches (:data:`BRANCH_KINDS`)."""
        return BRANCH_KINDS[self.name]


@dataclass(frozen=True)
class BranchKind:
    """How a netlist writes the branches of one :class:`Family` name: into ``section`` of
    the deck, named ``{prefix}_{i}_{j}`` (a wire; ``(i, j)`` its first node's row and
    column) or ``{prefix}_{tag}_{line}`` (a terminal), ordered line by line, the lines
    running ``along`` the rows or the columns."""

    section: Literal["drivers", "rows", "columns", "sense"]
    prefix: str
    along: Literal["row", "column"]


#: Every branch family name (:meth:`Topology.families`) and how netlists write it.
BRANCH_KINDS: dict[str, BranchKind] = {
    "r_in": BranchKind("drivers", "rin", "row"),
    "r_supply_in": BranchKind("drivers", "rsupin", "column"),
    "r_row": BranchKind("rows", "rrow", "row"),
    "r_supply": BranchKind("rows", "rsup", "column"),
    "r_col": BranchKind("columns", "rcol", "column"),
    "r_out": BranchKind("sense", "rout", "column"),
}


_TRANSPOSED_DRIVE = {"left": "top", "right": "bottom", "both": "both"}
_TRANSPOSED_SENSE = {"bottom": "right", "top": "left", "both": "both"}


@dataclass(frozen=True, eq=False)
class Topology:
    """Nodes, wires and terminals of an m x n crossbar (build with :func:`topology`).

    Attributes
    ----------
    m, n : int
        Rows and columns.
    drive, sense : str
        The crossbar's drive and sense options.
    r_row, r_col : ndarray
        Wire segment resistances (ohm), shapes (m, n-1) and (m-1, n).
    g_row, g_col : ndarray
        Their conductances (S; ``inf`` for 0 ohm).
    drives : tuple of Terminal
        The driven row ends, left before right (scheme B: the supply lines' top ends).
    senses : tuple of Terminal
        The sensed column ends, bottom before top.
    scheme : {"A", "B", "C"}
        The array topology (module docstring).
    r_supply : ndarray or None
        Scheme B: the supply lines' segment resistances (ohm), (m-1, n).
    v_read : float
        Scheme B: the supply voltage (V).
    """

    m: int
    n: int
    drive: Drive
    sense: Sense
    r_row: np.ndarray
    r_col: np.ndarray
    g_row: np.ndarray
    g_col: np.ndarray
    drives: tuple[Terminal, ...]
    senses: tuple[Terminal, ...]
    scheme: Scheme = "A"
    r_supply: np.ndarray | None = None
    v_read: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def spec(self) -> SchemeSpec:
        """The scheme's :class:`SchemeSpec`."""
        return SCHEME_SPECS[self.scheme]

    @property
    def n_inputs(self) -> int:
        """Entries of one input vector: m (A: row voltages; B: bits), m/2 (C: one
        voltage per differential pair of rows)."""
        return self.m // self.spec.rows_per_input

    @property
    def m_lines(self) -> int:
        """Nodes along each column wire: m, or m/2 in scheme C (two rows share one)."""
        return self.m // self.spec.rows_per_line

    @property
    def is_ladder(self) -> bool:
        """True when the circuit is the ladder of row and column chains the block solver,
        the transfer-matrix factorization and the ladder-form Newton take (scheme A)."""
        return self.spec.ladder

    @property
    def inputs_switch_cells(self) -> bool:
        """True when the inputs switch cells on and off (:meth:`rows_on`; scheme B): the
        column currents are then no linear map of the inputs."""
        return self.spec.switches

    @property
    def input_unit(self) -> str:
        """What one input is, for error messages."""
        return self.spec.input_unit

    def source_map(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """How the inputs set the source nodes (:attr:`Nodes.src`): source ``s`` sits at
        ``gain[s] * V[input[s]] + offset[s]`` (V), ``input[s] = -1`` for a constant.  A:
        row ``i`` at ``V_i``; B: one supply at ``v_read``; C: row ``2 i`` at ``+V_i``, row
        ``2 i + 1`` at ``-V_i``."""
        sm = self._cache.get("source_map")
        if sm is None:
            m = self.m
            if self.scheme == "B":
                sm = np.array([-1]), np.array([0.0]), np.array([self.v_read])
            elif self.scheme == "C":
                sm = np.repeat(np.arange(m // 2), 2), np.tile([1.0, -1.0], m // 2), np.zeros(m)
            else:
                sm = np.arange(m), np.ones(m), np.zeros(m)
            for a in sm:
                a.setflags(write=False)
            self._cache["source_map"] = sm
        return sm

    def source_values(self, V: np.ndarray) -> np.ndarray:
        """The potentials (V) of the source nodes for inputs ``V``, (k, n_inputs) ->
        (k, n_sources), by :meth:`source_map`."""
        V = np.atleast_2d(np.asarray(V, dtype=np.float64))
        if self.scheme == "A":  # the identity map (the hot path of the solvers)
            return V
        inp, gain, offset = self.source_map()
        return np.where(inp >= 0, gain * V[:, np.maximum(inp, 0)], 0.0) + offset

    @property
    def description(self) -> str:
        """One line on what the scheme's inputs drive (netlists print it)."""
        return self.spec.description

    def rows_on(self, V: np.ndarray) -> np.ndarray | None:
        """Which rows' cells the input bits ``V`` (k, m) switch on (bool, row ``i`` by bit
        ``i``; scheme B); None for the schemes whose cells are always on."""
        return np.atleast_2d(V) != 0 if self.inputs_switch_cells else None

    def switching(self, V: np.ndarray, transistor: "Transistor | None") -> tuple[np.ndarray | None, np.ndarray | None]:
        """How the inputs ``V`` (k, n_inputs) set every row's cells: ``(gates, open)``.

        ``gates`` (k, m): the gate voltage (V) of the row's access transistors, None for a
        model without a gate or a 1R array; ``open`` (k, m) bool: the rows whose cells are
        open (the transistors' channels; 1R: the cells), None when no cell is.  The rows
        :meth:`rows_on` switches off are realised by the transistor model
        (:meth:`~xbarsolve.transistors.Transistor.switched`: a gate at 0 V, or an open
        channel); a 1R cell opens.  Without switching: the model's own gate voltages
        (:meth:`~xbarsolve.transistors.Transistor.gate_voltages`) and nothing open.
        """
        V = np.atleast_2d(V)
        vg = None if transistor is None else transistor.gate_voltages(self.m)
        vg = None if vg is None else np.asarray(vg, dtype=np.float64)
        on = self.rows_on(V)
        if on is None:
            return (None if vg is None else np.broadcast_to(vg, (V.shape[0], self.m))), None
        if transistor is None:
            return None, ~on
        return transistor.switched(vg, on)

    def gate_voltages(self, transistor: "Transistor | None") -> np.ndarray:
        """Gate voltage (V) of each row's access transistors with every cell switched on,
        (m,) float64: the model's :meth:`~xbarsolve.transistors.Transistor.gate_voltages`,
        0 V for a model without a gate (the compiled kernels take one whatever the model)."""
        vg = None if transistor is None else transistor.gate_voltages(self.m)
        return np.zeros(self.m) if vg is None else np.asarray(vg, dtype=np.float64)

    def check_inputs(self, V: np.ndarray, name: str = "V") -> None:
        """Raise ValueError unless ``V`` (k, n_inputs) is valid for the scheme (B: bits 0 or 1)."""
        if self.inputs_switch_cells:
            bad = (V != 0) & (V != 1)
            if bad.any():
                idx = tuple(int(k) for k in np.argwhere(bad)[0])
                raise ValueError(f"{name} must hold input bits 0 or 1 in scheme {self.scheme} "
                                 "(bit-serial inputs on the gates); "
                                 f"{name}{list(idx)} = {float(V[idx])!r}")

    def ideal_currents(self, V: np.ndarray, G: np.ndarray) -> np.ndarray:
        """Column currents (A) with every resistance at 0 ohm and ideal transistors."""
        V = np.atleast_2d(np.asarray(V, dtype=np.float64))
        if self.scheme == "B":
            return self.v_read * (V @ G)
        if self.scheme == "C":
            return V @ (G[0::2] - G[1::2])
        return V @ G

    def require_ladder(self, what: str) -> None:
        """Raise ValueError for a scheme the ladder-form solvers cannot take (B, C)."""
        if not self.is_ladder:
            raise ValueError(
                f"{what} takes scheme 'A' only; scheme {self.scheme!r} is not a ladder of row and column chains ("
                + self.spec.not_ladder
                + "): xs.solve takes it through the sparse nodal path (linear cells) or exact Newton on the nodal system")

    @property
    def has_zero_resistance(self) -> bool:
        """True when any wire, driver or sense resistance in use is exactly 0 ohm."""
        zero = self._cache.get("zero")
        if zero is None:
            wires = (self.r_col,) + ((self.r_supply,) if self.scheme == "B" else (self.r_row,))
            zero = self._cache["zero"] = bool(not all(w.all() for w in wires)
                                              or not all(t.r.all() for t in self.drives + self.senses))
        return zero

    def terminal(self, end: str) -> Terminal | None:
        """The terminal family at ``end`` (``"left"``, ..., ``"bottom"``), or None if open."""
        for t in self.drives + self.senses:
            if t.end == end:
                return t
        return None

    def end_conductance(self, end: str) -> np.ndarray:
        """Terminal conductance (S) at ``end`` of every line, 0 where that end is open."""
        t = self.terminal(end)
        return t.g if t is not None else np.zeros(self.m if end in ("left", "right") else self.n)

    def end_resistance(self, end: str) -> np.ndarray:
        """Terminal resistance (ohm) at ``end`` of every line (``inf`` where open)."""
        t = self.terminal(end)
        return np.ascontiguousarray(t.r) if t is not None else np.full(self.m if end in ("left", "right") else self.n, np.inf)

    @property
    def transposed_ends(self) -> tuple[str, str]:
        """``(drive, sense)`` of the same circuit with rows and columns exchanged (sense
        ends become drive ends): the adjoint of the column currents."""
        return _TRANSPOSED_SENSE[self.sense], _TRANSPOSED_DRIVE[self.drive]

    # ------------------------------------------------------------- ladder form
    def ladder(self, rows_first: bool) -> Ladder:
        """The :class:`Ladder` form with the rows (``True``) or the columns as P chains."""
        self.require_ladder("the ladder form (block solver, transfer matrix, ladder Newton)")
        key = ("ladder", bool(rows_first))
        lad = self._cache.get(key)
        if lad is None:
            lad = self._cache[key] = self._ladder(bool(rows_first))
        return lad

    def _ladder(self, rows_first: bool) -> Ladder:
        ends = ("left", "right", "top", "bottom") if rows_first else ("top", "bottom", "left", "right")
        wp, c = (self.g_row, self.g_col) if rows_first else (self.g_col.T, self.g_row.T)
        wp, c = np.ascontiguousarray(wp), np.ascontiguousarray(c)
        tp0, tp1, ts0, ts1 = (np.ascontiguousarray(self.end_conductance(e), dtype=np.float64) for e in ends)
        p, q = (self.m, self.n) if rows_first else (self.n, self.m)
        p_diag = np.zeros((p, q))
        if q > 1:
            p_diag[:, :-1] += wp
            p_diag[:, 1:] += wp
        p_diag[:, 0] += tp0
        p_diag[:, -1] += tp1
        s_diag = np.zeros((p, q))
        if p > 1:
            s_diag[:-1] += c
            s_diag[1:] += c
        s_diag[0] += ts0
        s_diag[-1] += ts1
        return Ladder(rows_first, wp, tp0, tp1, c, ts0, ts1, p_diag, s_diag)

    # ------------------------------------------------------- nodes and branches
    def nodes(self, has_mid: bool = False) -> Nodes:
        """The node numbering of the full nodal system (with middle nodes or without)."""
        m, n, ml = self.m, self.n, self.m_lines
        mn = m * n
        T = np.arange(mn).reshape(m, n)
        M = T + mn if has_mid else None
        lines = (2 if has_mid else 1) * mn + np.arange(ml * n).reshape(ml, n)
        B = np.repeat(lines, 2, axis=0) if self.scheme == "C" else lines
        n_unknown = (2 if has_mid else 1) * mn + ml * n
        n_src = 1 if self.scheme == "B" else m
        return Nodes(T, M, B, n_unknown + np.arange(n_src), n_unknown + n_src, n_unknown, lines)

    def families(self, nodes: Nodes) -> list[Family]:
        """The resistive branches (wires, drivers, senses), one :class:`Family` per kind
        and terminal end, numbered by ``nodes``: row wires ``T(i, k) - T(i, k+1)``
        (row-major; scheme B: the supply segments ``T(k, j) - T(k+1, j)``), column wires
        ``B(k, j) - B(k+1, j)`` along :attr:`Nodes.lines` (row-major), then each driven
        end (``T(i, end) - source i``; B: ``T(0, j) - supply``) and each sensed end
        (``B(end, j) - ground``): the first node of a branch is always an unknown."""
        T, B = nodes.T, nodes.lines
        out = [Family("r_col", B[:-1, :].ravel(), B[1:, :].ravel(), self.r_col.ravel())]
        if self.scheme == "B":  # supply lines along the columns, driven at their top ends
            out.insert(0, Family("r_supply", T[:-1, :].ravel(), T[1:, :].ravel(), self.r_supply.ravel()))
            for t in self.drives:
                out.append(Family("r_supply_in", T[t.index, :], np.full(self.n, nodes.src[0]), t.r, t))
        else:
            out.insert(0, Family("r_row", T[:, :-1].ravel(), T[:, 1:].ravel(), self.r_row.ravel()))
            for t in self.drives:
                out.append(Family("r_in", T[:, t.index], nodes.src, t.r, t))
        for t in self.senses:
            out.append(Family("r_out", B[t.index, :], np.full(self.n, nodes.gnd), t.r, t))
        return out

    def branches(self, g_cell: np.ndarray, nodes: Nodes | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every two-terminal branch of a linear array: the :meth:`families` and the cells
        ``T(i, j) - B(i, j)`` of conductance ``g_cell`` (S, (m, n); 0 S cells left out).

        Returns the end nodes ``a``, ``b`` and the resistances ``r`` (ohm).
        """
        nodes = self.nodes() if nodes is None else nodes
        fams = self.families(nodes)
        on = g_cell > 0
        a = np.concatenate([f.a for f in fams] + [nodes.T[on]])
        b = np.concatenate([f.b for f in fams] + [nodes.B[on]])
        r = np.concatenate([np.asarray(f.r, dtype=np.float64) for f in fams] + [1.0 / g_cell[on]])
        return a, b, r


def merge_zero_branches(a: np.ndarray, b: np.ndarray, r: np.ndarray, nodes: Nodes) -> tuple[np.ndarray, int]:
    """Merge the nodes that 0-ohm branches join (exact: they sit at one potential).

    Returns the index of every node of ``nodes`` in the merged system and the number
    ``nu`` of unknowns: merged classes of unknown nodes are ``0..nu-1``; a class that
    holds a fixed node is ``nu + f``, ``f`` that node's index among the fixed potentials
    (sources, then the ground).  Without 0-ohm branches the index is the identity.

    Raises
    ------
    SingularNetworkError
        If a 0-ohm path joins two different fixed potentials.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from .errors import SingularNetworkError

    n_nodes, N = nodes.n_nodes, nodes.n_unknown
    zero = r == 0
    if not zero.any():
        return np.arange(n_nodes), N
    adj = coo_matrix((np.ones(int(zero.sum())), (a[zero], b[zero])), shape=(n_nodes, n_nodes))
    _, label = connected_components(adj, directed=False)
    fixed_of_class = np.full(label.max() + 1, -1)
    for node in range(N, n_nodes):
        cls = label[node]
        if fixed_of_class[cls] not in (-1, node - N):
            raise SingularNetworkError("a zero-resistance path shorts two ideal sources (or a source to ground)")
        fixed_of_class[cls] = node - N
    unknown = np.flatnonzero(fixed_of_class < 0)
    col = np.full(label.max() + 1, -1)
    col[unknown] = np.arange(unknown.size)
    return np.where(fixed_of_class >= 0, unknown.size + fixed_of_class, col)[label], int(unknown.size)


def nodal_matrices(a: np.ndarray, b: np.ndarray, g: np.ndarray, n_unknown: int, n_fixed: int):
    """Sparse nodal equations ``A x = R @ u`` of conductances ``g`` (S) between nodes ``a``
    and ``b``, where nodes ``>= n_unknown`` have the fixed potentials ``u``.

    Returns ``A`` (csc, ``n_unknown`` square, S) and ``R`` (csr, ``n_unknown x n_fixed``, S).
    """
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    rhs_r, rhs_c, rhs_v = [], [], []
    for x, y in ((a, b), (b, a)):
        sel = x < n_unknown
        rows.append(x[sel]); cols.append(x[sel]); vals.append(g[sel])
        both = sel & (y < n_unknown)
        rows.append(x[both]); cols.append(y[both]); vals.append(-g[both])
        tofix = sel & (y >= n_unknown)
        rhs_r.append(x[tofix]); rhs_c.append(y[tofix] - n_unknown); rhs_v.append(g[tofix])
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_unknown, n_unknown))
    R = sp.csr_matrix((np.concatenate(rhs_v), (np.concatenate(rhs_r), np.concatenate(rhs_c))), shape=(n_unknown, n_fixed))
    return A, R


def _terminals(kind, ends, r) -> tuple[Terminal, ...]:
    """Terminal families of ``kind`` at the ``ends``: (end, index, used) triples."""
    r = np.ascontiguousarray(r, dtype=np.float64)
    g = _conductance(r)
    for a in (r, g):
        a.setflags(write=False)
    return tuple(Terminal(kind, end, end[0], index, r, g) for end, index, used in ends if used)


def topology(xbar: "Crossbar") -> Topology:
    """The :class:`Topology` of ``xbar``, derived once and cached on it."""
    topo = xbar._cache.get("topology")
    if topo is None:
        left, right = xbar.drive in ("left", "both"), xbar.drive in ("right", "both")
        top, bottom = xbar.sense in ("top", "both"), xbar.sense in ("bottom", "both")
        r_row = np.ascontiguousarray(xbar.r_row_segments)
        r_col = np.ascontiguousarray(xbar.r_col_segments)
        scheme = xbar.scheme
        if scheme == "B":  # the supply lines' top ends are the driven ends
            drives = _terminals("supply", (("top", 0, True),), xbar.r_supply_in_columns)
            r_supply, v_read = np.ascontiguousarray(xbar.r_supply_segments), float(xbar.v_read)
        else:
            drives = _terminals("drive", (("left", 0, left), ("right", -1, right)), xbar.r_in_rows)
            r_supply, v_read = None, 0.0
        topo = xbar._cache["topology"] = Topology(
            xbar.m, xbar.n, xbar.drive, xbar.sense, r_row, r_col, _conductance(r_row), _conductance(r_col),
            drives,
            # bottom before top: the order of the sense resistors and ammeters in a deck
            _terminals("sense", (("bottom", -1, bottom), ("top", 0, top)), xbar.r_out_columns),
            scheme, r_supply, v_read,
        )
    return topo
