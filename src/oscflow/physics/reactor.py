"""Reactor antineutrino flux: isotope spectra, fission rates, per-core flux at a detector.

Sources:
- Isotope spectra exp(Σₖ aₖ Eᵏ), k = 0..5, E in MeV, in ν̄ per MeV per fission:
  P. Huber, Phys. Rev. C 84, 024617 (2011), Table III (²³⁵U, ²³⁹Pu, ²⁴¹Pu);
  T. A. Mueller et al., Phys. Rev. C 83, 054615 (2011), Table VI (²³⁸U).
  The fits are valid for 2–8 MeV. Below 2 MeV only the 1.806–2 MeV IBD sliver uses the
  polynomial as it is. Above 8 MeV we extrapolate ln S(E) linearly with the slope the fit has
  at 8 MeV (``extrapolation="exponential"``, default): the polynomial's own continuation
  (``"polynomial"``) is unconstrained there and is kept only for comparison.
- Mean energy released per fission, MeV: V. I. Kopeikin et al., Phys. Atom. Nucl. 67, 1892 (2004).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .constants import KM_TO_CM, MEV_TO_JOULE

ISOTOPES: tuple[str, ...] = ("U235", "U238", "Pu239", "Pu241")

SPECTRUM_COEFFICIENTS: dict[str, tuple[float, ...]] = {
    "U235": (4.367, -4.577, 2.100, -0.5294, 0.06186, -0.002777),  # Huber 2011
    "Pu239": (4.757, -5.392, 2.563, -0.6596, 0.07820, -0.003536),  # Huber 2011
    "Pu241": (2.990, -2.882, 1.278, -0.3343, 0.03905, -0.001754),  # Huber 2011
    "U238": (0.4833, 0.1927, -0.1283, -0.006762, 0.002233, -0.0001536),  # Mueller 2011
}

ENERGY_PER_FISSION: dict[str, float] = {  # MeV, Kopeikin 2004
    "U235": 201.92,
    "U238": 205.52,
    "Pu239": 209.99,
    "Pu241": 213.60,
}

# Fission fractions used by seed 003 (Ventura & Panibra) for every JUNO core.
DEFAULT_FISSION_FRACTIONS: dict[str, float] = {
    "U235": 0.59,
    "Pu239": 0.28,
    "U238": 0.07,
    "Pu241": 0.06,
}

FIT_RANGE = (2.0, 8.0)  # MeV, validity of the Huber–Mueller fits
EXTRAPOLATIONS = ("exponential", "polynomial")


def _log_poly(e: NDArray[np.float64], coeffs: tuple[float, ...]) -> NDArray[np.float64]:
    return np.asarray(np.polynomial.polynomial.polyval(e, coeffs), dtype=np.float64)


def isotope_spectrum(
    energy: ArrayLike, isotope: str, extrapolation: str = "exponential"
) -> NDArray[np.float64]:
    """ν̄ emitted per fission per MeV of ``isotope`` at neutrino energy ``energy`` (MeV)."""
    if isotope not in SPECTRUM_COEFFICIENTS:
        msg = f"unknown isotope {isotope!r}; choose one of {', '.join(ISOTOPES)}"
        raise ValueError(msg)
    if extrapolation not in EXTRAPOLATIONS:
        msg = f"unknown extrapolation {extrapolation!r}; choose one of {EXTRAPOLATIONS}"
        raise ValueError(msg)
    e = np.asarray(energy, dtype=np.float64)
    coeffs = SPECTRUM_COEFFICIENTS[isotope]
    log_s = _log_poly(e, coeffs)
    if extrapolation == "exponential":
        e_hi = FIT_RANGE[1]
        slope = np.polynomial.polynomial.polyval(e_hi, np.polynomial.polynomial.polyder(coeffs))
        tail = _log_poly(np.asarray(e_hi), coeffs) + slope * (e - e_hi)
        log_s = np.where(e > e_hi, tail, log_s)
    return np.exp(log_s)


def mixture_spectrum(
    energy: ArrayLike,
    fractions: Mapping[str, float],
    extrapolation: str = "exponential",
) -> NDArray[np.float64]:
    """ν̄ per fission per MeV for a fuel with the given fission fractions (must sum to 1)."""
    return sum(
        (f * isotope_spectrum(energy, iso, extrapolation) for iso, f in fractions.items()),
        start=np.zeros_like(np.asarray(energy, dtype=np.float64)),
    )


def mean_energy_per_fission(fractions: Mapping[str, float]) -> float:
    """Mean thermal energy released per fission, MeV (Kopeikin 2004 per-isotope values)."""
    return float(sum(f * ENERGY_PER_FISSION[iso] for iso, f in fractions.items()))


def fission_rate(thermal_power_gw: float, fractions: Mapping[str, float]) -> float:
    """Fissions per second of a core at ``thermal_power_gw`` GW (thermal)."""
    return thermal_power_gw * 1.0e9 / (mean_energy_per_fission(fractions) * MEV_TO_JOULE)


@dataclass(frozen=True)
class Core:
    """One reactor core as seen from a detector.

    ``power_gw``: thermal power in GW; ``baseline_km``: distance to the detector in km;
    ``group``: the source category the core's events are reported under (e.g. near_reactors).
    """

    name: str
    power_gw: float
    baseline_km: float
    group: str
    fission_fractions: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_FISSION_FRACTIONS)
    )

    def __post_init__(self) -> None:
        if not self.power_gw >= 0.0:
            msg = (
                f"core {self.name}: thermal power {self.power_gw} GW is negative; set power_gw >= 0"
            )
            raise ValueError(msg)
        if not self.baseline_km > 0.0:
            msg = (
                f"core {self.name}: baseline {self.baseline_km} km must be > 0; "
                "set baseline_km to the core–detector distance in km"
            )
            raise ValueError(msg)
        unknown = set(self.fission_fractions) - set(ISOTOPES)
        if unknown:
            msg = f"core {self.name}: unknown isotopes {sorted(unknown)}; use {ISOTOPES}"
            raise ValueError(msg)
        total = sum(self.fission_fractions.values())
        if any(f < 0 for f in self.fission_fractions.values()) or abs(total - 1.0) > 1e-6:
            msg = (
                f"core {self.name}: fission fractions {dict(self.fission_fractions)} must be "
                f">= 0 and sum to 1 (they sum to {total:.6f})"
            )
            raise ValueError(msg)

    def flux(self, energy: ArrayLike, extrapolation: str = "exponential") -> NDArray[np.float64]:
        """Unoscillated ν̄ flux at the detector, cm⁻² s⁻¹ MeV⁻¹ (isotropic emission, 1/4πL²)."""
        rate = fission_rate(self.power_gw, self.fission_fractions)
        area = 4.0 * np.pi * (self.baseline_km * KM_TO_CM) ** 2
        return rate * mixture_spectrum(energy, self.fission_fractions, extrapolation) / area
