"""Feldman–Cousins construction against the published tables of G. J. Feldman and
R. D. Cousins, Phys. Rev. D 57, 3873 (1998) ("FC"), and against its defining invariants.

Where the table values come from: FC Tables IV (90 % CL intervals), V (95 %) and XII (mean
upper limits, 90 %), transcribed from the paper. Entries also found in public test suites
were cross-checked there: Table IV's b = 3 column for n0 = 0…14 and its b = 0 column for
n0 = 0…5 (open-source FC re-implementations' tests), (n0 = 6, b = 3) → [0.15, 8.47] and
(n0 = 10, b = 0.5) → [5.00, 16.00] (gammapy's FC tests), Table XII's 90 % row (several
sensitivity scripts).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import poisson

from oscflow.stats import feldman_cousins as fc

# FC Table IV, 90 % CL, b = 3.0, n0 = 0..14: lower and upper ends.
TABLE_IV_B3_LOWER = [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.15, 0.89, 1.51, 1.88, 2.63, 3.04,
                     4.01, 4.42, 5.50]  # fmt: skip
TABLE_IV_B3_UPPER = [1.08, 1.88, 3.04, 4.42, 5.60, 6.99, 8.47, 9.53, 10.99, 12.30, 13.50,
                     14.81, 16.00, 17.05, 18.50]  # fmt: skip
# FC Table IV, 90 % CL, b = 0, n0 = 0..5.
TABLE_IV_B0 = [(0.00, 2.44), (0.11, 4.36), (0.53, 5.91), (1.10, 7.42), (1.47, 8.60),
               (1.84, 9.99)]  # fmt: skip
# FC Table IV, 90 % CL, rows n0 = 0 and n0 = 1 across b = 0, 0.5, ..., 4, 5 (upper ends; the
# lower ends are 0 except (n0 = 1, b = 0): 0.11). n0 = 0 for b ≥ 2 and n0 = 1 for b ≥ 4 are
# where the b-monotonicity correction acts.
TABLE_IV_B = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0]
TABLE_IV_N0_UPPER = [2.44, 1.94, 1.61, 1.33, 1.26, 1.18, 1.08, 1.06, 1.01, 0.98]
TABLE_IV_N1_UPPER = [4.36, 3.86, 3.36, 2.91, 2.53, 2.19, 1.88, 1.59, 1.39, 1.22]
# FC Table V, 95 % CL, b = 0, n0 = 0..5.
TABLE_V_B0 = [(0.00, 3.09), (0.05, 5.14), (0.36, 6.72), (0.82, 8.25), (1.37, 9.76),
              (1.84, 11.26)]  # fmt: skip
# FC Table XII, mean 90 % CL upper limit for background-only experiments.
TABLE_XII_B = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0,
               11.0, 12.0, 13.0, 14.0, 15.0]  # fmt: skip
TABLE_XII_90 = [2.44, 2.86, 3.28, 3.62, 3.94, 4.20, 4.42, 4.63, 4.83, 5.18, 5.53, 5.90, 6.18,
                6.49, 6.76, 7.02, 7.28, 7.51, 7.75, 7.99]  # fmt: skip


def test_table_iv_b3_column() -> None:
    lower, upper = fc.limits(np.arange(15), 3.0, cl=0.90)
    np.testing.assert_array_equal(np.round(lower, 2), TABLE_IV_B3_LOWER)
    np.testing.assert_array_equal(np.round(upper, 2), TABLE_IV_B3_UPPER)


def test_table_iv_b0_column_and_n10_b05() -> None:
    lower, upper = fc.limits(np.arange(6), 0.0, cl=0.90)
    np.testing.assert_array_equal(np.round(np.c_[lower, upper], 2), TABLE_IV_B0)
    assert np.round(fc.interval(10, 0.5), 2).tolist() == [5.00, 16.00]


def test_table_iv_rows_n0_0_and_1_across_b_with_the_monotonicity_correction() -> None:
    b = np.array(TABLE_IV_B)
    lower, upper = fc.limits(np.array([[0], [1]]), b[None, :], cl=0.90)
    np.testing.assert_array_equal(np.round(upper[0], 2), TABLE_IV_N0_UPPER)
    np.testing.assert_array_equal(np.round(upper[1], 2), TABLE_IV_N1_UPPER)
    assert np.round(lower[1, 0], 2) == 0.11
    assert np.all(lower[:, 1:] == 0.0)


def test_without_the_correction_upper_limits_rise_with_b() -> None:
    """The pathology FC correct (Sec. IV.B): uncorrected, n0 = 0 gives 1.08 at b = 2 but 1.18
    at b = 2.5; corrected, limits never rise with b."""
    _, raw = fc.limits(0, np.array([2.0, 2.5]), monotone=False)
    assert np.round(raw, 2).tolist() == [1.08, 1.18]
    b = np.arange(0.0, 6.0, 0.25)
    upper = fc.upper_limit(np.array([[0], [1], [2]]), b[None, :])
    assert np.all(np.diff(upper, axis=1) <= 1e-9)


def test_table_v_95_percent_b0_column() -> None:
    lower, upper = fc.limits(np.arange(6), 0.0, cl=0.95)
    np.testing.assert_array_equal(np.round(np.c_[lower, upper], 2), TABLE_V_B0)


@pytest.mark.parametrize("b", [0.5, 3.0])
def test_coverage_is_at_least_the_confidence_level(b: float) -> None:
    """Neyman construction: for every true μ, P(μ ∈ [μ1(n), μ2(n)] | μ + b) ≥ CL."""
    n = np.arange(0, 41)
    lower, upper = fc.limits(n, b, cl=0.9)
    for mu in np.linspace(0.0, 12.0, 97):
        covered = (lower <= mu + 1e-9) & (mu <= upper + 1e-9)
        assert poisson.pmf(n[covered], mu + b).sum() >= 0.9 - 1e-6, mu


@pytest.mark.slow
def test_table_xii_mean_upper_limits() -> None:
    """FC averaged their 2-decimal Table IV limits: with decimals=2 every entry is reproduced.
    Unrounded, the exact averages differ from the printed value by at most one unit in the
    last digit (b = 1: 3.2740 vs 3.28, b = 4: 4.8243 vs 4.83, b = 9: 6.4954 vs 6.49)."""
    got = [fc.sensitivity(b, 0.9, decimals=2) for b in TABLE_XII_B]
    np.testing.assert_array_equal(np.round(got, 2), TABLE_XII_90)
    exact = [fc.sensitivity(b) for b in (1.0, 4.0, 9.0, 15.0)]
    np.testing.assert_allclose(exact, [3.2740, 4.8243, 6.4954, 7.9908], atol=1e-3)


def test_median_upper_limit_is_the_limit_at_the_median_count() -> None:
    """Poisson(3) has median 3, so the median limit is Table IV's (n0 = 3, b = 3): 4.42;
    at b = 0 every experiment sees 0: 2.44."""
    assert round(fc.median_upper_limit(3.0), 2) == 4.42
    assert round(fc.median_upper_limit(0.0), 2) == 2.44


def test_large_background_mean_limit_and_gaussian_approximation() -> None:
    """At b = 1000 the strided mean agrees with the full sum over counts; the exact FC mean
    limit is about 1.77 √b, well above seed 003's 1.28 √b (which is the *median* of a
    one-sided Gaussian upper limit, not FC's two-sided unified interval)."""
    strided = fc.sensitivity(1000.0)
    fc_full = fc.STRIDE_FROM_B
    try:
        fc.STRIDE_FROM_B = np.inf
        full = fc.sensitivity(1000.0)
    finally:
        fc.STRIDE_FROM_B = fc_full
    assert strided == pytest.approx(full, rel=5e-4)
    assert 1.6 < full / np.sqrt(1000.0) < 1.9
    assert fc.gaussian_upper_limit(1000.0, z=1.28) == pytest.approx(40.477, abs=1e-3)
    assert fc.gaussian_upper_limit(100.0) == pytest.approx(12.8155, abs=1e-4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fc.interval(3, -1.0), "background"),
        (lambda: fc.interval(-1, 1.0), "observed counts"),
        (lambda: fc.interval(2.5, 1.0), "observed counts"),  # type: ignore[arg-type]
        (lambda: fc.sensitivity(float("nan")), "background"),
        (lambda: fc.sensitivity(1.0, cl=1.2), "confidence level"),
        (lambda: fc.gaussian_upper_limit(-4.0), "background"),
    ],
)
def test_bad_input(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
