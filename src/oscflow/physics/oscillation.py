"""Three-flavour ν̄ₑ survival probability in vacuum and in constant-density matter.

Parameters follow PDG 2022 (R.L. Workman et al., PTEP 2022, 083C01, normal ordering):
sin²θ₁₂, sin²θ₁₃, Δm²₂₁ (eV²) and |Δm²₃₂| (eV²) with an explicit mass ordering:
normal: Δm²₃₁ = |Δm²₃₂| + Δm²₂₁; inverted: Δm²₃₂ = −|Δm²₃₂|, Δm²₃₁ = −|Δm²₃₂| + Δm²₂₁.
P(ν̄ₑ→ν̄ₑ) depends on neither θ₂₃ nor δ_CP, in vacuum or in constant matter (both act in the
μ–τ block, which commutes with the electron-flavour matter potential).

Matter: the Hamiltonian 2E·H = U diag(0, Δm²₂₁, Δm²₃₁) Uᵀ − diag(A, 0, 0) for antineutrinos,
A = 2√2 G_F Nₑ E (see ``constants.MATTER_POTENTIAL_COEFF``), is diagonalised in closed form:
eigenvalues by the trigonometric solution of the cubic, and the electron-row weights |Ũₑᵢ|² by
the eigenvector–eigenvalue identity (Denton, Parke, Zhang, Bull. AMS 59, 31 (2022)), so that
the whole computation vectorises over energies and parameter batches.

All functions broadcast: parameters may be arrays of shape (B, 1) against energies (N,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .constants import MATTER_POTENTIAL_COEFF, OSC_PHASE_COEFF

Ordering = Literal["normal", "inverted"]
ORDERINGS: tuple[str, ...] = ("normal", "inverted")

# Earth's crust along the JUNO baselines: 2.45 g/cm³ (DESIGN; e.g. Li, Wang, Xing,
# Chin. Phys. C 40, 091001 (2016)); electron fraction 0.5 for crustal rock.
CRUST_DENSITY = 2.45  # g/cm³
CRUST_ELECTRON_FRACTION = 0.5


@dataclass(frozen=True)
class OscillationParameters:
    """Oscillation parameters; each may be a float or an array broadcastable against energies."""

    sin2_th12: ArrayLike
    sin2_th13: ArrayLike
    dm2_21: ArrayLike  # eV²
    dm2_32: ArrayLike  # |Δm²₃₂|, eV²
    ordering: Ordering = "normal"

    def __post_init__(self) -> None:
        if self.ordering not in ORDERINGS:
            msg = f"ordering {self.ordering!r} is not one of {ORDERINGS}"
            raise ValueError(msg)

    def splittings(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(Δm²₂₁, Δm²₃₁) in eV², signed according to the ordering."""
        d21 = np.asarray(self.dm2_21, dtype=np.float64)
        d32 = np.abs(np.asarray(self.dm2_32, dtype=np.float64))
        d31 = d32 + d21 if self.ordering == "normal" else -d32 + d21
        return d21, d31

    def electron_row(self) -> tuple[NDArray[np.float64], ...]:
        """Vacuum |Uₑ₁|², |Uₑ₂|², |Uₑ₃|²."""
        s12 = np.asarray(self.sin2_th12, dtype=np.float64)
        s13 = np.asarray(self.sin2_th13, dtype=np.float64)
        c13 = 1.0 - s13
        return c13 * (1.0 - s12), c13 * s12, s13


def _probability_from_eigen(
    weights: tuple[NDArray[np.float64], ...],
    eigenvalues: tuple[NDArray[np.float64], ...],
    l_over_e: NDArray[np.float64],
) -> NDArray[np.float64]:
    """P = 1 − 4 Σᵢ<ⱼ wᵢ wⱼ sin²((λⱼ − λᵢ) L / 4E), λ in eV², L/E in km/MeV."""
    prob = 1.0
    for i in range(3):
        for j in range(i + 1, 3):
            phase = OSC_PHASE_COEFF * (eigenvalues[j] - eigenvalues[i]) * l_over_e
            prob = prob - 4.0 * weights[i] * weights[j] * np.sin(phase) ** 2
    return np.asarray(prob)


def matter_eigensystem(
    energy: ArrayLike,
    params: OscillationParameters,
    density: float = CRUST_DENSITY,
    electron_fraction: float = CRUST_ELECTRON_FRACTION,
) -> tuple[tuple[NDArray[np.float64], ...], tuple[NDArray[np.float64], ...]]:
    """Electron-row weights |Ũₑᵢ|² and eigenvalues (eV²) of 2E·H for ν̄ in constant matter."""
    e = np.asarray(energy, dtype=np.float64)
    d21, d31 = params.splittings()
    s12 = np.asarray(params.sin2_th12, dtype=np.float64)
    s13 = np.asarray(params.sin2_th13, dtype=np.float64)
    a = -MATTER_POTENTIAL_COEFF * density * electron_fraction * e  # antineutrino sign

    # M = R13 R12 diag(0, d21, d31) R12ᵀ R13ᵀ + diag(a, 0, 0), real symmetric.
    c12sq, c13sq = 1.0 - s12, 1.0 - s13
    sn12c12 = np.sqrt(s12 * c12sq)
    sn13, cs13 = np.sqrt(s13), np.sqrt(c13sq)
    # Rows of U = R13 R12 (θ₂₃ = δ = 0): U_e = (c12 c13, s12 c13, s13), U_μ = (−s12, c12, 0),
    # U_τ = (−c12 s13, −s12 s13, c13).
    m00 = c13sq * s12 * d21 + s13 * d31 + a
    m01 = cs13 * sn12c12 * d21
    m02 = sn13 * cs13 * (d31 - s12 * d21)
    m11 = c12sq * d21
    m12 = -sn13 * sn12c12 * d21
    m22 = c13sq * d31 + s13 * s12 * d21

    q = (m00 + m11 + m22) / 3.0
    p1 = m01**2 + m02**2 + m12**2
    p2 = (m00 - q) ** 2 + (m11 - q) ** 2 + (m22 - q) ** 2 + 2.0 * p1
    p = np.sqrt(p2 / 6.0)
    b00, b11, b22 = (m00 - q) / p, (m11 - q) / p, (m22 - q) / p
    b01, b02, b12 = m01 / p, m02 / p, m12 / p
    det_b = (
        b00 * (b11 * b22 - b12**2) - b01 * (b01 * b22 - b12 * b02) + b02 * (b01 * b12 - b11 * b02)
    )
    phi = np.arccos(np.clip(det_b / 2.0, -1.0, 1.0)) / 3.0
    lam_hi = q + 2.0 * p * np.cos(phi)
    lam_lo = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    lam_mid = 3.0 * q - lam_hi - lam_lo
    lams = (lam_lo, lam_mid, lam_hi)

    # Eigenvalues of the minor M[1:,1:].
    half_tr = 0.5 * (m11 + m22)
    rad = np.sqrt(0.25 * (m11 - m22) ** 2 + m12**2)
    mu1, mu2 = half_tr - rad, half_tr + rad
    weights = []
    for i in range(3):
        j, k = (x for x in range(3) if x != i)
        weights.append(
            (lams[i] - mu1) * (lams[i] - mu2) / ((lams[i] - lams[j]) * (lams[i] - lams[k]))
        )
    # Order the matter states as the vacuum ones (1, 2, 3) for either ordering: sort by value,
    # which the phases do not care about; weights stay paired with their eigenvalue.
    return tuple(weights), lams


def survival_probability(
    energy: ArrayLike,
    baseline_km: ArrayLike,
    params: OscillationParameters,
    matter: bool = False,
    density: float = CRUST_DENSITY,
    electron_fraction: float = CRUST_ELECTRON_FRACTION,
) -> NDArray[np.float64]:
    """P(ν̄ₑ → ν̄ₑ) at ``energy`` (MeV) after ``baseline_km`` (km), vacuum or constant matter."""
    e = np.asarray(energy, dtype=np.float64)
    l_over_e = np.asarray(baseline_km, dtype=np.float64) / e
    if matter:
        weights, lams = matter_eigensystem(e, params, density, electron_fraction)
    else:
        d21, d31 = params.splittings()
        weights = params.electron_row()
        lams = (np.zeros_like(d21), d21, d31)
    return _probability_from_eigen(weights, lams, l_over_e)
