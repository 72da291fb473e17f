"""The batched fitter against exact solutions and against iminuit (MIGRAD + HESSE).

References: closed-form weighted least squares (Neyman χ² of a linear model, a Gaussian prior
included), the closed-form Baker–Cousins fit of normalisations of disjoint templates, and
iminuit on Poisson toys of a nonlinear reactor-like spectrum (tests/toy_reactor.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import toy_reactor as toy
from oscflow.stats.batched_fit import BatchFitResult, fit_batch
from oscflow.stats.likelihood import DERIVATIVES, TERMS

TOY_KW = {
    "lower": toy.LOWER,
    "upper": toy.UPPER,
    "prior_center": toy.PRIOR_CENTER,
    "prior_sigma": toy.PRIOR_SIGMA,
}
TOY_START = np.array([1.01, 0.07, 2.6])


Model = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def linear_model(a: np.ndarray) -> Model:
    """μ = Aθ, ∂μ/∂θ = A."""

    def model(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return theta @ a.T, np.broadcast_to(a, (theta.shape[0], *a.shape)).copy()

    return model


def test_derivatives_of_every_statistic_match_finite_differences() -> None:
    n = np.array([0.0, 1.0, 3.0, 10.0, 57.0, 1000.0])
    mu = np.array([0.4, 2.5, 3.0, 7.2, 60.1, 1020.0])
    h = 1e-3 * mu
    for name, terms in TERMS.items():
        d1, d2 = DERIVATIVES[name](n, mu)
        fd1 = (terms(n, mu + h) - terms(n, mu - h)) / (2 * h)
        fd2 = (terms(n, mu + h) - 2 * terms(n, mu) + terms(n, mu - h)) / h**2
        np.testing.assert_allclose(d1, fd1, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(d2, fd2, rtol=1e-5, atol=1e-9, err_msg=name)


def test_neyman_linear_model_with_prior_is_weighted_least_squares() -> None:
    """Neyman χ² of μ = Aθ plus a pull on θ₂ is quadratic: the minimum and the covariance are
    those of weighted least squares, θ̂ = (AᵀWA + Λ)⁻¹(AᵀWn + Λc), cov = (AᵀWA + Λ)⁻¹."""
    rng = np.random.default_rng(11)
    a = rng.uniform(5.0, 50.0, size=(30, 3))
    truth = np.array([2.0, 1.0, 0.5])
    n = rng.poisson(a @ truth, size=(6, 30)).astype(float)
    c, s = np.array([np.nan, np.nan, 0.6]), np.array([np.nan, np.nan, 0.05])
    res = fit_batch(
        linear_model(a),
        n,
        [1.0, 1.0, 1.0],
        prior_center=c,
        prior_sigma=s,
        statistic="neyman",
        tolerance=1e-10,
    )
    lam = np.diag([0.0, 0.0, 1 / 0.05**2])
    for k in range(n.shape[0]):
        info = a.T @ (a / n[k][:, None]) + lam
        best = np.linalg.solve(info, (a / n[k][:, None]).T @ n[k] + lam @ [0.0, 0.0, 0.6])
        np.testing.assert_allclose(res.values[k], best, rtol=1e-8)
        np.testing.assert_allclose(res.covariance[k], np.linalg.inv(info), rtol=1e-8)
    assert res.valid.all()
    assert (res.n_iter <= 3).all()  # quadratic: Gauss–Newton is Newton


def test_poisson_normalisations_of_disjoint_templates_are_exact() -> None:
    """μ = s₁t₁ + s₂t₂ with disjoint templates: ∂χ²/∂sᵢ = 2Σ(tᵢ − n/sᵢ) over template i's bins
    gives ŝᵢ = Σnᵢ/Σtᵢ; ½∂²χ²/∂sᵢ² = Σnᵢ/ŝᵢ² so σᵢ = ŝᵢ/√Σnᵢ = √(ŝᵢ/Σtᵢ), uncorrelated.
    Sparse toys (many n = 0 bins) exercise the n ln(n/μ) = 0 convention."""
    rng = np.random.default_rng(5)
    t1 = np.r_[rng.uniform(0.1, 2.0, 12), np.zeros(8)]
    t2 = np.r_[np.zeros(12), rng.uniform(0.1, 2.0, 8)]
    a = np.stack([t1, t2], axis=1)
    n = rng.poisson(a @ [1.5, 3.0], size=(40, 20)).astype(float)
    assert (n == 0).mean() > 0.1
    res = fit_batch(linear_model(a), n, [1.0, 1.0], lower=[0, 0], tolerance=1e-10)
    s_hat = np.stack([n[:, :12].sum(1) / t1.sum(), n[:, 12:].sum(1) / t2.sum()], axis=1)
    np.testing.assert_allclose(res.values, s_hat, rtol=1e-8)
    np.testing.assert_allclose(res.errors, np.sqrt(s_hat / [t1.sum(), t2.sum()]), rtol=1e-8)
    np.testing.assert_allclose(res.covariance[:, 0, 1], 0.0, atol=1e-12)
    mu = s_hat @ a.T
    log = np.where(n > 0, n * np.log(np.where(n > 0, n, 1) / mu), 0.0)
    np.testing.assert_allclose(res.fval, 2 * (mu - n + log).sum(1), rtol=1e-10)
    assert res.valid.all()
    assert not res.at_limit.any()

    # An upper bound below ŝ₁: s₁ ends on it (flagged), s₂ is still exact (disjoint).
    cap = 0.8 * s_hat[:, 0]
    upper = np.stack([cap, np.full(40, np.inf)], axis=1)
    start = np.stack([0.5 * cap, np.ones(40)], axis=1)
    bounded = fit_batch(linear_model(a), n, start, upper=upper, tolerance=1e-10)
    np.testing.assert_array_equal(bounded.values[:, 0], cap)
    np.testing.assert_allclose(bounded.values[:, 1], s_hat[:, 1], rtol=1e-8)
    assert bounded.at_limit.all()
    assert bounded.converged.all()


def test_nonlinear_toys_agree_with_iminuit_migrad_hesse() -> None:
    """200 Poisson toys of the reactor toy (3 parameters, a prior on norm, bounds on the other
    two): best fits within 0.01σ and errors within 1 % of iminuit for ≥ 99 % of the fits.

    Both minimisers stop on an EDM criterion; EDM ≈ d² for a distance of d standard
    deviations, so at MINUIT's default (EDM < 2e-4) either may sit up to ≈ 0.014σ from the
    minimum. The reference runs at tol 1e-4 (EDM < 2e-8) and this fitter at tolerance 0.01
    (EDM < 2e-5, one more iteration than its default) to resolve 0.01σ.
    """
    n = toy.toys(200, seed=1)
    res = fit_batch(toy.model, n, TOY_START, tolerance=0.01, **TOY_KW)
    ref = [toy.minuit_fit(n[k], TOY_START, tol=1e-4) for k in range(len(n))]
    assert all(m.valid for m in ref)
    values = np.array([m.values[:] for m in ref])
    errors = np.array([m.errors[:] for m in ref])
    dev = np.abs(res.values - values) / errors
    rel = np.abs(res.errors / errors - 1)
    good = (dev.max(1) < 0.01) & (rel.max(1) < 0.01)
    assert good.mean() >= 0.99, (dev.max(0), rel.max(0))
    assert res.converged.all()
    assert not res.at_limit.any()
    np.testing.assert_allclose(res.fval, [m.fval for m in ref], rtol=1e-6)
    # The exact Hessian matters: the Fisher curvature alone misses 1 % on some fits.
    fisher = fit_batch(toy.model, n, TOY_START, tolerance=0.01, hessian="fisher", **TOY_KW)
    np.testing.assert_array_equal(fisher.values, res.values)
    assert (np.abs(fisher.errors / errors - 1).max(1) > 0.01).any()
    # μ is linear in norm: declared so, the exact Hessian skips its model call; the mixed terms
    # then come from the other parameters' differences alone (no average with norm's exact
    # one): the same errors to the differences' truncation
    lin = fit_batch(toy.model, n, TOY_START, tolerance=0.01, linear=[True, False, False], **TOY_KW)
    np.testing.assert_allclose(lin.errors, res.errors, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(lin.n_calls, res.n_calls - 1)


def test_fixed_parameter_stays_fixed_and_the_others_match_iminuit() -> None:
    n = toy.toys(10, seed=2)
    start = np.array([1.03, 0.07, 2.6])
    res = fit_batch(toy.model, n, start, fixed=[True, False, False], tolerance=0.01, **TOY_KW)
    assert (res.values[:, 0] == 1.03).all()
    assert (res.errors[:, 0] == 0).all()
    assert (res.covariance[:, 0, :] == 0).all()
    assert (res.covariance[:, :, 0] == 0).all()
    for k in range(len(n)):
        m = toy.minuit_fit(n[k], start, tol=1e-4, fix="norm")
        np.testing.assert_allclose(res.values[k, 1:], m.values[1:], atol=0.01 * m.errors[2])
        np.testing.assert_allclose(res.errors[k, 1:], m.errors[1:], rtol=0.01)


def test_chunking_gives_identical_results() -> None:
    n = toy.toys(37, seed=3)
    one = fit_batch(toy.model, n, TOY_START, chunk=1000, **TOY_KW)
    calls: list[int] = []

    def counting(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(theta.shape[0])
        return toy.model(theta)

    many = fit_batch(counting, n, TOY_START, chunk=5, **TOY_KW)
    assert max(calls) == 5
    for name in ("values", "errors", "covariance", "fval", "edm", "n_iter", "n_calls"):
        np.testing.assert_array_equal(getattr(many, name), getattr(one, name), err_msg=name)
    for name, flag in one.flags.items():
        np.testing.assert_array_equal(many.flags[name], flag, err_msg=name)


def test_fits_that_cannot_converge_are_flagged_and_do_not_disturb_the_others() -> None:
    n = toy.toys(6, seed=4)
    start = np.tile(TOY_START, (6, 1))
    start[2] = [1.0, 0.9, 0.6]  # far away: not within two iterations
    res = fit_batch(toy.model, n, start, max_iter=2, **TOY_KW)
    assert not res.converged[2]
    assert res.reached_max_iter[2]
    assert not res.valid[2]
    assert res.n_iter[2] == 2

    def broken(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu, jac = toy.model(theta)
        mu[theta[:, 0] > 1.05] = np.nan  # no expectation there
        return mu, jac

    start[2] = [1.06, 0.08, 2.5]
    res = fit_batch(broken, n, start, **TOY_KW)
    assert res.stalled.tolist() == [False, False, True, False, False, False]
    assert res.valid.tolist() == [True, True, False, True, True, True]
    alone = fit_batch(toy.model, n[[0, 1, 3, 4, 5]], TOY_START, **TOY_KW)
    np.testing.assert_array_equal(res.values[[0, 1, 3, 4, 5]], alone.values)
    text = res.summary()
    assert "5 valid, 1 not valid" in text
    assert "stalled 1" in text


def test_wrong_model_shapes_and_inputs_are_refused() -> None:
    n = toy.toys(2, seed=5)
    with pytest.raises(ValueError, match="must return mu"):
        fit_batch(lambda th: (toy.model(th)[0], toy.model(th)[1][..., :2]), n, TOY_START)
    with pytest.raises(ValueError, match="within"):
        fit_batch(toy.model, n, [1.0, 1.5, 2.5], **TOY_KW)
    with pytest.raises(ValueError, match="statistic"):
        fit_batch(toy.model, n, TOY_START, statistic="gauss")
    assert isinstance(fit_batch(toy.model, n[0], TOY_START, **TOY_KW), BatchFitResult)


def test_a_parameter_the_data_cannot_constrain_fails_hesse() -> None:
    """A third parameter with no effect on μ: the Hessian is singular, the fit is not valid and
    its errors are NaN (never a finite number that looks like a result)."""
    rng = np.random.default_rng(8)
    a = np.c_[rng.uniform(1, 5, size=(10, 2)), np.zeros(10)]
    n = rng.poisson(a @ [2.0, 3.0, 0.0], size=(3, 10)).astype(float)
    res = fit_batch(linear_model(a), n, [1.0, 1.0, 0.0], lower=[0, 0, -1], upper=[10, 10, 1])
    assert res.hesse_failed.all()
    assert not res.valid.any()
    assert np.isnan(res.errors).all()
    assert "hesse_failed 3" in res.summary()
    fixed = fit_batch(linear_model(a), n, [1.0, 1.0, 0.0], fixed=[False, False, True])
    assert fixed.valid.all()
    np.testing.assert_allclose(fixed.values, res.values, rtol=1e-6)
