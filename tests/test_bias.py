"""Linearised fit bias (oscflow.stats.bias) against exact statements and a real Poisson fit."""

from __future__ import annotations

import numpy as np
import pytest
from iminuit import Minuit

from oscflow.stats.bias import central_jacobians, fit_bias, fit_bias_metrics, shift_in_sigma
from oscflow.stats.likelihood import poisson_terms

X = np.linspace(0.05, 1.0, 60)


def _model(theta: np.ndarray) -> np.ndarray:
    """(B, 2) → (B, 60): 500·a·exp(−b x), a smooth two-parameter spectrum."""
    t = np.atleast_2d(theta)
    return 500.0 * t[:, :1] * np.exp(-t[:, 1:2] * X[None, :])


def test_a_deviation_along_the_jacobian_is_minus_that_parameter_shift() -> None:
    rng = np.random.default_rng(1)
    jac = rng.normal(size=(40, 3))
    mu = rng.uniform(50, 500, size=40)
    step = np.array([0.3, -1.0, 2.0])
    cov = np.linalg.inv(jac.T @ (jac / mu[:, None]))
    got = shift_in_sigma(jac, mu, jac @ step)
    np.testing.assert_allclose(got, -step / np.sqrt(np.diag(cov)), rtol=1e-10)


def test_a_deviation_orthogonal_to_the_jacobian_shifts_nothing() -> None:
    rng = np.random.default_rng(2)
    jac = rng.normal(size=(40, 2))
    mu = rng.uniform(50, 500, size=40)
    d = rng.normal(size=40)
    w = 1 / mu
    proj = jac @ np.linalg.solve(jac.T @ (w[:, None] * jac), jac.T @ (w * d))
    assert np.abs(shift_in_sigma(jac, mu, d - proj)).max() < 1e-10


@pytest.mark.parametrize("priors", [None, np.array([np.inf, 0.05, 0.3])])
def test_the_pearson_chi2_of_the_deviation_bounds_every_shift_and_is_attained(priors) -> None:
    """|Δθ_p|/σ_p ≤ √(Σ δ²/μ) for any δ, free or with priors (what makes ``loss=pearson``
    bound the fit-bias gate), with equality for δ ∝ J F⁻¹ e_p when no parameter has a prior."""
    rng = np.random.default_rng(3)
    jac = rng.normal(size=(40, 3))
    mu = rng.uniform(50, 500, size=40)
    for _ in range(200):
        d = rng.normal(size=40) * rng.uniform(0.1, 3.0, size=40)
        bound = np.sqrt(np.sum(d**2 / mu))
        assert np.abs(shift_in_sigma(jac, mu, d, priors)).max() <= bound * (1 + 1e-12)
    if priors is None:
        cov = np.linalg.inv(jac.T @ (jac / mu[:, None]))
        for p in range(3):
            d = 0.7 * jac @ cov[:, p]
            got = abs(shift_in_sigma(jac, mu, d)[p])
            np.testing.assert_allclose(got, np.sqrt(np.sum(d**2 / mu)), rtol=1e-10)


def test_central_jacobian_equals_the_analytic_derivative() -> None:
    pts = np.array([[1.0, 2.0], [0.9, 2.5]])
    jac = central_jacobians(_model, pts, [1e-5, 1e-5])
    a, b = pts[:, :1], pts[:, 1:2]
    np.testing.assert_allclose(jac[:, :, 0], 500 * np.exp(-b * X), rtol=1e-8)
    np.testing.assert_allclose(jac[:, :, 1], -500 * a * X * np.exp(-b * X), rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        central_jacobians(_model, pts, [1e-5, 0.0])


@pytest.mark.parametrize("prior_b", [np.inf, 0.02])
def test_linearised_shift_matches_a_poisson_fit_with_the_biased_model(prior_b: float) -> None:
    """Asimov data from the truth, fitted (MIGRAD + HESSE) with truth + a 1 % ripple, b free or
    profiled with a Gaussian prior about its true value (a pull term, as the fit service puts
    on detector parameters; 0.02 is ~1/2 of b's statistical error): the fitted shift in σ
    equals the linearised one to a few per cent of itself."""
    truth = np.array([1.0, 2.0])
    data = _model(truth)[0]
    ripple = 0.01 * data * np.sin(9 * X)

    def cost(a: float, b: float) -> float:
        mu = _model(np.array([a, b]))[0] + ripple
        return float(poisson_terms(data, mu).sum() + ((b - truth[1]) / prior_b) ** 2)

    m = Minuit(cost, a=1.0, b=2.0)
    m.errordef = Minuit.LEAST_SQUARES
    m.migrad()
    m.hesse()
    assert m.valid
    fitted = (np.array(m.values) - truth) / np.array(m.errors)
    widths = [np.inf, prior_b]
    model = (data + ripple)[None, :]
    linear = fit_bias(_model, truth[None, :], data[None, :], model, [1e-5] * 2, widths)
    assert np.abs(fitted).max() > 0.05  # the ripple does bias the fit
    np.testing.assert_allclose(linear[0], fitted, rtol=0.05)
    if np.isfinite(prior_b):  # the prior matters: without it the linearised shift differs
        free = fit_bias(_model, truth[None, :], data[None, :], model, [1e-5] * 2)
        assert np.abs(free[0] - fitted).max() > 0.2 * np.abs(fitted).max()


def test_metrics_summarise_points_and_parameters() -> None:
    shifts = np.array([[0.01, -0.2], [0.05, 0.1]])
    m = fit_bias_metrics(shifts, ["a", "b"])
    assert m["fit_bias_max_sigma"] == 0.2
    assert m["fit_bias_max_sigma.a"] == 0.05
    assert m["fit_bias_rms_sigma"] == pytest.approx(np.sqrt(np.mean(shifts**2)))
