"""Background categories: normalisation, shapes, bad configuration."""

from __future__ import annotations

import numpy as np
import pytest

from oscflow.physics import geoneutrino as geo
from oscflow.physics.backgrounds import SHAPES, BackgroundCategory
from oscflow.physics.constants import DAYS_PER_YEAR, IBD_THRESHOLD, SECONDS_PER_DAY


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_rate_is_normalised_in_its_window(shape: str) -> None:
    """rate/day × days events in the normalisation window (0.8–12 MeV), whatever the shape."""
    cat = BackgroundCategory("b", rate_per_day=1.5, rate_uncertainty=0.1, shape=shape)
    counts = cat.expected(np.linspace(0.8, 12.0, 561), days=100.0)
    assert counts.sum() == pytest.approx(150.0, rel=2e-3)
    assert np.all(counts >= 0)


def test_geoneutrinos_end_at_the_u_chain_endpoint() -> None:
    """²¹⁴Bi's Q = 3.272 MeV: no geoneutrino prompt events above 3.272 − 0.782 = 2.49 MeV."""
    cat = BackgroundCategory("geo", 1.2, 0.3, "geoneutrino")
    counts = cat.expected(np.array([0.8, 2.0, 2.49, 2.6, 12.0]), days=1.0)
    assert counts[2:].sum() == pytest.approx(0.0, abs=1e-9)
    assert counts[:2].sum() == pytest.approx(1.2, rel=1e-3)


def test_window_outside_the_shape_is_empty() -> None:
    cat = BackgroundCategory("li", 0.8, 0.2, "beta_electron")
    assert cat.expected(np.array([12.0, 16.0]), days=10.0).sum() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": "banana"}, "unknown shape 'banana'"),
        ({"rate_per_day": -1.0}, "rate_per_day -1.0 must be >= 0"),
        ({"norm_window": (12.0, 0.8)}, "low < high"),
    ],
)
def test_bad_category(kwargs: dict, message: str) -> None:
    args = {"name": "x", "rate_per_day": 1.0, "rate_uncertainty": 0.1, "shape": "flat", **kwargs}
    with pytest.raises(ValueError, match=message):
        BackgroundCategory(**args)


def test_resolution_smearing_keeps_the_rate_and_blurs_the_endpoint() -> None:
    """Folding σ(E) = 3 %·√E keeps the normalisation and spreads the 2.49 MeV geoneutrino
    endpoint over a few σ, never beyond 6σ."""
    sharp = BackgroundCategory("geo", 1.2, 0.3, "geoneutrino")
    smeared = BackgroundCategory(
        "geo", 1.2, 0.3, "geoneutrino", resolution=lambda e: 0.03 * np.sqrt(np.maximum(e, 0))
    )
    edges = np.array([0.8, 2.3, 2.49, 2.49 + 6 * 0.03 * np.sqrt(2.49), 12.0])
    a, b = sharp.expected(edges, 1.0), smeared.expected(edges, 1.0)
    assert b.sum() == pytest.approx(1.2, rel=1e-3)
    assert a[2] == pytest.approx(0.0, abs=1e-12)
    assert b[2] > 1e-3
    assert b[3] < 1e-6


# Geoneutrinos: every β branch above the IBD threshold (physics/geoneutrino.py) ------------

TNU = 1e32 * DAYS_PER_YEAR * SECONDS_PER_DAY  # IBD per 1e32 protons per year, per cm² of σ


@pytest.mark.parametrize(
    "branch", [b for chain in geo.CHAIN_BRANCHES.values() for b in chain], ids=repr
)
def test_each_branch_integrates_to_its_intensity_and_ends_at_its_endpoint(branch) -> None:
    """∫ dN/dE_ν = ENSDF intensity (the trapezoid rule in u = √(Q − E_ν), a method independent
    of the module's quadrature); nothing above the endpoint; every branch can make an IBD."""
    u = np.linspace(0.0, np.sqrt(branch.endpoint), 20_001)
    total = np.trapezoid(geo.branch_spectrum(branch.endpoint - u**2, branch) * 2 * u, u)
    assert total == pytest.approx(branch.intensity, rel=1e-6)
    above = np.linspace(branch.endpoint, branch.endpoint + 2.0, 50)
    assert not geo.branch_spectrum(above, branch).any()
    assert branch.endpoint > IBD_THRESHOLD


def test_fermi_function_limits() -> None:
    """F₀ → 1 for Z → 0; for β⁻ at low momentum F₀ ≈ 2πη/(1 − e^(−2πη)) grows as Z grows."""
    t = np.array([0.05, 0.5, 2.0])
    np.testing.assert_allclose(geo.fermi_function(0, 1, t), 1.0, rtol=1e-12)
    assert np.all(geo.fermi_function(84, 214, t) > geo.fermi_function(20, 40, t))
    assert np.all(np.diff(geo.fermi_function(84, 214, t)) < 0)


def test_ibd_yield_per_flux_matches_fiorentini_2007() -> None:
    """S[TNU] = 12.8 Φ_U + 4.04 Φ_Th (Φ in 1e6 ν̄ cm⁻² s⁻¹; Fiorentini, Lissia, Mantovani,
    Phys. Rep. 453, 117 (2007)): ours 12.93 and 4.00 (6 and 4 ν̄ per chain decay), within
    2 %. Without ²³⁴ᵐPa, U would be 7.9: the added branch carries 39 % of the U yield."""
    per_flux = {c: geo.ibd_yield(c) / geo.NEUTRINOS_PER_DECAY[c] * 1e6 * TNU
                for c in geo.CHAIN_BRANCHES}  # fmt: skip
    assert per_flux["U238"] == pytest.approx(12.8, rel=0.02)
    assert per_flux["Th232"] == pytest.approx(4.04, rel=0.02)


def test_th_to_u_signal_ratio_for_chondritic_earth() -> None:
    """Th/U mass ratio 3.9 → S(Th)/S(U) = 0.27 (Fiorentini et al. 2007), the Th event
    fraction 0.21 that the old shape assumed (KamLAND 2011): ours 0.266 and 0.210."""
    ratio = (
        3.9 * geo.decays_per_gram_second("Th232") * geo.ibd_yield("Th232")
        / (geo.decays_per_gram_second("U238") * geo.ibd_yield("U238"))
    )  # fmt: skip
    assert ratio == pytest.approx(0.27, abs=0.01)
    assert ratio / (1 + ratio) == pytest.approx(0.21, abs=0.005)
    enu = np.linspace(IBD_THRESHOLD, 3.3, 4001)
    pure_u = np.trapezoid(geo.ibd_density(enu, 0.0), enu)
    mixed = np.trapezoid(geo.ibd_density(enu, 3.9), enu)
    assert mixed / pure_u == pytest.approx(1 + ratio, rel=1e-3)


def test_geoneutrino_chains_shape_endpoints_and_the_old_shape() -> None:
    """The complete shape ends at ²¹⁴Bi's 3.269 − 0.782 MeV like the old one; below the
    ²³⁴ᵐPa/²¹²Bi endpoints (~1.47 MeV prompt) it holds more of the rate (56 % vs 33 %)."""
    edges = np.array([0.8, 1.47, 2.495, 2.6, 12.0])
    new = BackgroundCategory("geo", 1.2, 0.3, "geoneutrino_chains").expected(edges, 1.0)
    old = BackgroundCategory("geo", 1.2, 0.3, "geoneutrino").expected(edges, 1.0)
    assert new[2:].sum() == pytest.approx(0.0, abs=1e-9)
    assert new.sum() == pytest.approx(1.2, rel=1e-3)
    assert new[0] / 1.2 == pytest.approx(0.555, abs=0.01)
    assert old[0] / 1.2 == pytest.approx(0.334, abs=0.01)
    with pytest.raises(ValueError, match="th_u_mass_ratio"):
        geo.ibd_density(np.array([2.0]), -1.0)
    with pytest.raises(ValueError, match="unknown decay chain"):
        geo.chain_spectrum(2.0, "K40")
