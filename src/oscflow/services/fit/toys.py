"""Toy ensembles: N Poisson toys fitted one by one (warm-started at the Asimov best fit), pulls
(fit − truth)/error per parameter and the distribution of Δχ²(IO−NO)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .minimize import minimize


def pull_summary(pulls: NDArray[np.float64]) -> dict[str, float]:
    """Mean and width (sample standard deviation) of pulls, with their statistical errors."""
    n = len(pulls)
    mean = float(np.mean(pulls)) if n else float("nan")
    width = float(np.std(pulls, ddof=1)) if n > 1 else float("nan")
    return {
        "mean": mean,
        "mean_error": width / np.sqrt(n) if n > 1 else float("nan"),
        "width": width,
        "width_error": width / np.sqrt(2 * (n - 1)) if n > 1 else float("nan"),
        "n": n,
    }


def ensemble(fs: Any, toys: NDArray[np.float64]) -> dict[str, Any]:
    """Fit every toy; non-converged toys are counted and left out of the pulls."""
    from .run import _truth_vector, fit_options, ordering_models

    cfg = fs.cfg
    model = fs.model
    truth = _truth_vector(fs, model)
    options = fit_options(cfg)
    options["minos"] = False
    free = model.free
    values, errors, fvals, failed = [], [], [], 0
    nfcn, wall = 0, 0.0
    mo_models = ordering_models(fs) if cfg.orderings else None
    dchi2: list[float] = []
    for row in toys:
        out = minimize(model, row, str(cfg.statistic), start=truth, **options)
        nfcn += out.nfcn
        wall += out.wall_s
        if not out.valid:
            failed += 1
            continue
        values.append([out.value(n) for n in free])
        errors.append([out.error(n) for n in free])
        fvals.append(out.fval)
        if mo_models is not None:
            mins = {}
            for o, m in mo_models.items():
                f = out if m is model else minimize(m, row, str(cfg.statistic), **options)
                mins[o] = f.fval if f.valid else np.nan
            dchi2.append(mins["inverted"] - mins["normal"])
    v, e = np.asarray(values), np.asarray(errors)
    t = np.array([truth[model.index[n]] for n in free])
    pulls = (v - t) / e if len(v) else np.zeros((0, len(free)))
    out: dict[str, Any] = {
        "n_toys": len(toys),
        "n_failed": failed,
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
