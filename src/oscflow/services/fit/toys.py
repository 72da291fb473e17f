"""Toy ensembles: N Poisson toys fitted one by one (started at the truth), pulls
(fit − truth)/error per parameter and the distribution of Δχ²(IO−NO); and the goodness-of-fit
p-value of a fit from toys drawn at its best fit.

Each toy also draws the centres of the Gaussian priors (the auxiliary measurements that
constrain the nuisances) from N(truth, σ), unless ``observation.fluctuate_priors=false``:
otherwise constrained parameters would show pulls narrower than 1 by construction."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

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


def ensemble(fs: Any, toys: NDArray[np.float64]) -> dict[str, Any]:
    """Fit every toy; non-converged toys are counted and left out of the pulls."""
    from .setup import fit_options, ordering_models, truth_vector

    cfg = fs.cfg
    base = fs.model
    truth = truth_vector(fs, base)
    fluctuate = bool(cfg.observation.get("fluctuate_priors", True))
    centres = _prior_draws(base, truth, len(toys), int(cfg.observation.get("seed", 0)))
    options = fit_options(cfg)
    options["minos"] = False
    values, errors, fvals, failed = [], [], [], 0
    nfcn, wall = 0, 0.0
    free = base.free
    mo_base = ordering_models(fs) if cfg.orderings else None
    dchi2: list[float] = []
    for k, row in enumerate(toys):
        model = base.with_prior_centres(centres[k]) if fluctuate else base
        mo_models = (
            {o: m.with_prior_centres(centres[k]) if fluctuate else m for o, m in mo_base.items()}
            if mo_base is not None
            else None
        )
        fit = minimize(model, row, str(cfg.statistic), start=truth, **options)
        nfcn += fit.nfcn
        wall += fit.wall_s
        if not fit.valid:
            failed += 1
            continue
        values.append([fit.value(n) for n in free])
        errors.append([fit.error(n) for n in free])
        fvals.append(fit.fval)
        if mo_models is not None:
            mins = {}
            for o, m in mo_models.items():
                same = m.predictor is base.predictor
                f = fit if same else minimize(m, row, str(cfg.statistic), **options)
                mins[o] = f.fval if f.valid else np.nan
            dchi2.append(mins["inverted"] - mins["normal"])
    v, e = np.asarray(values), np.asarray(errors)
    t = np.array([truth[base.index[n]] for n in free])
    pulls = (v - t) / e if len(v) else np.zeros((0, len(free)))
    out: dict[str, Any] = {
        "n_toys": len(toys),
        "n_failed": failed,
        "priors_fluctuated": fluctuate,
        "pulls": {n: pull_summary(pulls[:, j]) for j, n in enumerate(free)},
        "mean_error": {n: float(np.mean(e[:, j])) if len(e) else None for j, n in enumerate(free)},
        "statistic": {
            "mean": float(np.mean(fvals)) if fvals else None,
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
    prior centres) whose refitted statistic is at least as large."""
    from .observation import toys as draw
    from .setup import fit_options

    model = fs.model
    options = {**fit_options(fs.cfg), "minos": False}
    counts = draw(model.expected(main.values), model.edges, {}, n, seed).counts
    centres = _prior_draws(model, main.values, n, seed)
    values, failed = [], 0
    for k, row in enumerate(counts):
        out = minimize(
            model.with_prior_centres(centres[k]),
            row,
            str(fs.cfg.statistic),
            start=main.values,
            **options,
        )
        if out.valid:
            values.append(out.fval)
        else:
            failed += 1
    v = np.asarray(values)
    return {
        "n_toys": n,
        "n_failed": failed,
        "statistic": main.fval,
        "p_value": float(np.mean(v >= main.fval)) if v.size else None,
        "toy_statistic_mean": float(np.mean(v)) if v.size else None,
    }
