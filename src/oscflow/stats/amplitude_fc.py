"""Feldman–Cousins construction in a plane (amplitude a, grid parameter m) for binned Poisson
counts whose expectation is linear in the amplitude: μ_k(a, m) = a·S_k(m) + B_k.

This is the shape of a short-baseline appearance search: a = sin²2θμe ∈ [0, 1] (the
probability is proportional to it), m = Δm²₄₁ on a grid, S(m) the spectrum per unit amplitude
and B the backgrounds. Pure numpy; every function is vectorised over toys.

Ordering (G. J. Feldman, R. D. Cousins, Phys. Rev. D 57, 3873 (1998), Sec. IV and VI.B): the
likelihood ratio t(a, m) = 2 [ℓ(â, m̂) − ℓ(a, m)], ℓ = Σ_k n_k ln μ_k − μ_k, with the best fit
over the physical region: â ∈ [0, 1] continuous (ℓ is concave in a, solved by Newton's method),
m̂ over the grid's m values (the same for data and toys, so the construction is consistent).
A point (a_i, m_j) is in the confidence region when t_obs(a_i, m_j) ≤ c_ij, the CL quantile of t
over toys thrown at that point.

Nuisance parameters are *marginalised* in the toys, not profiled: each toy's expectation is
drawn from the nuisances' constraints (:func:`construct` takes the toy means from the caller,
e.g. a per-toy energy scale and background normalisations), while t uses the nominal
expectation. The critical values then carry the nuisances' spread (a hybrid Bayesian–frequentist
construction in the spirit of R. D. Cousins, V. L. Highland, NIM A 320, 331 (1992)); profiling
them would need a fit per toy and grid point with the nuisances free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
# Toy expectations at grid column j: (signal per unit amplitude (T, K), background (T, K)).
ToyMeans = Callable[[int, np.random.Generator, int], tuple[FloatArray, FloatArray]]

NEWTON_ITERATIONS = 60
TINY = 1e-300


def loglike(n: ArrayLike, mu: ArrayLike) -> FloatArray:
    """ℓ = Σ_k n_k ln μ_k − μ_k over the last axis (ln n! dropped: it cancels in ratios)."""
    n_a = np.asarray(n, dtype=np.float64)
    mu_a = np.maximum(np.asarray(mu, dtype=np.float64), TINY)
    return np.asarray(np.sum(np.where(n_a > 0, n_a * np.log(mu_a), 0.0) - mu_a, axis=-1))


def best_amplitude(
    n: ArrayLike, signal: ArrayLike, background: ArrayLike, upper: float = 1.0
) -> FloatArray:
    """â = argmax over a ∈ [0, upper] of ℓ(n; a·S + B), broadcast over the leading axes.

    ℓ'(a) = Σ S_k (n_k/μ_k − 1) is convex and decreasing in a (B > 0), so Newton's method from
    a = 0 climbs monotonically to the root without overshooting it; ℓ'(0) ≤ 0 gives â = 0, a
    root above ``upper`` gives ``upper``."""
    n_a = np.asarray(n, dtype=np.float64)
    s = np.asarray(signal, dtype=np.float64)
    b = np.asarray(background, dtype=np.float64)
    shape = np.broadcast_shapes(n_a.shape, s.shape, b.shape)[:-1]
    a = np.zeros(shape)
    for _ in range(NEWTON_ITERATIONS):
        mu = np.maximum(a[..., None] * s + b, TINY)
        grad = np.sum(s * (n_a / mu - 1.0), axis=-1)
        curv = np.sum(s * s * n_a / (mu * mu), axis=-1)
        step = np.divide(grad, curv, out=np.zeros_like(grad), where=curv > 0)
        step = np.where(grad > 0, step, 0.0)
        new = np.minimum(a + step, upper)
        if np.all(np.abs(new - a) <= 1e-12 * np.maximum(a, 1e-12)):
            a = new
            break
        a = new
    return a


def best_fit(
    n: ArrayLike, templates: ArrayLike, background: ArrayLike
) -> tuple[FloatArray, FloatArray, NDArray[np.intp]]:
    """The best fit over the plane for counts ``n`` (T, K): ℓ_max (T,), â (T,) and the grid
    index ĵ (T,) of m̂; ``templates`` S (D, K) per unit amplitude, ``background`` B (K,)."""
    n_a = np.asarray(n, dtype=np.float64)[:, None, :]
    s = np.asarray(templates, dtype=np.float64)[None, :, :]
    b = np.asarray(background, dtype=np.float64)
    a = best_amplitude(n_a, s, b)  # (T, D)
    ll = loglike(n_a, a[..., None] * s + b)  # (T, D)
    j = np.argmax(ll, axis=1)
    rows = np.arange(len(j))
    return ll[rows, j], a[rows, j], j


def statistic_grid(
    n: ArrayLike, amplitudes: ArrayLike, templates: ArrayLike, background: ArrayLike
) -> FloatArray:
    """t(a_i, m_j) for counts ``n`` (T, K) at every grid point: (T, A, D)."""
    n_a = np.asarray(n, dtype=np.float64)
    s = np.asarray(templates, dtype=np.float64)
    b = np.asarray(background, dtype=np.float64)
    a = np.asarray(amplitudes, dtype=np.float64)
    ll_max = best_fit(n_a, s, b)[0]
    mu = a[:, None, None] * s[None, :, :] + b  # (A, D, K)
    ll = loglike(n_a[:, None, None, :], mu[None])  # (T, A, D)
    return np.maximum(2.0 * (ll_max[:, None, None] - ll), 0.0)


def statistic_at(
    n: ArrayLike, amplitude: float, j: int, templates: ArrayLike, background: ArrayLike
) -> FloatArray:
    """t(a, m_j) for counts ``n`` (T, K) at one grid point: (T,)."""
    n_a = np.asarray(n, dtype=np.float64)
    s = np.asarray(templates, dtype=np.float64)
    b = np.asarray(background, dtype=np.float64)
    ll_max = best_fit(n_a, s, b)[0]
    ll = loglike(n_a, amplitude * s[j] + b)
    return np.maximum(2.0 * (ll_max - ll), 0.0)


@dataclass(frozen=True)
class Construction:
    """Critical values c (A, D) of t at each grid point (the ``cl`` quantile over ``n_toys``
    toys, the smallest toy value at or above it: a region that covers at least ``cl``)."""

    amplitudes: FloatArray
    critical: FloatArray
    cl: float
    n_toys: int


def construct(
    amplitudes: ArrayLike,
    templates: ArrayLike,
    background: ArrayLike,
    toy_means: ToyMeans,
    n_toys: int,
    cl: float,
    rng: np.random.Generator,
) -> Construction:
    """The Neyman construction with FC ordering: for each grid column j, ``toy_means(j, rng,
    n_toys)`` gives each toy's signal per unit amplitude and background (the nuisances drawn
    from their constraints); for each amplitude a_i, toys n ~ Poisson(a_i·S_t + B_t) and
    c_ij = quantile_cl t(a_i, m_j). t uses the nominal ``templates`` and ``background``."""
    a = np.asarray(amplitudes, dtype=np.float64)
    s = np.asarray(templates, dtype=np.float64)
    b = np.asarray(background, dtype=np.float64)
    check_amplitudes(a)
    if not 0 < cl < 1:
        msg = f"confidence level {cl} is outside (0, 1)"
        raise ValueError(msg)
    critical = np.empty((a.size, s.shape[0]))
    for j in range(s.shape[0]):
        sig, bkg = toy_means(j, rng, n_toys)
        for i, amp in enumerate(a):
            n = rng.poisson(np.maximum(amp * sig + bkg, 0.0))
            t = statistic_at(n, float(amp), j, s, b)
            critical[i, j] = np.quantile(t, cl, method="higher")
    return Construction(a, critical, float(cl), int(n_toys))


def check_amplitudes(a: FloatArray) -> None:
    if a.ndim != 1 or a.size < 2 or np.any(np.diff(a) <= 0):
        msg = "the amplitude grid must be a strictly increasing 1-D array of at least 2 values"
        raise ValueError(msg)
    if a[0] < 0 or a[-1] > 1:
        msg = f"amplitudes must lie in [0, 1], not [{a[0]:g}, {a[-1]:g}]"
        raise ValueError(msg)


def tie_tolerance(critical: ArrayLike) -> FloatArray:
    """How far above a critical value c a statistic still counts as t = c (accepted).

    With counting data t takes a few discrete values, and the critical value (a toy's t,
    ``quantile(method="higher")``) is often the observed count's own t, computed once per toy in
    ``statistic_at`` and once per grid in ``statistic_grid``: equal in exact arithmetic, apart
    by rounding (~1e-15) in floating point. A tie is an acceptance (t ≤ c); without a
    tolerance rounding decided it. 1e-9 relative is far above rounding and far below any real
    gap between two counts' t."""
    return 1e-9 * (1.0 + np.abs(np.asarray(critical, dtype=np.float64)))


def upper_limits(t: ArrayLike, construction: Construction) -> FloatArray:
    """The upper end of the confidence region in a at each grid column, for statistics ``t``
    (..., A, D): the last a_i of the first run of accepted amplitudes (FC's interval; isolated
    re-accepted points above it, where a discrete distribution's 90 % crossing sits within toy
    noise of one count's rank, are not part of it), interpolated linearly in t − c to the next
    (rejected) grid value; a column accepted up to the last amplitude gives that amplitude
    (no exclusion), one with no accepted point gives NaN (the region misses the column)."""
    t_a = np.asarray(t, dtype=np.float64)
    a = construction.amplitudes
    margin = t_a - construction.critical  # ≤ 0: accepted
    accepted = margin <= tie_tolerance(construction.critical)
    n_a = a.size
    started = np.cumsum(accepted, axis=-2) > 0
    ended = started & ~accepted
    first_end = np.where(ended.any(axis=-2), np.argmax(ended, axis=-2), n_a)
    idx = np.where(accepted.any(axis=-2), first_end - 1, -1)  # −1: none accepted
    out = np.full(idx.shape, np.nan)
    top = idx == n_a - 1
    out[top] = a[-1]
    inner = (idx >= 0) & ~top
    if np.any(inner):
        i = idx[inner]
        m = np.moveaxis(margin, -2, -1)[inner]  # (n, A)
        m0 = np.take_along_axis(m, i[:, None], 1)[:, 0]
        m1 = np.take_along_axis(m, i[:, None] + 1, 1)[:, 0]
        frac = np.clip(-m0 / np.maximum(m1 - m0, 1e-300), 0.0, 1.0)
        out[inner] = a[i] + frac * (a[i + 1] - a[i])
    return out


def coverage(
    amplitude: float,
    j: int,
    critical: float,
    templates: ArrayLike,
    background: ArrayLike,
    toy_means: ToyMeans,
    n_toys: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Fraction of fresh toys at (a, m_j) whose confidence region contains the truth, i.e.
    t(a, m_j) ≤ c, with its binomial standard error."""
    sig, bkg = toy_means(j, rng, n_toys)
    n = rng.poisson(np.maximum(amplitude * sig + bkg, 0.0))
    t = statistic_at(n, amplitude, j, templates, background)
    frac = float(np.mean(t <= critical + tie_tolerance(critical)))
    return {"fraction": frac, "error": float(np.sqrt(max(frac * (1 - frac), 1e-12) / n_toys))}
