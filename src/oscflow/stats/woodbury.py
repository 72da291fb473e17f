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
min v needs for δ/(1 − δ) ≤ ``rtol``/2; when the dropped spectrum holds a negative eigenvalue
larger than that (S indefinite beyond rounding) the evaluation falls back to the plain
Cholesky. The k×k factorisation is reused: an evaluation near the last factored one solves
its capacitance system by conjugate gradients preconditioned with it (two K×k products per
step instead of K k² flops), stopping at a computable bound of ``rtol``/2 (``_refine``).
``rtol`` = 1e-9 by default: the plain Cholesky's own rounding error is already
~κ(V)·2⁻⁵² ≈ 2e6 · 1e-16 ≈ 1e-10 relative for Daya Bay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import blas, lapack

from .blas_threads import one_blas_thread
from .covariance import CNPCovariance, plain_solve

FloatArray = NDArray[np.float64]
DEFAULT_RTOL = 1e-9
CG_MAX_ITER = 8  # CG steps before a vector solve factorises at its own variance instead
# CG also stops no earlier than ‖ρ‖ ≤ CG_RESIDUAL ‖y‖: the solution itself (per-bin terms, the χ²'s
# gradient), not only its quadratic form, is then good to ~1e-7 relative
CG_RESIDUAL = 1e-7
CG_MAX_COLUMNS = 4  # wider right-hand sides factorise (k³/3 + K k² beats that many CG solves)


class LowRankCNPCovariance(CNPCovariance):
    """Per-bin terms rᵢ (V⁻¹ r)ᵢ of the CNP + systematic-covariance χ² (their sum is χ²,
    within the stated bound of ``rtol`` relative), broadcast over leading axes: the same
    interface and result as ``stats.covariance.CNPCovariance`` (``frozen`` included), with
    its own ``solve``.

    ``syst`` is the (K, K) systematic covariance or a callable returning it (fetched and
    decomposed on first use). ``last_bound`` holds the bound of the last evaluation (0.0 for
    one that fell back to the plain Cholesky).
    """

    def __init__(
        self,
        syst: ArrayLike | Callable[[], ArrayLike],
        rtol: float = DEFAULT_RTOL,
        frozen: ArrayLike | Callable[[], ArrayLike] | None = None,
    ) -> None:
        if not 0.0 < rtol < 1.0:
            msg = f"rtol must be in (0, 1), got {rtol}"
            raise ValueError(msg)
        super().__init__(syst, frozen)
        self.rtol = float(rtol)
        self._basis: FloatArray | None = None  # U Λ^{1/2}, columns by decreasing λ
        self._eig: FloatArray = np.empty(0)  # λ, decreasing
        self.last_bound = 0.0
        self.last_rank = 0
        self._rank_interval: tuple[float, float, int] = (float("inf"), float("inf"), 0)
        self._dropped_of: dict[int, float] = {}
        self._factored: tuple[bytes, _Kept | None] | None = None
        self._last_solve: tuple[tuple[bytes, bytes], _VectorSolve] | None = None
        self.n_factorised = 0

    @property
    def syst(self) -> FloatArray:
        if self._matrix is None:
            m = super().syst
            with one_blas_thread():
                lam, vec = np.linalg.eigh(m)
            order = np.argsort(lam)[::-1]
            self._eig = lam[order]
            pos = np.clip(self._eig, 0.0, None)
            self._basis = np.ascontiguousarray(vec[:, order] * np.sqrt(pos))
        assert self._matrix is not None
        return self._matrix

    def _threads(self) -> contextlib.AbstractContextManager[Any]:
        return one_blas_thread()

    def rank_for(self, min_variance: float) -> int | None:
        """Components to keep for half of ``rtol`` at this smallest CNP variance (the other
        half is CG's, ``_refine``; None: no truncation meets it, a dropped negative eigenvalue
        is too large: use the plain Cholesky)."""
        _ = self.syst
        # δ/(1−δ) ≤ τ  ⇔  δ ≤ τ/(1+τ)  ⇔  ε ≤ min v · t/(1+t), t = τ/(1+τ), τ = rtol/2
        tau = 0.5 * self.rtol
        t = tau / (1.0 + tau)
        eps_max = min_variance * t / (1.0 + t)
        lo, hi, kept = self._rank_interval
        if lo <= eps_max < hi:  # the last answer's: a fit's next points mostly keep it
            return kept
        k = int(np.count_nonzero(self._eig > eps_max))
        dropped = self._dropped(k)
        if dropped > eps_max:
            return None
        # the same k, and no dropped |λ| above ε, for ε in [max dropped |λ|, smallest kept λ)
        self._rank_interval = (dropped, float(self._eig[k - 1]) if k else float("inf"), k)
        return k

    @staticmethod
    def bound(eps: float, min_variance: float) -> float:
        """δ/(1 − δ), δ = ε/(min v − ε): the relative bound on |χ² − χ²ₖ| (inf if vacuous)."""
        if eps >= min_variance / 2.0:
            return float("inf")
        delta = eps / (min_variance - eps)
        return delta / (1.0 - delta)

    def solve(self, rhs: FloatArray, variance: FloatArray) -> FloatArray:
        """(D + S)⁻¹ rhs, rhs (K,) or (K, m) (within ``rtol`` in the χ² sense above).

        The factorisation of the last factored ``variance`` is kept. A second solve at that
        variance (a fit's derivatives after its χ²) costs O(K k m), not O(K k²). A vector at
        another variance is solved by conjugate gradients preconditioned with it (``_refine``:
        a fit's next points are close by), as is a matrix of up to ``CG_MAX_COLUMNS`` columns;
        a wider matrix, or a vector CG does not settle in ``CG_MAX_ITER`` steps, gets its own
        factorisation, which is kept instead."""
        if rhs.ndim == 1:
            return self._vector(rhs, variance).vector()
        key = variance.tobytes()
        if self._factored is not None and self._factored[0] != key:
            refined = self._refine_columns(rhs, variance)
            if refined is not None:
                return refined
        kept = self._state(variance, key)
        if kept is None:
            return plain_solve(self.syst, rhs, variance)
        x, _, z = kept.parts(rhs)
        return np.asarray(x - (kept.b @ z) * kept.inv[:, None], dtype=np.float64)

    def quadratic(self, rhs: FloatArray, variance: FloatArray) -> float:
        """rhsᵀ (D + Sₖ)⁻¹ rhs = rhsᵀD⁻¹rhs − yᵀC⁻¹y (y = BᵀD⁻¹rhs): the capacitance
        solution alone, no K-vector (a fit's χ²; its gradient at the same point then takes the
        K-vector from the same solve, ``solve``)."""
        return self._vector(rhs, variance).quadratic

    def _vector(self, rhs: FloatArray, variance: FloatArray) -> _VectorSolve:
        """The solve of a vector, memoised for the last (rhs, variance)."""
        key = variance.tobytes()
        memo = (key, rhs.tobytes())
        if self._last_solve is not None and self._last_solve[0] == memo:
            return self._last_solve[1]
        out = None
        if self._factored is not None and self._factored[0] != key:
            out = self._refine(rhs, variance)
        if out is None:
            kept = self._state(variance, key)
            if kept is None:
                solution = plain_solve(self.syst, rhs, variance)
                out = _VectorSolve(float(rhs @ solution), lambda: solution)
            else:
                out = _woodbury(rhs, *kept.parts(rhs), kept.b, kept.inv)
        self._last_solve = (memo, out)
        return out

    def _state(self, variance: FloatArray, key: bytes) -> _Kept | None:
        """The kept factorisation, made at ``variance`` first if it is another's."""
        if self._factored is None or self._factored[0] != key:
            self._factored = (key, self._factor(variance))
        return self._factored[1]

    def _refine_columns(self, rhs: FloatArray, variance: FloatArray) -> FloatArray | None:
        """``_refine`` column by column for up to ``CG_MAX_COLUMNS`` (a fit's curvature with
        few parameters); None where any column needs a factorisation."""
        if rhs.shape[1] > CG_MAX_COLUMNS:
            return None
        bound, out = 0.0, np.empty_like(rhs, dtype=np.float64)
        for j in range(rhs.shape[1]):
            col = self._refine(np.ascontiguousarray(rhs[:, j]), variance)
            if col is None:
                return None
            out[:, j], bound = col.vector(), max(bound, self.last_bound)
        self.last_bound = bound
        return out

    def _refine(self, rhs: FloatArray, variance: FloatArray) -> _VectorSolve | None:
        """(D + Sₖ)⁻¹ rhs by preconditioned CG on the capacitance system C z = y (C = I + Bᵀ
        D⁻¹ B, y = Bᵀ D⁻¹ rhs, never formed: two K×k products per step) with the kept
        factorisation C₀ at another variance as preconditioner; None where it does not apply
        (no factorisation kept, another rank needed) or does not settle.

        Bound: with ρ = y − C z, yᵀC⁻¹y = yᵀz + zᵀρ + ρᵀC⁻¹ρ and 0 ≤ ρᵀC⁻¹ρ ≤ ‖ρ‖² (C ≥ I),
        so the returned solution's rhsᵀ(D + Sₖ)⁻¹rhs is off by at most |zᵀρ| + ‖ρ‖² (CG from
        z = 0 keeps zᵀρ at rounding level: ρ is orthogonal to the directions z is made of);
        CG stops when that is ≤ ``rtol``/2 × the quadratic form (and ‖ρ‖ ≤ ``CG_RESIDUAL``
        ‖y‖, for the solution itself), and ``last_bound`` adds it
        (relative) to the truncation's.

        Preconditioner: C at the kept variance scaled by the scalar that best matches this one,
        P = I + M₀/a (M₀ = Bᵀ D₀⁻¹ B, a = √(min · max) of v/v₀): diagonal in the basis of M₀'s
        eigenvectors, where CG runs (``_Kept``; norms and inner products are the same). P⁻¹C
        has its eigenvalues within [min(1, min a v₀/v), max(1, max a v₀/v)]: a fit's steps
        mostly rescale the variance (the normalisation), which P absorbs; near the kept point
        CG settles in 2–3 steps."""
        assert self._factored is not None
        kept = self._factored[1]
        if kept is None or kept.lam.size == 0:
            return None
        b, bt = kept.b, kept.bt
        k = self.rank_for(float(variance.min()))
        if k is None or k != b.shape[1]:
            return None
        inv = 1.0 / variance
        ratio = kept.inv / inv  # v / v₀
        scale = float(np.sqrt(ratio.min() * ratio.max()))
        precondition = kept.preconditioner(scale)
        x = rhs * inv
        y = bt @ x
        quad0 = float(rhs @ x)
        z = np.zeros_like(y)
        res = y.copy()
        pre = res * precondition
        direction = pre.copy()
        rho_pre = float(res @ pre)
        y2 = float(y @ y)
        for _ in range(CG_MAX_ITER + 1):
            quad = quad0 - float(y @ z)
            res2 = float(res @ res)
            error = abs(float(z @ res)) + res2
            settled = error <= 0.5 * self.rtol * quad and res2 <= CG_RESIDUAL**2 * y2
            if settled or (quad0 == 0.0 and error == 0.0):
                self.last_bound = self.bound(self._dropped(k), float(variance.min()))
                self.last_bound += error / quad if quad > 0 else 0.0  # (a zero column)
                self.last_rank = k
                return _woodbury(rhs, x, y, z, b, inv)
            q = direction + bt @ (inv * (b @ direction))
            step = rho_pre / float(direction @ q)
            blas.daxpy(direction, z, a=step)  # z += step · direction, in place
            blas.daxpy(q, res, a=-step)
            pre = res * precondition
            rho_new = float(res @ pre)
            direction = pre + (rho_new / rho_pre) * direction
            rho_pre = rho_new
        return None

    def _dropped(self, k: int) -> float:
        """ε: the largest |λ| of the components not kept."""
        if k not in self._dropped_of:
            self._dropped_of[k] = float(np.abs(self._eig[k:]).max()) if k < self._eig.size else 0.0
        return self._dropped_of[k]

    def _factor(self, variance: FloatArray) -> _Kept | None:
        """The capacitance system at this variance (``_Kept``), None for the plain Cholesky
        (``rank_for``); sets ``last_bound`` and ``last_rank``."""
        k = self.rank_for(float(variance.min()))
        if k is None:
            self.last_bound, self.last_rank = 0.0, variance.size
            return None
        self.last_bound = self.bound(self._dropped(k), float(variance.min()))
        self.last_rank = k
        self.n_factorised += 1
        assert self._basis is not None
        inv = 1.0 / variance
        if k == 0:  # an empty basis: (D + 0)⁻¹ through the same formulas
            return _Kept(inv, np.zeros((variance.size, 0)), np.zeros(0))
        b = self._basis[:, :k]
        w = b * np.sqrt(inv)[:, None]
        m = blas.dsyrk(1.0, w, trans=1, lower=1)  # M = Bᵀ D⁻¹ B, lower triangle: K k² flops
        lam, q, info = lapack.dsyevd(m, lower=1)
        if info != 0 or not np.isfinite(lam).all():  # M ≥ 0: only NaN/inf input gets here
            msg = f"Woodbury capacitance matrix has no eigen-decomposition (LAPACK info {info})"
            raise ValueError(msg)
        return _Kept(inv, np.ascontiguousarray(b @ q), np.clip(lam, 0.0, None))


class _Kept:
    """The kept capacitance system at a variance v₀: D₀⁻¹, and B rotated to the eigenvectors
    of M₀ = Bᵀ D₀⁻¹ B = Q Λ Qᵀ, B̃ = B Q (and B̃ᵀ, a view). Sₖ = B̃ B̃ᵀ is the same, and the
    capacitance matrix at v₀ is diagonal, I + Λ (k = 0: an empty basis)."""

    def __init__(self, inv: FloatArray, b: FloatArray, lam: FloatArray) -> None:
        self.inv, self.b, self.lam = inv, b, lam
        self.bt = b.T  # one copy of B̃ in the cache, not two

    def preconditioner(self, scale: float = 1.0) -> FloatArray:
        """The diagonal of (I + Λ/scale)⁻¹: C₀⁻¹ at scale 1, and at ``scale`` the inverse
        capacitance matrix of the variance scale·v₀ exactly (in the rotated basis)."""
        out: FloatArray = 1.0 / (1.0 + self.lam / scale)
        return out

    def parts(self, rhs: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """x = D₀⁻¹ rhs, y = B̃ᵀ x, z = C₀⁻¹ y for rhs (K,) or (K, m): the solve at v₀ is
        x − B̃ z D₀⁻¹."""
        vector = rhs.ndim == 1
        x = rhs * (self.inv if vector else self.inv[:, None])
        y = self.bt @ x
        d = self.preconditioner()
        return x, y, np.asarray(y * (d if vector else d[:, None]), dtype=np.float64)


class _VectorSolve:
    """(D + Sₖ)⁻¹ rhs for a vector: its quadratic form rhsᵀ(D + Sₖ)⁻¹rhs, and the K-vector
    made only when asked for (``vector``)."""

    def __init__(self, quadratic: float, make_vector: Callable[[], FloatArray]) -> None:
        self.quadratic = quadratic
        self._make = make_vector
        self._vector: FloatArray | None = None

    def vector(self) -> FloatArray:
        if self._vector is None:
            self._vector = self._make()
        return self._vector


def _woodbury(
    rhs: FloatArray, x: FloatArray, y: FloatArray, z: FloatArray, b: FloatArray, inv: FloatArray
) -> _VectorSolve:
    """The solve as x − B z D⁻¹ (x = D⁻¹rhs, y = Bᵀx, z = C⁻¹y): quadratic form rhsᵀx − yᵀz."""
    return _VectorSolve(
        float(rhs @ x) - float(y @ z), lambda: np.asarray(x - (b @ z) * inv, dtype=np.float64)
    )
