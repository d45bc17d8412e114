"""Cost of an analog network per inference: crossbars, converters, energy, area, latency.

For a prepared :class:`xbarsolve.cnn.AnalogNetwork` and a batch of images, every tile's
actual DAC voltages of the forward pass are collected; per image:

- **counts**: crossbars and cells; one DAC per crossbar row, one ADC per
  ``table.adc_columns_count`` analog outputs of a crossbar, one shift-and-add unit per
  ``table.adcs_per_shift_add_count`` ADCs, one sample-and-hold per analog output;
- **cycles**: sliding windows (input vectors) times input passes (a second pass for the
  negative part of signed inputs); tiles of a layer work in parallel, one read cycle per
  pass, and the layers run one after another (no pipelining);
- **conversions**: DAC = cycles x rows, ADC = cycles x analog outputs, per tile;
- **energy**: analog read = the exact read power of each pass (linear arrays: ``<P, C>``
  for the quadratic forms ``P`` and the inputs' Gram matrix ``C = sum_w V_w V_w^T``,
  :mod:`~xbarsolve.cost.grams`; from the cached forms, or as the read power of the
  synthetic vectors of ``C``, :func:`~xbarsolve.cost.power.gram_energy`; Newton per vector
  otherwise) x ``table.read_cycle_ns``; DAC and ADC = conversions x energy per conversion at the
  layer's resolution; digital = sample-and-hold and shift-and-add per ADC conversion and
  buffer accesses for the DAC input bits and the ADC output bits;
- **area**: cells, per-crossbar overhead, converters, sample-and-holds, shift-and-adds.

An ideal converter (``dac_bits`` / ``adc_bits`` None) is costed at the table's reference
resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .grams import Windows, row_block_grams
from .power import _CACHE_KEY, TERMS, gram_energy, gram_factor, has_forms, one_blas_thread, power_matrices, read_power, uses_forms
from .tables import ISAAC, CostTable

__all__ = ["LayerCost", "NetworkCost", "network_cost"]

_ENERGY = ("read_pJ", "dac_pJ", "adc_pJ", "digital_pJ")


@dataclass(frozen=True)
class LayerCost:
    """Cost of one analog layer, per inference (energies in pJ, areas in um^2, latency in ns).

    ``read_split_pJ`` splits ``read_pJ`` into cells, row wires, column wires, drivers and
    sense resistances (:data:`~xbarsolve.cost.TERMS` order).  ``read_vectors`` input
    vectors (of ``windows`` x images) gave the read energy; when they are a random sample,
    ``read_stderr_pJ`` is the standard error of its estimate (0 when exact).
    """

    name: str
    n_crossbars: int
    n_cells: int
    n_dac: int
    n_adc: int
    dac_bits: int
    adc_bits: int
    windows: float
    cycles: float
    dac_conversions: float
    adc_conversions: float
    read_pJ: float
    read_split_pJ: tuple[float, ...]
    read_vectors: int
    read_stderr_pJ: float
    dac_pJ: float
    adc_pJ: float
    digital_pJ: float
    crossbar_area_um2: float
    converter_area_um2: float
    digital_area_um2: float
    latency_ns: float

    @property
    def energy_pJ(self) -> float:
        """Analog read, DAC, ADC and digital energy per inference (pJ)."""
        return self.read_pJ + self.dac_pJ + self.adc_pJ + self.digital_pJ

    @property
    def area_um2(self) -> float:
        return self.crossbar_area_um2 + self.converter_area_um2 + self.digital_area_um2


@dataclass(frozen=True)
class NetworkCost:
    """Per-layer and total cost of an analog network per inference."""

    layers: tuple[LayerCost, ...]
    table_name: str
    n_images: int

    def total(self, field: str) -> float:
        """Sum of a :class:`LayerCost` field or property over the layers."""
        return float(sum(getattr(c, field) for c in self.layers))

    @property
    def energy_pJ(self) -> float:
        return self.total("energy_pJ")

    @property
    def area_um2(self) -> float:
        return self.total("area_um2")

    @property
    def latency_ns(self) -> float:
        return self.total("latency_ns")

    @property
    def read_stderr_pJ(self) -> float:
        """Standard error of the total read energy (pJ); 0 when every vector was read."""
        return float(np.sqrt(sum(c.read_stderr_pJ**2 for c in self.layers)))

    def table(self) -> str:
        """A plain-text table: counts, energy split (nJ per inference), area (mm^2), latency (us)."""
        head = (f"{'layer':<16} {'xbars':>5} {'cells':>9} {'DACs':>6} {'ADCs':>5} {'DAC conv':>10} {'ADC conv':>10} "
                f"{'cycles':>7} | {'read nJ':>9} {'DAC nJ':>9} {'ADC nJ':>9} {'dig. nJ':>9} {'total nJ':>9} | "
                f"{'mm^2':>8} {'us':>8}")
        rows = [head, "-" * len(head)]

        def line(name, get):
            return (f"{name:<16} {get('n_crossbars'):5.0f} {get('n_cells'):9.0f} {get('n_dac'):6.0f} {get('n_adc'):5.0f} "
                    f"{get('dac_conversions'):10.0f} {get('adc_conversions'):10.0f} {get('cycles'):7.0f} | "
                    + " ".join(f"{get(k) * 1e-3:9.3f}" for k in (*_ENERGY, "energy_pJ"))
                    + f" | {get('area_um2') * 1e-6:8.4f} {get('latency_ns') * 1e-3:8.2f}")

        for c in self.layers:
            rows.append(line(c.name, lambda k, c=c: getattr(c, k)))
        rows.append("-" * len(head))
        rows.append(line("total", self.total))
        rows.append(f"per inference, mean of {self.n_images} image(s); table: {self.table_name}")
        return "\n".join(rows)


def _read_terms(tiles, V: np.ndarray, per_vector: bool = False):
    """Read power of one input pass for the tiles of one layer: the per-term sums over the
    vectors (W) and, with ``per_vector``, each vector's total (W, shape (batch,)).

    Linear tiles with the quadratic forms (see :func:`~xbarsolve.cost.power.uses_forms`):
    ``sum_w V_w P V_w = <P, sum_w V_w V_w^T>``, with one Gram matrix per row block (shared
    by the tiles of that block); otherwise a solve per vector (Newton for nonlinear tiles).
    The sampled estimate's path, and (with ``grams="gemm"`` in :func:`_layer_cost`) the
    exact one's before window Gram matrices (kept to time and test against).
    """
    grams: dict[tuple[int, int], np.ndarray] = {}
    sums = np.zeros(len(TERMS))
    totals = np.zeros(V.shape[0]) if per_vector else None
    for t in tiles:
        Vt = V[:, t.rows]
        if not uses_forms(t.crossbar, Vt.shape[0]):
            p = read_power(t.crossbar, Vt, method="solve")
            sums += [float(getattr(p, k).sum()) for k in TERMS]
            if per_vector:
                totals += p.total
            continue
        key = (t.rows.start, t.rows.stop)
        if key not in grams:
            grams[key] = Vt.T @ Vt
        sums += _stacked_forms(t.crossbar) @ grams[key].ravel()
        if per_vector:
            totals += ((Vt @ power_matrices(t.crossbar)["total"]) * Vt).sum(axis=1)
    return sums, totals


def _sampled_read(tiles, parts, n_vectors: int):
    """Per-term sums (W) over ``n_vectors`` estimated from the sampled vectors of ``parts``
    (scaled by ``n_vectors / sample``), and the standard error of their total."""
    results = [_read_terms(tiles, V, per_vector=True) for _, V in parts]
    sums = sum(r[0] for r in results)
    totals = sum(r[1] for r in results)
    s = totals.shape[0]
    stderr = n_vectors * totals.std(ddof=1) / np.sqrt(s) * np.sqrt(1 - s / n_vectors) if s > 1 else 0.0
    return sums * (n_vectors / s), float(stderr)


_FORMS_KEY = "xbarsolve.cost.network.stacked_forms"


def _stacked_forms(xbar) -> np.ndarray:
    """The :data:`TERMS` quadratic forms of a crossbar as the rows of one (5, m*m) array
    (cached on it), so that one product gives every term's ``<P, C>``."""
    F = xbar._cache.get(_FORMS_KEY)
    if F is None:
        P = power_matrices(xbar)
        F = xbar._cache[_FORMS_KEY] = np.stack([P[k].ravel() for k in TERMS])
        F.setflags(write=False)
    return F


def _stride1_windows(al, x: np.ndarray):
    """``(kernel_hw, pads)`` when the crossbar vectors of ``al`` are the stride-1 im2col
    windows of its input ``x`` and zero padding reads as 0 V, so that the Gram matrices of
    the windows' DAC voltages follow from the voltages of the feature map
    (:class:`~xbarsolve.cost.grams.Windows`); None otherwise."""
    from ..cnn.layers import Conv2D

    layer = al.layer
    if getattr(al, "sparse", True) or not isinstance(layer, Conv2D) or tuple(layer.strides) != (1, 1):
        return None
    if x.ndim != 4 or any(V.any() for _, V in al._voltages(np.zeros((1, 1)), al.dac_bits)):
        return None
    return layer.kernel.shape[:2], layer.pads(x.shape[1:3])


Grams = Literal["auto", "gemm"]
Read = Literal["auto", "forms"]


_COSTINGS_KEY = "xbarsolve.cost.network.costings"


def forms_after(xbar) -> int:
    """The full solves (of m synthetic vectors each; a costing of r < m vectors counts
    r / m, :func:`_forms_due`) after which :func:`network_cost` builds a linear crossbar's
    read-power forms instead of solving synthetic vectors again: ``ceil(2 sqrt(p / q))``
    (p, q the larger and smaller side).  Building the forms costs about that many full solves of m
    vectors (measured: 2x on 64 x 64, 6x on 576 x 64; BENCHMARKS.md section 7), so, as in
    ski rental, a crossbar costed once never pays for them and one costed many times pays
    at most twice what the better choice in hindsight would have."""
    p, q = max(xbar.shape), min(xbar.shape)
    return max(2, math.ceil(2.0 * math.sqrt(p / q)))


def _forms_due(xbar, vectors: int, copies: int) -> bool:
    """Count a costing of ``vectors`` input vectors on ``xbar`` (on each of ``copies`` tiles
    that program the same circuit); True when its forms are due.

    A costing solves ``r = min(vectors, m)`` synthetic vectors, so it is counted as
    ``r / m`` of a full solve of m vectors, and the forms are due once the costings add up
    to :func:`forms_after` full solves: at the second costing of a crossbar that reads at
    least m vectors, as the ski-rental rule says, but only after ``forms_after * m / r``
    costings of one read by a few (a 64 x 64 tile reading 5 vectors: 26, where its
    synthetic vectors take ~1.6 ms and the forms ~49 ms)."""
    m = xbar.shape[0]
    k = xbar._cache.get(_COSTINGS_KEY, 0) + copies * min(int(vectors), m)
    xbar._cache[_COSTINGS_KEY] = k
    return k >= forms_after(xbar) * m


def _circuits(tiles) -> dict[int, list]:
    """The linear tiles of a layer grouped by circuit: tiles that program the same array
    share one transfer matrix object (:meth:`xbarsolve.cnn.network.AnalogMatrix._shared_transfer`)."""
    groups: dict[int, list] = {}
    for t in tiles:
        if t.crossbar.is_linear and t.T is not None:
            groups.setdefault(id(t.T), []).append(t)
    return groups


def _share_forms(group) -> None:
    """Build the read-power forms of the first crossbar of ``group`` (tiles of one circuit)
    and cache the same (read-only) forms on the others."""
    first = group[0].crossbar
    _stacked_forms(first)
    for t in group[1:]:
        for key in (_CACHE_KEY, _FORMS_KEY):
            t.crossbar._cache[key] = first._cache[key]


def _exact_read(al, P: np.ndarray, x: np.ndarray | None, read: Read = "auto"):
    """Per-term read-power sums (W) over every input vector ``P`` of a layer and every
    input pass, and the number of passes.

    The DAC voltages are computed once per pass, of the feature map ``x`` when the vectors
    are its stride-1 windows (a ninth of the entries for a 3 x 3 kernel; the passes are the
    same, every pixel being in some window) and then :meth:`Windows.grams`, otherwise of the
    vectors and :func:`row_block_grams`.  Per linear tile (``read="auto"``): the cached
    forms and the pass's Gram matrix when the forms are cached or due (the crossbar's
    :func:`forms_after`-th costing, when they are built); otherwise the synthetic
    vectors of the Gram matrix summed over the passes (:func:`gram_factor`; the vectors
    themselves when there are no more of them than rows) and one full solve of them
    (:func:`gram_energy`).  ``read="forms"``: as before the synthetic vectors, the forms
    (built on first use) for tiles that read at least as many vectors as they have rows, a
    solve per vector for the others.  Nonlinear tiles: a Newton solve per vector."""
    n = P.shape[0]
    forms, solved, by_gram, by_vectors = [], [], [], []
    due = set()  # circuits whose forms are built now, once for all their tiles
    if read == "auto":
        for key, group in _circuits(al.tiles).items():
            xb = group[0].crossbar
            if not has_forms(xb) and _forms_due(xb, n, len(group)):
                _share_forms(group)
                due.add(key)
    for t in al.tiles:
        xb = t.crossbar
        if uses_forms(xb, n) if read == "forms" else xb.is_linear and (has_forms(xb) or id(t.T) in due):
            forms.append(t)
        elif read == "forms" or not xb.is_linear:
            solved.append(t)
        else:  # synthetic vectors: of the Gram matrix when the batch has more vectors than the block rows
            (by_gram if n > t.rows.stop - t.rows.start else by_vectors).append(t)
    blocks = sorted({(t.rows.start, t.rows.stop) for t in forms + by_gram})
    windows = _stride1_windows(al, x) if x is not None and blocks else None
    if windows is not None:
        w = Windows(x.shape, *windows)
        parts = al._voltages(w.arrange(x), al.dac_bits)
        grams = [w.grams(V, blocks) for _, V in parts]
    else:
        parts = al._voltages(P, al.dac_bits)
        grams = [row_block_grams(V, blocks) for _, V in parts]
    sums = np.zeros(len(TERMS))
    for g in grams:
        for t in forms:
            sums += _stacked_forms(t.crossbar) @ g[t.rows.start, t.rows.stop].ravel()
    factors = {}  # per row block: the synthetic vectors of the Gram matrix summed over the passes
    for t in by_gram:
        key = t.rows.start, t.rows.stop
        if key not in factors:
            factors[key] = gram_factor(sum(g[key] for g in grams))
        sums += gram_energy(t.crossbar, factors[key])
    if solved or by_vectors:
        vectors = al._voltages(P, al.dac_bits) if windows is not None else parts
        for t in by_vectors:
            Vt = np.concatenate([V[:, t.rows] for _, V in vectors])
            Vt = Vt[Vt.any(axis=1)]  # a zero vector reads nothing
            if Vt.shape[0] > Vt.shape[1]:  # several passes: more vectors than rows
                Vt = gram_factor(Vt.T @ Vt)
            sums += gram_energy(t.crossbar, Vt)
        for _, V in vectors:
            for t in solved:
                p = read_power(t.crossbar, V[:, t.rows], method="solve")
                sums += [float(getattr(p, k).sum()) for k in TERMS]
    return sums, len(parts)


def _probe(P: np.ndarray, x: np.ndarray | None) -> np.ndarray:
    """One input vector with the most negative entry of ``P`` (its DAC passes are every
    vector's): the first vector when the layer's input ``x`` has no negative entry (the
    vectors hold its entries and zeros), a scan of ``P``, 9x larger for a 3 x 3 kernel,
    only when it has."""
    if x is not None and x.size and x.min() >= 0:
        return P[:1]
    return P[[int(np.argmin(P)) // P.shape[1]]]


def _layer_cost(name: str, al, P: np.ndarray, n_images: int, table: CostTable,
                sample: np.ndarray | None = None, x: np.ndarray | None = None,
                grams: Grams = "auto", read: Read = "auto") -> LayerCost:
    """Cost of one analog layer whose input vectors (all images) are ``P`` (input units),
    of the feature map ``x`` when given.

    ``sample``: indices of the vectors whose read energy estimates the layer's.
    ``grams="gemm"``: the exact read energy as computed before :func:`_exact_read` (DAC
    voltages of the vectors, a separate probe for the number of passes, one ``V^T V`` per
    row block and term-by-term inner products); kept to time and test against.
    ``read="forms"``: the exact read energy of tiles without cached forms as before the
    synthetic vectors (forms built for tiles with at least as many vectors as rows, a
    solve per vector otherwise; :func:`_exact_read`); kept likewise.
    """
    if grams not in ("auto", "gemm"):
        raise ValueError(f"grams must be 'auto' or 'gemm'; got {grams!r}")
    if read not in ("auto", "forms"):
        raise ValueError(f"read must be 'auto' or 'forms'; got {read!r}")
    with one_blas_thread():
        if sample is None and grams == "auto":
            (read_sums, n_passes), stderr = _exact_read(al, P, x, read), 0.0
        else:
            # Input passes of the whole batch (a second one when any input is negative); the
            # DAC voltages of the vectors whose read energy is computed (all, or the sample).
            n_passes = len(al._voltages(_probe(P, x), al.dac_bits)) if P.size else 1
            parts = al._voltages(P if sample is None else P[sample], al.dac_bits)
            if sample is None:
                read_sums, stderr = sum(_read_terms(al.tiles, V)[0] for _, V in parts), 0.0
            else:
                read_sums, stderr = _sampled_read(al.tiles, parts, P.shape[0])
    dac_bits = table.dac_ref_bits if al.dac_bits is None else int(al.dac_bits)
    adc_bits = table.adc_ref_bits if al.adc_bits is None else int(al.adc_bits)
    dac, adc = table.dac(dac_bits), table.adc(adc_bits)
    windows = P.shape[0] / n_images
    cycles = windows * n_passes
    n_cells = n_dac = n_adc = n_outputs = 0
    dac_conv = adc_conv = 0.0
    for t in al.tiles:
        m, n = t.crossbar.shape
        n_cells += m * n
        n_dac += m
        n_adc += math.ceil(t.mapped.n_out / table.adc_columns_count)
        n_outputs += t.mapped.n_out
        dac_conv += cycles * m
        adc_conv += cycles * t.mapped.n_out
    to_pJ = table.read_cycle_ns * 1e-9 / n_images * 1e12  # W * s summed over vectors -> pJ per image
    read_split = read_sums * to_pJ
    buffer_bits = dac_conv * dac_bits + adc_conv * adc_bits
    digital = (adc_conv * (table.sample_hold_energy_pJ + table.shift_add_energy_pJ)
               + buffer_bits / table.buffer_access_bits * table.buffer_energy_pJ)
    n_shift_add = math.ceil(n_adc / table.adcs_per_shift_add_count)
    return LayerCost(
        name=name, n_crossbars=len(al.tiles), n_cells=n_cells, n_dac=n_dac, n_adc=n_adc,
        dac_bits=dac_bits, adc_bits=adc_bits, windows=windows, cycles=cycles,
        dac_conversions=dac_conv, adc_conversions=adc_conv,
        read_pJ=float(read_split.sum()), read_split_pJ=tuple(float(v) for v in read_split),
        read_vectors=int(P.shape[0] if sample is None else len(sample)), read_stderr_pJ=stderr * to_pJ,
        dac_pJ=dac_conv * dac.energy_pJ, adc_pJ=adc_conv * adc.energy_pJ, digital_pJ=digital,
        crossbar_area_um2=n_cells * table.cell_area_um2 + len(al.tiles) * table.array_area_um2,
        converter_area_um2=n_dac * dac.area_um2 + n_adc * adc.area_um2,
        digital_area_um2=n_outputs * table.sample_hold_area_um2 + n_shift_add * table.shift_add_area_um2,
        latency_ns=cycles * table.read_cycle_ns,
    )


def network_cost(net, x: np.ndarray, table: CostTable = ISAAC, *, max_vectors: int | None = None,
                 seed: int = 0, read: Read = "auto") -> NetworkCost:
    """Energy, area and latency per inference of a prepared analog network.

    Parameters
    ----------
    net : xbarsolve.cnn.AnalogNetwork
        After :meth:`~xbarsolve.cnn.AnalogNetwork.prepare`.
    x : ndarray
        Images (the model's input shape) whose forward pass supplies the crossbar inputs;
        costs are per image, averaged over them.
    table : CostTable
        Peripheral figures (default :data:`~xbarsolve.cost.ISAAC`).
    max_vectors : int or None
        None (default): the read energy of every input vector, exact.  An integer: the read
        energy of a layer with more input vectors than that is estimated from a random
        sample of ``max_vectors`` of them (without replacement; every count, conversion and
        the other energies stay exact), with its standard error in ``read_stderr_pJ``.
    seed : int
        Seed of that sample.
    read : {"auto", "forms"}
        How the exact read energy of a linear crossbar without cached forms is computed:
        ``"auto"`` from the synthetic vectors of the inputs' Gram matrix (see Notes);
        ``"forms"`` as before them (the forms built when the crossbar reads at least as many
        vectors as it has rows, a solve per vector otherwise), to time and test against.
        Equal to round-off.

    Returns
    -------
    NetworkCost
        ``.layers`` (one :class:`LayerCost` each), totals, ``.table()``.

    Notes
    -----
    The read energy of a linear crossbar over the inputs is ``<P, C>`` for each term's
    quadratic form ``P`` and the inputs' Gram matrix ``C = sum_w V_w V_w^T`` (per row block,
    summed over the input passes).  When the forms are cached on the crossbar
    (:func:`~xbarsolve.cost.power_matrices`, e.g. by an earlier call) that inner product is
    taken; otherwise ``C = sum_k l_k l_k^T`` is factored (``eigh``, numerical rank
    ``r <= min(m, vectors)``; the vectors themselves when there are no more of them than
    rows) and ``<P, C> = sum_k l_k^T P l_k`` is the read power of the r synthetic vectors
    ``l_k``, one full solve (conjugate gradients for a few vectors, the block factorization
    for many; :mod:`~xbarsolve.cost.fields`).  The forms are not built: building them costs
    a full solve of m vectors and ``O(m^3 n)`` more, which a crossbar costed once never
    recovers.  The Gram matrices of a stride-1
    convolution come from its input feature map (:class:`~xbarsolve.cost.grams.Windows`:
    one product of channel blocks per pixel and kernel shift that the row blocks need, at
    most ``(2k - 1)^2 / 2`` for a k x k kernel), those of other layers from their vectors
    (``V^T V``, ``m^2 / 2`` per vector, against the products' ``m n``).
    """
    if read not in ("auto", "forms"):
        raise ValueError(f"read must be 'auto' or 'forms'; got {read!r}")
    if not getattr(net, "layers", None):
        raise RuntimeError("network_cost needs a prepared AnalogNetwork: call net.prepare(x_cal) first")
    if not isinstance(table, CostTable):
        raise TypeError(f"table must be a CostTable; got {type(table).__name__}")
    if max_vectors is not None and (isinstance(max_vectors, bool) or not isinstance(max_vectors, int) or max_vectors < 2):
        raise ValueError(f"max_vectors must be None or an integer >= 2; got {max_vectors!r}")
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x must hold at least one image; got shape {x.shape}")
    layers = {}

    def linear(nd, v):  # the analog layer's own evaluation, costed on the way
        al = net.layers[nd.name]
        P, grid = al._vectors(v)
        sample = None
        if max_vectors is not None and P.shape[0] > max_vectors:
            sample = np.sort(rng.choice(P.shape[0], max_vectors, replace=False))
        layers[nd.name] = _layer_cost(nd.name, al, P, x.shape[0], table, sample, v, read=read)
        return al.layer.finish(al.products(P).reshape(*grid, -1))

    net.model.forward(x, linear=linear)
    return NetworkCost(tuple(layers[nd.name] for nd in net.model.linear_nodes), table.name, int(x.shape[0]))

