"""The CNP + systematic-covariance χ² without a K×K Cholesky per evaluation.

χ² = rᵀ (D + S)⁻¹ r,  D = diag(v) (CNP variance, changes at every evaluation), S = V_syst (fixed).

S is positive semi-definite and, for Daya Bay, of low numerical rank (its 546×546 matrix is a
Jacobian J C Jᵀ of ~1000 constrained parameters; ~180 of its eigenvalues exceed 1e-8 of the
546 bins' ~41 smallest CNP variance, the rest are rounding noise of ±1e-8). With the
eigendecomposition S = U Λ Uᵀ computed once, the k components with λ > ε are kept,
B = U_k Λ_k^{1/2} (K×k), and Woodbury's identity gives, exactly for Sₖ = B Bᵀ:

    (D + B Bᵀ)⁻¹ = D⁻¹ − D⁻¹ B (I + Bᵀ D⁻¹ B)⁻¹ Bᵀ D⁻¹

at O(K k²) per evaluation (a k×k Cholesky) instead of O(K³/3).

Bound (stated and tested, tests/test_stats_woodbury.py): with E = S − Sₖ the dropped part,
ε = ‖E‖₂ = the largest |λ| dropped, A = Sₖ + D (λ_min(A) ≥ min v) and V = A + E
(λ_min(V) ≥ min v − ε), χ² − χ²ₖ = −rᵀ A⁻¹ E V⁻¹ r, so

    |χ² − χ²ₖ| ≤ ε ‖A⁻¹r‖ ‖V⁻¹r‖ ≤ δ √(χ²ₖ χ²),  δ = ε / (min v − ε)

hence |χ² − χ²ₖ| ≤ δ/(1 − δ) · χ²ₖ. Each evaluation keeps as many components as its own
min v needs for δ/(1 − δ) ≤ ``rtol``; when the dropped spectrum holds a negative eigenvalue
larger than that (S indefinite beyond rounding) the evaluation falls back to the plain
Cholesky. ``rtol`` = 1e-9 by default: the plain Cholesky's own rounding error is already
~κ(V)·2⁻⁵² ≈ 2e6 · 1e-16 ≈ 1e-10 relative for Daya Bay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import blas, lapack

from .covariance import checked_rows, cnp_covariance_derivatives, cnp_variance, plain_solve

FloatArray = NDArray[np.float64]
DEFAULT_RTOL = 1e-9
_CONTROLLER: list[Any] = []


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread for the block: these 546×~170 products are too small to share, and
    on a loaded machine OpenBLAS's spinning threads made each evaluation 10–20× slower
    (17 ms instead of 1 ms here). ``threadpoolctl`` (installed with mlflow's scikit-learn)
    where available, nothing otherwise."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
        except ImportError:
            _CONTROLLER.append(None)
        else:
            _CONTROLLER.append(ThreadpoolController())
    ctl = _CONTROLLER[0]
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=1, user_api="blas")


class LowRankCNPCovariance:
    """Per-bin terms rᵢ (V⁻¹ r)ᵢ of the CNP + systematic-covariance χ² (their sum is χ²,
    within the stated bound of ``rtol`` relative), broadcast over leading axes: the same
    interface and result as ``stats.covariance.CNPCovariance``.

    ``syst`` is the (K, K) systematic covariance or a callable returning it (fetched and
    decomposed on first use). ``last_bound`` holds the bound δ/(1 − δ) of the last
    evaluation (0.0 for one that fell back to the plain Cholesky).
    """

    def __init__(
        self, syst: ArrayLike | Callable[[], ArrayLike], rtol: float = DEFAULT_RTOL
    ) -> None:
        if not 0.0 < rtol < 1.0:
            msg = f"rtol must be in (0, 1), got {rtol}"
            raise ValueError(msg)
        self.rtol = float(rtol)
        self._syst = syst
        self._matrix: FloatArray | None = None
        self._basis: FloatArray | None = None  # U Λ^{1/2}, columns by decreasing λ
        self._eig: FloatArray = np.empty(0)  # λ, decreasing
        self.last_bound = 0.0
        self.last_rank = 0
        self._factored: tuple[bytes, Any] | None = None

    def _decompose(self) -> None:
        raw = self._syst() if callable(self._syst) else self._syst
        m = np.asarray(raw, dtype=np.float64)
        if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.allclose(m, m.T, rtol=1e-10):
            msg = f"systematic covariance must be a symmetric square matrix, got {m.shape}"
            raise ValueError(msg)
        with one_blas_thread():
            lam, vec = np.linalg.eigh(m)
        order = np.argsort(lam)[::-1]
        self._eig = lam[order]
        pos = np.clip(self._eig, 0.0, None)
        self._basis = np.ascontiguousarray(vec[:, order] * np.sqrt(pos))
        self._matrix = m

    @property
    def syst(self) -> FloatArray:
        if self._matrix is None:
            self._decompose()
        assert self._matrix is not None
        return self._matrix

    def rank_for(self, min_variance: float) -> int | None:
        """Components to keep for ``rtol`` at this smallest CNP variance (None: no truncation
        meets it, a dropped negative eigenvalue is too large: use the plain Cholesky)."""
        _ = self.syst
        # δ/(1−δ) ≤ rtol  ⇔  δ ≤ rtol/(1+rtol)  ⇔  ε ≤ min v · t/(1+t), t = rtol/(1+rtol)
        t = self.rtol / (1.0 + self.rtol)
        eps_max = min_variance * t / (1.0 + t)
        k = int(np.count_nonzero(self._eig > eps_max))
        dropped = np.abs(self._eig[k:])
        if dropped.size and dropped.max() > eps_max:
            return None
        return k

    @staticmethod
    def bound(eps: float, min_variance: float) -> float:
        """δ/(1 − δ), δ = ε/(min v − ε): the relative bound on |χ² − χ²ₖ| (inf if vacuous)."""
        if eps >= min_variance / 2.0:
            return float("inf")
        delta = eps / (min_variance - eps)
        return delta / (1.0 - delta)

    def solve(self, rhs: FloatArray, variance: FloatArray) -> FloatArray:
        """(D + S)⁻¹ rhs, rhs (K,) or (K, m) (within ``rtol`` in the χ² sense above). The
        factorisation of the last ``variance`` is kept: a second solve with it (a fit's
        derivatives after its χ²) costs O(K k m), not O(K k²)."""
        key = variance.tobytes()
        if self._factored is None or self._factored[0] != key:
            self._factored = (key, self._factor(variance))
        state = self._factored[1]
        if state is None:
            return plain_solve(self.syst, rhs, variance)
        inv, b, factor = state
        scale = inv if rhs.ndim == 1 else inv[:, None]
        x = rhs * scale
        if b is None:
            return np.asarray(x, dtype=np.float64)
        z = lapack.dpotrs(factor, b.T @ x, lower=1)[0]
        return np.asarray(x - (b @ z) * scale, dtype=np.float64)

    def _factor(
        self, variance: FloatArray
    ) -> tuple[FloatArray, FloatArray | None, FloatArray | None] | None:
        """(D⁻¹, B, Cholesky factor of I + Bᵀ D⁻¹ B) at this variance, None for the plain
        Cholesky (``rank_for``); sets ``last_bound`` and ``last_rank``."""
        k = self.rank_for(float(variance.min()))
        if k is None:
            self.last_bound, self.last_rank = 0.0, variance.size
            return None
        eps = float(np.abs(self._eig[k:]).max()) if k < self._eig.size else 0.0
        self.last_bound = self.bound(eps, float(variance.min()))
        self.last_rank = k
        assert self._basis is not None
        inv = 1.0 / variance
        if k == 0:
            return inv, None, None
        b = self._basis[:, :k]
        w = b * np.sqrt(inv)[:, None]
        m = blas.dsyrk(1.0, w, trans=1, lower=1)  # Bᵀ D⁻¹ B, lower triangle: K k² flops
        m.flat[:: k + 1] += 1.0
        factor, info = lapack.dpotrf(m, lower=1, clean=0, overwrite_a=1)
        if info != 0:  # I + BᵀD⁻¹B ≥ I: only NaN/inf input gets here
            msg = f"Woodbury capacitance matrix is not positive definite (LAPACK info {info})"
            raise ValueError(msg)
        return inv, b, factor

    def __call__(self, data: ArrayLike, expected: ArrayLike) -> FloatArray:
        n, flat_n, flat_mu = checked_rows(data, expected, self.syst.shape[0])
        out = np.empty_like(flat_n)
        with one_blas_thread():
            for i, (ni, mi) in enumerate(zip(flat_n, flat_mu, strict=True)):
                r = mi - ni
                out[i] = r * self.solve(r, cnp_variance(ni, mi))
        return out.reshape(n.shape)

    def derivatives(
        self, data: ArrayLike, expected: ArrayLike, jac: FloatArray | None = None
    ) -> tuple[float, FloatArray, FloatArray | None]:
        """``stats.likelihood.Differentiable``: ``stats.covariance.cnp_covariance_derivatives``
        with this solve (one factorisation for χ², its gradient and its curvature)."""
        checked_rows(data, expected, self.syst.shape[0])
        with one_blas_thread():
            return cnp_covariance_derivatives(self.solve, data, expected, jac)
