"""The mass-ordering test's statistics (stats/mass_ordering.py) against the exact Gaussian
results of Blennow, Coloma, Huber, Schwetz, JHEP 03 (2014) 028: for T ~ N(±T₀, 2√T₀) the median
sensitivity is √T₀ and the probability to reject the wrong ordering at z σ is Φ(√T₀ − z)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from oscflow.stats.mass_ordering import (
    gaussian_median_sensitivity,
    gaussian_rejection_probability,
    nmo_sensitivity,
    reject_wrong_ordering,
)


@pytest.mark.parametrize("t0", [4.0, 9.0, 16.0])
def test_toys_reproduce_the_gaussian_results(t0: float) -> None:
    rng = np.random.default_rng(int(t0))
    n = 400_000
    sd = 2 * np.sqrt(t0)
    no, io = rng.normal(t0, sd, n), rng.normal(-t0, sd, n)
    result = nmo_sensitivity(no, io)
    for side in ("true_normal", "true_inverted"):
        r = result[side]
        assert r["median_sigma_gaussian"] == pytest.approx(np.sqrt(t0), abs=0.01)
        # the empirical tail beyond 4σ holds ~13 of 4e5 toys: its Z is good to ~0.1
        assert r["median_sigma_empirical"] == pytest.approx(np.sqrt(t0), abs=0.06 * np.sqrt(t0))
        assert r["critical_value_method"] == "empirical"
        assert r["critical_value"] == pytest.approx(-t0 + 3 * sd, abs=0.05 * sd)
        assert r["rejection_probability"] == pytest.approx(
            gaussian_rejection_probability(t0), abs=0.01
        )
    assert gaussian_median_sensitivity(t0) == np.sqrt(t0)
    assert gaussian_rejection_probability(9.0) == pytest.approx(0.5)


def test_few_toys_use_the_gaussian_tail_and_flag_a_bound() -> None:
    rng = np.random.default_rng(3)
    t0, sd = 25.0, 10.0
    no, io = rng.normal(t0, sd, 300), rng.normal(-t0, sd, 300)
    r = reject_wrong_ordering(no, io)
    # 300 × 1.35e-3 < 10 toys beyond 3σ: T_c from the fitted Gaussian
    assert r["critical_value_method"] == "gaussian"
    mu, s = np.mean(io), np.std(io, ddof=1)
    assert r["critical_value"] == pytest.approx(mu + stats.norm.isf(stats.norm.sf(3)) * s)
    # the true median (≈ 5σ of the wrong distribution) is beyond every wrong toy: a bound
    assert r["median_sigma_is_lower_bound"]
    assert r["median_sigma_empirical"] == pytest.approx(stats.norm.isf(1 / 300))
    assert r["median_sigma_gaussian"] > 4


def test_bad_toys_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="t_wrong: 1 finite"):
        reject_wrong_ordering([1.0, 2.0], [np.nan, 3.0])
