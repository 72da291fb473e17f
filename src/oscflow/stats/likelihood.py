"""Test statistics of binned counts n against expectations μ, and Gaussian pull terms.

All are "χ²-like": −2 ln of a likelihood ratio (or its Gaussian approximation), so that a
change of 1 is one standard deviation for one parameter.

- ``poisson``: Baker–Cousins Poisson likelihood ratio (S. Baker, R.D. Cousins, Nucl. Instrum.
  Meth. 221 (1984) 437): 2 Σ [μ − n + n ln(n/μ)], the n = 0 term being 2μ.
- ``pearson``: Σ (n − μ)²/μ.
- ``neyman``: Σ (n − μ)²/n; a bin with n = 0 has no Neyman variance: it uses 1 (the common
  convention, e.g. PDG Statistics review) — prefer ``cnp`` or ``poisson`` for sparse bins.
- ``cnp``: combined Neyman–Pearson χ² (X. Ji, W. Gu, X. Qian, H. Wei, C. Zhang, Nucl. Instrum.
  Meth. A 961 (2020) 163677): Σ (n − μ)² / [3 / (1/n + 2/μ)]. Its variance vanishes at n = 0;
  such bins use the Poisson term 2μ (our convention, the n → 0 limit of the likelihood ratio).

Each ``*_terms`` function returns the per-bin contributions (for residual plots); ``statistic``
sums them; ``DERIVATIVES`` holds their first and second derivatives with respect to μ (for
gradient-based fits, e.g. ``stats.batched_fit``). Gaussian pulls: ((x − x₀)/σ)².

A statistic that is not a sum of per-bin terms in μ (a covariance χ², ``stats.covariance``)
offers its derivatives through ``Differentiable``; ``differentiable`` finds them for any
statistic (the per-bin ones through ``DERIVATIVES``), so a fitter can hand MIGRAD and HESSE
the exact gradient and Hessian of its cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
TINY = 1e-300  # floor for μ inside logarithms and divisions (μ ≤ 0 is caught by callers)


def poisson_terms(data: ArrayLike, expected: ArrayLike) -> FloatArray:
    """Baker–Cousins terms 2[μ − n + n ln(n/μ)] (n = 0: 2μ), broadcast over leading axes."""
    n = np.asarray(data, dtype=np.float64)
    mu = np.maximum(np.asarray(expected, dtype=np.float64), TINY)
    safe_n = np.where(n > 0, n, 1.0)
    log_term = np.where(n > 0, n * np.log(safe_n / mu), 0.0)
    return 2.0 * (mu - n + log_term)


def pearson_terms(data: ArrayLike, expected: ArrayLike) -> FloatArray:
    """(n − μ)²/μ."""
    n = np.asarray(data, dtype=np.float64)
    mu = np.maximum(np.asarray(expected, dtype=np.float64), TINY)
    return (n - mu) ** 2 / mu


def neyman_terms(data: ArrayLike, expected: ArrayLike) -> FloatArray:
    """(n − μ)²/n, with variance 1 where n = 0."""
    n = np.asarray(data, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    return (n - mu) ** 2 / np.where(n > 0, n, 1.0)


def cnp_terms(data: ArrayLike, expected: ArrayLike) -> FloatArray:
    """(n − μ)² (1/n + 2/μ)/3 (Ji et al. 2020); 2μ where n = 0."""
    n = np.asarray(data, dtype=np.float64)
    mu = np.maximum(np.asarray(expected, dtype=np.float64), TINY)
    safe_n = np.where(n > 0, n, 1.0)
    return np.where(n > 0, (n - mu) ** 2 * (1.0 / safe_n + 2.0 / mu) / 3.0, 2.0 * mu)


TermsFn = Callable[[ArrayLike, ArrayLike], FloatArray]
TERMS: dict[str, TermsFn] = {
    "poisson": poisson_terms,
    "pearson": pearson_terms,
    "neyman": neyman_terms,
    "cnp": cnp_terms,
}
STATISTICS: tuple[str, ...] = tuple(TERMS)


DerivativesFn = Callable[[ArrayLike, ArrayLike], tuple[FloatArray, FloatArray]]


def _counts_and_mu(data: ArrayLike, expected: ArrayLike) -> tuple[FloatArray, FloatArray]:
    n = np.asarray(data, dtype=np.float64)
    mu = np.maximum(np.asarray(expected, dtype=np.float64), TINY)
    return n, mu


def poisson_derivatives(data: ArrayLike, expected: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """∂/∂μ and ∂²/∂μ² of ``poisson_terms``: 2(1 − n/μ) and 2n/μ² (n = 0: 2 and 0)."""
    n, mu = _counts_and_mu(data, expected)
    return 2.0 * (1.0 - n / mu), 2.0 * n / mu**2


def pearson_derivatives(data: ArrayLike, expected: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """∂/∂μ and ∂²/∂μ² of ``pearson_terms``: 1 − n²/μ² and 2n²/μ³."""
    n, mu = _counts_and_mu(data, expected)
    return 1.0 - (n / mu) ** 2, 2.0 * n**2 / mu**3


def neyman_derivatives(data: ArrayLike, expected: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """∂/∂μ and ∂²/∂μ² of ``neyman_terms``: 2(μ − n)/v and 2/v (v = n, or 1 where n = 0)."""
    n = np.asarray(data, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    v = np.where(n > 0, n, 1.0)
    return 2.0 * (mu - n) / v, np.broadcast_to(2.0 / v, np.broadcast(n, mu).shape).copy()


def cnp_derivatives(data: ArrayLike, expected: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """∂/∂μ and ∂²/∂μ² of ``cnp_terms``: [2(μ − n)/n + 2(1 − n²/μ²)]/3 and [2/n + 4n²/μ³]/3
    (n = 0: 2 and 0, the derivatives of 2μ)."""
    n, mu = _counts_and_mu(data, expected)
    pos = n > 0
    safe_n = np.where(pos, n, 1.0)
    d1 = np.where(pos, (2.0 * (mu - n) / safe_n + 2.0 * (1.0 - (n / mu) ** 2)) / 3.0, 2.0)
    d2 = np.where(pos, (2.0 / safe_n + 4.0 * n**2 / mu**3) / 3.0, 0.0)
    return d1, d2


# First and second derivatives of each statistic's terms with respect to μ (per bin,
# broadcasting over leading axes): the gradient and Hessian of a fit by the chain rule.
DERIVATIVES: dict[str, DerivativesFn] = {
    "poisson": poisson_derivatives,
    "pearson": pearson_derivatives,
    "neyman": neyman_derivatives,
    "cnp": cnp_derivatives,
}


@runtime_checkable
class Differentiable(Protocol):
    """A statistic F(n, μ) with its derivatives in μ, for one spectrum."""

    def derivatives(
        self, data: ArrayLike, expected: ArrayLike, jac: FloatArray | None = None
    ) -> tuple[float, FloatArray, FloatArray | None]:
        """(F, ∂F/∂μ (K,), Jᵀ (∂²F/∂μ∂μ) J (P, P) for a Jacobian J = ∂μ/∂θ (K, P), None
        without one)."""
        ...


class PerBinDerivatives:
    """``Differentiable`` for a statistic of ``TERMS``: ∂²F/∂μ∂μ is diagonal (``DERIVATIVES``)."""

    def __init__(self, name: str) -> None:
        self.terms = TERMS[name]
        self.second = DERIVATIVES[name]

    def derivatives(
        self, data: ArrayLike, expected: ArrayLike, jac: FloatArray | None = None
    ) -> tuple[float, FloatArray, FloatArray | None]:
        value = float(self.terms(data, expected).sum())
        d1, d2 = self.second(data, expected)
        curvature = None if jac is None else (jac * d2[:, None]).T @ jac
        return value, d1, curvature


@runtime_checkable
class Totalled(Protocol):
    """A statistic with its own way to the sum of its terms for one spectrum (a fit's cost):
    the covariance χ² as one quadratic form, without the per-bin vector."""

    def total(self, data: ArrayLike, expected: ArrayLike) -> float:
        """F(n, μ) for one spectrum (K,)."""
        ...


def total_function(terms: object) -> Callable[[ArrayLike, ArrayLike], float]:
    """F(n, μ) of one spectrum: the statistic's ``total`` (``Totalled``), else the sum of its
    per-bin terms (``terms``: a ``TermsFn``)."""
    if isinstance(terms, Totalled):
        return terms.total
    per_bin = cast(TermsFn, terms)
    return lambda data, expected: float(per_bin(data, expected).sum())


def differentiable(name: str, terms: object) -> Differentiable | None:
    """The derivatives of the statistic ``name`` whose per-bin terms are ``terms``: its own
    (``Differentiable``), those of ``DERIVATIVES``, or None where there are none."""
    if isinstance(terms, Differentiable):
        return terms
    if name in DERIVATIVES and TERMS.get(name) is terms:
        return PerBinDerivatives(name)
    return None


def statistic(name: str, data: ArrayLike, expected: ArrayLike) -> FloatArray | float:
    """Sum over the last axis of the named statistic's terms (a float for 1-D input)."""
    try:
        terms = TERMS[name]
    except KeyError:
        msg = f"unknown statistic {name!r}; use one of {STATISTICS}"
        raise ValueError(msg) from None
    total = terms(data, expected).sum(axis=-1)
    return float(total) if np.ndim(total) == 0 else total


def gaussian_pull(value: ArrayLike, centre: ArrayLike, sigma: ArrayLike) -> FloatArray | float:
    """((x − x₀)/σ)²: −2 ln of a Gaussian prior up to a constant (broadcasting)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    if not np.all(sigma > 0):
        msg = f"a pull term needs sigma > 0, got {sigma}"
        raise ValueError(msg)
    x, x0 = np.asarray(value, dtype=np.float64), np.asarray(centre, dtype=np.float64)
    out = ((x - x0) / sigma) ** 2
    return float(out) if np.ndim(out) == 0 else out


def count_problems(data: ArrayLike, integer: bool) -> str | None:
    """Why ``data`` cannot be fitted as counts (NaN/inf, negative, non-integer), else None."""
    n = np.asarray(data, dtype=np.float64)
    if n.ndim != 1 or n.size == 0:
        return f"counts must be a non-empty 1-D array, got shape {n.shape}"
    bad = ~np.isfinite(n)
    if bad.any():
        return f"{int(bad.sum())} bins are NaN or infinite (first: bin {int(np.argmax(bad))})"
    if (n < 0).any():
        return f"{int((n < 0).sum())} bins are negative (first: bin {int(np.argmax(n < 0))})"
    if integer:
        frac = np.abs(n - np.round(n)) > 1e-9
        if frac.any():
            i = int(np.argmax(frac))
            return f"{int(frac.sum())} bins are not integers (first: bin {i}, {n[i]:g})"
    return None
