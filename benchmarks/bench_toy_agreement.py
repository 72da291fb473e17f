"""Issue 16's agreement criterion on a registered surrogate: N JUNO toys (full configuration: 4
oscillation parameters, flux and 7 background normalisations free, priors fluctuated per toy,
6 years, Asimov of the surrogate) fitted by the batched fitter and by iminuit MIGRAD + HESSE one
at a time, compared toy by toy — best fits in iminuit's σ, errors against iminuit's reported
errors and against √diag of its HESSE covariance (they differ for a parameter near a limit:
Minuit2 maps ±σ through its sine transformation, Int2extError). Both at tight tolerances
(iminuit EDM < 2e-8, batched EDM < 2e-5) so that 0.01σ is resolved (tests/test_batched_fit.py).

A third, independent reference for the errors: the Hessian of each toy's full statistic
(Baker–Cousins χ² + prior pulls, in the parameters themselves, no limit transformation) by
central second differences of its values at iminuit's minimum (steps 0.02 σ; no Jacobian, no
fitter code), cov = 2 H⁻¹. Errors that agree with it but not with iminuit's are iminuit's
numerical HESSE, not the batched fitter.

Prints one JSON line: the fractions meeting each criterion, per-parameter maxima, what the
toys outside have in common (a parameter within 0.1σ of a limit), and both fitters' wall time.

    .venv/bin/python benchmarks/bench_toy_agreement.py --model models:/juno-spectrum@champion \\
        --tracking-uri http://127.0.0.1:5000 --toys 1000
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray


def difference_errors(
    model: Any,
    counts: NDArray[np.float64],
    centres: NDArray[np.float64],
    values: NDArray[np.float64],
    sigma: NDArray[np.float64],
    free: list[int],
    statistic: str = "poisson",
    rel_step: float = 0.02,
) -> NDArray[np.float64]:
    """√diag(2 H⁻¹) per toy (N, P; NaN where not positive definite or a step would leave the
    limits), H from central second differences of the statistic's values at ``values``."""
    terms = model.terms(statistic)
    n_free = len(free)
    rows = [np.zeros(n_free)]
    for a in range(n_free):
        for s in (1.0, -1.0):
            e = np.zeros(n_free)
            e[a] = s
            rows.append(e)
    pairs = [(a, b) for a in range(n_free) for b in range(a + 1, n_free)]
    for a, b in pairs:
        for sa, sb in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            e = np.zeros(n_free)
            e[a], e[b] = sa, sb
            rows.append(e)
    pattern = np.array(rows)
    lims = np.array([model.parameters[i].limits for i in free])
    out = np.full(values.shape, np.nan)
    for k in range(len(values)):
        h = rel_step * sigma[k, free]
        x0 = values[k, free]
        if np.any(x0 - 2 * h < lims[:, 0]) or np.any(x0 + 2 * h > lims[:, 1]):
            continue
        x = np.repeat(values[k][None, :], len(pattern), axis=0)
        x[:, free] += pattern * h
        m = model.with_prior_centres(centres[k])
        f = np.sum(terms(counts[k], m.expected_batch(x)), axis=-1) + m.pulls(x)
        hess = np.zeros((n_free, n_free))
        for a in range(n_free):
            hess[a, a] = (f[1 + 2 * a] - 2 * f[0] + f[2 + 2 * a]) / h[a] ** 2
        base = 1 + 2 * n_free
        for q, (a, b) in enumerate(pairs):
            pp, pm, mp, mm = f[base + 4 * q : base + 4 * q + 4]
            hess[a, b] = hess[b, a] = (pp - pm - mp + mm) / (4 * h[a] * h[b])
        w = np.linalg.eigvalsh(hess)
        if w.min() <= 0:
            continue
        out[k, free] = np.sqrt(np.diag(2.0 * np.linalg.inv(hess)))
    return out


def main() -> dict[str, object]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="models:/juno-spectrum@champion")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--toys", type=int, default=1000)
    parser.add_argument("overrides", nargs="*", help="extra fit config overrides")
    args = parser.parse_args()

    from oscflow.config import load
    from oscflow.services.fit.setup import fit_options, setup, truth_vector
    from oscflow.services.fit.toys import _prior_draws, agreement, fit_ensemble

    n = args.toys
    cfg = load(
        "fit",
        [
            f"model_uri={args.model}",
            f"logger.tracking_uri={args.tracking_uri}",
            "orderings=false",
            "observation.generator=model",
            "observation=toy",
            f"observation.n_toys={n}",
            *args.overrides,
        ],
    )
    fs = setup(cfg)
    model, toys = fs.model, fs.observation.counts
    truth = truth_vector(fs, model)
    centres = _prior_draws(model, truth, n, int(cfg.observation.seed))
    options = {**fit_options(cfg), "minos": False}
    t0 = time.perf_counter()
    batched = fit_ensemble(
        model, toys, "poisson", {**options, "tolerance": 0.01}, "batched", start=truth,
        centres=centres,
    )  # fmt: skip
    t1 = time.perf_counter()
    ref = fit_ensemble(
        model, toys, "poisson", {**options, "tolerance": 1e-4}, "iminuit", start=truth,
        centres=centres,
    )  # fmt: skip
    t2 = time.perf_counter()
    free = [model.index[f] for f in model.free]
    a = agreement(model, batched, ref)
    t3 = time.perf_counter()
    both = a.both
    fd = difference_errors(
        model, toys[both], centres[both], ref.values[both], ref.errors[both], free
    )[:, free]
    t4 = time.perf_counter()
    has_fd = np.isfinite(fd).all(1)
    rel_fd_batched = np.abs(batched.errors[both][:, free] / fd - 1)[has_fd]
    rel_fd_iminuit = np.abs(ref.errors[both][:, free] / fd - 1)[has_fd]
    rel_fd_hesse = np.abs(ref.details["hesse_errors"][both][:, free] / fd - 1)[has_fd]
    both, dev, rel, rel_cov = a.both, a.dev, a.rel, a.rel_cov
    near = a.margin < 0.1
    ok = (dev.max(1) < 0.01) & (rel.max(1) < 0.01)
    names = list(model.free)
    osc = np.array([model.parameters[i].kind == "oscillation" for i in free])
    osc_ok = (dev[:, osc].max(1) < 0.01) & (rel[:, osc].max(1) < 0.01)
    return {
        "model": args.model,
        "n_toys": n,
        "valid": {"batched": int(batched.valid.sum()), "iminuit": int(ref.valid.sum())},
        "both_valid": int(both.sum()),
        "best_fit_within_0.01sigma": float((dev.max(1) < 0.01).mean()),
        "errors_within_1pct_of_reported": float((rel.max(1) < 0.01).mean()),
        "errors_within_1pct_of_hesse_cov": float((rel_cov.max(1) < 0.01).mean()),
        "both_criteria": float(ok.mean()),
        "both_criteria_oscillation_parameters": float(osc_ok.mean()),
        "failing_with_a_parameter_within_0.1sigma_of_a_limit": int((~ok & near.any(1)).sum()),
        "failing_without": int((~ok & ~near.any(1)).sum()),
        "near_limit_by_parameter": dict(zip(names, near.sum(0).tolist(), strict=True)),
        "dev_max_sigma": dict(zip(names, dev.max(0).round(5).tolist(), strict=True)),
        "rel_err_max": dict(zip(names, rel.max(0).round(5).tolist(), strict=True)),
        "rel_err_hesse_cov_max": dict(zip(names, rel_cov.max(0).round(5).tolist(), strict=True)),
        "difference_reference": {
            "toys": int(has_fd.sum()),
            "batched_errors_within_1pct": float((rel_fd_batched.max(1) < 0.01).mean()),
            "iminuit_errors_within_1pct": float((rel_fd_iminuit.max(1) < 0.01).mean()),
            "iminuit_hesse_cov_within_1pct": float((rel_fd_hesse.max(1) < 0.01).mean()),
            "batched_rel_max": dict(
                zip(names, rel_fd_batched.max(0).round(5).tolist(), strict=True)
            ),
            "iminuit_rel_max": dict(
                zip(names, rel_fd_iminuit.max(0).round(5).tolist(), strict=True)
            ),
            "iminuit_hesse_rel_max": dict(
                zip(names, rel_fd_hesse.max(0).round(5).tolist(), strict=True)
            ),
            "wall_s": round(t4 - t3, 1),
        },
        "batched_s": round(t1 - t0, 1),
        "iminuit_s": round(t2 - t1, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
