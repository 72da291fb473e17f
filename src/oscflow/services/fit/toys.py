"""Toy ensembles: N Poisson toys fitted (started at the truth; all at once by the batched
fitter, ``fitter=batched``, the default, or one by one by iminuit, ``fitter=iminuit``), pulls
(fit − truth)/error per parameter and the distribution of Δχ²(IO−NO); and the goodness-of-fit
p-value of a fit from toys drawn at its best fit.

Each toy also draws the centres of the Gaussian priors (the auxiliary measurements that
constrain the nuisances) from N(truth, σ), unless ``observation.fluctuate_priors=false``:
otherwise constrained parameters would show pulls narrower than 1 by construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .batched import ToyFits, check_statistic, fit_toys, toy_fitter
from .minimize import minimize


def pull_summary(pulls: NDArray[np.float64]) -> dict[str, float]:
    """Mean and width (sample standard deviation) of pulls, with their statistical errors; and
    the outlier-robust median and half-width of the central 68 % (a fit stuck in a local
    minimum of a surrogate's piecewise-linear surface can have a far too small HESSE error)."""
    n = len(pulls)
    q16, q50, q84 = np.percentile(pulls, [15.87, 50.0, 84.13]) if n else (np.nan,) * 3
    mean = float(np.mean(pulls)) if n else float("nan")
    width = float(np.std(pulls, ddof=1)) if n > 1 else float("nan")
    return {
        "mean": mean,
        "mean_error": width / np.sqrt(n) if n > 1 else float("nan"),
        "width": width,
        "width_error": width / np.sqrt(2 * (n - 1)) if n > 1 else float("nan"),
        "median": float(q50),
        "half_width_68": float(0.5 * (q84 - q16)),
        "n_beyond_5": int(np.sum(np.abs(pulls) > 5)),
        "n": n,
    }


def _prior_draws(model: Any, truth: NDArray, n: int, seed: int) -> NDArray[np.float64]:
    """(n, n_priors) prior centres ~ N(truth, σ), from their own seeded stream."""
    idx = [model.index[p] for p in model.prior_names]
    rng = np.random.default_rng([seed, 1])
    return truth[idx] + rng.standard_normal((n, len(idx))) * model.prior_widths()


def iminuit_toys(
    model: Any,
    counts: NDArray[np.float64],
    statistic: str,
    options: dict[str, Any],
    *,
    start: NDArray[np.float64] | None = None,
    centres: NDArray[np.float64] | None = None,
) -> ToyFits:
    """Fit every row of ``counts`` one at a time with iminuit (``minimize``): the reference
    the batched fitter (``batched.fit_toys``) is checked against; same ``ToyFits``."""
    p = len(model.names)
    n = len(counts)
    values, errors = np.full((n, p), np.nan), np.full((n, p), np.nan)
    fval, valid = np.full(n, np.nan), np.zeros(n, dtype=bool)
    flags = dict.fromkeys(IMINUIT_FLAGS, 0)
    # √diag of HESSE's covariance: for a limited parameter Minuit2's error (``errors``) maps
    # ±σ through its sine transformation of the limits (Int2extError) and differs from it
    # when σ is not small against the distance to the limits.
    hesse = np.full((n, p), np.nan)
    nfcn, wall = 0, 0.0
    for k, row in enumerate(counts):
        m = model.with_prior_centres(centres[k]) if centres is not None else model
        out = minimize(m, row, statistic, start=start, **options)
        nfcn += out.nfcn
        wall += out.wall_s
        values[k], errors[k], fval[k], valid[k] = out.values, out.errors, out.fval, out.valid
        if out.minuit is not None and out.minuit.covariance is not None:
            hesse[k] = np.sqrt(np.clip(np.diag(np.asarray(out.minuit.covariance)), 0, None))
        for name, (key, bad_when_set) in IMINUIT_FLAGS.items():
            flags[name] += int(bool(out.flags[key]) == bad_when_set)
    return ToyFits(
        values, errors, fval, valid, flags, nfcn, wall, "iminuit", {"hesse_errors": hesse}
    )


# Convergence counts of the iminuit path: name → (FitOutcome flag, whether the flag being set
# (True, a non-empty list) is the failure; False: its being unset is).
IMINUIT_FLAGS: dict[str, tuple[str, bool]] = {
    "not_converged": ("is_valid", False),
    "not_accurate_covar": ("has_accurate_covar", False),
    "hesse_failed": ("hesse_failed", True),
    "reached_call_limit": ("has_reached_call_limit", True),
    "at_limit": ("has_parameters_at_limit", True),
    "at_training_range_edge": ("at_training_range_edge", True),
}


@dataclass(frozen=True)
class Agreement:
    """Two fitters' ``ToyFits`` of the same toys compared toy by toy (free parameters only, the
    toys valid in both, ``both``): best-fit difference in the reference's σ (``dev``), relative
    error difference against the reference's reported errors (``rel``) and against √diag of
    its HESSE covariance (``rel_cov``, iminuit's ``hesse_errors``), the reference's values,
    errors, and distance to each parameter's limits in its σ (``margin``)."""

    both: NDArray[np.bool_]
    dev: NDArray[np.float64]
    rel: NDArray[np.float64]
    rel_cov: NDArray[np.float64]
    values: NDArray[np.float64]
    errors: NDArray[np.float64]
    margin: NDArray[np.float64]


def agreement(model: Any, fits: ToyFits, ref: ToyFits) -> Agreement:
    """``fits`` against the reference ``ref`` (iminuit, one toy at a time), toy by toy."""
    free = [model.index[f] for f in model.free]
    both = fits.valid & ref.valid
    err = ref.errors[both][:, free]
    values = ref.values[both][:, free]
    mine = fits.errors[both][:, free]
    lims = np.array([model.parameters[i].limits for i in free])
    return Agreement(
        both=both,
        dev=np.abs(fits.values[both][:, free] - values) / err,
        rel=np.abs(mine / err - 1),
        rel_cov=np.abs(mine / ref.details["hesse_errors"][both][:, free] - 1),
        values=values,
        errors=err,
        margin=np.minimum(values - lims[:, 0], lims[:, 1] - values) / err,
    )


def fit_ensemble(
    model: Any,
    counts: NDArray[np.float64],
    statistic: str,
    options: dict[str, Any],
    fitter: str,
    *,
    start: NDArray[np.float64] | None = None,
    centres: NDArray[np.float64] | None = None,
    hessian: Literal["exact", "fisher"] = "exact",
) -> ToyFits:
    """All toys of ``counts`` with ``fitter`` ("batched" or "iminuit"), same inputs either way.
    ``hessian="fisher"``: the batched fitter's errors from the Fisher information, skipping the
    exact Hessian's extra model calls (most of a toy fit's cost when only the minima matter)."""
    if fitter == "batched":
        return fit_toys(
            model,
            counts,
            statistic,
            start=start,
            centres=centres,
            tolerance=float(options["tolerance"]),
            max_calls=options.get("ncall"),
            hessian=hessian,
        )
    return iminuit_toys(model, counts, statistic, options, start=start, centres=centres)


def ensemble(
    fs: Any, toys: NDArray[np.float64], hessian: Literal["exact", "fisher"] = "exact"
) -> dict[str, Any]:
    """Fit every toy (``fitter``: batched by default, or iminuit one at a time); non-valid fits
    are counted, listed (``failed_toys``) and left out of the pulls and Δχ². ``hessian``: see
    ``fit_ensemble`` (the pulls' errors then come from the Fisher information)."""
    from .setup import fit_options, ordering_models, truth_vector

    cfg = fs.cfg
    base = fs.model
    statistic = str(cfg.statistic)
    fitter = toy_fitter(cfg, len(toys))
    truth = truth_vector(fs, base)
    fluctuate = bool(cfg.observation.get("fluctuate_priors", True))
    centres = _prior_draws(base, truth, len(toys), int(cfg.observation.get("seed", 0)))
    options = fit_options(cfg)
    options["minos"] = False
    mo_base = ordering_models(fs) if cfg.orderings else None
    if fitter == "batched":
        for m in [base, *(mo_base or {}).values()]:
            check_statistic(m, statistic)
    per_toy = centres if fluctuate else None
    fits = fit_ensemble(
        base, toys, statistic, options, fitter, start=truth, centres=per_toy, hessian=hessian
    )
    ok = fits.valid
    free = base.free
    cols = [base.index[n] for n in free]
    v, e = fits.values[ok][:, cols], fits.errors[ok][:, cols]
    fvals = fits.fval[ok]
    nfcn, wall = fits.nfcn, fits.wall_s
    dchi2: list[float] = []
    if mo_base is not None and ok.any():
        mins = {}
        for o, m in mo_base.items():
            if m.predictor is base.predictor:
                mins[o] = fvals
                continue
            other = fit_ensemble(
                m,
                toys[ok],
                statistic,
                options,
                fitter,
                centres=per_toy[ok] if per_toy is not None else None,
                hessian=hessian,
            )
            nfcn += other.nfcn
            wall += other.wall_s
            mins[o] = np.where(other.valid, other.fval, np.nan)
        dchi2 = list(mins["inverted"] - mins["normal"])
    t = np.array([truth[base.index[n]] for n in free])
    pulls = (v - t) / e if len(v) else np.zeros((0, len(free)))
    out: dict[str, Any] = {
        "n_toys": len(toys),
        "n_failed": int((~ok).sum()),
        "fitter": fitter,
        "convergence": fits.convergence(),
        "failed_toys": np.flatnonzero(~ok).tolist(),
        "priors_fluctuated": fluctuate,
        "pulls": {n: pull_summary(pulls[:, j]) for j, n in enumerate(free)},
        "mean_error": {n: float(np.mean(e[:, j])) if len(e) else None for j, n in enumerate(free)},
        "statistic": {
            "mean": float(np.mean(fvals)) if len(fvals) else None,
            "values": [float(x) for x in fvals],
        },
        "nfcn_total": nfcn,
        "fit_wall_s_total": wall,
        "pull_values": {n: pulls[:, j].tolist() for j, n in enumerate(free)},
    }
    if dchi2:
        d = np.asarray(dchi2)
        d = d[np.isfinite(d)]
        out["delta_chi2_io_minus_no"] = {
            "mean": float(np.mean(d)) if d.size else None,
            "median": float(np.median(d)) if d.size else None,
            "std": float(np.std(d, ddof=1)) if d.size > 1 else None,
            "values": d.tolist(),
        }
    return out


def goodness_of_fit(fs: Any, main: Any, n: int, seed: int) -> dict[str, Any]:
    """p-value of the fit's statistic: the fraction of toys drawn at the best fit (counts and
    prior centres) whose refitted statistic is at least as large (``fitter`` as for toys)."""
    from .observation import toys as draw
    from .setup import fit_options

    model = fs.model
    statistic = str(fs.cfg.statistic)
    fitter = toy_fitter(fs.cfg, n)
    options = {**fit_options(fs.cfg), "minos": False}
    counts = draw(model.expected(main.values), model.edges, {}, n, seed).counts
    centres = _prior_draws(model, main.values, n, seed)
    fits = fit_ensemble(
        model, counts, statistic, options, fitter, start=main.values, centres=centres
    )
    v = fits.fval[fits.valid]
    return {
        "n_toys": n,
        "n_failed": int((~fits.valid).sum()),
        "fitter": fitter,
        "convergence": fits.convergence(),
        "statistic": main.fval,
        "p_value": float(np.mean(v >= main.fval)) if v.size else None,
        "toy_statistic_mean": float(np.mean(v)) if v.size else None,
    }
