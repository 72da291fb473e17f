"""Detector Monte Carlo: energy scale, resolution, non-Gaussian response, re-reconstruction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from oscflow.physics.detector import (
    DetectorConfig,
    light_yield,
    reconstruct,
    simulate_events,
    visible_energy,
)
from oscflow.physics.ibd import PROMPT_OFFSET


@pytest.fixture(scope="module")
def mono() -> tuple[DetectorConfig, object]:
    """400k events at E_ν = 4 MeV."""
    cfg = DetectorConfig()
    ev = simulate_events(np.full(400_000, 4.0), cfg, np.random.default_rng(3))
    return cfg, ev


def test_resolution_matches_the_abc_formula() -> None:
    """σ/E = √((a/√E)² + b² + (c/E)²): 3.0 % at 1 MeV for JUNO's a, b, c (seed 001: '3 % at
    1 MeV')."""
    cfg = DetectorConfig()
    assert cfg.sigma(1.0) / 1.0 == pytest.approx(np.sqrt(0.0261**2 + 0.0082**2 + 0.0123**2))
    assert cfg.sigma(1.0) == pytest.approx(0.0300, abs=0.0005)


def test_prompt_energy_peak_is_enu_minus_0782_times_nonlinearity(mono) -> None:
    """Most events deposit everything: the median E_vis is (E_ν − 0.782 MeV)·f_NL within the
    recoil spread (~tens of keV)."""
    cfg, ev = mono
    e_dep = 4.0 - PROMPT_OFFSET
    assert np.median(ev.e_vis) == pytest.approx(e_dep * cfg.nonlinearity(e_dep), abs=0.03)


def test_reconstructed_width_is_the_resolution(mono) -> None:
    """Core width (robust, from the interquartile range) equals σ(E) within 5 %."""
    cfg, ev = mono
    e_rec = reconstruct(ev.e_vis, ev.z, cfg)
    q25, q75 = np.percentile(e_rec, [25, 75])
    robust_sigma = (q75 - q25) / 1.349
    assert robust_sigma == pytest.approx(float(cfg.sigma(np.median(e_rec))), rel=0.05)


def test_response_is_not_gaussian(mono) -> None:
    """Recoil kinematics, γ leakage and the position-dependent light yield make the response to
    a fixed E_ν non-Gaussian: negative skew and positive excess kurtosis, each many standard
    errors (√(6/n), √(24/n)) away from the Gaussian's 0. A Gaussian smearing is not exact."""
    cfg, ev = mono
    e_rec = reconstruct(ev.e_vis, ev.z, cfg)
    n = e_rec.size
    assert stats.skew(e_rec) < -10 * np.sqrt(6 / n)
    assert stats.kurtosis(e_rec) > 10 * np.sqrt(24 / n)
    assert (ev.radius <= cfg.fiducial_radius).all()
    # The light-yield map is what it claims: mean-free quadratic part, deficit at the edge.
    r = np.array([0.0, cfg.fiducial_radius])
    ly = light_yield(r, cfg)
    assert ly[1] < ly[0] * (1 + cfg.nonuniformity)
    assert ly[1] == pytest.approx((1 + 0.4 * cfg.nonuniformity) * (1 + cfg.edge_response))


def test_escale_rereconstructs_every_event_exactly(mono) -> None:
    """Common random numbers: E_rec(s) = s·E_vis + σ(s·E_vis)·z, event by event."""
    cfg, ev = mono
    shifted = dataclasses.replace(cfg, escale=1.01, res_a=0.03)
    e = reconstruct(ev.e_vis[:1000], ev.z[:1000], shifted)
    expected = 1.01 * ev.e_vis[:1000] + shifted.sigma(1.01 * ev.e_vis[:1000]) * ev.z[:1000]
    np.testing.assert_allclose(e, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("field", "value"),
    [("res_a", -0.01), ("escale", 0.0), ("fiducial_radius", 20.0), ("gamma_attenuation", 0.0)],
)
def test_bad_detector_parameters(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        DetectorConfig(**{field: value})


def test_visible_energy_is_the_simulation_under_other_parameters() -> None:
    """Common random numbers: the non-linearity and light-yield parameters consume no random
    numbers, so re-deriving E_vis from the stored E_dep and radius under changed parameters
    gives exactly what a simulation with those parameters and the same seed gives."""
    enu = np.random.default_rng(0).uniform(2.0, 9.0, 20_000)
    nominal = DetectorConfig()
    changed = dataclasses.replace(nominal, nl_p1=0.13, nl_p2=0.7, nonuniformity=0.02)
    ev = simulate_events(enu, nominal, np.random.default_rng(5))
    ev_changed = simulate_events(enu, changed, np.random.default_rng(5))
    np.testing.assert_array_equal(visible_energy(ev, nominal), ev.e_vis)
    np.testing.assert_array_equal(visible_energy(ev, changed), ev_changed.e_vis)
    assert np.abs(ev_changed.e_vis / ev.e_vis - 1).max() > 0.005
