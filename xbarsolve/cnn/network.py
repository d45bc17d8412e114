"""The analog network: every convolution and dense layer of a :class:`~xbarsolve.cnn.layers.Model`
on its own simulated crossbars, everything else exact digital.

Per linear layer (:class:`AnalogLayer`) the pipeline is

1. **mapping**: the weight matrix (dense im2col mapping, or the Toeplitz matrix with
   ``conv_mapping="sparse"``) is split into tiles of at most ``rows_max x cols_max``
   cells and each tile mapped into ``[g_min, g_max]`` (shift or differential scheme,
   :mod:`xbarsolve.cnn.mapping`; weight and input bit slicing, one crossbar per weight
   slice and one pass per input bit: :mod:`xbarsolve.cnn.slicing`);
2. **programming** (the *crossbar factory*, :func:`default_crossbar_factory`): a
   :class:`~xbarsolve.crossbar.Crossbar` with the configured parasitics; programming
   error (zero-mean Gaussian, sigma in siemens) before or after the conversion
   ``G -> G'`` (:func:`xbarsolve.convert`) with the layer's conversion signal;
3. **solve**: the transfer matrix ``T`` of each tile, so all sliding windows of a batch
   go through one ``V @ T`` GEMM per tile (nonlinear devices: :func:`xbarsolve.solve`);
4. **DAC** on the inputs (full scale = the largest input seen in the calibration pass,
   mapped to ``v_max``; a quantizing DAC saturates there, the ideal one does not;
   negative inputs are applied in a second pass and subtracted),
   **ADC** on the column (or differential) currents, digital decoding of the mapping,
   **calibration** (per-column slope and offset fitted on ``n_calibration`` windows of
   the calibration data against the exact product), digital partial-sum accumulation
   over row tiles, and the bias.

Programmed crossbars, transfer matrices, calibrations and converter ranges can be cached
in an HDF5 file per model and configuration (``cache_dir``) so that a second run skips
them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..calibration import Calibration
from ..mapping import MappedMatrix
from ..metrics import bit_accuracy
from .config import DEFAULT_V_CONV, AnalogConfig
from .layers import LinearLayer, Model, Node
from .mapping import map_weights, tile_slices
from .quantization import dac_voltages, quantize
from .slicing import bit_planes, slice_mappings, tile_target

if TYPE_CHECKING:
    from ..crossbar import Crossbar

__all__ = [
    "AnalogConfig", "ProgrammedCrossbar", "default_crossbar_factory", "AnalogMatrix", "AnalogLayer", "AnalogNetwork",
    "NumpyOps",
    "LayerError", "ErrorReport", "DEFAULT_V_CONV",
]

#: Changes whenever what :meth:`AnalogNetwork.prepare` computes from the same inputs
#: changes, so that an old cache file is not mistaken for a current one.
_CACHE_VERSION = b"xbarsolve-cnn-cache-3"


@dataclass(frozen=True, eq=False)
class ProgrammedCrossbar:
    """What a crossbar factory returns: the programmed array and conversion facts."""

    crossbar: Crossbar
    n_clipped: int = 0
    info: dict = field(default_factory=dict)


CrossbarFactory = Callable[[np.ndarray, str, AnalogConfig, np.random.Generator], ProgrammedCrossbar]


def _program_error(G, cfg: AnalogConfig, rng):
    sigma = cfg.noise.programming_sigma
    if sigma == 0:
        return G
    return np.clip(G + rng.normal(0.0, sigma, G.shape), cfg.mapping.g_min, cfg.mapping.g_max)


def default_crossbar_factory(G: np.ndarray, name: str, cfg: AnalogConfig, rng: np.random.Generator) -> ProgrammedCrossbar:
    """Build the programmed crossbar of one tile.

    Parameters
    ----------
    G : ndarray, shape (m, n)
        Target conductances (S).
    name : str
        Tile name (``"<node>/<tile index>"``); the conversion amplitude is looked up by
        the node name.
    cfg : AnalogConfig
    rng : numpy.random.Generator
        Programming-error stream.

    Notes
    -----
    This is the seam where conversion and other programming pipelines plug in: pass any
    callable with this signature as ``AnalogNetwork(..., crossbar_factory=...)``.
    """
    from ..crossbar import Crossbar

    circuit, comp, noise = cfg.circuit, cfg.compensation, cfg.noise
    kw = {} if circuit.device is None else {"device": circuit.device}
    G = np.asarray(G, dtype=np.float64)
    if noise.programming_stage == "before":
        G = _program_error(G, cfg, rng)
    xbar = Crossbar(G, r_row=circuit.r_row, r_col=circuit.r_col, r_in=circuit.r_in, r_out=circuit.r_out,
                    transistor=circuit.transistor, **kw)
    n_clipped, info = 0, {}
    if comp.conversion and not circuit.ideal_wires:
        from ..conversion import convert

        amp = comp.amplitude(name.split("/")[0])
        conv = convert(xbar, np.full(xbar.m, amp), g_min=cfg.mapping.g_min, g_max=cfg.mapping.g_max,
                       refine=comp.refine, on_clip="ignore")  # counted in n_clipped and the report
        xbar = conv.crossbar
        n_clipped = int(conv.n_clipped)
        info = {"v_conv": amp, "n_clipped": n_clipped, "n_nonpositive": int(getattr(conv, "n_nonpositive", 0))}
    if noise.programming_stage == "after" and noise.programming_sigma > 0:
        xbar = xbar.with_conductances(_program_error(xbar.G, cfg, rng))
    return ProgrammedCrossbar(xbar, n_clipped, info)


def _tiles(W, cfg: AnalogConfig):
    mp = cfg.mapping
    return tile_slices(W.shape[0], W.shape[1], mp.rows_max, mp.cols_max, mp.columns_per_output,
                       int(mp.reference_column))


def _weight_range(W, cfg: AnalogConfig) -> tuple[float, float]:
    """The layer's weight range that all its tiles share."""
    if cfg.mapping.scheme == "shift":
        return float(W.min()), float(W.max())
    w = float(np.abs(W).max())
    return -w, w


def _mapped_tiles(W, cfg: AnalogConfig) -> list[tuple[slice, slice, MappedMatrix]]:
    """(rows, cols, mapping) of every crossbar of a layer: one per tile, or one per
    weight slice of every tile (:mod:`xbarsolve.cnn.slicing`)."""
    w_range = _weight_range(W, cfg)
    if cfg.mapping.sliced:
        return [(rs, cs, m) for rs, cs in _tiles(W, cfg) for m in slice_mappings(W[rs, cs], cfg, w_range)]
    return [(rs, cs, _map(W[rs, cs], cfg, w_range)) for rs, cs in _tiles(W, cfg)]


def _map(W, cfg: AnalogConfig, w_range) -> MappedMatrix:
    mp = cfg.mapping
    return map_weights(W, mp.scheme, g_min=mp.g_min, g_max=mp.g_max, w_range=w_range, bits=mp.weight_bits,
                       reference_column=mp.reference_column)


@dataclass(eq=False)
class _Tile:
    rows: slice
    cols: slice
    mapped: MappedMatrix
    crossbar: Crossbar
    T: np.ndarray | None  # transfer matrix (S), or None for a nonlinear array
    n_clipped: int = 0
    analog_lo: np.ndarray | None = None  # calibration-pass range of the analog output (A)
    analog_hi: np.ndarray | None = None
    slope: np.ndarray | None = None
    offset: np.ndarray | None = None

    def currents(self, V: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Column currents (A) for the voltages ``V`` (batch, rows); ``threads``: the
        Newton solver's kernel threads (nonlinear arrays; default its own choice)."""
        if self.T is not None:
            return V @ self.T
        from ..solve import solve

        return solve(self.crossbar, V, threads=threads).currents


class NumpyOps:
    """The array operations of :meth:`AnalogMatrix.products` on NumPy arrays.

    The pipeline (DAC, crossbar currents, ADC, decoding, calibration, accumulation) is
    written once against these few operations; :mod:`xbarsolve.torch` supplies the same
    operations on tensors (on any device, with autograd and straight-through quantizers).
    """

    @staticmethod
    def relu(x):
        return np.maximum(x, 0.0)

    @staticmethod
    def quantize(x, bits, lo, hi):
        return quantize(x, bits, lo, hi)

    @staticmethod
    def dac(x, bits, full_scale, v_max):
        """DAC voltages (:func:`~xbarsolve.cnn.quantization.dac_voltages`): an ideal DAC
        (``bits=None``) does not saturate, a real one saturates at full scale."""
        return dac_voltages(x, bits, full_scale, v_max)

    @staticmethod
    def currents(tile: "_Tile", V):
        return tile.currents(V)

    @staticmethod
    def decode(mapped: MappedMatrix, analog, V):
        """Signed outputs from the analog outputs and the DAC voltages ``V`` of the tile
        (whose digital ``sum(V)`` the shift scheme without a reference column needs)."""
        return mapped.decode(analog, V.sum(axis=1))

    @staticmethod
    def noise(a, rng: np.random.Generator, sigma: float):
        return a + rng.normal(0.0, sigma, a.shape)

    @staticmethod
    def zeros(n_rows: int, n_cols: int, like):
        return np.zeros((n_rows, n_cols))


#: False: every tile's transfer matrix computed anew (the path before
#: :meth:`AnalogMatrix._shared_transfer`), to time and test against.
_SHARE_TRANSFER = True


#: True: the first tile job of every nonlinear layer solved in the calling thread before
#: the others go to the pool (the path before; now only until Numba's threading layer has
#: started), kept to time against.
_FIRST_JOB_ALONE = False
#: Fewest solves (a tile for one DAC pass) per tile thread for a nonlinear layer to use
#: the thread pool; a layer with fewer solves them one after the other, each on all the
#: Newton solver's kernel threads.  Whole tiles on threads leave a thread idle for up to
#: a tile's time at the end of the layer, and two tiles' chunks at once share the cache:
#: ResNet-20's layers of 3 and 5 tiles ran 0.90x faster this way (sinh, 64x64 tiles, two
#: threads), the MNIST CNN's (1, 8 and 90 tiles) as fast.  1 is the path before.
_JOBS_PER_THREAD = 4


def _threads_may_share_kernels() -> bool:
    """True when Numba's threading layer lets two Python threads run parallel kernels at
    once (``omp`` and ``tbb``; ``workqueue`` aborts on concurrent use).  False while no
    parallel kernel has run (the layer is not chosen yet)."""
    import numba

    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # the layer has not been started
        return False


class AnalogMatrix:
    """One weight matrix (rows = input vector entries, columns = outputs) on tiled
    crossbars: mapping, programming, calibration and the analog product (module docstring).

    The engine of :class:`AnalogLayer` (a node of a NumPy :class:`Model`) and of the
    PyTorch modules of :mod:`xbarsolve.torch` (one matrix per layer or group).

    Parameters
    ----------
    matrix : ndarray, shape (rows, outputs)
        The weights (the matrix that one input vector multiplies).
    name : str
        Layer name: the tiles are ``"<name>/<k>"`` for the crossbar factory (the
        conversion amplitude is looked up by the part before the first ``/``).
    cfg : AnalogConfig
    """

    def __init__(self, matrix: np.ndarray, name: str, cfg: AnalogConfig):
        self.matrix = np.asarray(matrix, dtype=np.float64)
        self.name = name
        self.cfg = cfg
        self.x_scale = 1.0  # input full scale (input units) mapped to v_max
        self.w_range: tuple[float, float] | None = None  # weight range mapped onto [g_min, g_max]
        self.tiles: list[_Tile] = []
        self.dac_bits = cfg.converter.dac_bits
        self.adc_bits = cfg.converter.adc_bits
        self.read_noise_sigma = cfg.noise.read_noise_sigma
        #: Threads that evaluate a layer's tiles side by side (nonlinear: the Newton solves,
        #: each on one kernel thread; linear with a quantizing ADC: the tile pipelines, BLAS
        #: on one thread each); None: the Newton solver's default (1 on a busy machine).
        self.tile_threads: int | None = None
        #: Private: True runs every tile one after the other through the per-tile pipeline
        #: (the code before issue 13), the baseline of ``benchmarks/bench_parallel.py``.
        self._serial_tiles = False
        self._fold: tuple[tuple, np.ndarray, np.ndarray] | None = None

    @property
    def n_crossbars(self) -> int:
        return len(self.tiles)

    @property
    def n_clipped(self) -> int:
        return sum(t.n_clipped for t in self.tiles)

    # ------------------------------------------------------------------ build
    def program(self, factory: CrossbarFactory, rng: np.random.Generator) -> None:
        """Map, tile and program the crossbars; compute their transfer matrices."""
        cfg = self.cfg
        self.w_range = _weight_range(self.matrix, cfg)
        self.tiles = []
        solved: dict[bytes, np.ndarray] = {}  # transfer matrices by circuit (Crossbar.content_key)
        for k, (rs, cs, mapped) in enumerate(_mapped_tiles(self.matrix, cfg)):
            prog = factory(mapped.G, f"{self.name}/{k}", cfg, rng)
            self.tiles.append(_Tile(rs, cs, mapped, prog.crossbar, self._shared_transfer(prog.crossbar, solved),
                                    prog.n_clipped))

    def _shared_transfer(self, xbar: Crossbar, solved: dict) -> np.ndarray | None:
        """:meth:`transfer` of ``xbar``, or the transfer matrix of an identical circuit
        (same :meth:`~xbarsolve.crossbar.Crossbar.content_key`) computed before: the
        sparse mapping's all-zero weight blocks program the same array again and again
        (the MNIST CNN's 4786 tiles on 64 x 64 crossbars hold 1403 distinct arrays), and
        their ``T`` was 80 % of its ``prepare``."""
        if (not _SHARE_TRANSFER or "T" in xbar._cache or not xbar.is_linear
                or (self.cfg.ideal_wires and xbar.transistor is None)):
            return self.transfer(xbar)
        key = xbar.content_key()
        if key is not None and key in solved:
            xbar._cache["T"] = solved[key]
            return solved[key]
        T = self.transfer(xbar)
        if key is not None and T is not None:
            solved[key] = T
        return T

    def remap(self, W: np.ndarray) -> list[MappedMatrix]:
        """The tiles of a new weight matrix ``W`` (same shape) mapped with the weight range
        fixed when the matrix was programmed (so that scale and offset do not move);
        weights outside that range saturate at ``g_min`` / ``g_max``."""
        W = np.asarray(W, dtype=np.float64)
        if W.shape != self.matrix.shape or self.w_range is None:
            raise ValueError(f"remap needs a programmed matrix and W of shape {self.matrix.shape}; got {W.shape}")
        if self.cfg.mapping.sliced:
            raise NotImplementedError("remap of bit-sliced weights is not implemented")
        W = np.clip(W, *self.w_range)
        return [_map(W[t.rows, t.cols], self.cfg, self.w_range) for t in self.tiles]

    def transfer(self, xbar: Crossbar) -> np.ndarray | None:
        """The transfer matrix (S) of a programmed tile, or None for a nonlinear array."""
        from ..solve import transfer_matrix

        if self.cfg.ideal_wires and xbar.is_linear and xbar.transistor is None:
            return np.asarray(xbar.G)  # zero wires, no transistor: T == G exactly
        return transfer_matrix(xbar) if xbar.is_linear else None

    def calibrate_vectors(self, P: np.ndarray, rng: np.random.Generator) -> None:
        """Set the DAC full scale, the ADC ranges and (if configured) the per-column
        calibration from exact input vectors ``P`` (batch, rows) of held-out data."""
        P = np.asarray(P, dtype=np.float64)
        amax = float(np.abs(P).max()) if P.size else 0.0
        self.x_scale = amax if amax > 0 else 1.0
        if len(P) > self.cfg.converter.n_range_samples:
            P = P[rng.choice(len(P), self.cfg.converter.n_range_samples, replace=False)]
        for t in self.tiles:
            t.slope = t.offset = None
            t.analog_lo = t.analog_hi = None
        # ADC ranges: the largest the mapping can produce, or from a calibration pass with
        # ideal converters (only then are the tiles solved here).
        if self.cfg.converter.adc_range == "max":
            for t in self.tiles:
                t.analog_lo, t.analog_hi = t.mapped.analog_range(self.cfg.converter.v_max)
        else:
            parts = self._voltages(P, dac_bits=None)
            solved = self._solve_tiles(parts)
            for k, t in enumerate(self.tiles):
                lo = hi = None
                for j, (_, V) in enumerate(parts):
                    a = t.mapped.analog_output(t.currents(V[:, t.rows]) if solved is None else solved[k][j])
                    lo = a.min(axis=0) if lo is None else np.minimum(lo, a.min(axis=0))
                    hi = a.max(axis=0) if hi is None else np.maximum(hi, a.max(axis=0))
                t.analog_lo, t.analog_hi = lo, hi
        if not self.cfg.compensation.calibration:
            return
        # Per-column linear calibration on n_calibration random vectors that are not all zero.
        nz = np.flatnonzero(np.abs(P).sum(axis=1) > 0)
        pool = nz if len(nz) >= self.cfg.compensation.n_calibration else np.arange(len(P))
        idx = rng.choice(pool, min(self.cfg.compensation.n_calibration, len(pool)), replace=False)
        Pc = P[idx]
        parts = self._voltages(Pc, dac_bits=None)
        solved = self._solve_tiles(parts)
        for k, t in enumerate(self.tiles):
            raw = self._tile_output(t, parts, adc_bits=None, noise_rng=None, currents=None if solved is None else solved[k])
            ideal = Pc[:, t.rows] @ tile_target(t.mapped, self.matrix[t.rows, t.cols])
            cal = Calibration(per="column").fit(raw, ideal)
            t.slope, t.offset = cal.slope, cal.offset

    # ------------------------------------------------------------------ evaluation
    def _voltages(self, P, dac_bits, ops=NumpyOps):
        """(sign, V) pairs: the non-negative and (if present) negative parts of the inputs
        as DAC voltages (V)."""
        parts = [(1.0, P)]
        if P.shape[0] and P.min() < 0:
            parts = [(1.0, ops.relu(P)), (-1.0, ops.relu(-P))]
        if self.cfg.converter.input_bits is not None:  # bit-serial DAC, in every pass (NumPy only)
            return bit_planes(parts, self.x_scale, self.cfg.converter.input_bits, self.cfg.converter.v_max, dac_bits)
        return [(sign, ops.dac(Q, dac_bits, self.x_scale, self.cfg.converter.v_max)) for sign, Q in parts]

    def _tile_output(self, t: _Tile, parts, *, adc_bits, noise_rng, ops=NumpyOps, currents=None):
        """Decoded (uncalibrated) output of one tile for the DAC voltages ``parts``
        (``currents``: the tile's column currents of every part, if already solved)."""
        y = None
        for k, (sign, V) in enumerate(parts):
            Vt = V[:, t.rows]
            a = t.mapped.analog_output(ops.currents(t, Vt) if currents is None else currents[k])
            if noise_rng is not None and self.read_noise_sigma > 0:
                a = ops.noise(a, noise_rng, self.read_noise_sigma)
            if adc_bits is not None:
                a = ops.quantize(a, adc_bits, t.analog_lo, t.analog_hi)
            part = ops.decode(t.mapped, a, Vt) * (self.x_scale / self.cfg.converter.v_max)
            y = sign * part if y is None else y + sign * part
        return y

    def products(self, P, noise_rng: np.random.Generator | None = None, *, ops=NumpyOps, tiles=None):
        """Analog estimate of ``P @ matrix`` for input vectors ``P`` (batch, rows).

        ``ops`` and ``tiles`` let another array library run the same pipeline (see
        :class:`NumpyOps`): ``tiles`` are this matrix's tiles with their arrays in that
        library's form (default :attr:`tiles`).

        On NumPy, all tiles of the layer go through one call: linear tiles with an ideal
        ADC and no read noise through one GEMM with the folded matrix
        (:meth:`folded_matrix`), linear tiles with a quantizing ADC and no read noise
        side by side on :attr:`tile_threads` threads (:meth:`_linear_tiles`), nonlinear
        tiles solved side by side likewise.  The result equals the tile-by-tile pipeline
        to round-off (the thread pools: bit for bit).
        """
        if ops is NumpyOps and tiles is None and not self._serial_tiles and self.tiles:
            quiet = noise_rng is None or self.read_noise_sigma == 0
            if self.adc_bits is None and quiet:
                fold = self.folded_matrix()
                if fold is not None:
                    return self._folded_products(P, *fold)
            parts = self._voltages(P, self.dac_bits)
            currents = self._solve_tiles(parts)
            if currents is None and quiet:
                return self._linear_tiles(P, parts)
            return self._products_loop(P, noise_rng, parts=parts, currents=currents)
        return self._products_loop(P, noise_rng, ops=ops, tiles=tiles)

    def _linear_tiles(self, P, parts):
        """Products of linear tiles without read noise (the ADC quantizes, so no fold):
        each tile's pipeline (currents, ADC, decoding, calibration) on one of
        :attr:`tile_threads` threads, BLAS on one thread (also with one tile thread), the
        outputs added in tile order.  Threaded BLAS inside each tile's modest GEMMs lost
        2x to waiting for a descheduled thread once another process ran (an 8-bit
        ResNet-20 pass, 50 images: 48 against 23 ms per image at load 2.1); whole tiles
        per thread do not, and on a free machine the two are as fast (BENCHMARKS.md
        section 10)."""
        from ..solve.linear import single_thread_blas

        n = min(self._tile_thread_count(), len(self.tiles))
        if n <= 1:
            with single_thread_blas():
                return self._products_loop(P, None, parts=parts)

        def run(t):
            y = self._tile_output(t, parts, adc_bits=self.adc_bits, noise_rng=None)
            return y * t.slope + t.offset if t.slope is not None else y

        from concurrent.futures import ThreadPoolExecutor

        with single_thread_blas(), ThreadPoolExecutor(n, thread_name_prefix="xbarsolve-tile") as pool:
            outputs = list(pool.map(run, self.tiles))
        Y = np.zeros((P.shape[0], self.matrix.shape[1]))
        for t, y in zip(self.tiles, outputs):
            Y[:, t.cols] += y
        return Y

    def _tile_thread_count(self) -> int:
        """:attr:`tile_threads`, or the Newton solver's default (1 on a busy machine)."""
        from ..solve._threads import default_threads

        return default_threads() if self.tile_threads is None else int(self.tile_threads)

    def _products_loop(self, P, noise_rng, *, ops=NumpyOps, tiles=None, parts=None, currents=None):
        """The tile-by-tile pipeline (``parts``: the DAC passes if already computed;
        ``currents``: per tile, the column currents of every pass, if already solved)."""
        Y = ops.zeros(P.shape[0], self.matrix.shape[1], P)
        parts = self._voltages(P, self.dac_bits, ops) if parts is None else parts
        for k, t in enumerate(self.tiles if tiles is None else tiles):
            y = self._tile_output(t, parts, adc_bits=self.adc_bits, noise_rng=noise_rng, ops=ops,
                                  currents=None if currents is None else currents[k])
            if t.slope is not None:
                y = y * t.slope + t.offset
            Y[:, t.cols] += y
        return Y

    # ------------------------------------------------------------------ all tiles at once
    def folded_matrix(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The whole tiled pipeline of a linear matrix with an ideal ADC as one affine map.

        Without ADC quantization and read noise every step after the DAC is linear in the
        DAC voltages: tile currents ``V_rows @ T``, the analog output (column differences),
        the decoding, the calibration ``y * slope + offset`` and the digital accumulation
        over row tiles.  So ``products(P) == c * sum_j w_j V_j @ M + b`` for the DAC passes
        ``(w_j, V_j)`` (``c = x_scale / v_max``), with ``M[rows, cols] = sum over the
        tiles of decode(analog_output(T)) * slope`` and ``b[cols] = sum of the offsets``.

        Returns
        -------
        (M, b) : ndarray, shape (rows, outputs) and (outputs,), or None
            In the units of ``matrix`` and of the outputs (``P @ M + b`` estimates
            ``P @ matrix``); None when a tile has no transfer matrix (nonlinear array).
            Computed once and kept until a tile, its transfer matrix or its calibration
            is replaced.
        """
        key = tuple((t, t.T, t.mapped, t.slope, t.offset) for t in self.tiles)
        if self._fold is not None and len(self._fold[0]) == len(key) and all(
                a is b for old, new in zip(self._fold[0], key) for a, b in zip(old, new)):
            return self._fold[1], self._fold[2]
        if any(t.T is None for t in self.tiles):
            return None
        M = np.zeros(self.matrix.shape)
        b = np.zeros(self.matrix.shape[1])
        for t in self.tiles:
            # row i of T is the current vector of the input e_i (whose sum(V) is 1)
            D = t.mapped.decode(t.mapped.analog_output(np.asarray(t.T)), np.ones(t.T.shape[0]))
            if t.slope is not None:
                D = D * t.slope
                b[t.cols] += t.offset
            M[t.rows, t.cols] += D
        self._fold = (key, M, b)
        return M, b

    def _folded_products(self, P, M, b):
        if self.dac_bits is None and self.cfg.converter.input_bits is None:
            return P @ M + b  # the ideal DAC: c * sum_j w_j V_j == P
        c = self.x_scale / self.cfg.converter.v_max
        parts = self._voltages(P, self.dac_bits)
        V = parts[0][0] * parts[0][1]
        for w, Vj in parts[1:]:
            V = V + w * Vj
        return c * (V @ M) + b

    def _solve_tiles(self, parts) -> list[list[np.ndarray]] | None:
        """Nonlinear tiles: the column currents (A) of every tile for every DAC pass
        ``parts``, the Newton solves side by side on :attr:`tile_threads` threads (one
        kernel thread each; the compiled kernels release the GIL), or one after the other
        on the solver's kernel threads where the layer has fewer than
        ``_JOBS_PER_THREAD`` solves per thread.  None when every tile is linear or the
        tile-by-tile pipeline is asked for (:attr:`_serial_tiles`).  The pipeline after
        the solves stays in tile order, so read noise draws as before."""
        if self._serial_tiles or all(t.T is not None for t in self.tiles):
            return None
        from ..solve.linear import single_thread_blas

        jobs = [(k, j) for k in range(len(self.tiles)) for j in range(len(parts))]
        n = min(self._tile_thread_count(), max(1, len(jobs) // _JOBS_PER_THREAD))
        currents = [[None] * len(parts) for _ in self.tiles]

        def run(job):
            k, j = job
            t = self.tiles[k]
            currents[k][j] = t.currents(parts[j][1][:, t.rows], threads=1 if n > 1 else None)

        if n > 1 and (_FIRST_JOB_ALONE or not _threads_may_share_kernels()):
            # Numba's threading layer is not started yet: one solve in this thread starts it
            # (once per process; afterwards every job goes to the pool, rather than the
            # first tile of each layer on one core while the other waits)
            run(jobs[0])
            if not _threads_may_share_kernels():
                n = 1
        if n <= 1:
            for job in jobs:
                if currents[job[0]][job[1]] is None:
                    run(job)
        else:
            from concurrent.futures import ThreadPoolExecutor

            # BLAS limited once here: the solver's own per-call limits then nest inside it
            with single_thread_blas(), ThreadPoolExecutor(n, thread_name_prefix="xbarsolve-tile") as pool:
                list(pool.map(run, [job for job in jobs if currents[job[0]][job[1]] is None]))
        return currents


class AnalogLayer(AnalogMatrix):
    """One linear-layer node (:class:`~xbarsolve.cnn.layers.LinearLayer`) on crossbars (see the module docstring).

    Built by :class:`AnalogNetwork`; :meth:`__call__` maps the node's input to its output.
    """

    def __init__(self, node: Node, input_shape: tuple[int, ...], cfg: AnalogConfig):
        layer = node.layer
        if not isinstance(layer, LinearLayer):
            raise TypeError(f"node {node.name!r} holds a {type(layer).__name__}, not a LinearLayer; "
                            "only linear layers go on crossbars")
        self.node = node
        self.layer: LinearLayer = layer
        #: True for the sparse mapping: one vector per sample, through the unrolled matrix.
        self.sparse = cfg.mapping.conv_mapping == "sparse"
        if self.sparse:
            matrix, self.sparse_grid = layer.unrolled(tuple(input_shape))
        else:
            matrix, self.sparse_grid = layer.weight_matrix, None
        super().__init__(matrix, node.name, cfg)

    def __getstate__(self) -> dict:
        """Pickled without the dense mapping's matrix: it is a view of the layer's weights
        (pickled with the layer anyway) and :meth:`__setstate__` takes the view again."""
        state = dict(self.__dict__)
        if not state.get("sparse"):
            state.pop("matrix", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "matrix" not in state:
            self.matrix = np.asarray(self.layer.weight_matrix, dtype=np.float64)

    # ------------------------------------------------------------------ vectors
    def _vectors(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        """Crossbar input vectors (batch, rows) in input units, and the shape (N, *grid)
        the products fill."""
        if self.sparse:
            return x.reshape(x.shape[0], -1), (x.shape[0], *self.sparse_grid)
        P = self.layer.patches(x)
        return P.reshape(-1, self.matrix.shape[0]), P.shape[:-1]

    def vectors(self, x: np.ndarray) -> np.ndarray:
        """Crossbar input vectors (batch, rows) in input units."""
        return self._vectors(x)[0]

    def calibrate(self, x_cal: np.ndarray, rng: np.random.Generator) -> None:
        """Set the DAC full scale, the ADC ranges and (if configured) the per-column
        calibration from the node's exact inputs ``x_cal`` on held-out data."""
        self.calibrate_vectors(self.vectors(x_cal), rng)

    def __call__(self, x: np.ndarray, noise_rng: np.random.Generator | None = None) -> np.ndarray:
        P, grid = self._vectors(x)
        return self.layer.finish(self.products(P, noise_rng).reshape(*grid, -1))


@dataclass(frozen=True)
class LayerError:
    """Relative error of one analog layer's output against the exact digital output
    (paper Sec. 3.3.2: ``|actual - ideal| / range``, range per output channel over the
    evaluated data).  ``alone``: exact inputs; ``accumulated``: inputs from the analog
    network."""

    name: str
    mean_alone: float
    worst_alone: float
    mean_accumulated: float
    worst_accumulated: float

    @property
    def bits_alone(self) -> float:
        """Bit accuracy ``log2(1/mean + 1)`` of the layer alone."""
        return float(bit_accuracy(self.mean_alone))


@dataclass(frozen=True)
class ErrorReport:
    """Error propagation and classification accuracy of one evaluation."""

    layers: tuple[LayerError, ...]
    accuracy_software: float
    accuracy_analog: float
    n_images: int
    seconds: float

    def table(self) -> str:
        """A plain-text table of the per-layer errors (percent)."""
        lines = [f"{'layer':<20} {'mean alone %':>12} {'worst alone %':>13} {'mean acc. %':>11} {'worst acc. %':>12}"]
        for e in self.layers:
            lines.append(f"{e.name:<20} {100 * e.mean_alone:12.4f} {100 * e.worst_alone:13.4f} "
                         f"{100 * e.mean_accumulated:11.4f} {100 * e.worst_accumulated:12.4f}")
        lines.append(f"accuracy: software {100 * self.accuracy_software:.2f} %, analog {100 * self.accuracy_analog:.2f} % "
                     f"on {self.n_images} images ({self.seconds:.1f} s)")
        return "\n".join(lines)


class _ErrAcc:
    """Per-channel accumulator of |actual - ideal| and the ideal range over batches."""

    def __init__(self):
        self.sum = self.max = self.lo = self.hi = None
        self.count = 0

    @staticmethod
    def batch(actual, ideal) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """One batch's (sum, max of |actual - ideal|, min, max of ideal, count) per channel."""
        C = ideal.shape[-1]
        d = np.abs(actual - ideal).reshape(-1, C)
        i = ideal.reshape(-1, C)
        return d.sum(0), d.max(0), i.min(0), i.max(0), d.shape[0]

    def merge(self, stats) -> None:
        """Add one batch's :meth:`batch` statistics (batches merged in the same order give
        the same floating-point sums, wherever they were computed)."""
        s, mx, lo, hi, count = stats
        if self.sum is None:
            self.sum, self.max, self.lo, self.hi = s, mx, lo, hi
        else:
            self.sum += s
            self.max = np.maximum(self.max, mx)
            self.lo = np.minimum(self.lo, lo)
            self.hi = np.maximum(self.hi, hi)
        self.count += count

    def result(self):
        rng = self.hi - self.lo
        rng = np.where(rng > 0, rng, np.inf)
        return float((self.sum / rng).sum() / (self.count * len(rng))), float((self.max / rng).max())


class AnalogNetwork:
    """A model whose convolution and dense layers run on simulated crossbars.

    Parameters
    ----------
    model : Model
    config : AnalogConfig
    crossbar_factory : callable, optional
        ``factory(G, name, config, rng) -> ProgrammedCrossbar``; default
        :func:`default_crossbar_factory` (parasitics, programming error, conversion).
    cache_dir : path or None
        Folder for the HDF5 cache of programmed crossbars and calibrations (e.g.
        ``calibration/cnn``); None disables caching.
    tile_threads : int or None
        Threads that evaluate the tiles of a layer side by side (>= 1; 1 = one after the
        other): the Newton solves of nonlinear tiles (in layers with at least 4 solves
        per thread; the others solve their tiles one after the other, each on the Newton
        solver's kernel threads), and the pipelines of linear tiles with a quantizing
        ADC; None: the Newton solver's default thread count, which is 1 on an
        oversubscribed machine.  Results do not depend on it.

    Examples
    --------
    >>> import numpy as np
    >>> from xbarsolve.cnn import AnalogConfig, AnalogNetwork, mnist_cnn4
    >>> model = mnist_cnn4()                                          # doctest: +SKIP
    >>> net = AnalogNetwork(model, AnalogConfig()).prepare(x_cal)      # doctest: +SKIP
    >>> net.predict(x_test)                                           # doctest: +SKIP
    """

    def __init__(self, model: Model, config: AnalogConfig | None = None, *,
                 crossbar_factory: CrossbarFactory | None = None, cache_dir: str | Path | None = None,
                 tile_threads: int | None = None):
        self.layers: dict[str, AnalogLayer] = {}
        self.tile_threads = tile_threads
        self.model = model
        self.config = config or AnalogConfig()
        self.factory = crossbar_factory or default_crossbar_factory
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.prepare_seconds = 0.0
        self.from_cache = False

    # ------------------------------------------------------------------ build
    def _cache_path(self, x_cal: np.ndarray) -> Path | None:
        if self.cache_dir is None:
            return None
        h = hashlib.sha256(_CACHE_VERSION)
        for nd in self.model.linear_nodes:
            h.update(nd.name.encode())
            h.update(np.ascontiguousarray(nd.layer.weight_matrix).tobytes())
        h.update(json.dumps(self.config.programming_key(), sort_keys=True, default=str).encode())
        h.update(getattr(self.factory, "__qualname__", repr(self.factory)).encode())
        h.update(np.ascontiguousarray(x_cal, dtype=np.float64).tobytes())
        return self.cache_dir / f"{self.model.name}-{h.hexdigest()[:16]}.h5"

    def prepare(self, x_cal: np.ndarray) -> "AnalogNetwork":
        """Program, solve and calibrate every analog layer with held-out inputs ``x_cal``
        (a few images).  Loads from / writes to the cache when ``cache_dir`` is set."""
        t0 = time.perf_counter()
        cfg = self.config
        x_cal = np.asarray(x_cal, dtype=np.float64)
        acts = self.model.forward(x_cal, keep=True)
        shapes = {k: v.shape[1:] for k, v in acts.items()}
        self.layers = {}
        for nd in self.model.linear_nodes:
            src = nd.inputs[0] if nd.inputs else "input"
            self.layers[nd.name] = AnalogLayer(nd, shapes[src], cfg)
            self.layers[nd.name].tile_threads = self._tile_threads
        path = self._cache_path(x_cal)
        if path is not None and path.is_file():
            try:
                self._load(path)
                self.from_cache = True
                self.prepare_seconds = time.perf_counter() - t0
                return self
            except (KeyError, OSError, ValueError):
                pass
        rng = np.random.default_rng(cfg.seed)
        for nd in self.model.linear_nodes:
            al = self.layers[nd.name]
            al.program(self.factory, rng)
            al.calibrate(acts[nd.inputs[0] if nd.inputs else "input"], rng)
        if path is not None:
            self._save(path)
        self.from_cache = False
        self.prepare_seconds = time.perf_counter() - t0
        return self

    def _save(self, path: Path) -> None:
        from .._atomic import atomic_hdf5

        # a temporary name of its own, so that two processes filling one cache never share a file
        with atomic_hdf5(path) as f:
            self._write_cache(f)

    def _write_cache(self, f) -> None:
        from .._atomic import create_dataset
        from ..io import write_crossbar

        f.attrs["model"] = self.model.name
        f.attrs["config"] = json.dumps(self.config.programming_key(), sort_keys=True, default=str)
        f.attrs["units"] = "T: S; crossbar: xbarsolve.io layout; analog_lo/hi: A; x_scale: input units"
        for name, al in self.layers.items():
            g = f.create_group(name)
            g.attrs["x_scale"] = al.x_scale
            for k, t in enumerate(al.tiles):
                tg = g.create_group(str(k))
                write_crossbar(tg.create_group("crossbar"), t.crossbar)
                if t.T is not None:
                    create_dataset(tg, "T", t.T, compression="gzip", compression_opts=1)
                tg.attrs["n_clipped"] = t.n_clipped
                for key in ("analog_lo", "analog_hi", "slope", "offset"):
                    if getattr(t, key) is not None:
                        create_dataset(tg, key, getattr(t, key))

    def _load(self, path: Path) -> None:
        import h5py

        from .._atomic import read_dataset
        from ..io import read_crossbar

        cfg = self.config
        with h5py.File(path, "r") as f:
            for name, al in self.layers.items():
                g = f[name]
                al.x_scale = float(g.attrs["x_scale"])
                al.w_range = _weight_range(al.matrix, cfg)
                al.tiles = []
                slices = _mapped_tiles(al.matrix, cfg)
                if len(slices) != len(g):
                    raise ValueError("cache does not match the tiling")
                for k, (rs, cs, mapped) in enumerate(slices):
                    tg = g[str(k)]
                    # the crossbar exactly as the factory programmed it (wires, device,
                    # transistor, drive and sense), not one rebuilt from the config
                    xbar = read_crossbar(tg["crossbar"])
                    t = _Tile(rs, cs, mapped, xbar, read_dataset(tg["T"], path) if "T" in tg else None, int(tg.attrs["n_clipped"]))
                    for key in ("analog_lo", "analog_hi", "slope", "offset"):
                        if key in tg:
                            setattr(t, key, read_dataset(tg[key], path))
                    al.tiles.append(t)

    # ------------------------------------------------------------------ options
    def set_quantization(self, dac_bits: int | None = None, adc_bits: int | None = None) -> "AnalogNetwork":
        """Change the converter resolutions without reprogramming (returns ``self``)."""
        for al in self.layers.values():
            al.dac_bits, al.adc_bits = dac_bits, adc_bits
        return self

    @property
    def tile_threads(self) -> int | None:
        """Threads that evaluate a layer's tiles side by side (see the class)."""
        return self._tile_threads

    @tile_threads.setter
    def tile_threads(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"tile_threads must be None or an integer >= 1; got {value!r}")
        self._tile_threads = None if value is None else int(value)
        for al in self.layers.values():
            al.tile_threads = self._tile_threads

    @property
    def n_crossbars(self) -> int:
        return sum(al.n_crossbars for al in self.layers.values())

    @property
    def n_clipped(self) -> int:
        return sum(al.n_clipped for al in self.layers.values())

    def crossbar_shapes(self) -> dict[str, list[tuple[int, int]]]:
        """Shape (rows, columns) of every crossbar, per layer."""
        return {k: [tuple(t.crossbar.G.shape) for t in al.tiles] for k, al in self.layers.items()}

    # ------------------------------------------------------------------ inference
    def _check(self):
        if not self.layers:
            raise RuntimeError("call prepare(x_cal) before running the analog network")

    def _linear(self, noise_rng):
        return lambda nd, x: self.layers[nd.name](x, noise_rng)

    def logits(self, x: np.ndarray, noise_rng: np.random.Generator | None = None) -> np.ndarray:
        """Pre-softmax outputs of the analog network for a batch ``x``."""
        self._check()
        return self.model.logits(np.asarray(x, dtype=np.float64), linear=self._linear(noise_rng))

    def predict(self, x: np.ndarray, batch_size: int = 50, *, client=None) -> np.ndarray:
        """Predicted classes, in batches (read noise, if configured, is seeded by the config).

        ``client``: a ``dask.distributed.Client``; the batches are then evaluated on its
        workers (:func:`xbarsolve.cnn.distributed.predict`), with the same result.
        """
        self._check()
        if client is not None:
            from .distributed import predict

            return predict(self, x, client=client, batch_size=batch_size)
        noise = self._noise_rng()
        out = [np.argmax(self.logits(x[i:i + batch_size], noise), axis=-1) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=int)

    def _noise_rng(self) -> np.random.Generator | None:
        """The read-noise stream of one pass over a data set (None without read noise)."""
        return np.random.default_rng(self.config.seed + 1) if self.config.noise.read_noise_sigma > 0 else None

    def evaluate(self, x: np.ndarray, labels: np.ndarray | None = None, batch_size: int = 50,
                 progress: bool = False, layer_alone: bool = True, *, client=None) -> ErrorReport:
        """Error propagation per analog layer and classification accuracy.

        Parameters
        ----------
        x : ndarray
            Model inputs.
        labels : ndarray or None
            True classes; without them the software prediction is the reference.
        batch_size : int
            Images per batch (all their sliding windows go through one GEMM per crossbar).
        progress : bool
            Show a tqdm progress bar.
        layer_alone : bool
            Also run every analog layer on the exact inputs (the "alone" errors, NaN
            otherwise); costs one more analog pass.
        client : dask.distributed.Client, optional
            Evaluate the batches on the cluster's workers
            (:func:`xbarsolve.cnn.distributed.evaluate`); the report is the same, bit for
            bit (every batch is computed as here and the per-batch statistics are merged
            in batch order).
        """
        self._check()
        if client is not None:
            from .distributed import evaluate

            return evaluate(self, x, labels, client=client, batch_size=batch_size, progress=progress,
                            layer_alone=layer_alone)
        t0 = time.perf_counter()
        noise = self._noise_rng()
        batches = range(0, len(x), batch_size)
        if progress:
            from tqdm.auto import tqdm
            batches = tqdm(batches, desc=self.model.name, unit="batch")
        results = [self._evaluate_batch(np.asarray(x[i:i + batch_size], dtype=np.float64), noise, layer_alone)
                   for i in batches]
        return self._report(results, labels, layer_alone, time.perf_counter() - t0)

    def _evaluate_batch(self, xb: np.ndarray, noise, layer_alone: bool) -> dict:
        """One batch's error statistics per layer (:meth:`_ErrAcc.batch`) and the software
        and analog predictions."""
        dig = self.model.forward(xb, keep=True)
        an = self.model.forward(xb, linear=self._linear(noise), keep=True)
        alone, accum = {}, {}
        for nd in self.model.linear_nodes:
            src = nd.inputs[0] if nd.inputs else "input"
            if layer_alone:
                alone[nd.name] = _ErrAcc.batch(self.layers[nd.name](dig[src], noise), dig[nd.name])
            accum[nd.name] = _ErrAcc.batch(an[nd.name], dig[nd.name])
        ln = self.model.logits_node
        return {"alone": alone, "accumulated": accum, "software": dig[ln].argmax(-1), "analog": an[ln].argmax(-1)}

    def _report(self, results: list[dict], labels, layer_alone: bool, seconds: float) -> ErrorReport:
        """The :class:`ErrorReport` of the batch results of :meth:`_evaluate_batch`, in order."""
        if not results:
            raise ValueError("x holds no images to evaluate")
        names = list(self.layers)
        alone = {k: _ErrAcc() for k in names}
        accum = {k: _ErrAcc() for k in names}
        for r in results:
            for k in names:
                if layer_alone:
                    alone[k].merge(r["alone"][k])
                accum[k].merge(r["accumulated"][k])
        ps = np.concatenate([r["software"] for r in results])
        pa = np.concatenate([r["analog"] for r in results])
        ref = ps if labels is None else np.asarray(labels)[: len(ps)]
        errs = []
        for k in names:
            ma, wa = alone[k].result() if layer_alone else (np.nan, np.nan)
            mc, wc = accum[k].result()
            errs.append(LayerError(k, ma, wa, mc, wc))
        return ErrorReport(tuple(errs), float((ps == ref).mean()), float((pa == ref).mean()), len(ps), seconds)
