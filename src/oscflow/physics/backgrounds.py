"""Background categories: post-selection rates and prompt-energy spectral shapes.

A category is a rate (events/day after selection, normalised over a prompt-energy window,
by default JUNO's 0.8–12 MeV), a relative rate uncertainty, and a shape: a named density in
reconstructed prompt energy (MeV). Shapes are plug-ins in ``SHAPES``; the experiment config
chooses one per category with its parameters.

Default JUNO rates and uncertainties (experiments/juno config) are from JUNO, Chin. Phys. C 46,
123001 (2022), Table 2, and Chin. Phys. C 49, 033104 (2025), Table 3; the uncertainties are the
ones seed 003 (Ventura & Panibra) lists in its Table 3. Shapes are physically-motivated analytic
forms, each documented below; they are not digitised published curves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import decay_at_rest, ibd, reactor
from . import geoneutrino as geo
from .constants import M_ELECTRON

ShapeFn = Callable[..., NDArray[np.float64]]
SHAPES: dict[str, ShapeFn] = {}


def shape(name: str) -> Callable[[ShapeFn], ShapeFn]:
    """Register a prompt-energy density under ``name`` (unnormalised; normalised on use)."""

    def register(fn: ShapeFn) -> ShapeFn:
        SHAPES[name] = fn
        return fn

    return register


def _allowed_beta_neutrino(enu: NDArray[np.float64], q: float) -> NDArray[np.float64]:
    """Allowed β⁻ spectrum expressed in antineutrino energy (no Fermi function), endpoint q MeV.

    dN/dE_ν ∝ E_ν² · Eₑ pₑ with Eₑ = q − E_ν + mₑ (total electron energy).
    """
    ee = q - enu + M_ELECTRON
    pe = np.sqrt(np.clip(ee**2 - M_ELECTRON**2, 0.0, None))
    return np.where((enu > 0) & (enu < q), enu**2 * ee * pe, 0.0)


def _allowed_beta_electron(t: NDArray[np.float64], q: float) -> NDArray[np.float64]:
    """Allowed β spectrum in electron kinetic energy t (no Fermi function): pₑ Eₑ (q − t)²."""
    ee = t + M_ELECTRON
    pe = np.sqrt(np.clip(ee**2 - M_ELECTRON**2, 0.0, None))
    return np.where((t > 0) & (t < q), pe * ee * (q - t) ** 2, 0.0)


@shape("geoneutrino")
def geoneutrino(
    e: NDArray[np.float64],
    u_endpoint: float = 3.272,
    th_endpoint: float = 2.254,
    th_fraction: float = 0.21,
) -> NDArray[np.float64]:
    """IBD of ²³⁸U-chain (²¹⁴Bi, Q = 3.272 MeV) and ²³²Th-chain (²¹²Bi, Q = 2.254 MeV) ν̄:
    the simplified shape (one allowed branch per chain, no Fermi function), kept so that the
    old model stays reachable; ``geoneutrino_chains`` is the complete one.

    Th/(U+Th) event fraction 0.21 for the chondritic Th/U mass ratio 3.9 (e.g. KamLAND, Nature
    Geosci. 4, 647 (2011)). Prompt energy at zeroth order E = E_ν − 0.782 MeV.
    """
    enu = e + ibd.PROMPT_OFFSET
    sig = ibd.cross_section(enu)
    u = _allowed_beta_neutrino(enu, u_endpoint) * sig
    th = _allowed_beta_neutrino(enu, th_endpoint) * sig
    norm_u = max(np.trapezoid(u, e), 1e-300) if u.any() else 1.0
    norm_th = max(np.trapezoid(th, e), 1e-300) if th.any() else 1.0
    return (1.0 - th_fraction) * u / norm_u + th_fraction * th / norm_th


@shape("geoneutrino_chains")
def geoneutrino_chains(
    e: NDArray[np.float64], th_u_mass_ratio: float = geo.CHONDRITIC_TH_U_MASS_RATIO
) -> NDArray[np.float64]:
    """IBD of the ²³⁸U and ²³²Th chains with every β branch above the IBD threshold (²³⁴ᵐPa,
    ²¹⁴Bi; ²²⁸Ac, ²¹²Bi; ENSDF intensities and endpoints, allowed shapes with the Fermi
    function: physics/geoneutrino.py), U and Th weighted by ``th_u_mass_ratio`` (chondritic 3.9,
    a Th event fraction of 0.21). Prompt energy at zeroth order E = E_ν − 0.782 MeV."""
    return geo.ibd_density(e + ibd.PROMPT_OFFSET, th_u_mass_ratio)


@shape("reactor_averaged")
def reactor_averaged(
    e: NDArray[np.float64],
    sin2_th12: float = 0.307,
    sin2_th13: float = 0.0220,
) -> NDArray[np.float64]:
    """Distant reactors: Huber–Mueller flux × σ_IBD × oscillation-averaged P_ee (L → ∞).

    ⟨P_ee⟩ = 1 − ½ sin²2θ₁₂ cos⁴θ₁₃ − ½ sin²2θ₁₃ is energy independent, so only the shape
    of flux × cross-section remains; PDG 2022 angles by default.
    """
    enu = e + ibd.PROMPT_OFFSET
    avg_p = (
        1.0
        - 2.0 * sin2_th12 * (1 - sin2_th12) * (1 - sin2_th13) ** 2
        - 2.0 * sin2_th13 * (1 - sin2_th13)
    )
    flux = reactor.mixture_spectrum(enu, reactor.DEFAULT_FISSION_FRACTIONS)
    return avg_p * flux * ibd.cross_section(enu)


@shape("exponential")
def exponential(
    e: NDArray[np.float64], slope: float = 0.6, start: float = 0.7
) -> NDArray[np.float64]:
    """exp(−(E − start)/slope) above ``start``: falling radioactivity spectra (accidentals)."""
    return np.where(e >= start, np.exp(-(e - start) / slope), 0.0)


@shape("beta_electron")
def beta_electron(e: NDArray[np.float64], endpoint: float = 11.17) -> NDArray[np.float64]:
    """Allowed β spectrum in kinetic energy: ⁹Li β-n decays (Q = 13.6 MeV to the 2.43 MeV ⁹Be
    level, endpoint 11.17 MeV; TUNL evaluation), the dominant cosmogenic correlated background.
    """
    return _allowed_beta_electron(e, endpoint)


@shape("flat")
def flat(e: NDArray[np.float64], low: float = 0.7, high: float = 16.8) -> NDArray[np.float64]:
    """Flat in prompt energy between ``low`` and ``high``: fast-neutron proton recoils and
    atmospheric-ν NC, as Daya Bay (Phys. Rev. D 95, 072006 (2017)) and JUNO model them.
    """
    return np.where((e >= low) & (e <= high), 1.0, 0.0)


@shape("gaussian_lines")
def gaussian_lines(
    e: NDArray[np.float64],
    means: tuple[float, ...] = (1.6, 4.8, 6.1),
    widths: tuple[float, ...] = (0.5, 0.3, 0.2),
    weights: tuple[float, ...] = (0.6, 0.25, 0.15),
) -> NDArray[np.float64]:
    """Sum of Gaussians. Default: ¹³C(α,n)¹⁶O, with the quenched proton-recoil bump, the
    n + ¹²C*(4.44 MeV) γ plus recoil, and ¹⁶O*(6.05/6.13 MeV) de-excitation (components as in
    Daya Bay, Phys. Rev. D 95, 072006 (2017); weights illustrative).
    """
    out = np.zeros_like(e, dtype=np.float64)
    for m, s, w in zip(means, widths, weights, strict=True):
        out += w * np.exp(-0.5 * ((e - m) / s) ** 2) / s
    return out


@shape("dar_intrinsic_nuebar")
def dar_intrinsic_nuebar(e: NDArray[np.float64]) -> NDArray[np.float64]:
    """Intrinsic beam ν̄ₑ at a μDAR source (μ⁻ decaying at rest before capture): the ν̄ₑ
    Michel spectrum 12x²(1 − x) (``decay_at_rest.nue_spectrum``) times σ_IBD, in prompt energy
    E_ν − 0.782 MeV (zeroth-order IBD kinematics; ``smear: true`` adds the resolution)."""
    enu = np.asarray(e, dtype=np.float64) + ibd.PROMPT_OFFSET
    return decay_at_rest.nue_spectrum(enu) * ibd.cross_section(enu)


# ¹²C(ν_e, e⁻)¹²N_g.s.: Q = M(¹²N) − M(¹²C) = 17.338 MeV (atomic mass excess of ¹²N,
# AME2020: M. Wang et al., Chin. Phys. C 45, 030003 (2021)).
CNGS_Q = 17.338  # MeV


@shape("dar_cngs")
def dar_cngs(e: NDArray[np.float64]) -> NDArray[np.float64]:
    """¹²C(ν_e, e⁻)¹²N_g.s. from μDAR ν_e: the electron's kinetic energy T = E_ν − Q
    (recoil neglected), ν_e Michel spectrum 12x²(1 − x) times an allowed (Gamow–Teller)
    cross-section ∝ pₑEₑ (Fermi function neglected)."""
    t = np.asarray(e, dtype=np.float64)
    enu = t + CNGS_Q
    ee = t + M_ELECTRON
    pe = np.sqrt(np.clip(ee**2 - M_ELECTRON**2, 0.0, None))
    return np.where(t > 0, decay_at_rest.nue_spectrum(enu) * pe * ee, 0.0)


def _smear(
    e: NDArray[np.float64],
    dens: NDArray[np.float64],
    resolution: Callable[[NDArray[np.float64]], NDArray[np.float64]],
) -> NDArray[np.float64]:
    """Fold a density on the uniform grid ``e`` with a Gaussian of width resolution(E_true)."""
    sigma = np.maximum(resolution(e), 1e-6)
    step = e[1] - e[0]
    out = np.zeros_like(dens)
    for lo in range(0, e.size, 512):
        sl = slice(lo, lo + 512)
        kernel = np.exp(-0.5 * ((e[:, None] - e[None, sl]) / sigma[None, sl]) ** 2)
        kernel /= np.sqrt(2 * np.pi) * sigma[None, sl]
        out += kernel @ (dens[sl] * step)
    return out


@dataclass(frozen=True)
class BackgroundCategory:
    """One background: ``rate_per_day`` after selection within ``norm_window`` (prompt MeV)."""

    name: str
    rate_per_day: float
    rate_uncertainty: float
    shape: str
    shape_params: Mapping[str, Any] = field(default_factory=dict)
    norm_window: tuple[float, float] = (0.8, 12.0)
    # Absolute energy resolution σ(E) (MeV) to fold into a shape given in deposited energy
    # (geoneutrinos, distant reactors); None for shapes that are already reconstructed-level.
    resolution: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            msg = (
                f"background {self.name}: unknown shape {self.shape!r}; "
                f"choose one of {sorted(SHAPES)}"
            )
            raise ValueError(msg)
        if not self.rate_per_day >= 0:
            msg = f"background {self.name}: rate_per_day {self.rate_per_day} must be >= 0"
            raise ValueError(msg)
        if not self.rate_uncertainty >= 0:
            msg = f"background {self.name}: rate_uncertainty must be >= 0"
            raise ValueError(msg)
        lo, hi = self.norm_window
        if not lo < hi:
            msg = f"background {self.name}: norm_window {self.norm_window} must have low < high"
            raise ValueError(msg)

    def density(self, e: NDArray[np.float64]) -> NDArray[np.float64]:
        return SHAPES[self.shape](np.asarray(e, dtype=np.float64), **dict(self.shape_params))

    def expected(
        self, edges: NDArray[np.float64], days: float, nodes_per_mev: int = 200
    ) -> NDArray[np.float64]:
        """Expected counts per bin of prompt energy ``edges`` (MeV) in ``days`` of live time."""
        lo, hi = self.norm_window
        grid_lo = min(lo, float(edges[0]))
        grid_hi = max(hi, float(edges[-1]))
        n = max(int((grid_hi - grid_lo) * nodes_per_mev), 200)
        fine = np.linspace(grid_lo, grid_hi, n + 1)
        dens = self.density(fine)
        if self.resolution is not None:
            dens = _smear(fine, dens, self.resolution)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(fine))])
        norm = np.interp(hi, fine, cdf) - np.interp(lo, fine, cdf)
        if norm <= 0:
            return np.zeros(len(edges) - 1)
        per_bin = np.diff(np.interp(edges, fine, cdf)) / norm
        counts: NDArray[np.float64] = self.rate_per_day * days * per_bin
        return counts
