"""N independent binned fits at once: a batched, bounded Levenberg–Marquardt minimiser of a
χ²-type statistic of counts (Baker–Cousins Poisson by default), with HESSE-equivalent errors.

Problem. For each fit k = 1..N, minimise over θ_k ∈ R^P (within bounds, some components
possibly fixed)

    F_k(θ) = Σ_b f(n_kb, μ_b(θ)) + Σ_p [(θ_p − c_p)/s_p]²          (dimensionless)

where μ(θ) are the expected counts of a caller's model, n the observed counts, f one of the
per-bin terms of ``stats.likelihood`` (default ``poisson``: Baker–Cousins, f = 2[μ − n +
n ln(n/μ)], S. Baker, R.D. Cousins, Nucl. Instrum. Meth. 221 (1984) 437) and the optional
Gaussian priors (c, s) are pull terms. F is −2 ln of a likelihood ratio: a χ²-type cost with
MINUIT's ``errordef`` = 1 (Δχ² = 1 is one standard deviation).

The model is ``model(theta) -> (mu, jac)`` with theta (M, P), mu (M, B) and jac (M, B, P) =
∂μ/∂θ, for any M ≤ N: the caller supplies the Jacobian (the surrogate's autograd, or an
analytic one). The fitter never loops over fits in Python: every step is an array operation
over the fits still running.

Algorithm: Levenberg–Marquardt with per-fit adaptive damping (Marquardt 1963; the damping
update and gain ratio of K. Madsen, H.B. Nielsen, O. Tingleff, "Methods for non-linear least
squares problems", DTU 2004, §3.2), chosen because

* the gradient is exact and cheap once the Jacobian is given: g = Jᵀ f′(μ) (+ priors), and a
  positive semi-definite curvature comes for free: the Fisher information of the Poisson
  likelihood, H_F = 2 Jᵀ diag(1/μ) J (for the other statistics Jᵀ diag(f″) J, f″ ≥ 0 for all
  four). Gauss–Newton with this curvature (Fisher scoring) converges in a few steps near the
  minimum, far fewer calls than a quasi-Newton method (MIGRAD's DFP/BFGS) which must learn
  the curvature from gradients;
* damping makes each step a descent step far from the minimum, and a per-fit damping λ_k,
  gain ratio and step acceptance keep the fits independent: one fit's bad step never slows
  or changes another (a fit's result does not depend on which fits share its batch);
* bounds are handled by projection with an active set: the trial point is clipped into
  [lower, upper], and a parameter sitting on a bound with its gradient pointing outwards is
  removed from the step's linear system (and from the convergence criterion: the projected
  gradient is the KKT condition). MINUIT's sine transformation is not used: it distorts the
  curvature near a bound, where projection does not.

The linear systems are solved on the Jacobi-scaled curvature D^-½ H D^-½ (Marquardt's scaling:
the steps are invariant to the units of the parameters) by a batched symmetric eigen-
decomposition (P is small), which also gives the EDM and never raises on singular matrices.

Convergence, per fit, as MINUIT's MIGRAD (F. James, "MINUIT Function Minimization and Error
Analysis, Reference Manual", CERN D506, 1994; Minuit2's VariableMetricBuilder): the estimated
distance to the minimum EDM = ½ gᵀ H⁻¹ g (H = the curvature above, on the free parameters not
blocked by a bound) below 0.002 × ``tolerance`` × errordef (errordef 1, ``tolerance`` 0.1 as
MINUIT's default: EDM < 2e-4). A fit stops unconverged when it reaches ``max_iter`` iterations
(``reached_max_iter``) or when no step is accepted even with λ at its cap, or its statistic is
not finite at the start (``stalled``). Such fits are flagged and never counted as valid.

Errors (HESSE). For errordef 1, cov = (½ ∂²F/∂θ∂θ)⁻¹ = 2 H⁻¹ with H the Hessian of F at the
minimum, on the free parameters (fixed ones get zero rows and columns). The Fisher curvature
misses the term Σ_b f′(μ_b) ∂²μ_b/∂θ∂θ (and, for Poisson, uses 1/μ where the exact second
derivative has n/μ²); errors from it differ from HESSE's by up to several per cent on toys.
``hessian="exact"`` (default) therefore uses

    H = Jᵀ diag(f″) J + Σ_b f′(μ_b) ∂²μ_b/∂θ∂θ + prior terms,

with ∂²μ from forward differences of the supplied Jacobian: one extra batched model call per
free parameter, step 1e-4 of the parameter's Fisher error, taken inwards at an upper bound.
Parameters declared ``linear`` (μ jointly affine in them: ∂²μ/∂θ_i∂θ_j = 0 for i, j both
linear, e.g. normalisations) need no call: their mixed terms with the others come from the
others' differences by symmetry, and among themselves they vanish.
The finite-difference error enters only through the residual weights f′(μ), small at the
minimum, and vanishes for a model linear in θ (the Hessian is then exact). ``hessian="fisher"``
uses H_F (no extra calls). A Hessian that is not positive definite on the free parameters sets
``hesse_failed``, and that fit's errors and covariance are NaN.

Memory. N fits are processed ``chunk`` at a time (each chunk is an independent run of the
algorithm): the largest arrays are the Jacobians, chunk × B × P doubles (2048 × 400 × 4 × 8 B =
26 MB at the defaults for JUNO's 400 bins), never N × B × P.

Why not a library? The package index served here has batched minimisers only on JAX
(``optimistix``, ``jaxopt``: JAX is not a dependency and the surrogate is torch) or on torch
(``pytorch-minimize``: torch is forbidden in ``stats/`` by the import contracts); scipy's
``least_squares`` and iminuit minimise one problem at a time (a Python loop over fits, the
cost this module removes); ``lmfit`` wraps scipy. Levenberg–Marquardt with a given Jacobian is
~100 lines of numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .likelihood import DERIVATIVES, TERMS, TINY, gaussian_pull

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
Model = Callable[[FloatArray], tuple[ArrayLike, ArrayLike]]

ERRORDEF = 1.0  # χ²-type cost: Δχ² = 1 is one standard deviation
EDM_FACTOR = 0.002  # MINUIT: MIGRAD stops when EDM < 0.002 × tolerance × errordef
LAMBDA_START = 1e-3  # initial damping, relative to the unit diagonal of the scaled curvature
LAMBDA_MAX = 1e16  # a fit whose damping exceeds this found no descent step: stalled
FD_STEP = 1e-4  # finite-difference step of the exact Hessian, in units of the Fisher error
LIMIT_MARGIN = 1e-3  # "at a limit": within this fraction of the Fisher error of a bound


@dataclass(frozen=True)
class BatchFitResult:
    """Results of N fits of P parameters (arrays indexed by fit first).

    ``values`` best fit; ``errors`` √diag(covariance) (0 for fixed parameters, NaN where
    ``hesse_failed``); ``covariance`` (N, P, P); ``fval`` the statistic at the best fit
    (priors included); ``edm`` the estimated distance to the minimum there. Flags per fit:
    ``converged`` (EDM below the MIGRAD criterion), ``reached_max_iter``, ``stalled`` (no
    acceptable step, or a non-finite statistic at the start), ``at_limit`` (some free
    parameter within a tiny margin of a bound; the fit may still be valid), ``hesse_failed``
    (Hessian not positive definite). ``valid`` = converged and not hesse_failed.
    ``n_iter`` LM iterations (accepted and rejected steps), ``n_calls`` model evaluations
    each fit took part in (the exact Hessian's included).
    """

    values: FloatArray
    errors: FloatArray
    covariance: FloatArray
    fval: FloatArray
    edm: FloatArray
    converged: BoolArray
    reached_max_iter: BoolArray
    stalled: BoolArray
    at_limit: BoolArray
    hesse_failed: BoolArray
    n_iter: IntArray
    n_calls: IntArray
    edm_max: float
    statistic: str = "poisson"
    hessian: str = "exact"
    FLAGS: ClassVar[tuple[str, ...]] = (
        "converged",
        "reached_max_iter",
        "stalled",
        "at_limit",
        "hesse_failed",
    )

    @property
    def n_fits(self) -> int:
        return int(self.values.shape[0])

    @property
    def valid(self) -> BoolArray:
        """Converged with a positive-definite Hessian (at_limit is reported, not disqualifying)."""
        return self.converged & ~self.hesse_failed

    @property
    def flags(self) -> dict[str, BoolArray]:
        """Each per-fit flag by name."""
        return {name: getattr(self, name) for name in self.FLAGS}

    def summary(self) -> str:
        """Counts of valid and failed fits, each failure mode named (never hidden)."""
        n = self.n_fits
        n_valid = int(self.valid.sum())
        lines = [
            f"{n} fits ({self.statistic}, hessian={self.hessian}, EDM < {self.edm_max:g}): "
            + f"{n_valid} valid, {n - n_valid} not valid",
            f"  converged {int(self.converged.sum())}, not converged "
            + f"{int((~self.converged).sum())} (max_iter {int(self.reached_max_iter.sum())}, "
            + f"stalled {int(self.stalled.sum())})",
            f"  hesse_failed {int(self.hesse_failed.sum())}, at_limit {int(self.at_limit.sum())}",
        ]
        if n:
            lines.append(
                f"  iterations median {np.median(self.n_iter):g} (max {self.n_iter.max()}), "
                f"model calls median {np.median(self.n_calls):g} (max {self.n_calls.max()})"
            )
        return "\n".join(lines)


def _per_fit(x: ArrayLike | None, n: int, p: int, fill: float, name: str) -> FloatArray:
    if x is None:
        return np.full((n, p), fill)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != p or arr.ndim > 2 or (arr.ndim == 2 and arr.shape[0] != n):
        msg = f"{name} must have shape ({p},) or ({n}, {p}), got {arr.shape}"
        raise ValueError(msg)
    return np.broadcast_to(arr, (n, p)).copy()


@dataclass
class _Problem:
    """One chunk's inputs, all (M, ·) arrays."""

    model: Model
    n: FloatArray
    lower: FloatArray
    upper: FloatArray
    free: BoolArray
    c: FloatArray
    s: FloatArray
    has_prior: BoolArray
    stat: str

    def evaluate(
        self, theta: FloatArray, rows: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(mu, jac, F) at theta for the fits ``rows`` of this chunk (F = +inf if not finite)."""
        mu_raw, jac_raw = self.model(theta)
        mu = np.asarray(mu_raw, dtype=np.float64)
        jac = np.asarray(jac_raw, dtype=np.float64)
        m, p = theta.shape
        b = self.n.shape[1]
        if mu.shape != (m, b) or jac.shape != (m, b, p):
            msg = (
                f"model(theta{theta.shape}) must return mu ({m}, {b}) and jac ({m}, {b}, {p}), "
                f"got {mu.shape} and {jac.shape}"
            )
            raise ValueError(msg)
        f = TERMS[self.stat](self.n[rows], mu).sum(axis=-1) + self.prior(theta, rows)
        bad = ~(np.isfinite(f) & np.isfinite(jac).all(axis=(1, 2)))
        if self.stat != "neyman":  # μ < 0, or μ = 0 under n > 0, is outside the likelihood
            bad |= ((mu < 0) | ((mu == 0) & (self.n[rows] > 0))).any(axis=1)
        return mu, jac, np.where(bad, np.inf, f)

    def prior(self, theta: FloatArray, rows: IntArray) -> FloatArray:
        has = self.has_prior[rows]
        pull = gaussian_pull(theta, self.c[rows], self.s[rows])
        total: FloatArray = np.where(has, pull, 0.0).sum(axis=-1)
        return total

    def gradient_and_weights(
        self, mu: FloatArray, jac: FloatArray, theta: FloatArray, rows: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """g (M, P), the Fisher/Gauss–Newton curvature H_F (M, P, P), f′ and f″ (M, B)."""
        d1, d2 = DERIVATIVES[self.stat](self.n[rows], mu)
        w = 2.0 / np.maximum(mu, TINY) if self.stat == "poisson" else d2
        g = _jt_v(jac, d1)
        h = _jt_w_j(jac, w)
        g, h = self.add_prior(g, h, theta, rows)
        return g, h, d1, d2

    def add_prior(
        self, g: FloatArray, h: FloatArray, theta: FloatArray, rows: IntArray
    ) -> tuple[FloatArray, FloatArray]:
        has = self.has_prior[rows]
        inv_s2 = np.where(has, 1.0 / self.s[rows] ** 2, 0.0)
        g = g + 2.0 * inv_s2 * (theta - self.c[rows])
        h = h.copy()
        idx = np.arange(theta.shape[1])
        h[:, idx, idx] += 2.0 * inv_s2
        return g, h


def _jt_v(jac: FloatArray, v: FloatArray) -> FloatArray:
    """Jᵀv per fit: (M, B, P), (M, B) → (M, P) (batched BLAS, not einsum's loops)."""
    out: FloatArray = np.matmul(v[:, None, :], jac)[:, 0, :]
    return out


def _jt_w_j(jac: FloatArray, w: FloatArray) -> FloatArray:
    """Jᵀ diag(w) J per fit: (M, B, P), (M, B) → (M, P, P)."""
    out: FloatArray = np.matmul(jac.transpose(0, 2, 1) * w[:, None, :], jac)
    return out


def _scaled_eigh(h: FloatArray, use: BoolArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Eigen-decomposition of the Jacobi-scaled curvature restricted to ``use``.

    Returns (scale (M, P), eigenvalues (M, P) ≥ 0, eigenvectors (M, P, P)); rows and columns
    of unused parameters are replaced by the identity (their step is zeroed by the caller).
    """
    diag = np.diagonal(h, axis1=1, axis2=2)
    floor = 1e-12 * np.maximum(np.where(use, diag, 0.0).max(axis=1, keepdims=True), TINY)
    d = np.where(use, np.maximum(diag, floor), 1.0)
    scale = 1.0 / np.sqrt(d)
    hs = h * scale[:, :, None] * scale[:, None, :]
    pair = use[:, :, None] & use[:, None, :]
    eye = np.broadcast_to(np.eye(h.shape[1]), hs.shape)
    hs = np.where(pair, hs, eye)
    finite = np.asarray(np.isfinite(hs).all(axis=(1, 2)))
    hs = np.where(finite[:, None, None], hs, eye)  # flagged by callers
    w, v = np.linalg.eigh(hs)
    return scale, np.maximum(w, 0.0), v


def _blocked(theta: FloatArray, g: FloatArray, lower: FloatArray, upper: FloatArray) -> BoolArray:
    """Parameters on a bound whose descent direction points out of the box."""
    return ((theta <= lower) & (g > 0)) | ((theta >= upper) & (g < 0))


def _edm(
    g: FloatArray, scale: FloatArray, w: FloatArray, v: FloatArray, use: BoolArray
) -> FloatArray:
    gs = np.where(use, g * scale, 0.0)
    proj = np.einsum("mpq,mp->mq", v, gs)
    wmax = w.max(axis=1, keepdims=True)
    w_safe = np.maximum(w, 1e-14 * np.maximum(wmax, TINY))
    edm: FloatArray = 0.5 * (proj**2 / w_safe).sum(axis=1)
    return edm


def _minimize_chunk(
    prob: _Problem, start: FloatArray, edm_max: float, max_iter: int
) -> dict[str, np.ndarray]:
    m, p = start.shape
    rows_all = np.arange(m)
    theta = start.copy()
    mu, jac, f = prob.evaluate(theta, rows_all)
    n_calls = np.ones(m, dtype=np.int64)
    n_iter = np.zeros(m, dtype=np.int64)
    lam = np.full(m, LAMBDA_START)
    nu = np.full(m, 2.0)
    edm = np.full(m, np.inf)
    converged = np.zeros(m, dtype=bool)
    reached = np.zeros(m, dtype=bool)
    stalled = ~np.isfinite(f)
    running = ~stalled
    # Gradient and curvature are recomputed only where the point moved (``stale``).
    g = np.zeros((m, p))
    h = np.zeros((m, p, p))
    stale = np.ones(m, dtype=bool)
    while running.any():
        rows = np.flatnonzero(running & stale)
        if rows.size:
            g[rows], h[rows], _, _ = prob.gradient_and_weights(
                mu[rows], jac[rows], theta[rows], rows
            )
            stale[rows] = False
        rows = np.flatnonzero(running)
        th, gr = theta[rows], g[rows]
        lo, hi = prob.lower[rows], prob.upper[rows]
        use = prob.free[rows] & ~_blocked(th, gr, lo, hi)
        scale, w, v = _scaled_eigh(h[rows], use)
        edm[rows] = _edm(gr, scale, w, v, use)
        done = edm[rows] < edm_max
        converged[rows[done]] = True
        out = n_iter[rows] >= max_iter
        reached[rows[out & ~done]] = True
        running[rows[done | out]] = False
        keep = ~(done | out)
        rows, th, gr, lo, hi = rows[keep], th[keep], gr[keep], lo[keep], hi[keep]
        if not rows.size:
            break
        use, scale, w, v = use[keep], scale[keep], w[keep], v[keep]
        # Damped step in scaled coordinates: (Hs + λ I) y = −D^-½ g, δ = D^-½ y.
        gs = np.where(use, gr * scale, 0.0)
        proj = np.einsum("mpq,mp->mq", v, gs)
        y = -np.einsum("mpq,mq->mp", v, proj / (w + lam[rows, None]))
        delta = np.where(use, y * scale, 0.0)
        trial = np.clip(th + delta, lo, hi)
        delta = trial - th
        mu_t, jac_t, f_t = prob.evaluate(trial, rows)
        n_calls[rows] += 1
        n_iter[rows] += 1
        # Gain ratio: actual decrease over the decrease predicted by the quadratic model.
        hd = np.einsum("mpq,mq->mp", h[rows], delta)
        predicted = -(gr * delta).sum(axis=1) - 0.5 * (delta * hd).sum(axis=1)
        actual = f[rows] - f_t
        accept = np.isfinite(f_t) & (actual > 0)
        rho = np.where(predicted > 0, actual / np.where(predicted > 0, predicted, 1.0), 0.0)
        a, r = rows[accept], rows[~accept]
        theta[a], mu[a], jac[a], f[a] = trial[accept], mu_t[accept], jac_t[accept], f_t[accept]
        stale[a] = True
        lam[a] *= np.maximum(1.0 / 3.0, 1.0 - (2.0 * rho[accept] - 1.0) ** 3)
        nu[a] = 2.0
        lam[r] *= nu[r]
        nu[r] *= 2.0
        dead = r[lam[r] > LAMBDA_MAX]
        stalled[dead] = True
        running[dead] = False
    return {
        "theta": theta,
        "mu": mu,
        "jac": jac,
        "f": f,
        "edm": edm,
        "converged": converged,
        "reached": reached,
        "stalled": stalled,
        "n_iter": n_iter,
        "n_calls": n_calls,
    }


def _hessian(
    prob: _Problem,
    theta: FloatArray,
    mu: FloatArray,
    jac: FloatArray,
    exact: bool,
    linear: BoolArray,
) -> tuple[FloatArray, FloatArray, IntArray]:
    """(H (M, P, P), Fisher conditional errors (M, P), model calls per fit)."""
    m, p = theta.shape
    rows = np.arange(m)
    _, h_f, d1, d2 = prob.gradient_and_weights(mu, jac, theta, rows)
    diag = np.diagonal(h_f, axis1=1, axis2=2)
    sigma_f = np.sqrt(2.0 * ERRORDEF / np.maximum(diag, TINY))
    calls = np.zeros(m, dtype=np.int64)
    if not exact:
        return h_f, sigma_f, calls
    h = _jt_w_j(jac, d2)
    zero = np.zeros_like(theta)
    h = prob.add_prior(zero, h, theta, rows)[1]
    second = np.zeros((m, p, p))
    for j in range(p):  # one call per free non-linear parameter, batched over the chunk
        free_j = prob.free[:, j]
        if linear[j] or not free_j.any():
            continue
        step = FD_STEP * np.where(np.isfinite(sigma_f[:, j]), sigma_f[:, j], 1.0)
        step = np.where(theta[:, j] + step > prob.upper[:, j], -step, step)
        step = np.where(free_j, step, 0.0)
        shifted = theta.copy()
        shifted[:, j] += step
        step = shifted[:, j] - theta[:, j]  # the step actually represented in floating point
        _, jac_j, _ = prob.evaluate(shifted, rows)
        calls += free_j
        safe = np.where(step != 0, step, 1.0)
        dj = (jac_j - jac) / safe[:, None, None]  # ∂J/∂θ_j: (M, B, P)
        second[:, :, j] = np.where(free_j[:, None], _jt_v(dj, d1), 0.0)
    lin, other = np.flatnonzero(linear), np.flatnonzero(~linear)
    second[:, other[:, None], lin[None, :]] = second[:, lin[:, None], other[None, :]].transpose(
        0, 2, 1
    )
    h = h + 0.5 * (second + second.transpose(0, 2, 1))
    return h, sigma_f, calls


def _errors(h: FloatArray, free: BoolArray) -> tuple[FloatArray, BoolArray]:
    """cov = errordef · (½ H)⁻¹ on the free block (zero elsewhere), and hesse_failed."""
    scale, w, v = _scaled_eigh(h, free)
    # _scaled_eigh floors the diagonal; a non-positive diagonal already means not PD.
    diag = np.diagonal(h, axis1=1, axis2=2)
    wmax = w.max(axis=1, keepdims=True)
    failed = (
        ~np.isfinite(h).all(axis=(1, 2))
        | (free & ~(diag > 0)).any(axis=1)
        | (w <= 1e-13 * np.maximum(wmax, TINY)).any(axis=1)
    )
    w_safe = np.where(w > 0, w, 1.0)
    inv_s = np.einsum("mpk,mk,mqk->mpq", v, 1.0 / w_safe, v)
    inv = inv_s * scale[:, :, None] * scale[:, None, :]
    pair = free[:, :, None] & free[:, None, :]
    cov = np.where(pair, 2.0 * ERRORDEF * inv, 0.0)
    cov[failed] = np.nan
    return cov, failed


def fit_batch(
    model: Model,
    data: ArrayLike,
    start: ArrayLike,
    *,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
    prior_center: ArrayLike | None = None,
    prior_sigma: ArrayLike | None = None,
    fixed: ArrayLike | None = None,
    statistic: str = "poisson",
    tolerance: float = 0.1,
    max_iter: int = 200,
    hessian: Literal["exact", "fisher"] = "exact",
    chunk: int = 2048,
    linear: ArrayLike | None = None,
) -> BatchFitResult:
    """Minimise ``statistic`` of ``data`` against ``model`` for N fits at once.

    ``model(theta (M, P)) -> (mu (M, B), jac (M, B, P))``, jac = ∂μ/∂θ, for any M ≤ ``chunk``.
    ``data``: counts (N, B), or (B,) shared by all fits. ``start``: (N, P) or (P,).
    ``lower``/``upper``: bounds (P,) or (N, P), ±inf for none (default unbounded).
    ``prior_center``/``prior_sigma``: Gaussian priors (P,) or (N, P), NaN for none; adds
    ((θ − c)/s)². ``fixed``: bool (P,) or (N, P), True keeps the parameter at its start.
    ``statistic``: a name of ``stats.likelihood.TERMS`` (default Baker–Cousins ``poisson``).
    ``tolerance``: MIGRAD's; converged when EDM < 0.002 · tolerance (errordef 1).
    ``hessian``: "exact" (one extra model call per free parameter not ``linear``, per chunk)
    or "fisher" for the errors.
    ``chunk``: at most this many fits are in memory at a time.
    ``linear``: bool (P,), parameters in which μ is jointly affine (module docstring); a wrong
    declaration gives wrong errors, so declare only what holds by construction.

    The module docstring describes the algorithm and the flags of ``BatchFitResult``.
    """
    if statistic not in TERMS:
        msg = f"unknown statistic {statistic!r}; use one of {tuple(TERMS)}"
        raise ValueError(msg)
    if hessian not in ("exact", "fisher"):
        msg = f"hessian must be 'exact' or 'fisher', got {hessian!r}"
        raise ValueError(msg)
    if not (tolerance > 0 and max_iter >= 0 and chunk >= 1):
        msg = f"need tolerance > 0, max_iter ≥ 0, chunk ≥ 1 (got {tolerance}, {max_iter}, {chunk})"
        raise ValueError(msg)
    n_arr = np.asarray(data, dtype=np.float64)
    th0 = np.asarray(start, dtype=np.float64)
    if n_arr.ndim not in (1, 2) or th0.ndim not in (1, 2):
        msg = (
            f"data must be (N, B) or (B,) and start (N, P) or (P,), got {n_arr.shape}, {th0.shape}"
        )
        raise ValueError(msg)
    n_fits = max(n_arr.shape[0] if n_arr.ndim == 2 else 1, th0.shape[0] if th0.ndim == 2 else 1)
    p = th0.shape[-1]
    if n_fits == 0 or p == 0 or n_arr.shape[-1] == 0:
        raise ValueError("need at least one fit, one parameter and one bin")
    for name, arr in (("data", n_arr), ("start", th0)):
        if arr.ndim == 2 and arr.shape[0] != n_fits:
            msg = f"{name} has {arr.shape[0]} fits, expected {n_fits}"
            raise ValueError(msg)
    if not np.isfinite(n_arr).all() or (n_arr < 0).any():
        raise ValueError("data must be finite and non-negative")
    th0 = np.broadcast_to(th0, (n_fits, p)).copy()
    lo = _per_fit(lower, n_fits, p, -np.inf, "lower")
    hi = _per_fit(upper, n_fits, p, np.inf, "upper")
    c = _per_fit(prior_center, n_fits, p, np.nan, "prior_center")
    s = _per_fit(prior_sigma, n_fits, p, np.nan, "prior_sigma")
    fix = (
        np.zeros((n_fits, p), dtype=bool)
        if fixed is None
        else np.broadcast_to(np.asarray(fixed, dtype=bool), (n_fits, p)).copy()
    )
    if (lo > hi).any() or np.isnan(lo).any() or np.isnan(hi).any():
        raise ValueError("bounds must satisfy lower ≤ upper (no NaN)")
    if not np.isfinite(th0).all() or (th0 < lo).any() or (th0 > hi).any():
        raise ValueError("start must be finite and within [lower, upper]")
    has_prior = np.isfinite(c) & np.isfinite(s)
    if (has_prior & ~(s > 0)).any():
        raise ValueError("prior_sigma must be > 0 where a prior is given")
    c = np.where(has_prior, c, 0.0)
    s = np.where(has_prior, s, 1.0)
    free = ~fix & (lo < hi)
    edm_max = EDM_FACTOR * tolerance * ERRORDEF
    affine = np.zeros(p, dtype=bool) if linear is None else np.asarray(linear, dtype=bool)
    if affine.shape != (p,):
        msg = f"linear must be a bool array of shape ({p},), got {affine.shape}"
        raise ValueError(msg)

    counts_all = np.broadcast_to(n_arr, (n_fits, n_arr.shape[-1]))
    parts: list[dict[str, np.ndarray]] = []
    for a in range(0, n_fits, chunk):
        sl = slice(a, min(a + chunk, n_fits))
        counts = counts_all[sl]
        prob = _Problem(
            model, counts, lo[sl], hi[sl], free[sl], c[sl], s[sl], has_prior[sl], statistic
        )
        res = _minimize_chunk(prob, th0[sl], edm_max, max_iter)
        h, sigma_f, calls = _hessian(
            prob, res["theta"], res["mu"], res["jac"], hessian == "exact", affine
        )
        cov, failed = _errors(h, prob.free)
        margin = LIMIT_MARGIN * sigma_f
        th = res["theta"]
        at_limit = (prob.free & ((th - prob.lower <= margin) | (prob.upper - th <= margin))).any(
            axis=1
        )
        parts.append(
            {
                "values": th,
                "covariance": cov,
                "fval": res["f"],
                "edm": res["edm"],
                "converged": res["converged"],
                "reached_max_iter": res["reached"],
                "stalled": res["stalled"],
                "at_limit": at_limit,
                "hesse_failed": failed,
                "n_iter": res["n_iter"],
                "n_calls": res["n_calls"] + calls,
            }
        )
        del res, prob
    out = {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
    cov = out["covariance"]
    errors = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    return BatchFitResult(
        errors=errors, edm_max=edm_max, statistic=statistic, hessian=hessian, **out
    )
