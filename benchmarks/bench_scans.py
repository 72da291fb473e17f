"""Wall time of likelihood scans around one fit, batched vs iminuit, measured in the same run
(figures only, no pass/fail): a 20-point 1-D profile and a 20 × 20 2-D contour.

What it measures (``services/fit/scans.py``): on the same Asimov fit (MIGRAD + HESSE, all
free parameters of the configuration), with the same grid convention,

* profile of ``--profile`` (default sin²θ12), 20 points over best ± 2σ: the batched fitter
  (every grid point a fit with the parameter fixed, all at once by ``stats.batched_fit``) vs
  MINUIT's ``mnprofile`` (one MIGRAD per point);
* contour of ``--contour`` (default sin²θ12, Δm²21): the batched 20 × 20 Δχ² map over ± 3σ
  (400 fits at once) and its 1σ/2σ lines vs MINUIT's ``mncontour`` (20 points per line, both
  lines: the product's contour plot).

Printed: seconds of each, the ratio "iminuit / batched" (> 1: batched is faster), model calls,
and the agreement of the two (largest |ΔΔχ²| of the profiles, their Δχ² = 1 crossings, the
contours' extents in each parameter). Configurations:

* ``exact`` (always): tests/helpers.py's ``CHEAP_FIT`` (exact E_ν predictor, vacuum, 70 bins,
  12 free parameters). An exact predictor costs ~3 ms per spectrum whether batched or not, and
  its Jacobian is 1 + 2 × (free oscillation inputs) predictor calls: batching saves little
  here;
* ``surrogate`` (with ``--model`` or ``--train-tiny``): the fit service's default JUNO fit
  (prompt energy, 12 free parameters) with a registered surrogate, whose batched forward pass
  and autograd Jacobian are what the batched fitter is for. ``--train-tiny`` trains a
  throwaway surrogate first (bench_fit.py's recipe on the tests' tiny dataset; ``--hidden
  '[400,400]' --epochs 30``: seed 001's width, so that a model call costs what the real one
  does, ~1 min of training).

Timing: ``_timing.measure`` (round-robin, medians of ``--repeats`` profile, contour runs) after
one warm-up scan of each kind; absolute times move with the machine's load, the ratios less.

Run from the repository root::

    .venv/bin/python benchmarks/bench_scans.py                 # exact only, ~2 min
    .venv/bin/python benchmarks/bench_scans.py --train-tiny --hidden '[400,400]' --epochs 30

The last line printed is a single JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _timing import Job, environment, measure, warn_if_loaded

ROOT = Path(__file__).resolve().parents[1]
POINTS = 20


def timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench(
    label: str,
    overrides: list[str],
    profile: str,
    contour: tuple[str, str],
    repeats: tuple[int, int],
) -> dict:
    """Both fitters' scans on one fit of ``overrides``, (profile, contour) ``repeats`` times
    each, interleaved (``_timing.measure``); prints and returns the figures (medians)."""
    from omegaconf import OmegaConf

    from oscflow.config import load
    from oscflow.services.fit.run import fit_or_raise
    from oscflow.services.fit.scans import CONTOUR_CL, scans
    from oscflow.services.fit.setup import setup

    cfg = load("fit", [*overrides, f"scan.points={POINTS}"])
    fs = setup(cfg)
    data = fs.observation.counts
    main, fit_s = timed(lambda: fit_or_raise(fs.model, data, cfg, "benchmark fit"))
    print(
        f"\n[{label}] {len(main.free)} free parameters, {len(data)} bins; fit {fit_s:.2f} s "
        f"({main.nfcn} calls)"
    )

    def job(fitter: str, what: str, repeats: int) -> Job:
        node = {"fitter": fitter, "profiles": [], "contours": []}
        node["profiles" if what == "profile" else "contours"] = (
            [profile] if what == "profile" else [list(contour)]
        )
        c = OmegaConf.merge(cfg, {"scan": node})

        def fn() -> None:
            res[f"{what} {fitter}"] = scans(main, data, c)

        return Job(
            fn, items=POINTS if what == "profile" else POINTS**2, repeats=repeats, warmup=False
        )

    # warm-up (imports: contourpy, scipy.interpolate; torch's first calls): tiny scans of both
    warm = {"profiles": [profile], "contours": [list(contour)], "points": 3}
    for fitter in ("batched", "iminuit"):
        scans(main, data, OmegaConf.merge(cfg, {"scan": {**warm, "fitter": fitter}}))
    out: dict[str, Any] = {"fit_s": fit_s, "n_free": len(main.free), "n_bins": len(data)}
    res: dict[str, dict] = {}
    jobs = {
        f"{what} {fitter}": job(fitter, what, reps)
        for what, reps in (("profile", repeats[0]), ("contour", repeats[1]))
        for fitter in ("batched", "iminuit")
    }
    timings = measure(jobs)  # round-robin repeats, medians
    for what in ("profile", "contour"):
        for fitter in ("batched", "iminuit"):
            t = timings[f"{what} {fitter}"]
            out[f"{what}_{fitter}_s"] = t.median
            out[f"{what}_{fitter}_s_all"] = list(t.seconds)
        out[f"{what}_ratio"] = out[f"{what}_iminuit_s"] / out[f"{what}_batched_s"]
        print(
            f"{what:<8} ({'20 points' if what == 'profile' else '20 × 20 grid vs 2 × 20 points'})"
            f": batched {out[f'{what}_batched_s']:7.2f} s, iminuit {out[f'{what}_iminuit_s']:7.2f}"
            f" s, iminuit / batched = {out[f'{what}_ratio']:.2f} (median of "
            f"{len(timings[f'{what} batched'].seconds)})"
        )
    pb = res["profile batched"]["profiles"][profile]
    pi = res["profile iminuit"]["profiles"][profile]
    db = np.array(pb["delta_chi2"], dtype=float)
    di = np.array(pi["delta_chi2"], dtype=float)
    out["profile_max_abs_diff"] = float(np.nanmax(np.abs(db - di)))
    out["profile_valid"] = [sum(pb["valid"]), sum(pi["valid"])]
    out["profile_nfcn_batched"] = pb["nfcn"]
    err = main.error(profile)
    cross = [
        [(v - main.value(profile)) / err if v is not None else None for v in p["interval_1sigma"]]
        for p in (pb, pi)
    ]
    out["profile_crossings_in_hesse_sigma"] = {"batched": cross[0], "iminuit": cross[1]}
    print(
        f"profile: max |Δχ²(batched) − Δχ²(iminuit)| = {out['profile_max_abs_diff']:.2e}; "
        f"Δχ² = 1 at {cross[0]} (batched), {cross[1]} (iminuit) HESSE σ; valid "
        f"{out['profile_valid'][0]}/{POINTS}, {out['profile_valid'][1]}/{POINTS}"
    )
    cb = res["contour batched"]["contours"][0]
    ci = res["contour iminuit"]["contours"][0]
    extents: dict[str, list[float]] = {}
    for cl in CONTOUR_CL:
        b, i = np.asarray(cb["points"][str(cl)]), np.asarray(ci["points"][str(cl)])
        if len(b) < 3 or len(i) < 3:  # no line (e.g. cells not valid all around it)
            extents[str(cl)] = [float("nan"), float("nan")]
            continue
        extents[str(cl)] = [float(np.ptp(b[:, j]) / np.ptp(i[:, j]) - 1) for j in (0, 1)]
    out["contour_extent_rel_diff"] = extents
    out["contour_valid"] = f"{POINTS**2 - cb['n_not_valid']}/{POINTS**2}"
    out["contour_lines"] = cb["lines"]
    out["contour_nfcn_batched"] = cb["nfcn"]
    print(
        "contour: extent (batched / mncontour − 1) per CL [x, y]: "
        + ", ".join(f"{cl}: [{e[0]:+.2%}, {e[1]:+.2%}]" for cl, e in extents.items())
        + f"; valid cells {out['contour_valid']}"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a registered surrogate's URI")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--train-tiny", action="store_true", help="train a throwaway surrogate")
    parser.add_argument("--hidden", default="[32,32]", help="--train-tiny: hidden layers")
    parser.add_argument("--epochs", type=int, default=3, help="--train-tiny: epochs")
    parser.add_argument("--profile", default="sin2_th12")
    parser.add_argument("--contour", nargs=2, default=["sin2_th12", "dm2_21"])
    parser.add_argument("--skip-exact", action="store_true")
    parser.add_argument("--repeats", type=int, nargs=2, default=[3, 1], help="profile, contour")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import CHEAP_FIT

    extra: list[str] = []
    if args.train_tiny:
        from bench_fit import train_tiny

        args.model, args.tracking_uri, extra = train_tiny(args.hidden, args.epochs)
    env = environment()
    print(f"bench_scans: revision {env['revision']}, {env['cpus_usable']} CPUs usable")
    warn_if_loaded(env)
    out: dict[str, Any] = {"environment": env}
    contour = (args.contour[0], args.contour[1])
    reps = (args.repeats[0], args.repeats[1])
    if not args.skip_exact:
        out["exact"] = bench("exact, CHEAP_FIT", list(CHEAP_FIT), args.profile, contour, reps)
    if args.model:
        overrides = [
            f"model_uri={args.model}",
            f"logger.tracking_uri={args.tracking_uri}",
            "orderings=false",
            "record=false",
            "plots=false",
            *extra,
        ]
        out["surrogate"] = bench(f"surrogate {args.model}", overrides, args.profile, contour, reps)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
