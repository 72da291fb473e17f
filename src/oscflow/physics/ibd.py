"""Inverse beta decay ν̄ₑ + p → e⁺ + n: cross-section, kinematics, target protons.

Sources:
- Total cross-section: A. Strumia, F. Vissani, Phys. Lett. B 564, 42 (2003), eq. 25 (their
  approximation, good to a few per mille below 300 MeV):
  σ ≈ 1e-43 cm² · pₑ Eₑ · E_ν^(−0.07056 + 0.02018 ln E_ν − 0.001953 ln³ E_ν),
  Eₑ = E_ν − Δ, Δ = m_n − m_p, all energies in MeV.
- Positron energy at angle θ: Strumia–Vissani 2003, eq. 21 (exact two-body kinematics).
- Angular distribution dσ/dcosθ ∝ 1 + a v cosθ with a = (f² − g²)/(f² + 3g²), f = 1,
  g = 1.27 (P. Vogel, J. F. Beacom, Phys. Rev. D 60, 053003 (1999), eq. 14, zeroth order).
- Free protons: JUNO 20 kt target, 1.44e33 (seed 003, citing Abrahão et al., JHEP 11 (2015) 001).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .constants import DELTA_NP, IBD_THRESHOLD, M_ELECTRON, M_NEUTRON, M_PROTON

JUNO_FREE_PROTONS = 1.44e33  # seed 003 / Abrahão et al. 2015, 20 kt LS
G_AXIAL = 1.27  # Vogel–Beacom 1999
ANGULAR_ASYMMETRY = (1.0 - G_AXIAL**2) / (1.0 + 3.0 * G_AXIAL**2)  # ≈ −0.10
PROMPT_OFFSET = DELTA_NP - M_ELECTRON  # MeV: E_prompt ≈ E_ν − 0.782 at zeroth order
HYDROGEN_MASS = 1.00794  # g/mol, IUPAC standard atomic weight
CARBON_MASS = 12.0107  # g/mol


def cross_section(energy: ArrayLike) -> NDArray[np.float64]:
    """Total IBD cross-section in cm² at neutrino energy ``energy`` (MeV); 0 below threshold."""
    e = np.asarray(energy, dtype=np.float64)
    above = e > IBD_THRESHOLD
    safe = np.where(above, e, 2.0)
    ee = safe - DELTA_NP
    pe = np.sqrt(np.maximum(ee**2 - M_ELECTRON**2, 0.0))
    log_e = np.log(safe)
    exponent = -0.07056 + 0.02018 * log_e - 0.001953 * log_e**3
    return np.where(above, 1.0e-43 * pe * ee * safe**exponent, 0.0)


def positron_energy(energy: ArrayLike, cos_theta: ArrayLike) -> NDArray[np.float64]:
    """Total positron energy (MeV) for neutrino energy ``energy`` and emission angle cosθ.

    Strumia–Vissani eq. 21: Eₑ = [(E_ν − δ)(1 + ε) + ε cosθ √((E_ν − δ)² − κ mₑ²)] / κ,
    ε = E_ν/m_p, κ = (1 + ε)² − (ε cosθ)², δ = (m_n² − m_p² − mₑ²)/(2 m_p).
    """
    e = np.asarray(energy, dtype=np.float64)
    c = np.asarray(cos_theta, dtype=np.float64)
    delta = (M_NEUTRON**2 - M_PROTON**2 - M_ELECTRON**2) / (2.0 * M_PROTON)
    eps = e / M_PROTON
    kappa = (1.0 + eps) ** 2 - (eps * c) ** 2
    root = np.sqrt(np.maximum((e - delta) ** 2 - kappa * M_ELECTRON**2, 0.0))
    return ((e - delta) * (1.0 + eps) + eps * c * root) / kappa


def sample_cos_theta(energy: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    """Sample cosθ of the positron from dσ/dcosθ ∝ 1 + a vₑ cosθ (Vogel–Beacom, zeroth order)."""
    ee = np.maximum(energy - DELTA_NP, M_ELECTRON)
    v = np.sqrt(np.maximum(1.0 - (M_ELECTRON / ee) ** 2, 0.0))
    slope = ANGULAR_ASYMMETRY * v
    u = rng.random(energy.shape)
    # Inverse CDF of (1 + s c)/2 on [−1, 1]: F(c) = (c + 1)/2 + s (c² − 1)/4.
    small = np.abs(slope) < 1e-9
    s = np.where(small, 1.0, slope)
    disc = np.maximum((1.0 / s) ** 2 - 2.0 * (1.0 - 2.0 * u) / s + 1.0, 0.0)
    c = -1.0 / s + np.sign(s) * np.sqrt(disc)
    return np.clip(np.where(small, 2.0 * u - 1.0, c), -1.0, 1.0)


def free_protons_lab(mass_kt: float, hydrogen_mass_fraction: float | None = None) -> float:
    """Free protons in ``mass_kt`` kt of linear alkylbenzene (LAB, C₁₈H₃₀ as its mean formula).

    With ``hydrogen_mass_fraction`` given, that fraction is used instead of pure LAB's.
    """
    if not mass_kt > 0:
        msg = f"target mass {mass_kt} kt must be > 0"
        raise ValueError(msg)
    if hydrogen_mass_fraction is None:
        hydrogen_mass_fraction = 30 * HYDROGEN_MASS / (18 * CARBON_MASS + 30 * HYDROGEN_MASS)
    grams = mass_kt * 1.0e9
    return grams * hydrogen_mass_fraction / HYDROGEN_MASS * 6.02214076e23
