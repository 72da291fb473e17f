"""Linearised fit bias: how far a model error δ moves a binned maximum-likelihood fit.

For Poisson (or Pearson-χ²) fits of counts with expectation μ(θ) and Jacobian J = ∂μ/∂θ, an
error δ in the predicted spectrum shifts the Asimov best fit, to first order in δ, by

    Δθ = −F⁻¹ Jᵀ W δ,  F = Jᵀ W J,  W = diag(1/μ)

(the Gauss–Newton step of the likelihood around the truth; e.g. G. Cowan, *Statistical Data
Analysis*, OUP 1998, §7.5, least squares with a biased model). F⁻¹ is the Cramér–Rao
covariance, so Δθ/√diag(F⁻¹) is the shift in units of the parameter's statistical error —
what a surrogate's referee check measures with full fits, here at any number of points for
the price of a Jacobian. Parameters with a Gaussian prior (a pull term ((θ − c)/s)² in
−2 ln L, as the fit service profiles detector parameters) add 1/s² to F's diagonal: the shift
and σ are then those of the fit that profiles them with their priors. No other nuisance
parameters and no backgrounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def shift_in_sigma(
    jacobian: ArrayLike,
    expected: ArrayLike,
    deviation: ArrayLike,
    prior_widths: ArrayLike | None = None,
) -> FloatArray:
    """Δθ/σ(θ) per parameter for one point: ``jacobian`` (K, P), ``expected`` μ (K, counts),
    ``deviation`` δ = model − truth (K, counts), ``prior_widths`` (P,) the Gaussian priors'
    widths s (``inf`` for a parameter without one; None: none has one). A model that predicts
    too much where raising θ would (δ ∥ J) pulls the fit down: Δθ has the opposite sign. Bins
    with μ ≤ 0 carry no information."""
    j = np.asarray(jacobian, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    w = np.divide(1.0, mu, out=np.zeros_like(mu), where=mu > 0)
    fisher = j.T @ (w[:, None] * j)
    if prior_widths is not None:
        fisher += np.diag(1.0 / np.asarray(prior_widths, dtype=np.float64) ** 2)
    cov = np.linalg.inv(fisher)
    shift = -cov @ (j.T @ (w * np.asarray(deviation, dtype=np.float64)))
    in_sigma: FloatArray = shift / np.sqrt(np.diag(cov))
    return in_sigma


def central_jacobians(
    predict: Callable[[FloatArray], FloatArray], points: ArrayLike, steps: Sequence[float]
) -> FloatArray:
    """∂μ/∂θ (N, K, P) by central differences θ ± h: one batched call of ``predict``
    ((M, P) → (M, K)) on the 2·N·P shifted points."""
    x = np.asarray(points, dtype=np.float64)
    n, p = x.shape
    h = np.asarray(steps, dtype=np.float64)
    if h.shape != (p,) or np.any(h <= 0):
        msg = f"steps must be {p} positive numbers, got {list(h)}"
        raise ValueError(msg)
    shifted = np.repeat(x[:, None, None, :], 2, axis=1).repeat(p, axis=2)  # (N, 2, P, P)
    eye = np.eye(p) * h
    shifted[:, 0] += eye
    shifted[:, 1] -= eye
    mu = np.asarray(predict(shifted.reshape(-1, p)), dtype=np.float64).reshape(n, 2, p, -1)
    return np.moveaxis((mu[:, 0] - mu[:, 1]) / (2 * h[:, None]), 1, 2)


def fit_bias(
    predict: Callable[[FloatArray], FloatArray],
    points: ArrayLike,
    truth: ArrayLike,
    model: ArrayLike,
    steps: Sequence[float],
    prior_widths: ArrayLike | None = None,
) -> FloatArray:
    """Δθ/σ (N, P) at each point for a model (N, K) against the truth (N, K); the Jacobian
    comes from ``predict`` (the exact model, or the surrogate itself: the shift is first order
    in δ, so either Jacobian gives it to that order). ``prior_widths``: as in
    ``shift_in_sigma``."""
    jac = central_jacobians(predict, points, steps)
    t = np.asarray(truth, dtype=np.float64)
    d = np.asarray(model, dtype=np.float64) - t
    return np.stack([shift_in_sigma(jac[i], t[i], d[i], prior_widths) for i in range(len(t))])


def fit_bias_metrics(shifts: ArrayLike, names: Sequence[str]) -> dict[str, float]:
    """``fit_bias_max_sigma`` (max |Δθ/σ| over points and parameters), ``fit_bias_rms_sigma``,
    and the max per parameter (``fit_bias_max_sigma.<name>``)."""
    a = np.abs(np.asarray(shifts, dtype=np.float64))
    out = {
        "fit_bias_max_sigma": float(a.max()),
        "fit_bias_rms_sigma": float(np.sqrt(np.mean(a**2))),
    }
    out.update({f"fit_bias_max_sigma.{k}": float(a[:, i].max()) for i, k in enumerate(names)})
    return out
