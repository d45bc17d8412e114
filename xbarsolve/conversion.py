"""Conversion ``G -> G'``: pre-compensate parasitic resistance (docs/model.md section 4).

The conversion (Hu et al., DAC 2016; Zhang & Hu 2022, Algorithm 1) finds conductances
``G'`` such that, with the conversion signal ``v_conv`` applied to the rows, every cell
passes its ideal current ``I_ij = v_conv_i * G_ij``.  The converted array then computes
the ideal product ``V @ G`` exactly for ``V = v_conv`` and approximately for other inputs.

Because every cell current is prescribed, the row and column wires decouple: each line
is a resistive chain with known taps, so all node voltages follow from cumulative sums in
O(mn) work, for single-ended *and* both-ended drive/sense (with both ends connected the
split of a line's current between its two ends is one linear equation per line, solved
in closed form).  Each cell is then inverted: the transistor's drain voltage that carries
``I_ij`` (1-D Newton for a nonlinear transistor), and the memristor state ``G'`` that
passes ``I_ij`` at the remaining voltage (secant in ``G``; exact for models affine in
``G``).

A target is infeasible when the required memristor voltage has the wrong sign (``<= 0``
for a positive current: the wires drop more than the inputs supply) or when ``G'`` leaves
``[g_min, g_max]``; such cells are clipped and reported.  ``refine=True`` then finds the
in-range ``G'`` for which every unclipped cell passes its target exactly under the
clipped neighbours (an active-set iteration of exact linear solves).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from . import _conversion_kernels as _k
from .crossbar import Crossbar
from .reference import V_MAX
from .topology import nodal_matrices, topology
from .transistors import Resistor, Switch

__all__ = [
    "Conversion",
    "convert",
    "ClippingWarning",
    "InfeasibleConversionError",
    "constant_signal",
    "random_signal",
    "input_derived_signal",
    "SignalChoice",
    "optimize_conversion_signal",
]


OnClip = Literal["warn", "raise", "ignore"]


class ClippingWarning(UserWarning):
    """:func:`convert` clipped cells: the targets are infeasible for the array."""


class InfeasibleConversionError(ValueError):
    """:func:`convert` with ``on_clip="raise"`` clipped cells."""


@dataclass(frozen=True, eq=False)
class Conversion:
    """Result of :func:`convert`.

    Attributes
    ----------
    crossbar : Crossbar
        The converted array: same parasitics and models, conductances :attr:`g_prime`.
    original : Crossbar
        The array that was converted (its ``G`` holds the target conductances).
    v_conv : ndarray, shape (m,)
        Conversion signal (V).
    g_prime : ndarray, shape (m, n)
        Converted conductances (S) after clipping (and refinement, if asked).
    g_required : ndarray, shape (m, n)
        Unclipped conductances (S) the exact conversion asks for; ``+inf`` where the
        required memristor voltage has the wrong sign (no conductance can pass the target).
    v_memristor : ndarray, shape (m, n)
        Voltage (V) each memristor must see to pass its target current in the converted
        state (``<= 0`` marks an infeasible positive target).
    v_top, v_bottom : ndarray, shape (m, n)
        Row-wire and column-wire node voltages (V) of the exact (unclipped) converted state.
    clipped : ndarray of bool, shape (m, n)
        Cells whose ``g_required`` was outside ``[g_min, g_max]`` (or infinite) and were
        set to the nearest bound.
    undetermined : ndarray of bool, shape (m, n)
        Cells of rows with ``v_conv == 0``: they carry no current during conversion, so
        the conversion says nothing about them; they keep their original ``G``.
    g_min, g_max : float
        Bounds (S) used for clipping (``0`` and ``inf`` when not given).
    refined : bool
        Whether the active-set refinement ran.
    refine_iterations : int
        Linear solves spent by the refinement.
    memristor_currents : ndarray, shape (m, n)
        Current (A) each memristor passes in the converted state: the target
        ``v_conv_i * G_ij`` plus what a transistor's junctions leak to the bulk (the
        conversion makes the *net* injection into each column node equal the target, so
        the column currents under ``v_conv`` are exactly ideal).
    """

    crossbar: Crossbar
    original: Crossbar
    v_conv: np.ndarray
    g_prime: np.ndarray
    g_required: np.ndarray
    v_memristor: np.ndarray
    v_top: np.ndarray
    v_bottom: np.ndarray
    clipped: np.ndarray
    undetermined: np.ndarray
    g_min: float
    g_max: float
    refined: bool = False
    refine_iterations: int = 0
    memristor_currents: np.ndarray | None = None
    _extra: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_clipped(self) -> int:
        """Number of clipped cells."""
        return int(self.clipped.sum())

    @property
    def clipped_fraction(self) -> float:
        """Fraction of cells clipped."""
        return self.n_clipped / self.clipped.size

    @property
    def n_nonpositive(self) -> int:
        """Cells whose required memristor voltage cannot carry their target (``v * I <= 0``, ``I != 0``)."""
        return int(np.isinf(self.g_required).sum())

    @property
    def target_currents(self) -> np.ndarray:
        """Ideal cell currents ``v_conv_i * G_ij`` (A), shape (m, n)."""
        return self.v_conv[:, None] * self.original.G

    @property
    def excess(self) -> np.ndarray:
        """How far each required ``G'`` lies outside ``[g_min, g_max]`` (S), 0 inside, ``inf``
        where no conductance is feasible; shape (m, n)."""
        g = self.g_required
        with np.errstate(invalid="ignore"):
            out = np.maximum(g - self.g_max, 0.0) + np.maximum(self.g_min - g, 0.0)
        out[np.isinf(g)] = np.inf
        out[self.undetermined] = 0.0
        return out

    @property
    def worst_excess(self) -> float:
        """Largest :attr:`excess` (S); ``inf`` when some cell needs a memristor voltage of the
        wrong sign, 0 when nothing clipped."""
        return float(self.excess.max()) if self.excess.size else 0.0

    @property
    def worst_finite_ratio(self) -> float:
        """Largest finite ``g_required / g_max`` (dimensionless; ``nan`` without ``g_max``)."""
        g = self.g_required[np.isfinite(self.g_required)]
        if not np.isfinite(self.g_max) or g.size == 0:
            return float("nan")
        return float(g.max() / self.g_max)

    @property
    def min_v_memristor(self) -> float:
        """Smallest required memristor voltage (V) over determined cells with a current."""
        sel = ~self.undetermined & (self.target_currents != 0)
        return float(self.v_memristor[sel].min()) if sel.any() else float("nan")

    def report(self) -> str:
        """A one-paragraph plain-text summary of feasibility."""
        m, n = self.g_prime.shape
        lines = [
            f"conversion of a {m}x{n} array: {self.n_clipped} of {m * n} cells clipped "
            f"({100 * self.clipped_fraction:.1f} %), {self.n_nonpositive} need a memristor voltage <= 0",
            f"smallest required memristor voltage {self.min_v_memristor:.4g} V",
        ]
        if np.isfinite(self.g_max):
            lines.append(f"largest finite required G'/g_max = {self.worst_finite_ratio:.4g}")
        if self.refined:
            lines.append(f"refined with {self.refine_iterations} linear solve(s)")
        return "; ".join(lines)


# --------------------------------------------------------------------------- helpers
def _check_bounds(g_min, g_max) -> tuple[float, float]:
    lo = 0.0 if g_min is None else float(g_min)
    hi = np.inf if g_max is None else float(g_max)
    if not np.isfinite(lo) or lo < 0:
        raise ValueError(f"g_min must be a finite conductance >= 0 S; got {g_min!r}")
    if np.isnan(hi) or hi <= 0:
        raise ValueError(f"g_max must be a conductance > 0 S; got {g_max!r}")
    if lo >= hi:
        raise ValueError(f"g_min must be smaller than g_max; got g_min={lo!r} S >= g_max={hi!r} S")
    return lo, hi


def _check_signal(xbar: Crossbar, v_conv) -> np.ndarray:
    v = np.asarray(v_conv, dtype=np.float64)
    if v.ndim == 0:
        v = np.full(xbar.m, float(v))
    if v.shape != (xbar.m,):
        raise ValueError(f"v_conv must be a scalar or an array of shape ({xbar.m},) volts for a {xbar.m}x{xbar.n} array; got shape {np.shape(v_conv)}")
    if not np.isfinite(v).all():
        i = int(np.argwhere(~np.isfinite(v))[0, 0])
        raise ValueError(f"v_conv must be finite; v_conv[{i}] = {v[i]!r}")
    if not (v != 0).any():
        raise ValueError("v_conv must have at least one nonzero entry (V); an all-zero signal determines nothing")
    return np.ascontiguousarray(v)


def _converted_state(xbar: Crossbar, I: np.ndarray, v: np.ndarray, tol: float, max_iter: int):
    """Node voltages of the exact converted state in which cell (i, j) injects ``I[i, j]``
    (A) into its column node.

    Returns ``v_top, v_bottom, v_mid`` (V), the memristor currents (A; equal to ``I``
    unless a transistor leaks through junctions to the bulk) and a mask of the cells
    whose transistor can carry the current.  Order: column wires (known injections) ->
    transistor channel inversion -> memristor currents -> row wires.
    """
    topo = topology(xbar)
    I = np.ascontiguousarray(I)
    # An open end is passed as an infinite resistance, which the kernels never read.
    v_bottom = _k.column_voltages(I, topo.r_col, topo.end_resistance("top"), topo.end_resistance("bottom"),
                                  topo.terminal("top") is not None, topo.terminal("bottom") is not None)
    ok = np.ones(I.shape, dtype=bool)
    tr = xbar.transistor
    i_mem = I
    if tr is None or isinstance(tr, Switch):
        v_mid = v_bottom
    elif isinstance(tr, Resistor):
        v_mid = v_bottom + I * tr.r_on
    else:
        p = np.asarray(tr.parameters(), np.float64)
        vg = np.ascontiguousarray(np.broadcast_to(topo.gate_voltages(tr), (xbar.m,)))
        junction = getattr(tr, "junction_kernel", None)
        # Leakage of the source junction leaves the column node: the channel supplies it too.
        i_channel = I + _k.junction_currents(junction, v_bottom, p) if junction is not None else I
        v_mid, ok = _k.invert_transistor(tr.kernel, np.ascontiguousarray(i_channel), v_bottom, vg, p, 100.0, tol, max_iter)
        if junction is not None:
            i_mem = i_channel + _k.junction_currents(junction, np.where(ok, v_mid, v_bottom), p)
        else:
            i_mem = i_channel
    v_top = _k.row_voltages(np.ascontiguousarray(i_mem), v, topo.r_row, topo.end_resistance("left"), topo.end_resistance("right"),
                            topo.terminal("left") is not None, topo.terminal("right") is not None)
    return v_top, v_bottom, v_mid, i_mem, ok


def _required_conductances(xbar: Crossbar, I: np.ndarray, v_mem: np.ndarray, tol: float, max_iter: int):
    dev = xbar.device
    if dev.is_linear:
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(I * v_mem > 0, I / np.where(v_mem == 0, 1.0, v_mem), np.inf)
        g[I == 0] = 0.0
        return g, np.ones(I.shape, dtype=bool)
    current, _ = dev.kernels
    return _k.invert_device(current, np.ascontiguousarray(I), np.ascontiguousarray(v_mem), xbar.G,
                            np.asarray(dev.parameters(), np.float64), tol, max_iter)


def _clip(g_req: np.ndarray, G: np.ndarray, undetermined: np.ndarray, lo: float, hi: float):
    clipped = ((g_req < lo) | (g_req > hi) | ~np.isfinite(g_req)) & ~undetermined
    if np.isfinite(hi):
        ceiling = hi
    else:
        finite = g_req[np.isfinite(g_req)]
        ceiling = max(float(G.max()), float(finite.max()) if finite.size else 0.0)
    g = np.where(np.isnan(g_req), ceiling, g_req)
    g = np.clip(g, lo, ceiling)
    g = np.where(undetermined, G, g)
    return g, clipped


# --------------------------------------------------------------------------- convert
def convert(
    xbar: Crossbar,
    v_conv,
    *,
    g_min: float | None = None,
    g_max: float | None = None,
    refine: bool = False,
    refine_max_iter: int = 50,
    tol: float = 1e-12,
    max_iter: int = 100,
    on_clip: OnClip = "warn",
) -> Conversion:
    """Convert the target conductances of ``xbar`` into ``G'`` that cancel its parasitics.

    Parameters
    ----------
    xbar : Crossbar
        The array; ``xbar.G`` holds the target conductances (S), the ideal product being
        ``V @ G``.  Any drive/sense topology, device and transistor model.
    v_conv : float or array_like, shape (m,)
        Conversion signal (V) applied to the rows.  Rows with ``v_conv == 0`` carry no
        current and keep their ``G`` (reported as ``undetermined``).
    g_min, g_max : float, optional
        Programmable conductance range (S), ``0 <= g_min < g_max``.  Cells whose ``G'``
        falls outside are clipped to the nearest bound.  Without ``g_max``, cells that no
        conductance can serve are set to the largest finite ``G'`` (or ``max(G)``).
    refine : bool
        After clipping, iterate exact linear solves so that every unclipped cell passes
        its target current given its clipped neighbours (linear device and transistor,
        all resistances > 0).  Cells that leave the range on the way are clipped too.
    refine_max_iter : int
        Maximum linear solves of the refinement (>= 1).
    tol : float
        Relative current tolerance of the per-cell Newton/secant inversions.
    max_iter : int
        Iteration cap of those inversions.
    on_clip : {"warn", "raise", "ignore"}
        What to do when some cells are clipped (the converted array then computes
        ``V @ G`` only approximately, even for ``V = v_conv``): warn with
        :class:`ClippingWarning` (the default), raise :class:`InfeasibleConversionError`,
        or say nothing (the caller reads ``conv.n_clipped`` / ``conv.report()``).

    Returns
    -------
    Conversion
        ``conv.crossbar`` is the converted array, ``conv.n_clipped`` the clipped count.

    Raises
    ------
    ValueError
        On a ``v_conv`` of the wrong shape or non-finite, or invalid bounds.
    InfeasibleConversionError
        With ``on_clip="raise"``, when some cells are clipped.

    Warns
    -----
    ClippingWarning
        With ``on_clip="warn"``, when some cells are clipped.

    Examples
    --------
    >>> import numpy as np, xbarsolve as xs
    >>> G = np.random.default_rng(0).uniform(10e-6, 60e-6, (16, 8))
    >>> xbar = xs.Crossbar(G, r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0)
    >>> conv = xs.convert(xbar, np.full(16, 0.04))
    >>> I = xs.solve(conv.crossbar, np.full(16, 0.04)).currents
    >>> bool(np.allclose(I, xbar.ideal_currents(np.full(16, 0.04)), rtol=1e-9))
    True
    """
    if on_clip not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_clip must be 'warn', 'raise' or 'ignore'; got {on_clip!r}")
    lo, hi = _check_bounds(g_min, g_max)
    topology(xbar).require_ladder("xs.convert")  # its equations are those of row inputs on a ladder
    v = _check_signal(xbar, v_conv)
    if int(refine_max_iter) < 1:
        raise ValueError(f"refine_max_iter must be >= 1; got {refine_max_iter!r}")
    G = xbar.G
    I = v[:, None] * G
    undetermined = np.broadcast_to((v == 0)[:, None], G.shape).copy() & (G > 0)
    v_top, v_bottom, v_mid, i_mem, ok_t = _converted_state(xbar, I, v, tol, max_iter)
    v_mem = v_top - v_mid
    g_req, ok_d = _required_conductances(xbar, i_mem, np.where(ok_t, v_mem, 0.0), tol, max_iter)
    g_req = np.where(ok_t & ok_d, g_req, np.inf)
    g_req[undetermined] = G[undetermined]
    g, clipped = _clip(g_req, G, undetermined, lo, hi)
    iterations = 0
    if refine and clipped.any():
        g, clipped, iterations = _refine(xbar, v, I, g, clipped, undetermined, lo, hi, int(refine_max_iter))
    i_mem = np.array(i_mem, dtype=np.float64)
    for a in (v, g, g_req, v_mem, v_top, v_bottom, clipped, undetermined, i_mem):
        a.setflags(write=False)
    conv = Conversion(
        crossbar=xbar.with_conductances(g), original=xbar, v_conv=v, g_prime=g, g_required=g_req,
        v_memristor=v_mem, v_top=v_top, v_bottom=v_bottom, clipped=clipped, undetermined=undetermined,
        g_min=lo, g_max=hi, refined=bool(refine and iterations > 0), refine_iterations=iterations,
        memristor_currents=i_mem,
    )
    _on_clip(conv, on_clip)
    return conv


def _on_clip(conv: Conversion, on_clip: OnClip, stacklevel: int = 3) -> None:
    """Warn about or refuse a conversion that clipped cells, as ``on_clip`` says."""
    if on_clip == "ignore" or not conv.n_clipped:
        return
    message = (f"xs.convert: the targets are infeasible for this array: {conv.report()}.  The converted array "
               "computes V @ G only approximately; lower the targets or the conversion amplitude, widen "
               "[g_min, g_max] or try refine=True")
    if on_clip == "raise":
        raise InfeasibleConversionError(message + " (on_clip='raise')")
    warnings.warn(message + "; pass on_clip='ignore' where clipping is expected", ClippingWarning, stacklevel=stacklevel)


# --------------------------------------------------------------------------- refinement
def _refine(xbar, v, I, g, clipped, undetermined, lo, hi, max_iter):
    """Active-set refinement: unclipped cells are current sources of their targets, clipped
    (and undetermined) cells fixed conductances; solve the linear network exactly, recompute
    ``G'`` of the free cells, clip new violators, repeat until no cell leaves the range."""
    import scipy.sparse.linalg as spla

    if not xbar.is_linear:
        raise NotImplementedError("refine=True needs a linear device and transistor; nonlinear refinement is not implemented")
    topo = topology(xbar)
    if topo.has_zero_resistance:
        raise ValueError("refine=True needs every wire, r_in and r_out resistance > 0 ohm")
    from .transistors import series_conductance

    m, n = g.shape
    N = m * n
    nodes = topo.nodes()
    fixed_values = np.append(v, 0.0)  # the sources, then the ground
    clipped = clipped.copy()
    iterations = 0
    for iterations in range(1, max_iter + 1):
        fixed = clipped | undetermined
        # Clipped and undetermined cells are conductances; the free ones current sources T -> B.
        a, b, r = topo.branches(np.where(fixed, series_conductance(g, xbar.transistor), 0.0), nodes)
        A, R = nodal_matrices(a, b, 1.0 / r, nodes.n_unknown, m + 1)
        src = np.where(fixed, 0.0, I).ravel()
        rhs = R @ fixed_values
        rhs[:N] -= src
        rhs[N:] += src
        x = spla.spsolve(A, rhs)
        vt, vb = x[:N].reshape(m, n), x[N:].reshape(m, n)
        v_mid = vb + I * xbar.transistor.r_on if isinstance(xbar.transistor, Resistor) else vb
        g_new, _ = _required_conductances(xbar, I, vt - v_mid, 1e-12, 100)
        free = ~fixed
        bad = free & ((g_new < lo) | (g_new > hi) | ~np.isfinite(g_new))
        g = np.where(free, np.clip(np.where(np.isfinite(g_new), g_new, hi if np.isfinite(hi) else g.max()), lo, hi), g)
        if not bad.any():
            break
        # Clip the worse half of the offenders first: clipping a cell lowers the wire
        # currents, and with them what its neighbours need.
        over = bad & np.isfinite(g_new) & (g_new > hi)
        cut = np.quantile(g_new[over], 0.5) if over.any() else np.inf
        clipped |= bad & (~np.isfinite(g_new) | (g_new < lo) | (g_new >= cut))
    return g, clipped, iterations


# --------------------------------------------------------------------------- signals
def _v_max(v_max: float) -> float:
    v = float(v_max)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"v_max must be a finite voltage > 0 V; got {v_max!r}")
    return v


def constant_signal(m: int, amplitude: float = 0.1, *, v_max: float = V_MAX) -> np.ndarray:
    """The paper's "all-``amplitude``" conversion signal: ``amplitude * v_max`` volts on every row.

    Parameters
    ----------
    m : int
        Number of rows.
    amplitude : float
        Fraction of the input range, in (0, 1] typically (paper: 1, 0.1, 0.01, 0.001).
    v_max : float
        Top of the input range (V); the paper's inputs lie in [0, 0.4] V.
    """
    if not np.isfinite(amplitude) or amplitude <= 0:
        raise ValueError(f"amplitude must be a finite fraction of the input range > 0; got {amplitude!r}")
    return np.full(int(m), float(amplitude) * _v_max(v_max))


def random_signal(m: int, amplitude: float = 0.1, *, v_max: float = V_MAX, sparsity: float = 0.0, rng=None) -> np.ndarray:
    """A random conversion signal, uniform in ``[0, amplitude * v_max]`` volts.

    ``sparsity`` (0 <= s < 1) sets that fraction of rows to 0 V; those rows are
    ``undetermined`` by the conversion and keep their conductances.
    """
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must lie in [0, 1); got {sparsity!r}")
    rng = np.random.default_rng(rng)
    v = rng.uniform(0.0, float(amplitude) * _v_max(v_max), int(m))
    v[rng.random(int(m)) < sparsity] = 0.0
    return v


def input_derived_signal(V, amplitude: float | None = None, *, v_max: float = V_MAX) -> np.ndarray:
    """Conversion signal from a sample of real inputs: their mean over the batch (V).

    Parameters
    ----------
    V : array_like, shape (batch, m)
        Input vectors (V).
    amplitude : float, optional
        If given, rescale so that the largest entry is ``amplitude * v_max``.
    """
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    v = V.mean(axis=0)
    if amplitude is not None:
        top = v.max()
        if top <= 0:
            raise ValueError("V must contain a positive input to derive a conversion signal")
        v = v * (float(amplitude) * _v_max(v_max) / top)
    return v


@dataclass(frozen=True, eq=False)
class SignalChoice:
    """Result of :func:`optimize_conversion_signal`.

    Attributes
    ----------
    v_conv : ndarray, shape (m,)
        The best conversion signal (V).
    amplitude : float
        Its amplitude (fraction of ``v_max``).
    amplitudes, mean_relative_error : ndarray
        Every amplitude tried and the mean relative error (dimensionless, paper's
        definition, :mod:`xbarsolve.metrics`) it gave on the sample.
    conversion : Conversion
        The conversion with the best signal.
    """

    v_conv: np.ndarray
    amplitude: float
    amplitudes: np.ndarray
    mean_relative_error: np.ndarray
    conversion: Conversion


def optimize_conversion_signal(
    xbar: Crossbar,
    V_sample,
    *,
    amplitudes=(1.0, 0.1, 0.01, 0.001),
    pattern: Literal["constant", "input"] = "constant",
    v_max: float = V_MAX,
    g_min: float | None = None,
    g_max: float | None = None,
    on_clip: OnClip = "warn",
) -> SignalChoice:
    """Pick the conversion amplitude that minimises the error on a sample of real inputs.

    For each amplitude the array is converted, solved under ``V_sample`` (exactly, with
    :func:`xbarsolve.solve`) and compared with the ideal product ``V_sample @ G`` by the
    paper's mean relative error.  For linear devices and transistors without clipping
    all amplitudes give the same ``G'`` (the conversion is scale-invariant); the choice
    matters through device nonlinearity and clipping.

    Parameters
    ----------
    xbar : Crossbar
        The array with target conductances (S).
    V_sample : array_like, shape (batch, m)
        Representative inputs (V), batch >= 2.
    amplitudes : sequence of float
        Fractions of ``v_max`` to try.
    pattern : {"constant", "input"}
        Constant signal, or the sample's mean input rescaled to each amplitude.
    v_max : float
        Top of the input range (V).
    g_min, g_max : float, optional
        Conductance range (S) passed to :func:`convert`.
    on_clip : {"warn", "raise", "ignore"}
        As in :func:`convert`, applied to the chosen conversion only (the others are
        trials).
    """
    from . import metrics
    from .solve import as_batch, solve

    V = as_batch(xbar, V_sample, "V_sample")
    if V.shape[0] < 2:
        raise ValueError(f"V_sample needs at least 2 input vectors to define an output range; got {V.shape[0]}")
    if pattern not in ("constant", "input"):
        raise ValueError(f"pattern must be 'constant' or 'input'; got {pattern!r}")
    if on_clip not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_clip must be 'warn', 'raise' or 'ignore'; got {on_clip!r}")
    amps = np.asarray(amplitudes, dtype=np.float64)
    if amps.ndim != 1 or amps.size == 0:
        raise ValueError("amplitudes must be a non-empty sequence of fractions of v_max")
    ideal = xbar.ideal_currents(V)
    errors = np.empty(amps.size)
    convs = []
    for k, a in enumerate(amps):
        v = constant_signal(xbar.m, a, v_max=v_max) if pattern == "constant" else input_derived_signal(V, a, v_max=v_max)
        conv = convert(xbar, v, g_min=g_min, g_max=g_max, on_clip="ignore")
        actual = solve(conv.crossbar, V).currents
        errors[k] = metrics.summary(actual, ideal).mean_relative_error
        convs.append(conv)
    # ties (equal to round-off, as for linear arrays) go to the first amplitude listed
    best = int(np.argmax(errors <= errors.min() * (1 + 1e-9) + 1e-15))
    _on_clip(convs[best], on_clip)
    return SignalChoice(convs[best].v_conv, float(amps[best]), amps, errors, convs[best])
