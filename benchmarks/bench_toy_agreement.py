"""Issue 16's agreement criterion on a registered surrogate: N JUNO toys (full configuration: 4
oscillation parameters, flux and 7 background normalisations free, priors fluctuated per toy,
6 years, Asimov of the surrogate) fitted by the batched fitter and by iminuit MIGRAD + HESSE one
at a time, compared toy by toy — best fits in iminuit's σ, errors against iminuit's reported
errors and against √diag of its HESSE covariance (they differ for a parameter near a limit:
Minuit2 maps ±σ through its sine transformation, Int2extError). Both at tight tolerances
(iminuit EDM < 2e-8, batched EDM < 2e-5) so that 0.01σ is resolved (tests/test_batched_fit.py).

Prints one JSON line: the fractions meeting each criterion, per-parameter maxima, what the
toys outside have in common (a parameter within 0.1σ of a limit), and both fitters' wall time.

    .venv/bin/python benchmarks/bench_toy_agreement.py --model models:/juno-spectrum@champion \\
        --tracking-uri http://127.0.0.1:5000 --toys 1000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


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
        "batched_s": round(t1 - t0, 1),
        "iminuit_s": round(t2 - t1, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
