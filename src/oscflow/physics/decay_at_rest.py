"""Neutrinos from muon decay at rest (μDAR): spectra, beam timing, and the IBD response.

Spectra (exact tree-level V−A, Michel parameter ρ = 3/4, electron mass and radiative
corrections neglected: the Michel spectra at ρ = 3/4, see the PDG review "Muon decay
parameters" (PTEP 2022, 083C01) and, for their use as a μDAR source, A. Aguilar et al. (LSND),
Phys. Rev. D 64, 112007 (2001), Sec. II): with x = 2E/m_μ ∈ [0, 1],

- μ⁺ → e⁺ ν_e ν̄_μ:   dN/dx(ν̄_μ) = 2x²(3 − 2x),   dN/dx(ν_e) = 12x²(1 − x);
- μ⁻ → e⁻ ν̄_e ν_μ:   dN/dx(ν̄_e) = 12x²(1 − x)   (the intrinsic-ν̄ₑ background's shape).

Each is normalised to one neutrino per decay: ∫₀¹ 2x²(3 − 2x) dx = 2(1 − 1/2) = 1 and
∫₀¹ 12x²(1 − x) dx = 12(1/3 − 1/4) = 1. Mean energies: ⟨x⟩ = 7/10 (ν̄_μ) and 3/5 (ν_e), i.e.
⟨E⟩ = 0.35 m_μ = 36.98 MeV and 0.30 m_μ = 31.70 MeV. The endpoint is E_max = m_μ/2 = 52.83 MeV
(neglecting the electron mass, whose effect on E_max is m_e²/(2m_μ) = 1.2 keV).

Units: energies in MeV, densities per MeV, times in μs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from ..errors import ConfigError
from . import ibd
from .baselines import BaselineDistribution
from .constants import DELTA_NP, IBD_THRESHOLD, M_ELECTRON
from .oscillation_models import OscillationModel
from .predictors import check_params
from .rates import Exposure

M_MUON = 105.6583755  # MeV, PDG 2022 (R.L. Workman et al., PTEP 2022, 083C01)
TAU_MUON_US = 2.1969811  # μs, μ⁺ lifetime, PDG 2022
E_MAX = M_MUON / 2.0  # MeV, endpoint of the μDAR spectra


def _x(energy: ArrayLike) -> NDArray[np.float64]:
    return 2.0 * np.asarray(energy, dtype=np.float64) / M_MUON


def numubar_spectrum(energy: ArrayLike) -> NDArray[np.float64]:
    """dN/dE of ν̄_μ from μ⁺ decay at rest, per decay per MeV (integrates to 1 on [0, E_MAX]):
    (2/m_μ)·2x²(3 − 2x), i.e. ∝ E²(3 − 4E/m_μ)."""
    x = _x(energy)
    inside = (x >= 0.0) & (x <= 1.0)
    return np.where(inside, (2.0 / M_MUON) * 2.0 * x**2 * (3.0 - 2.0 * x), 0.0)


def nue_spectrum(energy: ArrayLike) -> NDArray[np.float64]:
    """dN/dE of ν_e from μ⁺ (or of ν̄_e from μ⁻) decay at rest, per decay per MeV:
    (2/m_μ)·12x²(1 − x)."""
    x = _x(energy)
    inside = (x >= 0.0) & (x <= 1.0)
    return np.where(inside, (2.0 / M_MUON) * 12.0 * x**2 * (1.0 - x), 0.0)


def timing_efficiency(window_us: tuple[float, float], tau_us: float = TAU_MUON_US) -> float:
    """Fraction of μ⁺ decays inside a window [t₁, t₂] (μs) after a beam pulse, for muons born at
    t = 0 (π⁺ lifetime 26 ns and the 100 ns bunches neglected): e^(−t₁/τ) − e^(−t₂/τ)."""
    t1, t2 = window_us
    if not 0.0 <= t1 < t2:
        msg = f"timing window {window_us} must satisfy 0 <= t1 < t2 (μs)"
        raise ValueError(msg)
    return math.exp(-t1 / tau_us) - math.exp(-t2 / tau_us)


# ----------------------------------------------------------------------------- prompt response

# Gauss–Legendre nodes in cosθ of the positron for the IBD kinematics of the prompt response.
COS_NODES = 8


@dataclass(frozen=True)
class PromptResponse:
    """IBD prompt-energy response of a liquid-scintillator detector at μDAR energies.

    Prompt visible energy E_p = escale · (Eₑ(E_ν, cosθ) + mₑ): the positron's total energy at
    angle θ from exact two-body kinematics (``ibd.positron_energy``, Strumia–Vissani eq. 21:
    the neutron recoil, up to ~3 MeV at 50 MeV, is included) plus the second annihilation
    photon's mₑ; cosθ distributed as 1 + a vₑ cosθ (``ibd.sample_cos_theta``'s Vogel–Beacom
    zeroth order). Resolution Gaussian, σ/E = √(res_a²/E + res_b²) (E in MeV)."""

    res_a: float  # √MeV, stochastic term
    res_b: float  # constant term
    escale: float = 1.0

    def __post_init__(self) -> None:
        if not (self.res_a >= 0 and self.res_b >= 0 and self.res_a + self.res_b > 0):
            msg = f"resolution terms ({self.res_a}, {self.res_b}) must be >= 0, not both 0"
            raise ValueError(msg)
        if not self.escale > 0:
            msg = f"escale {self.escale} must be > 0"
            raise ValueError(msg)

    def sigma(self, e: ArrayLike) -> NDArray[np.float64]:
        """Absolute resolution (MeV) at visible energy ``e`` (MeV)."""
        x = np.maximum(np.asarray(e, dtype=np.float64), 1e-9)
        return np.asarray(np.sqrt(self.res_a**2 * x + (self.res_b * x) ** 2), dtype=np.float64)

    def matrix(self, enu: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.float64]:
        """R[j, k]: probability that an IBD at E_ν = ``enu[j]`` gives a prompt energy in bin k
        of ``edges`` (MeV)."""
        xc, wc = np.polynomial.legendre.leggauss(COS_NODES)
        ee_zero = np.maximum(enu - DELTA_NP, M_ELECTRON)
        v = np.sqrt(np.maximum(1.0 - (M_ELECTRON / ee_zero) ** 2, 0.0))
        out = np.zeros((enu.size, edges.size - 1))
        for c, w in zip(xc, wc, strict=True):
            weight = 0.5 * w * (1.0 + ibd.ANGULAR_ASYMMETRY * v * c)  # (1 + a v c)/2, sums to 1
            ep = self.escale * (ibd.positron_energy(enu, np.full_like(enu, c)) + M_ELECTRON)
            z = (edges[None, :] - ep[:, None]) / self.sigma(ep)[:, None]
            cdf = special.ndtr(z)
            out += weight[:, None] * np.diff(cdf, axis=1)
        return out


# ----------------------------------------------------------------------------- predictor


@dataclass(frozen=True)
class DecayAtRestSource:
    """A μ⁺ decay-at-rest ν̄_μ source seen by one detector.

    ``pot_per_second``: protons on target per second at the beam power; ``numubar_per_pot``:
    ν̄_μ (= μ⁺ decays at rest) per proton; ``baselines``: the flux-weighted distribution of
    source–detector distances (``physics.baselines``), whose ``flux_factor`` is ⟨1/(4πL²)⟩ in
    cm⁻²; ``efficiency``: the product of the selection efficiencies applied to the signal."""

    pot_per_second: float
    numubar_per_pot: float
    baselines: BaselineDistribution
    efficiency: float = 1.0

    def __post_init__(self) -> None:
        for name in ("pot_per_second", "numubar_per_pot"):
            if not getattr(self, name) > 0:
                msg = f"{name} = {getattr(self, name)} must be > 0"
                raise ValueError(msg)
        if not 0 < self.efficiency <= 1:
            msg = f"efficiency {self.efficiency} must be in (0, 1]"
            raise ValueError(msg)

    def unoscillated_rate(self, energy: ArrayLike) -> NDArray[np.float64]:
        """IBD rate density per target proton per second per MeV if every ν̄_μ were a ν̄ₑ:
        POT/s · ν̄_μ/POT · ⟨1/4πL²⟩ · dN/dE · σ_IBD(E) · ε."""
        e = np.asarray(energy, dtype=np.float64)
        scale = (
            self.pot_per_second
            * self.numubar_per_pot
            * self.baselines.flux_factor
            * self.efficiency
        )
        return np.asarray(scale * numubar_spectrum(e) * ibd.cross_section(e), dtype=np.float64)


def appearance_probability(
    model: OscillationModel,
    energy: NDArray[np.float64],
    baselines: BaselineDistribution,
    params: Mapping[str, NDArray[np.float64]],
) -> NDArray[np.float64]:
    """⟨P⟩ over ``baselines`` at ``energy`` (B, N): the model's closed form (``averaged``) where
    it has one, else the flux-weighted sum over the binned baselines."""
    averaged = getattr(model, "averaged", None)
    if averaged is not None:
        return np.asarray(averaged(energy, baselines, params), dtype=np.float64)
    probability = model.propagator(energy, params, None)
    return np.asarray(
        sum(
            w * probability(b * 1e-3)
            for b, w in zip(baselines.baselines, baselines.weights, strict=True)
        ),
        dtype=np.float64,
    )


class DecayAtRestPredictor:
    """Exact binned IBD spectrum of oscillated μDAR ν̄_μ → ν̄ₑ (group ``signal``).

    E_ν is integrated by Gauss–Legendre quadrature (``nodes`` per piece) on ``pieces`` equal
    pieces from the IBD threshold to E_MAX = m_μ/2, cut at the output edges for E_ν binning;
    the prompt response (``PromptResponse``) is a matrix R[j, k] from the quadrature nodes to
    the output bins, so a spectrum is (⟨P⟩(E_j) · r_j · w_j) @ R: no Monte Carlo. Counts are
    events for an ``Exposure`` (target protons × live seconds × efficiency). ``escale`` is an
    optional detector parameter (the matrix is rebuilt per value)."""

    groups: tuple[str, ...] = ("signal",)
    detector_parameters: tuple[str, ...] = ("escale",)

    def __init__(
        self,
        source: DecayAtRestSource,
        response: PromptResponse,
        model: OscillationModel,
        edges: ArrayLike,
        energy: str = "prompt",
        pieces: int = 512,
        nodes: int = 3,
    ) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 1 or self.edges.size < 2 or np.any(np.diff(self.edges) <= 0):
            msg = "bin edges must be a strictly increasing 1-D array with at least 2 entries"
            raise ValueError(msg)
        if energy not in ("prompt", "neutrino"):
            msg = f"energy variable {energy!r} is not one of ('prompt', 'neutrino')"
            raise ValueError(msg)
        self.energy = energy
        self.source = source
        self.response = response
        self.model = model
        grid = np.linspace(IBD_THRESHOLD, E_MAX, pieces + 1)
        if energy == "neutrino":
            inner = self.edges[(self.edges > IBD_THRESHOLD) & (self.edges < E_MAX)]
            grid = np.unique(np.concatenate([grid, inner]))
        xg, wg = np.polynomial.legendre.leggauss(nodes)
        width = np.diff(grid)
        self._nodes = (grid[:-1, None] + 0.5 * width[:, None] * (xg + 1.0)).reshape(-1)
        self._weights = (0.5 * width[:, None] * wg).reshape(-1)
        self._rate = source.unoscillated_rate(self._nodes) * self._weights
        self._matrices: dict[float, NDArray[np.float64]] = {}

    @property
    def parameters(self) -> tuple[str, ...]:
        return self.model.parameters + self.detector_parameters

    def matrix(self, escale: float | None = None) -> NDArray[np.float64]:
        """Response from the E_ν quadrature nodes to the output bins at ``escale``."""
        key = float(self.response.escale if escale is None else escale)
        if key not in self._matrices:
            if self.energy == "neutrino":
                k = self.edges.size - 1
                idx = np.searchsorted(self.edges, self._nodes, side="right") - 1
                inside = (idx >= 0) & (idx < k)
                mat = np.zeros((self._nodes.size, k))
                mat[np.flatnonzero(inside), idx[inside]] = 1.0
            else:
                mat = dataclasses.replace(self.response, escale=key).matrix(self._nodes, self.edges)
            if len(self._matrices) > 8:
                self._matrices.clear()
            self._matrices[key] = mat
        return self._matrices[key]

    def predict(
        self, params: Mapping[str, ArrayLike], exposure: Exposure
    ) -> dict[str, NDArray[np.float64]]:
        """Expected signal counts (B, K) for a batch of parameter points."""
        batch, size = check_params(params, self.model, self.detector_parameters)
        osc = {k: batch[k] for k in self.model.parameters}
        try:
            self.model.check(osc)
        except ValueError as exc:
            raise ConfigError("params", str(exc), "give values in the model's domain") from None
        prob = appearance_probability(self.model, self._nodes, self.source.baselines, osc)
        weighted = prob * self._rate[None, :]
        out = np.empty((size, self.edges.size - 1))
        scales = batch.get("escale")
        if scales is None or self.energy == "neutrino":
            out[:] = weighted @ self.matrix()
        else:
            for value in np.unique(scales):
                rows = np.flatnonzero(scales == value)
                out[rows] = weighted[rows] @ self.matrix(float(value))
        return {"signal": out * exposure.proton_seconds}
