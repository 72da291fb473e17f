"""Throughput of the exact JUNO spectrum predictors (figures only, no pass/fail).

What it measures, all on one machine in one run:

* MC pairs per second: ``JunoExperiment.simulate_pairs(n, seed)`` (E_ν sampling plus the
  detector MC), with n = the production count of ``conf/predict.yaml`` (``mc.n_pairs``).
* Spectra per second of the response-matrix predictor (``ResponseMatrixPredictor``), in
  vacuum and with matter effects, batched (one ``predict`` call on B parameter points) and
  single (a ``predict`` call on one point, repeated).
* The same, BEFORE vs AFTER issue 18 in the same run: every matrix figure is also measured on
  ``predictor.reference_copy()``, the pre-issue-18 computation kept in the code (P_ee core by
  core through the oscillation model's propagator, the node-matrix product group by group;
  ``physics/survival_sums.py`` is the fast path). Ratios new/old are printed (target ≥ 5× for
  oscillation-only points in matter, the production setting); the two agree to ~1e-12.
* The detector-parameter path: points whose detector parameters (``escale``, ``res_a``) all
  differ. New: each point folds the cached deposit histogram analytically
  (``physics/response_fold.py``); old: each point rebuilt the response matrix from the MC
  events (reconstruction, sampled smearing and binning of every pair: ``smearing="sampled"``
  on the reference path). The rebuild's share is the difference from the single-point
  oscillation-only time.
* Spectra per second of the event-reweighting predictor (``ReweightPredictor``, single; it
  uses the fast P_ee sums too), the BASELINE: the matrix figures are also given as ratios matrix/reweight measured in the
  same run with the same MC pairs, binning (400 bins, 0.8–8.8 MeV prompt energy), exposure
  and parameter points. Machines are noisy; quote the ratios rather than the absolute rates.
* One-off set-up costs (building each predictor from the pairs) and the agreement of the
  two predictors at the first parameter point, so that the ratio compares like with like.

Method: ``time.perf_counter``; every measurement is warmed up once, then its repeats are
taken round-robin with the other measurements (so a slow phase of a shared machine hits
baseline and matrix alike) and the median is reported, min–max spread alongside.
Parameter points are drawn uniformly from each oscillation parameter's sampling range
(seeded). ``predict`` splits batches into chunks of 512 internally, so the batched rate
does not depend on B beyond one chunk.

Run from the repository root::

    .venv/bin/python benchmarks/bench_predictors.py            # ~1.5–2.5 min on 2 cores
    .venv/bin/python benchmarks/bench_predictors.py --quick    # ~30–40 s, fewer repeats

The last line printed is a single JSON object with every figure (for scripts and logs).

BLAS threads follow the usual environment variables, which are echoed in the output. On a
machine shared with other busy processes, OpenBLAS's default of one thread per core makes
the batch-1 matrix call up to ~10× slower (its threads wait on each other for small
products); pin them to compare like with like::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_predictors.py
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from _timing import Job, Timing, describe_threads, environment, fmt_rate, measure, warn_if_loaded
from oscflow.config import bin_edges, load
from oscflow.experiments import load_experiment
from oscflow.physics.oscillation_models import get as oscillation_model
from oscflow.physics.predictors import ResponseMatrixPredictor, total

OSCILLATION_PARAMETERS = oscillation_model("three_flavour").parameters


@dataclass(frozen=True)
class Plan:
    """How much work each measurement does."""

    sim_repeats: int
    batch_sizes: tuple[int, ...]
    batch_repeats: int
    single_calls: int  # predict calls per repeat of the single-point measurement
    single_repeats: int
    reweight_repeats: int
    old_single_calls: int  # the old path's single-point calls per repeat
    det_points: int  # detector-parameter points per repeat (each rebuilds the matrix)
    det_repeats: int


FULL = Plan(
    sim_repeats=3,
    batch_sizes=(1024, 4096),
    batch_repeats=3,
    single_calls=200,
    single_repeats=5,
    reweight_repeats=5,
    old_single_calls=50,
    det_points=8,
    det_repeats=3,
)
QUICK = Plan(
    sim_repeats=2,
    batch_sizes=(1024,),
    batch_repeats=2,
    single_calls=50,
    single_repeats=3,
    reweight_repeats=2,
    old_single_calls=20,
    det_points=4,
    det_repeats=2,
)
DETECTOR_PARAMETERS = ("escale", "res_a")
SETTINGS = ("vacuum", "matter")


def parameter_points(experiment: Any, size: int, seed: int) -> dict[str, np.ndarray]:
    """``size`` points drawn uniformly from each oscillation parameter's sampling range."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in OSCILLATION_PARAMETERS:
        lo, hi = experiment.parameters[name].sampling_range
        out[name] = rng.uniform(lo, hi, size)
    return out


def detector_points(experiment: Any, size: int, seed: int) -> dict[str, np.ndarray]:
    """``size`` oscillation points with detector parameters drawn from their sampling ranges
    (all distinct: every point rebuilds the response matrix)."""
    rng = np.random.default_rng(seed + 1)
    out = parameter_points(experiment, size, seed + 1)
    for name in DETECTOR_PARAMETERS:
        lo, hi = experiment.parameters[name].sampling_range
        out[name] = rng.uniform(lo, hi, size)
    return out


def take(points: Mapping[str, np.ndarray], start: int, size: int) -> dict[str, np.ndarray]:
    return {k: v[start : start + size] for k, v in points.items()}


def single_loop(predictor: Any, points: Mapping[str, np.ndarray], exposure: Any, calls: int):
    """A closure making ``calls`` predict calls of batch 1 on successive points."""
    n = next(iter(points.values())).shape[0]

    def run() -> None:
        for i in range(calls):
            predictor.predict(take(points, i % n, 1), exposure)

    return run


def new_over_old(results: Mapping[str, Timing]) -> dict[str, float]:
    """Rate of each new-path measurement over its old-path twin (``<key>_old``), same run."""
    return {
        key: results[key].rate / results[f"{key}_old"].rate
        for key in results
        if f"{key}_old" in results
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (~20 s)")
    parser.add_argument("--seed", type=int, default=1, help="MC and parameter-point seed")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    t_start = time.perf_counter()

    cfgs = {
        s: load("predict", [f"experiment.oscillation.matter={str(s == 'matter').lower()}"])
        for s in SETTINGS
    }
    exps = {s: load_experiment(cfgs[s].experiment) for s in SETTINGS}
    cfg, exp = cfgs["vacuum"], exps["vacuum"]
    edges = bin_edges(cfg.binning)
    exposure = exp.exposure(float(cfg.exposure.days), float(cfg.exposure.efficiency))
    n_pairs = int(cfg.mc.n_pairs)
    env = environment()
    print(
        f"oscflow predictor benchmark ({'quick' if args.quick else 'full'}): "
        f"{n_pairs:,} MC pairs, {len(edges) - 1} bins "
        f"[{edges[0]:g}, {edges[-1]:g}] MeV, exposure {float(cfg.exposure.days):g} d × "
        f"{float(cfg.exposure.efficiency):g}; oscflow {env['revision']}, "
        f"python {env['python']}, numpy {env['numpy']}, "
        f"{env['cpus_usable']} usable CPUs, BLAS threads " + describe_threads(env)
    )
    warn_if_loaded(env, " (see the module docstring on BLAS threads)")

    # MC pairs: warm up on a small sample, keep the last timed sample for the predictors.
    # (The detector MC does not depend on the oscillation settings: one sample serves both.)
    exp.simulate_pairs(50_000, seed=args.seed)
    sim_box: dict[str, Any] = {}

    def simulate() -> None:
        sim_box["pairs"] = exp.simulate_pairs(n_pairs, seed=args.seed)

    sim = measure({"sim": Job(simulate, n_pairs, plan.sim_repeats, warmup=False)})["sim"]
    pairs = sim_box["pairs"]

    build: dict[str, float] = {}
    predictors: dict[tuple[str, str], Any] = {}
    for s in SETTINGS:
        for method in ("matrix", "reweight"):
            t0 = time.perf_counter()
            predictors[s, method] = exps[s].predictor(edges, "prompt", method, pairs)
            build[f"{method}_{s}"] = time.perf_counter() - t0

    points = parameter_points(exp, max(plan.batch_sizes), seed=args.seed)
    det_points = detector_points(exp, plan.det_points, seed=args.seed)
    small = min(plan.batch_sizes)
    agreement: dict[str, float] = {}
    jobs: dict[tuple[str, str], Job] = {}
    old_vs_new: dict[str, float] = {}
    for s in SETTINGS:
        matrix, reweight = predictors[s, "matrix"], predictors[s, "reweight"]
        old = matrix.reference_copy()  # the pre-issue-18 computation, same matrices
        first = take(points, 0, 1)
        # The agreement check doubles as the reweighter's warm-up (one call is ~1 s).
        m_tot = total(matrix.predict(first, exposure))[0]
        r_tot = total(reweight.predict(first, exposure))[0]
        agreement[s] = float(abs(m_tot.sum() / r_tot.sum() - 1.0))
        check = take(points, 0, 64)
        new_spec, old_spec = (
            total(matrix.predict(check, exposure)),
            total(old.predict(check, exposure)),
        )
        filled = old_spec > 0
        old_vs_new[s] = float(np.max(np.abs(new_spec[filled] / old_spec[filled] - 1.0)))
        jobs[s, "matrix_single_old"] = Job(
            single_loop(old, points, exposure, plan.old_single_calls),
            plan.old_single_calls,
            plan.single_repeats,
            calls=plan.old_single_calls,
        )
        first_batch = take(points, 0, small)
        jobs[s, f"matrix_batch{small}_old"] = Job(
            lambda p=old, q=first_batch: p.predict(q, exposure),
            small,
            plan.batch_repeats,
        )
        # Before issue 18 a detector point re-reconstructed and re-binned every MC event (the
        # sampled smearing); now it folds the cached deposit histogram (physics/response_fold.py).
        old_detector = ResponseMatrixPredictor(
            exps[s].source,
            edges,
            "prompt",
            pairs,
            exps[s].settings,
            exps[s].detector,
            emax_nu=exps[s].emax_nu,
            fine_bins=exps[s].response_fine_bins,
            smearing="sampled",
        ).reference_copy()
        for name, pred in (("matrix_detector", matrix), ("matrix_detector_old", old_detector)):
            jobs[s, name] = Job(
                lambda p=pred: p.predict(det_points, exposure),
                plan.det_points,
                plan.det_repeats,
                calls=plan.det_points,
            )
        jobs[s, "reweight_single"] = Job(
            lambda p=reweight, q=first: p.predict(q, exposure),
            1,
            plan.reweight_repeats,
            warmup=False,
        )
        jobs[s, "matrix_single"] = Job(
            single_loop(matrix, points, exposure, plan.single_calls),
            plan.single_calls,
            plan.single_repeats,
            calls=plan.single_calls,
        )
        for b in plan.batch_sizes:
            batch = take(points, 0, b)
            jobs[s, f"matrix_batch{b}"] = Job(
                lambda p=matrix, q=batch: p.predict(q, exposure), b, plan.batch_repeats
            )
    timings = measure({f"{s}/{key}": job for (s, key), job in jobs.items()})
    results: dict[str, dict[str, Timing]] = {s: {} for s in SETTINGS}
    for s, key in jobs:
        results[s][key] = timings[f"{s}/{key}"]

    # ---- table ----------------------------------------------------------------------
    rows: list[tuple[str, str, int, Timing, float | None, float | None]] = [
        ("MC pairs/s (simulate_pairs)", "-", n_pairs, sim, None, None)
    ]
    speedup = {s: new_over_old(results[s]) for s in SETTINGS}
    for s in SETTINGS:
        base = results[s]["reweight_single"].rate
        named = [("reweight spectra/s [BASELINE]", "reweight_single", 1)]
        named.append(("matrix spectra/s, single", "matrix_single", 1))
        named.append(("  old path (before #18)", "matrix_single_old", 1))
        named.extend(("matrix spectra/s, batched", f"matrix_batch{b}", b) for b in plan.batch_sizes)
        named.append(("  old path (before #18)", f"matrix_batch{small}_old", small))
        named.append(("matrix, detector-param. points", "matrix_detector", 1))
        named.append(("  old path (before #18)", "matrix_detector_old", 1))
        rows.extend(
            (label, s, b, results[s][key], results[s][key].rate / base, speedup[s].get(key))
            for label, key, b in named
        )
    header = (
        f"{'measurement':<31} {'osc.':<6} {'batch':>9} {'calls×reps':>10} {'s/call':>9} "
        f"{'per second, median (min–max)':>32} {'× reweight':>10} {'new/old':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, setting, b, t, ratio, new_old in rows:
        lo, hi = t.rate_range
        per_s = f"{fmt_rate(t.rate)} ({fmt_rate(lo)}–{fmt_rate(hi)})"
        reps = f"{t.calls}×{len(t.seconds)}"
        print(
            f"{name:<31} {setting:<6} {b:>9,} {reps:>10} {t.per_call:>9.2e} "
            f"{per_s:>32} {'' if ratio is None else f'{ratio:,.0f}':>10} "
            f"{'' if new_old is None else f'{new_old:.2f}×':>8}"
        )
    print()
    for s in SETTINGS:
        r = results[s]
        print(
            f"new / old path, {s}: batched {speedup[s][f'matrix_batch{small}']:.2f}×, single "
            f"{speedup[s]['matrix_single']:.2f}×, detector-parameter points "
            f"{speedup[s]['matrix_detector']:.2f}× (max |new/old − 1| over 64 spectra: "
            f"{old_vs_new[s]:.1e})"
        )
        rebuild = 1e3 * (r["matrix_detector"].per_call - r["matrix_single"].per_call)
        rebuild_old = 1e3 * (r["matrix_detector_old"].per_call - r["matrix_single_old"].per_call)
        print(
            f"  detector-parameter point, {s}: {1e3 * r['matrix_detector'].per_call:.1f} ms, of "
            f"which the matrix rebuild ≈ {rebuild:.1f} ms (old path {rebuild_old:.1f} ms of "
            f"{1e3 * r['matrix_detector_old'].per_call:.1f} ms)"
        )
    print()
    batched_key = f"matrix_batch{max(plan.batch_sizes)}"
    for key in ("matrix_single", batched_key):
        ratio = results["matter"][key].rate / results["vacuum"][key].rate
        print(f"matter / vacuum, {key.replace('_', ' ')}: {ratio:.2f} (spectra/s ratio)")
    print(
        "set-up (one-off, s): "
        + ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in build.items())
    )
    print(
        "agreement at point 0, |Σ matrix / Σ reweight − 1|: "
        + ", ".join(f"{s} {v:.1e}" for s, v in agreement.items())
    )
    elapsed = time.perf_counter() - t_start
    print(f"total wall time {elapsed:.1f} s")

    # ---- JSON -----------------------------------------------------------------------
    def entry(t: Timing) -> dict[str, Any]:
        return {
            "per_s": round(t.rate, 3),
            "median_s": round(t.median, 6),
            "items_per_repeat": t.items,
            "repeats": len(t.seconds),
        }

    figures: dict[str, Any] = {
        "benchmark": "bench_predictors",
        "mode": "quick" if args.quick else "full",
        "n_pairs": n_pairs,
        "n_bins": len(edges) - 1,
        "pairs_per_s": round(sim.rate, 1),
        "spectra_per_s": {s: {k: entry(t) for k, t in results[s].items()} for s in SETTINGS},
        "ratio_matrix_over_reweight": {
            s: {
                k: round(t.rate / results[s]["reweight_single"].rate, 2)
                for k, t in results[s].items()
                if k.startswith("matrix")
            }
            for s in SETTINGS
        },
        "ratio_matter_over_vacuum": {
            k: round(results["matter"][k].rate / results["vacuum"][k].rate, 3)
            for k in results["vacuum"]
        },
        "ratio_new_over_old": {
            s: {k: round(v, 3) for k, v in speedup[s].items()} for s in SETTINGS
        },
        "new_vs_old_max_rel": old_vs_new,
        "build_s": {k: round(v, 3) for k, v in build.items()},
        "agreement_rel": agreement,
        "environment": env,
        "wall_s": round(elapsed, 1),
    }
    print(json.dumps(figures, sort_keys=True))
    return figures


if __name__ == "__main__":
    main()
