"""χ² with a covariance matrix: statistical CNP variance plus systematic covariance.

χ² = rᵀ (V_stat + V_syst)⁻¹ r,  r = μ − n,  V_stat = diag(3 / (1/n + 2/μ))

V_stat is the combined Neyman–Pearson variance (X. Ji et al., Nucl. Instrum. Meth. A 961
(2020) 163677); with V_syst the systematic covariance this is the Daya Bay full-data χ²
(Phys. Rev. Lett. 130, 161802 (2023); ``dayabay-model``'s ``statistic.full.covmat.chi2cnp``:
data and theory enter V_stat, V_syst is computed once at the nominal point). Returned as
per-bin terms rᵢ (V⁻¹ r)ᵢ, whose sum is χ², so that it plugs into ``stats.likelihood.TERMS``.

Derivatives in μ (``cnp_covariance_derivatives``, exact; ``stats.likelihood.Differentiable``):
V depends on μ only through its diagonal, v′ = dv/dμ = ⅔ (v/μ)², v″ = (4/3)(v/μ²)(v′ − v/μ);
with α = V⁻¹ r, W = V⁻¹ and qᵢ = 1 − v′ᵢ αᵢ (∂α/∂μⱼ = qⱼ W eⱼ):

    ∂χ²/∂μᵢ = 2 αᵢ − αᵢ² v′ᵢ,      ∂²χ²/∂μᵢ∂μⱼ = 2 qᵢ Wᵢⱼ qⱼ − δᵢⱼ αᵢ² v″ᵢ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import lapack

FloatArray = NDArray[np.float64]
TermsFn = Callable[[ArrayLike, ArrayLike], FloatArray]


def cnp_variance(data: ArrayLike, expected: ArrayLike) -> FloatArray:
    """3 / (1/n + 2/μ) per bin (needs n > 0 and μ > 0)."""
    n = np.asarray(data, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    return 3.0 / (1.0 / n + 2.0 / mu)


NOT_POSITIVE = "the CNP covariance χ² needs positive data and expectation in every bin"


def checked_rows(
    data: ArrayLike, expected: ArrayLike, k: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(data broadcast, data and expectation as (rows, k)) for a CNP covariance χ² of ``k``
    bins; ValueError for a non-positive bin or another number of bins."""
    n = np.asarray(data, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    n, mu = np.broadcast_arrays(n, mu)
    if (n <= 0).any() or (mu <= 0).any():
        raise ValueError(NOT_POSITIVE)
    if n.shape[-1] != k:
        msg = f"{n.shape[-1]} bins but a {k}×{k} covariance"
        raise ValueError(msg)
    return n, n.reshape(-1, k), mu.reshape(-1, k)


SolveFn = Callable[[FloatArray, FloatArray], FloatArray]


def cnp_covariance_derivatives(
    solve: SolveFn,
    data: ArrayLike,
    expected: ArrayLike,
    jac: FloatArray | None = None,
    frozen: FloatArray | None = None,
) -> tuple[float, FloatArray, FloatArray | None]:
    """(χ², ∂χ²/∂μ (K,), Jᵀ (∂²χ²/∂μ∂μ) J (P, P) or None) for one spectrum (module
    docstring); ``solve(rhs (K,) or (K, m), v)`` = (diag(v) + V_syst)⁻¹ rhs. With ``frozen``
    (μ₀) the variance is that of μ₀: v′ = v″ = 0."""
    n = np.asarray(data, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    r = mu - n
    if frozen is None:
        v = cnp_variance(n, mu)
        dv = (2.0 / 3.0) * (v / mu) ** 2
        d2v = (4.0 / 3.0) * v / mu**2 * (dv - v / mu)
    else:
        v = cnp_variance(n, frozen)
        dv = d2v = np.zeros_like(v)
    alpha = solve(r, v)
    grad = 2.0 * alpha - alpha**2 * dv
    if jac is None:
        return float(r @ alpha), grad, None
    jac = np.asarray(jac, dtype=np.float64)
    q = (1.0 - dv * alpha)[:, None] * jac
    curvature = 2.0 * q.T @ solve(q, v) - (jac * (alpha**2 * d2v)[:, None]).T @ jac
    return float(r @ alpha), grad, 0.5 * (curvature + curvature.T)


def _matrix(raw: ArrayLike | Callable[[], ArrayLike]) -> FloatArray:
    return np.asarray(raw() if callable(raw) else raw, dtype=np.float64)


class CNPCovariance:
    """Per-bin terms of the CNP + systematic-covariance χ², broadcast over leading axes.

    ``syst`` is the (K, K) systematic covariance or a callable returning it (fetched on first
    use: for Daya Bay it comes from building the official model). ``frozen``: an expectation
    μ₀ (K,) (or a callable returning it) whose CNP variance is used at every μ instead of μ's
    own: the statistic the collaboration's stored fit of the Daya Bay release minimised (its
    node kept the variance of the first point it was evaluated at; README, Daya Bay).
    Subclasses change ``solve`` (and ``_threads``).
    """

    def __init__(
        self,
        syst: ArrayLike | Callable[[], ArrayLike],
        frozen: ArrayLike | Callable[[], ArrayLike] | None = None,
    ) -> None:
        self._syst = syst
        self._matrix: FloatArray | None = None
        self._frozen_src = frozen
        self._frozen: FloatArray | None = None

    @property
    def syst(self) -> FloatArray:
        if self._matrix is None:
            m = _matrix(self._syst)
            if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.allclose(m, m.T, rtol=1e-10):
                msg = f"systematic covariance must be a symmetric square matrix, got {m.shape}"
                raise ValueError(msg)
            self._matrix = m
        return self._matrix

    @property
    def frozen(self) -> FloatArray | None:
        """μ₀ whose variance is held, or None (the variance of the current prediction)."""
        if self._frozen is None and self._frozen_src is not None:
            m = _matrix(self._frozen_src)
            if m.shape != (self.syst.shape[0],) or not (m > 0).all():
                msg = f"frozen expectation must be {self.syst.shape[0]} positive counts, got {m.shape}"
                raise ValueError(msg)
            self._frozen = m
        return self._frozen

    def variance(self, data: FloatArray, expected: FloatArray) -> FloatArray:
        """The CNP variance this statistic uses with these data at this expectation."""
        frozen = self.frozen
        return cnp_variance(data, expected if frozen is None else frozen)

    def solve(self, rhs: FloatArray, variance: FloatArray) -> FloatArray:
        """(diag(v) + V_syst)⁻¹ rhs, rhs (K,) or (K, m), by a Cholesky of the full matrix."""
        return plain_solve(self.syst, rhs, variance)

    def _threads(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def __call__(self, data: ArrayLike, expected: ArrayLike) -> FloatArray:
        n, flat_n, flat_mu = checked_rows(data, expected, self.syst.shape[0])
        out = np.empty_like(flat_n)
        with self._threads():
            for i, (ni, mi) in enumerate(zip(flat_n, flat_mu, strict=True)):
                r = mi - ni
                out[i] = r * self.solve(r, self.variance(ni, mi))
        return out.reshape(n.shape)

    def quadratic(self, rhs: FloatArray, variance: FloatArray) -> float:
        """rhsᵀ (diag(v) + V_syst)⁻¹ rhs for a vector rhs (K,)."""
        return float(rhs @ self.solve(rhs, variance))

    def total(self, data: ArrayLike, expected: ArrayLike) -> float:
        """χ² of one spectrum (``stats.likelihood.Totalled``): the sum of the per-bin terms
        as one quadratic form (``quadratic``; the low-rank subclass's needs no K-vector)."""
        n = np.asarray(data, dtype=np.float64)
        mu = np.asarray(expected, dtype=np.float64)
        k = self.syst.shape[0]
        if n.shape != (k,) or mu.shape != (k,):
            return float(self(n, mu).sum())  # its errors name the shapes
        if not (n.min() > 0.0 and mu.min() > 0.0):
            raise ValueError(NOT_POSITIVE)
        with self._threads():
            return self.quadratic(mu - n, self.variance(n, mu))

    def derivatives(
        self, data: ArrayLike, expected: ArrayLike, jac: FloatArray | None = None
    ) -> tuple[float, FloatArray, FloatArray | None]:
        """``stats.likelihood.Differentiable`` (module docstring), one spectrum."""
        checked_rows(data, expected, self.syst.shape[0])
        with self._threads():
            return cnp_covariance_derivatives(self.solve, data, expected, jac, self.frozen)


def plain_solve(syst: FloatArray, rhs: FloatArray, variance: FloatArray) -> FloatArray:
    """(diag(v) + S)⁻¹ rhs by a Cholesky of the full matrix (the reference)."""
    v = syst.copy()
    v.flat[:: v.shape[0] + 1] += variance
    factor, info = lapack.dpotrf(v, lower=1, clean=0, overwrite_a=1)
    if info != 0:
        msg = f"CNP + systematic covariance is not positive definite (LAPACK info {info})"
        raise ValueError(msg)
    return np.asarray(lapack.dpotrs(factor, rhs, lower=1)[0], dtype=np.float64)


def chi2(data: ArrayLike, expected: ArrayLike, syst: ArrayLike) -> float:
    """χ² = rᵀ (diag(CNP variance) + syst)⁻¹ r for one spectrum."""
    return float(CNPCovariance(syst)(data, expected).sum())
