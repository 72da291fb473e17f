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
- Two corrections to the equilibrium Huber–Mueller flux, each off by default (``Core`` fields,
  ``experiment.reactor`` in the JUNO config), both from the Daya Bay Full Data Release
  (Zenodo, doi:10.5281/zenodo.17587229; PyPI ``dayabay-data-official`` 1.0.1):
  the non-equilibrium correction (``nonequilibrium_correction``, +0.63 % of the IBD rate for
  seed 003's fuel) and the spent-nuclear-fuel contribution (``spent_fuel_ratio``, +0.19 %).
  Both vanish above 4.5 MeV.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import CubicSpline, make_interp_spline

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

# Non-equilibrium (NEQ) correction C(E): S'(E) = S(E)·(1 + C(E)). The ILL β spectra behind
# Huber's ²³⁵U/²³⁹Pu/²⁴¹Pu fits were taken after hours to days of irradiation; long-lived
# fission products in a power reactor (~a year of irradiation) add ν̄ below ~4.5 MeV.
# ²³⁸U (Mueller's ab-initio spectrum) has none. Values: T. A. Mueller et al., Phys. Rev. C 83,
# 054615 (2011), as tabulated by the Daya Bay Full Data Release (files
# nonequilibrium_correction_{U235,Pu239,Pu241}, 0.01 MeV bins, 1.80–4.49 MeV), read here at
# its nodes; that table is exactly (to 1e-16) the quadratic interpolating spline through these
# nodes (scipy ``make_interp_spline(k=2)``), clipped at 0, and zero outside 1.8–4.5 MeV.
NEQ_ENERGIES: tuple[float, ...] = (1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5)  # MeV
NEQ_CORRECTION: dict[str, tuple[float, ...]] = {  # fraction of the spectrum, at NEQ_ENERGIES
    "U235": (0.060, 0.057, 0.044, 0.015, 0.007, 0.001, 0.0),
    "Pu239": (0.022, 0.021, 0.017, 0.005, 0.001, 0.0005, 0.0),
    "Pu241": (0.020, 0.019, 0.015, 0.005, 0.001, 0.0005, 0.0),
}

# Spent nuclear fuel (SNF) in the cooling pools beside a core: long-lived fission products
# (¹⁴⁴Ce/¹⁴⁴Pr, ¹⁰⁶Ru/¹⁰⁶Rh, ⁹⁰Sr/⁹⁰Y) keep emitting ν̄ below ~3.6 MeV. Ratio r(E) of the SNF
# flux to the core's equilibrium flux, added as S(E)·r(E): the Daya Bay Full Data Release's
# evaluation for its six cores (files snf_correction_R1..R6, 0.01 MeV bins, 1.75–3.75 MeV), the
# mean of the six at its 0.25 MeV nodes. We have no per-core SNF table for JUNO's cores
# (Taishan, Yangjiang: PWRs like Daya Bay's), so the Daya Bay mean stands in for every core,
# an assumption within the 30 % uncertainty Daya Bay gives its own SNF (reactor_snf.yaml).
# A natural cubic spline through the nodes, clipped at 0, reproduces the mean release table to
# 5e-4 (absolute; the ratio is ~1e-2) and its IBD-rate effect to 0.05 % (tests/test_reactor.py).
SNF_ENERGIES: tuple[float, ...] = (1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75)  # MeV
# The release's node values, in % (cores R1–R6: Daya Bay 1–2, Ling Ao 1–4).
SNF_RATIO_DAYA_BAY_PERCENT: dict[str, tuple[float, ...]] = {
    "R1": (1.317, 1.329, 0.9747, 0.8996, 0.7766, 0.3185, 0.2475, 0.03444, 0.0),
    "R2": (1.334, 1.345, 0.9816, 0.9050, 0.7812, 0.3200, 0.2487, 0.03460, 0.0),
    "R3": (1.367, 1.412, 1.118, 1.043, 0.9007, 0.3691, 0.2870, 0.03996, 0.0),
    "R4": (1.321, 1.362, 1.077, 1.003, 0.8666, 0.3560, 0.2769, 0.03857, 0.0),
    "R5": (1.265, 1.342, 1.175, 1.107, 0.9545, 0.3854, 0.2998, 0.04178, 0.0),
    "R6": (1.115, 1.184, 1.009, 0.9525, 0.8192, 0.3258, 0.2532, 0.03527, 0.0),
}
SNF_RATIO: tuple[float, ...] = tuple(  # SNF / reactor flux at SNF_ENERGIES (fraction)
    float(v) for v in np.mean(list(SNF_RATIO_DAYA_BAY_PERCENT.values()), axis=0) / 100.0
)


def _log_poly(e: NDArray[np.float64], coeffs: tuple[float, ...]) -> NDArray[np.float64]:
    return np.asarray(np.polynomial.polynomial.polyval(e, coeffs), dtype=np.float64)


def _check_isotope(isotope: str) -> None:
    if isotope not in SPECTRUM_COEFFICIENTS:
        msg = f"unknown isotope {isotope!r}; choose one of {', '.join(ISOTOPES)}"
        raise ValueError(msg)


def _tabulated(
    energy: ArrayLike, nodes: tuple[float, ...], spline: Callable[[NDArray[np.float64]], object]
) -> NDArray[np.float64]:
    """A spline through a correction's nodes, clipped at 0, and 0 outside the nodes' range."""
    e = np.asarray(energy, dtype=np.float64)
    inside = (e >= nodes[0]) & (e <= nodes[-1])
    values = np.asarray(spline(np.clip(e, nodes[0], nodes[-1])), dtype=np.float64)
    return np.where(inside, np.clip(values, 0.0, None), 0.0)


@cache
def _neq_spline(isotope: str) -> Callable[[NDArray[np.float64]], object]:
    return make_interp_spline(NEQ_ENERGIES, NEQ_CORRECTION[isotope], k=2)


@cache
def _snf_spline() -> Callable[[NDArray[np.float64]], object]:
    return CubicSpline(SNF_ENERGIES, SNF_RATIO, bc_type="natural")


def nonequilibrium_correction(energy: ArrayLike, isotope: str) -> NDArray[np.float64]:
    """Relative non-equilibrium correction C(E) of ``isotope``'s spectrum at ``energy`` (MeV):
    S'(E) = S(E)·(1 + C(E)). Zero for ²³⁸U and outside 1.8–4.5 MeV (``NEQ_CORRECTION``)."""
    _check_isotope(isotope)
    if isotope not in NEQ_CORRECTION:
        return np.zeros_like(np.asarray(energy, dtype=np.float64))
    return _tabulated(energy, NEQ_ENERGIES, _neq_spline(isotope))


def spent_fuel_ratio(energy: ArrayLike) -> NDArray[np.float64]:
    """Spent-fuel ν̄ flux over the core's equilibrium flux at ``energy`` (MeV), a fraction;
    zero outside 1.75–3.75 MeV (``SNF_RATIO``)."""
    return _tabulated(energy, SNF_ENERGIES, _snf_spline())


def isotope_spectrum(
    energy: ArrayLike,
    isotope: str,
    extrapolation: str = "exponential",
    non_equilibrium: bool = False,
) -> NDArray[np.float64]:
    """ν̄ emitted per fission per MeV of ``isotope`` at neutrino energy ``energy`` (MeV);
    ``non_equilibrium`` multiplies by 1 + ``nonequilibrium_correction``."""
    _check_isotope(isotope)
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
    spectrum = np.exp(log_s)
    if non_equilibrium:
        spectrum = spectrum * (1.0 + nonequilibrium_correction(e, isotope))
    return spectrum


def mixture_spectrum(
    energy: ArrayLike,
    fractions: Mapping[str, float],
    extrapolation: str = "exponential",
    non_equilibrium: bool = False,
    spent_fuel: bool = False,
) -> NDArray[np.float64]:
    """ν̄ per fission per MeV for a fuel with the given fission fractions (must sum to 1).

    ``non_equilibrium``: each isotope's non-equilibrium correction; ``spent_fuel``: adds the
    spent-fuel ν̄, ``spent_fuel_ratio`` × the equilibrium spectrum (as Daya Bay's model does),
    counted per fission of the core.
    """
    e = np.asarray(energy, dtype=np.float64)
    parts = {iso: f * isotope_spectrum(e, iso, extrapolation) for iso, f in fractions.items()}
    equilibrium = sum(parts.values(), start=np.zeros_like(e))
    spectrum = equilibrium
    if non_equilibrium:
        spectrum = spectrum + sum(
            (s * nonequilibrium_correction(e, iso) for iso, s in parts.items()),
            start=np.zeros_like(e),
        )
    if spent_fuel:
        spectrum = spectrum + spent_fuel_ratio(e) * equilibrium
    return spectrum


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
    ``non_equilibrium``, ``spent_fuel``: the two flux corrections (module docstring); off by
    default, the equilibrium Huber–Mueller flux of seed 003.
    """

    name: str
    power_gw: float
    baseline_km: float
    group: str
    fission_fractions: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_FISSION_FRACTIONS)
    )
    non_equilibrium: bool = False
    spent_fuel: bool = False

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
        """Unoscillated ν̄ flux at the detector, cm⁻² s⁻¹ MeV⁻¹ (isotropic emission, 1/4πL²),
        with the corrections this core has switched on."""
        rate = fission_rate(self.power_gw, self.fission_fractions)
        area = 4.0 * np.pi * (self.baseline_km * KM_TO_CM) ** 2
        spectrum = mixture_spectrum(
            energy, self.fission_fractions, extrapolation, self.non_equilibrium, self.spent_fuel
        )
        return rate * spectrum / area
