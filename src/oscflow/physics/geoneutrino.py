"""Geoneutrinos: ν̄ₑ of the ²³⁸U and ²³²Th decay chains that can make an IBD (E_ν > 1.806 MeV).

A chain's spectrum, ν̄ per MeV per decay of its parent in secular equilibrium, is the sum of its
β⁻ branches whose endpoint lies above the IBD threshold (a branch below it yields no IBD):

- ²³⁸U chain: ²³⁴ᵐPa → ²³⁴U (ground state, 2.268 MeV, 97.6 %) and six ²¹⁴Bi → ²¹⁴Po branches
  (3.269 MeV to the ground state, 19.2 %; 1.891 MeV, 7.2 %; four more of < 1 % each).
- ²³²Th chain: ²¹²Bi → ²¹²Po (ground state, 2.252 MeV, 55.4 % of ²¹²Bi decays; ²¹²Bi is
  fed by every chain decay) and two ²²⁸Ac → ²²⁸Th branches (2.066 MeV, 7.4 %; 1.937 MeV, 0.6 %).
  ²⁰⁸Tl (from ²¹²Bi's α branch) is left out: its largest endpoint, 1.801 MeV to the 3198 keV
  level of ²⁰⁸Pb, is below the threshold. ²¹⁰Tl (²³⁸U chain, 0.02 % of ²¹⁴Bi decays) and ²³⁴Pa
  (0.16 % of ²³⁴ᵐPa decays; largest endpoint 1.25 MeV) are left out too: < 0.1 % of the yield.

Endpoints (MeV) and absolute intensities (per decay of the β emitter): ENSDF, as distributed in
Geant4's RadioactiveDecay data (files z91.a234, z83.a214, z89.a228, z83.a212); evaluations:
A = 234 E. Browne, J. K. Tuli, Nucl. Data Sheets 108, 681 (2007); A = 214 S.-C. Wu, Nucl. Data
Sheets 110, 681 (2009); A = 228 K. Abusaleem, Nucl. Data Sheets 116, 163 (2014); A = 212
E. Browne, Nucl. Data Sheets 104, 427 (2005).

Each branch has the allowed shape E_ν² pₑEₑ F₀(Z, Eₑ) (Eₑ = Q − E_ν + mₑ), F₀ the relativistic
Fermi function of a uniformly charged nucleus of radius R = 1.2 fm · A^⅓ (e.g. P. Huber, Phys.
Rev. C 84, 024617 (2011), Sec. II; X. Mougeot, Phys. Rev. C 91, 055504 (2015)). Forbidden shape
factors, finite-size, screening and radiative corrections are left out. The Fermi function
matters: without it the IBD yields fall by ~40 % (²³⁸U) and ~50 % (²³²Th).

Check (tests/test_backgrounds.py): per emitted ν̄ (6 per ²³⁸U chain, 4 per ²³²Th chain), a flux
of 10⁶ cm⁻² s⁻¹ gives 12.9 (U) and 4.00 (Th) TNU (IBD per 10³² protons per year) with the
Strumia–Vissani cross-section; G. Fiorentini, M. Lissia, F. Mantovani, Phys. Rep. 453, 117
(2007): 12.8 and 4.04. With the half-lives and atomic masses below, the chondritic mass ratio
Th/U = 3.9 gives S(Th)/S(U) = 0.266 (Fiorentini et al.: 0.27), i.e. a Th event fraction 0.21.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import quad
from scipy.special import gammaln, loggamma

from . import ibd
from .constants import (
    ALPHA_EM,
    AVOGADRO,
    DAYS_PER_YEAR,
    HBAR_C_MEV_FM,
    IBD_THRESHOLD,
    M_ELECTRON,
    SECONDS_PER_DAY,
)

NUCLEAR_RADIUS_FM = 1.2  # R = 1.2 fm · A^⅓, the common uniform-sphere approximation


@dataclass(frozen=True)
class BetaBranch:
    """One β⁻ branch: ``endpoint`` (MeV, Q minus the daughter level), ``intensity`` (per decay
    of the chain's parent in secular equilibrium), daughter charge ``z`` and mass number ``a``."""

    emitter: str
    endpoint: float
    intensity: float
    z: int
    a: int


# ENSDF (module docstring); keV values / 1000, intensities / 100.
CHAIN_BRANCHES: dict[str, tuple[BetaBranch, ...]] = {
    "U238": (
        BetaBranch("Pa234m", 2.26792, 0.97569, 92, 234),
        BetaBranch("Bi214", 3.269, 0.19191, 84, 214),
        BetaBranch("Bi214", 2.659683, 0.0054974, 84, 214),
        BetaBranch("Bi214", 2.25396, 0.00078963, 84, 214),
        BetaBranch("Bi214", 1.994236, 0.00059972, 84, 214),
        BetaBranch("Bi214", 1.89132, 0.072166, 84, 214),
        BetaBranch("Bi214", 1.853502, 0.0089958, 84, 214),
    ),
    "Th232": (
        BetaBranch("Ac228", 2.066227, 0.073628, 90, 228),
        BetaBranch("Ac228", 1.937162, 0.006311, 90, 228),
        BetaBranch("Bi212", 2.2515, 0.5537, 84, 212),
    ),
}
# ν̄ per chain decay, all energies (the flux normalisation of Fiorentini et al. 2007).
NEUTRINOS_PER_DECAY: dict[str, int] = {"U238": 6, "Th232": 4}
# Parent half-lives, years (ENSDF: ²³⁸U 4.468e9 y, ²³²Th 1.40e10 y); standard atomic weights and
# the ²³⁸U isotopic abundance 0.992742 (CIAAW / IUPAC 2013), ²³²Th 100 %.
HALF_LIFE_YEARS: dict[str, float] = {"U238": 4.468e9, "Th232": 1.40e10}
ATOMIC_WEIGHT: dict[str, float] = {"U238": 238.02891, "Th232": 232.0377}
ISOTOPIC_ABUNDANCE: dict[str, float] = {"U238": 0.992742, "Th232": 1.0}
CHONDRITIC_TH_U_MASS_RATIO = 3.9  # e.g. W. F. McDonough, S.-s. Sun, Chem. Geol. 120, 223 (1995)


def fermi_function(z: int, a: int, kinetic: ArrayLike) -> NDArray[np.float64]:
    """Relativistic Fermi function F₀(Z, W) for β⁻ (daughter charge ``z``, mass number ``a``)
    at electron kinetic energy ``kinetic`` (MeV):
    F₀ = 2(1 + γ)(2pR)^(2γ−2) e^(πη) |Γ(γ + iη)|² / Γ(2γ + 1)², γ = √(1 − (αZ)²), η = αZW/p,
    W, p in units of mₑ, R in units of ħ/(mₑc)."""
    t = np.maximum(np.asarray(kinetic, dtype=np.float64), 1e-9)
    w = 1.0 + t / M_ELECTRON
    p = np.sqrt(w * w - 1.0)
    gamma = np.sqrt(1.0 - (ALPHA_EM * z) ** 2)
    eta = ALPHA_EM * z * w / p
    radius = NUCLEAR_RADIUS_FM * a ** (1.0 / 3.0) * M_ELECTRON / HBAR_C_MEV_FM
    log_f = (
        np.log(2.0 * (1.0 + gamma))
        + (2.0 * gamma - 2.0) * np.log(2.0 * p * radius)
        + np.pi * eta
        + 2.0 * loggamma(gamma + 1j * eta).real
        - 2.0 * gammaln(2.0 * gamma + 1.0)
    )
    return np.asarray(np.exp(log_f), dtype=np.float64)


def _unnormalised(enu: NDArray[np.float64], branch: BetaBranch) -> NDArray[np.float64]:
    t = branch.endpoint - enu
    inside = (enu > 0.0) & (t > 0.0)
    ee = np.where(inside, t, 0.0) + M_ELECTRON
    pe = np.sqrt(np.maximum(ee**2 - M_ELECTRON**2, 0.0))
    shape = enu**2 * ee * pe * fermi_function(branch.z, branch.a, t)
    return np.where(inside, shape, 0.0)


@cache
def _norm(branch: BetaBranch) -> float:
    # Adaptive quadrature: the Fermi function makes the shape steep near the endpoint.
    total, _ = quad(lambda e: float(_unnormalised(np.asarray(e), branch)), 0.0, branch.endpoint,
                    limit=200, epsrel=1e-10)  # fmt: skip
    return float(total)


def branch_spectrum(energy: ArrayLike, branch: BetaBranch) -> NDArray[np.float64]:
    """ν̄ per MeV per chain decay of one branch at ``energy`` (MeV): integrates to
    ``branch.intensity`` (normalised by adaptive quadrature), zero above
    ``branch.endpoint``."""
    e = np.asarray(energy, dtype=np.float64)
    return branch.intensity * _unnormalised(e, branch) / _norm(branch)


def chain_spectrum(energy: ArrayLike, chain: str) -> NDArray[np.float64]:
    """ν̄ per MeV per decay of ``chain``'s parent (``U238`` or ``Th232``) from the branches that
    reach above the IBD threshold; below ~1.8 MeV it is incomplete by design."""
    if chain not in CHAIN_BRANCHES:
        msg = f"unknown decay chain {chain!r}; choose one of {sorted(CHAIN_BRANCHES)}"
        raise ValueError(msg)
    e = np.asarray(energy, dtype=np.float64)
    return sum((branch_spectrum(e, b) for b in CHAIN_BRANCHES[chain]), start=np.zeros_like(e))


def decays_per_gram_second(chain: str) -> float:
    """Chain decays per second per gram of the element (U or Th) in secular equilibrium."""
    seconds = HALF_LIFE_YEARS[chain] * DAYS_PER_YEAR * SECONDS_PER_DAY
    return float(
        np.log(2.0) / seconds * AVOGADRO / ATOMIC_WEIGHT[chain] * ISOTOPIC_ABUNDANCE[chain]
    )


def ibd_yield(chain: str, nodes: int = 20001) -> float:
    """IBD cross-section summed over one chain decay's ν̄, cm² (Strumia–Vissani σ)."""
    top = max(b.endpoint for b in CHAIN_BRANCHES[chain])
    e = np.linspace(IBD_THRESHOLD, top, nodes)
    return float(np.trapezoid(chain_spectrum(e, chain) * ibd.cross_section(e), e))


def ibd_density(
    enu: ArrayLike, th_u_mass_ratio: float = CHONDRITIC_TH_U_MASS_RATIO
) -> NDArray[np.float64]:
    """IBD rate density in E_ν (arbitrary units) of Earth matter with Th/U mass ratio
    ``th_u_mass_ratio``: Σ_chain mass × decays/(g s) × chain spectrum × σ_IBD."""
    if not th_u_mass_ratio >= 0.0:
        msg = f"th_u_mass_ratio {th_u_mass_ratio} must be >= 0 (chondritic: 3.9)"
        raise ValueError(msg)
    e = np.asarray(enu, dtype=np.float64)
    mass = {"U238": 1.0, "Th232": th_u_mass_ratio}
    rate = sum(
        (mass[c] * decays_per_gram_second(c) * chain_spectrum(e, c) for c in CHAIN_BRANCHES),
        start=np.zeros_like(e),
    )
    return rate * ibd.cross_section(e)
