"""Reactor flux: fission rates, spectrum extrapolation, geometry, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from oscflow.physics import reactor
from oscflow.physics.constants import MEV_TO_JOULE


def test_fission_rate_from_thermal_power() -> None:
    """1 GW_th of pure ²³⁵U fission: 1e9 J/s / (201.92 MeV · 1.602e-13 J/MeV) = 3.091e19 /s."""
    rate = reactor.fission_rate(1.0, {"U235": 1.0})
    assert rate == pytest.approx(1e9 / (201.92 * MEV_TO_JOULE), rel=1e-12)
    assert rate == pytest.approx(3.091e19, rel=1e-3)


def test_mixture_energy_per_fission_is_fraction_weighted() -> None:
    """Seed 003's fuel: 0.59·201.92 + 0.28·209.99 + 0.07·205.52 + 0.06·213.60 = 205.13 MeV."""
    assert reactor.mean_energy_per_fission(reactor.DEFAULT_FISSION_FRACTIONS) == pytest.approx(
        205.1324, rel=1e-9
    )


def test_neutrinos_per_fission_above_threshold_are_physical() -> None:
    """ν̄ per fission above 1.8 MeV: ≈1.92 (²³⁵U), 1.45 (²³⁹Pu) in the Huber–Mueller model
    (e.g. Hayes & Vogel, Annu. Rev. Nucl. Part. Sci. 66, 219 (2016), Table 1); within 5 %."""
    e = np.linspace(1.806, 16.8, 200_001)
    for iso, expected in (("U235", 1.92), ("Pu239", 1.45)):
        n = np.trapezoid(reactor.isotope_spectrum(e, iso), e)
        assert n == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("isotope", reactor.ISOTOPES)
def test_exponential_extrapolation_is_smooth_at_8_mev(isotope: str) -> None:
    """The log-linear tail joins the fit with equal value and slope at 8 MeV."""
    h = 1e-5
    below = reactor.isotope_spectrum([8 - h, 8.0], isotope)
    above = reactor.isotope_spectrum([8.0, 8 + h], isotope)
    assert above[0] == pytest.approx(below[1], rel=1e-12)
    slope_below = np.log(below[1] / below[0]) / h
    slope_above = np.log(above[1] / above[0]) / h
    assert slope_above == pytest.approx(slope_below, rel=1e-3)
    tail = reactor.isotope_spectrum(np.linspace(8, 16.8, 50), isotope)
    assert np.all(np.diff(tail) < 0)


def test_flux_falls_as_inverse_square_of_baseline() -> None:
    near = reactor.Core("a", 2.9, 52.5, "near")
    far = reactor.Core("b", 2.9, 105.0, "near")
    e = np.linspace(2, 8, 7)
    np.testing.assert_allclose(near.flux(e) / far.flux(e), 4.0, rtol=1e-12)


def test_flux_normalisation_at_one_km() -> None:
    """Φ(E) = P/⟨E_f⟩ · S(E) / (4πL²), checked by hand at 4 MeV for 1 GW at 1 km."""
    core = reactor.Core("x", 1.0, 1.0, "g", {"U235": 1.0})
    expected = (
        1e9 / (201.92 * MEV_TO_JOULE) * reactor.isotope_spectrum(4.0, "U235") / (4 * np.pi * 1e10)
    )
    assert core.flux(4.0) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"power_gw": -1.0}, "thermal power -1.0 GW is negative"),
        ({"baseline_km": 0.0}, "baseline 0.0 km must be > 0"),
        ({"fission_fractions": {"U235": 0.5}}, "sum to 1"),
        ({"fission_fractions": {"U233": 1.0}}, "unknown isotopes"),
    ],
)
def test_bad_core_is_rejected_with_the_reason(kwargs: dict, message: str) -> None:
    args = {"name": "c", "power_gw": 1.0, "baseline_km": 50.0, "group": "g", **kwargs}
    with pytest.raises(ValueError, match=message):
        reactor.Core(**args)


def test_unknown_isotope_or_extrapolation() -> None:
    with pytest.raises(ValueError, match="unknown isotope"):
        reactor.isotope_spectrum(3.0, "Th232")
    with pytest.raises(ValueError, match="unknown extrapolation"):
        reactor.isotope_spectrum(3.0, "U235", "cubic")
