"""Test statistics against exact formulas and their known asymptotics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from oscflow.stats.likelihood import (
    STATISTICS,
    cnp_terms,
    count_problems,
    gaussian_pull,
    neyman_terms,
    pearson_terms,
    poisson_terms,
    statistic,
)


def test_poisson_is_minus_two_log_likelihood_ratio_to_the_saturated_model() -> None:
    n = np.array([0, 1, 3, 10, 57, 1000])
    mu = np.array([0.4, 2.5, 3.0, 7.2, 60.1, 1020.0])
    # −2 ln [Pois(n|μ) / Pois(n|n)] from scipy's pmf (Pois(0|0) = 1).
    ref = -2 * (sps.poisson.logpmf(n, mu) - sps.poisson.logpmf(n, np.maximum(n, 1e-300)))
    np.testing.assert_allclose(poisson_terms(n, mu), ref, rtol=1e-10, atol=1e-12)
    assert statistic("poisson", n, mu) == pytest.approx(ref.sum(), rel=1e-12)


def test_gaussian_statistics_match_their_definitions() -> None:
    n = np.array([4.0, 9.0, 0.0, 25.0])
    mu = np.array([5.0, 7.0, 2.0, 25.0])
    np.testing.assert_allclose(pearson_terms(n, mu), [1 / 5, 4 / 7, 4 / 2, 0.0])
    np.testing.assert_allclose(neyman_terms(n, mu), [1 / 4, 4 / 9, 4 / 1, 0.0])
    # CNP: σ² = 3/(1/n + 2/μ) (Ji et al. 2020); n = 0 takes the Poisson term 2μ.
    np.testing.assert_allclose(
        cnp_terms(n, mu), [1 / (3 / (1 / 4 + 2 / 5)), 4 / (3 / (1 / 9 + 2 / 7)), 4.0, 0.0]
    )


def test_cnp_approximates_the_likelihood_ratio_better_than_pearson_or_neyman() -> None:
    # Ji et al. 2020: the CNP bias relative to the Poisson likelihood ratio is O(ε³) smaller.
    n = np.full(200, 400.0)
    for eps in (0.05, 0.1, 0.2):
        mu = n * (1 + eps)
        llr = poisson_terms(n, mu).sum()
        d_cnp = abs(cnp_terms(n, mu).sum() - llr)
        assert d_cnp < 0.2 * abs(pearson_terms(n, mu).sum() - llr)
        assert d_cnp < 0.2 * abs(neyman_terms(n, mu).sum() - llr)


def test_poisson_statistic_of_toys_at_the_truth_has_mean_number_of_bins() -> None:
    # Wilks: 2 ln λ at the true μ is χ²(k) for large counts; mean k, variance 2k.
    rng = np.random.default_rng(3)
    k, n_toys = 50, 4000
    mu = np.linspace(80, 300, k)
    values = statistic("poisson", rng.poisson(mu, size=(n_toys, k)), mu)
    assert values.shape == (n_toys,)
    assert abs(values.mean() - k) < 4 * np.sqrt(2 * k / n_toys) + 0.1


def test_gaussian_pull_and_bad_sigma() -> None:
    assert gaussian_pull(0.0242, 0.0220, 0.0011) == pytest.approx(4.0)
    np.testing.assert_allclose(gaussian_pull([1.0, 3.0], [1.0, 1.0], [1.0, 2.0]), [0.0, 1.0])
    with pytest.raises(ValueError, match="sigma > 0"):
        gaussian_pull(1.0, 0.0, 0.0)


def test_unknown_statistic_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown statistic"):
        statistic("chi2", [1.0], [1.0])
    assert set(STATISTICS) == {"poisson", "pearson", "neyman", "cnp"}


@pytest.mark.parametrize(
    ("counts", "integer", "needle"),
    [
        ([1.0, np.nan, 2.0], False, "NaN"),
        ([1.0, -1.0], False, "negative"),
        ([1.0, 2.5], True, "not integers"),
        ([[1.0]], False, "1-D"),
    ],
)
def test_count_problems_name_the_bad_bins(counts, integer, needle) -> None:
    problem = count_problems(counts, integer)
    assert problem is not None
    assert needle in problem


def test_good_counts_have_no_problems() -> None:
    assert count_problems([0.0, 3.0, 17.0], integer=True) is None
    assert count_problems([0.5, 3.2], integer=False) is None
