"""stats.woodbury: the low-rank CNP + covariance χ² against the plain Cholesky one
(stats.covariance), within its stated bound, on a Daya-Bay-like systematic covariance: 546
bins, a Jacobian J C Jᵀ of rank 180 whose spectrum spans 1e-8…1e7 events², plus rounding noise.

Tolerance: the stated bound ``rtol`` (|χ² − χ²ₖ| ≤ δ/(1−δ) χ²ₖ, stats/woodbury.py) plus the
plain Cholesky's own rounding, ≲ κ(V)·2⁻⁵² ≈ 1e-10 relative here (κ(V) ≈ λ_max(S)/min v ≈ 1e6).
"""

from __future__ import annotations

import numpy as np
import pytest

from oscflow.stats.covariance import CNPCovariance, chi2
from oscflow.stats.covariance import cnp_variance as cnp
from oscflow.stats.woodbury import LowRankCNPCovariance

K = 546
ROUNDING = 1e-10


def _daya_bay_like(seed: int = 1, rank: int = 180) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((K, rank)))
    lam = np.logspace(7, -8, rank)
    syst = (q * lam) @ q.T
    noise = rng.standard_normal((K, K)) * 1e-9
    syst += (noise + noise.T) / 2  # rounding-level, indefinite: as the official matrix
    expected = rng.uniform(40.0, 5.0e4, K)
    data = rng.poisson(expected).astype(float)
    return syst, data, expected


SYST, DATA, EXPECTED = _daya_bay_like()


@pytest.mark.parametrize("rtol", [1e-9, 1e-6, 1e-3])
def test_equals_the_plain_cholesky_within_its_bound(rtol: float) -> None:
    fast = LowRankCNPCovariance(SYST, rtol=rtol)
    plain = CNPCovariance(SYST)
    rng = np.random.default_rng(2)
    worst = 0.0
    for _ in range(5):
        mu = EXPECTED * (1.0 + 0.05 * rng.standard_normal(K))
        ours, ref = fast(DATA, mu).sum(), plain(DATA, mu).sum()
        assert fast.last_bound <= rtol
        assert abs(ours - ref) <= fast.last_bound * ours + ROUNDING * ref
        assert fast.total(DATA, mu) == pytest.approx(ours, rel=ROUNDING)  # a fit's cost
        worst = max(worst, abs(ours / ref - 1.0))
    assert fast.last_rank < K  # the structure is used: fewer components than bins
    if rtol >= 1e-3:
        assert worst > 10 * ROUNDING  # the truncation made a difference, within the bound


def test_fewer_components_for_a_looser_bound_and_the_terms_match() -> None:
    tight, loose = LowRankCNPCovariance(SYST, rtol=1e-9), LowRankCNPCovariance(SYST, rtol=1e-3)
    tight(DATA, EXPECTED)
    loose(DATA, EXPECTED)
    assert loose.last_rank < tight.last_rank < K
    # per-bin terms rᵢ(V⁻¹r)ᵢ, batched over leading axes, as the plain ones
    mus = EXPECTED * np.array([[1.0], [1.02], [0.97]])
    np.testing.assert_allclose(
        tight(DATA, mus), CNPCovariance(SYST)(DATA, mus), rtol=1e-6, atol=1e-6
    )
    assert tight(DATA, mus).shape == (3, K)


def test_full_rank_and_indefinite_systematics() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((K, K))
    full = a @ a.T  # full rank: every component kept, Woodbury exact
    fast = LowRankCNPCovariance(full)
    assert fast(DATA, EXPECTED).sum() == pytest.approx(chi2(DATA, EXPECTED, full), rel=1e-9)
    assert fast.last_rank == K
    indefinite = SYST.copy()
    indefinite[0, 0] -= 30.0  # a negative eigenvalue far beyond rounding: the plain Cholesky
    fast = LowRankCNPCovariance(indefinite)
    assert fast(DATA, EXPECTED).sum() == pytest.approx(chi2(DATA, EXPECTED, indefinite), rel=1e-12)
    assert fast.last_bound == 0.0
    assert fast.last_rank == K


def test_bad_input_is_refused() -> None:
    fast = LowRankCNPCovariance(SYST)
    with pytest.raises(ValueError, match="positive data"):
        fast(np.zeros(K), EXPECTED)
    with pytest.raises(ValueError, match="positive data"):
        fast.total(DATA, -EXPECTED)
    with pytest.raises(ValueError, match="545 bins but a 546"):
        fast(DATA[:-1], EXPECTED[:-1])
    with pytest.raises(ValueError, match="545 bins but a 546"):
        fast.total(DATA[:-1], EXPECTED[:-1])
    with pytest.raises(ValueError, match="symmetric square"):
        LowRankCNPCovariance(np.ones((3, 4)))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="rtol"):
        LowRankCNPCovariance(SYST, rtol=0.0)


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("make", [CNPCovariance, LowRankCNPCovariance])
def test_derivatives_equal_finite_differences(make: type, frozen: bool) -> None:
    """χ²'s gradient in μ and the curvature Jᵀ (∂²χ²/∂μ∂μ) J (stats/covariance.py) against
    central differences of the statistic itself along random directions: the CNP variance's
    μ dependence included (gradient) and the second derivative to ~1e-6 relative (the
    differences' truncation at a step of 1e-3 of the counts' scale)."""
    stat = make(SYST, frozen=EXPECTED) if frozen else make(SYST)
    rng = np.random.default_rng(5)
    mu = EXPECTED * (1.0 + 0.03 * rng.standard_normal(K))
    jac = EXPECTED[:, None] * rng.standard_normal((K, 3)) * 0.01
    value, grad, curv = stat.derivatives(DATA, mu, jac)
    assert value == pytest.approx(stat(DATA, mu).sum(), rel=1e-12)

    def f(t: np.ndarray) -> float:
        return float(stat(DATA, mu + jac @ t).sum())

    h = 1e-3
    eye = np.eye(3)
    fd_grad = np.array([(f(h * e) - f(-h * e)) / (2 * h) for e in eye])
    np.testing.assert_allclose(jac.T @ grad, fd_grad, rtol=1e-7)
    fd_curv = np.array(
        [
            [
                (f(h * (a + b)) - f(h * (a - b)) - f(h * (b - a)) + f(-h * (a + b))) / (4 * h * h)
                for b in eye
            ]
            for a in eye
        ]
    )
    np.testing.assert_allclose(curv, fd_curv, rtol=1e-5, atol=1e-6 * np.abs(curv).max())
    gauss_newton = 2.0 * jac.T @ np.linalg.solve(SYST + np.diag(stat.variance(DATA, mu)), jac)
    if frozen:  # a frozen variance: χ² is quadratic in μ, its curvature Gauss–Newton's
        np.testing.assert_allclose(curv, gauss_newton, rtol=1e-9)
        assert value == pytest.approx(CNPCovariance(SYST, EXPECTED)(DATA, mu).sum(), rel=1e-9)
        assert stat.variance(DATA, mu) == pytest.approx(cnp(DATA, EXPECTED))
    else:  # the variance's own curvature matters: without it the terms differ measurably
        assert np.abs(gauss_newton - curv).max() > 1e-4 * np.abs(curv).max()


def test_nearby_evaluations_reuse_the_factorisation_within_the_bound() -> None:
    """A fit's next point is close to its last: the χ² there comes from conjugate gradients
    preconditioned with the kept k×k factorisation (no new one), within the same stated
    bound, also after a change of the normalisation (the preconditioner is rescaled to the
    variance); a far point, or a wide matrix right-hand side, factorises afresh. The fit's
    cost (``total``, no K-vector) is the per-bin terms' sum."""
    fast, plain = LowRankCNPCovariance(SYST), CNPCovariance(SYST)
    rng = np.random.default_rng(8)
    fast(DATA, EXPECTED)
    assert fast.n_factorised == 1
    for norm, scale in ((1.0, 1e-4), (1.0, 1e-3), (1.0, 1e-2), (1.1, 1e-3), (0.9, 1e-2)):
        mu = norm * EXPECTED * (1.0 + scale * rng.standard_normal(K))
        total = fast.total(DATA, mu)
        assert fast.n_factorised == 1  # refined, not refactored
        assert 0 < fast.last_bound <= fast.rtol
        ours, ref = fast(DATA, mu).sum(), plain(DATA, mu).sum()
        assert total == pytest.approx(ours, rel=ROUNDING)
        assert abs(ours - ref) <= fast.last_bound * ours + ROUNDING * ref
    far = EXPECTED * rng.uniform(0.3, 3.0, K)
    ours, ref = fast(DATA, far).sum(), plain(DATA, far).sum()
    assert fast.n_factorised == 2
    assert abs(ours - ref) <= fast.last_bound * ours + ROUNDING * ref
    fast.derivatives(DATA, far * 1.001, rng.standard_normal((K, 3)))  # CG, column by column
    assert fast.n_factorised == 2
    fast.derivatives(DATA, far * 1.002, rng.standard_normal((K, 21)))  # wide: factorises
    assert fast.n_factorised == 3
