"""3+1 short-baseline appearance ν̄_μ → ν̄ₑ (the LSND/JSNS² channel).

At L/E where only the fourth mass state has had time to oscillate (Δm²₂₁ L/E, Δm²₃₁ L/E ≪ 1),
the 3+1 model gives the two-flavour form (e.g. C. Giunti, T. Lasserre, Annu. Rev. Nucl. Part.
Sci. 69, 163 (2019), Sec. 2):

    P(ν̄_μ → ν̄ₑ) = sin²2θ_μe · sin²(Δm²₄₁ L / 4E),   sin²2θ_μe = 4|U_e4|²|U_μ4|²,

and Δm² L/(4E) = 1.26693 · Δm²[eV²] · L[m] / E[MeV] (``constants.OSC_PHASE_COEFF`` per km).
The same for neutrinos and antineutrinos (no CP violation in one-mass-scale dominance) and in
matter at these baselines (tens of metres).

Averaging over a baseline distribution (``physics.baselines``): with sin²φ = (1 − cos 2φ)/2,
⟨P⟩ = sin²2θ_μe · (1 − ⟨cos κL⟩)/2, κ = 2 · 1.26693 · Δm²/E per metre (2φ = κL), so that at large Δm²
(⟨cos κL⟩ → 0) ⟨P⟩ → sin²2θ_μe / 2.

Parameters: ``sin2_2th_mue`` ∈ [0, 1] and ``dm2_41`` ≥ 0 (eV²).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..baselines import BaselineDistribution
from ..constants import OSC_PHASE_COEFF
from . import OscillationModel, Propagator, register

PHASE_PER_M = OSC_PHASE_COEFF * 1.0e-3  # Δm²L/(4E) per eV² · m / MeV: 1.26693


@register
class SterileAppearance(OscillationModel):
    """P(ν̄_μ → ν̄ₑ) of 3+1 mixing at short baselines; see the module docstring."""

    name = "sterile_3p1_appearance"
    channel = "antinu_mu->antinu_e"
    parameters = ("sin2_2th_mue", "dm2_41")
    # P is linear in sin²2θμe (module docstring): spectra per unit sin²2θμe scale exactly.
    amplitude = "sin2_2th_mue"

    def check(self, params: Mapping[str, ArrayLike]) -> None:
        super().check(params)
        if "sin2_2th_mue" in params:
            s = np.asarray(params["sin2_2th_mue"], dtype=np.float64)
            if np.any((s < 0) | (s > 1)):
                msg = "sin2_2th_mue must lie in [0, 1]"
                raise ValueError(msg)
        if "dm2_41" in params and np.any(np.asarray(params["dm2_41"], dtype=np.float64) < 0):
            msg = "dm2_41 must be >= 0 (eV²)"
            raise ValueError(msg)

    def _columns(
        self, params: Mapping[str, ArrayLike]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        self.check(params)
        s = np.asarray(params["sin2_2th_mue"], dtype=np.float64).reshape(-1, 1)
        d = np.asarray(params["dm2_41"], dtype=np.float64).reshape(-1, 1)
        return s, d

    def propagator(
        self,
        energy: ArrayLike,
        params: Mapping[str, NDArray[np.float64]],
        settings: Any = None,  # noqa: ARG002 - no settings: no ordering, no matter effects
    ) -> Propagator:
        s, d = self._columns(params)
        inv_e = 1.0 / np.asarray(energy, dtype=np.float64)

        def probability(baseline_km: float) -> NDArray[np.float64]:
            phase = OSC_PHASE_COEFF * d * baseline_km * inv_e
            return np.asarray(s * np.sin(phase) ** 2, dtype=np.float64)

        return probability

    def probability(
        self, energy: ArrayLike, baseline_m: ArrayLike, params: Mapping[str, ArrayLike]
    ) -> NDArray[np.float64]:
        """P at one baseline (m), shape (B, N) for energies (N,) in MeV."""
        s, d = self._columns(params)
        phase = PHASE_PER_M * d * np.asarray(baseline_m, dtype=np.float64) / np.asarray(energy)
        return np.asarray(s * np.sin(phase) ** 2, dtype=np.float64)

    def averaged(
        self,
        energy: ArrayLike,
        distribution: BaselineDistribution,
        params: Mapping[str, ArrayLike],
    ) -> NDArray[np.float64]:
        """⟨P⟩ over the flux-weighted baseline ``distribution``, shape (B, N)."""
        s, d = self._columns(params)
        kappa = 2.0 * PHASE_PER_M * d / np.asarray(energy, dtype=np.float64)  # cos 2φ = cos κL
        return np.asarray(s * 0.5 * (1.0 - distribution.mean_cos(kappa)), dtype=np.float64)
