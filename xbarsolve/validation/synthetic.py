"""Synthetic measurement files: a hidden "chip" simulated by ngspice, not by our solver.

No licensed measured crossbar data are within reach, so :func:`generate` makes realistic
stand-ins.  A :class:`SyntheticChip` holds the hidden truth: wire, driver, sense and
access-transistor resistances, the programming error (device-to-device conductance
variation), the read-back error of the conductance map, and the read-out chain (a TIA with
Gaussian input-referred noise followed by an ADC with a full scale and a bit depth, which
quantizes and clips).  The column currents of the hidden circuit come from **ngspice**, so
fitting our model to them is a real test of the model, not a circular one.

How ngspice is used.  The circuit is linear, so its column currents are ``V @ T`` with the
transfer matrix ``T`` of the hidden circuit.  ngspice computes ``T`` column by column by
reciprocity: the transposed circuit (columns driven through ``r_out`` at their sense ends,
rows grounded through ``r_in``) with 1 V on column ``j`` gives ``T[:, j]`` as the
currents into the grounded row sources; that is ``min(m, n)`` operating points instead of
one per measured vector (ngspice-39's Sparse 1.3 solver needs ~20 s per operating point of a
128 x 64 1T1M array here).  A few measured vectors are then solved directly by ngspice as a
check of the superposition (agreement to ``1e-9`` relative is required).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..reference import G_MAX, G_MIN, V_MAX, V_READ
from .schema import Measurement

__all__ = ["SyntheticChip", "generate", "ngspice_transfer_matrix"]


@dataclass(frozen=True)
class SyntheticChip:
    """The hidden truth of a synthetic array and its read-out chain.

    Parameters
    ----------
    r_row, r_col : float
        True row and column wire segment resistances (ohm).
    r_in, r_out : float
        True driver and sense resistances (ohm).
    r_on : float
        True access-transistor on-resistance (ohm), linear in series with each memristor.
    v_gate : float
        Gate voltage (V) recorded in the file (the linear transistor model does not use it).
    g_min, g_max : float
        Programmable conductance range (S).
    programming_sigma : float
        Standard deviation (S) of the Gaussian programming error added to every target
        conductance (device-to-device variation); the result is clipped to the range.
    readback_sigma : float
        Relative standard deviation (dimensionless) of the read-back conductance map.
    tia_noise_rms : float
        RMS input-referred TIA noise of one column-current reading (A).
    adc_bits : int
        ADC resolution (bits), >= 1.
    adc_full_scale : float
        ADC full scale (A): readings are clipped to ``[0, adc_full_scale]`` and quantized to
        ``adc_full_scale / 2**adc_bits``.
    """

    r_row: float = 1.15
    r_col: float = 0.92
    r_in: float = 6.5
    r_out: float = 4.8
    r_on: float = 1350.0
    v_gate: float = 3.3
    g_min: float = G_MIN
    g_max: float = G_MAX
    programming_sigma: float = 0.5e-6
    readback_sigma: float = 1e-3
    tia_noise_rms: float = 0.2e-6
    adc_bits: int = 12
    adc_full_scale: float = 2e-3

    def __post_init__(self) -> None:
        for name in ("r_row", "r_col", "r_in", "r_out", "r_on", "adc_full_scale"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be finite and > 0; got {v!r}")
        for name in ("programming_sigma", "readback_sigma", "tia_noise_rms"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0; got {v!r}")
        if not 0 <= self.g_min < self.g_max:
            raise ValueError(f"need 0 <= g_min < g_max (S); got {self.g_min!r}, {self.g_max!r}")
        if int(self.adc_bits) < 1:
            raise ValueError(f"adc_bits must be >= 1; got {self.adc_bits!r}")

    # ------------------------------------------------------------ the chip
    @property
    def adc_lsb(self) -> float:
        """ADC step (A)."""
        return self.adc_full_scale / 2 ** int(self.adc_bits)

    @property
    def noise_rms(self) -> float:
        """RMS error of one reading (A): TIA noise and uniform quantization, ``sqrt(s^2 + lsb^2/12)``."""
        return float(np.hypot(self.tia_noise_rms, self.adc_lsb / np.sqrt(12.0)))

    def program(self, G_target, rng: np.random.Generator) -> np.ndarray:
        """Conductances (S) the chip holds after programming ``G_target``: Gaussian error, clipped."""
        G = np.asarray(G_target, dtype=np.float64)
        return np.clip(G + rng.normal(0.0, self.programming_sigma, G.shape), self.g_min, self.g_max)

    def crossbar(self, G_actual):
        """The hidden true circuit holding conductances ``G_actual`` (S)."""
        from ..crossbar import Crossbar
        from ..transistors import Resistor

        return Crossbar(G_actual, r_row=self.r_row, r_col=self.r_col, r_in=self.r_in, r_out=self.r_out,
                        transistor=Resistor(self.r_on))

    def read(self, currents, rng: np.random.Generator) -> np.ndarray:
        """What the read-out chain reports for true column currents (A): TIA noise, ADC."""
        I = np.asarray(currents, dtype=np.float64)
        noisy = I + rng.normal(0.0, self.tia_noise_rms, I.shape)
        lsb = self.adc_lsb
        return np.clip(np.round(noisy / lsb), 0, 2 ** int(self.adc_bits) - 1) * lsb

    def measure(self, G_actual, V, rng: np.random.Generator, *, simulator: Literal["ngspice", "xbarsolve"] = "ngspice") -> np.ndarray:
        """Measured column currents (A) of the chip holding ``G_actual`` for inputs ``V`` (V).

        ``simulator="ngspice"`` solves the hidden circuit with ngspice (as the files are
        made); ``"xbarsolve"`` with our exact solver (as the closed loop of the report does,
        see :mod:`.report`).
        """
        xbar = self.crossbar(G_actual)
        if simulator == "ngspice":
            T = ngspice_transfer_matrix(xbar)
            I = np.atleast_2d(V) @ T
        elif simulator == "xbarsolve":
            from ..solve import solve

            I = solve(xbar, V).currents
        else:
            raise ValueError(f"simulator must be 'ngspice' or 'xbarsolve'; got {simulator!r}")
        return self.read(I, rng)

    def to_dict(self) -> dict:
        """Fields by name (for the ``/synthetic`` group of a file)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_measurement(cls, measured: Measurement) -> "SyntheticChip":
        """Rebuild the hidden chip of a synthetic file (its ``/synthetic/chip`` entries).

        Raises
        ------
        ValueError
            If the measurement is not synthetic (a real chip has no hidden truth).
        """
        syn = measured.synthetic
        if not syn or not any(k.startswith("chip/") for k in syn):
            raise ValueError("this measurement has no /synthetic/chip group: it is not a synthetic file")
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {}
        for key, value in syn.items():
            name = key.split("/", 1)[1] if key.startswith("chip/") else None
            if name in names:
                kw[name] = int(value) if name == "adc_bits" else float(value)
        return cls(**kw)


def ngspice_transfer_matrix(xbar, *, check: np.ndarray | None = None) -> np.ndarray:
    """Transfer matrix ``T`` (S), shape (m, n), of a linear crossbar computed by ngspice.

    Uses reciprocity: ngspice solves the transposed circuit (see
    :func:`xbarsolve.validation.sensitivity._transposed`) for the ``n`` unit vectors, whose
    currents into the grounded row sources are the columns of ``T``.

    Parameters
    ----------
    xbar : Crossbar
        A linear crossbar.
    check : ndarray, shape (c, m), optional
        Input vectors (V) also solved directly by ngspice; their currents must equal
        ``check @ T`` to 1e-9 relative (checks the superposition and the transposition).

    Raises
    ------
    RuntimeError
        If the direct check disagrees.
    """
    from .. import spice
    from .sensitivity import _transposed

    if not xbar.is_linear:
        raise TypeError("ngspice_transfer_matrix needs a linear crossbar")
    Tt = spice.solve(_transposed(xbar), np.eye(xbar.n)).currents  # (n, m) = T^T
    T = np.ascontiguousarray(Tt.T)
    if check is not None:
        direct = spice.solve(xbar, check).currents
        via_T = np.atleast_2d(check) @ T
        err = float(np.max(np.abs(direct - via_T)) / np.max(np.abs(direct)))
        if not err < 1e-9:
            raise RuntimeError(f"ngspice superposition check failed: direct vs transfer-matrix currents differ by {err:.3g} relative")
    return T


def generate(
    m: int = 64,
    n: int = 64,
    k: int = 200,
    *,
    chip: SyntheticChip | None = None,
    seed: int = 0,
    input_max: float = V_MAX,
    input_sparsity: float = 0.25,
    nominal: dict | None = None,
    read_voltage: float = V_READ,
    n_check: int = 1,
) -> Measurement:
    """Generate a synthetic measurement file's contents with ngspice.

    Parameters
    ----------
    m, n : int
        Array size (64 x 64 and 128 x 64 are the intended ones).
    k : int
        Number of measured input vectors.
    chip : SyntheticChip, optional
        The hidden truth; default :class:`SyntheticChip` ().
    seed : int
        Seed of every random draw (targets, programming error, inputs, noise).
    input_max : float
        Inputs are uniform in ``[0, input_max]`` volts ...
    input_sparsity : float
        ... with this fraction of them set to 0 V (dimensionless, in [0, 1)).
    nominal : dict, optional
        Nominal resistances (ohm) written as the file's starting values; default the
        design values r_row = r_col = 1 ohm, r_in = r_out = 5 ohm, r_on = 1 kohm.
    read_voltage : float
        Read voltage (V) of the conductance map.
    n_check : int
        Vectors also solved directly by ngspice to check the superposition.

    Returns
    -------
    Measurement
        With the hidden truth in ``synthetic`` (true conductances, targets, the chip).
    """
    chip = chip or SyntheticChip()
    rng = np.random.default_rng(seed)
    G_target = rng.uniform(chip.g_min, chip.g_max, (m, n))
    G_true = chip.program(G_target, rng)
    V = rng.uniform(0.0, input_max, (k, m)) * (rng.random((k, m)) >= input_sparsity)
    xbar = chip.crossbar(G_true)
    T = ngspice_transfer_matrix(xbar, check=V[:n_check] if n_check else None)
    I_meas = chip.read(V @ T, rng)
    G_readback = G_true * (1.0 + rng.normal(0.0, chip.readback_sigma, G_true.shape))
    nom = {"r_row": 1.0, "r_col": 1.0, "r_in": 5.0, "r_out": 5.0, "r_on": 1e3}
    nom.update(nominal or {})
    syn = {f"chip/{key}": value for key, value in chip.to_dict().items()}
    syn.update({"generator": "xbarsolve.validation.synthetic.generate (ngspice transfer matrix)", "seed": int(seed),
                "conductance": G_true, "target_conductance": G_target})
    return Measurement(
        conductance=G_readback, inputs=V, currents=I_meas, read_voltage=read_voltage,
        v_gate=chip.v_gate, temperature=300.0, noise_rms=chip.noise_rms,
        conductance_uncertainty=chip.readback_sigma, drive="left", sense="bottom",
        title=f"SYNTHETIC {m}x{n} 1T1M array (ngspice), seed {seed}",
        description=("Synthetic stand-in for a measured array, NOT chip data: hidden parasitics and transistor "
                     "on-resistance, programming error, read-back error, TIA noise and ADC quantization; column "
                     "currents of the hidden circuit computed by ngspice."),
        source="xbarsolve.validation.synthetic.generate", licence="CC0-1.0", synthetic=syn, **nom,
    )
