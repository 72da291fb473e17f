"""Reactor flux: fission rates, spectrum extrapolation, geometry, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from oscflow.physics import ibd, reactor
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


# Non-equilibrium and spent-fuel corrections ------------------------------------------------
# Oracle: the Daya Bay Full Data Release tables (doi:10.5281/zenodo.17587229, the `dayabay`
# extra), which physics/reactor.py cites and reads only at their nodes.

IBD_GRID = np.linspace(1.806, 12.0, 40_001)  # MeV


def _release_table(name: str) -> dict[str, np.ndarray]:
    from dayabay_data_official import get_path_data

    with np.load(get_path_data("npz") / f"{name}.npz") as tables:
        return {key: tables[key] for key in tables.files}


def _rate(spectrum: np.ndarray) -> float:
    """IBD rate ∝ ∫ flux × σ over E_ν (seed 003's fuel)."""
    return float(np.trapezoid(spectrum * ibd.cross_section(IBD_GRID), IBD_GRID))


def test_nonequilibrium_correction_is_the_release_table() -> None:
    """Our quadratic spline through Mueller's nodes is the Daya Bay release's 0.01 MeV table
    (1.80–4.49 MeV) to round-off, for each of ²³⁵U, ²³⁹Pu, ²⁴¹Pu; ²³⁸U has none."""
    for iso, table in _release_table("nonequilibrium_correction").items():
        ours = reactor.nonequilibrium_correction(table["E_MeV"], iso)
        np.testing.assert_allclose(ours, table["C"], rtol=0, atol=1e-12)
    assert not reactor.nonequilibrium_correction(IBD_GRID, "U238").any()


def test_nonequilibrium_raises_the_ibd_rate_by_0p63_percent() -> None:
    """∫ flux × σ grows by +0.634 % (the release's own tables, linearly interpolated as Daya
    Bay's model does, give the same to 1e-4 of it): Mueller's ~+0.6 % of the rate."""
    fuel = reactor.DEFAULT_FISSION_FRACTIONS
    base = _rate(reactor.mixture_spectrum(IBD_GRID, fuel))
    ours = _rate(reactor.mixture_spectrum(IBD_GRID, fuel, non_equilibrium=True)) / base - 1
    tables = _release_table("nonequilibrium_correction")
    release = sum(
        fuel[iso] * reactor.isotope_spectrum(IBD_GRID, iso)
        * np.interp(IBD_GRID, t["E_MeV"], t["C"], left=0.0, right=0.0)
        for iso, t in tables.items()
    )  # fmt: skip
    assert ours == pytest.approx(_rate(release) / base, rel=1e-4)
    assert ours == pytest.approx(0.00634, abs=5e-5)


def test_spent_fuel_raises_the_ibd_rate_by_0p19_percent() -> None:
    """SNF: +0.195 % of the rate, within 0.2 % (of itself) of the six release tables' mean and
    inside their core-to-core spread (0.18–0.22 %); the ratio follows them to 5e-4 (absolute)."""
    fuel = reactor.DEFAULT_FISSION_FRACTIONS
    equilibrium = reactor.mixture_spectrum(IBD_GRID, fuel)
    base = _rate(equilibrium)
    ours = _rate(reactor.mixture_spectrum(IBD_GRID, fuel, spent_fuel=True)) / base - 1
    tables = _release_table("snf_correction")
    per_core = [
        _rate(equilibrium * np.interp(IBD_GRID, t["E_MeV"], t["C"], left=0.0, right=0.0)) / base
        for t in tables.values()
    ]
    assert ours == pytest.approx(np.mean(per_core), rel=2e-3)
    assert min(per_core) < ours < max(per_core)
    assert 0.0015 < ours < 0.0025
    energies = next(iter(tables.values()))["E_MeV"]
    mean_table = np.mean([t["C"] for t in tables.values()], axis=0)
    np.testing.assert_allclose(reactor.spent_fuel_ratio(energies), mean_table, atol=5e-4)


@pytest.mark.parametrize("isotope", reactor.ISOTOPES)
def test_corrections_vanish_above_their_tables(isotope: str) -> None:
    """Above 4.5 MeV (NEQ) and 3.75 MeV (SNF) the corrected spectrum is the equilibrium one,
    bit for bit; below, both corrections only add ν̄."""
    high = np.linspace(4.5, 16.8, 300)
    low = np.linspace(1.806, 4.5, 300)
    for e in (high, low):
        plain = reactor.mixture_spectrum(e, {isotope: 1.0})
        both = reactor.mixture_spectrum(e, {isotope: 1.0}, non_equilibrium=True, spent_fuel=True)
        if e is high:
            np.testing.assert_array_equal(both, plain)
        else:
            assert np.all(both >= plain)
    assert not reactor.spent_fuel_ratio(np.linspace(3.75, 16.8, 100)).any()


def test_core_flux_applies_its_switches() -> None:
    """Core.flux = the corrected mixture; the default core is the equilibrium flux."""
    e = np.linspace(2.0, 5.0, 31)
    plain = reactor.Core("c", 2.9, 52.5, "near")
    corrected = reactor.Core("c", 2.9, 52.5, "near", non_equilibrium=True, spent_fuel=True)
    fuel = reactor.DEFAULT_FISSION_FRACTIONS
    ratio = corrected.flux(e) / plain.flux(e)
    expected = reactor.mixture_spectrum(e, fuel, "exponential", True, True) / (
        reactor.mixture_spectrum(e, fuel)
    )
    np.testing.assert_allclose(ratio, expected, rtol=1e-12)
    assert ratio[0] > 1.03  # 2 MeV: +3.6 % NEQ (²³⁵U-weighted) + 1.3 % SNF


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+experiment.reactor.decay_heat=true", "experiment.reactor: unknown keys"),
        ("experiment.reactor.spent_fuel=1", "experiment.reactor.spent_fuel: 1 is not true"),
    ],
)
def test_bad_reactor_switch_is_a_config_error(override: str, message: str) -> None:
    from oscflow.config import load
    from oscflow.errors import ConfigError
    from oscflow.experiments import load_experiment

    with pytest.raises(ConfigError, match=message):
        load_experiment(load("predict", [override]).experiment)
