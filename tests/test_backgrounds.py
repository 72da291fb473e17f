"""Background categories: normalisation, shapes, bad configuration."""

from __future__ import annotations

import numpy as np
import pytest

from oscflow.physics.backgrounds import SHAPES, BackgroundCategory


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
