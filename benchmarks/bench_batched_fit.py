"""Fits per second of ``stats.batched_fit.fit_batch`` against one-at-a-time iminuit MIGRAD +
HESSE, on the same Poisson toys, measured in the same run (figures only, no pass/fail).

What it measures: Baker–Cousins fits of the reactor toy of tests/toy_reactor.py (100 bins,
θ = norm with a 2 % prior, sin²2θ in [0, 1], Δm² in [0.5, 5]·10⁻³ eV², analytic Jacobian),
all from the same start, with errors (exact Hessian: 3 extra batched model calls):

* batched: ``fit_batch`` on N = 1, 100 and 10⁴ toys (one call each, default chunk 2048);
* iminuit: ``Minuit`` MIGRAD + HESSE per toy, on a subset of ``--minuit-fits`` toys (default
  100) and extrapolated as a rate: with its own numerical gradient (the usual use), and with
  the analytic gradient from the same Jacobian (``grad=``, the fairer comparison).

The figures are the fit rates and the RATIOS "× iminuit" (iminuit with numerical gradient is
the baseline). Both stop at MINUIT's default EDM criterion (tolerance 0.1). The agreement of
the best fits (in iminuit's σ) on the subset is printed so that like is compared with like.

Method: ``_timing.measure`` (warm-up, then repeats round-robin, median, min–max).

Run from the repository root::

    .venv/bin/python benchmarks/bench_batched_fit.py      # ~1 min on 2 cores

The last line printed is a single JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from _timing import (
    Job,
    cpu_snapshot,
    environment,
    fmt_rate,
    measure,
    others_cpu,
    warn_if_loaded,
)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--minuit-fits", type=int, default=100)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from iminuit import Minuit
    from scipy.special import xlogy

    import toy_reactor as toy
    from oscflow.stats.batched_fit import BatchFitResult, fit_batch

    env = environment()
    print(f"bench_batched_fit: revision {env['revision']}, {env['cpus_usable']} CPUs usable")
    warn_if_loaded(env)
    counts = toy.toys(10_000, seed=7)
    start = np.array([1.01, 0.07, 2.6])
    kw = {
        "lower": toy.LOWER,
        "upper": toy.UPPER,
        "prior_center": toy.PRIOR_CENTER,
        "prior_sigma": toy.PRIOR_SIGMA,
    }
    last: dict[str, Any] = {}

    def batched(n: int, calls: int = 1) -> Job:
        """``calls`` calls of ``fit_batch`` on N = n toys (different toys for N = 1)."""

        def fn() -> None:
            for c in range(calls):
                last[f"batched N={n}"] = fit_batch(toy.model, counts[c : c + n], start, **kw)

        return Job(fn, items=n * calls, calls=calls, repeats=args.repeats)

    def minuit(gradient: bool) -> Job:
        def fn() -> None:
            out = []
            for k in range(args.minuit_fits):
                n = counts[k]

                def cost(theta: np.ndarray, n: np.ndarray = n) -> float:
                    mu = toy.model(theta[None])[0][0]
                    chi2 = 2.0 * np.sum(mu - n + xlogy(n, n) - xlogy(n, mu))
                    return float(chi2 + ((theta[0] - 1.0) / 0.02) ** 2)

                def grad(theta: np.ndarray, n: np.ndarray = n) -> np.ndarray:
                    mu, jac = toy.model(theta[None])
                    g = 2.0 * (1.0 - n / mu[0]) @ jac[0]
                    g[0] += 2.0 * (theta[0] - 1.0) / 0.02**2
                    return g

                m = Minuit(cost, start, grad=grad if gradient else None, name=toy.NAMES)
                m.errordef = Minuit.LEAST_SQUARES
                m.limits = list(zip(toy.LOWER, toy.UPPER, strict=True))
                m.migrad()
                m.hesse()
                out.append(m)
            last["iminuit, analytic gradient" if gradient else "iminuit"] = out

        return Job(fn, items=args.minuit_fits, repeats=args.repeats)

    jobs = {
        "iminuit": minuit(gradient=False),
        "iminuit, analytic gradient": minuit(gradient=True),
        "batched N=1": batched(1, calls=50),
        "batched N=100": batched(100),
        "batched N=10000": batched(10_000),
    }
    before = cpu_snapshot()
    timings = measure(jobs)
    busy = others_cpu(before, cpu_snapshot())
    base = timings["iminuit"].rate
    figures: dict[str, Any] = {"environment": env, "others_cpu_s": busy}
    print(f"{'method':<28} {'fits/s':>10} {'min–max':>21} {'× iminuit':>10}  calls/fit  valid")
    for name, t in timings.items():
        lo, hi = t.rate_range
        res = last[name]
        if isinstance(res, BatchFitResult):
            calls = float(np.mean(res.n_calls))
            valid = f"{int(res.valid.sum())}/{res.n_fits}"
        else:
            calls = float(np.mean([m.nfcn for m in res]))
            valid = f"{sum(m.valid for m in res)}/{len(res)}"
        print(
            f"{name:<28} {fmt_rate(t.rate):>10} {fmt_rate(lo):>10}–{fmt_rate(hi):<10} "
            f"{t.rate / base:>10.1f}  {calls:>9.1f}  {valid}"
        )
        figures[name] = {
            "fits_per_s": t.rate,
            "fits_per_s_range": [lo, hi],
            "ratio_to_iminuit": t.rate / base,
            "model_calls_per_fit": calls,
            "valid": valid,
        }
    ref = last["iminuit"]
    big = last["batched N=10000"]
    sub = slice(0, len(ref))
    err = np.array([m.errors[:] for m in ref])
    dev = np.abs(big.values[sub] - np.array([m.values[:] for m in ref])) / err
    rel = np.abs(big.errors[sub] / err - 1)
    print(
        f"agreement on the {len(ref)} common toys (both at EDM < 2e-4): best fits max "
        f"{dev.max():.3f}σ ({(dev.max(1) < 0.01).mean():.0%} within 0.01σ), errors max "
        f"{rel.max():.2%} ({(rel.max(1) < 0.01).mean():.0%} within 1 %)"
    )
    print(big.summary())
    figures["agreement"] = {"max_dev_sigma": float(dev.max()), "max_err_rel": float(rel.max())}
    if busy is not None:
        print(f"other processes used {busy:.1f} CPU-s while this measured")
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
