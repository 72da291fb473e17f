"""Daya Bay on the real data: one χ² evaluation and one full fit (MIGRAD + HESSE of sin²2θ13 and
Δm²32) with the surrogate vs with the collaboration's model, measured in the same run.

* χ² evaluation: the fit's cost function at a point one σ from the previous one (so that the
  official graph recomputes), surrogate prediction + ``stats.covariance`` vs the official
  model's spectrum + the same statistic, and the official statistic node itself;
* full fit: the fit service's ``minimize`` from the published result as the start, with the
  surrogate and with the official model as predictor, and the official model's own fit of its
  statistic node (``OfficialModel.fit``).

Figures are RATIOS "× surrogate" of median wall times (``_timing.measure``), next to the best
fits. Needs a registered ``dayabay-spectrum`` (``--model``) in ``--tracking-uri``::

    .venv/bin/python benchmarks/bench_dayabay.py --model models:/dayabay-spectrum/latest

The last line printed is a single JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from _timing import Job, environment, measure, warn_if_loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/dayabay-spectrum/latest")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from oscflow.config import load
    from oscflow.services.fit.minimize import cost_function, minimize
    from oscflow.services.fit.setup import setup

    env = environment()
    print(f"bench_dayabay: revision {env['revision']}, {env['cpus_usable']} CPUs usable")
    warn_if_loaded(env)
    cfg = load(
        "fit",
        [
            "experiment=dayabay",
            "fit/observation=real",
            f"model_uri={args.model}",
            f"logger.tracking_uri={args.tracking_uri}",
            "record=false",
            "plots=false",
        ],
    )
    fs = setup(cfg)
    data = fs.observation.counts
    statistic = str(cfg.statistic)
    models = {"surrogate": fs.model, "official": fs.model.with_predictor(fs.exact())}
    official = fs.experiment.official()
    x = fs.model.starts()
    step = np.array([p.step for p in fs.model.parameters])
    names = list(fs.model.names)
    free = [names.index(n) for n in fs.model.free]  # the official model's parameters
    state = {"sign": 1.0}

    def chi2_job(name: str) -> Any:
        cost = cost_function(models[name], data, statistic)

        def fn() -> None:
            state["sign"] *= -1
            cost(x + state["sign"] * step)

        return fn

    def node_job() -> None:
        state["sign"] *= -1
        point = x + state["sign"] * step
        official.statistic("full.covmat.chi2cnp", {names[i]: point[i] for i in free})

    last: dict[str, Any] = {}

    def fit_job(name: str) -> Any:
        def fn() -> None:
            last[name] = minimize(models[name], data, statistic)

        return fn

    def own_fit() -> None:
        start = {names[i]: x[i] for i in free}
        last["official_node"] = official.fit(start, {names[i]: step[i] for i in free})

    chi2 = measure(
        {
            "surrogate": Job(chi2_job("surrogate"), items=1, repeats=50 * args.repeats),
            "official": Job(chi2_job("official"), items=1, repeats=10 * args.repeats),
            "official_node": Job(node_job, items=1, repeats=10 * args.repeats),
        }
    )
    fits = measure(
        {
            "surrogate": Job(fit_job("surrogate"), items=1, repeats=args.repeats),
            "official": Job(fit_job("official"), items=1, repeats=args.repeats),
            "official_node": Job(own_fit, items=1, repeats=args.repeats),
        }
    )
    figures: dict[str, Any] = {"environment": env, "chi2": {}, "fit": {}}
    base = chi2["surrogate"].median
    print(f"{'χ² evaluation':<16} {'median [ms]':>12} {'× surrogate':>12}")
    for name, t in chi2.items():
        print(f"{name:<16} {1e3 * t.median:>12.2f} {t.median / base:>12.1f}")
        figures["chi2"][name] = {"s": t.median, "ratio_to_surrogate": t.median / base}
    base = fits["surrogate"].median
    print(f"{'full fit':<16} {'median [s]':>12} {'× surrogate':>12}  sin2_2th13  dm2_32")
    for name, t in fits.items():
        out = last[name]
        if name == "official_node":
            values, errors = out["values"], out["errors"]
        else:
            values = {n: out.value(n) for n in out.free}
            errors = {n: out.error(n) for n in out.free}
        print(
            f"{name:<16} {t.median:>12.3f} {t.median / base:>12.1f}  "
            f"{values['sin2_2th13']:.5f}±{errors['sin2_2th13']:.5f}  "
            f"{values['dm2_32']:.5e}±{errors['dm2_32']:.2e}"
        )
        figures["fit"][name] = {
            "s": t.median,
            "ratio_to_surrogate": t.median / base,
            "best_fit": values,
            "errors": errors,
        }
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
