"""The frequentist mass-ordering test from toy experiments.

The test statistic is T = χ²_min(IO) − χ²_min(NO) of one experiment (positive favours the
normal ordering). Its distributions under true NO (``t_no``) and true IO (``t_io``) give

* the median sensitivity to reject the wrong ordering: the p-value, under the wrong
  ordering's distribution, of the median experiment of the true one, as a one-sided Gaussian
  significance Z = Φ⁻¹(1 − p) (Blennow, Coloma, Huber, Schwetz, JHEP 03 (2014) 028, eq. 8;
  the convention of JUNO's NMO papers);
* the probability to reject the wrong ordering at Z σ: the fraction of true-ordering
  experiments beyond the wrong ordering's critical value T_c, P(T ≥ T_c | IO) = 1 − Φ(Z).

Where T is Gaussian with mean ±T₀ and σ = 2√T₀ under NO/IO (Qian et al., PRD 86, 113011
(2012); Blennow et al. §3), the median sensitivity is √T₀ and the 3σ rejection probability
Φ(√T₀ − 3): ``gaussian_median_sensitivity`` and ``gaussian_rejection_probability``, the
reference against which the Asimov Δχ² (≈ T₀) and the toys are compared. Pure numpy/scipy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

# One-sided tail beyond which an empirical quantile of n toys is trusted: n · p ≥ this many
# toys beyond it. Fewer, and the critical value comes from a Gaussian fitted to the toys.
MIN_TAIL_TOYS = 10


def gaussian_median_sensitivity(t0: float) -> float:
    """Median sensitivity (σ) for T ~ N(±T₀, 2√T₀): √T₀ (Blennow et al. 2014, eq. 22)."""
    return float(np.sqrt(max(t0, 0.0)))


def gaussian_rejection_probability(t0: float, z: float = 3.0) -> float:
    """P(reject the wrong ordering at z σ) for T ~ N(±T₀, 2√T₀): Φ(√T₀ − z)."""
    return float(stats.norm.cdf(np.sqrt(max(t0, 0.0)) - z))


def _finite(values: ArrayLike, what: str) -> NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        msg = f"{what}: {x.size} finite toy values; at least 2 are needed"
        raise ValueError(msg)
    return x


def reject_wrong_ordering(t_true: ArrayLike, t_wrong: ArrayLike, z: float = 3.0) -> dict[str, Any]:
    """Reject the wrong ordering, large T favouring the true one (pass −T for true IO).

    ``t_true``, ``t_wrong``: the statistic's toys under the true and the wrong ordering.
    Returns the median sensitivity (empirical p-value of the true median under ``t_wrong``,
    and from a Gaussian fitted to ``t_wrong``), the critical value T_c at ``z`` σ and the
    probability to reject at ``z`` σ; ``method`` says whether T_c is the empirical quantile
    (enough toys in the tail, ``MIN_TAIL_TOYS``) or the Gaussian one."""
    a = _finite(t_true, "t_true")
    b = _finite(t_wrong, "t_wrong")
    median = float(np.median(a))
    beyond = int(np.sum(b >= median))
    mu, sd = float(np.mean(b)), float(np.std(b, ddof=1))
    p_gauss = float(stats.norm.sf(median, mu, sd))
    alpha = float(stats.norm.sf(z))
    empirical = b.size * alpha >= MIN_TAIL_TOYS
    t_c = float(np.quantile(b, 1.0 - alpha)) if empirical else float(stats.norm.isf(alpha, mu, sd))
    return {
        "median_true": median,
        "p_value_empirical": beyond / b.size,
        # 0 of n toys beyond the median: only a bound, Z > Φ⁻¹(1 − 1/n)
        "median_sigma_empirical": float(stats.norm.isf(max(beyond, 1) / b.size)),
        "median_sigma_is_lower_bound": beyond == 0,
        "p_value_gaussian": p_gauss,
        "median_sigma_gaussian": float(stats.norm.isf(p_gauss)),
        "wrong_mean": mu,
        "wrong_std": sd,
        "true_mean": float(np.mean(a)),
        "true_std": float(np.std(a, ddof=1)),
        "z": z,
        "critical_value": t_c,
        "critical_value_method": "empirical" if empirical else "gaussian",
        "rejection_probability": float(np.mean(a >= t_c)),
        "n_true": int(a.size),
        "n_wrong": int(b.size),
    }


def nmo_sensitivity(t_no: ArrayLike, t_io: ArrayLike, z: float = 3.0) -> dict[str, Any]:
    """Both directions from T = χ²(IO) − χ²(NO) toys: rejecting IO if NO is true (large T),
    rejecting NO if IO is true (small T, i.e. large −T)."""
    no = np.asarray(t_no, dtype=np.float64)
    io = np.asarray(t_io, dtype=np.float64)
    return {
        "true_normal": reject_wrong_ordering(no, io, z),
        "true_inverted": reject_wrong_ordering(-io, -no, z),
    }
