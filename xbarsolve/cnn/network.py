"""The analog network: every convolution and dense layer of a :class:`~xbarsolve.cnn.layers.Model`
on its own simulated crossbars, everything else exact digital.

Per linear layer (:class:`AnalogLayer`) the pipeline is

1. **mapping**: the weight matrix (dense im2col mapping, or the Toeplitz matrix with
   ``conv_mapping="sparse"``) is split into tiles of at most ``rows_max x cols_max``
   cells and each tile mapped into ``[g_min, g_max]`` (shift or differential scheme,
   :mod:`xbarsolve.cnn.mapping`);
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

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Mapping

import numpy as np

from ..calibration import Calibration
from ..mapping import MappedMatrix, Scheme
from ..metrics import bit_accuracy
from ..reference import G_MAX, G_MIN, R_IN, R_OUT, R_WIRE, V_CONV, V_MAX
from .layers import Conv2D, Model, Node, conv_output_size
from .mapping import map_weights, tile_slices, toeplitz_matrix
from .quantization import quantize

__all__ = [
    "AnalogConfig", "ProgrammedCrossbar", "default_crossbar_factory", "AnalogLayer", "AnalogNetwork",
    "LayerError", "ErrorReport", "DEFAULT_V_CONV",
]

#: Default conversion-signal amplitude (V) of every layer.  The paper tabulates per-layer
#: amplitudes (Tables 4 and 5) that we could not obtain; 0.1 V is its best uniform choice
#: (Fig. 11).  For linear devices and a uniform signal ``G'`` does not depend on it.
DEFAULT_V_CONV = V_CONV


#: Changes whenever what :meth:`AnalogNetwork.prepare` computes from the same inputs
#: changes, so that an old cache file is not mistaken for a current one.
_CACHE_VERSION = b"xbarsolve-cnn-cache-3"


@dataclass(frozen=True)
class AnalogConfig:
    """How the linear layers are put on crossbars.  SI units.

    Parameters
    ----------
    g_min, g_max : float
        Conductance range (S); default ``[1/300 kOhm, 1/15 kOhm]``.
    r_row, r_col, r_in, r_out : float
        Wire segment, driver and sense resistances (ohm); default 1 ohm (paper).  All 0
        gives the ideal crossbar ``T = G`` (no solve, no conversion).
    v_max : float
        DAC full scale (V): the largest input maps to ``v_max`` (paper: 0.4 V).
    scheme : {"shift", "differential"}
        Negative-weight mapping.
    shift_reference : {"column", "digital"}
        Shift scheme: undo the shift with an analog unit column in every crossbar whose
        current is subtracted before the ADC (the default: the ADC then sees only the
        signal), or with the digital ``sum(V)`` after the ADC (the paper's equation; the
        ADC must then digitize the common mode ``b * sum(V)`` too, and 4-6 bit
        converters lose most of their resolution to it).
    conv_mapping : {"dense", "sparse"}
        Convolution mapping: im2col (one vector per window) or Toeplitz (one per image).
    rows_max, cols_max : int or None
        Largest crossbar (cells); None = whole layer on one crossbar.
    weight_bits : int or None
        Weight quantization (levels ``2**bits``) before mapping.
    conversion : bool
        Convert ``G -> G'`` to pre-compensate parasitics.
    v_conv : float or mapping of node name -> float
        Conversion-signal amplitude per layer (V), uniform over rows; names not in a
        mapping use :data:`DEFAULT_V_CONV`.
    refine : bool
        Ask the conversion for its active-set refinement of clipped cells.
    calibration : bool
        Fit per-column slope and offset after programming (paper Sec. 3.3.3).
    n_calibration : int
        Calibration samples (input vectors) per tile (paper: 10).
    n_range_samples : int
        Input vectors of the calibration images used to find the ADC ranges (a random
        subset when there are more).  The DAC full scale is the largest input of all
        of them.
    dac_bits, adc_bits : int or None
        Converter resolutions; None = ideal.
    adc_range : {"calibration", "max"}
        ADC range from the calibration pass or the max-current rule.
    programming_sigma : float
        Std of the Gaussian programming error (S), clipped to ``[g_min, g_max]``.
    programming_stage : {"after", "before"}
        Apply it to ``G'`` after conversion, or to ``G`` before it.
    read_noise_sigma : float
        Std of additive Gaussian noise on every analog output current per MVM (A).
    device, transistor
        Device and access-transistor models passed to :class:`~xbarsolve.crossbar.Crossbar`.
    seed : int
        Seed of the programming and read noise and of the calibration sampling.
    """

    g_min: float = G_MIN
    g_max: float = G_MAX
    r_row: float = R_WIRE
    r_col: float = R_WIRE
    r_in: float = R_IN
    r_out: float = R_OUT
    v_max: float = V_MAX
    scheme: Scheme = "shift"
    shift_reference: Literal["digital", "column"] = "column"
    conv_mapping: Literal["dense", "sparse"] = "dense"
    rows_max: int | None = None
    cols_max: int | None = None
    weight_bits: int | None = None
    conversion: bool = True
    v_conv: float | Mapping[str, float] = DEFAULT_V_CONV
    refine: bool = False
    calibration: bool = True
    n_calibration: int = 10
    n_range_samples: int = 20000
    dac_bits: int | None = None
    adc_bits: int | None = None
    adc_range: Literal["calibration", "max"] = "calibration"
    programming_sigma: float = 0.0
    programming_stage: Literal["after", "before"] = "after"
    read_noise_sigma: float = 0.0
    device: object = None
    transistor: object = None
    seed: int = 0

    def __post_init__(self):
        if self.scheme not in ("shift", "differential"):
            raise ValueError(f"scheme must be 'shift' or 'differential'; got {self.scheme!r}")
        if self.shift_reference not in ("digital", "column"):
            raise ValueError(f"shift_reference must be 'digital' or 'column'; got {self.shift_reference!r}")
        if self.conv_mapping not in ("dense", "sparse"):
            raise ValueError(f"conv_mapping must be 'dense' or 'sparse'; got {self.conv_mapping!r}")
        if self.adc_range not in ("calibration", "max"):
            raise ValueError(f"adc_range must be 'calibration' or 'max'; got {self.adc_range!r}")
        if self.programming_stage not in ("after", "before"):
            raise ValueError(f"programming_stage must be 'after' or 'before'; got {self.programming_stage!r}")
        for name in ("r_row", "r_col", "r_in", "r_out", "programming_sigma", "read_noise_sigma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}")
        if not self.v_max > 0:
            raise ValueError(f"v_max must be > 0 V; got {self.v_max!r}")
        if self.n_calibration < 2:
            raise ValueError(f"n_calibration must be >= 2; got {self.n_calibration!r}")

    @property
    def ideal_wires(self) -> bool:
        """True when every resistance is 0 ohm (the crossbar computes ``V @ G`` exactly)."""
        return self.r_row == 0 and self.r_col == 0 and self.r_in == 0 and self.r_out == 0

    @property
    def is_linear(self) -> bool:
        dev_lin = self.device is None or getattr(self.device, "is_linear", True)
        tr_lin = self.transistor is None or getattr(self.transistor, "is_linear", True)
        return bool(dev_lin and tr_lin)

    def amplitude(self, name: str) -> float:
        """Conversion amplitude (V) of the layer called ``name``."""
        if isinstance(self.v_conv, Mapping):
            return float(self.v_conv.get(name, DEFAULT_V_CONV))
        return float(self.v_conv)

    def programming_key(self) -> dict:
        """The fields that determine the programmed crossbars and calibrations (cache key)."""
        d = dataclasses.asdict(self)
        for k in ("dac_bits", "adc_bits", "read_noise_sigma"):
            d.pop(k)
        d["v_conv"] = dict(self.v_conv) if isinstance(self.v_conv, Mapping) else self.v_conv
        d["device"] = repr(self.device)
        d["transistor"] = repr(self.transistor)
        return d


@dataclass(frozen=True, eq=False)
class ProgrammedCrossbar:
    """What a crossbar factory returns: the programmed array and conversion facts."""

    crossbar: object
    n_clipped: int = 0
    info: dict = field(default_factory=dict)


CrossbarFactory = Callable[[np.ndarray, str, AnalogConfig, np.random.Generator], ProgrammedCrossbar]


def _program_error(G, cfg: AnalogConfig, rng):
    if cfg.programming_sigma == 0:
        return G
    return np.clip(G + rng.normal(0.0, cfg.programming_sigma, G.shape), cfg.g_min, cfg.g_max)


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

    kw = {}
    if cfg.device is not None:
        kw["device"] = cfg.device
    G = np.asarray(G, dtype=np.float64)
    if cfg.programming_stage == "before":
        G = _program_error(G, cfg, rng)
    xbar = Crossbar(G, r_row=cfg.r_row, r_col=cfg.r_col, r_in=cfg.r_in, r_out=cfg.r_out,
                    transistor=cfg.transistor, **kw)
    n_clipped, info = 0, {}
    if cfg.conversion and not cfg.ideal_wires:
        from ..conversion import convert

        amp = cfg.amplitude(name.split("/")[0])
        conv = convert(xbar, np.full(xbar.m, amp), g_min=cfg.g_min, g_max=cfg.g_max, refine=cfg.refine)
        xbar = conv.crossbar
        n_clipped = int(conv.n_clipped)
        info = {"v_conv": amp, "n_clipped": n_clipped, "n_nonpositive": int(getattr(conv, "n_nonpositive", 0))}
    if cfg.programming_stage == "after" and cfg.programming_sigma > 0:
        xbar = xbar.with_conductances(_program_error(xbar.G, cfg, rng))
    return ProgrammedCrossbar(xbar, n_clipped, info)


def _tiles(W, cfg: AnalogConfig):
    ref = cfg.scheme == "shift" and cfg.shift_reference == "column"
    cpo = 2 if cfg.scheme == "differential" else 1
    return tile_slices(W.shape[0], W.shape[1], cfg.rows_max, cfg.cols_max, cpo, int(ref))


def _map(W, cfg: AnalogConfig, w_range) -> MappedMatrix:
    ref = cfg.scheme == "shift" and cfg.shift_reference == "column"
    return map_weights(W, cfg.scheme, g_min=cfg.g_min, g_max=cfg.g_max, w_range=w_range, bits=cfg.weight_bits,
                       reference_column=ref)


@dataclass(eq=False)
class _Tile:
    rows: slice
    cols: slice
    mapped: MappedMatrix
    crossbar: object  # Crossbar
    T: np.ndarray | None  # transfer matrix (S), or None for a nonlinear array
    n_clipped: int = 0
    analog_lo: np.ndarray | None = None  # calibration-pass range of the analog output (A)
    analog_hi: np.ndarray | None = None
    slope: np.ndarray | None = None
    offset: np.ndarray | None = None

    def currents(self, V: np.ndarray) -> np.ndarray:
        if self.T is not None:
            return V @ self.T
        from ..solve import solve

        return solve(self.crossbar, V).currents


class AnalogLayer:
    """One convolution or dense node on crossbars (see the module docstring).

    Built by :class:`AnalogNetwork`; :meth:`__call__` maps the node's input to its output.
    """

    def __init__(self, node: Node, input_shape: tuple[int, ...], cfg: AnalogConfig):
        self.node = node
        self.cfg = cfg
        layer = node.layer
        self.sparse = isinstance(layer, Conv2D) and cfg.conv_mapping == "sparse"
        if self.sparse:
            self.matrix = toeplitz_matrix(layer.kernel, input_shape, layer.strides, layer.padding)
            pads = layer.pads(input_shape[:2])
            self.out_hw = tuple(conv_output_size(input_shape[a], layer.kernel.shape[a], layer.strides[a], pads[a]) for a in (0, 1))
        else:
            self.matrix = layer.weight_matrix
        self.x_scale = 1.0  # input full scale (input units) mapped to v_max
        self.tiles: list[_Tile] = []
        self.dac_bits = cfg.dac_bits
        self.adc_bits = cfg.adc_bits
        self.read_noise_sigma = cfg.read_noise_sigma

    # ------------------------------------------------------------------ vectors
    def vectors(self, x: np.ndarray) -> np.ndarray:
        """Crossbar input vectors (batch, rows) in input units."""
        if self.sparse:
            return x.reshape(x.shape[0], -1)
        return self.node.layer.patches(x).reshape(-1, self.matrix.shape[0])

    def assemble(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Node output from the products ``y`` of the vectors with :attr:`matrix`."""
        layer = self.node.layer
        N = x.shape[0]
        if self.sparse:
            y = y.reshape(N, *self.out_hw, -1)
        elif isinstance(layer, Conv2D):
            pads = layer.pads(x.shape[1:3])
            Ho, Wo = (conv_output_size(x.shape[1 + a], layer.kernel.shape[a], layer.strides[a], pads[a]) for a in (0, 1))
            y = y.reshape(N, Ho, Wo, -1)
        return layer.finish(y)

    @property
    def n_crossbars(self) -> int:
        return len(self.tiles)

    @property
    def n_clipped(self) -> int:
        return sum(t.n_clipped for t in self.tiles)

    # ------------------------------------------------------------------ build
    def program(self, factory: CrossbarFactory, rng: np.random.Generator) -> None:
        """Map, tile and program the crossbars; compute their transfer matrices."""
        from ..solve import transfer_matrix

        cfg = self.cfg
        W = self.matrix
        w_range = (float(W.min()), float(W.max())) if cfg.scheme == "shift" else (-float(np.abs(W).max()), float(np.abs(W).max()))
        self.tiles = []
        for k, (rs, cs) in enumerate(_tiles(W, cfg)):
            mapped = _map(W[rs, cs], cfg, w_range)
            prog = factory(mapped.G, f"{self.node.name}/{k}", cfg, rng)
            xbar = prog.crossbar
            if cfg.ideal_wires and xbar.is_linear and xbar.transistor is None:
                T = np.asarray(xbar.G)  # zero wires, no transistor: T == G exactly
            elif xbar.is_linear:
                T = transfer_matrix(xbar)
            else:
                T = None
            self.tiles.append(_Tile(rs, cs, mapped, xbar, T, prog.n_clipped))

    def calibrate(self, x_cal: np.ndarray, rng: np.random.Generator) -> None:
        """Set the DAC full scale, the ADC ranges and (if configured) the per-column
        calibration from the node's exact inputs ``x_cal`` on held-out data."""
        P = self.vectors(x_cal)
        amax = float(np.abs(P).max()) if P.size else 0.0
        self.x_scale = amax if amax > 0 else 1.0
        if len(P) > self.cfg.n_range_samples:
            P = P[rng.choice(len(P), self.cfg.n_range_samples, replace=False)]
        for t in self.tiles:
            t.slope = t.offset = None
            t.analog_lo = t.analog_hi = None
        # ADC ranges (calibration pass), with ideal converters.
        parts = self._voltages(P, dac_bits=None)
        for t in self.tiles:
            lo = hi = None
            for _, V in parts:
                a = t.mapped.analog_output(t.currents(V[:, t.rows]))
                lo = a.min(axis=0) if lo is None else np.minimum(lo, a.min(axis=0))
                hi = a.max(axis=0) if hi is None else np.maximum(hi, a.max(axis=0))
            if self.cfg.adc_range == "max":
                lo, hi = t.mapped.analog_range(self.cfg.v_max)
            t.analog_lo, t.analog_hi = lo, hi
        if not self.cfg.calibration:
            return
        # Per-column linear calibration on n_calibration random vectors that are not all zero.
        nz = np.flatnonzero(np.abs(P).sum(axis=1) > 0)
        pool = nz if len(nz) >= self.cfg.n_calibration else np.arange(len(P))
        idx = rng.choice(pool, min(self.cfg.n_calibration, len(pool)), replace=False)
        Pc = P[idx]
        parts = self._voltages(Pc, dac_bits=None)
        for t in self.tiles:
            raw = self._tile_output(t, parts, adc_bits=None, noise_rng=None)
            ideal = Pc[:, t.rows] @ self.matrix[t.rows, t.cols]
            cal = Calibration(per="column").fit(raw, ideal)
            t.slope, t.offset = cal.slope, cal.offset

    # ------------------------------------------------------------------ evaluation
    def _voltages(self, P: np.ndarray, dac_bits):
        """(sign, V) pairs: the non-negative and (if present) negative parts of the inputs
        as DAC voltages (V)."""
        parts = [(1.0, P)]
        if P.size and P.min() < 0:
            parts = [(1.0, np.maximum(P, 0.0)), (-1.0, np.maximum(-P, 0.0))]
        out = []
        for sign, Q in parts:
            if dac_bits is None:  # the ideal DAC does not saturate
                out.append((sign, Q * (self.cfg.v_max / self.x_scale)))
            else:  # a real DAC saturates at full scale
                out.append((sign, quantize(Q / self.x_scale, dac_bits, 0.0, 1.0) * self.cfg.v_max))
        return out

    def _tile_output(self, t: _Tile, parts, *, adc_bits, noise_rng) -> np.ndarray:
        """Decoded (uncalibrated) output of one tile for the DAC voltages ``parts``."""
        y = None
        for sign, V in parts:
            Vt = V[:, t.rows]
            a = t.mapped.analog_output(t.currents(Vt))
            if noise_rng is not None and self.read_noise_sigma > 0:
                a = a + noise_rng.normal(0.0, self.read_noise_sigma, a.shape)
            if adc_bits is not None:
                a = quantize(a, adc_bits, t.analog_lo, t.analog_hi)
            part = t.mapped.decode(a, Vt.sum(axis=1)) * (self.x_scale / self.cfg.v_max)
            y = sign * part if y is None else y + sign * part
        return y

    def products(self, P: np.ndarray, noise_rng: np.random.Generator | None = None) -> np.ndarray:
        """Analog estimate of ``P @ matrix`` for input vectors ``P`` (batch, rows)."""
        Y = np.zeros((P.shape[0], self.matrix.shape[1]))
        parts = self._voltages(P, self.dac_bits)
        for t in self.tiles:
            y = self._tile_output(t, parts, adc_bits=self.adc_bits, noise_rng=noise_rng)
            if t.slope is not None:
                y = y * t.slope + t.offset
            Y[:, t.cols] += y
        return Y

    def __call__(self, x: np.ndarray, noise_rng: np.random.Generator | None = None) -> np.ndarray:
        return self.assemble(self.products(self.vectors(x), noise_rng), x)


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
    """Streaming per-channel accumulator of |actual - ideal| and the ideal range."""

    def __init__(self):
        self.sum = self.max = self.lo = self.hi = None
        self.count = 0

    def add(self, actual, ideal):
        C = ideal.shape[-1]
        d = np.abs(actual - ideal).reshape(-1, C)
        i = ideal.reshape(-1, C)
        s, mx, lo, hi = d.sum(0), d.max(0), i.min(0), i.max(0)
        if self.sum is None:
            self.sum, self.max, self.lo, self.hi = s, mx, lo, hi
        else:
            self.sum += s
            self.max = np.maximum(self.max, mx)
            self.lo = np.minimum(self.lo, lo)
            self.hi = np.maximum(self.hi, hi)
        self.count += d.shape[0]

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

    Examples
    --------
    >>> import numpy as np
    >>> from xbarsolve.cnn import AnalogConfig, AnalogNetwork, mnist_cnn4
    >>> model = mnist_cnn4()                                          # doctest: +SKIP
    >>> net = AnalogNetwork(model, AnalogConfig()).prepare(x_cal)      # doctest: +SKIP
    >>> net.predict(x_test)                                           # doctest: +SKIP
    """

    def __init__(self, model: Model, config: AnalogConfig | None = None, *,
                 crossbar_factory: CrossbarFactory | None = None, cache_dir: str | Path | None = None):
        self.model = model
        self.config = config or AnalogConfig()
        self.factory = crossbar_factory or default_crossbar_factory
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.layers: dict[str, AnalogLayer] = {}
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
        import h5py

        from ..io import write_crossbar

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with h5py.File(tmp, "w") as f:
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
                        tg.create_dataset("T", data=t.T, compression="gzip", compression_opts=1)
                    tg.attrs["n_clipped"] = t.n_clipped
                    for key in ("analog_lo", "analog_hi", "slope", "offset"):
                        if getattr(t, key) is not None:
                            tg.create_dataset(key, data=getattr(t, key))
        tmp.replace(path)

    def _load(self, path: Path) -> None:
        import h5py

        from ..io import read_crossbar

        cfg = self.config
        with h5py.File(path, "r") as f:
            for name, al in self.layers.items():
                g = f[name]
                al.x_scale = float(g.attrs["x_scale"])
                W = al.matrix
                w_range = (float(W.min()), float(W.max())) if cfg.scheme == "shift" else (-float(np.abs(W).max()), float(np.abs(W).max()))
                al.tiles = []
                slices = _tiles(W, cfg)
                if len(slices) != len(g):
                    raise ValueError("cache does not match the tiling")
                for k, (rs, cs) in enumerate(slices):
                    tg = g[str(k)]
                    mapped = _map(W[rs, cs], cfg, w_range)
                    # the crossbar exactly as the factory programmed it (wires, device,
                    # transistor, drive and sense), not one rebuilt from the config
                    xbar = read_crossbar(tg["crossbar"])
                    t = _Tile(rs, cs, mapped, xbar, tg["T"][()] if "T" in tg else None, int(tg.attrs["n_clipped"]))
                    for key in ("analog_lo", "analog_hi", "slope", "offset"):
                        if key in tg:
                            setattr(t, key, tg[key][()])
                    al.tiles.append(t)

    # ------------------------------------------------------------------ options
    def set_quantization(self, dac_bits: int | None = None, adc_bits: int | None = None) -> "AnalogNetwork":
        """Change the converter resolutions without reprogramming (returns ``self``)."""
        for al in self.layers.values():
            al.dac_bits, al.adc_bits = dac_bits, adc_bits
        return self

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

    def predict(self, x: np.ndarray, batch_size: int = 50) -> np.ndarray:
        """Predicted classes, in batches (read noise, if configured, is seeded by the config)."""
        self._check()
        noise = np.random.default_rng(self.config.seed + 1) if self.config.read_noise_sigma > 0 else None
        out = [np.argmax(self.logits(x[i:i + batch_size], noise), axis=-1) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, dtype=int)

    def evaluate(self, x: np.ndarray, labels: np.ndarray | None = None, batch_size: int = 50,
                 progress: bool = False, layer_alone: bool = True) -> ErrorReport:
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
        """
        self._check()
        t0 = time.perf_counter()
        noise = np.random.default_rng(self.config.seed + 1) if self.config.read_noise_sigma > 0 else None
        names = list(self.layers)
        alone = {k: _ErrAcc() for k in names}
        accum = {k: _ErrAcc() for k in names}
        pred_sw, pred_an = [], []
        batches = range(0, len(x), batch_size)
        if progress:
            from tqdm.auto import tqdm
            batches = tqdm(batches, desc=self.model.name, unit="batch")
        for i in batches:
            xb = np.asarray(x[i:i + batch_size], dtype=np.float64)
            dig = self.model.forward(xb, keep=True)
            an = self.model.forward(xb, linear=self._linear(noise), keep=True)
            for nd in self.model.linear_nodes:
                src = nd.inputs[0] if nd.inputs else "input"
                if layer_alone:
                    alone[nd.name].add(self.layers[nd.name](dig[src], noise), dig[nd.name])
                accum[nd.name].add(an[nd.name], dig[nd.name])
            ln = self.model.logits_node
            pred_sw.append(dig[ln].argmax(-1))
            pred_an.append(an[ln].argmax(-1))
        ps, pa = np.concatenate(pred_sw), np.concatenate(pred_an)
        ref = ps if labels is None else np.asarray(labels)[: len(ps)]
        errs = []
        for k in names:
            ma, wa = alone[k].result() if layer_alone else (np.nan, np.nan)
            mc, wc = accum[k].result()
            errs.append(LayerError(k, ma, wa, mc, wc))
        return ErrorReport(tuple(errs), float((ps == ref).mean()), float((pa == ref).mean()), len(ps),
                           time.perf_counter() - t0)
