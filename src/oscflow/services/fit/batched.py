"""Toy ensembles through the batched fitter (``stats.batched_fit.fit_batch``): every toy's fit
at once, with the same cost function, start, priors (per-toy fluctuated centres), bounds,
free/fixed parameters and validity rule as the one-at-a-time iminuit path (``minimize``).

What each fit gets, as ``minimize`` does it:

* start: the given start (the truth for toys), then the batched 1-D pre-scan of Δm²32
  (``prescan_start``'s grid, per toy: the χ² in Δm²31 has one local minimum per period);
* the statistic (the four of ``stats.likelihood`` with derivatives) plus the Gaussian pulls,
  priors centred per toy; bounds = the parameters' limits (a surrogate's training ranges);
* errors: HESSE-equivalent (``hessian="exact"``); MIGRAD's EDM criterion with ``tolerance``;
  ``max_calls`` caps the Levenberg–Marquardt iterations (one model call each);
* valid = converged, Hessian positive definite, and (surrogate) no free oscillation or detector
  parameter at the edge of the training range (``minimize.at_training_range_edge``).

``strategy`` is MIGRAD's and has no meaning here (the curvature is always the full Fisher
information, the errors always the exact Hessian).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError
from ...stats.batched_fit import fit_batch
from ...stats.likelihood import DERIVATIVES, gaussian_pull
from .minimize import PRESCAN, at_training_range_edge
from .model import FitModel

FITTERS = ("auto", "batched", "iminuit")
PRESCAN_ROWS = 2_000_000  # toys × grid × bins evaluated at a time by the pre-scan


@dataclass
class ToyFits:
    """N fits of one model: full parameter vectors and errors (N, P), statistic (N,), which are
    valid, counts of each failure mode, cost."""

    values: NDArray[np.float64]
    errors: NDArray[np.float64]
    fval: NDArray[np.float64]
    valid: NDArray[np.bool_]
    flags: dict[str, int]
    nfcn: int
    wall_s: float
    fitter: str
    details: dict[str, Any] = field(default_factory=dict)

    def convergence(self) -> dict[str, Any]:
        """Per-fit convergence counts for the JSON result."""
        n = len(self.valid)
        return {
            "n_fits": n,
            "n_valid": int(self.valid.sum()),
            "n_not_valid": n - int(self.valid.sum()),
            **self.flags,
        }


def toy_fitter(cfg: Any, n_toys: int) -> str:
    """The fitter for ``n_toys`` toy fits: ``fitter`` (auto → batched for toys)."""
    name = str(cfg.get("fitter", "auto"))
    if name not in FITTERS:
        raise ConfigError("fitter", f"{name!r} is unknown", f"use one of {', '.join(FITTERS)}")
    if name == "batched" and n_toys == 0:
        raise ConfigError(
            "fitter",
            "fitter=batched fits toy ensembles (observation=toy with n_toys > 1, or gof_toys > 0); "
            "this run has none, and a single fit is always iminuit's (MIGRAD, HESSE, MINOS, "
            "scans)",
            "drop fitter=batched (fitter=auto), or ask for toys",
        )
    return "iminuit" if name == "iminuit" else "batched"


def check_statistic(model: FitModel, statistic: str) -> None:
    """The batched fitter needs the statistic's derivatives (``stats.likelihood``)."""
    model.terms(statistic)
    if statistic not in DERIVATIVES:
        raise ConfigError(
            "fitter",
            f"fitter=batched needs the derivatives of the statistic; {statistic!r} (the "
            f"experiment's own) has none (batched statistics: {', '.join(DERIVATIVES)})",
            "use fitter=iminuit for this statistic, or one of those",
        )


def _prior_arrays(
    model: FitModel, centres: NDArray[np.float64] | None, n: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """prior_center (N, P) and prior_sigma (P,), NaN where a parameter has no prior."""
    p = len(model.names)
    c = np.full((n, p), np.nan)
    s = np.full(p, np.nan)
    idx = [model.index[name] for name in model.prior_names]
    if idx:
        c[:, idx] = model._prior_c if centres is None else np.asarray(centres, dtype=np.float64)
        s[idx] = model.prior_widths()
    return c, s


def prescan_starts(
    model: FitModel,
    counts: NDArray[np.float64],
    statistic: str,
    start: NDArray[np.float64],
    prior_c: NDArray[np.float64],
    prior_s: NDArray[np.float64],
) -> NDArray[np.float64]:
    """(N, P) starts: ``start`` with Δm²32 at the grid minimum of each toy's statistic (the grid
    of ``minimize.prescan_start``, one batched prediction shared by all toys)."""
    name, n_grid, width = PRESCAN.name, PRESCAN.n, PRESCAN.width
    n = len(counts)
    out = np.broadcast_to(start, (n, len(start))).copy()
    if name not in model.index or model.parameters[model.index[name]].fixed:
        return out
    i = model.index[name]
    par = model.parameters[i]
    grid = np.clip(
        np.linspace(start[i] - width * par.step, start[i] + width * par.step, n_grid),
        par.limits[0],
        par.limits[1],
    )
    x = np.repeat(start[None, :], n_grid, axis=0)
    x[:, i] = grid
    mu = model.expected_batch(x)  # (G, K)
    has = np.isfinite(prior_s)
    pulls = np.zeros((n, n_grid))
    if has.any():
        pulls = np.sum(gaussian_pull(x[None, :, has], prior_c[:, None, has], prior_s[has]), axis=-1)
    terms = model.terms(statistic)
    step = max(1, PRESCAN_ROWS // (n_grid * counts.shape[1]))
    for a in range(0, n, step):
        sl = slice(a, a + step)
        stat = terms(counts[sl, None, :], mu[None, :, :]).sum(axis=-1) + pulls[sl]
        out[sl, i] = grid[np.argmin(stat, axis=1)]
    return out


def fit_toys(
    model: FitModel,
    counts: NDArray[np.float64],
    statistic: str,
    *,
    start: NDArray[np.float64] | None = None,
    centres: NDArray[np.float64] | None = None,
    tolerance: float = 0.1,
    max_calls: int | None = None,
    prescan: bool = True,
    hessian: Literal["exact", "fisher"] = "exact",
) -> ToyFits:
    """Fit every row of ``counts`` (N, K) with ``model`` at once; ``centres`` (N, n_priors):
    each toy's prior centres (order of ``model.prior_names``), None for the model's own.
    ``start``: (P,) for every fit, or (N, P) per fit (then ``prescan=False``).
    ``hessian``: ``fit_batch``'s; "fisher" skips the exact Hessian's P extra model calls where the errors
    are not used (a scan's grid fits need only the statistic)."""
    check_statistic(model, statistic)
    t0 = time.perf_counter()
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n = len(counts)
    x0 = model.starts() if start is None else np.asarray(start, dtype=np.float64)
    if x0.ndim == 2 and prescan:
        raise ValueError("per-fit starts (N, P) are used as given: pass prescan=False")
    prior_c, prior_s = _prior_arrays(model, centres, n)
    starts = (
        prescan_starts(model, counts, statistic, x0, prior_c, prior_s)
        if prescan
        else np.broadcast_to(x0, (n, x0.shape[-1])).copy()
    )
    lower, upper = np.array([p.limits for p in model.parameters], dtype=np.float64).T
    fixed = np.array([p.fixed for p in model.parameters])

    def fn(theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return model.expected_and_jacobian(theta, free_only=True)

    res = fit_batch(
        fn,
        counts,
        starts,
        lower=lower,
        upper=upper,
        prior_center=prior_c,
        prior_sigma=prior_s,
        fixed=fixed,
        statistic=statistic,
        tolerance=tolerance,
        max_iter=200 if max_calls is None else int(max_calls),
        hessian=hessian,
        linear=model.linear(),
    )
    edge = at_training_range_edge(model, res.values)
    valid = res.valid & ~edge
    flags = {name: int(v.sum()) for name, v in res.flags.items()}
    flags["not_converged"] = int((~res.converged).sum())
    flags["at_training_range_edge"] = int(edge.sum())
    return ToyFits(
        values=res.values,
        errors=res.errors,
        fval=res.fval,
        valid=valid,
        flags=flags,
        nfcn=int(res.n_calls.sum()),
        wall_s=time.perf_counter() - t0,
        fitter="batched",
        details={"n_iter_median": float(np.median(res.n_iter)), "edm_max": res.edm_max},
    )
